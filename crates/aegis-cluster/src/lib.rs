//! Access to a cluster behind one read interface, with three sources:
//!
//! - [`snapshot::SnapshotSource`] reads `kubectl get … -o yaml` dumps and a `logs/` tree;
//! - [`live::LiveSource`] reads a real cluster through kube-rs, one List per kind;
//! - [`sim::MockSource`] simulates the built-in demo world from a declared world model.
//!
//! Every source produces the same [`ClusterState`], so analysis cannot tell them apart.
//! Writes (server-side apply, patches, namespaces, waiting) are a second trait beside
//! [`ClusterRead`], [`write::ClusterWrite`], implemented by the live source and the simulator;
//! snapshots are read-only.

pub mod live;
#[cfg(feature = "mock-api-server")]
pub mod mock_api;
mod objects;
pub mod sim;
pub mod snapshot;
pub mod write;
mod yaml;

use std::path::PathBuf;

use aegis_core::{ClusterState, SourceKind};
use futures::future::BoxFuture;

pub use objects::{GATEWAY_GROUP, ObjectSink};
pub use write::{ClusterWrite, DryRun, ObjectRef, WriteError, WriteResult};

/// What part of the cluster to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// One namespace, or every namespace when `None`.
    pub namespace: Option<String>,
    /// Whether cluster-scoped objects (Namespaces, Nodes) are read too.
    pub cluster_objects: bool,
    /// Whether Secrets are listed (their values are blanked on arrival). The operator lists
    /// them only in shadow namespaces: its RBAC grants no Secret reads anywhere else.
    pub secrets: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Self::all()
    }
}

impl Scope {
    pub fn all() -> Self {
        Self {
            namespace: None,
            cluster_objects: true,
            secrets: true,
        }
    }

    /// One namespace, with the cluster-scoped objects analysis reads beside it.
    pub fn namespace(namespace: &str) -> Self {
        Self {
            namespace: Some(namespace.to_owned()),
            cluster_objects: true,
            secrets: true,
        }
    }

    /// One namespace's objects alone, without its Secrets: what watching a production change
    /// needs, at every interval, without listing every Node and Namespace of a large cluster.
    pub fn namespace_only(namespace: &str) -> Self {
        Self {
            namespace: Some(namespace.to_owned()),
            cluster_objects: false,
            secrets: false,
        }
    }

    /// A shadow namespace's objects, its Secrets (the placeholders AEGIS wrote) included.
    pub fn shadow(namespace: &str) -> Self {
        Self {
            secrets: true,
            ..Self::namespace_only(namespace)
        }
    }

    /// Whether an object in `namespace` (`None`: cluster-scoped) is inside the scope.
    pub fn includes(&self, namespace: Option<&str>) -> bool {
        match (&self.namespace, namespace) {
            (Some(wanted), Some(ns)) => wanted == ns,
            (_, None) => self.cluster_objects,
            (None, Some(_)) => true,
        }
    }
}

/// A problem that did not stop loading: a bad file, a kind the credentials may not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    /// Where: a file path, or a resource kind.
    pub location: String,
    pub reason: String,
}

impl std::fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

/// The state read from a source, with the problems met on the way.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub state: ClusterState,
    pub warnings: Vec<LoadWarning>,
}

/// Why a source could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read snapshot {path}: {reason}")]
    SnapshotUnreadable { path: PathBuf, reason: String },
    #[error("snapshot {path} holds no Kubernetes objects{detail}")]
    SnapshotEmpty { path: PathBuf, detail: String },
    #[error("cannot load kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cluster at {server} is unreachable: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("the cluster refused to list {kind}: {reason}")]
    ListFailed { kind: String, reason: String },
    #[error("the mock world is invalid: {0}")]
    World(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Read access to a cluster.
pub trait ClusterRead: Send + Sync {
    /// Which kind of source this is.
    fn kind(&self) -> SourceKind;

    /// Reads every object of the kinds AEGIS understands inside `scope`, with the logs of
    /// containers that are failing.
    fn load<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Result<Loaded>>;
}

/// A cluster that can be read and written: what a shadow runs on.
pub trait Cluster: ClusterRead + ClusterWrite {}

impl<T: ClusterRead + ClusterWrite> Cluster for T {}
