//! Writes into the simulated world: an applied object becomes a new version at the clock's time,
//! a patch goes through the same pure applier the rest of AEGIS proves fixes with, and waiting
//! moves the clock instead of sleeping.

use std::time::Duration;

use aegis_core::PatchType;
use aegis_core::patch;
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{Applied, MockSource, str_at};
use crate::objects::Object;
use crate::write::{ClusterWrite, DryRun, ObjectRef, WriteError, WriteResult};

/// Namespaces that exist before anything is applied.
const BUILT_IN_NAMESPACES: [&str; 2] = ["default", "kube-system"];

impl MockSource {
    /// The latest applied version of an object, if it exists.
    fn latest(&self, target: &ObjectRef) -> Option<Value> {
        let state = self.state();
        state
            .manifests
            .iter()
            .rev()
            .find(|applied| same_address(&applied.object, target))
            .map(|applied| applied.object.clone())
    }

    fn namespace_exists(&self, name: &str) -> bool {
        BUILT_IN_NAMESPACES.contains(&name)
            || self
                .latest(&ObjectRef::new("v1", "Namespace", None, name))
                .is_some()
    }

    /// Checks an object as the API server would before storing it, and stores it unless this is
    /// a dry run.
    fn store(&self, mut object: Value, dry_run: DryRun) -> WriteResult<Value> {
        let address = ObjectRef::of(&object)?;
        let cluster_scoped = ObjectRef::is_cluster_scoped_kind(&address.kind);
        if !cluster_scoped {
            let namespace = address
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            if !self.namespace_exists(&namespace) {
                return Err(WriteError::NotFound {
                    object: format!("namespace {namespace}"),
                });
            }
            object["metadata"]["namespace"] = json!(namespace);
        }
        Object::decode(&address.api_version, &address.kind, object.clone()).map_err(|reason| {
            WriteError::Invalid {
                object: address.to_string(),
                reason,
            }
        })?;
        if dry_run == DryRun::No {
            {
                let mut state = self.state();
                let at = state.clock;
                state.version += 1;
                object["metadata"]["resourceVersion"] = json!(state.version.to_string());
                state.manifests.push(Applied {
                    object: object.clone(),
                    at,
                    written: true,
                });
            }
            self.save_journal()
                .map_err(|reason| WriteError::Transport {
                    action: "journal",
                    object: address.to_string(),
                    reason,
                })?;
        }
        Ok(object)
    }
}

/// Whether `object` is the one `target` names (namespaces defaulted as the simulator does).
fn same_address(object: &Value, target: &ObjectRef) -> bool {
    let namespace = match str_at(object, "/metadata/namespace") {
        "" if !ObjectRef::is_cluster_scoped_kind(&target.kind) => "default",
        namespace => namespace,
    };
    str_at(object, "/kind") == target.kind
        && str_at(object, "/metadata/name") == target.name
        && namespace == target.namespace.as_deref().unwrap_or_default()
}

/// Whether an object lives in `namespace` (the simulator defaults a missing one to `default`).
fn in_namespace(object: &Value, namespace: &str) -> bool {
    match str_at(object, "/metadata/namespace") {
        "" => !ObjectRef::is_cluster_scoped_kind(str_at(object, "/kind")) && namespace == "default",
        ns => ns == namespace,
    }
}

/// Whether the labels of `object` match a selector of `key=value`, `key!=value` and `key` terms.
fn matches_selector(object: &Value, selector: &str) -> bool {
    let label = |key: &str| {
        object
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
    };
    selector
        .split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .all(|term| {
            if let Some((key, value)) = term.split_once("!=") {
                label(key.trim()) != Some(value.trim())
            } else if let Some((key, value)) = term.split_once('=') {
                label(key.trim()) == Some(value.trim_start_matches('=').trim())
            } else {
                label(term).is_some()
            }
        })
}

impl ClusterWrite for MockSource {
    fn now(&self) -> Timestamp {
        self.clock()
    }

    fn apply<'a>(
        &'a self,
        object: &'a Value,
        dry_run: DryRun,
    ) -> BoxFuture<'a, WriteResult<Value>> {
        async move { self.store(object.clone(), dry_run) }.boxed()
    }

    fn patch<'a>(
        &'a self,
        target: &'a ObjectRef,
        patch_type: PatchType,
        patch: &'a Value,
        dry_run: DryRun,
    ) -> BoxFuture<'a, WriteResult<Value>> {
        async move {
            let current = self.latest(target).ok_or_else(|| WriteError::NotFound {
                object: target.to_string(),
            })?;
            // A resourceVersion in the patch is a precondition, as the API server takes it.
            if let Some(wanted) = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            {
                let stored = str_at(&current, "/metadata/resourceVersion");
                if wanted != stored {
                    return Err(WriteError::Conflict {
                        object: target.to_string(),
                        reason: format!(
                            "the object has been modified (resourceVersion {stored}, not {wanted}); please apply your changes to the latest version and try again"
                        ),
                    });
                }
            }
            let patched =
                patch::apply(&current, patch_type, patch).map_err(|e| WriteError::Invalid {
                    object: target.to_string(),
                    reason: e.to_string(),
                })?;
            if ObjectRef::of(&patched)? != ObjectRef::of(&current)? {
                return Err(WriteError::Invalid {
                    object: target.to_string(),
                    reason:
                        "a patch may not change an object's apiVersion, kind, namespace or name"
                            .to_owned(),
                });
            }
            self.store(patched, dry_run)
        }
        .boxed()
    }

    fn get<'a>(&'a self, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<Option<Value>>> {
        async move { Ok(self.latest(target)) }.boxed()
    }

    fn list<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: Option<&'a str>,
        label_selector: &'a str,
    ) -> BoxFuture<'a, WriteResult<Vec<Value>>> {
        async move {
            let state = self.state();
            let mut found: Vec<Value> = Vec::new();
            for applied in state.manifests.iter().rev() {
                let object = &applied.object;
                if str_at(object, "/apiVersion") != api_version
                    || str_at(object, "/kind") != kind
                    || namespace.is_some_and(|ns| !in_namespace(object, ns))
                {
                    continue;
                }
                let address = ObjectRef::of(object)?;
                if found
                    .iter()
                    .any(|seen| ObjectRef::of(seen).is_ok_and(|a| a == address))
                {
                    continue;
                }
                found.push(object.clone());
            }
            found.retain(|object| matches_selector(object, label_selector));
            found.reverse();
            Ok(found)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<bool>> {
        async move {
            let mut state = self.state();
            let before = state.manifests.len();
            let namespace = (target.kind == "Namespace").then_some(target.name.as_str());
            state.manifests.retain(|applied| {
                !same_address(&applied.object, target)
                    && namespace.is_none_or(|ns| !in_namespace(&applied.object, ns))
            });
            let deleted = state.manifests.len() != before;
            drop(state);
            if deleted {
                self.save_journal()
                    .map_err(|reason| WriteError::Transport {
                        action: "journal",
                        object: target.to_string(),
                        reason,
                    })?;
            }
            Ok(deleted)
        }
        .boxed()
    }

    fn wait<'a>(
        &'a self,
        _namespace: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, WriteResult<()>> {
        async move {
            self.advance_and_save(timeout)
                .map_err(|reason| WriteError::Transport {
                    action: "journal",
                    object: "the mock world's clock".to_owned(),
                    reason,
                })
        }
        .boxed()
    }
}
