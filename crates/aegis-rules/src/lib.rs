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
mod text;

use std::collections::BTreeMap;

use aegis_core::policy::{self, PolicyDecision};
use aegis_core::settings::ShadowSettings;
use aegis_core::{
    Category, ClusterState, Evidence, Finding, Fix, PatchType, Rca, ResourceKind, ResourceRef,
    VerificationPlan,
};
use aegis_k8sgpt::Detection;

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
        let confidence = signal.confidence;
        let mut rationale;
        let mut fix = None;
        let mut plan = None;
        let mut alternatives = Vec::new();
        match fix::propose(lookup, &signal.cause, workload) {
            fix::Outcome::Proposed(proposal) => {
                steps.extend(proposal.steps.iter().cloned());
                for item in &proposal.evidence {
                    if !evidence.contains(item) {
                        evidence.push(item.clone());
                    }
                }
                let decision = policy::check(
                    proposal.target.kind,
                    PatchType::StrategicMerge,
                    &proposal.patch,
                    Some(&proposal.original),
                );
                steps.push(policy_step(&decision));
                if confidence < self.config.confidence_threshold {
                    rationale = format!(
                        "Confidence {confidence:.2} is below the threshold {:.2}: the fix the rules would propose ({}) is withheld and the incident goes to a human.",
                        self.config.confidence_threshold, proposal.summary
                    );
                } else {
                    rationale = proposal.rationale.clone();
                    if !decision.allowed {
                        rationale.push_str(" The fix policy denies this patch, so it is reported and will not be applied.");
                    }
                    let candidate = Fix {
                        summary: proposal.summary,
                        target: proposal.target,
                        patch_type: PatchType::StrategicMerge,
                        patch: proposal.patch,
                        inverse_patch: proposal.inverse,
                        risk: proposal.risk,
                        policy: decision,
                        requires_approval: true,
                    };
                    let services = services_selecting(lookup, workload);
                    plan = Some(verification_plan(
                        &candidate,
                        &services,
                        &self.config.shadow,
                    ));
                    if decision_allowed(&candidate) {
                        alternatives = fix::alternatives(lookup, &signal.cause, workload)
                            .into_iter()
                            .map(|other| {
                                let policy = policy::check(
                                    other.target.kind,
                                    PatchType::StrategicMerge,
                                    &other.patch,
                                    Some(&other.original),
                                );
                                Fix {
                                    summary: other.summary,
                                    target: other.target,
                                    patch_type: PatchType::StrategicMerge,
                                    patch: other.patch,
                                    inverse_patch: other.inverse,
                                    risk: other.risk,
                                    policy,
                                    requires_approval: true,
                                }
                            })
                            .filter(decision_allowed)
                            .collect();
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
            fix::Outcome::NoFix {
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

fn decision_allowed(fix: &Fix) -> bool {
    fix.policy.allowed
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
    let state: &ClusterState = lookup.index().state();
    let labels = lookup
        .pod_template_labels(workload.namespace_str())
        .iter()
        .find(|(reference, _)| reference == workload)
        .map(|(_, labels)| labels);
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        return Vec::new();
    };
    state
        .services
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == workload.namespace.as_deref())
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
