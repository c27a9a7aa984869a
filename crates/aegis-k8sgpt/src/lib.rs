//! Analyzers: what is wrong with pods, workloads, services, nodes, claims, jobs and ingresses,
//! with the evidence behind each finding and the workload that owns the broken object.
//!
//! Analyzers read a [`ClusterState`] and never change a cluster. They avoid the classic false
//! positives: node conditions other than `Ready` (Node Problem Detector's), pods that completed,
//! and transient states of pods younger than the grace period.

mod evidence;
mod network;
mod pod;
pub mod result;
mod workload;

use std::collections::BTreeSet;

use aegis_core::state::StateIndex;
use aegis_core::{Evidence, Finding, ResourceKind, ResourceRef};

pub use evidence::{event_evidence, log_evidence};

/// Settings of the analyzers.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// Pods younger than this are not reported for transient states.
    pub grace_period_seconds: u64,
    /// Log lines kept as evidence per container log.
    pub log_lines: usize,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            grace_period_seconds: 120,
            log_lines: 12,
        }
    }
}

/// One finding with the workload it belongs to and the evidence gathered for it.
#[derive(Debug, Clone)]
pub struct Detection {
    pub finding: Finding,
    /// The workload that owns the object (the object itself when nothing does).
    pub workload: ResourceRef,
    /// The container the finding is about, for pod findings that concern one.
    pub container: Option<String>,
    pub evidence: Vec<Evidence>,
}

/// The analyzers AEGIS runs, by the kind they look at.
pub const ANALYZERS: [ResourceKind; 9] = [
    ResourceKind::Pod,
    ResourceKind::Deployment,
    ResourceKind::ReplicaSet,
    ResourceKind::StatefulSet,
    ResourceKind::Service,
    ResourceKind::Node,
    ResourceKind::PersistentVolumeClaim,
    ResourceKind::Job,
    ResourceKind::Ingress,
];

/// Runs every analyzer (or those of `filter`, when given) over the indexed state, reporting
/// only on the workloads of `scope` when one is given. The index is the analysis's own (built
/// once, shared with the rules), never a second one.
pub fn analyze(
    index: &StateIndex<'_>,
    config: &AnalyzerConfig,
    filter: Option<&[ResourceKind]>,
    scope: Option<&BTreeSet<ResourceRef>>,
) -> Vec<Detection> {
    let wanted = |kind: ResourceKind| filter.is_none_or(|f| f.contains(&kind));
    let mut detections = Vec::new();
    if wanted(ResourceKind::Pod) {
        // Pods are most of a state: those out of scope are skipped before they are looked at.
        pod::analyze(index, config, scope, &mut detections);
    }
    if wanted(ResourceKind::Deployment) {
        workload::deployments(index, config, &mut detections);
    }
    if wanted(ResourceKind::ReplicaSet) {
        workload::replica_sets(index, &mut detections);
    }
    if wanted(ResourceKind::StatefulSet) {
        workload::stateful_sets(index, config, &mut detections);
    }
    if wanted(ResourceKind::Job) {
        workload::jobs(index, &mut detections);
    }
    if wanted(ResourceKind::PersistentVolumeClaim) {
        workload::claims(index, config, &mut detections);
    }
    if wanted(ResourceKind::Node) {
        workload::nodes(index, &mut detections);
    }
    if wanted(ResourceKind::Service) {
        network::services(index, &mut detections);
    }
    if wanted(ResourceKind::Ingress) {
        network::ingresses(index, &mut detections);
    }
    if let Some(scope) = scope {
        detections.retain(|d| scope.contains(&d.workload));
    }
    detections
}

fn detection(
    _index: &StateIndex<'_>,
    analyzer: ResourceKind,
    reason: &str,
    message: String,
    resource: ResourceRef,
    workload: ResourceRef,
    evidence: Vec<Evidence>,
) -> Detection {
    Detection {
        finding: Finding {
            analyzer: analyzer.as_str().to_owned(),
            reason: reason.to_owned(),
            message,
            resource,
        },
        workload,
        container: None,
        evidence,
    }
}

#[cfg(test)]
mod tests;
