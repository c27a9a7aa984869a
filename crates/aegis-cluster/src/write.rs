//! Writes beside reads: what the shadow (and the change engine after it) may do to a cluster.
//!
//! Objects travel as JSON values with `apiVersion`, `kind` and `metadata`, as the API server
//! takes them. The live source writes through kube-rs (server-side apply with field manager
//! `aegis`, patches with `dryRun=All` when asked, watches to wait); the simulator writes into its
//! world and waits by advancing its clock. Snapshots are files: they implement no writes.

use std::fmt;
use std::time::Duration;

use aegis_core::PatchType;
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// The field manager every write of AEGIS uses.
pub const FIELD_MANAGER: &str = "aegis";

/// The address of one object: enough to write it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The address of an object given as JSON, or what it lacks.
    pub fn of(object: &Value) -> WriteResult<Self> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        let (Some(api_version), Some(kind), Some(name)) = (
            text("/apiVersion"),
            text("/kind"),
            text("/metadata/name").filter(|n| !n.is_empty()),
        ) else {
            return Err(WriteError::Invalid {
                object: "object".to_owned(),
                reason: "it needs apiVersion, kind and metadata.name".to_owned(),
            });
        };
        Ok(Self::new(
            api_version,
            kind,
            text("/metadata/namespace"),
            name,
        ))
    }

    /// The kinds AEGIS writes are namespaced unless they are one of these.
    pub fn is_cluster_scoped_kind(kind: &str) -> bool {
        matches!(kind, "Namespace" | "Node" | "PersistentVolume")
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Whether a write is only checked by the API server (`dryRun=All`) or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Admission and validation run; nothing is stored.
    All,
    /// The write is made.
    No,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The object itself is wrong (validation, a patch that does not apply).
    #[error("{object} is invalid: {reason}")]
    Invalid { object: String, reason: String },
    /// Admission or authorization refused it (Pod Security, RBAC, a namespace being deleted).
    #[error("the cluster refused {action} {object}: {reason}")]
    Refused {
        action: &'static str,
        object: String,
        reason: String,
    },
    /// Someone else changed it first (HTTP 409).
    #[error("{object} conflicts with a change made meanwhile: {reason}")]
    Conflict { object: String, reason: String },
    #[error("{object} not found")]
    NotFound { object: String },
    /// AEGIS has no API mapping for the kind.
    #[error("AEGIS does not write objects of kind {kind} ({api_version})")]
    UnsupportedKind { api_version: String, kind: String },
    /// The API server could not be reached or answered with an error of its own.
    #[error("cluster request failed ({action} {object}): {reason}")]
    Transport {
        action: &'static str,
        object: String,
        reason: String,
    },
}

pub type WriteResult<T> = std::result::Result<T, WriteError>;

/// Write access to a cluster.
pub trait ClusterWrite: Send + Sync {
    /// The cluster's clock: wall time on a live cluster, the simulated clock on the mock world.
    fn now(&self) -> Timestamp;

    /// Creates or updates `object` by server-side apply (field manager [`FIELD_MANAGER`]);
    /// returns the object as stored (or as it would be, on a dry run).
    fn apply<'a>(&'a self, object: &'a Value, dry_run: DryRun)
    -> BoxFuture<'a, WriteResult<Value>>;

    /// Patches one object; returns the object as stored (or as it would be, on a dry run).
    fn patch<'a>(
        &'a self,
        target: &'a ObjectRef,
        patch_type: PatchType,
        patch: &'a Value,
        dry_run: DryRun,
    ) -> BoxFuture<'a, WriteResult<Value>>;

    /// Reads one object, `None` when it does not exist.
    fn get<'a>(&'a self, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<Option<Value>>>;

    /// Lists the objects of a kind (in one namespace, or cluster-wide) whose labels match
    /// `label_selector` (`key=value,…`).
    fn list<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: Option<&'a str>,
        label_selector: &'a str,
    ) -> BoxFuture<'a, WriteResult<Vec<Value>>>;

    /// Deletes one object (a namespace with everything in it); `false` when it was already gone.
    fn delete<'a>(&'a self, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<bool>>;

    /// Waits until something changes in `namespace` or `timeout` passes, whichever is first: a
    /// watch on a live cluster, the clock moving on the simulator.
    fn wait<'a>(&'a self, namespace: &'a str, timeout: Duration) -> BoxFuture<'a, WriteResult<()>>;

    /// Whether these credentials may `verb` the object `target` names, asked without trying
    /// (a SelfSubjectAccessReview on a live cluster; worlds without authorization allow all).
    fn may<'a>(&'a self, verb: &'a str, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<bool>> {
        let _ = (verb, target);
        Box::pin(std::future::ready(Ok(true)))
    }
}
