//! Analyzers: what is wrong with pods, workloads, services, nodes, claims, jobs, ingresses,
//! DaemonSets, CronJobs, autoscalers, ConfigMap references, disruption budgets, network
//! policies, admission webhooks and StorageClasses (and, when asked
//! for, security settings and error lines in logs), with the evidence behind each finding and
//! the workload that owns the broken object. They are K8sGPT's analyzers, under K8sGPT's names,
//! without the false alarms its users report.
//!
//! Analyzers read a [`ClusterState`] and never change a cluster. They avoid the classic false
//! positives: node conditions other than `Ready` (Node Problem Detector's), pods that completed,
//! and transient states of pods younger than the grace period.

mod config;
mod controllers;
mod evidence;
mod gateway;
mod logs;
mod network;
mod pod;
mod policy;
pub mod result;
mod security;
mod storage;
mod webhook;
mod workload;

use std::collections::BTreeSet;

use aegis_core::state::StateIndex;
use aegis_core::{Evidence, Finding, ResourceKind, ResourceRef};

pub use controllers::check_schedule;
pub use evidence::{event_evidence, log_evidence};
pub use logs::is_error_line;
pub use storage::is_default as is_default_storage_class;

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

/// An analyzer, named as K8sGPT names it (`k8sgpt analyze --filter NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Analyzer {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Ingress,
    Node,
    PersistentVolumeClaim,
    HorizontalPodAutoscaler,
    ConfigMap,
    PodDisruptionBudget,
    NetworkPolicy,
    ValidatingWebhookConfiguration,
    MutatingWebhookConfiguration,
    GatewayClass,
    Gateway,
    HTTPRoute,
    CustomResource,
    Storage,
    Security,
    Log,
}

impl Analyzer {
    /// Every analyzer, in the order they run.
    pub const ALL: [Self; 24] = [
        Self::Pod,
        Self::Deployment,
        Self::ReplicaSet,
        Self::StatefulSet,
        Self::DaemonSet,
        Self::Job,
        Self::CronJob,
        Self::Service,
        Self::Ingress,
        Self::Node,
        Self::PersistentVolumeClaim,
        Self::HorizontalPodAutoscaler,
        Self::ConfigMap,
        Self::PodDisruptionBudget,
        Self::NetworkPolicy,
        Self::ValidatingWebhookConfiguration,
        Self::MutatingWebhookConfiguration,
        Self::GatewayClass,
        Self::Gateway,
        Self::HTTPRoute,
        Self::CustomResource,
        Self::Storage,
        Self::Security,
        Self::Log,
    ];

    /// The analyzer's name: K8sGPT's, so `--filter` takes the same names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::ReplicaSet => "ReplicaSet",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
            Self::Service => "Service",
            Self::Ingress => "Ingress",
            Self::Node => "Node",
            Self::PersistentVolumeClaim => "PersistentVolumeClaim",
            Self::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Self::ConfigMap => "ConfigMap",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::ValidatingWebhookConfiguration => "ValidatingWebhookConfiguration",
            Self::MutatingWebhookConfiguration => "MutatingWebhookConfiguration",
            Self::GatewayClass => "GatewayClass",
            Self::Gateway => "Gateway",
            Self::HTTPRoute => "HTTPRoute",
            Self::CustomResource => "CustomResource",
            Self::Storage => "Storage",
            Self::Security => "Security",
            Self::Log => "Log",
        }
    }

    /// Whether the analyzer runs without being asked for. Security and Log report on things
    /// that are not failures (a privileged container, an error line in a healthy pod's log),
    /// so, as in K8sGPT, they run only when `--filter` names them.
    pub fn by_default(self) -> bool {
        !matches!(self, Self::Security | Self::Log)
    }

    /// Parses an analyzer name: K8sGPT's (any case), or a kubectl name of the kind it looks at
    /// (`pvc`, `deploy`, `hpa`, `configmaps`).
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(found) = Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
        {
            return Some(found);
        }
        let kind = ResourceKind::from_alias(name)?;
        Self::ALL.into_iter().find(|a| a.name() == kind.as_str())
    }
}

impl std::fmt::Display for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs the default analyzers (or those of `filter`, when given) over the indexed state,
/// reporting only on the workloads of `scope` when one is given. The index is the analysis's own (built
/// once, shared with the rules), never a second one.
pub fn analyze(
    index: &StateIndex<'_>,
    config: &AnalyzerConfig,
    filter: Option<&[Analyzer]>,
    scope: Option<&BTreeSet<ResourceRef>>,
) -> Vec<Detection> {
    let wanted =
        |analyzer: Analyzer| filter.map_or(analyzer.by_default(), |f| f.contains(&analyzer));
    // Pods are most of a state: a large one's are analysed on a core of their own while the
    // other analyzers run here; their detections still come first.
    let (mut detections, mut rest) = if wanted(Analyzer::Pod) {
        aegis_core::state::side_by_side(
            index.state(),
            || {
                let mut found = Vec::new();
                // Those out of scope are skipped before they are looked at.
                pod::analyze(index, config, scope, &mut found);
                found
            },
            || {
                let mut rest = Vec::new();
                others(index, config, &wanted, &mut rest);
                rest
            },
        )
    } else {
        let mut rest = Vec::new();
        others(index, config, &wanted, &mut rest);
        (Vec::new(), rest)
    };
    detections.append(&mut rest);
    if let Some(scope) = scope {
        detections.retain(|d| scope.contains(&d.workload));
    }
    detections
}

/// Every analyzer but the pods', in their order.
fn others(
    index: &StateIndex<'_>,
    config: &AnalyzerConfig,
    wanted: &dyn Fn(Analyzer) -> bool,
    detections: &mut Vec<Detection>,
) {
    if wanted(Analyzer::Deployment) {
        workload::deployments(index, config, detections);
    }
    if wanted(Analyzer::ReplicaSet) {
        workload::replica_sets(index, detections);
    }
    if wanted(Analyzer::StatefulSet) {
        workload::stateful_sets(index, config, detections);
    }
    if wanted(Analyzer::Job) {
        workload::jobs(index, detections);
    }
    if wanted(Analyzer::PersistentVolumeClaim) {
        workload::claims(index, config, detections);
    }
    if wanted(Analyzer::Node) {
        workload::nodes(index, detections);
    }
    if wanted(Analyzer::Service) {
        network::services(index, detections);
    }
    if wanted(Analyzer::Ingress) {
        network::ingresses(index, detections);
    }
    if wanted(Analyzer::DaemonSet) {
        controllers::daemon_sets(index, config, detections);
    }
    if wanted(Analyzer::CronJob) {
        controllers::cron_jobs(index, detections);
    }
    if wanted(Analyzer::HorizontalPodAutoscaler) {
        controllers::autoscalers(index, detections);
    }
    if wanted(Analyzer::ConfigMap) {
        config::config_maps(index, detections);
    }
    if wanted(Analyzer::PodDisruptionBudget) {
        policy::disruption_budgets(index, config, detections);
    }
    if wanted(Analyzer::NetworkPolicy) {
        policy::network_policies(index, detections);
    }
    if wanted(Analyzer::ValidatingWebhookConfiguration) {
        webhook::validating(index, detections);
    }
    if wanted(Analyzer::MutatingWebhookConfiguration) {
        webhook::mutating(index, detections);
    }
    if wanted(Analyzer::GatewayClass) {
        gateway::gateway_classes(index, config, detections);
    }
    if wanted(Analyzer::Gateway) {
        gateway::gateways(index, config, detections);
    }
    if wanted(Analyzer::HTTPRoute) {
        gateway::http_routes(index, config, detections);
    }
    if wanted(Analyzer::CustomResource) {
        gateway::custom_resources(index, config, detections);
    }
    if wanted(Analyzer::Storage) {
        storage::storage(index, detections);
    }
    if wanted(Analyzer::Security) {
        security::security(index, detections);
    }
    if wanted(Analyzer::Log) {
        logs::logs(index, detections);
    }
}

fn detection(
    _index: &StateIndex<'_>,
    analyzer: Analyzer,
    reason: &str,
    message: String,
    resource: ResourceRef,
    workload: ResourceRef,
    evidence: Vec<Evidence>,
) -> Detection {
    Detection {
        finding: Finding {
            analyzer: analyzer.name().to_owned(),
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
mod parity_tests;
#[cfg(test)]
mod tests;
