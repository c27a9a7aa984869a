//! The rules engine: deterministic diagnosis and fixes, the embedded default backend. It does
//! no IO and knows no LLM: it reads the state it is given and returns diagnoses, fixes and
//! verification plans.
//!
//! For one workload, every detection is classified ([`classify`]); detections of the same
//! category form one diagnosis, and generic ones (a stuck rollout, a Service without ready
//! endpoints) join the most specific diagnosis of the workload, which explains them. The lead
//! detection of each diagnosis supplies the cited evidence and the cause a fix is built from.

mod classify;
mod fix;
mod lookup;
pub mod plan;
pub mod revision;
mod text;

use std::collections::BTreeMap;

use aegis_core::policy::{self, PolicyDecision};
use aegis_core::settings::ShadowSettings;
use aegis_core::{
    Category, Evidence, Finding, Fix, PatchType, Rca, ResourceKind, ResourceRef, Risk,
    VerificationPlan,
};
use aegis_k8sgpt::Detection;
use k8s_openapi::api::core::v1::Pod;

use crate::fix::Proposal;

pub use classify::{Cause, ProbeKind, Signal, classify};
pub use lookup::Lookup;

use crate::plan::verification_plan;

/// Settings of the rules engine.
#[derive(Debug, Clone)]
pub struct RulesConfig {
    /// Below this confidence no fix is proposed.
    pub confidence_threshold: f64,
    /// How fixes are to be verified.
    pub shadow: ShadowSettings,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            confidence_threshold: 0.7,
            shadow: ShadowSettings::default(),
        }
    }
}

/// The diagnosis of one (workload, category).
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub category: Category,
    /// The most telling object.
    pub resource: ResourceRef,
    pub findings: Vec<Finding>,
    pub rca: Rca,
    pub fix: Option<Fix>,
    /// Other safe fixes for the same cause, best first (policy-allowed only).
    pub alternatives: Vec<Fix>,
    pub plan: Option<VerificationPlan>,
}

/// The rules engine.
#[derive(Debug, Clone, Default)]
pub struct RulesEngine {
    config: RulesConfig,
}

/// Evidence cited per diagnosis, at most.
const MAX_CITED: usize = 12;

impl RulesEngine {
    pub fn new(config: RulesConfig) -> Self {
        Self { config }
    }

    /// The backend name reported in `rca.backend`.
    pub fn backend_name(&self) -> &'static str {
        "rules"
    }

    /// Diagnoses the detections of one workload.
    pub fn diagnose(
        &self,
        lookup: &Lookup<'_>,
        workload: &ResourceRef,
        detections: &[&Detection],
    ) -> Vec<Diagnosis> {
        let classified: Vec<(&Detection, Signal)> = detections
            .iter()
            .map(|d| {
                let pod = (d.finding.resource.kind == ResourceKind::Pod)
                    .then(|| {
                        lookup.pod(d.finding.resource.namespace_str(), &d.finding.resource.name)
                    })
                    .flatten();
                (*d, classify(d, pod))
            })
            .collect();
        let mut specific: BTreeMap<Category, Vec<(&Detection, Signal)>> = BTreeMap::new();
        let mut generic: Vec<(&Detection, Signal)> = Vec::new();
        for (detection, signal) in classified {
            if signal.generic {
                generic.push((detection, signal));
            } else {
                specific
                    .entry(signal.category)
                    .or_default()
                    .push((detection, signal));
            }
        }
        if specific.is_empty() {
            for (detection, signal) in generic {
                specific
                    .entry(signal.category)
                    .or_default()
                    .push((detection, signal));
            }
        } else {
            // The generic findings are symptoms of the strongest specific diagnosis.
            let strongest = specific
                .iter()
                .max_by(|a, b| {
                    let score = |group: &Vec<(&Detection, Signal)>| {
                        (
                            group.iter().map(|(_, s)| s.confidence).fold(0.0, f64::max),
                            group.len(),
                        )
                    };
                    let (ca, na) = score(a.1);
                    let (cb, nb) = score(b.1);
                    ca.total_cmp(&cb).then(na.cmp(&nb))
                })
                .map(|(category, _)| *category);
            if let Some(category) = strongest
                && let Some(group) = specific.get_mut(&category)
            {
                group.extend(generic);
            }
        }
        specific
            .into_iter()
            .map(|(category, group)| self.diagnosis(lookup, workload, category, &group))
            .collect()
    }

    fn diagnosis(
        &self,
        lookup: &Lookup<'_>,
        workload: &ResourceRef,
        category: Category,
        group: &[(&Detection, Signal)],
    ) -> Diagnosis {
        let lead_position = group
            .iter()
            .enumerate()
            .filter(|(_, (_, s))| !s.generic || group.iter().all(|(_, s)| s.generic))
            .max_by(|(ia, (da, sa)), (ib, (db, sb))| {
                let pod_first =
                    |d: &Detection| u8::from(d.finding.resource.kind == ResourceKind::Pod);
                sa.confidence
                    .total_cmp(&sb.confidence)
                    .then(pod_first(da).cmp(&pod_first(db)))
                    .then(ib.cmp(ia))
            })
            .map_or(0, |(i, _)| i);
        let (lead, signal) = &group[lead_position];
        let mut findings: Vec<Finding> = Vec::new();
        for (detection, _) in group {
            if !findings.contains(&detection.finding) {
                findings.push(detection.finding.clone());
            }
        }
        let mut evidence: Vec<Evidence> = Vec::new();
        for item in &signal.cited {
            if !evidence.contains(item) && evidence.len() < MAX_CITED {
                evidence.push(item.clone());
            }
        }
        let mut steps = signal.steps.clone();
        let affected = group
            .iter()
            .filter(|(d, _)| d.finding.resource.kind == ResourceKind::Pod)
            .count();
        if affected > 1 {
            steps.push(format!(
                "{affected} pods of {workload} show the same failure"
            ));
        }
        for (detection, other) in group {
            if other.generic {
                steps.push(format!(
                    "{} is a symptom of this cause: {}",
                    detection.finding.resource, detection.finding.message
                ));
            }
        }
        let mut confidence = signal.confidence;
        let failing_pods: Vec<&Pod> = group
            .iter()
            .filter(|(d, _)| d.finding.resource.kind == ResourceKind::Pod)
            .filter_map(|(d, _)| {
                lookup.pod(d.finding.resource.namespace_str(), &d.finding.resource.name)
            })
            .collect();
        let rollback = (template_caused(category)
            && matches!(
                workload.kind,
                ResourceKind::Deployment | ResourceKind::StatefulSet | ResourceKind::DaemonSet
            ))
        .then(|| revision::rollback(lookup, workload, &failing_pods));
        if let Some(Ok(proposal)) = &rollback
            && let Some((rollback, _)) = &proposal.rollback
        {
            // The failure came with a rollout while the revision before runs healthy: the
            // change is the cause, whatever the symptom.
            confidence = confidence.max(ROLLOUT_CONFIDENCE);
            steps.push(format!(
                "the failure began with revision {}: its pods fail while revision {}'s run ready",
                rollback.from_revision, rollback.to_revision
            ));
        }
        let (targeted, alternatives) = match fix::candidates(lookup, &signal.cause, workload) {
            Ok(mut found) => {
                let rest = found.split_off(1);
                (fix::Outcome::Proposed(found.remove(0)), rest)
            }
            Err(outcome) => (outcome, Vec::new()),
        };
        let choice = choose(targeted, rollback, alternatives);
        let mut rationale;
        let mut fix = None;
        let mut plan = None;
        let mut alternatives = Vec::new();
        match choice {
            Choice::Fix {
                lead,
                others,
                why,
                steps: more,
            } => {
                steps.extend(more);
                let checked = |proposal: Proposal| {
                    let decision = check_proposal(&proposal);
                    (proposal, decision)
                };
                let mut lead = checked(lead);
                let mut others: Vec<(Proposal, PolicyDecision)> =
                    others.into_iter().map(checked).collect();
                // A denied candidate leads only when none is allowed.
                if !lead.1.allowed
                    && let Some(position) = others.iter().position(|(_, d)| d.allowed)
                {
                    std::mem::swap(&mut lead, &mut others[position]);
                }
                let (lead, decision) = lead;
                let checked = others.into_iter();
                steps.extend(lead.steps.iter().cloned());
                for item in &lead.evidence {
                    if !evidence.contains(item) {
                        evidence.push(item.clone());
                    }
                }
                steps.push(policy_step(&decision));
                if confidence < self.config.confidence_threshold {
                    rationale = format!(
                        "Confidence {confidence:.2} is below the threshold {:.2}: the fix the rules would propose ({}) is withheld and the incident goes to a human.",
                        self.config.confidence_threshold, lead.summary
                    );
                } else {
                    rationale = lead.rationale.clone();
                    if !why.is_empty() {
                        rationale.push(' ');
                        rationale.push_str(&why);
                    }
                    if !decision.allowed {
                        rationale.push_str(" The fix policy denies this patch, so it is reported and will not be applied.");
                    }
                    let candidate = into_fix(lead, decision);
                    let services = services_selecting(lookup, workload);
                    plan = Some(verification_plan(
                        &candidate,
                        &services,
                        &self.config.shadow,
                    ));
                    if candidate.policy.allowed {
                        alternatives = checked
                            .filter(|(_, decision)| decision.allowed)
                            .map(|(proposal, decision)| into_fix(proposal, decision))
                            .collect();
                        // A shadow verifies at most `shadow.max_candidates` fixes per incident;
                        // candidates past that would never be tried.
                        let keep = (self.config.shadow.max_candidates as usize).saturating_sub(1);
                        if alternatives.len() > keep {
                            steps.push(format!(
                                "{} more fitting fix(es) left out: a shadow verifies at most {} candidates",
                                alternatives.len() - keep,
                                keep + 1
                            ));
                            alternatives.truncate(keep);
                        }
                        if !alternatives.is_empty() {
                            steps.push(format!(
                                "{} more safe fix(es) for the same cause kept as candidates for shadow verification",
                                alternatives.len()
                            ));
                        }
                    }
                    fix = Some(candidate);
                }
            }
            Choice::NoFix {
                reason,
                steps: more,
            } => {
                steps.extend(more);
                rationale = format!("No fix proposed: {reason}.");
            }
        }
        if fix.is_none()
            && confidence < self.config.confidence_threshold
            && !rationale.contains("below the threshold")
        {
            rationale.push_str(&format!(
                " Confidence {confidence:.2} is below the threshold {:.2}; escalated to a human with the evidence gathered.",
                self.config.confidence_threshold
            ));
        }
        Diagnosis {
            category,
            resource: lead.finding.resource.clone(),
            findings,
            rca: Rca {
                category,
                summary: signal.summary.clone(),
                root_cause: signal.root_cause.clone(),
                confidence: (confidence * 100.0).round() / 100.0,
                evidence,
                analysis_steps: steps,
                decision_rationale: rationale,
                backend: self.backend_name().to_owned(),
                llm: None,
            },
            fix,
            alternatives,
            plan,
        }
    }
}

/// The confidence of a diagnosis whose failure came with a rollout, the revision before it
/// running healthy.
const ROLLOUT_CONFIDENCE: f64 = 0.8;

/// Categories a change of the pod template can cause, which a rollback can therefore undo.
fn template_caused(category: Category) -> bool {
    !matches!(
        category,
        Category::NodeNotReady
            | Category::ServiceSelectorMismatch
            | Category::ServicePortMismatch
            | Category::IngressBackendMissing
            | Category::HpaMisconfigured
            | Category::PvcPending
            | Category::NodePressure
            | Category::StorageMisconfigured
            | Category::SecurityRisk
            | Category::WebhookUnavailable
            | Category::PdbMisconfigured
            | Category::NetworkPolicyMisconfigured
    )
}

/// The fixes chosen for one cause, best first, with why the first was chosen over the others;
/// or why there is none.
// Built once per diagnosis and consumed at once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Choice {
    Fix {
        lead: Proposal,
        others: Vec<Proposal>,
        why: String,
        steps: Vec<String>,
    },
    NoFix {
        reason: String,
        steps: Vec<String>,
    },
}

/// Orders the targeted fix, the rollback and the targeted alternatives. A targeted fix of low
/// risk (a value the namespace already holds) leads: it changes only what the evidence shows is
/// wrong and keeps the rest of the new revision. Otherwise the rollback leads, since its
/// template runs healthy in the cluster now. Candidates that would leave the target the same
/// are kept once.
fn choose(
    targeted: fix::Outcome,
    rollback: Option<Result<Proposal, String>>,
    alternatives: Vec<Proposal>,
) -> Choice {
    let mut steps = Vec::new();
    let (rollback, rollback_reason) = match rollback {
        Some(Ok(proposal)) => (Some(proposal), None),
        Some(Err(reason)) => {
            steps.push(format!("no rollback: {reason}"));
            (None, Some(reason))
        }
        None => (None, None),
    };
    let (targeted, targeted_reason) = match targeted {
        fix::Outcome::Proposed(proposal) => (Some(proposal), None),
        fix::Outcome::NoFix {
            reason,
            steps: more,
        } => {
            steps.extend(more);
            (None, Some(reason))
        }
    };
    // What a candidate makes of its target, as a fingerprint: candidates that leave the target
    // the same are one candidate. Computed once per candidate.
    let outcome = |p: &Proposal| -> Option<(ResourceRef, u64)> {
        use std::hash::{Hash, Hasher};
        let result =
            aegis_core::patch::apply(&p.original, PatchType::StrategicMerge, &p.patch).ok()?;
        let text = serde_json::to_string(&aegis_core::patch::normalized(&result)).ok()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hasher);
        Some((p.target.clone(), hasher.finish()))
    };
    let same_result = |a: &Proposal, b: &Proposal| matches!((outcome(a), outcome(b)), (Some(x), Some(y)) if x == y);
    let (mut candidates, why) = match (targeted, rollback) {
        (Some(targeted), Some(rollback)) if same_result(&targeted, &rollback) => {
            let why = format!(
                "The targeted fix ({}) is exactly this rollback.",
                targeted.summary
            );
            (vec![rollback], why)
        }
        (Some(targeted), Some(rollback)) if targeted.risk == Risk::Low => {
            let to = rollback.rollback.as_ref().map_or(0, |(r, _)| r.to_revision);
            let fields = rollback
                .rollback
                .as_ref()
                .map(|(r, _)| r.fields.join(", "))
                .unwrap_or_default();
            let why = format!(
                "This targeted fix was chosen over rolling back to revision {to} because it changes only what the evidence shows is wrong, where the rollback would undo everything the new revision changed ({fields}); the rollback stays a candidate for the shadow."
            );
            (vec![targeted, rollback], why)
        }
        (Some(targeted), Some(rollback)) => {
            let why = format!(
                "The rollback was chosen over the targeted fix ({}) because the revision it returns to runs healthy in this cluster now, while the targeted change is {} risk; the targeted fix stays a candidate for the shadow.",
                targeted.summary,
                targeted.risk.as_str()
            );
            (vec![rollback, targeted], why)
        }
        // Why no rollback was offered is among the steps.
        (Some(targeted), None) => (vec![targeted], String::new()),
        (None, Some(rollback)) => {
            let why = targeted_reason
                .map(|reason| format!("No targeted fix was found: {reason}."))
                .unwrap_or_default();
            (vec![rollback], why)
        }
        (None, None) => {
            let mut reason = targeted_reason.unwrap_or_else(|| "no rule applies".to_owned());
            if let Some(rollback) = rollback_reason {
                reason.push_str(&format!("; and no rollback: {rollback}"));
            }
            return Choice::NoFix { reason, steps };
        }
    };
    let mut seen: Vec<Option<(ResourceRef, u64)>> = candidates.iter().map(outcome).collect();
    for alternative in alternatives {
        let result = outcome(&alternative);
        if result.is_none() || !seen.contains(&result) {
            seen.push(result);
            candidates.push(alternative);
        }
    }
    let mut candidates = candidates.into_iter();
    match candidates.next() {
        Some(lead) => Choice::Fix {
            lead,
            others: candidates.collect(),
            why,
            steps,
        },
        None => Choice::NoFix {
            reason: "no candidate fix was found".to_owned(),
            steps,
        },
    }
}

/// The fix policy's decision on a proposal: a rollback must produce exactly its revision's
/// template; any other fix keeps to the allow-list.
fn check_proposal(proposal: &Proposal) -> PolicyDecision {
    match &proposal.rollback {
        Some((_, template)) => policy::check_rollback(
            proposal.target.kind,
            &proposal.patch,
            &proposal.original,
            template,
        ),
        None => policy::check(
            proposal.target.kind,
            PatchType::StrategicMerge,
            &proposal.patch,
            Some(&proposal.original),
        ),
    }
}

/// The fix policy's decision on a fix against `original`, the target as it is now. A rollback
/// is checked against the template of the revision it names, read from the state; a rollback
/// whose revision is gone is denied.
pub fn check_fix(lookup: &Lookup<'_>, fix: &Fix, original: &serde_json::Value) -> PolicyDecision {
    match &fix.rollback {
        Some(rollback) => match revision::template_of(lookup, &fix.target, &rollback.source) {
            Some(template) => {
                policy::check_rollback(fix.target.kind, &fix.patch, original, &template)
            }
            None => PolicyDecision {
                allowed: false,
                violations: vec![aegis_core::PolicyViolation {
                    rule: "rollback-revision-missing".to_owned(),
                    path: "spec.template".to_owned(),
                    message: format!(
                        "{} of {} is no longer in the cluster, so the rollback cannot be checked",
                        rollback.source, fix.target
                    ),
                }],
            },
        },
        None => policy::check(fix.target.kind, fix.patch_type, &fix.patch, Some(original)),
    }
}

fn into_fix(proposal: Proposal, policy: PolicyDecision) -> Fix {
    Fix {
        summary: proposal.summary,
        target: proposal.target,
        patch_type: PatchType::StrategicMerge,
        patch: proposal.patch,
        inverse_patch: proposal.inverse,
        risk: proposal.risk,
        policy,
        requires_approval: true,
        rollback: proposal.rollback.map(|(rollback, _)| rollback),
    }
}

fn policy_step(decision: &PolicyDecision) -> String {
    if decision.allowed {
        "checked the patch against the fix policy: allowed".to_owned()
    } else {
        let rules: Vec<&str> = decision
            .violations
            .iter()
            .map(|v| v.rule.as_str())
            .collect();
        format!(
            "checked the patch against the fix policy: denied ({})",
            rules.join(", ")
        )
    }
}

/// Services whose selector matches the pods of `workload`.
pub fn services_selecting(lookup: &Lookup<'_>, workload: &ResourceRef) -> Vec<String> {
    let labels = lookup
        .pod_template_labels(workload.namespace_str())
        .iter()
        .find(|(reference, _)| reference == workload)
        .map(|(_, labels)| labels);
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        return Vec::new();
    };
    lookup
        .services_in(workload.namespace_str())
        .iter()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.selector.as_ref())
                .is_some_and(|selector| {
                    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
        })
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests;
