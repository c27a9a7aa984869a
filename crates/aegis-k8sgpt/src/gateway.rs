//! Analyzers of the Gateway API (GatewayClass, Gateway, HTTPRoute) and of any custom resource's
//! status conditions.
//!
//! K8sGPT's Gateway analyzers trip over the API's normal states, and these do not:
//! - a condition still `Unknown` because no controller has looked yet (the CRD's default
//!   "Waiting for controller") is reported only once the object has outlived the grace period;
//! - a condition computed for an older generation (`observedGeneration` behind
//!   `metadata.generation`) is stale, and says nothing of the object as it is;
//! - a GatewayClass is judged by its `Accepted` condition wherever it is in the list, not by
//!   whichever condition comes first;
//! - an HTTPRoute's parent is a Gateway only when its `kind` and `group` say so (a GAMMA route's
//!   parent is a Service), in the namespace the reference names; a listener is matched by the
//!   reference's `sectionName`; a namespace selector is matched against the route's
//!   *namespace's* labels;
//! - a backend is a Service only when its `kind` and `group` say so, in the namespace it names.
//!
//! Kinds the source did not read are never reported missing, nor objects of another namespace
//! when the state holds none of that namespace's (a view of one namespace).

use std::collections::{BTreeMap, HashMap};

use aegis_core::state::{CustomCondition, CustomObject, StateIndex};
use aegis_core::{Evidence, EvidenceSource, ResourceRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::evidence::object_evidence;
use crate::policy::selector_matches;
use crate::{Analyzer, AnalyzerConfig, Detection, detection};

/// The Gateway API's group.
const GROUP: &str = "gateway.networking.k8s.io";

/// The Gateway API objects of `kind`.
fn of_kind<'a>(index: &StateIndex<'a>, kind: &'a str) -> impl Iterator<Item = &'a CustomObject> {
    index
        .state()
        .custom_objects
        .iter()
        .filter(move |o| o.group() == GROUP && o.kind == kind)
}

/// Why a condition says an object does not work, when it does: `False` where `True` is wanted
/// (`True` where `False` is), or still `Unknown` after the grace period; never a condition
/// computed for an older generation.
fn failing(
    index: &StateIndex<'_>,
    config: &AnalyzerConfig,
    object: &CustomObject,
    condition: &CustomCondition<'_>,
    healthy: &str,
) -> bool {
    let stale = condition
        .observed_generation
        .zip(object.metadata.generation)
        .is_some_and(|(observed, current)| observed < current);
    if stale || condition.status == healthy {
        return false;
    }
    if condition.status == "Unknown" {
        return index.state().age_seconds(&object.metadata) > config.grace_period_seconds;
    }
    true
}

/// A condition as evidence.
fn condition_evidence(resource: &ResourceRef, field: &str, c: &CustomCondition<'_>) -> Evidence {
    object_evidence(
        EvidenceSource::Status,
        resource,
        field,
        format!("{}={} ({}): {}", c.type_, c.status, c.reason, c.message),
    )
}

/// What a failing condition says, in a sentence.
fn said(c: &CustomCondition<'_>) -> String {
    let reason = if c.reason.is_empty() {
        String::new()
    } else {
        format!(", reason {}", c.reason)
    };
    let message = if c.message.is_empty() {
        String::new()
    } else {
        format!(": {}", c.message)
    };
    format!("{}={}{reason}{message}", c.type_, c.status)
}

/// A detection about `resource` (its own workload) resting on a failing condition.
fn condition_detection(
    index: &StateIndex<'_>,
    analyzer: Analyzer,
    reason: &str,
    message: String,
    resource: &ResourceRef,
    field: &str,
    condition: &CustomCondition<'_>,
) -> Detection {
    detection(
        index,
        analyzer,
        reason,
        message,
        resource.clone(),
        resource.clone(),
        vec![condition_evidence(resource, field, condition)],
    )
}

/// GatewayClasses no controller has accepted.
pub fn gateway_classes(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    for class in of_kind(index, "GatewayClass") {
        let resource = class.reference();
        let controller = class.spec["controllerName"].as_str().unwrap_or_default();
        for condition in class.conditions() {
            if condition.type_ == "Accepted" && failing(index, config, class, &condition, "True") {
                out.push(condition_detection(
                    index,
                    Analyzer::GatewayClass,
                    "NotAccepted",
                    format!(
                        "GatewayClass {} (controller {controller}) is not accepted: {}",
                        resource.name,
                        said(&condition)
                    ),
                    &resource,
                    "status.conditions",
                    &condition,
                ));
            }
        }
    }
}

/// Gateways whose class does not exist, or that are not accepted or not programmed.
pub fn gateways(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    let state = index.state();
    let classes: Vec<&str> = of_kind(index, "GatewayClass")
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    for gateway in of_kind(index, "Gateway") {
        let resource = gateway.reference();
        let class = gateway.spec["gatewayClassName"]
            .as_str()
            .unwrap_or_default();
        if state.has_read("GatewayClass") && !class.is_empty() && !classes.contains(&class) {
            out.push(detection(
                index,
                Analyzer::Gateway,
                "GatewayClassMissing",
                format!(
                    "Gateway {} uses GatewayClass {class}, which does not exist",
                    resource.name
                ),
                resource.clone(),
                resource.clone(),
                vec![object_evidence(
                    EvidenceSource::Spec,
                    &resource,
                    "spec.gatewayClassName",
                    class,
                )],
            ));
            continue;
        }
        for condition in gateway.conditions() {
            if matches!(condition.type_, "Accepted" | "Programmed")
                && failing(index, config, gateway, &condition, "True")
            {
                out.push(condition_detection(
                    index,
                    Analyzer::Gateway,
                    if condition.type_ == "Accepted" {
                        "NotAccepted"
                    } else {
                        "NotProgrammed"
                    },
                    format!("Gateway {} has {}", resource.name, said(&condition)),
                    &resource,
                    "status.conditions",
                    &condition,
                ));
            }
        }
    }
}

/// The kind and group a Gateway API reference names, with the API's defaults.
fn kind_of<'a>(
    reference: &'a Value,
    default_kind: &'a str,
    default_group: &'a str,
) -> (&'a str, &'a str) {
    (
        reference["kind"].as_str().unwrap_or(default_kind),
        reference["group"].as_str().unwrap_or(default_group),
    )
}

/// HTTPRoutes whose parent Gateway or backend Service does not exist, that a listener of their
/// Gateway does not admit, or that their Gateway's controller rejected.
pub fn http_routes(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    let state = index.state();
    let gateways: HashMap<(&str, &str), &CustomObject> = of_kind(index, "Gateway")
        .map(|g| {
            (
                (
                    g.metadata.namespace.as_deref().unwrap_or_default(),
                    g.metadata.name.as_deref().unwrap_or_default(),
                ),
                g,
            )
        })
        .collect();
    let namespace_labels: HashMap<&str, &BTreeMap<String, String>> = state
        .namespaces
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.metadata.labels.as_ref()?)))
        .collect();
    let no_labels = BTreeMap::new();
    for route in of_kind(index, "HTTPRoute") {
        let resource = route.reference();
        let namespace = resource.namespace_str();
        let mut found = |reason: &str, message: String, evidence: Vec<Evidence>| {
            out.push(detection(
                index,
                Analyzer::HTTPRoute,
                reason,
                message,
                resource.clone(),
                resource.clone(),
                evidence,
            ));
        };
        for (i, parent) in route.spec["parentRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let (kind, group) = kind_of(parent, "Gateway", GROUP);
            if kind != "Gateway" || group != GROUP {
                continue;
            }
            let name = parent["name"].as_str().unwrap_or_default();
            let parent_namespace = parent["namespace"].as_str().unwrap_or(namespace);
            let field = format!("spec.parentRefs[{i}]");
            let Some(gateway) = gateways.get(&(parent_namespace, name)) else {
                // Another namespace's Gateways are known only if the state holds some of them
                // (a view of one namespace does not).
                let known = parent_namespace == namespace
                    || gateways.keys().any(|(ns, _)| *ns == parent_namespace);
                if state.has_read("Gateway") && known {
                    found(
                        "GatewayMissing",
                        format!(
                            "HTTPRoute {} is attached to Gateway {parent_namespace}/{name}, which does not exist",
                            resource.name
                        ),
                        vec![object_evidence(
                            EvidenceSource::Spec,
                            &resource,
                            &field,
                            format!("{parent_namespace}/{name}"),
                        )],
                    );
                }
                continue;
            };
            let section = parent["sectionName"].as_str();
            let listeners: Vec<&Value> = gateway.spec["listeners"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| section.is_none_or(|s| l["name"].as_str() == Some(s)))
                .collect();
            let labels = namespace_labels
                .get(namespace)
                .copied()
                .unwrap_or(&no_labels);
            let admitted = listeners.is_empty()
                || listeners.iter().any(|l| {
                    admits(
                        &l["allowedRoutes"]["namespaces"],
                        namespace,
                        parent_namespace,
                        labels,
                    )
                });
            if !admitted && state.has_read("Namespace") {
                found(
                    "NotAllowedByListener",
                    format!(
                        "HTTPRoute {} in namespace {namespace} is not admitted by any listener{} of Gateway {parent_namespace}/{name} (allowedRoutes.namespaces)",
                        resource.name,
                        section.map(|s| format!(" named {s}")).unwrap_or_default()
                    ),
                    vec![object_evidence(
                        EvidenceSource::Spec,
                        &gateway.reference(),
                        "spec.listeners[].allowedRoutes.namespaces",
                        listeners
                            .iter()
                            .map(|l| l["allowedRoutes"]["namespaces"].to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    )],
                );
            }
        }
        for (i, parent) in route.status["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for condition in CustomObject::conditions_at(&parent["conditions"]) {
                if matches!(condition.type_, "Accepted" | "ResolvedRefs")
                    && failing(index, config, route, &condition, "True")
                {
                    found(
                        if condition.type_ == "Accepted" {
                            "NotAccepted"
                        } else {
                            "RefsNotResolved"
                        },
                        format!(
                            "HTTPRoute {} has {} on parent {}",
                            resource.name,
                            said(&condition),
                            parent["parentRef"]["name"].as_str().unwrap_or_default()
                        ),
                        vec![condition_evidence(
                            &resource,
                            &format!("status.parents[{i}].conditions"),
                            &condition,
                        )],
                    );
                }
            }
        }
        if !state.has_read("Service") {
            continue;
        }
        for (r, rule) in route.spec["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (b, backend) in rule["backendRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let (kind, group) = kind_of(backend, "Service", "");
                if kind != "Service" || !group.is_empty() {
                    continue;
                }
                let name = backend["name"].as_str().unwrap_or_default();
                let backend_namespace = backend["namespace"].as_str().unwrap_or(namespace);
                let field = format!("spec.rules[{r}].backendRefs[{b}]");
                let service = state.services.iter().find(|s| {
                    s.metadata.namespace.as_deref() == Some(backend_namespace)
                        && s.metadata.name.as_deref() == Some(name)
                });
                let known = backend_namespace == namespace
                    || state
                        .services
                        .iter()
                        .any(|s| s.metadata.namespace.as_deref() == Some(backend_namespace));
                let Some(service) = service else {
                    if !known {
                        continue;
                    }
                    found(
                        "BackendServiceMissing",
                        format!(
                            "HTTPRoute {} sends traffic to Service {backend_namespace}/{name}, which does not exist",
                            resource.name
                        ),
                        vec![object_evidence(
                            EvidenceSource::Spec,
                            &resource,
                            &field,
                            format!("{backend_namespace}/{name}"),
                        )],
                    );
                    continue;
                };
                let Some(port) = backend["port"].as_i64() else {
                    continue;
                };
                let ports: Vec<i64> = service
                    .spec
                    .iter()
                    .flat_map(|s| s.ports.iter().flatten())
                    .map(|p| i64::from(p.port))
                    .collect();
                if !ports.contains(&port) {
                    found(
                        "BackendPortMissing",
                        format!(
                            "HTTPRoute {} sends traffic to port {port} of Service {backend_namespace}/{name}, which serves {}",
                            resource.name,
                            ports
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        vec![object_evidence(
                            EvidenceSource::Spec,
                            &resource,
                            &format!("{field}.port"),
                            port.to_string(),
                        )],
                    );
                }
            }
        }
    }
}

/// Whether a listener's `allowedRoutes.namespaces` admits a route in `namespace` (labelled
/// `labels`) to its Gateway in `gateway_namespace`. The API's default is `Same`.
fn admits(
    allowed: &Value,
    namespace: &str,
    gateway_namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    match allowed["from"].as_str().unwrap_or("Same") {
        "Same" => namespace == gateway_namespace,
        "Selector" => match &allowed["selector"] {
            // No selector selects every namespace.
            Value::Null => true,
            selector => serde_json::from_value::<LabelSelector>(selector.clone())
                .is_ok_and(|selector| selector_matches(&selector, Some(labels))),
        },
        // `All`, or a value this version does not know (never claim the route is refused).
        _ => true,
    }
}

/// Condition types that say an object works when `True`, and those that say it does not.
const HEALTHY_WHEN_TRUE: [&str; 3] = ["Ready", "Available", "Healthy"];
const UNHEALTHY_WHEN_TRUE: [&str; 3] = ["Degraded", "Stalled", "Failed"];

/// Custom resources (other than the Gateway API's kinds, which have their own analyzers) whose
/// status conditions say they do not work: `Ready`, `Available` or `Healthy` not `True`, or
/// `Degraded`, `Stalled` or `Failed` `True` — for the current generation, and `Unknown` only
/// past the grace period. An operator-managed database whose `Ready` is `False` is an incident.
pub fn custom_resources(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    for object in &index.state().custom_objects {
        if object.group() == GROUP {
            continue;
        }
        let resource = object.reference();
        let failures: Vec<CustomCondition<'_>> = object
            .conditions()
            .into_iter()
            .filter(|c| {
                (HEALTHY_WHEN_TRUE.contains(&c.type_) && failing(index, config, object, c, "True"))
                    || (UNHEALTHY_WHEN_TRUE.contains(&c.type_)
                        && c.status == "True"
                        && failing(index, config, object, c, "False"))
            })
            .collect();
        if failures.is_empty() {
            continue;
        }
        out.push(detection(
            index,
            Analyzer::CustomResource,
            "ConditionFailing",
            format!(
                "{} {} ({}) has {}",
                object.kind,
                resource.name,
                object.api_version,
                failures.iter().map(said).collect::<Vec<_>>().join("; ")
            ),
            resource.clone(),
            resource.clone(),
            failures
                .iter()
                .map(|c| condition_evidence(&resource, "status.conditions", c))
                .collect(),
        ));
    }
}
