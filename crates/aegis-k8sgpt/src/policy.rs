//! The PodDisruptionBudget and NetworkPolicy analyzers: policies that protect or restrict
//! nothing because their selector matches no workload, and disruption budgets that let no pod
//! be evicted although every pod they cover is healthy (a node drain then waits forever).
//! What K8sGPT reports and is not wrong is left out: a default-deny policy (`podSelector: {}`),
//! a budget that allows no disruption because its pods are unhealthy (their own failure is the
//! incident).

use std::collections::BTreeMap;

use aegis_core::state::{StateIndex, ref_of};
use aegis_core::{EvidenceSource, ResourceKind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::evidence::object_evidence;
use crate::{Analyzer, AnalyzerConfig, Detection, detection};

/// Whether `selector` matches `labels` (matchLabels and matchExpressions; an empty selector
/// matches everything).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let get = |key: &str| labels.and_then(|l| l.get(key));
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v))
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => get(&e.key).is_some(),
                "DoesNotExist" => get(&e.key).is_none(),
                _ => false,
            }
        })
}

fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Whether anything in `namespace` — a pod, or the pod template of a workload, however many
/// replicas it runs now — carries labels `selector` matches.
fn selects_anything(index: &StateIndex<'_>, namespace: &str, selector: &LabelSelector) -> bool {
    let state = index.state();
    let here = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(namespace)
    };
    let template = |t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>| {
        selector_matches(
            selector,
            t.and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        )
    };
    state
        .pods
        .iter()
        .any(|p| here(&p.metadata) && selector_matches(selector, p.metadata.labels.as_ref()))
        || state
            .deployments
            .iter()
            .any(|d| here(&d.metadata) && template(d.spec.as_ref().map(|s| &s.template)))
        || state
            .stateful_sets
            .iter()
            .any(|d| here(&d.metadata) && template(d.spec.as_ref().map(|s| &s.template)))
        || state
            .daemon_sets
            .iter()
            .any(|d| here(&d.metadata) && template(d.spec.as_ref().map(|s| &s.template)))
        || state.cron_jobs.iter().any(|c| {
            here(&c.metadata)
                && template(
                    c.spec
                        .as_ref()
                        .and_then(|s| s.job_template.spec.as_ref())
                        .map(|j| &j.template),
                )
        })
        || state
            .jobs
            .iter()
            .any(|j| here(&j.metadata) && template(j.spec.as_ref().map(|s| &s.template)))
}

fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.extend(selector.match_expressions.iter().flatten().map(|e| {
        format!(
            "{} {} ({})",
            e.key,
            e.operator,
            e.values.as_deref().unwrap_or_default().join(",")
        )
    }));
    parts.join(",")
}

/// Budgets that select nothing, and budgets that allow no eviction of healthy pods.
pub fn disruption_budgets(
    index: &StateIndex<'_>,
    config: &AnalyzerConfig,
    out: &mut Vec<Detection>,
) {
    let state = index.state();
    if !state.has_read("Pod") {
        return;
    }
    for budget in &state.pod_disruption_budgets {
        let resource = ref_of(ResourceKind::PodDisruptionBudget, &budget.metadata);
        let namespace = resource.namespace_str();
        let spec = budget.spec.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        if !selects_anything(index, namespace, &selector) {
            out.push(detection(
                index,
                Analyzer::PodDisruptionBudget,
                "SelectsNoPods",
                format!(
                    "disruption budget {} selects no pod or workload ({}): it protects nothing",
                    resource.name,
                    selector_text(&selector)
                ),
                resource.clone(),
                resource.clone(),
                vec![object_evidence(
                    EvidenceSource::Spec,
                    &resource,
                    "spec.selector",
                    selector_text(&selector),
                )],
            ));
            continue;
        }
        let Some(status) = budget.status.as_ref() else {
            continue;
        };
        let settled = state.age_seconds(&budget.metadata) >= config.grace_period_seconds;
        if settled
            && status.expected_pods > 0
            && status.disruptions_allowed == 0
            && status.current_healthy >= status.expected_pods
        {
            let rule = spec
                .min_available
                .as_ref()
                .map(|v| format!("minAvailable {}", quantity(v)))
                .or_else(|| {
                    spec.max_unavailable
                        .as_ref()
                        .map(|v| format!("maxUnavailable {}", quantity(v)))
                })
                .unwrap_or_default();
            out.push(detection(
                index,
                Analyzer::PodDisruptionBudget,
                "BlocksEviction",
                format!(
                    "disruption budget {} allows no eviction although all {} of its pods are healthy ({rule}): a node drain waits on it forever",
                    resource.name, status.expected_pods
                ),
                resource.clone(),
                resource.clone(),
                vec![
                    object_evidence(EvidenceSource::Spec, &resource, "spec", rule),
                    object_evidence(
                        EvidenceSource::Status,
                        &resource,
                        "status",
                        format!(
                            "disruptionsAllowed 0, currentHealthy {}, desiredHealthy {}, expectedPods {}",
                            status.current_healthy, status.desired_healthy, status.expected_pods
                        ),
                    ),
                ],
            ));
        }
    }
}

fn quantity(value: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match value {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

/// Policies whose pod selector (not empty: `{}` is the default-deny pattern, and selects every
/// pod) matches no pod and no workload's pod template in their namespace.
pub fn network_policies(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let state = index.state();
    if !state.has_read("Pod") {
        return;
    }
    for policy in &state.network_policies {
        let resource = ref_of(ResourceKind::NetworkPolicy, &policy.metadata);
        let namespace = resource.namespace_str();
        let selector = policy
            .spec
            .as_ref()
            .and_then(|s| s.pod_selector.clone())
            .unwrap_or_default();
        if is_empty(&selector) || selects_anything(index, namespace, &selector) {
            continue;
        }
        out.push(detection(
            index,
            Analyzer::NetworkPolicy,
            "SelectsNoPods",
            format!(
                "network policy {} selects no pod or workload ({}): the traffic it was meant to restrict is not restricted",
                resource.name,
                selector_text(&selector)
            ),
            resource.clone(),
            resource.clone(),
            vec![object_evidence(
                EvidenceSource::Spec,
                &resource,
                "spec.podSelector",
                selector_text(&selector),
            )],
        ));
    }
}
