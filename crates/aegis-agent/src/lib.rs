//! The AEGIS pipeline, composed from the other crates:
//! detect (analyzers) → gather evidence → diagnose (rules) → propose fix → check policy, and
//! optionally consult the LLM on each incident, cross-checking its answer against the rules.
//!
//! [`verify_incidents`] then proves each proposed fix in a shadow (`aegis-shadow`): the baseline
//! must reproduce the incident and the candidate pass the plan's checks. Approval and production
//! changes join this pipeline in a later stage.

pub mod change;
mod scope;
mod selector;
pub mod store;
mod verify;

use std::collections::{BTreeMap, BTreeSet};

use aegis_core::incident::incident_id;
use aegis_core::settings::Settings;
use aegis_core::verification::{NO_FIX, NOT_VERIFIED};
use aegis_core::{
    AnalysisReport, ClusterState, Evidence, Incident, ResourceKind, ResourceRef, SourceKind,
    VERSION, Verification, VerificationResult,
};
use aegis_k8sgpt::{AnalyzerConfig, Detection};
use aegis_llm::Consultant;
use aegis_rules::{Lookup, RulesConfig, RulesEngine};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use aegis_k8sgpt::Analyzer;
pub use scope::{ChangeScope, change_scope};
pub use selector::{LabelSelector, SelectorError};
pub use verify::{
    ManualFixError, SHADOW_NOT_RUN, VerifyOptions, VerifyProgress, manual_fix, plan_for,
    verify_incidents,
};

/// Why an analysis could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} \"{name}\" not found{}", namespace.as_ref().map(|n| format!(" in namespace \"{n}\"")).unwrap_or_default())]
    NotFound {
        kind: ResourceKind,
        namespace: Option<String>,
        name: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to analyze.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeRequest {
    /// One object and what belongs to it; everything when `None`.
    pub target: Option<ResourceRef>,
    /// Only these analyzers (the default ones when `None`).
    pub filter: Option<Vec<Analyzer>>,
    /// Only objects whose labels match.
    pub selector: Option<LabelSelector>,
    /// Only the incidents of these workloads (see [`change_scope`]); the analysis still reads the
    /// whole state, so what it proposes for them is what a whole analysis would.
    pub scope: Option<BTreeSet<ResourceRef>>,
    /// Findings reported from outside the analyzers (K8sGPT's `Result`s and CLI output), each
    /// with its workload; they go through the same rules as the analyzers' own, attributed to
    /// the workload the analyzers name for the same object where the state holds it
    /// ([`aegis_k8sgpt::result::attributed`]), so they join its diagnosis.
    pub external: Vec<Detection>,
}

/// The pipeline with its settings.
#[derive(Debug, Clone)]
pub struct Agent {
    analyzers: AnalyzerConfig,
    rules: RulesEngine,
}

impl Agent {
    pub fn new(settings: &Settings) -> Self {
        Self {
            analyzers: AnalyzerConfig {
                grace_period_seconds: settings.agent.grace_period_seconds,
                ..AnalyzerConfig::default()
            },
            rules: RulesEngine::new(RulesConfig {
                confidence_threshold: settings.agent.confidence_threshold,
                shadow: settings.shadow.clone(),
            }),
        }
    }

    /// Analyzes a state: one incident per (workload, category).
    pub fn analyze(
        &self,
        state: &ClusterState,
        source: SourceKind,
        request: &AnalyzeRequest,
    ) -> Result<AnalysisReport> {
        let lookup = Lookup::new(state);
        let incidents = self.incidents(state, &lookup, request, Gather::No)?;
        Ok(report(
            source,
            incidents.into_iter().map(|(i, _)| i).collect(),
        ))
    }

    /// Analyzes a state as [`Agent::analyze`] does, then consults the LLM on every incident
    /// (one call each, in turn) and merges its answers. Also returns what the calls cost.
    pub async fn analyze_with_llm(
        &self,
        state: &ClusterState,
        source: SourceKind,
        request: &AnalyzeRequest,
        consultant: &Consultant,
    ) -> Result<(AnalysisReport, LlmUsage)> {
        self.analyze_consulting(state, source, request, consultant, None)
            .await
    }

    /// Like [`Agent::analyze_with_llm`], but only the incidents `wanted` says are consulted
    /// (at most `max_incidents` of them), and every incident keeps the id the rules gave it,
    /// even when the model's diagnosis is adopted (the operator names its `Incident`s by those
    /// ids, and the next rules-only pass must find the same one).
    pub async fn consult_where(
        &self,
        state: &ClusterState,
        source: SourceKind,
        request: &AnalyzeRequest,
        consultant: &Consultant,
        wanted: &(dyn Fn(&Incident) -> bool + Sync),
    ) -> Result<(AnalysisReport, LlmUsage)> {
        self.analyze_consulting(state, source, request, consultant, Some(wanted))
            .await
    }

    async fn analyze_consulting(
        &self,
        state: &ClusterState,
        source: SourceKind,
        request: &AnalyzeRequest,
        consultant: &Consultant,
        wanted: Option<&(dyn Fn(&Incident) -> bool + Sync)>,
    ) -> Result<(AnalysisReport, LlmUsage)> {
        let lookup = Lookup::new(state);
        let mut usage = LlmUsage::default();
        let mut incidents: Vec<Incident> = Vec::new();
        let all = self.incidents(state, &lookup, request, Gather::Evidence)?;
        // Which incidents get a call: those the rules could not diagnose, then the least
        // confident, up to the limit.
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| {
                let rca = &all[i].0.rca;
                (
                    rca.category != aegis_core::Category::Unknown,
                    rca.confidence,
                )
            };
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        });
        let chosen: std::collections::BTreeSet<usize> = order
            .into_iter()
            .filter(|&i| wanted.is_none_or(|wanted| wanted(&all[i].0)))
            .take(consultant.max_incidents)
            .collect();
        usage.skipped = (all.len() - chosen.len()) as u64;
        for (position, (mut incident, evidence)) in all.into_iter().enumerate() {
            if !chosen.contains(&position) {
                incidents.push(incident);
                continue;
            }
            let rules_id = incident.id.clone();
            let spent = consultant.consult(&mut incident, &evidence, &lookup).await;
            if wanted.is_some() {
                incident.id = rules_id;
            }
            usage.calls += 1;
            usage.prompt_tokens += spent.prompt_tokens;
            usage.completion_tokens += spent.completion_tokens;
            usage.latency_ms += spent.latency_ms;
            if incident.rca.llm.as_ref().is_some_and(|o| {
                matches!(
                    o.verdict,
                    aegis_core::LlmVerdict::Failed | aegis_core::LlmVerdict::Rejected
                )
            }) {
                usage.unused += 1;
            }
            incidents.push(incident);
        }
        // An adopted diagnosis may name a category the rules already gave this workload: the
        // rules' incident keeps the id, and notes the model's agreement.
        let adopted = |i: &Incident| {
            i.rca
                .llm
                .as_ref()
                .is_some_and(|o| o.verdict == aegis_core::LlmVerdict::Adopted)
        };
        let diagnosed: std::collections::BTreeSet<String> = incidents
            .iter()
            .filter(|i| !adopted(i))
            .map(|i| i.id.clone())
            .collect();
        let mut notes: Vec<(String, String)> = Vec::new();
        incidents.retain(|i| {
            let duplicate = adopted(i) && diagnosed.contains(&i.id);
            if duplicate {
                notes.push((
                    i.id.clone(),
                    format!(
                        "{} also attributes {} to this cause",
                        i.rca.backend, i.resource
                    ),
                ));
            }
            !duplicate
        });
        for (id, note) in notes {
            if let Some(existing) = incidents.iter_mut().find(|i| i.id == id) {
                existing.rca.analysis_steps.push(note);
            }
        }
        Ok((report(source, incidents), usage))
    }

    /// The incidents of a state, each with every piece of evidence the analyzers gathered for
    /// its workload when `gather` asks for it (the LLM's prompt is built from it).
    fn incidents<'a>(
        &self,
        state: &'a ClusterState,
        lookup: &Lookup<'a>,
        request: &AnalyzeRequest,
        gather: Gather,
    ) -> Result<Vec<(Incident, Vec<Evidence>)>> {
        if let Some(target) = &request.target
            && !state.contains(target.kind, target.namespace_str(), &target.name)
        {
            return Err(Error::NotFound {
                kind: target.kind,
                namespace: target.namespace.clone(),
                name: target.name.clone(),
            });
        }
        let scope = request.scope.as_ref();
        let mut detections = aegis_k8sgpt::analyze(
            lookup.index(),
            &self.analyzers,
            request.filter.as_deref(),
            scope,
        );
        detections.extend(
            request
                .external
                .iter()
                .map(|d| {
                    let mut d = d.clone();
                    if let Some(workload) =
                        aegis_k8sgpt::result::attributed(lookup.index(), &d.finding.resource)
                    {
                        d.workload = workload;
                    }
                    d
                })
                .filter(|d| scope.is_none_or(|s| s.contains(&d.workload))),
        );
        tracing::debug!(detections = detections.len(), "analyzers done");
        let mut by_workload: BTreeMap<&ResourceRef, Vec<&Detection>> = BTreeMap::new();
        for detection in &detections {
            if let Some(selector) = &request.selector
                && !selector.matches(labels_of(lookup, state, &detection.finding.resource))
            {
                continue;
            }
            by_workload
                .entry(&detection.workload)
                .or_default()
                .push(detection);
        }
        // Each workload is diagnosed on its own: a large state's workloads are shared out
        // over every core, in contiguous runs so the incidents keep their order.
        let by_workload: Vec<(&ResourceRef, Vec<&Detection>)> = by_workload.into_iter().collect();
        let diagnose = |runs: &[(&ResourceRef, Vec<&Detection>)]| {
            let mut incidents = Vec::new();
            for (workload, detections) in runs {
                self.workload_incidents(
                    lookup,
                    request,
                    workload,
                    detections,
                    gather,
                    &mut incidents,
                );
            }
            incidents
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(by_workload.len().div_ceil(64))
            .max(1);
        if workers == 1 {
            return Ok(diagnose(&by_workload));
        }
        let share = by_workload.len().div_ceil(workers);
        let mut chunks = by_workload.chunks(share);
        let first = chunks.next().unwrap_or_default();
        let incidents = std::thread::scope(|threads| {
            let handles: Vec<_> = chunks
                .map(|runs| threads.spawn(move || diagnose(runs)))
                .collect();
            let mut incidents = vec![diagnose(first)];
            // A diagnosis that panics panics the analysis, as it would on one thread.
            incidents.extend(handles.into_iter().map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }));
            incidents
        });
        Ok(incidents.into_iter().flatten().collect())
    }

    /// The incidents of one workload's detections, pushed onto `out`.
    fn workload_incidents(
        &self,
        lookup: &Lookup<'_>,
        request: &AnalyzeRequest,
        workload: &ResourceRef,
        detections: &[&Detection],
        gather: Gather,
        out: &mut Vec<(Incident, Vec<Evidence>)>,
    ) {
        let mut gathered: Vec<Evidence> = Vec::new();
        for detection in detections.iter().filter(|_| gather == Gather::Evidence) {
            for item in &detection.evidence {
                if !gathered.contains(item) {
                    gathered.push(item.clone());
                }
            }
        }
        for diagnosis in self.rules.diagnose(lookup, workload, detections) {
            let incident = Incident {
                id: incident_id(workload, diagnosis.category),
                resource: diagnosis.resource,
                workload: workload.clone(),
                findings: diagnosis.findings,
                rca: diagnosis.rca,
                verification: Verification {
                    result: VerificationResult::skipped(if diagnosis.fix.is_some() {
                        NOT_VERIFIED
                    } else {
                        NO_FIX
                    }),
                    plan: diagnosis.plan,
                },
                fix: diagnosis.fix,
                alternative_fixes: diagnosis.alternatives,
            };
            if request
                .target
                .as_ref()
                .is_none_or(|t| concerns(&incident, t))
            {
                out.push((incident, gathered.clone()));
            }
        }
    }
}

/// Whether an analysis keeps, beside each incident, the evidence of its workload's findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gather {
    No,
    Evidence,
}

/// What the LLM calls of one analysis cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmUsage {
    pub calls: u64,
    /// Calls whose answer was rejected or that failed.
    pub unused: u64,
    /// Incidents not consulted on, past `llm.max_incidents`.
    pub skipped: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
}

fn report(source: SourceKind, incidents: Vec<Incident>) -> AnalysisReport {
    AnalysisReport {
        aegis_version: VERSION.to_owned(),
        source,
        incidents,
    }
}

/// Whether an incident is about `target`: its workload, or one of its findings' objects.
fn concerns(incident: &Incident, target: &ResourceRef) -> bool {
    &incident.workload == target
        || &incident.resource == target
        || incident.findings.iter().any(|f| &f.resource == target)
}

fn labels_of<'a>(
    lookup: &Lookup<'a>,
    state: &'a ClusterState,
    resource: &ResourceRef,
) -> Option<&'a BTreeMap<String, String>> {
    let namespace = resource.namespace_str();
    let matches = |meta: &&ObjectMeta| {
        meta.name.as_deref() == Some(resource.name.as_str())
            && (!resource.kind.is_namespaced() || meta.namespace.as_deref() == Some(namespace))
    };
    let meta = match resource.kind {
        ResourceKind::Pod => lookup.pod(namespace, &resource.name).map(|p| &p.metadata),
        ResourceKind::Deployment => state.deployments.iter().map(|o| &o.metadata).find(matches),
        ResourceKind::ReplicaSet => state.replica_sets.iter().map(|o| &o.metadata).find(matches),
        ResourceKind::StatefulSet => state
            .stateful_sets
            .iter()
            .map(|o| &o.metadata)
            .find(matches),
        ResourceKind::Job => state.jobs.iter().map(|o| &o.metadata).find(matches),
        ResourceKind::Service => state.services.iter().map(|o| &o.metadata).find(matches),
        ResourceKind::Node => state.nodes.iter().map(|o| &o.metadata).find(matches),
        ResourceKind::PersistentVolumeClaim => state
            .persistent_volume_claims
            .iter()
            .map(|o| &o.metadata)
            .find(matches),
        ResourceKind::Ingress => state.ingresses.iter().map(|o| &o.metadata).find(matches),
        _ => None,
    };
    meta.and_then(|m| m.labels.as_ref())
}

#[cfg(test)]
mod tests;
