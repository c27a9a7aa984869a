//! The live source: a real cluster through kube-rs, read-only.
//!
//! One paginated List per kind, all kinds at once; events come in the same single List and are
//! indexed once by the analyzers. Logs are fetched only for failing containers, one pod per
//! owning controller, so a crash-looping Deployment of 500 replicas costs two log requests.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use aegis_core::state::{CustomObject, LogKey};
use aegis_core::{ClusterState, SourceKind};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
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
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;

use crate::objects::{GATEWAY_GROUP, keeps_custom};
use crate::{ClusterRead, Error, LoadWarning, Loaded, Result, Scope};

mod write;

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// A kubeconfig file; when unset, `KUBECONFIG`, `~/.kube/config`, or the in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; when unset, the current one.
    pub context: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Lines of each failing container's log to read.
    pub log_tail_lines: i64,
}

/// The kinds the live source lists, and whether each is listed only for a view with the
/// cluster-scoped objects (those kinds, and the policies a shadow namespace never holds).
const LISTED_KINDS: [(&str, bool); 23] = [
    ("Namespace", true),
    ("Node", true),
    ("StorageClass", true),
    ("Pod", false),
    ("Deployment", false),
    ("ReplicaSet", false),
    ("StatefulSet", false),
    ("DaemonSet", false),
    ("Job", false),
    ("CronJob", false),
    ("Service", false),
    ("EndpointSlice", false),
    ("PersistentVolumeClaim", false),
    ("Ingress", false),
    ("HorizontalPodAutoscaler", false),
    ("ConfigMap", false),
    ("Secret", false),
    ("Event", false),
    ("ControllerRevision", false),
    ("PodDisruptionBudget", true),
    ("NetworkPolicy", true),
    ("ValidatingWebhookConfiguration", true),
    ("MutatingWebhookConfiguration", true),
];

/// The custom kind a CustomResourceDefinition serves, as an API resource and whether it is
/// namespaced, when AEGIS analyses it: a Gateway API kind it knows, or a kind whose schema (of
/// the stored version, else the first served) gives `status.conditions`.
pub fn analysed_custom_kind(definition: &CustomResourceDefinition) -> Option<(ApiResource, bool)> {
    let spec = &definition.spec;
    let version = spec
        .versions
        .iter()
        .find(|v| v.storage && v.served)
        .or_else(|| spec.versions.iter().find(|v| v.served))?;
    let gateway = spec.group == GATEWAY_GROUP
        && matches!(
            spec.names.kind.as_str(),
            "GatewayClass" | "Gateway" | "HTTPRoute"
        );
    let status = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.properties.as_ref())
        .and_then(|p| p.get("status"));
    let conditions = status.is_some_and(|status| {
        status
            .properties
            .as_ref()
            .is_some_and(|p| p.contains_key("conditions"))
    });
    (gateway || conditions).then(|| {
        (
            ApiResource {
                group: spec.group.clone(),
                version: version.name.clone(),
                api_version: format!("{}/{}", spec.group, version.name),
                kind: spec.names.kind.clone(),
                plural: spec.names.plural.clone(),
            },
            spec.scope == "Namespaced",
        )
    })
}

/// A custom kind's List: the kind, its objects, why it could not be listed.
type Listed = (ApiResource, (Vec<DynamicObject>, Option<LoadWarning>));

/// The custom object a listed or watched object of `resource` is, when it is worth judging
/// ([`keeps_custom`]).
pub fn custom_object(resource: &ApiResource, mut object: DynamicObject) -> Option<CustomObject> {
    let mut take = |field: &str| {
        object
            .data
            .get_mut(field)
            .map(serde_json::Value::take)
            .unwrap_or_default()
    };
    let status = take("status");
    if !keeps_custom(&resource.group, &resource.kind, &status) {
        return None;
    }
    let spec = take("spec");
    Some(CustomObject {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        metadata: object.metadata,
        spec,
        status,
    })
}

/// Lists of custom kinds in flight at once.
const LIST_CONCURRENCY: usize = 8;

/// Objects per page of a List.
const PAGE_SIZE: u32 = 500;
/// Failing pods whose logs are read, at most.
const MAX_LOG_PODS: usize = 100;
/// Log requests in flight at once.
const LOG_CONCURRENCY: usize = 8;

/// The log of a container's previous instance, by pod uid, container and restart count: it no
/// longer changes, so a source that reads the same pods again (a shadow's looks, every second)
/// fetches it once. `None` records that it could not be read.
type PreviousLogs = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<(String, String, i32), Option<String>>>,
>;

/// Reads a live cluster.
#[derive(Clone)]
pub struct LiveSource {
    client: Client,
    server: String,
    default_namespace: String,
    log_tail_lines: i64,
    previous_logs: PreviousLogs,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// Builds a client from the kubeconfig and checks that the API server answers.
    pub async fn connect(options: &LiveOptions) -> Result<Self> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match &options.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(kubeconfig, &kube_options)
                    .await
                    .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?
            }
            None if options.context.is_some() => Config::from_kubeconfig(&kube_options)
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?,
            None => Config::infer()
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?,
        };
        config.connect_timeout = Some(options.connect_timeout);
        config.read_timeout = Some(options.read_timeout);
        let server = config.cluster_url.to_string();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| Error::Kubeconfig(e.to_string()))?;
        let source = Self {
            client,
            server,
            default_namespace,
            log_tail_lines: options.log_tail_lines,
            previous_logs: PreviousLogs::default(),
        };
        let deadline = options.connect_timeout + options.read_timeout;
        match tokio::time::timeout(deadline, source.client.apiserver_version()).await {
            Ok(Ok(_)) => Ok(source),
            Ok(Err(e)) => Err(Error::Unreachable {
                server: source.server.clone(),
                reason: error_chain(&e),
            }),
            Err(_) => Err(Error::Unreachable {
                server: source.server.clone(),
                reason: format!("no answer within {} s", deadline.as_secs()),
            }),
        }
    }

    /// Wraps an existing client (tests use a mock API server).
    pub fn from_client(client: Client, server: &str, log_tail_lines: i64) -> Self {
        Self {
            default_namespace: client.default_namespace().to_owned(),
            client,
            server: server.to_owned(),
            log_tail_lines,
            previous_logs: PreviousLogs::default(),
        }
    }

    /// The namespace of the kubeconfig context.
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// The API server's URL.
    /// The kube client, for callers that watch (the operator).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    async fn list<K>(&self, scope: &Scope) -> Result<(Vec<K>, Option<LoadWarning>)>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        let api: Api<K> = match &scope.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        self.paginate(&api).await
    }

    async fn list_cluster<K>(&self, scope: &Scope) -> Result<(Vec<K>, Option<LoadWarning>)>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = k8s_openapi::ClusterResourceScope>,
    {
        if !scope.cluster_objects {
            return Ok((Vec::new(), None));
        }
        self.paginate(&Api::<K>::all(self.client.clone())).await
    }

    async fn paginate<K>(&self, api: &Api<K>) -> Result<(Vec<K>, Option<LoadWarning>)>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        self.paginate_kind(api, K::kind(&()).into_owned()).await
    }

    /// The objects of the kinds CustomResourceDefinitions serve that AEGIS analyses: the Gateway
    /// API's, and those whose schema gives `status.conditions` (one List of the definitions,
    /// then one paged List per such kind). Returns them, the kinds read, and the warnings.
    async fn list_custom(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<CustomObject>, Vec<String>, Vec<LoadWarning>)> {
        if !scope.cluster_objects {
            return Ok(Default::default());
        }
        let (definitions, warning) = self
            .paginate(&Api::<CustomResourceDefinition>::all(self.client.clone()))
            .await?;
        let mut warnings: Vec<LoadWarning> = warning.into_iter().collect();
        let wanted: Vec<(ApiResource, bool)> = definitions
            .iter()
            .filter_map(analysed_custom_kind)
            .collect();
        let lists: Vec<Result<Listed>> = futures::stream::iter(wanted)
            .map(|(resource, namespaced)| async move {
                let api: Api<DynamicObject> = match (&scope.namespace, namespaced) {
                    (Some(namespace), true) => {
                        Api::namespaced_with(self.client.clone(), namespace, &resource)
                    }
                    _ => Api::all_with(self.client.clone(), &resource),
                };
                let listed = self.paginate_kind(&api, resource.kind.clone()).await?;
                Ok((resource, listed))
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut objects = Vec::new();
        let mut kinds = Vec::new();
        for listed in lists {
            let (resource, (items, warning)) = listed?;
            match warning {
                Some(warning) => warnings.push(warning),
                None => kinds.push(resource.kind.clone()),
            }
            objects.extend(
                items
                    .into_iter()
                    .filter_map(|item| custom_object(&resource, item)),
            );
        }
        Ok((objects, kinds, warnings))
    }

    async fn paginate_kind<K>(
        &self,
        api: &Api<K>,
        kind: String,
    ) -> Result<(Vec<K>, Option<LoadWarning>)>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut items = Vec::new();
        let mut params = ListParams::default().limit(PAGE_SIZE);
        loop {
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {
                    let warning = LoadWarning {
                        location: kind.clone(),
                        reason: format!("not listed ({}): {}", status.code, status.message),
                    };
                    return Ok((items, Some(warning)));
                }
                Err(kube::Error::Api(status)) => {
                    return Err(Error::ListFailed {
                        kind,
                        reason: status.message,
                    });
                }
                Err(e) => {
                    return Err(Error::Unreachable {
                        server: self.server.clone(),
                        reason: error_chain(&e),
                    });
                }
            };
            // The first page says how many items follow: the list is allocated once, at its
            // final size, rather than copied as it doubles (a count past any real cluster's is
            // not taken at its word).
            if items.is_empty()
                && let Some(remaining) = page.metadata.remaining_item_count
            {
                let remaining = usize::try_from(remaining.clamp(0, 200_000)).unwrap_or_default();
                items.reserve_exact(page.items.len() + remaining);
            }
            // What analysis never reads is dropped page by page, so memory does not grow with
            // it: the fields' managers and kubectl's copy of the last applied object.
            items.extend(page.items.into_iter().map(|mut item| {
                let meta = item.meta_mut();
                meta.managed_fields = None;
                if let Some(annotations) = &mut meta.annotations {
                    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                }
                item
            }));
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok((items, None)),
            }
        }
    }

    async fn load_async(&self, scope: &Scope) -> Result<Loaded> {
        let mut warnings = Vec::new();
        let (
            namespaces,
            nodes,
            pods,
            deployments,
            replica_sets,
            stateful_sets,
            daemon_sets,
            jobs,
            cron_jobs,
            services,
            endpoint_slices,
            pvcs,
            ingresses,
            hpas,
            config_maps,
            secrets,
            events,
            controller_revisions,
            storage_classes,
            (budgets, policies, validating, mutating),
            (custom_objects, custom_kinds, custom_warnings),
        ) = futures::try_join!(
            self.list_cluster::<Namespace>(scope),
            self.list_cluster::<Node>(scope),
            self.list::<Pod>(scope),
            self.list::<Deployment>(scope),
            self.list::<ReplicaSet>(scope),
            self.list::<StatefulSet>(scope),
            self.list::<DaemonSet>(scope),
            self.list::<Job>(scope),
            self.list::<CronJob>(scope),
            self.list::<Service>(scope),
            self.list::<EndpointSlice>(scope),
            self.list::<PersistentVolumeClaim>(scope),
            self.list::<Ingress>(scope),
            self.list::<HorizontalPodAutoscaler>(scope),
            self.list::<ConfigMap>(scope),
            async {
                if scope.secrets {
                    self.list::<Secret>(scope).await
                } else {
                    Ok((Vec::new(), None))
                }
            },
            self.list::<Event>(scope),
            self.list::<ControllerRevision>(scope),
            self.list_cluster::<StorageClass>(scope),
            async {
                // A shadow's own objects (read at every look) hold no policies to judge.
                if !scope.cluster_objects {
                    return Ok(Default::default());
                }
                futures::try_join!(
                    self.list::<PodDisruptionBudget>(scope),
                    self.list::<NetworkPolicy>(scope),
                    self.list_cluster::<ValidatingWebhookConfiguration>(scope),
                    self.list_cluster::<MutatingWebhookConfiguration>(scope),
                )
            },
            self.list_custom(scope),
        )?;
        let mut state = ClusterState::default();
        macro_rules! take {
            ($field:ident, $value:expr) => {{
                let (items, warning) = $value;
                state.$field = items;
                warnings.extend(warning);
            }};
        }
        take!(namespaces, namespaces);
        take!(nodes, nodes);
        take!(pods, pods);
        take!(deployments, deployments);
        take!(replica_sets, replica_sets);
        take!(stateful_sets, stateful_sets);
        take!(daemon_sets, daemon_sets);
        take!(jobs, jobs);
        take!(cron_jobs, cron_jobs);
        take!(services, services);
        take!(endpoint_slices, endpoint_slices);
        take!(persistent_volume_claims, pvcs);
        take!(ingresses, ingresses);
        take!(horizontal_pod_autoscalers, hpas);
        take!(config_maps, config_maps);
        take!(secrets, secrets);
        take!(events, events);
        take!(controller_revisions, controller_revisions);
        take!(storage_classes, storage_classes);
        take!(pod_disruption_budgets, budgets);
        take!(network_policies, policies);
        take!(validating_webhooks, validating);
        take!(mutating_webhooks, mutating);
        state.custom_objects = custom_objects;
        // The kinds read: every kind listed, less those refused (and the cluster-scoped ones
        // when the scope leaves them out).
        let mut read_kinds: std::collections::BTreeSet<String> = LISTED_KINDS
            .iter()
            .filter(|(_, cluster_scoped)| scope.cluster_objects || !cluster_scoped)
            .filter(|(kind, _)| scope.secrets || *kind != "Secret")
            .map(|(kind, _)| (*kind).to_owned())
            .collect();
        for warning in &warnings {
            read_kinds.remove(&warning.location);
        }
        read_kinds.extend(custom_kinds);
        warnings.extend(custom_warnings);
        state.read_kinds = Some(read_kinds);
        for secret in &mut state.secrets {
            ClusterState::redact_secret(secret);
        }
        if let Some(namespace) = &scope.namespace {
            state
                .namespaces
                .retain(|n| n.metadata.name.as_deref() == Some(namespace));
        }
        self.fetch_failing_logs(&mut state, |_| true).await;
        state.now = Some(k8s_openapi::jiff::Timestamp::now());
        Ok(Loaded { state, warnings })
    }

    /// Reads the logs of the failing containers of the pods of `state` that `wanted` chooses
    /// into it (one pod per owner, at most a hundred), as a load does; for callers that build
    /// their state another way (the operator's watch caches).
    pub async fn read_failing_logs_of(
        &self,
        state: &mut ClusterState,
        wanted: impl Fn(&k8s_openapi::api::core::v1::Pod) -> bool,
    ) {
        self.fetch_failing_logs(state, wanted).await;
    }

    /// Reads current and previous logs of failing containers, one pod per owner.
    async fn fetch_failing_logs(
        &self,
        state: &mut ClusterState,
        wanted: impl Fn(&k8s_openapi::api::core::v1::Pod) -> bool,
    ) {
        let mut seen_owners = HashSet::new();
        let mut requests = Vec::new();
        for pod in state.pods.iter().filter(|p| wanted(p)) {
            let Some(status) = &pod.status else { continue };
            let owner = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map_or_else(
                    || pod.metadata.uid.clone().unwrap_or_default(),
                    |o| o.uid.clone(),
                );
            let failing: Vec<_> = status
                .container_statuses
                .iter()
                .flatten()
                .filter(|c| container_is_failing(c))
                .collect();
            if failing.is_empty() || !seen_owners.insert(owner) {
                continue;
            }
            if seen_owners.len() > MAX_LOG_PODS {
                break;
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            for container in failing {
                let running_or_terminated = container
                    .state
                    .as_ref()
                    .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
                let key = |previous| LogKey {
                    namespace: namespace.clone(),
                    pod: name.clone(),
                    container: container.name.clone(),
                    previous,
                };
                if running_or_terminated || container.restart_count > 0 {
                    requests.push((key(false), None));
                }
                if container.restart_count > 0 {
                    let cache_key = (
                        pod.metadata.uid.clone().unwrap_or_default(),
                        container.name.clone(),
                        container.restart_count,
                    );
                    let known = self
                        .previous_logs
                        .lock()
                        .ok()
                        .and_then(|cache| cache.get(&cache_key).cloned());
                    match known {
                        Some(Some(log)) => {
                            state.logs.insert(key(true), log);
                        }
                        Some(None) => {}
                        None => requests.push((key(true), Some(cache_key))),
                    }
                }
            }
        }
        let tail_lines = self.log_tail_lines;
        let fetched: Vec<(LogKey, Option<String>)> = futures::stream::iter(requests)
            .map(|(key, cache_key)| {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
                async move {
                    let params = LogParams {
                        container: Some(key.container.clone()),
                        previous: key.previous,
                        tail_lines: Some(tail_lines),
                        ..LogParams::default()
                    };
                    let log = match api.logs(&key.pod, &params).await {
                        Ok(log) => Some(log),
                        Err(e) => {
                            tracing::debug!(pod = %key.pod, container = %key.container, error = %e, "log not read");
                            None
                        }
                    };
                    if let Some(cache_key) = cache_key
                        && let Ok(mut cache) = self.previous_logs.lock()
                    {
                        cache.insert(cache_key, log.clone());
                    }
                    (key, log)
                }
            })
            .buffer_unordered(LOG_CONCURRENCY)
            .collect()
            .await;
        for (key, log) in fetched {
            if let Some(log) = log {
                state.logs.insert(key, log);
            }
        }
    }
}

/// Whether a container shows signs that its log explains something.
fn container_is_failing(container: &k8s_openapi::api::core::v1::ContainerStatus) -> bool {
    let waiting_badly = container
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .is_some_and(|r| matches!(r, "CrashLoopBackOff" | "RunContainerError" | "Error"));
    let terminated_badly = container
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code != 0);
    let running_unready = container
        .state
        .as_ref()
        .is_some_and(|s| s.running.is_some())
        && !container.ready;
    container.restart_count > 0 || waiting_badly || terminated_badly || running_unready
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

impl ClusterRead for LiveSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Cluster
    }

    fn load<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Result<Loaded>> {
        self.load_async(scope).boxed()
    }
}
