//! Lookups the rules need, built once per analysis so that large clusters cost one pass.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use aegis_core::state::{FastMap, StateIndex, ref_of};
use aegis_core::{ClusterState, ResourceKind, ResourceRef, quantity};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use k8s_openapi::serde::Serialize;
use serde_json::{Map, Value};

/// Indexes over one [`ClusterState`]: the analysis's one [`StateIndex`] (events by object,
/// owners by uid), which analyzers and rules share, and the lookups only the rules need.
#[derive(Debug)]
pub struct Lookup<'a> {
    state: &'a ClusterState,
    index: StateIndex<'a>,
    pods: FastMap<(&'a str, &'a str), &'a Pod>,
    objects: FastMap<(ResourceKind, &'a str, &'a str), usize>,
    // Computed on first use, once per analysis.
    services: OnceLock<FastMap<&'a str, Vec<&'a Service>>>,
    largest_node_memory: OnceLock<Option<u64>>,
    ready_images: OnceLock<Vec<(String, String)>>,
    roomiest_node: OnceLock<Option<NodeRoom>>,
    template_labels: OnceLock<FastMap<String, Vec<WorkloadLabels>>>,
    pod_specs: OnceLock<FastMap<&'a str, Vec<WorkloadPodSpec<'a>>>>,
    config_map_keys: OnceLock<FastMap<&'a str, Vec<NamedKeys>>>,
    secret_keys: OnceLock<FastMap<&'a str, Vec<NamedKeys>>>,
}

/// A workload (or the workload of a pod) and a pod spec it runs.
pub type WorkloadPodSpec<'a> = (ResourceRef, &'a k8s_openapi::api::core::v1::PodSpec);

/// A ConfigMap or Secret name and its keys.
pub type NamedKeys = (String, Vec<String>);

/// A Service's name and its ports (number, name).
pub type ServicePorts = (String, Vec<(i32, Option<String>)>);

/// A workload (or bare pod) and the labels its pods carry.
pub type WorkloadLabels = (ResourceRef, BTreeMap<String, String>);

/// Free and allocatable capacity of a node: name, free CPU (millicores), free memory (bytes),
/// allocatable CPU and memory.
pub type NodeRoom = (String, u64, u64, u64, u64);

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default(),
    )
}

impl<'a> Lookup<'a> {
    pub fn new(state: &'a ClusterState) -> Self {
        let own = || {
            let pods: FastMap<_, _> = state.pods.iter().map(|p| (key(&p.metadata), p)).collect();
            let mut objects = FastMap::default();
            macro_rules! add {
                ($kind:expr, $list:expr) => {
                    for (position, object) in $list.iter().enumerate() {
                        let (namespace, name) = key(&object.metadata);
                        objects.insert(($kind, namespace, name), position);
                    }
                };
            }
            add!(ResourceKind::Deployment, state.deployments);
            add!(ResourceKind::ReplicaSet, state.replica_sets);
            add!(ResourceKind::StatefulSet, state.stateful_sets);
            add!(ResourceKind::DaemonSet, state.daemon_sets);
            add!(ResourceKind::Job, state.jobs);
            add!(ResourceKind::CronJob, state.cron_jobs);
            add!(ResourceKind::Service, state.services);
            add!(ResourceKind::Ingress, state.ingresses);
            (pods, objects)
        };
        // A large state builds the shared index and the rules' own tables side by side.
        let (index, (pods, objects)) =
            aegis_core::state::side_by_side(state, || state.index(), own);
        Self {
            state,
            index,
            pods,
            objects,
            services: OnceLock::new(),
            largest_node_memory: OnceLock::new(),
            ready_images: OnceLock::new(),
            roomiest_node: OnceLock::new(),
            template_labels: OnceLock::new(),
            pod_specs: OnceLock::new(),
            config_map_keys: OnceLock::new(),
            secret_keys: OnceLock::new(),
        }
    }

    /// The analysis's index of the state.
    pub fn index(&self) -> &StateIndex<'a> {
        &self.index
    }

    /// A pod by namespace and name.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&'a Pod> {
        self.pods.get(&(namespace, name)).copied()
    }

    /// An object as JSON (with `apiVersion` and `kind`), the form patches apply to.
    pub fn object(&self, reference: &ResourceRef) -> Option<Value> {
        fn to_json<T: Serialize>(object: &T) -> Option<Value> {
            serde_json::to_value(object).ok()
        }
        let namespace = reference.namespace_str();
        if reference.kind == ResourceKind::Pod {
            return self.pod(namespace, &reference.name).and_then(to_json);
        }
        let position = *self
            .objects
            .get(&(reference.kind, namespace, reference.name.as_str()))?;
        let state = self.state;
        match reference.kind {
            ResourceKind::Deployment => to_json(&state.deployments[position]),
            ResourceKind::ReplicaSet => to_json(&state.replica_sets[position]),
            ResourceKind::StatefulSet => to_json(&state.stateful_sets[position]),
            ResourceKind::DaemonSet => to_json(&state.daemon_sets[position]),
            ResourceKind::Job => to_json(&state.jobs[position]),
            ResourceKind::CronJob => to_json(&state.cron_jobs[position]),
            ResourceKind::Service => to_json(&state.services[position]),
            ResourceKind::Ingress => to_json(&state.ingresses[position]),
            _ => None,
        }
    }

    /// ConfigMaps of a namespace with their keys.
    pub fn config_map_keys(&self, namespace: &str) -> &[NamedKeys] {
        self.config_map_keys
            .get_or_init(|| {
                let mut by_namespace: FastMap<&'a str, Vec<NamedKeys>> = FastMap::default();
                for c in &self.state.config_maps {
                    let keys = c
                        .data
                        .iter()
                        .flat_map(|d| d.keys())
                        .chain(c.binary_data.iter().flat_map(|d| d.keys()))
                        .cloned()
                        .collect();
                    by_namespace
                        .entry(c.metadata.namespace.as_deref().unwrap_or("default"))
                        .or_default()
                        .push((c.metadata.name.clone().unwrap_or_default(), keys));
                }
                by_namespace
            })
            .get(namespace)
            .map_or(&[], Vec::as_slice)
    }

    /// Secrets of a namespace with their keys (the state holds no values).
    pub fn secret_keys(&self, namespace: &str) -> &[NamedKeys] {
        self.secret_keys
            .get_or_init(|| {
                let mut by_namespace: FastMap<&'a str, Vec<NamedKeys>> = FastMap::default();
                for secret in &self.state.secrets {
                    by_namespace
                        .entry(secret.metadata.namespace.as_deref().unwrap_or("default"))
                        .or_default()
                        .push((
                            secret.metadata.name.clone().unwrap_or_default(),
                            secret.data.iter().flat_map(|d| d.keys()).cloned().collect(),
                        ));
                }
                by_namespace
            })
            .get(namespace)
            .map_or(&[], Vec::as_slice)
    }

    /// Registry-credential Secrets of a namespace.
    pub fn pull_secrets(&self, namespace: &str) -> Vec<String> {
        self.state
            .secrets
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .filter(|s| {
                matches!(
                    s.type_.as_deref(),
                    Some("kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg")
                )
            })
            .filter_map(|s| s.metadata.name.clone())
            .collect()
    }

    /// Images of containers that run and are ready, with the pod running each.
    pub fn ready_images(&self) -> &[(String, String)] {
        self.ready_images
            .get_or_init(|| self.compute_ready_images())
    }

    fn compute_ready_images(&self) -> Vec<(String, String)> {
        let mut images = Vec::new();
        for pod in &self.state.pods {
            for status in pod
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
            {
                if !status.ready {
                    continue;
                }
                let spec_image = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .find(|c| c.name == status.name)
                    .and_then(|c| c.image.clone());
                if let Some(image) = spec_image {
                    let (namespace, name) = key(&pod.metadata);
                    images.push((image, format!("{namespace}/{name}")));
                }
            }
        }
        images.sort();
        images.dedup_by(|a, b| a.0 == b.0);
        images
    }

    fn ready_nodes(&self) -> impl Iterator<Item = &'a k8s_openapi::api::core::v1::Node> {
        self.state.nodes.iter().filter(|n| {
            n.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Ready" && c.status == "True")
                && !n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false)
        })
    }

    fn allocatable(node: &k8s_openapi::api::core::v1::Node, resource: &str) -> Option<String> {
        node.status
            .as_ref()?
            .allocatable
            .as_ref()?
            .get(resource)
            .map(|q| q.0.clone())
    }

    /// The memory of the largest schedulable node.
    pub fn largest_node_memory(&self) -> Option<u64> {
        *self.largest_node_memory.get_or_init(|| {
            self.ready_nodes()
                .filter_map(|n| Self::allocatable(n, "memory").and_then(|q| quantity::bytes(&q)))
                .max()
        })
    }

    /// The Services of a namespace (`""` for those that name none), in the state's order.
    pub fn services_in(&self, namespace: &str) -> &[&'a Service] {
        self.services
            .get_or_init(|| {
                let mut by_namespace: FastMap<&str, Vec<&Service>> = FastMap::default();
                for service in &self.state.services {
                    by_namespace
                        .entry(service.metadata.namespace.as_deref().unwrap_or_default())
                        .or_default()
                        .push(service);
                }
                by_namespace
            })
            .get(namespace)
            .map_or(&[], Vec::as_slice)
    }

    /// The schedulable node with the most free memory: name, free CPU (millicores), free memory
    /// (bytes), allocatable CPU and memory.
    pub fn roomiest_node(&self) -> Option<&NodeRoom> {
        self.roomiest_node
            .get_or_init(|| self.compute_roomiest_node())
            .as_ref()
    }

    fn compute_roomiest_node(&self) -> Option<NodeRoom> {
        let mut used: FastMap<&str, (u64, u64)> = FastMap::default();
        for pod in &self.state.pods {
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or_default();
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
                continue;
            };
            if matches!(phase, "Succeeded" | "Failed") {
                continue;
            }
            let entry = used.entry(node).or_default();
            for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let requests = container
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref());
                entry.0 += requests
                    .and_then(|r| r.get("cpu"))
                    .and_then(|q| quantity::cpu_millis(&q.0))
                    .unwrap_or_default();
                entry.1 += requests
                    .and_then(|r| r.get("memory"))
                    .and_then(|q| quantity::bytes(&q.0))
                    .unwrap_or_default();
            }
        }
        self.ready_nodes()
            .filter_map(|node| {
                let name = node.metadata.name.clone()?;
                let cpu = Self::allocatable(node, "cpu").and_then(|q| quantity::cpu_millis(&q))?;
                let memory = Self::allocatable(node, "memory").and_then(|q| quantity::bytes(&q))?;
                let (used_cpu, used_memory) = used.get(name.as_str()).copied().unwrap_or_default();
                Some((
                    name,
                    cpu.saturating_sub(used_cpu),
                    memory.saturating_sub(used_memory),
                    cpu,
                    memory,
                ))
            })
            .max_by_key(|n| (n.2, n.1, std::cmp::Reverse(n.0.clone())))
    }

    /// Workloads of a namespace (and bare pods) with the labels their pods carry.
    pub fn pod_template_labels(
        &self,
        namespace: &str,
    ) -> &[(ResourceRef, BTreeMap<String, String>)] {
        self.template_labels
            .get_or_init(|| {
                let mut by_namespace: FastMap<String, Vec<_>> = FastMap::default();
                for (reference, labels) in self.compute_template_labels() {
                    by_namespace
                        .entry(reference.namespace_str().to_owned())
                        .or_default()
                        .push((reference, labels));
                }
                by_namespace
            })
            .get(namespace)
            .map_or(&[], Vec::as_slice)
    }

    fn compute_template_labels(&self) -> Vec<WorkloadLabels> {
        fn labels(template: Option<&PodTemplateSpec>) -> BTreeMap<String, String> {
            template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default()
        }
        let state = self.state;
        let deployments = state.deployments.iter().map(|d| {
            let template = d.spec.as_ref().map(|s| &s.template);
            (
                ref_of(ResourceKind::Deployment, &d.metadata),
                labels(template),
            )
        });
        let stateful_sets = state.stateful_sets.iter().map(|s| {
            let template = s.spec.as_ref().map(|s| &s.template);
            (
                ref_of(ResourceKind::StatefulSet, &s.metadata),
                labels(template),
            )
        });
        let daemon_sets = state.daemon_sets.iter().map(|d| {
            let template = d.spec.as_ref().map(|s| &s.template);
            (
                ref_of(ResourceKind::DaemonSet, &d.metadata),
                labels(template),
            )
        });
        let bare_pods = state
            .pods
            .iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
            })
            .map(|p| {
                (
                    ref_of(ResourceKind::Pod, &p.metadata),
                    p.metadata.labels.clone().unwrap_or_default(),
                )
            });
        deployments
            .chain(stateful_sets)
            .chain(daemon_sets)
            .chain(bare_pods)
            .collect()
    }

    /// Ports declared by the containers of the pods a selector matches.
    pub fn declared_ports(&self, namespace: &str, selector: &Map<String, Value>) -> Vec<Value> {
        let Some(pod) = self.state.pods.iter().find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && !selector.is_empty()
                && selector.iter().all(|(k, v)| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(k))
                        .map(String::as_str)
                        == v.as_str()
                })
        }) else {
            return Vec::new();
        };
        pod.spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect()
    }

    /// The pod specs of a namespace's workloads (Deployments, StatefulSets, DaemonSets) and
    /// pods, each with its workload; indexed once per analysis.
    pub fn pod_specs(&self, namespace: &str) -> &[WorkloadPodSpec<'a>] {
        self.pod_specs
            .get_or_init(|| {
                let state = self.state;
                let mut by_namespace: FastMap<&'a str, Vec<WorkloadPodSpec<'a>>> =
                    FastMap::default();
                let mut add =
                    |meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                     workload: ResourceRef,
                     spec: &'a k8s_openapi::api::core::v1::PodSpec| {
                        by_namespace
                            .entry(meta.namespace.as_deref().unwrap_or("default"))
                            .or_default()
                            .push((workload, spec));
                    };
                for d in &state.deployments {
                    if let Some(spec) = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
                        add(
                            &d.metadata,
                            ref_of(ResourceKind::Deployment, &d.metadata),
                            spec,
                        );
                    }
                }
                for d in &state.stateful_sets {
                    if let Some(spec) = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
                        add(
                            &d.metadata,
                            ref_of(ResourceKind::StatefulSet, &d.metadata),
                            spec,
                        );
                    }
                }
                for d in &state.daemon_sets {
                    if let Some(spec) = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
                        add(
                            &d.metadata,
                            ref_of(ResourceKind::DaemonSet, &d.metadata),
                            spec,
                        );
                    }
                }
                for pod in &state.pods {
                    if let Some(spec) = pod.spec.as_ref() {
                        let workload = self.index.workload_of(ResourceKind::Pod, &pod.metadata);
                        add(&pod.metadata, workload, spec);
                    }
                }
                by_namespace
            })
            .get(namespace)
            .map_or(&[], Vec::as_slice)
    }

    /// How the workloads of a namespace set `variable` from a ConfigMap or Secret: each
    /// workload with the `valueFrom` it uses (literal values are never taken).
    pub fn env_sources(&self, namespace: &str, variable: &str) -> Vec<(ResourceRef, Value)> {
        let mut found: Vec<(ResourceRef, Value)> = Vec::new();
        for (workload, spec) in self.pod_specs(namespace) {
            let spec = *spec;
            for env in spec
                .containers
                .iter()
                .flat_map(|c| c.env.iter().flatten())
                .filter(|e| e.name == variable)
            {
                let Some(value_from) = &env.value_from else {
                    continue;
                };
                if value_from.config_map_key_ref.is_none() && value_from.secret_key_ref.is_none() {
                    continue;
                }
                if let Ok(value) = serde_json::to_value(value_from)
                    && !found.iter().any(|(w, v)| w == workload && *v == value)
                {
                    found.push((workload.clone(), value));
                }
            }
        }
        found
    }

    /// The Services of a namespace with their ports (number, name).
    pub fn service_ports(&self, namespace: &str) -> Vec<ServicePorts> {
        self.services_in(namespace)
            .iter()
            .filter_map(|s| {
                let ports = s
                    .spec
                    .iter()
                    .flat_map(|spec| spec.ports.iter().flatten())
                    .map(|p| (p.port, p.name.clone()))
                    .collect();
                Some((s.metadata.name.clone()?, ports))
            })
            .collect()
    }
}
