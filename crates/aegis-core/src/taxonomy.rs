//! The failure taxonomy: the root-cause categories an incident can be filed under.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A root-cause category. The serialized identifiers are part of the output contract.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    MissingEnvVar,
    MissingConfigRef,
    ImageNotFound,
    ImagePullAuth,
    InvalidImageName,
    OomKilled,
    LivenessProbeFailure,
    ReadinessProbeFailure,
    StartupProbeFailure,
    InsufficientResources,
    UnschedulableConstraints,
    PvcPending,
    VolumeMountFailure,
    ServiceSelectorMismatch,
    ServicePortMismatch,
    CommandNotFound,
    AppCrash,
    RolloutStuck,
    JobFailed,
    NodeNotReady,
    IngressBackendMissing,
    HpaMisconfigured,
    /// A node the kubelet reports under memory, disk or PID pressure, or without a network.
    NodePressure,
    /// Storage set up so that claims cannot be served: more than one default StorageClass, a
    /// claim naming a class that does not exist, a claim whose volume is lost.
    StorageMisconfigured,
    /// A workload that runs with more privilege than it needs (only from the Security
    /// analyzer, which runs when asked for).
    SecurityRisk,
    /// An admission webhook whose Service is missing or has no ready endpoint: the API server
    /// refuses (or, with `failurePolicy: Ignore`, skips) the requests it matches.
    WebhookUnavailable,
    /// A PodDisruptionBudget that selects nothing, or lets no healthy pod be evicted (node
    /// drains wait on it forever).
    PdbMisconfigured,
    /// A NetworkPolicy whose pod selector matches no pod or workload.
    NetworkPolicyMisconfigured,
    /// A Gateway API object that cannot route: a GatewayClass no controller accepts, a Gateway
    /// whose class is missing or that is not programmed, an HTTPRoute whose Gateway, listener or
    /// backend Service does not admit or exist.
    GatewayMisconfigured,
    /// A custom resource whose controller reports it not working (`Ready=False`, `Degraded=True`
    /// and the like in its status conditions).
    CustomResourceUnhealthy,
    Unknown,
}

impl Category {
    /// Every category, in the order of the taxonomy table.
    pub const ALL: [Self; 31] = [
        Self::MissingEnvVar,
        Self::MissingConfigRef,
        Self::ImageNotFound,
        Self::ImagePullAuth,
        Self::InvalidImageName,
        Self::OomKilled,
        Self::LivenessProbeFailure,
        Self::ReadinessProbeFailure,
        Self::StartupProbeFailure,
        Self::InsufficientResources,
        Self::UnschedulableConstraints,
        Self::PvcPending,
        Self::VolumeMountFailure,
        Self::ServiceSelectorMismatch,
        Self::ServicePortMismatch,
        Self::CommandNotFound,
        Self::AppCrash,
        Self::RolloutStuck,
        Self::JobFailed,
        Self::NodeNotReady,
        Self::IngressBackendMissing,
        Self::HpaMisconfigured,
        Self::NodePressure,
        Self::StorageMisconfigured,
        Self::SecurityRisk,
        Self::WebhookUnavailable,
        Self::PdbMisconfigured,
        Self::NetworkPolicyMisconfigured,
        Self::GatewayMisconfigured,
        Self::CustomResourceUnhealthy,
        Self::Unknown,
    ];

    /// The identifier used in JSON output and configuration (`missing-env-var`).
    pub fn id(self) -> &'static str {
        match self {
            Self::MissingEnvVar => "missing-env-var",
            Self::MissingConfigRef => "missing-config-ref",
            Self::ImageNotFound => "image-not-found",
            Self::ImagePullAuth => "image-pull-auth",
            Self::InvalidImageName => "invalid-image-name",
            Self::OomKilled => "oom-killed",
            Self::LivenessProbeFailure => "liveness-probe-failure",
            Self::ReadinessProbeFailure => "readiness-probe-failure",
            Self::StartupProbeFailure => "startup-probe-failure",
            Self::InsufficientResources => "insufficient-resources",
            Self::UnschedulableConstraints => "unschedulable-constraints",
            Self::PvcPending => "pvc-pending",
            Self::VolumeMountFailure => "volume-mount-failure",
            Self::ServiceSelectorMismatch => "service-selector-mismatch",
            Self::ServicePortMismatch => "service-port-mismatch",
            Self::CommandNotFound => "command-not-found",
            Self::AppCrash => "app-crash",
            Self::RolloutStuck => "rollout-stuck",
            Self::JobFailed => "job-failed",
            Self::NodeNotReady => "node-not-ready",
            Self::IngressBackendMissing => "ingress-backend-missing",
            Self::HpaMisconfigured => "hpa-misconfigured",
            Self::NodePressure => "node-pressure",
            Self::StorageMisconfigured => "storage-misconfigured",
            Self::SecurityRisk => "security-risk",
            Self::WebhookUnavailable => "webhook-unavailable",
            Self::PdbMisconfigured => "pdb-misconfigured",
            Self::NetworkPolicyMisconfigured => "network-policy-misconfigured",
            Self::GatewayMisconfigured => "gateway-misconfigured",
            Self::CustomResourceUnhealthy => "custom-resource-unhealthy",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a category identifier.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// How specific a category is; when one workload shows several, the most specific explains
    /// the others (an OOM kill explains the restarts that make a rollout stuck).
    pub fn specificity(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::AppCrash | Self::RolloutStuck | Self::JobFailed => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_round_trips_through_its_id_and_serde() {
        for category in Category::ALL {
            assert_eq!(Category::from_id(category.id()), Some(category));
            let json = serde_json::to_string(&category).expect("serializes");
            assert_eq!(json, format!("\"{}\"", category.id()));
        }
    }
}
