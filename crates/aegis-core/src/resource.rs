//! Resource kinds and references, and the `KIND/NAME` syntax of the command line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kinds of object AEGIS reasons about, with kubectl's names for them. Kinds served by a
/// CustomResourceDefinition that AEGIS has no analyzer of its own for are [`Self::Custom`],
/// named by their `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Node,
    PersistentVolumeClaim,
    Ingress,
    HorizontalPodAutoscaler,
    ConfigMap,
    Secret,
    Namespace,
    StorageClass,
    PodDisruptionBudget,
    NetworkPolicy,
    ValidatingWebhookConfiguration,
    MutatingWebhookConfiguration,
    GatewayClass,
    Gateway,
    HTTPRoute,
    /// A custom resource's kind (its `kind` string, interned: see [`Self::custom`]).
    Custom(&'static str),
}

impl ResourceKind {
    /// Every kind, in the order used for listings.
    pub const ALL: [Self; 23] = [
        Self::Pod,
        Self::Deployment,
        Self::ReplicaSet,
        Self::StatefulSet,
        Self::DaemonSet,
        Self::Job,
        Self::CronJob,
        Self::Service,
        Self::Node,
        Self::PersistentVolumeClaim,
        Self::Ingress,
        Self::HorizontalPodAutoscaler,
        Self::ConfigMap,
        Self::Secret,
        Self::Namespace,
        Self::StorageClass,
        Self::PodDisruptionBudget,
        Self::NetworkPolicy,
        Self::ValidatingWebhookConfiguration,
        Self::MutatingWebhookConfiguration,
        Self::GatewayClass,
        Self::Gateway,
        Self::HTTPRoute,
    ];

    /// The kind of a custom resource named `kind`, or the known kind of that name. Kind names
    /// are interned once each (a cluster serves a bounded set of them), so the kind stays `Copy`.
    pub fn custom(kind: &str) -> Self {
        static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
            std::sync::Mutex::new(std::collections::BTreeSet::new());
        if let Some(known) = Self::from_kind(kind) {
            return known;
        }
        let mut names = NAMES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(name) = names.get(kind) {
            return Self::Custom(name);
        }
        let name: &'static str = Box::leak(kind.to_owned().into_boxed_str());
        names.insert(name);
        Self::Custom(name)
    }

    /// The Kubernetes `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::ReplicaSet => "ReplicaSet",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
            Self::Service => "Service",
            Self::Node => "Node",
            Self::PersistentVolumeClaim => "PersistentVolumeClaim",
            Self::Ingress => "Ingress",
            Self::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
            Self::Namespace => "Namespace",
            Self::StorageClass => "StorageClass",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::ValidatingWebhookConfiguration => "ValidatingWebhookConfiguration",
            Self::MutatingWebhookConfiguration => "MutatingWebhookConfiguration",
            Self::GatewayClass => "GatewayClass",
            Self::Gateway => "Gateway",
            Self::HTTPRoute => "HTTPRoute",
            Self::Custom(kind) => kind,
        }
    }

    /// The names kubectl accepts for this kind: singular, plural and short names.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::Pod => &["pod", "pods", "po"],
            Self::Deployment => &["deployment", "deployments", "deploy"],
            Self::ReplicaSet => &["replicaset", "replicasets", "rs"],
            Self::StatefulSet => &["statefulset", "statefulsets", "sts"],
            Self::DaemonSet => &["daemonset", "daemonsets", "ds"],
            Self::Job => &["job", "jobs"],
            Self::CronJob => &["cronjob", "cronjobs", "cj"],
            Self::Service => &["service", "services", "svc"],
            Self::Node => &["node", "nodes", "no"],
            Self::PersistentVolumeClaim => {
                &["persistentvolumeclaim", "persistentvolumeclaims", "pvc"]
            }
            Self::Ingress => &["ingress", "ingresses", "ing"],
            Self::HorizontalPodAutoscaler => {
                &["horizontalpodautoscaler", "horizontalpodautoscalers", "hpa"]
            }
            Self::ConfigMap => &["configmap", "configmaps", "cm"],
            Self::Secret => &["secret", "secrets"],
            Self::Namespace => &["namespace", "namespaces", "ns"],
            Self::StorageClass => &["storageclass", "storageclasses", "sc"],
            Self::PodDisruptionBudget => &["poddisruptionbudget", "poddisruptionbudgets", "pdb"],
            Self::NetworkPolicy => &["networkpolicy", "networkpolicies", "netpol"],
            Self::ValidatingWebhookConfiguration => &[
                "validatingwebhookconfiguration",
                "validatingwebhookconfigurations",
            ],
            Self::MutatingWebhookConfiguration => &[
                "mutatingwebhookconfiguration",
                "mutatingwebhookconfigurations",
            ],
            Self::GatewayClass => &["gatewayclass", "gatewayclasses", "gc"],
            Self::Gateway => &["gateway", "gateways", "gtw"],
            Self::HTTPRoute => &["httproute", "httproutes"],
            Self::Custom(_) => &[],
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(
            self,
            Self::Node
                | Self::Namespace
                | Self::StorageClass
                | Self::ValidatingWebhookConfiguration
                | Self::MutatingWebhookConfiguration
                | Self::GatewayClass
        )
    }

    /// Parses a Kubernetes `kind` string (`Deployment`), as found in manifests and owner references.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// Parses a kubectl resource name (`deploy`, `pods`, `Deployment`, `deployment.apps`).
    pub fn from_alias(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let base = lower.split('.').next().unwrap_or_default();
        Self::ALL
            .into_iter()
            .find(|k| k.aliases().contains(&base) || k.as_str().eq_ignore_ascii_case(base))
    }
}

impl Serialize for ResourceKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResourceKind {
    /// A known kind by its `kind` string; any other is a custom resource's kind.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let kind = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        if kind.is_empty() {
            return Err(serde::de::Error::custom("an empty kind"));
        }
        Ok(Self::custom(&kind))
    }
}

impl schemars::JsonSchema for ResourceKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ResourceKind".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An object's Kubernetes `kind` (Pod, Deployment, …, or a custom resource's kind).",
            "type": "string",
            "minLength": 1
        })
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to one object: kind, namespace (absent for cluster-scoped kinds) and name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ResourceRef {
    pub kind: ResourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ResourceRef {
    pub fn new(kind: ResourceKind, namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// A reference to a namespaced object.
    pub fn namespaced(kind: ResourceKind, namespace: &str, name: &str) -> Self {
        Self::new(kind, Some(namespace), name)
    }

    /// The namespace, or the empty string for cluster-scoped objects.
    pub fn namespace_str(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
}

impl fmt::Display for ResourceRef {
    /// Prints `namespace/kind/name` the way people read it: `production/Deployment/api-gateway`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// A `KIND/NAME` argument from the command line, before a namespace is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub kind: ResourceKind,
    pub name: String,
}

/// Why a `KIND/NAME` argument could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetParseError {
    #[error("`{0}` is not of the form KIND/NAME (for example pod/web-0 or deploy/api)")]
    MissingSlash(String),
    #[error("`{input}` names no resource kind AEGIS knows: `{kind}`; known kinds: {known}")]
    UnknownKind {
        input: String,
        kind: String,
        known: String,
    },
    #[error("`{0}` has an empty name after the slash")]
    EmptyName(String),
    #[error(
        "`{input}` has an invalid name `{name}`: names are lowercase letters, digits, '-' and '.'"
    )]
    InvalidName { input: String, name: String },
}

impl FromStr for TargetSpec {
    type Err = TargetParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let Some((kind, name)) = input.split_once('/') else {
            return Err(TargetParseError::MissingSlash(input.to_owned()));
        };
        let Some(kind) = ResourceKind::from_alias(kind) else {
            let known = ResourceKind::ALL
                .iter()
                .map(|k| k.aliases()[0])
                .collect::<Vec<_>>()
                .join(", ");
            return Err(TargetParseError::UnknownKind {
                input: input.to_owned(),
                kind: kind.to_owned(),
                known,
            });
        };
        if name.is_empty() {
            return Err(TargetParseError::EmptyName(input.to_owned()));
        }
        let valid = name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && !name.starts_with(['-', '.']);
        if !valid {
            return Err(TargetParseError::InvalidName {
                input: input.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(Self {
            kind,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.aliases()[0], self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_and_short_names_parse_to_kinds() {
        let cases = [
            ("pod/x", ResourceKind::Pod),
            ("po/x", ResourceKind::Pod),
            ("pods/x", ResourceKind::Pod),
            ("deployment/x", ResourceKind::Deployment),
            ("deploy/x", ResourceKind::Deployment),
            ("deployment.apps/x", ResourceKind::Deployment),
            ("svc/x", ResourceKind::Service),
            ("statefulset/x", ResourceKind::StatefulSet),
            ("sts/x", ResourceKind::StatefulSet),
            ("job/x", ResourceKind::Job),
            ("cronjob/x", ResourceKind::CronJob),
            ("node/x", ResourceKind::Node),
            ("pvc/x", ResourceKind::PersistentVolumeClaim),
            ("ingress/x", ResourceKind::Ingress),
            ("Deployment/x", ResourceKind::Deployment),
        ];
        for (input, kind) in cases {
            let parsed: TargetSpec = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.kind, kind, "{input}");
            assert_eq!(parsed.name, "x", "{input}");
        }
    }

    #[test]
    fn malformed_targets_are_rejected_with_the_reason() {
        let cases = [
            ("demo-nginx", "not of the form KIND/NAME"),
            ("widget/x", "names no resource kind"),
            ("pod/", "empty name"),
            ("pod/Demo_Nginx", "invalid name"),
        ];
        for (input, expected) in cases {
            let error = input.parse::<TargetSpec>().expect_err(input).to_string();
            assert!(error.contains(expected), "{input}: {error}");
        }
    }
}
