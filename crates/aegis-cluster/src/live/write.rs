//! Writes to a live cluster through kube-rs: server-side apply, patches, deletes and watches.
//!
//! Objects travel as [`DynamicObject`]s addressed by a small table of the kinds AEGIS writes, so
//! no discovery round trip is needed. Every write uses the field manager [`FIELD_MANAGER`];
//! waiting is a watch on the namespace's pods and events that ends on the first change.

use std::time::Duration;

use aegis_core::PatchType;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, WatchEvent,
    WatchParams,
};
use kube::core::{GroupVersionKind, TypeMeta};
use serde_json::Value;

use super::{LiveSource, PAGE_SIZE, error_chain};
use crate::write::{ClusterWrite, DryRun, FIELD_MANAGER, ObjectRef, WriteError, WriteResult};

/// The kinds AEGIS writes, as (apiVersion, kind, plural).
const KINDS: &[(&str, &str, &str)] = &[
    ("v1", "Namespace", "namespaces"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "Service", "services"),
    ("v1", "Pod", "pods"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "Event", "events"),
    ("v1", "ResourceQuota", "resourcequotas"),
    ("v1", "LimitRange", "limitranges"),
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "StatefulSet", "statefulsets"),
    ("apps/v1", "ReplicaSet", "replicasets"),
    ("apps/v1", "DaemonSet", "daemonsets"),
    ("batch/v1", "Job", "jobs"),
    ("batch/v1", "CronJob", "cronjobs"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    ("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    ("coordination.k8s.io/v1", "Lease", "leases"),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
    ),
];

/// The HTTP code of an expired watch: its resource version is too old, and the next wait lists
/// again.
const GONE: u16 = 410;

/// Where objects of a kind live in the API, or `UnsupportedKind` when AEGIS does not write it.
fn api_resource(api_version: &str, kind: &str) -> WriteResult<ApiResource> {
    let Some((_, _, plural)) = KINDS
        .iter()
        .find(|(version, name, _)| *version == api_version && *name == kind)
    else {
        return Err(WriteError::UnsupportedKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok(ApiResource::from_gvk_with_plural(&gvk, plural))
}

/// Why a request failed: the API server's own message with its HTTP code, or for an error that
/// never reached it, the whole chain of causes.
fn reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} (HTTP {})", status.message, status.code)
        }
        other => error_chain(other),
    }
}

/// Maps a failed request to the write error it means, naming the object.
fn write_error(action: &'static str, object: String, error: &kube::Error) -> WriteError {
    let kube::Error::Api(status) = error else {
        return WriteError::Transport {
            action,
            object,
            reason: error_chain(error),
        };
    };
    let reason = reason(error);
    match status.code {
        404 => WriteError::NotFound { object },
        409 => WriteError::Conflict { object, reason },
        403 => WriteError::Refused {
            action,
            object,
            reason,
        },
        400 | 422 => WriteError::Invalid { object, reason },
        _ => WriteError::Transport {
            action,
            object,
            reason,
        },
    }
}

/// An object as the API server returned it, as JSON with `apiVersion` and `kind` filled.
fn object_value(
    mut object: DynamicObject,
    resource: &ApiResource,
    action: &'static str,
    name: impl FnOnce() -> String,
) -> WriteResult<Value> {
    if object.types.is_none() {
        object.types = Some(TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
    }
    serde_json::to_value(&object).map_err(|e| WriteError::Transport {
        action,
        object: name(),
        reason: format!("the answer cannot be encoded as JSON: {e}"),
    })
}

/// The server-side timeout of a watch: `timeout` rounded up to whole seconds, at least one.
fn watch_seconds(timeout: Duration) -> u32 {
    let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    u32::try_from(seconds).unwrap_or(u32::MAX).max(1)
}

/// What a watch saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// An object was added, modified or deleted.
    Change,
    /// A bookmark: the watch is alive, nothing changed.
    Bookmark,
    /// The watch expired (410 Gone); the next wait lists again.
    Expired,
}

/// Watches one kind in one namespace from now on: one List of a single object gives the
/// resource version, the watch starts from it and ends after `seconds` on the server.
fn changes(api: Api<DynamicObject>, seconds: u32) -> BoxStream<'static, kube::Result<Seen>> {
    stream::once(async move {
        let listed = api.list_metadata(&ListParams::default().limit(1)).await?;
        let version = listed.metadata.resource_version.unwrap_or_default();
        api.watch_metadata(&WatchParams::default().timeout(seconds), &version)
            .await
    })
    .try_flatten()
    .map(|event| match event {
        Ok(WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_)) => {
            Ok(Seen::Change)
        }
        Ok(WatchEvent::Bookmark(_)) => Ok(Seen::Bookmark),
        Ok(WatchEvent::Error(status)) if status.code == GONE => Ok(Seen::Expired),
        Ok(WatchEvent::Error(status)) => Err(kube::Error::Api(status)),
        Err(kube::Error::Api(status)) if status.code == GONE => Ok(Seen::Expired),
        Err(e) => Err(e),
    })
    .boxed()
}

impl LiveSource {
    /// The API of the object's kind, in its namespace when the kind is namespaced.
    fn api_for(&self, target: &ObjectRef) -> WriteResult<(Api<DynamicObject>, ApiResource)> {
        let resource = api_resource(&target.api_version, &target.kind)?;
        if ObjectRef::is_cluster_scoped_kind(&target.kind) {
            return Ok((Api::all_with(self.client.clone(), &resource), resource));
        }
        match target.namespace.as_deref().filter(|ns| !ns.is_empty()) {
            Some(namespace) => Ok((
                Api::namespaced_with(self.client.clone(), namespace, &resource),
                resource,
            )),
            None => Err(WriteError::Invalid {
                object: target.to_string(),
                reason: format!("{} is namespaced, and no namespace was given", target.kind),
            }),
        }
    }

    async fn may_async(&self, verb: &str, target: &ObjectRef) -> WriteResult<bool> {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let resource = api_resource(&target.api_version, &target.kind)?;
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(resource.group.clone()),
                    resource: Some(resource.plural.clone()),
                    namespace: target.namespace.clone(),
                    name: Some(target.name.clone()).filter(|n| !n.is_empty()),
                    verb: Some(verb.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let reviews: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let answered = reviews
            .create(&kube::api::PostParams::default(), &review)
            .await
            .map_err(|e| write_error("review access to", target.to_string(), &e))?;
        Ok(answered.status.is_some_and(|s| s.allowed))
    }

    async fn apply_async(&self, object: &Value, dry_run: DryRun) -> WriteResult<Value> {
        let target = ObjectRef::of(object)?;
        let (api, resource) = self.api_for(&target)?;
        // The API server rejects an applied configuration that carries managed fields, and an
        // object read back from the cluster does.
        let mut body = object.clone();
        if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run == DryRun::All {
            params = params.dry_run();
        }
        let stored = api
            .patch(&target.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| write_error("apply", target.to_string(), &e))?;
        object_value(stored, &resource, "apply", || target.to_string())
    }

    async fn patch_async(
        &self,
        target: &ObjectRef,
        patch_type: PatchType,
        patch: &Value,
        dry_run: DryRun,
    ) -> WriteResult<Value> {
        let (api, resource) = self.api_for(target)?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            dry_run: dry_run == DryRun::All,
            ..PatchParams::default()
        };
        let patched = match patch_type {
            PatchType::StrategicMerge => {
                api.patch(&target.name, &params, &Patch::Strategic(patch))
                    .await
            }
            PatchType::Merge => api.patch(&target.name, &params, &Patch::Merge(patch)).await,
            PatchType::Json => {
                let operations: json_patch::Patch =
                    serde_json::from_value(patch.clone()).map_err(|e| WriteError::Invalid {
                        object: target.to_string(),
                        reason: format!("the patch is not a JSON patch (RFC 6902): {e}"),
                    })?;
                api.patch(&target.name, &params, &Patch::<()>::Json(operations))
                    .await
            }
        };
        let stored = patched.map_err(|e| write_error("patch", target.to_string(), &e))?;
        object_value(stored, &resource, "patch", || target.to_string())
    }

    async fn get_async(&self, target: &ObjectRef) -> WriteResult<Option<Value>> {
        let (api, resource) = self.api_for(target)?;
        let found = api
            .get_opt(&target.name)
            .await
            .map_err(|e| write_error("get", target.to_string(), &e))?;
        found
            .map(|object| object_value(object, &resource, "get", || target.to_string()))
            .transpose()
    }

    async fn list_async(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> WriteResult<Vec<Value>> {
        let resource = api_resource(api_version, kind)?;
        let namespace =
            namespace.filter(|ns| !ns.is_empty() && !ObjectRef::is_cluster_scoped_kind(kind));
        let (api, what) = match namespace {
            Some(ns) => (
                Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &resource),
                format!("{kind} objects in namespace {ns}"),
            ),
            None => (
                Api::<DynamicObject>::all_with(self.client.clone(), &resource),
                format!("{kind} objects"),
            ),
        };
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if !label_selector.is_empty() {
            params = params.labels(label_selector);
        }
        let mut items = Vec::new();
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|e| write_error("list", what.clone(), &e))?;
            for object in page.items {
                items.push(object_value(object, &resource, "list", || what.clone())?);
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(items),
            }
        }
    }

    async fn delete_async(&self, target: &ObjectRef) -> WriteResult<bool> {
        let (api, _) = self.api_for(target)?;
        // Background propagation: the call returns at once and the garbage collector (for a
        // namespace, the namespace controller) removes what the object owns.
        match api.delete(&target.name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            // A second delete of a namespace that is already terminating answers 409 ("the system
            // is ensuring all content is removed"): it is going, which is what was asked.
            Err(kube::Error::Api(status)) if status.code == 409 && target.kind == "Namespace" => {
                Ok(true)
            }
            Err(e) => Err(write_error("delete", target.to_string(), &e)),
        }
    }

    async fn wait_async(&self, namespace: &str, timeout: Duration) -> WriteResult<()> {
        let object = format!("namespace {namespace}");
        let seconds = watch_seconds(timeout);
        let pods = changes(
            Api::namespaced_with(
                self.client.clone(),
                namespace,
                &ApiResource::erase::<Pod>(&()),
            ),
            seconds,
        );
        // Events are a help, not a need: credentials that may not watch them still wait on pods.
        let events = changes(
            Api::namespaced_with(
                self.client.clone(),
                namespace,
                &ApiResource::erase::<Event>(&()),
            ),
            seconds,
        )
        .filter_map(|seen| async move {
            match seen {
                Ok(seen) => Some(Ok(seen)),
                Err(e) => {
                    tracing::debug!(error = %e, "events are not watched");
                    None
                }
            }
        })
        .boxed();
        let watching = async {
            let mut seen = stream::select(pods, events);
            while let Some(item) = seen.next().await {
                match item {
                    Ok(Seen::Change | Seen::Expired) => return Ok(()),
                    Ok(Seen::Bookmark) => {}
                    Err(e) => {
                        return Err(WriteError::Transport {
                            action: "watch",
                            object,
                            reason: reason(&e),
                        });
                    }
                }
            }
            // The server ended the watch at its timeout: nothing changed.
            Ok(())
        };
        tokio::time::timeout(timeout, watching)
            .await
            .unwrap_or(Ok(()))
    }
}

impl ClusterWrite for LiveSource {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn may<'a>(&'a self, verb: &'a str, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<bool>> {
        self.may_async(verb, target).boxed()
    }

    fn apply<'a>(
        &'a self,
        object: &'a Value,
        dry_run: DryRun,
    ) -> BoxFuture<'a, WriteResult<Value>> {
        self.apply_async(object, dry_run).boxed()
    }

    fn patch<'a>(
        &'a self,
        target: &'a ObjectRef,
        patch_type: PatchType,
        patch: &'a Value,
        dry_run: DryRun,
    ) -> BoxFuture<'a, WriteResult<Value>> {
        self.patch_async(target, patch_type, patch, dry_run).boxed()
    }

    fn get<'a>(&'a self, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<Option<Value>>> {
        self.get_async(target).boxed()
    }

    fn list<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: Option<&'a str>,
        label_selector: &'a str,
    ) -> BoxFuture<'a, WriteResult<Vec<Value>>> {
        self.list_async(api_version, kind, namespace, label_selector)
            .boxed()
    }

    fn delete<'a>(&'a self, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<bool>> {
        self.delete_async(target).boxed()
    }

    fn wait<'a>(&'a self, namespace: &'a str, timeout: Duration) -> BoxFuture<'a, WriteResult<()>> {
        self.wait_async(namespace, timeout).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_in_the_table_maps_to_its_api_path() {
        let deployment = api_resource("apps/v1", "Deployment").expect("supported");
        assert_eq!(deployment.group, "apps");
        assert_eq!(deployment.version, "v1");
        assert_eq!(deployment.api_version, "apps/v1");
        assert_eq!(deployment.plural, "deployments");
        let namespace = api_resource("v1", "Namespace").expect("supported");
        assert_eq!(namespace.group, "");
        assert_eq!(namespace.api_version, "v1");
        for (api_version, kind, _) in KINDS {
            let resource = api_resource(api_version, kind).expect("supported");
            assert_eq!(resource.api_version, *api_version);
        }
    }

    #[test]
    fn a_kind_under_another_api_version_is_unsupported() {
        assert!(matches!(
            api_resource("extensions/v1beta1", "Deployment"),
            Err(WriteError::UnsupportedKind { .. })
        ));
    }

    #[test]
    fn the_watch_timeout_is_rounded_up_to_whole_seconds() {
        assert_eq!(watch_seconds(Duration::ZERO), 1);
        assert_eq!(watch_seconds(Duration::from_millis(300)), 1);
        assert_eq!(watch_seconds(Duration::from_secs(2)), 2);
        assert_eq!(watch_seconds(Duration::from_millis(2001)), 3);
    }
}
