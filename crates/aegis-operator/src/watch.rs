//! The watch caches: one reflector per kind the analysis reads, cluster-wide, with what the
//! analysis never reads stripped before an object is stored (managed fields, the
//! last-applied-configuration annotation); namespaces are watched as metadata only. Secrets
//! are never watched: the operator may not read them outside shadow namespaces, so its
//! analysis knows it has not seen them (unknown, not missing).
//!
//! Every change marks what it touched: a pod, a workload (Deployment, ReplicaSet, StatefulSet,
//! DaemonSet, Job, CronJob), a Service (or its EndpointSlices), or an event about one of them
//! marks that object, and the detector analyzes only the workloads it concerns
//! ([`aegis_agent::change_scope`]); any other change marks its whole namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use aegis_core::ClusterState;
use aegis_core::crd::IncidentResource;
use aegis_k8sgpt::result::K8sgptResult;
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Node, PersistentVolumeClaim, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::metrics;
use crate::pods::CachedPod;

/// The key of the cluster-scoped pass (Nodes).
pub const CLUSTER: &str = "";

/// One object a change touched, in its namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Pod(String),
    /// A workload or a ReplicaSet: its kind and name.
    Owner(aegis_core::ResourceKind, String),
    Service(String),
}

impl Part {
    /// The object, in `namespace`.
    pub fn reference(&self, namespace: &str) -> aegis_core::ResourceRef {
        use aegis_core::{ResourceKind, ResourceRef};
        match self {
            Self::Pod(name) => ResourceRef::namespaced(ResourceKind::Pod, namespace, name),
            Self::Owner(kind, name) => ResourceRef::namespaced(*kind, namespace, name),
            Self::Service(name) => ResourceRef::namespaced(ResourceKind::Service, namespace, name),
        }
    }
}

/// What changed in one namespace since the detector last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Something that concerns the whole namespace: all of it is analyzed.
    All,
    /// Only these objects: the workloads and Services they concern are analyzed.
    Parts(BTreeSet<Part>),
}

impl Changed {
    fn absorb(&mut self, other: Self) {
        match (&mut *self, other) {
            (Self::All, _) => {}
            (_, Self::All) => *self = Self::All,
            (Self::Parts(parts), Self::Parts(more)) => parts.extend(more),
        }
    }
}

/// What changed where, by namespace.
pub type Marked = BTreeMap<String, Changed>;

/// Adds the marks of `more` to `into`.
pub fn absorb(into: &mut Marked, more: Marked) {
    for (namespace, changed) in more {
        match into.get_mut(&namespace) {
            Some(existing) => existing.absorb(changed),
            None => {
                into.insert(namespace, changed);
            }
        }
    }
}

/// What a watch event touched: a whole namespace (`part` unset), or one object in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub namespace: String,
    pub part: Option<Part>,
}

impl Touch {
    fn namespace(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            part: None,
        }
    }

    pub fn part(namespace: Option<&str>, part: Part) -> Self {
        Self {
            namespace: namespace.unwrap_or_default().to_owned(),
            part: Some(part),
        }
    }
}

/// The namespaces (and objects) changed since the detector last looked, and those to look at
/// again later.
#[derive(Debug, Default)]
pub struct Dirty {
    marked: Mutex<Marked>,
    notify: Notify,
    /// Objects whose failure becomes reportable with time alone (a pod past the grace
    /// period), with when to look at them again.
    later: Mutex<BTreeMap<(String, Option<Part>), std::time::Instant>>,
}

impl Dirty {
    /// Marks a whole namespace.
    pub fn mark(&self, namespace: &str) {
        self.touch(Touch::namespace(namespace));
    }

    /// Marks what `touch` names.
    pub fn touch(&self, touch: Touch) {
        let changed = match touch.part {
            Some(part) => Changed::Parts(BTreeSet::from([part])),
            None => Changed::All,
        };
        if let Ok(mut marked) = self.marked.lock() {
            absorb(&mut marked, BTreeMap::from([(touch.namespace, changed)]));
            self.notify.notify_one();
        }
    }

    /// Marks what `touch` names at `at` (once: a later request for the same object replaces
    /// an earlier one).
    pub fn touch_at(&self, at: std::time::Instant, touch: Touch) {
        if let Ok(mut later) = self.later.lock() {
            later.insert((touch.namespace, touch.part), at);
        }
    }

    /// When the next object is to be looked at again, if any.
    pub fn next_due(&self) -> Option<std::time::Instant> {
        self.later
            .lock()
            .ok()
            .and_then(|later| later.values().min().copied())
    }

    /// Takes the objects due to be looked at again by now.
    pub fn take_due(&self) -> Marked {
        let now = std::time::Instant::now();
        let Ok(mut later) = self.later.lock() else {
            return Marked::new();
        };
        let due: Vec<(String, Option<Part>)> = later
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        let mut marked = Marked::new();
        for key in due {
            later.remove(&key);
            let (namespace, part) = key;
            let changed = match part {
                Some(part) => Changed::Parts(BTreeSet::from([part])),
                None => Changed::All,
            };
            absorb(&mut marked, BTreeMap::from([(namespace, changed)]));
        }
        marked
    }

    /// Takes everything marked, without waiting.
    pub fn take_now(&self) -> Marked {
        self.marked
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    /// Waits until something is marked, then takes everything marked.
    pub async fn take(&self) -> Marked {
        loop {
            let taken = self.take_now();
            if !taken.is_empty() {
                return taken;
            }
            self.notify.notified().await;
        }
    }
}

/// The caches, readable by every task.
#[derive(Clone)]
pub struct Caches {
    pub dirty: Arc<Dirty>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub nodes: Store<Node>,
    pub storage_classes: Store<StorageClass>,
    pub pods: Store<CachedPod>,
    pub deployments: Store<Deployment>,
    pub replica_sets: Store<ReplicaSet>,
    pub stateful_sets: Store<StatefulSet>,
    pub daemon_sets: Store<DaemonSet>,
    pub jobs: Store<Job>,
    pub cron_jobs: Store<CronJob>,
    pub services: Store<Service>,
    pub endpoint_slices: Store<EndpointSlice>,
    pub claims: Store<PersistentVolumeClaim>,
    pub ingresses: Store<Ingress>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    pub config_maps: Store<ConfigMap>,
    pub events: Store<Event>,
    pub revisions: Store<ControllerRevision>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
    pub network_policies: Store<NetworkPolicy>,
    pub validating_webhooks: Store<ValidatingWebhookConfiguration>,
    pub mutating_webhooks: Store<MutatingWebhookConfiguration>,
    /// Custom resources of the kinds worth judging (the Gateway API's, and those whose
    /// schema gives status conditions) that were served when the operator started, each with
    /// whether it is namespaced.
    pub custom: Vec<(ApiResource, bool, Store<DynamicObject>)>,
    /// K8sGPT's Results, when its CRD is installed.
    pub results: Option<Store<K8sgptResult>>,
    pub incidents: Store<IncidentResource>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("pods", &self.pods.len())
            .finish_non_exhaustive()
    }
}

/// Drops what no analysis reads, before the object is stored.
fn strip<K: Resource>(object: &mut K) {
    strip_meta(object.meta_mut());
}

/// Drops the managed fields and the last-applied configuration from metadata.
pub(crate) fn strip_meta(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// The namespace a change of `object` touches.
#[allow(clippy::unnecessary_wraps)] // one signature for every kind's `touched`
fn own_namespace<K: Resource>(object: &K) -> Option<Touch> {
    Some(Touch::namespace(
        object.meta().namespace.clone().unwrap_or_default(),
    ))
}

/// A pod's change touches its controller (a pod that is gone still names it, so its workload
/// is looked at again), or the pod itself when nothing controls it.
fn the_pod(pod: &CachedPod) -> Option<Touch> {
    let meta = pod.meta();
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .and_then(|o| {
            Some((
                aegis_core::ResourceKind::from_kind(&o.kind)?,
                o.name.clone(),
            ))
        });
    let part = match controller {
        Some((kind, name)) => Part::Owner(kind, name),
        None => Part::Pod(meta.name.clone()?),
    };
    Some(Touch::part(meta.namespace.as_deref(), part))
}

/// A workload's (or ReplicaSet's) change touches that object.
fn the_owner<K: Resource>(kind: aegis_core::ResourceKind) -> impl Fn(&K) -> Option<Touch> {
    move |object| {
        let meta = object.meta();
        Some(Touch::part(
            meta.namespace.as_deref(),
            Part::Owner(kind, meta.name.clone()?),
        ))
    }
}

/// A Service's change touches that Service.
fn the_service(service: &Service) -> Option<Touch> {
    let meta = &service.metadata;
    Some(Touch::part(
        meta.namespace.as_deref(),
        Part::Service(meta.name.clone()?),
    ))
}

/// An EndpointSlice's change touches its Service.
fn the_slices_service(slice: &EndpointSlice) -> Option<Touch> {
    let meta = &slice.metadata;
    match meta
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
    {
        Some(service) => Some(Touch::part(
            meta.namespace.as_deref(),
            Part::Service(service.clone()),
        )),
        None => own_namespace(slice),
    }
}

/// An event touches what it is about: the cluster pass for a Node, the object for a pod, a
/// workload or a Service, else its namespace.
fn the_subject(event: &Event) -> Option<Touch> {
    use aegis_core::ResourceKind;
    let about = &event.involved_object;
    let namespace = event.metadata.namespace.as_deref();
    let (Some(kind), Some(name)) = (about.kind.as_deref(), about.name.clone()) else {
        return own_namespace(event);
    };
    let part = match kind {
        // Node events are filed in `default`; they concern the cluster pass.
        "Node" => return Some(Touch::namespace(CLUSTER)),
        "Pod" => Part::Pod(name),
        "Service" => Part::Service(name),
        other => match ResourceKind::from_kind(other) {
            Some(
                kind @ (ResourceKind::Deployment
                | ResourceKind::ReplicaSet
                | ResourceKind::StatefulSet
                | ResourceKind::DaemonSet
                | ResourceKind::Job
                | ResourceKind::CronJob),
            ) => Part::Owner(kind, name),
            _ => return own_namespace(event),
        },
    };
    Some(Touch::part(namespace, part))
}

/// Starts a cluster-wide reflector of `K`; every change marks what `touched` names.
fn cache<K>(
    client: &Client,
    dirty: &Arc<Dirty>,
    kind: &'static str,
    touched: impl Fn(&K) -> Option<Touch> + Send + 'static,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (_, writer) = reflector::store();
    reflect(Api::all(client.clone()), writer, dirty, kind, touched)
}

/// Starts a reflector of `api` filling `writer`'s store; every change marks what `touched` names.
fn reflect<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    dirty: &Arc<Dirty>,
    kind: impl Into<String>,
    touched: impl Fn(&K) -> Option<Touch> + Send + 'static,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let kind: String = kind.into();
    let reader = writer.as_reader();
    let stream = watcher(
        api,
        // Consistent lists in pages of 500: a list served from the API server's cache
        // (`any_semantic`) ignores the page size, and its one response for every object of
        // a kind would set the process's peak memory.
        watcher::Config::default().page_size(500),
    )
    .default_backoff()
    .modify(strip::<K>)
    .reflect(writer)
    .touched_objects();
    let dirty = dirty.clone();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(object) => {
                    if let Some(touch) = touched(&object) {
                        dirty.touch(touch);
                    }
                }
                Err(error) => {
                    ::metrics::counter!(metrics::WATCH_ERRORS, "kind" => kind.clone()).increment(1);
                    tracing::warn!(kind, %error, "watch failed; retrying with backoff");
                }
            }
        }
    });
    reader
}

/// Reflectors of the custom kinds worth judging that the API server serves now (found from the
/// CustomResourceDefinitions; a kind defined later is watched after a restart). Each change
/// marks the object's namespace, or the pass over cluster-scoped objects.
pub(crate) async fn custom_caches(
    client: &Client,
    dirty: &Arc<Dirty>,
) -> Vec<(ApiResource, bool, Store<DynamicObject>)> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let definitions: Api<CustomResourceDefinition> = Api::all(client.clone());
    let listed = match definitions.list(&kube::api::ListParams::default()).await {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!(%error, "cannot list CustomResourceDefinitions; custom resources are not watched");
            return Vec::new();
        }
    };
    let mut caches = Vec::new();
    for (resource, namespaced) in listed
        .items
        .iter()
        .filter_map(aegis_cluster::live::analysed_custom_kind)
    {
        // A kind the operator may not watch would never fill its cache, and the operator
        // would never be ready: it is asked first, and left out when refused.
        match may_watch(client, &resource).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(kind = %resource.kind, group = %resource.group, "not allowed to list and watch this custom kind; it is not watched (grant list and watch on it to the operator's ServiceAccount)");
                continue;
            }
            Err(error) => {
                tracing::warn!(kind = %resource.kind, %error, "cannot ask whether this custom kind may be watched; it is not watched");
                continue;
            }
        }
        let reader = reflect(
            Api::all_with(client.clone(), &resource),
            reflector::store::Writer::new(resource.clone()),
            dirty,
            resource.kind.clone(),
            |object: &DynamicObject| {
                Some(Touch::namespace(
                    object.metadata.namespace.clone().unwrap_or_default(),
                ))
            },
        );
        caches.push((resource, namespaced, reader));
    }
    tracing::info!(kinds = caches.len(), "custom resource kinds watched");
    caches
}

/// Whether the operator's credentials may list and watch `resource` in every namespace, from
/// SelfSubjectAccessReviews (which every authenticated user may create).
async fn may_watch(client: &Client, resource: &ApiResource) -> kube::Result<bool> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for verb in ["list", "watch"] {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(resource.group.clone()),
                    resource: Some(resource.plural.clone()),
                    verb: Some(verb.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answered = reviews
            .create(&kube::api::PostParams::default(), &review)
            .await?;
        if !answered.status.is_some_and(|s| s.allowed) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// [`cache`] of `K`, marking each object's own namespace (for tests).
#[cfg(test)]
pub(crate) fn cache_for_tests<K>(client: &Client, dirty: &Arc<Dirty>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    cache(client, dirty, "test", own_namespace)
}

#[cfg(test)]
impl Caches {
    /// Empty caches that watch nothing: a test fills in what it needs.
    pub(crate) fn detached() -> Self {
        fn empty<K>() -> Store<K>
        where
            K: Resource<DynamicType = ()> + Clone + 'static,
        {
            reflector::store().0
        }
        Self {
            dirty: Arc::default(),
            namespaces: empty(),
            nodes: empty(),
            storage_classes: empty(),
            pods: empty(),
            deployments: empty(),
            replica_sets: empty(),
            stateful_sets: empty(),
            daemon_sets: empty(),
            jobs: empty(),
            cron_jobs: empty(),
            services: empty(),
            endpoint_slices: empty(),
            claims: empty(),
            ingresses: empty(),
            autoscalers: empty(),
            config_maps: empty(),
            events: empty(),
            revisions: empty(),
            disruption_budgets: empty(),
            network_policies: empty(),
            validating_webhooks: empty(),
            mutating_webhooks: empty(),
            custom: Vec::new(),
            results: None,
            incidents: empty(),
        }
    }
}

/// Owned copies of the cached objects `keep` selects.
fn copies<K: Clone + Resource>(store: &Store<K>, keep: impl Fn(&K) -> bool) -> Vec<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|o| keep(o))
        .map(|o| (*o).clone())
        .collect()
}

impl Caches {
    /// Starts every watch. K8sGPT's Results are watched when their CRD is installed; custom
    /// kinds worth judging, when their CRDs are served at start.
    pub async fn start(client: &Client) -> Self {
        use aegis_core::ResourceKind as Kind;
        let dirty = Arc::new(Dirty::default());
        let custom = custom_caches(client, &dirty).await;
        let results = match crate::crd::installed(client, crate::crd::K8SGPT_RESULTS).await {
            Ok(true) => Some(cache::<K8sgptResult>(client, &dirty, "Result", |result| {
                result
                    .spec
                    .object()
                    .ok()
                    .map(|object| Touch::namespace(object.namespace.unwrap_or_default()))
            })),
            Ok(false) => {
                tracing::info!("K8sGPT's Result CRD is not installed; its Results are not read");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot tell whether K8sGPT's Result CRD is installed; its Results are not read");
                None
            }
        };
        Self {
            // Metadata only: their labels select what is watched.
            namespaces: cache(
                client,
                &dirty,
                "Namespace",
                |namespace: &PartialObjectMeta<Namespace>| {
                    Some(Touch::namespace(namespace.name_any()))
                },
            ),
            nodes: cache(client, &dirty, "Node", |_| Some(Touch::namespace(CLUSTER))),
            storage_classes: cache(client, &dirty, "StorageClass", |_| None),
            pods: cache(client, &dirty, "Pod", the_pod),
            deployments: cache(client, &dirty, "Deployment", the_owner(Kind::Deployment)),
            replica_sets: cache(client, &dirty, "ReplicaSet", the_owner(Kind::ReplicaSet)),
            stateful_sets: cache(client, &dirty, "StatefulSet", the_owner(Kind::StatefulSet)),
            daemon_sets: cache(client, &dirty, "DaemonSet", the_owner(Kind::DaemonSet)),
            jobs: cache(client, &dirty, "Job", the_owner(Kind::Job)),
            cron_jobs: cache(client, &dirty, "CronJob", the_owner(Kind::CronJob)),
            services: cache(client, &dirty, "Service", the_service),
            endpoint_slices: cache(client, &dirty, "EndpointSlice", the_slices_service),
            claims: cache(client, &dirty, "PersistentVolumeClaim", own_namespace),
            ingresses: cache(client, &dirty, "Ingress", own_namespace),
            autoscalers: cache(client, &dirty, "HorizontalPodAutoscaler", own_namespace),
            config_maps: cache(client, &dirty, "ConfigMap", own_namespace),
            events: cache(client, &dirty, "Event", the_subject),
            revisions: cache(client, &dirty, "ControllerRevision", own_namespace),
            disruption_budgets: cache(client, &dirty, "PodDisruptionBudget", own_namespace),
            network_policies: cache(client, &dirty, "NetworkPolicy", own_namespace),
            // Cluster-scoped: judged in the pass over cluster-scoped objects.
            validating_webhooks: cache(client, &dirty, "ValidatingWebhookConfiguration", |_| {
                Some(Touch::namespace(CLUSTER))
            }),
            mutating_webhooks: cache(client, &dirty, "MutatingWebhookConfiguration", |_| {
                Some(Touch::namespace(CLUSTER))
            }),
            // Incidents are the operator's own output; their changes are the controller's.
            incidents: cache(client, &dirty, "Incident", |_| None),
            custom,
            results,
            dirty,
        }
    }

    /// Resolves once every cache has its first full list.
    pub async fn ready(&self) {
        // A writer is dropped only with its task, which runs for the process's life.
        let _ = futures::join!(
            self.namespaces.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.storage_classes.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.replica_sets.wait_until_ready(),
            self.stateful_sets.wait_until_ready(),
            self.daemon_sets.wait_until_ready(),
            self.jobs.wait_until_ready(),
            self.cron_jobs.wait_until_ready(),
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready(),
            self.claims.wait_until_ready(),
            self.ingresses.wait_until_ready(),
            self.autoscalers.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.events.wait_until_ready(),
            self.revisions.wait_until_ready(),
            self.incidents.wait_until_ready(),
        );
        let _ = futures::join!(
            self.disruption_budgets.wait_until_ready(),
            self.network_policies.wait_until_ready(),
            self.validating_webhooks.wait_until_ready(),
            self.mutating_webhooks.wait_until_ready(),
        );
        if let Some(results) = &self.results {
            let _ = results.wait_until_ready().await;
        }
        for (_, _, store) in &self.custom {
            let _ = store.wait_until_ready().await;
        }
    }

    /// Objects per kind, for the cache gauge.
    pub fn sizes(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("Namespace", self.namespaces.len()),
            ("Node", self.nodes.len()),
            ("Pod", self.pods.len()),
            ("Deployment", self.deployments.len()),
            ("ReplicaSet", self.replica_sets.len()),
            ("StatefulSet", self.stateful_sets.len()),
            ("DaemonSet", self.daemon_sets.len()),
            ("Job", self.jobs.len()),
            ("Service", self.services.len()),
            ("EndpointSlice", self.endpoint_slices.len()),
            ("ConfigMap", self.config_maps.len()),
            ("Event", self.events.len()),
            ("ControllerRevision", self.revisions.len()),
            ("PodDisruptionBudget", self.disruption_budgets.len()),
            ("NetworkPolicy", self.network_policies.len()),
            (
                "ValidatingWebhookConfiguration",
                self.validating_webhooks.len(),
            ),
            ("MutatingWebhookConfiguration", self.mutating_webhooks.len()),
            ("Incident", self.incidents.len()),
            ("Result", self.results.as_ref().map_or(0, Store::len)),
        ]
    }

    /// The analysis's view of one namespace (with the cluster-scoped kinds), or of the
    /// cluster-scoped objects alone for [`CLUSTER`]. Secrets are not among the kinds read.
    pub fn state_of(&self, namespace: &str) -> ClusterState {
        let cluster = namespace == CLUSTER;
        let here = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            !cluster && meta.namespace.as_deref() == Some(namespace)
        };
        let mut state = ClusterState {
            now: Some(k8s_openapi::jiff::Timestamp::now()),
            namespaces: self
                .namespaces
                .state()
                .into_iter()
                .map(|n| Namespace {
                    metadata: n.metadata.clone(),
                    ..Namespace::default()
                })
                .collect(),
            nodes: copies(&self.nodes, |_| true),
            storage_classes: copies(&self.storage_classes, |_| true),
            pods: self
                .pods
                .state()
                .iter()
                .filter(|p| here(p.meta()))
                .map(|p| p.to_pod())
                .collect(),
            deployments: copies(&self.deployments, |o| here(&o.metadata)),
            replica_sets: copies(&self.replica_sets, |o| here(&o.metadata)),
            stateful_sets: copies(&self.stateful_sets, |o| here(&o.metadata)),
            daemon_sets: copies(&self.daemon_sets, |o| here(&o.metadata)),
            jobs: copies(&self.jobs, |o| here(&o.metadata)),
            cron_jobs: copies(&self.cron_jobs, |o| here(&o.metadata)),
            services: copies(&self.services, |o| here(&o.metadata)),
            endpoint_slices: copies(&self.endpoint_slices, |o| here(&o.metadata)),
            persistent_volume_claims: copies(&self.claims, |o| here(&o.metadata)),
            ingresses: copies(&self.ingresses, |o| here(&o.metadata)),
            horizontal_pod_autoscalers: copies(&self.autoscalers, |o| here(&o.metadata)),
            config_maps: copies(&self.config_maps, |o| here(&o.metadata)),
            events: copies(&self.events, |e| {
                if cluster {
                    e.involved_object.kind.as_deref() == Some("Node")
                } else {
                    here(&e.metadata)
                }
            }),
            controller_revisions: copies(&self.revisions, |o| here(&o.metadata)),
            pod_disruption_budgets: copies(&self.disruption_budgets, |o| here(&o.metadata)),
            network_policies: copies(&self.network_policies, |o| here(&o.metadata)),
            ..ClusterState::default()
        };
        let mut custom_kinds = Vec::new();
        for (resource, namespaced, store) in &self.custom {
            custom_kinds.push(resource.kind.clone());
            // GatewayClasses and Gateways are the context of every namespace's routes (their
            // own incidents are recorded by the pass of their own namespace).
            let context = resource.group == aegis_cluster::GATEWAY_GROUP
                && matches!(resource.kind.as_str(), "GatewayClass" | "Gateway");
            let wanted = |o: &DynamicObject| {
                if *namespaced {
                    !cluster && (context || here(&o.metadata))
                } else {
                    cluster || context
                }
            };
            state
                .custom_objects
                .extend(store.state().iter().filter(|o| wanted(o)).filter_map(|o| {
                    aegis_cluster::live::custom_object(resource, DynamicObject::clone(o))
                }));
        }
        if cluster {
            // Admission webhooks are cluster-scoped; whether they can answer is read from the
            // Services (and their EndpointSlices) they call, wherever those live.
            state.validating_webhooks = copies(&self.validating_webhooks, |_| true);
            state.mutating_webhooks = copies(&self.mutating_webhooks, |_| true);
            let called: BTreeSet<(String, String)> = state
                .validating_webhooks
                .iter()
                .flat_map(|c| c.webhooks.iter().flatten().map(|w| &w.client_config))
                .chain(
                    state
                        .mutating_webhooks
                        .iter()
                        .flat_map(|c| c.webhooks.iter().flatten().map(|w| &w.client_config)),
                )
                .filter_map(|config| {
                    let service = config.service.as_ref()?;
                    Some((service.namespace.clone(), service.name.clone()))
                })
                .collect();
            let is_called = |namespace: Option<&String>, name: Option<&String>| {
                namespace
                    .zip(name)
                    .is_some_and(|(ns, name)| called.contains(&(ns.clone(), name.clone())))
            };
            state.services = copies(&self.services, |s| {
                is_called(s.metadata.namespace.as_ref(), s.metadata.name.as_ref())
            });
            state.endpoint_slices = copies(&self.endpoint_slices, |s| {
                is_called(
                    s.metadata.namespace.as_ref(),
                    s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name")),
                )
            });
        }
        state.read_kinds = Some(
            [
                "Namespace",
                "Node",
                "StorageClass",
                "Pod",
                "Deployment",
                "ReplicaSet",
                "StatefulSet",
                "DaemonSet",
                "Job",
                "CronJob",
                "Service",
                "EndpointSlice",
                "PersistentVolumeClaim",
                "Ingress",
                "HorizontalPodAutoscaler",
                "ConfigMap",
                "Event",
                "ControllerRevision",
                "PodDisruptionBudget",
                "NetworkPolicy",
                "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration",
            ]
            .into_iter()
            .map(str::to_owned)
            .chain(custom_kinds)
            .collect(),
        );
        state
    }

    /// The K8sGPT Results about objects of `namespace` ([`CLUSTER`]: cluster-scoped objects).
    pub fn results_in(&self, namespace: &str) -> Vec<Arc<K8sgptResult>> {
        let Some(results) = &self.results else {
            return Vec::new();
        };
        results
            .state()
            .into_iter()
            .filter(|r| {
                r.spec
                    .object()
                    .is_ok_and(|o| o.namespace.as_deref().unwrap_or_default() == namespace)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
