//! Analyzers of Services (through their EndpointSlices) and Ingresses.

use std::collections::{BTreeMap, HashMap};

use aegis_core::state::{StateIndex, pod_is_ready, ref_of};
use aegis_core::{Evidence, EvidenceSource, ResourceKind};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{Detection, detection};

/// Pods (of one namespace) whose labels match `selector`.
pub fn selected_pods<'a>(pods: &[&'a Pod], selector: &BTreeMap<String, String>) -> Vec<&'a Pod> {
    pods.iter()
        .copied()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .collect()
}

pub fn services(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let state = index.state();
    // Pods and slices by namespace, so that each Service looks only at its own namespace.
    let mut slices_by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in &state.endpoint_slices {
        if let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        {
            slices_by_service
                .entry((
                    slice.metadata.namespace.as_deref().unwrap_or_default(),
                    service.as_str(),
                ))
                .or_default()
                .push(slice);
        }
    }
    let mut namespace_pods: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in &state.pods {
        namespace_pods
            .entry(pod.metadata.namespace.as_deref().unwrap_or_default())
            .or_default()
            .push(pod);
    }
    for service in &state.services {
        let Some(spec) = &service.spec else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let resource = ref_of(ResourceKind::Service, &service.metadata);
        let namespace = resource.namespace_str();
        let slices: Vec<_> = state
            .endpoint_slices
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    == Some(&resource.name)
            })
            .collect();
        let endpoints: Vec<_> = slices.iter().flat_map(|s| s.endpoints.iter()).collect();
        let ready = endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .count();
        let selector_text = selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let spec_evidence = Evidence::new(
            EvidenceSource::Spec,
            format!("service/{namespace}/{}: spec.selector", resource.name),
            selector_text.clone(),
        );
        let pods = selected_pods(
            namespace_pods.get(namespace).map_or(&[][..], Vec::as_slice),
            selector,
        );
        let slice_evidence = Evidence::new(
            EvidenceSource::Status,
            format!("endpointslice/{namespace}/{}: endpoints", resource.name),
            format!("{} endpoints, {ready} ready", endpoints.len()),
        );
        if pods.is_empty() {
            out.push(detection(
                index,
                ResourceKind::Service,
                "NoEndpoints",
                format!(
                    "service {} has no endpoints: no pod matches selector {selector_text}",
                    resource.name
                ),
                resource.clone(),
                resource.clone(),
                vec![spec_evidence, slice_evidence],
            ));
            continue;
        }
        let pod_workload = index.workload_of(ResourceKind::Pod, &pods[0].metadata);
        if ready == 0 && !slices.is_empty()
            || (slices.is_empty() && pods.iter().all(|p| !pod_is_ready(p)))
        {
            out.push(detection(
                index,
                ResourceKind::Service,
                "NoReadyEndpoints",
                format!(
                    "service {} has no ready endpoints: {} pods match selector {selector_text}, none is ready",
                    resource.name,
                    pods.len()
                ),
                resource.clone(),
                pod_workload.clone(),
                vec![spec_evidence.clone(), slice_evidence],
            ));
        }
        for port in spec.ports.iter().flatten() {
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            let exposed = pods.iter().any(|pod| {
                pod.spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|p| match &target {
                        IntOrString::Int(number) => p.container_port == *number,
                        IntOrString::String(name) => p.name.as_deref() == Some(name),
                    })
            });
            let declares_ports = pods.iter().any(|pod| {
                pod.spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .any(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()))
            });
            if !exposed && declares_ports {
                let target_text = match &target {
                    IntOrString::Int(n) => n.to_string(),
                    IntOrString::String(s) => s.clone(),
                };
                out.push(detection(
                    index,
                    ResourceKind::Service,
                    "TargetPortMismatch",
                    format!("service {} sends port {} to target port {target_text}, which no selected pod exposes", resource.name, port.port),
                    resource.clone(),
                    resource.clone(),
                    vec![Evidence::new(
                        EvidenceSource::Spec,
                        format!("service/{namespace}/{}: spec.ports[{}].targetPort", resource.name, port.port),
                        target_text,
                    )],
                ));
            }
        }
    }
}

pub fn ingresses(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let state = index.state();
    for ingress in &state.ingresses {
        let resource = ref_of(ResourceKind::Ingress, &ingress.metadata);
        let namespace = resource.namespace_str();
        let Some(spec) = &ingress.spec else { continue };
        let backends = spec
            .default_backend
            .iter()
            .chain(spec.rules.iter().flatten().flat_map(|r| {
                r.http
                    .iter()
                    .flat_map(|h| h.paths.iter().map(|p| &p.backend))
            }));
        let mut missing = Vec::new();
        for backend in backends {
            if let Some(service) = &backend.service
                && !state.contains(ResourceKind::Service, namespace, &service.name)
                && !missing.contains(&service.name)
            {
                missing.push(service.name.clone());
            }
        }
        for name in missing {
            out.push(detection(
                index,
                ResourceKind::Ingress,
                "BackendServiceMissing",
                format!(
                    "ingress {} routes to service {name}, which does not exist",
                    resource.name
                ),
                resource.clone(),
                resource.clone(),
                vec![Evidence::new(
                    EvidenceSource::Spec,
                    format!(
                        "ingress/{namespace}/{}: backend.service.name",
                        resource.name
                    ),
                    name,
                )],
            ));
        }
        for tls in spec.tls.iter().flatten() {
            if let Some(secret) = &tls.secret_name
                && !state.contains(ResourceKind::Secret, namespace, secret)
            {
                out.push(detection(
                    index,
                    ResourceKind::Ingress,
                    "TLSSecretMissing",
                    format!(
                        "ingress {} uses TLS secret {secret}, which does not exist",
                        resource.name
                    ),
                    resource.clone(),
                    resource.clone(),
                    vec![Evidence::new(
                        EvidenceSource::Spec,
                        format!("ingress/{namespace}/{}: spec.tls.secretName", resource.name),
                        secret.clone(),
                    )],
                ));
            }
        }
    }
}
