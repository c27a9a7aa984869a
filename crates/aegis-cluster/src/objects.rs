//! Sorting Kubernetes objects (from files, API answers or the simulator) into a [`ClusterState`].
//!
//! Objects are decoded straight into their typed form from whatever carries them — a JSON value
//! or the YAML text of one item — so large snapshots never hold an untyped copy of every object.

use aegis_core::ClusterState;
use aegis_core::state::CustomObject;
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
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Scope;

/// Something an object can be decoded from.
pub trait Decoder {
    fn decode<T: DeserializeOwned>(self) -> Result<T, String>;
}

impl Decoder for Value {
    fn decode<T: DeserializeOwned>(self) -> Result<T, String> {
        serde_json::from_value(self).map_err(|e| e.to_string())
    }
}

/// The YAML text of one item of a List as kubectl writes it: `- ` before its first line and
/// every other line indented by two spaces.
#[derive(Debug, Clone, Copy)]
pub struct YamlItem<'a>(pub &'a str);

impl YamlItem<'_> {
    /// The item's text re-indented to stand alone.
    pub fn standalone(self) -> String {
        let mut text = String::with_capacity(self.0.len());
        for (number, line) in self.0.split_inclusive('\n').enumerate() {
            let line = if number == 0 {
                line.strip_prefix("- ").unwrap_or(line)
            } else {
                line.strip_prefix("  ").unwrap_or(line)
            };
            text.push_str(line);
        }
        text
    }
}

impl Decoder for YamlItem<'_> {
    /// Straight from the List's text through the fast reader; anything it cannot read, through
    /// the general YAML parser after re-indenting.
    fn decode<T: DeserializeOwned>(self) -> Result<T, String> {
        if let Some(value) = crate::yaml::from_item(self.0) {
            return Ok(value);
        }
        serde_yaml::from_str(&self.standalone()).map_err(|e| e.to_string())
    }
}

/// One typed object of a kind AEGIS reads, or a note that another kind was seen.
// Each object is moved into the state right after decoding; boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Object {
    Namespace(Namespace),
    Pod(Pod),
    Deployment(Deployment),
    ReplicaSet(ReplicaSet),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    Job(Job),
    CronJob(CronJob),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Node(Node),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Ingress(Ingress),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Event(Event),
    ControllerRevision(ControllerRevision),
    StorageClass(StorageClass),
    PodDisruptionBudget(PodDisruptionBudget),
    NetworkPolicy(NetworkPolicy),
    ValidatingWebhookConfiguration(ValidatingWebhookConfiguration),
    MutatingWebhookConfiguration(MutatingWebhookConfiguration),
    /// A custom resource AEGIS analyses: the Gateway API's kinds, and any whose status carries
    /// conditions (see [`is_custom_group`]).
    Custom(CustomObject),
    Other {
        namespace: Option<String>,
    },
}

/// Whether an API group is served by CustomResourceDefinitions rather than the API server
/// itself: groups of built-in kinds are empty, dot-less (`apps`) or end in `.k8s.io`; the
/// Gateway API (`gateway.networking.k8s.io`) and the SIG projects' `*.x-k8s.io` groups are CRDs.
pub fn is_custom_group(group: &str) -> bool {
    group == GATEWAY_GROUP
        || group.ends_with(".x-k8s.io")
        || (group.contains('.') && !group.ends_with(".k8s.io"))
}

/// The Gateway API's group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Whether a custom object of `kind` in `group` with `status` is worth keeping: a Gateway API
/// kind AEGIS analyses, or one whose status carries conditions.
pub fn keeps_custom(group: &str, kind: &str, status: &Value) -> bool {
    (group == GATEWAY_GROUP && matches!(kind, "GatewayClass" | "Gateway" | "HTTPRoute"))
        || status.get("conditions").is_some_and(Value::is_array)
}

impl Object {
    /// Decodes an object of `kind` in `api_version`.
    pub fn decode(api_version: &str, kind: &str, decoder: impl Decoder) -> Result<Self, String> {
        if kind.is_empty() {
            return Err("the document has no `kind`".to_owned());
        }
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        Ok(match (group, kind) {
            ("", "Pod") => Self::Pod(decoder.decode()?),
            ("", "Namespace") => Self::Namespace(decoder.decode()?),
            ("", "Service") => Self::Service(decoder.decode()?),
            ("", "Node") => Self::Node(decoder.decode()?),
            ("", "PersistentVolumeClaim") => Self::PersistentVolumeClaim(decoder.decode()?),
            ("", "ConfigMap") => Self::ConfigMap(decoder.decode()?),
            ("", "Secret") => {
                let mut secret: Secret = decoder.decode()?;
                ClusterState::redact_secret(&mut secret);
                Self::Secret(secret)
            }
            ("", "Event") => Self::Event(decoder.decode()?),
            ("apps", "Deployment") => Self::Deployment(decoder.decode()?),
            ("apps", "ReplicaSet") => Self::ReplicaSet(decoder.decode()?),
            ("apps", "StatefulSet") => Self::StatefulSet(decoder.decode()?),
            ("apps", "DaemonSet") => Self::DaemonSet(decoder.decode()?),
            ("apps", "ControllerRevision") => Self::ControllerRevision(decoder.decode()?),
            ("storage.k8s.io", "StorageClass") => Self::StorageClass(decoder.decode()?),
            ("batch", "Job") => Self::Job(decoder.decode()?),
            ("batch", "CronJob") => Self::CronJob(decoder.decode()?),
            ("discovery.k8s.io", "EndpointSlice") => Self::EndpointSlice(decoder.decode()?),
            ("networking.k8s.io", "Ingress") => Self::Ingress(decoder.decode()?),
            ("networking.k8s.io", "NetworkPolicy") => Self::NetworkPolicy(decoder.decode()?),
            ("policy", "PodDisruptionBudget") if api_version == "policy/v1" => {
                Self::PodDisruptionBudget(decoder.decode()?)
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")
                if api_version == "admissionregistration.k8s.io/v1" =>
            {
                Self::ValidatingWebhookConfiguration(decoder.decode()?)
            }
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")
                if api_version == "admissionregistration.k8s.io/v1" =>
            {
                Self::MutatingWebhookConfiguration(decoder.decode()?)
            }
            ("autoscaling", "HorizontalPodAutoscaler") if api_version == "autoscaling/v2" => {
                Self::HorizontalPodAutoscaler(decoder.decode()?)
            }
            _ if is_custom_group(group) => {
                let object: CustomObject = decoder.decode()?;
                if keeps_custom(group, kind, &object.status) {
                    Self::Custom(object)
                } else {
                    Self::Other {
                        namespace: object.metadata.namespace,
                    }
                }
            }
            _ => {
                #[derive(serde::Deserialize)]
                struct Meta {
                    #[serde(default)]
                    metadata: Option<ObjectMeta>,
                }
                let meta: Meta = decoder.decode().unwrap_or(Meta { metadata: None });
                Self::Other {
                    namespace: meta.metadata.and_then(|m| m.namespace),
                }
            }
        })
    }

    /// The Kubernetes `kind` of a typed object.
    pub fn kind(&self) -> Option<&str> {
        Some(match self {
            Self::Namespace(_) => "Namespace",
            Self::Pod(_) => "Pod",
            Self::Deployment(_) => "Deployment",
            Self::ReplicaSet(_) => "ReplicaSet",
            Self::StatefulSet(_) => "StatefulSet",
            Self::DaemonSet(_) => "DaemonSet",
            Self::Job(_) => "Job",
            Self::CronJob(_) => "CronJob",
            Self::Service(_) => "Service",
            Self::EndpointSlice(_) => "EndpointSlice",
            Self::Node(_) => "Node",
            Self::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Self::Ingress(_) => "Ingress",
            Self::HorizontalPodAutoscaler(_) => "HorizontalPodAutoscaler",
            Self::ConfigMap(_) => "ConfigMap",
            Self::Secret(_) => "Secret",
            Self::Event(_) => "Event",
            Self::ControllerRevision(_) => "ControllerRevision",
            Self::StorageClass(_) => "StorageClass",
            Self::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Self::NetworkPolicy(_) => "NetworkPolicy",
            Self::ValidatingWebhookConfiguration(_) => "ValidatingWebhookConfiguration",
            Self::MutatingWebhookConfiguration(_) => "MutatingWebhookConfiguration",
            Self::Custom(o) => &o.kind,
            Self::Other { .. } => return None,
        })
    }

    fn namespace(&self) -> Option<&str> {
        let meta = match self {
            Self::Namespace(o) => &o.metadata,
            Self::Pod(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::ReplicaSet(o) => &o.metadata,
            Self::StatefulSet(o) => &o.metadata,
            Self::DaemonSet(o) => &o.metadata,
            Self::Job(o) => &o.metadata,
            Self::CronJob(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::EndpointSlice(o) => &o.metadata,
            Self::Node(o) => &o.metadata,
            Self::PersistentVolumeClaim(o) => &o.metadata,
            Self::Ingress(o) => &o.metadata,
            Self::HorizontalPodAutoscaler(o) => &o.metadata,
            Self::ConfigMap(o) => &o.metadata,
            Self::Secret(o) => &o.metadata,
            Self::Event(o) => &o.metadata,
            Self::ControllerRevision(o) => &o.metadata,
            Self::StorageClass(o) => &o.metadata,
            Self::PodDisruptionBudget(o) => &o.metadata,
            Self::NetworkPolicy(o) => &o.metadata,
            Self::ValidatingWebhookConfiguration(o) => &o.metadata,
            Self::MutatingWebhookConfiguration(o) => &o.metadata,
            Self::Custom(o) => &o.metadata,
            Self::Other { namespace } => return namespace.as_deref(),
        };
        meta.namespace.as_deref()
    }
}

/// Accepts Kubernetes objects one at a time and files them by kind.
#[derive(Debug, Default)]
pub struct ObjectSink {
    pub state: ClusterState,
    /// Objects outside this scope are skipped.
    pub scope: Scope,
    /// The kinds of the typed objects offered, inside the scope or not.
    pub kinds: std::collections::BTreeSet<String>,
}

impl ObjectSink {
    /// A sink keeping only objects inside `scope`.
    pub fn new(scope: Scope) -> Self {
        Self {
            state: ClusterState::default(),
            scope,
            kinds: std::collections::BTreeSet::new(),
        }
    }

    /// Adds one untyped object, or every item of a `List`. Returns the number of objects
    /// added, or why the object (or the first bad item of a list) could not be read.
    pub fn add(&mut self, value: Value) -> Result<usize, String> {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind.ends_with("List") {
            // A typed list (`SecretList`) says its kind was read, even when it holds nothing.
            if let Some(item_kind) = kind.strip_suffix("List")
                && !item_kind.is_empty()
            {
                self.kinds.insert(item_kind.to_owned());
            }
            let items = match value {
                Value::Object(mut map) => map.remove("items"),
                _ => None,
            };
            let Some(Value::Array(items)) = items else {
                // A List without items holds nothing.
                return Ok(0);
            };
            let mut added = 0;
            let mut first_error = None;
            for (index, item) in items.into_iter().enumerate() {
                match self.add(item) {
                    Ok(n) => added += n,
                    Err(e) => {
                        first_error.get_or_insert_with(|| format!("item {index}: {e}"));
                    }
                }
            }
            return match first_error {
                Some(error) => Err(format!("{error} ({added} other objects loaded)")),
                None => Ok(added),
            };
        }
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let object = Object::decode(&api_version, &kind, value).map_err(|e| match name {
            Some(name) => format!("{kind} `{name}`: {e}"),
            None => e,
        })?;
        Ok(usize::from(self.push(object)))
    }

    /// Makes room for `count` more objects of `kind` ahead of a large load, so that the
    /// biggest kinds are not copied as their lists grow. Only for a scope of every namespace,
    /// where every object offered is kept.
    pub fn reserve(&mut self, kind: &str, count: usize) {
        if self.scope.namespace.is_some() {
            return;
        }
        let state = &mut self.state;
        match kind {
            "Pod" => state.pods.reserve_exact(count),
            "Event" => state.events.reserve_exact(count),
            "ReplicaSet" => state.replica_sets.reserve_exact(count),
            "Deployment" => state.deployments.reserve_exact(count),
            "EndpointSlice" => state.endpoint_slices.reserve_exact(count),
            "Service" => state.services.reserve_exact(count),
            "ConfigMap" => state.config_maps.reserve_exact(count),
            "Node" => state.nodes.reserve_exact(count),
            _ => {}
        }
    }

    /// Files a typed object; returns whether it was inside the scope.
    pub fn push(&mut self, object: Object) -> bool {
        if matches!(object, Object::Secret(_)) && !self.scope.secrets {
            return false;
        }
        if let Some(kind) = object.kind()
            && !self.kinds.contains(kind)
        {
            self.kinds.insert(kind.to_owned());
        }
        if !self.scope.includes(object.namespace()) {
            return false;
        }
        let state = &mut self.state;
        match object {
            Object::Namespace(o) => state.namespaces.push(o),
            Object::Pod(o) => state.pods.push(o),
            Object::Deployment(o) => state.deployments.push(o),
            Object::ReplicaSet(o) => state.replica_sets.push(o),
            Object::StatefulSet(o) => state.stateful_sets.push(o),
            Object::DaemonSet(o) => state.daemon_sets.push(o),
            Object::Job(o) => state.jobs.push(o),
            Object::CronJob(o) => state.cron_jobs.push(o),
            Object::Service(o) => state.services.push(o),
            Object::EndpointSlice(o) => state.endpoint_slices.push(o),
            Object::Node(o) => state.nodes.push(o),
            Object::PersistentVolumeClaim(o) => state.persistent_volume_claims.push(o),
            Object::Ingress(o) => state.ingresses.push(o),
            Object::HorizontalPodAutoscaler(o) => state.horizontal_pod_autoscalers.push(o),
            Object::ConfigMap(o) => state.config_maps.push(o),
            Object::Secret(o) => state.secrets.push(o),
            Object::Event(o) => state.events.push(o),
            Object::ControllerRevision(o) => state.controller_revisions.push(o),
            Object::StorageClass(o) => state.storage_classes.push(o),
            Object::PodDisruptionBudget(o) => state.pod_disruption_budgets.push(o),
            Object::NetworkPolicy(o) => state.network_policies.push(o),
            Object::ValidatingWebhookConfiguration(o) => state.validating_webhooks.push(o),
            Object::MutatingWebhookConfiguration(o) => state.mutating_webhooks.push(o),
            Object::Custom(o) => state.custom_objects.push(o),
            Object::Other { .. } => state.other_objects += 1,
        }
        true
    }
}
