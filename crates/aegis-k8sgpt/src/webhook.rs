//! The ValidatingWebhookConfiguration and MutatingWebhookConfiguration analyzers: admission
//! webhooks whose Service does not exist or has no ready endpoint. With `failurePolicy: Fail`
//! (the default) the API server then refuses every request the webhook matches — deployments,
//! scale-ups, even AEGIS's own fixes. K8sGPT flags a webhook for any non-Running pod behind it
//! (a new replica mid-rollout) and misses a Running pod that is not ready; here the Service's
//! ready endpoints decide.

use aegis_core::state::{StateIndex, ref_of};
use aegis_core::{EvidenceSource, ResourceKind};
use k8s_openapi::api::admissionregistration::v1::ServiceReference;

use crate::evidence::object_evidence;
use crate::{Analyzer, Detection, detection};

/// Ready endpoints of a Service, from its EndpointSlices (`None`: slices not read).
fn ready_endpoints(index: &StateIndex<'_>, namespace: &str, service: &str) -> Option<usize> {
    let state = index.state();
    if !state.has_read("EndpointSlice") {
        return None;
    }
    Some(
        state
            .endpoint_slices
            .iter()
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        .is_some_and(|n| n == service)
            })
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .count(),
    )
}

/// Whether the state can say a Service of `namespace` does not exist: Services were read and
/// the namespace is in the state (a view of other namespaces knows nothing of its Services).
fn namespace_known(index: &StateIndex<'_>, namespace: &str) -> bool {
    let state = index.state();
    state.has_read("Service")
        && (state
            .namespaces
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(namespace))
            || state
                .services
                .iter()
                .any(|s| s.metadata.namespace.as_deref() == Some(namespace)))
}

/// One webhook of a configuration: its name, failure policy and Service.
type Hook<'a> = (&'a str, Option<&'a str>, &'a ServiceReference);

fn check(
    index: &StateIndex<'_>,
    analyzer: Analyzer,
    kind: ResourceKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    hooks: Vec<Hook<'_>>,
    out: &mut Vec<Detection>,
) {
    let resource = ref_of(kind, meta);
    for (hook, policy, service) in hooks {
        let namespace = service.namespace.as_str();
        if !namespace_known(index, namespace) {
            continue;
        }
        let blocking = policy.unwrap_or("Fail") == "Fail";
        let effect = if blocking {
            "the API server refuses the requests it matches"
        } else {
            "the API server skips it (failurePolicy Ignore)"
        };
        let exists = index
            .state()
            .contains(ResourceKind::Service, namespace, &service.name);
        let (reason, message) = if !exists {
            (
                "ServiceMissing",
                format!(
                    "webhook {hook} of {} calls Service {namespace}/{}, which does not exist: {effect}",
                    resource.name, service.name
                ),
            )
        } else if ready_endpoints(index, namespace, &service.name) == Some(0) {
            (
                "NoReadyEndpoints",
                format!(
                    "webhook {hook} of {} calls Service {namespace}/{}, which has no ready endpoint: {effect}",
                    resource.name, service.name
                ),
            )
        } else {
            continue;
        };
        let mut evidence = vec![object_evidence(
            EvidenceSource::Spec,
            &resource,
            &format!("webhooks[{hook}].clientConfig.service"),
            format!(
                "{namespace}/{} (failurePolicy {})",
                service.name,
                policy.unwrap_or("Fail")
            ),
        )];
        evidence.extend(crate::evidence::event_evidence(
            index,
            ResourceKind::Service,
            namespace,
            &service.name,
        ));
        out.push(detection(
            index,
            analyzer,
            reason,
            message,
            resource.clone(),
            resource.clone(),
            evidence,
        ));
    }
}

/// The webhooks of a configuration (either kind) that call a Service.
macro_rules! hooks_of {
    ($config:expr) => {
        $config
            .webhooks
            .iter()
            .flatten()
            .filter_map(|w| {
                Some((
                    w.name.as_str(),
                    w.failure_policy.as_deref(),
                    w.client_config.service.as_ref()?,
                ))
            })
            .collect()
    };
}

pub fn validating(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    for config in &index.state().validating_webhooks {
        check(
            index,
            Analyzer::ValidatingWebhookConfiguration,
            ResourceKind::ValidatingWebhookConfiguration,
            &config.metadata,
            hooks_of!(config),
            out,
        );
    }
}

pub fn mutating(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    for config in &index.state().mutating_webhooks {
        check(
            index,
            Analyzer::MutatingWebhookConfiguration,
            ResourceKind::MutatingWebhookConfiguration,
            &config.metadata,
            hooks_of!(config),
            out,
        );
    }
}
