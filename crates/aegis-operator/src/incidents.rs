//! Reading and writing `Incident` objects: the status is moved with the incident store's own
//! pure rules (`aegis_agent::store::{first_seen, seen_again}`), written with the object's
//! resourceVersion as a precondition and retried on a conflict, and written only when it
//! changed, so a pass over an unchanged cluster writes nothing.

use aegis_agent::store::StoredIncident;
use aegis_core::SourceKind;
use aegis_core::crd::{IncidentResource, IncidentSpec, IncidentStatus};
use aegis_core::lifecycle::Lifecycle;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::{Error, Result};

/// How many times a status write that lost a race is retried.
const CONFLICT_RETRIES: usize = 5;

/// Now, RFC 3339.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The incident store's record of an incident, from its status (`None` before the first
/// diagnosis was written).
pub fn stored(status: &IncidentStatus) -> Option<StoredIncident> {
    let incident = status.incident.clone()?;
    Some(StoredIncident {
        first_seen: status.first_seen.clone(),
        last_seen: status.first_seen.clone(),
        times_seen: 0,
        source: SourceKind::Cluster,
        fix_hash: status.fix_hash.clone(),
        lifecycle: Lifecycle {
            phase: status
                .phase
                .unwrap_or(aegis_core::lifecycle::Phase::Detected),
            history: status.history.clone(),
        },
        incident,
        changes: status.changes.clone(),
    })
}

/// Writes a record back into a status, keeping what only the operator tracks (sources,
/// resolution, last error).
pub fn write_back(status: &mut IncidentStatus, stored: StoredIncident) {
    status.phase = Some(stored.lifecycle.phase);
    status.history = stored.lifecycle.history;
    status.verdict = match stored.incident.verification.result.verdict {
        aegis_core::Verdict::Skipped => None,
        verdict => Some(verdict),
    };
    status.confidence = Some((stored.incident.rca.confidence * 100.0).round() / 100.0);
    status.fix_hash = stored.fix_hash;
    status.first_seen = stored.first_seen;
    status.incident = Some(stored.incident);
    status.changes = stored.changes;
}

/// Writes as the operator's field manager.
fn params() -> PostParams {
    PostParams {
        field_manager: Some(crate::MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// The records of every cached Incident that has a diagnosis.
pub fn all_records(
    cache: &kube::runtime::reflector::Store<IncidentResource>,
) -> Vec<StoredIncident> {
    cache
        .state()
        .iter()
        .filter_map(|i| i.status.as_ref().and_then(stored))
        .collect()
}

/// Creates the Incident (spec only) unless it exists.
pub async fn create(api: &Api<IncidentResource>, name: &str, spec: IncidentSpec) -> Result<()> {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(
        "aegis.io/category".to_owned(),
        spec.category.id().to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        crate::MANAGER.to_owned(),
    );
    let object = IncidentResource {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    match api.create(&params(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Reads the Incident, lets `change` edit its status, and writes the status back when it
/// changed (with the read's resourceVersion; on a conflict it reads again and retries).
/// Returns the object as written (or as read, when nothing changed); `None` when it is gone.
pub async fn update_status<F>(
    api: &Api<IncidentResource>,
    name: &str,
    mut change: F,
) -> Result<Option<IncidentResource>>
where
    F: FnMut(&IncidentSpec, &mut IncidentStatus),
{
    try_update_status(api, name, |spec, status| {
        change(spec, status);
        Ok::<(), std::convert::Infallible>(())
    })
    .await
    .map_err(|failure| match failure {
        Failed::Api(error) => error,
        Failed::Change(never) => match never {},
    })
}

/// Why [`try_update_status`] wrote nothing.
#[derive(Debug)]
pub enum Failed<E> {
    /// The API server refused, or the status kept changing under the writes.
    Api(Error),
    /// `change` refused.
    Change(E),
}

/// [`update_status`] with a `change` that may refuse: then nothing is written.
pub async fn try_update_status<E, F>(
    api: &Api<IncidentResource>,
    name: &str,
    mut change: F,
) -> Result<Option<IncidentResource>, Failed<E>>
where
    F: FnMut(&IncidentSpec, &mut IncidentStatus) -> Result<(), E>,
{
    for _ in 0..CONFLICT_RETRIES {
        let Some(mut object) = api.get_opt(name).await.map_err(|e| Failed::Api(e.into()))? else {
            return Ok(None);
        };
        let before = object.status.clone().unwrap_or_default();
        let mut status = before.clone();
        change(&object.spec, &mut status).map_err(Failed::Change)?;
        if status == before {
            return Ok(Some(object));
        }
        object.status = Some(status);
        object.metadata.managed_fields = None;
        match api.replace_status(name, &params(), &object).await {
            Ok(written) => return Ok(Some(written)),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!(incident = name, "status conflict; reading again");
            }
            Err(error) => return Err(Failed::Api(error.into())),
        }
    }
    Err(Failed::Api(Error::Contention(format!(
        "the status of Incident {name} changed under each of {CONFLICT_RETRIES} writes"
    ))))
}

/// The change engine's records kept in `Incident` objects: each incident's audit records in its
/// status, written with the read's resourceVersion (a conflict re-reads and runs the change
/// again), found by name through the watch cache.
pub struct IncidentRecords<'a> {
    pub client: kube::Client,
    pub cache: &'a kube::runtime::reflector::Store<IncidentResource>,
    pub patch_dir: std::path::PathBuf,
}

impl IncidentRecords<'_> {
    fn api_for(&self, id: &str) -> aegis_agent::store::StoreResult<Api<IncidentResource>> {
        let namespace = self
            .cache
            .state()
            .iter()
            .find(|i| i.metadata.name.as_deref() == Some(id))
            .and_then(|i| i.metadata.namespace.clone())
            .ok_or_else(|| aegis_agent::store::StoreError::NotFound {
                id: id.to_owned(),
                dir: crate::crd::NAME.into(),
            })?;
        Ok(Api::namespaced(self.client.clone(), &namespace))
    }
}

fn backend(error: impl std::fmt::Display) -> aegis_agent::store::StoreError {
    aegis_agent::store::StoreError::Backend(error.to_string())
}

impl aegis_agent::change::Records for IncidentRecords<'_> {
    fn find<'a>(
        &'a self,
        id: &'a str,
    ) -> futures::future::BoxFuture<'a, aegis_agent::store::StoreResult<StoredIncident>> {
        Box::pin(async move {
            let api = self.api_for(id)?;
            let object = api.get(id).await.map_err(backend)?;
            object
                .status
                .as_ref()
                .and_then(stored)
                .ok_or_else(|| backend(format!("Incident {id} has no diagnosis in its status yet")))
        })
    }

    fn list(
        &self,
    ) -> futures::future::BoxFuture<'_, aegis_agent::store::StoreResult<Vec<StoredIncident>>> {
        Box::pin(async move { Ok(all_records(self.cache)) })
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        change: &'a mut (
                    dyn FnMut(&mut StoredIncident) -> aegis_agent::change::ChangeResult<()> + Send
                ),
    ) -> futures::future::BoxFuture<'a, aegis_agent::change::ChangeResult<StoredIncident>> {
        Box::pin(async move {
            let api = self.api_for(id)?;
            let mut written = None;
            let outcome = try_update_status(&api, id, |_, status| {
                let mut record = stored(status).ok_or_else(|| {
                    backend(format!("Incident {id} has no diagnosis in its status yet"))
                })?;
                change(&mut record)?;
                write_back(status, record.clone());
                written = Some(record);
                Ok(())
            })
            .await;
            match outcome {
                Ok(Some(_)) => written.ok_or_else(|| backend("no record was written").into()),
                Ok(None) => Err(aegis_agent::store::StoreError::NotFound {
                    id: id.to_owned(),
                    dir: crate::crd::NAME.into(),
                }
                .into()),
                Err(Failed::Api(error)) => Err(backend(error).into()),
                Err(Failed::Change(error)) => Err(error),
            }
        })
    }

    fn patch_dir(&self) -> std::path::PathBuf {
        self.patch_dir.clone()
    }
}
