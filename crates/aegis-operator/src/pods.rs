//! How the operator holds pods: a k8s-openapi `Pod` takes about 22 KB in memory (its structs
//! carry every optional field inline), so the cache holds none. A healthy owned pod — running
//! with every container ready and never restarted, or finished successfully, made by a
//! controller whose template holds its spec — is decoded into a compact record of what the
//! analysis reads of it (identity, labels, owner, node, images, requests, ports, readiness);
//! any other pod is kept as its JSON (managed fields dropped). Both become `Pod`s again only
//! for the namespace being analyzed.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStatus,
    LocalObjectReference, Pod, PodCondition, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer};

/// A pod in the watch cache.
#[derive(Debug, Clone)]
pub struct CachedPod {
    meta: ObjectMeta,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Compact(Box<Compact>),
    /// The pod as JSON, its metadata dropped (held in `meta`).
    Raw(Box<str>),
}

/// What is read of a healthy owned pod; the field names are the API's, so it decodes straight
/// from the API server's JSON (everything else is skipped, never allocated).
#[derive(Debug, Clone, Default)]
struct Compact {
    spec: CompactSpec,
    status: CompactStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompactSpec {
    node_name: Option<String>,
    #[serde(default)]
    containers: Vec<CompactContainer>,
    #[serde(default)]
    init_containers: Vec<CompactContainer>,
    #[serde(default)]
    image_pull_secrets: Vec<LocalObjectReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompactContainer {
    name: String,
    image: Option<String>,
    resources: Option<CompactResources>,
    #[serde(default)]
    ports: Vec<ContainerPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct CompactResources {
    requests: Option<BTreeMap<String, Quantity>>,
    limits: Option<BTreeMap<String, Quantity>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompactStatus {
    phase: Option<String>,
    start_time: Option<Time>,
    #[serde(default)]
    conditions: Vec<CompactCondition>,
    #[serde(default)]
    container_statuses: Vec<CompactContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<CompactContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompactCondition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    last_transition_time: Option<Time>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompactContainerStatus {
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default, rename = "imageID")]
    image_id: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: i32,
    started: Option<bool>,
    state: Option<CompactState>,
    last_state: Option<CompactState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct CompactState {
    running: Option<CompactRunning>,
    terminated: Option<serde::de::IgnoredAny>,
    waiting: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompactRunning {
    started_at: Option<Time>,
}

/// The first pass over a pod's JSON: its metadata, and the compact view to judge it by.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: CompactSpec,
    #[serde(default)]
    status: CompactStatus,
}

impl Compact {
    fn healthy(&self, meta: &ObjectMeta) -> bool {
        let owned = meta
            .owner_references
            .as_ref()
            .is_some_and(|o| !o.is_empty());
        let statuses = &self.status.container_statuses;
        let clean = !statuses.is_empty()
            && statuses.iter().all(|c| {
                c.restart_count == 0
                    && c.last_state.as_ref().is_none_or(|l| l.terminated.is_none())
                    && c.state.as_ref().is_none_or(|s| s.waiting.is_none())
            });
        let ready = self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let healthy = match self.status.phase.as_deref() {
            Some("Running") => clean && ready && statuses.iter().all(|c| c.ready),
            Some("Succeeded") => clean,
            _ => false,
        };
        owned && healthy && meta.deletion_timestamp.is_none()
    }

    fn to_pod(&self, meta: &ObjectMeta) -> Pod {
        let container = |c: &CompactContainer| Container {
            name: c.name.clone(),
            image: c.image.clone(),
            resources: c.resources.as_ref().map(|r| ResourceRequirements {
                requests: r.requests.clone(),
                limits: r.limits.clone(),
                ..ResourceRequirements::default()
            }),
            ports: (!c.ports.is_empty()).then(|| c.ports.clone()),
            ..Container::default()
        };
        let status = |c: &CompactContainerStatus| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: c.image_id.clone(),
            ready: c.ready,
            restart_count: c.restart_count,
            started: c.started,
            state: c
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .map(|r| ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: r.started_at.clone(),
                    }),
                    ..ContainerState::default()
                }),
            ..ContainerStatus::default()
        };
        let nonempty = |items: Vec<ContainerStatus>| (!items.is_empty()).then_some(items);
        Pod {
            metadata: meta.clone(),
            spec: Some(PodSpec {
                node_name: self.spec.node_name.clone(),
                containers: self.spec.containers.iter().map(container).collect(),
                init_containers: (!self.spec.init_containers.is_empty())
                    .then(|| self.spec.init_containers.iter().map(container).collect()),
                image_pull_secrets: (!self.spec.image_pull_secrets.is_empty())
                    .then(|| self.spec.image_pull_secrets.clone()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: self.status.phase.clone(),
                start_time: self.status.start_time.clone(),
                conditions: Some(
                    self.status
                        .conditions
                        .iter()
                        .map(|c| PodCondition {
                            type_: c.type_.clone(),
                            status: c.status.clone(),
                            last_transition_time: c.last_transition_time.clone(),
                            ..PodCondition::default()
                        })
                        .collect(),
                ),
                container_statuses: nonempty(
                    self.status.container_statuses.iter().map(status).collect(),
                ),
                init_container_statuses: nonempty(
                    self.status
                        .init_container_statuses
                        .iter()
                        .map(status)
                        .collect(),
                ),
                ..PodStatus::default()
            }),
        }
    }
}

impl<'de> Deserialize<'de> for CachedPod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let probe: Probe = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        let mut meta = probe.metadata;
        crate::watch::strip_meta(&mut meta);
        let compact = Compact {
            spec: probe.spec,
            status: probe.status,
        };
        if compact.healthy(&meta) {
            return Ok(Self {
                meta,
                body: Body::Compact(Box::new(compact)),
            });
        }
        // Not healthy: every field may be evidence. Kept as JSON without its metadata.
        let mut value: serde_json::Value =
            serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        if let Some(object) = value.as_object_mut() {
            object.remove("metadata");
        }
        Ok(Self {
            meta,
            body: Body::Raw(value.to_string().into_boxed_str()),
        })
    }
}

impl CachedPod {
    /// The pod as the analysis reads it.
    pub fn to_pod(&self) -> Pod {
        match &self.body {
            Body::Compact(compact) => compact.to_pod(&self.meta),
            Body::Raw(text) => {
                // The text is what serde_json wrote from the API server's object; should it
                // not decode as a Pod, the pod is analyzed from its metadata alone, and said.
                let mut pod: Pod = serde_json::from_str(text).unwrap_or_else(|error| {
                    tracing::warn!(
                        pod = ?self.meta.name,
                        namespace = ?self.meta.namespace,
                        %error,
                        "a cached pod does not decode; its spec and status are not analyzed"
                    );
                    Pod::default()
                });
                pod.metadata = self.meta.clone();
                pod
            }
        }
    }

    /// Whether the pod is held in compact form (healthy and owned).
    pub fn is_compact(&self) -> bool {
        matches!(self.body, Body::Compact(_))
    }

    /// Whether the pod is ready, or finished successfully.
    pub fn ready_or_done(&self) -> bool {
        match &self.body {
            Body::Compact(_) => true,
            Body::Raw(_) => {
                let pod = self.to_pod();
                aegis_core::state::pod_is_ready(&pod)
                    || pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
            }
        }
    }
}

impl kube::Resource for CachedPod {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind((): &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }

    fn group((): &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version((): &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural((): &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::CachedPod;

    fn pod(owned: bool, ready: bool, restarts: i32) -> serde_json::Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                         "managedFields": [{"manager": "kubelet"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "default",
                     "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
                     "containers": [{"name": "web", "image": "nginx:1.27.2",
                                     "env": [{"name": "MODE", "value": "x"}],
                                     "resources": {"requests": {"memory": "64Mi"}},
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/", "port": 8080}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                       "message": "m", "lastTransitionTime": "2026-12-03T00:00:00Z"}],
                       "containerStatuses": [{"name": "web", "image": "nginx:1.27.2", "imageID": "x",
                                              "ready": ready, "restartCount": restarts,
                                              "state": {"running": {"startedAt": "2026-12-03T00:00:00Z"}}}]}
        });
        if owned {
            pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c", "uid": "u1"}]);
        }
        pod
    }

    #[test]
    fn a_healthy_owned_pod_is_held_compact_and_reads_back_what_the_analysis_needs() {
        let cached: CachedPod = serde_json::from_value(pod(true, true, 0)).expect("decodes");
        assert!(cached.is_compact());
        let back = cached.to_pod();
        assert!(back.metadata.managed_fields.is_none());
        assert!(back.metadata.annotations.unwrap_or_default().is_empty());
        assert_eq!(back.metadata.labels.unwrap_or_default()["app"], "web");
        let spec = back.spec.expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.volumes.is_none() && spec.containers[0].env.is_none());
        assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:1.27.2"));
        let requests = spec.containers[0]
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone())
            .unwrap_or_default();
        assert_eq!(requests["memory"].0, "64Mi");
        assert_eq!(spec.containers[0].ports.as_ref().map(Vec::len), Some(1));
        let status = back.status.expect("status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.container_statuses.map(|c| c[0].ready), Some(true));
        assert!(
            status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        );
    }

    #[test]
    fn a_failing_restarted_or_bare_pod_is_kept_whole() {
        for (owned, ready, restarts) in [(true, false, 0), (true, true, 2), (false, true, 0)] {
            let cached: CachedPod =
                serde_json::from_value(pod(owned, ready, restarts)).expect("decodes");
            assert!(!cached.is_compact(), "{owned} {ready} {restarts}");
            let back = cached.to_pod();
            let spec = back.spec.expect("spec");
            assert!(spec.volumes.is_some());
            assert!(spec.containers[0].env.is_some());
            assert!(spec.containers[0].readiness_probe.is_some());
            assert!(
                back.metadata.managed_fields.is_none(),
                "managed fields always go"
            );
            assert_eq!(back.metadata.name.as_deref(), Some("web-1"));
        }
    }
}
