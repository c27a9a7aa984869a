//! Analyzers of Services (through their EndpointSlices) and Ingresses.

use std::collections::BTreeMap;

use aegis_core::state::{FastMap, StateIndex, pod_is_ready, ref_of};
use aegis_core::{Evidence, EvidenceSource, ResourceKind};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{Analyzer, Detection, detection};

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
    // Without the pods, whether a selector matches any cannot be told.
    if !state.has_read("Pod") {
        return;
    }
    // Slices by Service, so that each Service looks only at its own.
    let mut slices_by_service: FastMap<(&str, &str), Vec<&EndpointSlice>> = FastMap::default();
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
    // Pods by namespace and label: a selector's candidates are the pods carrying its first
    // label, not every pod of the namespace.
    let mut labelled: FastMap<(&str, &str, &str), Vec<&Pod>> = FastMap::default();
    for pod in &state.pods {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        for (key, value) in pod.metadata.labels.iter().flatten() {
            labelled
                .entry((namespace, key.as_str(), value.as_str()))
                .or_default()
                .push(pod);
        }
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
        let slices: &[&EndpointSlice] = slices_by_service
            .get(&(namespace, resource.name.as_str()))
            .map_or(&[], Vec::as_slice);
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
        let candidates = selector
            .iter()
            .next()
            .and_then(|(key, value)| labelled.get(&(namespace, key.as_str(), value.as_str())))
            .map_or(&[][..], Vec::as_slice);
        let pods = selected_pods(candidates, selector);
        let slice_evidence = Evidence::new(
            EvidenceSource::Status,
            format!("endpointslice/{namespace}/{}: endpoints", resource.name),
            format!("{} endpoints, {ready} ready", endpoints.len()),
        );
        if pods.is_empty() {
            out.push(detection(
                index,
                Analyzer::Service,
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
                Analyzer::Service,
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
            if let Some(evidence) = target_port_unserved(state, service, &target, &pods) {
                let target_text = match &target {
                    IntOrString::Int(n) => n.to_string(),
                    IntOrString::String(s) => s.clone(),
                };
                let mut all = vec![Evidence::new(
                    EvidenceSource::Spec,
                    format!(
                        "service/{namespace}/{}: spec.ports[{}].targetPort",
                        resource.name, port.port
                    ),
                    target_text.clone(),
                )];
                all.extend(evidence);
                out.push(detection(
                    index,
                    Analyzer::Service,
                    "TargetPortMismatch",
                    format!(
                        "service {} sends port {} to target port {target_text}, which no selected pod serves",
                        resource.name, port.port
                    ),
                    resource.clone(),
                    resource.clone(),
                    all,
                ));
            }
        }
    }
}

/// The evidence that the selected pods do not serve a Service's target port, or `None` when
/// there is none. A named target port that no container names cannot be resolved at all. A
/// numeric one is only suspicious, since declared ports are informational: it takes the
/// containers probing another declared port (they listen there), or clients logging refused
/// connections to the Service.
fn target_port_unserved(
    state: &aegis_core::ClusterState,
    service: &k8s_openapi::api::core::v1::Service,
    target: &IntOrString,
    pods: &[&Pod],
) -> Option<Vec<Evidence>> {
    let containers: Vec<(&Pod, &k8s_openapi::api::core::v1::Container)> = pods
        .iter()
        .flat_map(|pod| {
            pod.spec
                .iter()
                .flat_map(move |s| s.containers.iter().map(move |c| (*pod, c)))
        })
        .collect();
    let declared: Vec<&k8s_openapi::api::core::v1::ContainerPort> = containers
        .iter()
        .flat_map(|(_, c)| c.ports.iter().flatten())
        .collect();
    let exposed = declared.iter().any(|p| match target {
        IntOrString::Int(number) => p.container_port == *number,
        IntOrString::String(name) => p.name.as_deref() == Some(name),
    });
    if exposed || declared.is_empty() {
        return None;
    }
    let IntOrString::Int(number) = target else {
        // A named port no container declares: kube-proxy has nothing to send traffic to.
        return Some(Vec::new());
    };
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    let mut evidence = Vec::new();
    // Probes show where the application listens.
    for (pod, container) in &containers {
        for (field, probe) in [
            ("readinessProbe", &container.readiness_probe),
            ("livenessProbe", &container.liveness_probe),
            ("startupProbe", &container.startup_probe),
        ] {
            let Some(probe) = probe else { continue };
            let port = probe
                .http_get
                .as_ref()
                .map(|h| &h.port)
                .or_else(|| probe.tcp_socket.as_ref().map(|t| &t.port));
            let Some(port) = port else { continue };
            let resolved = match port {
                IntOrString::Int(n) => Some(*n),
                IntOrString::String(name) => declared
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name))
                    .map(|p| p.container_port),
            };
            if let Some(resolved) = resolved
                && resolved != *number
                && declared.iter().any(|p| p.container_port == resolved)
            {
                evidence.push(Evidence::new(
                    EvidenceSource::Spec,
                    format!(
                        "pod/{namespace}/{}: spec.containers[{}].{field}",
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        container.name
                    ),
                    format!("probes port {resolved}, not {number}"),
                ));
                break;
            }
        }
        if !evidence.is_empty() {
            break;
        }
    }
    // Clients that fail to connect to the Service.
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let cluster_ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|ip| !ip.is_empty() && *ip != "None");
    for (key, log) in &state.logs {
        if key.namespace != namespace {
            continue;
        }
        let line = log.lines().rev().find(|line| {
            let lower = line.to_ascii_lowercase();
            (lower.contains("connection refused") || lower.contains("econnrefused"))
                && (line.contains(&format!("{name}:"))
                    || line.contains(&format!("{name}."))
                    || cluster_ip.is_some_and(|ip| line.contains(ip)))
        });
        if let Some(line) = line {
            evidence.push(Evidence::new(
                EvidenceSource::Log,
                format!(
                    "log/{}/{}/{}/{}",
                    key.namespace,
                    key.pod,
                    key.container,
                    if key.previous { "previous" } else { "current" }
                ),
                line.trim().to_owned(),
            ));
            break;
        }
    }
    (!evidence.is_empty()).then_some(evidence)
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
            // Services that were not read are unknown, not missing (SPEC §6, coverage).
            if let Some(service) = &backend.service
                && state.has_read("Service")
                && !state.contains(ResourceKind::Service, namespace, &service.name)
                && !missing.contains(&service.name)
            {
                missing.push(service.name.clone());
            }
        }
        for name in missing {
            out.push(detection(
                index,
                Analyzer::Ingress,
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
                && state.has_read("Secret")
                && !state.contains(ResourceKind::Secret, namespace, secret)
            {
                out.push(detection(
                    index,
                    Analyzer::Ingress,
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
