//! Shadow environments (SPEC §9): a namespace `aegis-shadow-<id>` isolated before anything runs
//! in it, holding a *baseline* clone of the workload (its spec unchanged) and a *candidate* clone
//! (the fix applied, after the policy check and a server-side dry run on the real target). The
//! baseline must reproduce the incident; the candidate must pass the plan's checks. The verdict
//! comes with an evidence bundle, and the shadow is deleted afterwards unless asked to stay, in
//! which case it expires by its TTL and is garbage-collected by the next shadow command.
//!
//! Nothing here writes outside a namespace labelled `aegis.io/shadow=true`: the only request
//! made to the production target is a dry run.

pub mod checks;
pub mod clone;
mod run;
pub mod verdict;

use std::time::Duration;

use aegis_cluster::{Cluster, ClusterWrite, ObjectRef, WriteError};
use aegis_core::Verdict;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

pub use run::{Created, Creation, ShadowRequest, Tracker, create, fix_hash, verify};

use crate::clone::{
    CREATED_ANNOTATION, EXPIRES_ANNOTATION, FIX_HASH_ANNOTATION, INCIDENT_ANNOTATION, SHADOW_LABEL,
    SOURCE_ANNOTATION, VERDICT_ANNOTATION,
};

/// The prefix of every shadow namespace's name.
pub const NAMESPACE_PREFIX: &str = "aegis-shadow-";

/// Why a shadow could not be created, run or cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot shadow {workload}: {source}")]
    Clone {
        workload: String,
        #[source]
        source: clone::CloneError,
    },
    #[error("{workload} is not in the source's state")]
    WorkloadMissing { workload: String },
    #[error("the fix policy denies the patch: {violations}")]
    PolicyDenied { violations: String },
    #[error("the patch does not apply to {target}: {reason}")]
    PatchDoesNotApply { target: String, reason: String },
    #[error("{count} shadows exist already, the limit set by shadow.max_concurrent")]
    TooMany { count: usize },
    #[error("{name} is not a shadow namespace (it lacks the label {SHADOW_LABEL}=true)")]
    NotAShadow { name: String },
    #[error("shadow {name} not found")]
    NotFound { name: String },
    #[error("cannot read the shadow namespace {namespace}: {source}")]
    Read {
        namespace: String,
        #[source]
        source: aegis_cluster::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A shadow as `aegis shadow list` shows it, read back from its namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowInfo {
    pub name: String,
    pub source_workload: String,
    pub incident: Option<String>,
    pub fix_hash: Option<String>,
    pub created: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    pub verdict: Option<Verdict>,
    /// The namespace is being deleted.
    pub terminating: bool,
}

impl ShadowInfo {
    fn from_namespace(namespace: &Value) -> Self {
        let annotation = |key: &str| {
            namespace
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let time = |key: &str| annotation(key).and_then(|t| t.parse().ok());
        Self {
            name: namespace
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            source_workload: annotation(SOURCE_ANNOTATION).unwrap_or_default(),
            incident: annotation(INCIDENT_ANNOTATION),
            fix_hash: annotation(FIX_HASH_ANNOTATION),
            created: time(CREATED_ANNOTATION),
            expires: time(EXPIRES_ANNOTATION),
            verdict: annotation(VERDICT_ANNOTATION)
                .and_then(|v| serde_json::from_value(Value::String(v)).ok()),
            terminating: namespace.pointer("/status/phase").and_then(Value::as_str)
                == Some("Terminating"),
        }
    }

    /// Whether the shadow outlived its TTL at `now` (one without an expiry never expires).
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }
}

/// Every shadow in the cluster, found by label, oldest first.
pub async fn list(cluster: &dyn ClusterWrite) -> Result<Vec<ShadowInfo>> {
    let namespaces = cluster
        .list("v1", "Namespace", None, &format!("{SHADOW_LABEL}=true"))
        .await?;
    let mut shadows: Vec<ShadowInfo> = namespaces.iter().map(ShadowInfo::from_namespace).collect();
    shadows.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(shadows)
}

/// Deletes one shadow; refuses a namespace that is not one.
pub async fn delete(cluster: &dyn ClusterWrite, name: &str) -> Result<()> {
    let reference = ObjectRef::new("v1", "Namespace", None, name);
    let Some(namespace) = cluster.get(&reference).await? else {
        return Err(Error::NotFound {
            name: name.to_owned(),
        });
    };
    let labelled = namespace
        .pointer("/metadata/labels")
        .and_then(|l| l.get(SHADOW_LABEL))
        .and_then(Value::as_str)
        == Some("true");
    if !labelled || !name.starts_with(NAMESPACE_PREFIX) {
        return Err(Error::NotAShadow {
            name: name.to_owned(),
        });
    }
    cluster.delete(&reference).await?;
    Ok(())
}

/// Deletes every shadow past its expiry; returns their names. Run by every shadow command, so
/// shadows left by a crash go away with the next one.
pub async fn collect_garbage(cluster: &dyn ClusterWrite) -> Result<Collection> {
    let now = cluster.now();
    let mut collection = Collection::default();
    for shadow in list(cluster).await? {
        if shadow.expired(now) && !shadow.terminating {
            delete(cluster, &shadow.name).await?;
            collection.deleted.push(shadow.name);
        } else {
            if shadow.expired(now) {
                collection.expired_left += 1;
            }
            collection.left += 1;
        }
    }
    Ok(collection)
}

/// What a collection of expired shadows did and left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    /// The shadows deleted now.
    pub deleted: Vec<String>,
    /// The shadows still in the cluster (those being deleted included).
    pub left: usize,
    /// Of those, the ones past their TTL: their deletion is under way or stuck.
    pub expired_left: usize,
}

/// The settings a shadow run takes from `shadow.*`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub ttl: Duration,
    pub max_concurrent: usize,
    pub max_candidates: usize,
    /// Keep the shadow after the verdict (until its TTL), for `aegis shadow create`.
    pub keep: bool,
    /// The RoleBinding each shadow grants the operator (`shadow.grant`).
    pub grant: Option<aegis_core::settings::ShadowGrant>,
}

/// Whether another shadow may start now (counting live, unexpired shadows).
pub async fn check_capacity(cluster: &dyn Cluster, max_concurrent: usize) -> Result<()> {
    let now = cluster.now();
    let count = list(cluster)
        .await?
        .iter()
        .filter(|s| !s.expired(now) && !s.terminating)
        .count();
    if count >= max_concurrent.max(1) {
        return Err(Error::TooMany { count });
    }
    Ok(())
}
