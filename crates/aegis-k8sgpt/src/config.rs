//! The ConfigMap analyzer: ConfigMaps (and keys) that workloads need and the namespace does not
//! hold. A running pod keeps the environment it started with, so a ConfigMap deleted under it
//! fails the next restart, a scale-up or the CronJob's next run — found here before then.
//! K8sGPT's checks of unused and empty ConfigMaps are left out: many ConfigMaps are read
//! through the API (leader-election locks, kubeadm's configuration, `kube-root-ca.crt`) and
//! reporting them is noise.

use std::collections::HashMap;

use aegis_core::state::{StateIndex, ref_of};
use aegis_core::{EvidenceSource, ResourceKind, ResourceRef};
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};

use crate::evidence::object_evidence;
use crate::{Analyzer, Detection, detection};

/// One reference to a ConfigMap in a pod spec: where it is, the ConfigMap, the key (none: the
/// whole ConfigMap), and whether it may be missing.
struct Reference {
    field: String,
    name: String,
    key: Option<String>,
    optional: bool,
}

fn references(spec: &PodSpec) -> Vec<Reference> {
    let mut found = Vec::new();
    for container in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        for env in container.env.iter().flatten() {
            if let Some(source) = env
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                found.push(Reference {
                    field: format!("containers[{}].env[{}]", container.name, env.name),
                    name: source.name.clone(),
                    key: Some(source.key.clone()),
                    optional: source.optional.unwrap_or(false),
                });
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(source) = &from.config_map_ref {
                found.push(Reference {
                    field: format!("containers[{}].envFrom", container.name),
                    name: source.name.clone(),
                    key: None,
                    optional: source.optional.unwrap_or(false),
                });
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        let sources = volume.config_map.iter().cloned().chain(
            volume
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
                .filter_map(|s| s.config_map.clone())
                .map(|p| k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                    name: p.name,
                    items: p.items,
                    optional: p.optional,
                    ..Default::default()
                }),
        );
        for source in sources {
            let field = format!("volumes[{}]", volume.name);
            let optional = source.optional.unwrap_or(false);
            found.push(Reference {
                field: field.clone(),
                name: source.name.clone(),
                key: None,
                optional,
            });
            for item in source.items.iter().flatten() {
                found.push(Reference {
                    field: field.clone(),
                    name: source.name.clone(),
                    key: Some(item.key.clone()),
                    optional,
                });
            }
        }
    }
    found
}

fn has_key(config_map: &ConfigMap, key: &str) -> bool {
    config_map
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(key))
        || config_map
            .binary_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
}

/// The pod specs that will run again: Deployments, StatefulSets and DaemonSets, CronJobs not
/// suspended, Jobs no CronJob made that have not finished, and pods no controller made.
fn specs<'a>(index: &StateIndex<'a>) -> Vec<(ResourceRef, &'a PodSpec)> {
    let state = index.state();
    let mut specs = Vec::new();
    for d in &state.deployments {
        if let Some(spec) = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
            specs.push((ref_of(ResourceKind::Deployment, &d.metadata), spec));
        }
    }
    for s in &state.stateful_sets {
        if let Some(spec) = s.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
            specs.push((ref_of(ResourceKind::StatefulSet, &s.metadata), spec));
        }
    }
    for d in &state.daemon_sets {
        if let Some(spec) = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
            specs.push((ref_of(ResourceKind::DaemonSet, &d.metadata), spec));
        }
    }
    for c in &state.cron_jobs {
        let Some(spec) = c.spec.as_ref() else {
            continue;
        };
        if spec.suspend.unwrap_or(false) {
            continue;
        }
        if let Some(pod) = spec
            .job_template
            .spec
            .as_ref()
            .and_then(|j| j.template.spec.as_ref())
        {
            specs.push((ref_of(ResourceKind::CronJob, &c.metadata), pod));
        }
    }
    for job in &state.jobs {
        let owned = job
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| !o.is_empty());
        let finished = job
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True");
        if owned || finished {
            continue;
        }
        if let Some(spec) = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
            specs.push((ref_of(ResourceKind::Job, &job.metadata), spec));
        }
    }
    for pod in &state.pods {
        let owned = pod
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| !o.is_empty());
        if let (false, Some(spec)) = (owned, pod.spec.as_ref()) {
            specs.push((ref_of(ResourceKind::Pod, &pod.metadata), spec));
        }
    }
    specs
}

/// References to ConfigMaps, or keys of them, that the namespace does not hold (only when
/// ConfigMaps were read; optional references are allowed to dangle).
pub fn config_maps(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let state = index.state();
    if !state.has_read("ConfigMap") {
        return;
    }
    // Looked up once per reference: indexed once per analysis.
    let by_name: HashMap<(&str, &str), &ConfigMap> = state
        .config_maps
        .iter()
        .filter_map(|c| {
            Some((
                (
                    c.metadata.namespace.as_deref()?,
                    c.metadata.name.as_deref()?,
                ),
                c,
            ))
        })
        .collect();
    for (workload, spec) in specs(index) {
        let namespace = workload.namespace_str();
        let kind = workload.kind.as_str().to_ascii_lowercase();
        let mut reported: Vec<(String, Option<String>)> = Vec::new();
        for reference in references(spec).into_iter().filter(|r| !r.optional) {
            let config_map = by_name.get(&(namespace, reference.name.as_str())).copied();
            let (reason, message) = match (config_map, &reference.key) {
                (None, _) => (
                    "ConfigMapMissing",
                    format!(
                        "{kind} {} needs ConfigMap {}, which does not exist",
                        workload.name, reference.name
                    ),
                ),
                (Some(config_map), Some(key)) if !has_key(config_map, key) => (
                    "ConfigMapKeyMissing",
                    format!(
                        "{kind} {} needs key {key} of ConfigMap {}, which has no such key",
                        workload.name, reference.name
                    ),
                ),
                _ => continue,
            };
            let what = (
                reference.name.clone(),
                config_map.and(reference.key.clone()),
            );
            if reported.contains(&what) {
                continue;
            }
            reported.push(what);
            let template = match workload.kind {
                ResourceKind::Pod => "spec",
                ResourceKind::CronJob => "spec.jobTemplate.spec.template.spec",
                _ => "spec.template.spec",
            };
            out.push(detection(
                index,
                Analyzer::ConfigMap,
                reason,
                message,
                workload.clone(),
                workload.clone(),
                vec![object_evidence(
                    EvidenceSource::Spec,
                    &workload,
                    &format!("{template}.{}", reference.field),
                    match &reference.key {
                        Some(key) => format!("configMap {} key {key}", reference.name),
                        None => format!("configMap {}", reference.name),
                    },
                )],
            ));
        }
    }
}
