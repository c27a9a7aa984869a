//! The in-memory view of a cluster that analyzers and reasoning backends read: every object of
//! the kinds AEGIS understands, container logs, and the moment the view was taken.
//!
//! Secrets are held without their values: sources strip `data` and `stringData` to keys with
//! empty values before a Secret enters the state, so nothing downstream can leak them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Node, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::resource::{ResourceKind, ResourceRef};

/// The pod's `Ready` condition when it is `True`: the pod is ready, since the condition's
/// transition time.
pub fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
}

/// Whether every container of the pod is ready (its `Ready` condition is `True`).
pub fn pod_is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some()
}

/// Which log of a container: the running instance, or the one before the last restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub previous: bool,
}

/// An object of a kind a CustomResourceDefinition serves (the Gateway API's among them), read
/// generically: its identity, spec and status.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomObject {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub spec: serde_json::Value,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub status: serde_json::Value,
}

/// One of `status.conditions` of a custom object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomCondition<'a> {
    pub type_: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub last_transition_time: Option<&'a str>,
    /// The generation the condition was computed from, when the controller says.
    pub observed_generation: Option<i64>,
}

impl CustomObject {
    /// The API group (`gateway.networking.k8s.io`).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The kind, as a [`ResourceKind`].
    pub fn resource_kind(&self) -> ResourceKind {
        ResourceKind::custom(&self.kind)
    }

    /// A reference to it.
    pub fn reference(&self) -> ResourceRef {
        ResourceRef::new(
            self.resource_kind(),
            self.metadata.namespace.as_deref(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }

    /// The conditions of `status.conditions` (or of any list of conditions at `at`).
    pub fn conditions_at(at: &serde_json::Value) -> Vec<CustomCondition<'_>> {
        at.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(CustomCondition {
                    type_: c["type"].as_str()?,
                    status: c["status"].as_str()?,
                    reason: c["reason"].as_str().unwrap_or_default(),
                    message: c["message"].as_str().unwrap_or_default(),
                    last_transition_time: c["lastTransitionTime"].as_str(),
                    observed_generation: c["observedGeneration"].as_i64(),
                })
            })
            .collect()
    }

    /// Its `status.conditions`.
    pub fn conditions(&self) -> Vec<CustomCondition<'_>> {
        Self::conditions_at(&self.status["conditions"])
    }
}

/// Everything AEGIS knows about a cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// The moment the state describes; ages are measured from here.
    pub now: Option<Timestamp>,
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub nodes: Vec<Node>,
    pub persistent_volume_claims: Vec<PersistentVolumeClaim>,
    pub ingresses: Vec<Ingress>,
    pub horizontal_pod_autoscalers: Vec<HorizontalPodAutoscaler>,
    pub config_maps: Vec<ConfigMap>,
    /// Secrets with their values removed (keys kept).
    pub secrets: Vec<Secret>,
    pub events: Vec<Event>,
    /// Revisions of StatefulSets and DaemonSets.
    pub controller_revisions: Vec<ControllerRevision>,
    pub storage_classes: Vec<StorageClass>,
    pub pod_disruption_budgets: Vec<PodDisruptionBudget>,
    pub network_policies: Vec<NetworkPolicy>,
    pub validating_webhooks: Vec<ValidatingWebhookConfiguration>,
    pub mutating_webhooks: Vec<MutatingWebhookConfiguration>,
    /// Objects of kinds served by CustomResourceDefinitions: the Gateway API's, and any whose
    /// status carries conditions.
    pub custom_objects: Vec<CustomObject>,
    pub logs: BTreeMap<LogKey, String>,
    /// Objects of kinds no analyzer reads, kept so callers can say they were seen.
    pub other_objects: usize,
    /// The kinds the source read (by their Kubernetes `kind`), when it could not read every
    /// kind: a snapshot holds only the kinds present in it, a live list may be refused. `None`
    /// means every kind was read. An absent object of an unread kind is unknown, not missing.
    pub read_kinds: Option<BTreeSet<String>>,
}

impl ClusterState {
    /// The moment the state describes, or the Unix epoch when nothing carries a time.
    pub fn now(&self) -> Timestamp {
        self.now.unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Seconds since the object described by `meta` was created, as of [`Self::now`];
    /// `u64::MAX` when its creation time is unknown.
    pub fn age_seconds(&self, meta: &ObjectMeta) -> u64 {
        meta.creation_timestamp.as_ref().map_or(u64::MAX, |t| {
            self.now().duration_since(t.0).as_secs().max(0) as u64
        })
    }

    /// Moves every object and log of `other` into this state.
    pub fn absorb(&mut self, other: Self) {
        merge(&mut self.namespaces, other.namespaces);
        merge(&mut self.pods, other.pods);
        merge(&mut self.deployments, other.deployments);
        merge(&mut self.replica_sets, other.replica_sets);
        merge(&mut self.stateful_sets, other.stateful_sets);
        merge(&mut self.daemon_sets, other.daemon_sets);
        merge(&mut self.jobs, other.jobs);
        merge(&mut self.cron_jobs, other.cron_jobs);
        merge(&mut self.services, other.services);
        merge(&mut self.endpoint_slices, other.endpoint_slices);
        merge(&mut self.nodes, other.nodes);
        merge(
            &mut self.persistent_volume_claims,
            other.persistent_volume_claims,
        );
        merge(&mut self.ingresses, other.ingresses);
        merge(
            &mut self.horizontal_pod_autoscalers,
            other.horizontal_pod_autoscalers,
        );
        merge(&mut self.config_maps, other.config_maps);
        merge(&mut self.secrets, other.secrets);
        merge(&mut self.events, other.events);
        merge(&mut self.controller_revisions, other.controller_revisions);
        merge(&mut self.storage_classes, other.storage_classes);
        merge(
            &mut self.pod_disruption_budgets,
            other.pod_disruption_budgets,
        );
        merge(&mut self.network_policies, other.network_policies);
        merge(&mut self.custom_objects, other.custom_objects);
        merge(&mut self.validating_webhooks, other.validating_webhooks);
        merge(&mut self.mutating_webhooks, other.mutating_webhooks);
        self.logs.extend(other.logs);
        self.other_objects += other.other_objects;
        self.read_kinds = match (self.read_kinds.take(), other.read_kinds) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        self.now = match (self.now, other.now) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Sets `now` to the newest timestamp found in the state: event times, condition
    /// transitions, container state times and creation times.
    pub fn settle_now(&mut self) {
        let mut newest: Option<Timestamp> = None;
        let mut see = |time: Option<Timestamp>| {
            if let Some(time) = time
                && newest.is_none_or(|n| time > n)
            {
                newest = Some(time);
            }
        };
        for event in &self.events {
            see(event.last_timestamp.as_ref().map(|t| t.0));
            see(event.first_timestamp.as_ref().map(|t| t.0));
            see(event.event_time.as_ref().map(|t| t.0));
        }
        for pod in &self.pods {
            see(pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let Some(status) = &pod.status else { continue };
            see(status.start_time.as_ref().map(|t| t.0));
            for condition in status.conditions.iter().flatten() {
                see(condition.last_transition_time.as_ref().map(|t| t.0));
            }
            for container in status.container_statuses.iter().flatten() {
                for state in [&container.state, &container.last_state]
                    .into_iter()
                    .flatten()
                {
                    see(state
                        .running
                        .as_ref()
                        .and_then(|r| r.started_at.as_ref())
                        .map(|t| t.0));
                    see(state
                        .terminated
                        .as_ref()
                        .and_then(|t| t.finished_at.as_ref())
                        .map(|t| t.0));
                }
            }
        }
        for deployment in &self.deployments {
            for condition in deployment
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
            {
                see(condition.last_update_time.as_ref().map(|t| t.0));
            }
        }
        for node in &self.nodes {
            for condition in node
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
            {
                see(condition.last_heartbeat_time.as_ref().map(|t| t.0));
            }
        }
        if newest.is_some() {
            self.now = newest;
        }
    }

    /// Removes secret values, keeping keys, so the state can never carry them.
    pub fn redact_secret(secret: &mut Secret) {
        if let Some(data) = &mut secret.data {
            for value in data.values_mut() {
                value.0.clear();
            }
        }
        if let Some(string_data) = secret.string_data.take() {
            let data = secret.data.get_or_insert_with(BTreeMap::new);
            for key in string_data.into_keys() {
                data.insert(key, k8s_openapi::ByteString(Vec::new()));
            }
        }
        if let Some(annotations) = &mut secret.metadata.annotations {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }

    /// The number of objects held.
    pub fn object_count(&self) -> usize {
        self.namespaces.len()
            + self.pods.len()
            + self.deployments.len()
            + self.replica_sets.len()
            + self.stateful_sets.len()
            + self.daemon_sets.len()
            + self.jobs.len()
            + self.cron_jobs.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.nodes.len()
            + self.persistent_volume_claims.len()
            + self.ingresses.len()
            + self.horizontal_pod_autoscalers.len()
            + self.config_maps.len()
            + self.secrets.len()
            + self.events.len()
            + self.controller_revisions.len()
            + self.storage_classes.len()
            + self.pod_disruption_budgets.len()
            + self.network_policies.len()
            + self.validating_webhooks.len()
            + self.mutating_webhooks.len()
            + self.custom_objects.len()
            + self.other_objects
    }

    /// The kinds of which the state holds at least one object.
    pub fn kinds_present(&self) -> BTreeSet<String> {
        [
            ("Namespace", self.namespaces.is_empty()),
            ("Pod", self.pods.is_empty()),
            ("Deployment", self.deployments.is_empty()),
            ("ReplicaSet", self.replica_sets.is_empty()),
            ("StatefulSet", self.stateful_sets.is_empty()),
            ("DaemonSet", self.daemon_sets.is_empty()),
            ("Job", self.jobs.is_empty()),
            ("CronJob", self.cron_jobs.is_empty()),
            ("Service", self.services.is_empty()),
            ("EndpointSlice", self.endpoint_slices.is_empty()),
            ("Node", self.nodes.is_empty()),
            (
                "PersistentVolumeClaim",
                self.persistent_volume_claims.is_empty(),
            ),
            ("Ingress", self.ingresses.is_empty()),
            (
                "HorizontalPodAutoscaler",
                self.horizontal_pod_autoscalers.is_empty(),
            ),
            ("ConfigMap", self.config_maps.is_empty()),
            ("Secret", self.secrets.is_empty()),
            ("Event", self.events.is_empty()),
            ("ControllerRevision", self.controller_revisions.is_empty()),
            ("StorageClass", self.storage_classes.is_empty()),
            (
                "PodDisruptionBudget",
                self.pod_disruption_budgets.is_empty(),
            ),
            ("NetworkPolicy", self.network_policies.is_empty()),
            (
                "ValidatingWebhookConfiguration",
                self.validating_webhooks.is_empty(),
            ),
            (
                "MutatingWebhookConfiguration",
                self.mutating_webhooks.is_empty(),
            ),
        ]
        .into_iter()
        .filter(|(_, empty)| !empty)
        .map(|(kind, _)| kind.to_owned())
        .chain(self.custom_objects.iter().map(|o| o.kind.clone()))
        .collect()
    }

    /// Whether objects of `kind` (its Kubernetes `kind`) were read, so that the absence of one
    /// means it does not exist.
    pub fn has_read(&self, kind: &str) -> bool {
        self.read_kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(kind))
    }

    /// Whether an object of `kind` named `name` exists (in `namespace`, for namespaced kinds).
    pub fn contains(&self, kind: ResourceKind, namespace: &str, name: &str) -> bool {
        self.meta(kind, namespace, name).is_some()
    }

    /// The metadata of the object `kind` named `name` (in `namespace`, for namespaced kinds).
    pub fn meta(&self, kind: ResourceKind, namespace: &str, name: &str) -> Option<&ObjectMeta> {
        fn find<'a>(
            mut metas: impl Iterator<Item = &'a ObjectMeta>,
            namespace: Option<&str>,
            name: &str,
        ) -> Option<&'a ObjectMeta> {
            metas.find(|m| {
                m.name.as_deref() == Some(name)
                    && (namespace.is_none() || m.namespace.as_deref() == namespace)
            })
        }
        let ns = Some(namespace);
        match kind {
            ResourceKind::Pod => find(self.pods.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::Deployment => {
                find(self.deployments.iter().map(|o| &o.metadata), ns, name)
            }
            ResourceKind::ReplicaSet => {
                find(self.replica_sets.iter().map(|o| &o.metadata), ns, name)
            }
            ResourceKind::StatefulSet => {
                find(self.stateful_sets.iter().map(|o| &o.metadata), ns, name)
            }
            ResourceKind::DaemonSet => find(self.daemon_sets.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::Job => find(self.jobs.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::CronJob => find(self.cron_jobs.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::Service => find(self.services.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::Node => find(self.nodes.iter().map(|o| &o.metadata), None, name),
            ResourceKind::PersistentVolumeClaim => find(
                self.persistent_volume_claims.iter().map(|o| &o.metadata),
                ns,
                name,
            ),
            ResourceKind::Ingress => find(self.ingresses.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::HorizontalPodAutoscaler => find(
                self.horizontal_pod_autoscalers.iter().map(|o| &o.metadata),
                ns,
                name,
            ),
            ResourceKind::ConfigMap => find(self.config_maps.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::Secret => find(self.secrets.iter().map(|o| &o.metadata), ns, name),
            ResourceKind::Namespace => {
                find(self.namespaces.iter().map(|o| &o.metadata), None, name)
            }
            ResourceKind::StorageClass => {
                find(self.storage_classes.iter().map(|o| &o.metadata), None, name)
            }
            ResourceKind::PodDisruptionBudget => find(
                self.pod_disruption_budgets.iter().map(|o| &o.metadata),
                ns,
                name,
            ),
            ResourceKind::NetworkPolicy => {
                find(self.network_policies.iter().map(|o| &o.metadata), ns, name)
            }
            ResourceKind::ValidatingWebhookConfiguration => find(
                self.validating_webhooks.iter().map(|o| &o.metadata),
                None,
                name,
            ),
            ResourceKind::MutatingWebhookConfiguration => find(
                self.mutating_webhooks.iter().map(|o| &o.metadata),
                None,
                name,
            ),
            ResourceKind::GatewayClass
            | ResourceKind::Gateway
            | ResourceKind::HTTPRoute
            | ResourceKind::Custom(_) => self
                .custom_objects
                .iter()
                .find(|o| {
                    o.kind == kind.as_str()
                        && o.metadata.name.as_deref() == Some(name)
                        && o.metadata.namespace.as_deref().unwrap_or_default() == namespace
                })
                .map(|o| &o.metadata),
        }
    }

    /// The log of a container, if the source had it.
    pub fn log(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Option<&str> {
        self.logs
            .get(&LogKey {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
                container: container.to_owned(),
                previous,
            })
            .map(String::as_str)
    }

    /// Builds the lookup tables analyzers need, once.
    pub fn index(&self) -> StateIndex<'_> {
        StateIndex::new(self)
    }
}

/// From this many pods on, analysis runs its independent parts on cores of their own; below
/// it, a thread costs more than it saves.
const LARGE_STATE_PODS: usize = 1_000;

/// Runs `beside` on a thread of its own and `here` on the calling one when the state is large
/// (a thousand pods or more), else one after the other; a panic in either is the caller's.
pub fn side_by_side<A: Send, B>(
    state: &ClusterState,
    beside: impl FnOnce() -> A + Send,
    here: impl FnOnce() -> B,
) -> (A, B) {
    if state.pods.len() < LARGE_STATE_PODS {
        return (beside(), here());
    }
    std::thread::scope(|threads| {
        let beside = threads.spawn(beside);
        let here = here();
        let beside = beside
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (beside, here)
    })
}

/// A hash map for analysis's own indexes: a fast hash, seeded per process.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Lookup tables over a [`ClusterState`], built once per analysis.
#[derive(Debug)]
pub struct StateIndex<'a> {
    state: &'a ClusterState,
    events: FastMap<String, Vec<&'a Event>>,
    by_uid: FastMap<&'a str, ResourceRef>,
    pods_by_owner: FastMap<&'a str, Vec<&'a Pod>>,
    replica_sets_by_owner: FastMap<&'a str, Vec<&'a ReplicaSet>>,
    jobs_by_owner: FastMap<&'a str, Vec<&'a Job>>,
    owners: FastMap<&'a str, &'a str>,
}

impl<'a> StateIndex<'a> {
    fn new(state: &'a ClusterState) -> Self {
        let mut events: FastMap<_, Vec<&Event>> = FastMap::default();
        for event in &state.events {
            let object = &event.involved_object;
            let key = event_key(
                object.kind.as_deref().unwrap_or_default(),
                object.namespace.as_deref().unwrap_or_default(),
                object.name.as_deref().unwrap_or_default(),
            );
            events.entry(key).or_default().push(event);
        }
        for list in events.values_mut() {
            list.sort_by_key(|e| event_time(e));
        }
        let mut index = Self {
            state,
            events,
            by_uid: FastMap::default(),
            pods_by_owner: FastMap::default(),
            replica_sets_by_owner: FastMap::default(),
            jobs_by_owner: FastMap::default(),
            owners: FastMap::default(),
        };
        let metas = state
            .deployments
            .iter()
            .map(|o| (ResourceKind::Deployment, &o.metadata))
            .chain(
                state
                    .replica_sets
                    .iter()
                    .map(|o| (ResourceKind::ReplicaSet, &o.metadata)),
            )
            .chain(
                state
                    .stateful_sets
                    .iter()
                    .map(|o| (ResourceKind::StatefulSet, &o.metadata)),
            )
            .chain(
                state
                    .daemon_sets
                    .iter()
                    .map(|o| (ResourceKind::DaemonSet, &o.metadata)),
            )
            .chain(state.jobs.iter().map(|o| (ResourceKind::Job, &o.metadata)))
            .chain(
                state
                    .cron_jobs
                    .iter()
                    .map(|o| (ResourceKind::CronJob, &o.metadata)),
            );
        // Only what can own a workload's objects is indexed by uid: a pod's owner is read
        // from the pod (at 100,000 pods, indexing them too cost 20 MB).
        for (kind, meta) in metas {
            if let Some(uid) = meta.uid.as_deref() {
                index.by_uid.insert(uid, ref_of(kind, meta));
                if let Some(owner) = controller_uid(meta) {
                    index.owners.insert(uid, owner);
                }
            }
        }
        for pod in &state.pods {
            if let Some(owner) = controller_uid(&pod.metadata) {
                index.pods_by_owner.entry(owner).or_default().push(pod);
            }
        }
        for rs in &state.replica_sets {
            if let Some(owner) = controller_uid(&rs.metadata) {
                index
                    .replica_sets_by_owner
                    .entry(owner)
                    .or_default()
                    .push(rs);
            }
        }
        for job in &state.jobs {
            if let Some(owner) = controller_uid(&job.metadata) {
                index.jobs_by_owner.entry(owner).or_default().push(job);
            }
        }
        index
    }

    pub fn state(&self) -> &'a ClusterState {
        self.state
    }

    /// Events about one object, oldest first.
    pub fn events_for(&self, kind: ResourceKind, namespace: &str, name: &str) -> &[&'a Event] {
        self.events
            .get(&event_key(kind.as_str(), namespace, name))
            .map_or(&[], Vec::as_slice)
    }

    /// The workload that ultimately owns an object: a Pod's ReplicaSet's Deployment, a Job's
    /// CronJob. An object nothing owns is its own workload.
    pub fn workload_of(&self, kind: ResourceKind, meta: &ObjectMeta) -> ResourceRef {
        let uid = meta.uid.as_deref();
        let mut owner_uid = if kind == ResourceKind::Pod {
            uid.and(controller_uid(meta))
        } else {
            uid.and_then(|u| self.owners.get(u).copied())
        };
        // Owner chains are short (Pod → ReplicaSet → Deployment); the bound guards against cycles.
        // Only the last owner is copied out.
        let mut top: Option<&ResourceRef> = None;
        for _ in 0..8 {
            let Some(next) = owner_uid else {
                break;
            };
            let Some(owner) = self.by_uid.get(next) else {
                break;
            };
            top = Some(owner);
            owner_uid = self.owners.get(next).copied();
        }
        let name = meta.name.as_deref().unwrap_or_default();
        if top.is_none_or(|owner| owner.kind == kind && owner.name == name) {
            // No owner object in the state; fall back to the owner reference itself so a pod of
            // a Deployment whose ReplicaSet was not captured still names a workload.
            if let Some(owner) = meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                && let Some(owner_kind) = ResourceKind::from_kind(&owner.kind)
            {
                return ResourceRef::new(owner_kind, meta.namespace.as_deref(), &owner.name);
            }
        }
        top.cloned().unwrap_or_else(|| ref_of(kind, meta))
    }

    /// Pods controlled by the object with this uid.
    pub fn pods_owned_by(&self, uid: &str) -> &[&'a Pod] {
        self.pods_by_owner.get(uid).map_or(&[], Vec::as_slice)
    }

    /// ReplicaSets controlled by the Deployment with this uid.
    pub fn replica_sets_owned_by(&self, uid: &str) -> &[&'a ReplicaSet] {
        self.replica_sets_by_owner
            .get(uid)
            .map_or(&[], Vec::as_slice)
    }

    /// Jobs controlled by the CronJob with this uid.
    pub fn jobs_owned_by(&self, uid: &str) -> &[&'a Job] {
        self.jobs_by_owner.get(uid).map_or(&[], Vec::as_slice)
    }

    /// Pods of a workload, following ReplicaSets for Deployments and Jobs for CronJobs.
    pub fn pods_of_workload(&self, kind: ResourceKind, uid: &str) -> Vec<&'a Pod> {
        match kind {
            ResourceKind::Deployment => self
                .replica_sets_owned_by(uid)
                .iter()
                .filter_map(|rs| rs.metadata.uid.as_deref())
                .flat_map(|rs_uid| self.pods_owned_by(rs_uid).iter().copied())
                .collect(),
            ResourceKind::CronJob => self
                .jobs_owned_by(uid)
                .iter()
                .filter_map(|job| job.metadata.uid.as_deref())
                .flat_map(|job_uid| self.pods_owned_by(job_uid).iter().copied())
                .collect(),
            _ => self.pods_owned_by(uid).to_vec(),
        }
    }
}

fn event_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}\0{namespace}\0{name}")
}

/// The time an event last happened.
pub fn event_time(event: &Event) -> Option<Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
}

/// A reference to the object described by `meta`.
pub fn ref_of(kind: ResourceKind, meta: &ObjectMeta) -> ResourceRef {
    ResourceRef::new(
        kind,
        if kind.is_namespaced() {
            Some(meta.namespace.as_deref().unwrap_or("default"))
        } else {
            None
        },
        meta.name.as_deref().unwrap_or_default(),
    )
}

fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Appends `from` to `into`, taking `from`'s allocation when `into` is empty: a large state is
/// merged from its parts without a second copy of every object.
fn merge<T>(into: &mut Vec<T>, from: Vec<T>) {
    if into.is_empty() {
        *into = from;
    } else {
        into.extend(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("a valid object")
    }

    fn owned(
        kind: &str,
        name: &str,
        uid: &str,
        owner: Option<(&str, &str, &str)>,
    ) -> serde_json::Value {
        let mut meta = serde_json::json!({"name": name, "namespace": "shop", "uid": uid});
        if let Some((owner_kind, owner_name, owner_uid)) = owner {
            meta["ownerReferences"] = serde_json::json!([{
                "apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name,
                "uid": owner_uid, "controller": true
            }]);
        }
        serde_json::json!({"kind": kind, "metadata": meta})
    }

    #[test]
    fn a_workload_is_found_up_the_owner_chain_or_from_the_owner_reference() {
        let state = ClusterState {
            deployments: vec![object(owned("Deployment", "web", "d1", None))],
            replica_sets: vec![object(owned(
                "ReplicaSet",
                "web-5d8f",
                "r1",
                Some(("Deployment", "web", "d1")),
            ))],
            pods: vec![
                object(owned(
                    "Pod",
                    "web-5d8f-a",
                    "p1",
                    Some(("ReplicaSet", "web-5d8f", "r1")),
                )),
                // Its ReplicaSet was not captured: the owner reference names the workload.
                object(owned(
                    "Pod",
                    "api-7c9f-b",
                    "p2",
                    Some(("ReplicaSet", "api-7c9f", "r2")),
                )),
                object(owned("Pod", "bare", "p3", None)),
            ],
            ..ClusterState::default()
        };
        let index = state.index();
        let of = |position: usize| {
            index
                .workload_of(ResourceKind::Pod, &state.pods[position].metadata)
                .to_string()
        };
        let deployment = ResourceRef::new(ResourceKind::Deployment, Some("shop"), "web");
        assert_eq!(of(0), deployment.to_string());
        assert_eq!(
            of(1),
            ResourceRef::new(ResourceKind::ReplicaSet, Some("shop"), "api-7c9f").to_string()
        );
        assert_eq!(
            of(2),
            ResourceRef::new(ResourceKind::Pod, Some("shop"), "bare").to_string()
        );
        assert_eq!(
            index
                .workload_of(ResourceKind::ReplicaSet, &state.replica_sets[0].metadata)
                .to_string(),
            deployment.to_string()
        );
        assert_eq!(
            index
                .workload_of(ResourceKind::Deployment, &state.deployments[0].metadata)
                .to_string(),
            deployment.to_string()
        );
        assert_eq!(index.pods_owned_by("r1").len(), 1);
    }
}
