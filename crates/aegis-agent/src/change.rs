//! The change engine (SPEC §8, §11): how a verified fix reaches production, shared by
//! `aegis incident apply|rollback` and the operator.
//!
//! 1. Preconditions from the store ([`preconditions::may_apply`]): approved, or auto-apply for the
//!    category with a `successful` verdict; a verdict that proved the fix; no change to the
//!    workload within the cooldown; no other change of the incident under way.
//! 2. Preconditions from the cluster: the target still has the spec the shadow verified (else
//!    the fix must be verified again), the fix policy allows the patch on the live object, and
//!    the API server accepts it in a dry run.
//! 3. The audit record ([`ChangeRecord`]) is written to the store *before* the change.
//! 4. The patch is written with field manager `aegis`, the target's resourceVersion as a
//!    precondition (two engines racing make one change), and the change's id in the annotation
//!    `aegis.io/change`, so a process that dies afterwards can tell whether its write landed.
//! 5. A confirmation window watches the production workload ([`confirm`]); on a regression the
//!    inverse patch is applied automatically and the incident is `rolled-back` with the evidence.
//!
//! A change left under way by a process that died is finished by the next run: the record and
//! the annotation tell whether the write happened; if it did, the confirmation window runs again
//! (and confirms or rolls back), and if it did not, the change is recorded as not made.
//! GitOps-managed targets get a patch file instead of a live change.

pub mod confirm;
mod gitops;
pub mod preconditions;

use std::path::PathBuf;
use std::time::Duration;

use aegis_cluster::{Cluster, DryRun, ObjectRef, Scope, WriteError};
use aegis_core::change::{
    Basis, CHANGE_ANNOTATION, ChangeKind, ChangeRecord, ChangeStatus, Owner, Timing,
};
use aegis_core::lifecycle::Action;
use aegis_core::settings::Settings;
use aegis_core::{ClusterState, Fix, PatchType, patch};
use aegis_rules::Lookup;
use k8s_openapi::jiff::{Timestamp, Unit};
use serde_json::{Value, json};

use self::confirm::{Confirmation, Decision, Subjects};
pub use self::preconditions::{Grant, Refusal};
use crate::store::{Store, StoreError, StoreResult, StoredIncident};
use futures::future::BoxFuture;

/// Why a change was not made (or not finished).
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{target} changed since the fix was verified ({difference}); the fix must be verified again against what it holds now"
    )]
    TargetChanged { target: String, difference: String },
    #[error("{target} is not in the cluster")]
    TargetMissing { target: String },
    #[error("the fix of incident {id} has no record of what its target held when it was verified")]
    NoBasis { id: String },
    #[error("the fix policy denies the patch on the live {target}: {violations}")]
    PolicyDenied { target: String, violations: String },
    #[error("the API server rejects the patch in a dry run: {0}")]
    DryRun(WriteError),
    #[error(
        "change {change} of incident {id} is under way (process {pid} on {host}, alive at {heartbeat})"
    )]
    InProgress {
        id: String,
        change: String,
        pid: u32,
        host: String,
        heartbeat: String,
    },
    #[error("incident {id} was recorded from the {recorded} source, and this is the {now} source")]
    SourceMismatch {
        id: String,
        recorded: &'static str,
        now: &'static str,
    },
    #[error("cannot read namespace {namespace}: {source}")]
    Read {
        namespace: String,
        #[source]
        source: aegis_cluster::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot write the patch file: {0}")]
    PatchFile(String),
}

impl ChangeError {
    /// The way out, for the `hint:` line.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Refused(refusal) => refusal.hint(),
            Self::TargetChanged { .. } | Self::NoBasis { .. } => {
                "analyze the workload again: the shadow verifies the fix against what production holds now, and the new verdict needs a new approval".to_owned()
            }
            Self::TargetMissing { .. } => {
                "the object is gone; analyze again to see whether the incident still exists".to_owned()
            }
            Self::PolicyDenied { .. } => "a denied fix is reported, never applied".to_owned(),
            Self::DryRun(_) => "nothing was changed; `aegis incident show` gives the patch".to_owned(),
            Self::InProgress { id, .. } => format!(
                "wait for it to finish (`aegis incident show {id}`); if that process is gone, rerun this command after a minute and it finishes or undoes the change"
            ),
            Self::SourceMismatch { .. } => {
                "run the command against the source the incident was found in (--mock, or the cluster's kubeconfig context)".to_owned()
            }
            Self::Read { .. } | Self::Write(_) => {
                "check that the cluster is reachable; rerun the command: it finishes or undoes a change left under way".to_owned()
            }
            Self::PatchFile(_) => {
                "set agent.state_dir (or AEGIS_AGENT__STATE_DIR) to a writable directory".to_owned()
            }
            Self::Store(_) => return None,
        })
    }
}

pub type ChangeResult<T> = Result<T, ChangeError>;

/// What a caller is told as a change proceeds (to show progress).
pub trait ChangeProgress: Sync {
    fn step(&self, change: &ChangeRecord, what: &str);
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl ChangeProgress for Quiet {
    fn step(&self, _: &ChangeRecord, _: &str) {}
}

/// A change and the incident after it.
#[derive(Debug, Clone)]
pub struct Changed {
    pub incident: StoredIncident,
    pub change: ChangeRecord,
}

/// Where the engine keeps incidents and the audit records of their changes: the incident store's
/// files (the CLI) or the `Incident` objects' status (the operator).
pub trait Records: Sync {
    /// One incident, by id (or a unique prefix, where the store allows it).
    fn find<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<StoredIncident>>;
    /// Every incident (for the cooldown across incidents of one workload).
    fn list(&self) -> BoxFuture<'_, StoreResult<Vec<StoredIncident>>>;
    /// Reads one incident, lets `change` modify it and writes it back with no update lost to
    /// another writer; `change` may run again on a fresh read when a write conflicts, and when
    /// it fails nothing is written.
    fn update<'a>(
        &'a self,
        id: &'a str,
        change: &'a mut (dyn FnMut(&mut StoredIncident) -> ChangeResult<()> + Send),
    ) -> BoxFuture<'a, ChangeResult<StoredIncident>>;
    /// Where patch files for GitOps-managed targets are written.
    fn patch_dir(&self) -> std::path::PathBuf;
}

impl Records for Store {
    fn find<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<StoredIncident>> {
        Box::pin(async move { Store::find(self, id) })
    }

    fn list(&self) -> BoxFuture<'_, StoreResult<Vec<StoredIncident>>> {
        Box::pin(async move { Store::list(self).map(|(all, _)| all) })
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        change: &'a mut (dyn FnMut(&mut StoredIncident) -> ChangeResult<()> + Send),
    ) -> BoxFuture<'a, ChangeResult<StoredIncident>> {
        Box::pin(async move { Store::update(self, id, |stored| change(stored)).map(|(s, ())| s) })
    }

    fn patch_dir(&self) -> std::path::PathBuf {
        self.state_dir().join("gitops")
    }
}

/// The engine on one production cluster and one store.
pub struct ChangeEngine<'a> {
    pub store: &'a dyn Records,
    pub cluster: &'a dyn Cluster,
    pub settings: &'a Settings,
    /// Who runs the engine (a user, or `operator`), for changes nobody approved by hand.
    pub by: String,
    pub progress: &'a dyn ChangeProgress,
}

/// Failed looks in a row the confirmation window tolerates (a watch or list that failed).
const MAX_FAILED_READS: u32 = 5;

/// How many times a write that lost a race with a status update is retried.
const CONFLICT_RETRIES: usize = 3;

/// How long a change's owner on another host may go without a heartbeat before its change
/// counts as abandoned.
const STALE_AFTER_SECONDS: i64 = 60;

impl ChangeEngine<'_> {
    /// Applies the incident's fix to production, confirms it, and rolls it back on a
    /// regression. A change of the incident left under way by a process that died is finished
    /// first.
    pub async fn apply(&self, id: &str) -> ChangeResult<Changed> {
        // Boxed: the records held across the awaits make a large future.
        Box::pin(self.apply_unboxed(id)).await
    }

    async fn apply_unboxed(&self, id: &str) -> ChangeResult<Changed> {
        let mut stored = self.store.find(id).await?;
        self.check_source(&stored)?;
        if let Some(change) = stored.change_in_progress().cloned() {
            ensure_abandoned(&stored, &change)?;
            let recovered = Box::pin(self.recover(&stored, change)).await?;
            if !matches!(recovered.change.status, ChangeStatus::NotMade { .. }) {
                return Ok(recovered);
            }
            stored = recovered.incident;
        }
        let all = self.store.list().await?;
        let grant =
            preconditions::may_apply(&stored, &all, &self.settings.policy, self.cluster.now())?;
        let Some(fix) = stored.incident.fix.clone() else {
            return Err(Refusal::NoFix {
                id: stored.incident.id.clone(),
            }
            .into());
        };
        if let Some(done) = stored.changes.iter().rev().find(|c| {
            c.fix_hash == fix_hash(&fix) && matches!(c.status, ChangeStatus::PatchFile { .. })
        }) {
            // The patch file is written; it reaches the cluster through the repository.
            return Ok(Changed {
                change: done.clone(),
                incident: stored,
            });
        }
        let namespace = fix.target.namespace_str().to_owned();
        let state = self.load(&namespace).await?;
        let lookup = Lookup::new(&state);
        let object = lookup
            .object(&fix.target)
            .ok_or_else(|| ChangeError::TargetMissing {
                target: fix.target.to_string(),
            })?;
        let verified = stored
            .incident
            .verification
            .result
            .target_basis
            .clone()
            .ok_or_else(|| ChangeError::NoBasis {
                id: stored.incident.id.clone(),
            })?;
        let before = Basis::of(&object, &fix.patch);
        if !verified.same_spec(&before) {
            return Err(ChangeError::TargetChanged {
                target: fix.target.to_string(),
                difference: verified.difference(&before),
            });
        }
        let decision = aegis_rules::check_fix(&lookup, &fix, &object);
        if !decision.allowed {
            return Err(ChangeError::PolicyDenied {
                target: fix.target.to_string(),
                violations: decision.violations_text(),
            });
        }
        let change_id = next_change_id(&stored);
        let mut record = self.record(
            &stored,
            &fix,
            &object,
            &change_id,
            ChangeKind::Apply,
            &grant,
            before,
        );
        if let Some(managed_by) = gitops::manager(&object) {
            return self.patch_file(&stored, record, &object, &managed_by).await;
        }
        let target = ObjectRef::of(&object)?;
        let written_patch = with_change(&fix.patch, fix.patch_type, &object, &change_id);
        self.cluster
            .patch(&target, fix.patch_type, &written_patch, DryRun::All)
            .await
            .map_err(ChangeError::DryRun)?;
        let now = self.cluster_now();
        record.step(&now, "the API server accepted the patch in a dry run");
        if grant == Grant::AutoApply {
            let category = stored.incident.rca.category;
            let reason = format!(
                "auto-apply: policy.auto_apply_categories names {category} and the shadow's verdict is successful"
            );
            self.store
                .update(&stored.incident.id, &mut |s| {
                    s.lifecycle
                        .advance(Action::Approve, &self.by, &wall_now(), &reason)
                        .map_err(StoreError::from)?;
                    Ok(())
                })
                .await?;
        }
        // The audit record, before anything is written to the cluster.
        record.step(&now, "recorded the change before writing it");
        self.begin(&stored.incident.id, &record).await?;
        self.progress.step(&record, "recorded; writing the patch");
        let written = self
            .write(
                &fix.target,
                fix.patch_type,
                &fix.patch,
                &change_id,
                &record.before,
            )
            .await;
        if let Err(error) = written {
            if !self.landed(&record.target, &change_id, &error).await? {
                let reason = error.to_string();
                record.status = ChangeStatus::NotMade {
                    reason: reason.clone(),
                };
                record.step(&self.cluster_now(), format!("not made: {reason}"));
                self.save(&stored.incident.id, &record, None).await?;
                return Err(error);
            }
            record.step(
                &self.cluster_now(),
                format!("the write reported an error ({error}), but the object carries the change"),
            );
        }
        record.status = ChangeStatus::Confirming;
        record.step(
            &self.cluster_now(),
            "patched; the confirmation window is open",
        );
        self.save(&stored.incident.id, &record, None).await?;
        self.progress
            .step(&record, "patched; confirming on the production workload");
        self.confirm(&stored, record).await
    }

    /// Undoes the incident's applied fix with its inverse patch, after a human asked for it.
    pub async fn rollback(&self, id: &str, reason: &str) -> ChangeResult<Changed> {
        Box::pin(self.rollback_unboxed(id, reason)).await
    }

    async fn rollback_unboxed(&self, id: &str, reason: &str) -> ChangeResult<Changed> {
        let mut stored = self.store.find(id).await?;
        self.check_source(&stored)?;
        if let Some(change) = stored.change_in_progress().cloned() {
            ensure_abandoned(&stored, &change)?;
            let recovered = Box::pin(self.recover(&stored, change)).await?;
            if recovered.change.kind == ChangeKind::Rollback
                || recovered.change.status == ChangeStatus::RolledBack
            {
                return Ok(recovered);
            }
            stored = recovered.incident;
        }
        preconditions::may_roll_back(&stored)?;
        let Some(applied) = stored
            .changes
            .iter()
            .rev()
            .find(|c| c.kind == ChangeKind::Apply && c.status == ChangeStatus::Confirmed)
            .cloned()
        else {
            return Err(Refusal::NothingToRollBack {
                id: stored.incident.id.clone(),
                phase: stored.lifecycle.phase,
            }
            .into());
        };
        let namespace = applied.target.namespace_str().to_owned();
        let state = self.load(&namespace).await?;
        let lookup = Lookup::new(&state);
        let object = lookup
            .object(&applied.target)
            .ok_or_else(|| ChangeError::TargetMissing {
                target: applied.target.to_string(),
            })?;
        let now_basis = Basis::of(&object, &applied.patch);
        let still_ours = match &applied.after {
            Some(after) => after.same_spec(&now_basis),
            None => annotation(&object) == Some(applied.id.as_str()),
        };
        if !still_ours {
            return Err(ChangeError::TargetChanged {
                target: applied.target.to_string(),
                difference: applied.after.as_ref().map_or_else(
                    || "another change was made".to_owned(),
                    |a| a.difference(&now_basis),
                ),
            });
        }
        let change_id = next_change_id(&stored);
        let grant = Grant::Approved {
            by: self.by.clone(),
            at: wall_now(),
        };
        let mut record = ChangeRecord {
            kind: ChangeKind::Rollback,
            patch: applied.inverse_patch.clone(),
            inverse_patch: applied.patch.clone(),
            diff: object_diff(&object, applied.patch_type, &applied.inverse_patch),
            ..self.record_for(&stored, &applied, &change_id, &grant, now_basis)
        };
        let target = ObjectRef::of(&object)?;
        let written_patch = with_change(&record.patch, record.patch_type, &object, &change_id);
        self.cluster
            .patch(&target, record.patch_type, &written_patch, DryRun::All)
            .await
            .map_err(ChangeError::DryRun)?;
        let now = self.cluster_now();
        record.step(&now, format!("rollback asked by {}: {reason}", self.by));
        record.step(
            &now,
            "the API server accepted the inverse patch in a dry run",
        );
        self.begin(&stored.incident.id, &record).await?;
        let before = record.before.clone();
        let inverse = record.patch.clone();
        let written = self
            .write(
                &record.target,
                record.patch_type,
                &inverse,
                &change_id,
                &before,
            )
            .await;
        if let Err(error) = written
            && !self.landed(&record.target, &change_id, &error).await?
        {
            let why = error.to_string();
            record.status = ChangeStatus::NotMade {
                reason: why.clone(),
            };
            record.step(&self.cluster_now(), format!("not made: {why}"));
            self.save(&stored.incident.id, &record, None).await?;
            return Err(error);
        }
        record.status = ChangeStatus::Made;
        record.step(&self.cluster_now(), "the inverse patch is in the cluster");
        let transition = (Action::RollBack, self.by.clone(), reason.to_owned());
        self.save(&stored.incident.id, &record, Some(&transition))
            .await
    }

    /// The audit record of a change about to be made for `stored`'s fix.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        stored: &StoredIncident,
        fix: &Fix,
        object: &Value,
        change_id: &str,
        kind: ChangeKind,
        grant: &Grant,
        before: Basis,
    ) -> ChangeRecord {
        let incident = &stored.incident;
        let result = &incident.verification.result;
        let (approver, approved_at) = match grant {
            Grant::Approved { by, at } => (by.clone(), at.clone()),
            Grant::AutoApply => (
                format!("{} (auto-apply: policy.auto_apply_categories)", self.by),
                wall_now(),
            ),
        };
        ChangeRecord {
            id: change_id.to_owned(),
            kind,
            incident: incident.id.clone(),
            target: fix.target.clone(),
            patch_type: fix.patch_type,
            patch: fix.patch.clone(),
            inverse_patch: fix.inverse_patch.clone(),
            fix_hash: fix_hash(fix),
            result_hash: patch::apply(object, fix.patch_type, &fix.patch)
                .map(|patched| Basis::of(&patched, &fix.patch).spec_hash)
                .unwrap_or_default(),
            fix_summary: fix.summary.clone(),
            diff: object_diff(object, fix.patch_type, &fix.patch),
            backend: incident.rca.backend.clone(),
            prompt_hash: incident.rca.llm.as_ref().map(|o| o.prompt_hash.clone()),
            verdict: result.verdict,
            verdict_reason: result.reason.clone(),
            evidence: format!(
                "the verification of incident {} (`aegis incident show {}`){}",
                incident.id,
                incident.id,
                result
                    .shadow
                    .as_deref()
                    .map(|s| format!(", shadow {s}"))
                    .unwrap_or_default()
            ),
            approver,
            approved_at,
            recorded_at: self.cluster_now(),
            before,
            after: None,
            owner: owner(),
            status: ChangeStatus::Intent,
            steps: Vec::new(),
            evidence_seen: Vec::new(),
            timing: None,
        }
    }

    /// The record of a rollback of the applied change `applied`.
    fn record_for(
        &self,
        stored: &StoredIncident,
        applied: &ChangeRecord,
        change_id: &str,
        grant: &Grant,
        before: Basis,
    ) -> ChangeRecord {
        let (by, at) = match grant {
            Grant::Approved { by, at } => (by.clone(), at.clone()),
            Grant::AutoApply => (self.by.clone(), wall_now()),
        };
        ChangeRecord {
            id: change_id.to_owned(),
            incident: stored.incident.id.clone(),
            approver: by,
            approved_at: at,
            recorded_at: self.cluster_now(),
            before,
            after: None,
            owner: owner(),
            status: ChangeStatus::Intent,
            steps: Vec::new(),
            evidence_seen: Vec::new(),
            timing: None,
            ..applied.clone()
        }
    }

    /// Writes the fix as a patch file for a GitOps-managed target; the cluster is not changed.
    async fn patch_file(
        &self,
        stored: &StoredIncident,
        mut record: ChangeRecord,
        object: &Value,
        managed_by: &str,
    ) -> ChangeResult<Changed> {
        let dir = self.store.patch_dir();
        let path =
            gitops::write_patch_file(&dir, &stored.incident, object, &record.fix_hash, managed_by)
                .map_err(ChangeError::PatchFile)?;
        let path = path.display().to_string();
        record.step(
            &self.cluster_now(),
            format!("{} is managed by {managed_by}: wrote the patch file {path} instead of changing the cluster", record.target),
        );
        record.status = ChangeStatus::PatchFile { path };
        let incident = self
            .store
            .update(&stored.incident.id, &mut |s| {
                s.changes.push(record.clone());
                Ok(())
            })
            .await?;
        self.progress
            .step(&record, "wrote a patch file for the GitOps repository");
        Ok(Changed {
            incident,
            change: record,
        })
    }

    /// Adds the record to the store, unless another change of the incident got there first.
    async fn begin(&self, id: &str, record: &ChangeRecord) -> ChangeResult<()> {
        self.store
            .update(id, &mut |stored| {
                if let Some(other) = stored.change_in_progress() {
                    return Err(in_progress(stored, other));
                }
                stored.changes.push(record.clone());
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Replaces the record in the store (with a fresh heartbeat), and moves the lifecycle when
    /// `transition` says how.
    async fn save(
        &self,
        id: &str,
        record: &ChangeRecord,
        transition: Option<&(Action, String, String)>,
    ) -> ChangeResult<Changed> {
        let mut record = record.clone();
        record.owner.heartbeat = wall_now();
        let incident = self
            .store
            .update(id, &mut |stored| {
                match stored.changes.iter_mut().find(|c| c.id == record.id) {
                    Some(existing) => *existing = record.clone(),
                    None => stored.changes.push(record.clone()),
                }
                if let Some((action, by, reason)) = transition {
                    stored
                        .lifecycle
                        .advance(*action, by, &wall_now(), reason)
                        .map_err(StoreError::from)?;
                }
                Ok(())
            })
            .await?;
        Ok(Changed {
            incident,
            change: record,
        })
    }

    /// Writes `patch` to `target` with the change's annotation and the resourceVersion the
    /// target has now as a precondition. A conflict with an update that left the spec as it was
    /// (a status change) is retried; one that changed the spec is refused.
    async fn write(
        &self,
        target: &aegis_core::ResourceRef,
        patch_type: PatchType,
        patch: &Value,
        annotation_value: &str,
        expected: &Basis,
    ) -> ChangeResult<Value> {
        let mut attempt = 0;
        loop {
            let state = self.load(target.namespace_str()).await?;
            let object =
                Lookup::new(&state)
                    .object(target)
                    .ok_or_else(|| ChangeError::TargetMissing {
                        target: target.to_string(),
                    })?;
            let now = Basis::of(&object, patch);
            if !expected.same_spec(&now) {
                return Err(ChangeError::TargetChanged {
                    target: target.to_string(),
                    difference: expected.difference(&now),
                });
            }
            let address = ObjectRef::of(&object)?;
            let body = with_change(patch, patch_type, &object, annotation_value);
            match self
                .cluster
                .patch(&address, patch_type, &body, DryRun::No)
                .await
            {
                Ok(stored) => return Ok(stored),
                Err(WriteError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs the confirmation window on a written change; confirms it, or rolls it back.
    async fn confirm(
        &self,
        stored: &StoredIncident,
        mut record: ChangeRecord,
    ) -> ChangeResult<Changed> {
        let id = stored.incident.id.clone();
        let settings = &self.settings;
        let namespace = record.target.namespace_str().to_owned();
        let step_at = |prefix: &str| -> Option<Timestamp> {
            record
                .steps
                .iter()
                .rev()
                .find(|s| s.what.starts_with(prefix))
                .and_then(|s| s.at.parse().ok())
        };
        // The window runs from the write, or from its resumption after the owner died.
        let written_at = step_at("patched").unwrap_or_else(|| self.cluster.now());
        let window_start = step_at("resumed").unwrap_or(written_at).max(written_at);
        let recorded_at: Timestamp = record.recorded_at.parse().unwrap_or(written_at);
        let plan = if let Some(plan) = stored.incident.verification.plan.clone() {
            plan
        } else {
            let state = self.load(&namespace).await?;
            let fix = stored
                .incident
                .fix
                .as_ref()
                .ok_or_else(|| Refusal::NoFix { id: id.clone() })?;
            crate::plan_for(&state, fix, &stored.incident.workload, &settings.shadow)
        };
        let subjects = Subjects {
            workload: stored.incident.workload.clone(),
            target: record.target.clone(),
            category: stored.incident.rca.category,
            plan: plan.clone(),
        };
        let mut window = Confirmation::new(&plan, settings.policy.confirmation_timeout_seconds);
        let interval = Duration::from_secs(plan.interval_seconds.max(1));
        let mut looked = self.cluster.now();
        let mut failed_reads = 0;
        let (decision, evidence, ready) = loop {
            let since =
                Duration::try_from(self.cluster.now().duration_since(looked)).unwrap_or_default();
            let wait = interval
                .saturating_sub(since)
                .max(Duration::from_millis(50));
            // A watch or a read that fails now and then does not end the window; many in a row
            // leave the change under way for the next run.
            let read = match self.cluster.wait(&namespace, wait).await {
                Ok(()) => self.load(&namespace).await,
                Err(e) => Err(e.into()),
            };
            looked = self.cluster.now();
            let state = match read {
                Ok(state) => {
                    failed_reads = 0;
                    state
                }
                Err(error) if failed_reads < MAX_FAILED_READS => {
                    failed_reads += 1;
                    self.progress
                        .step(&record, &format!("could not look at the workload: {error}"));
                    tokio::time::sleep(interval).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let elapsed_ms =
                u64::try_from(looked.duration_since(window_start).as_millis()).unwrap_or(0);
            let (look, pods) = confirm::look(&state, &subjects, elapsed_ms);
            if record.after.is_none()
                && let Some(object) = Lookup::new(&state).object(&record.target)
                && annotation(&object) == Some(record.id.as_str())
            {
                record.after = Some(Basis::of(&object, &record.patch));
            }
            let decision = window.observe(&look);
            self.save(&id, &record, None).await?;
            let outcome = match decision {
                Decision::Continue => {
                    self.progress.step(&record, &look.summary());
                    continue;
                }
                Decision::Confirmed(reason) => Ok(reason),
                Decision::Regressed(reason) => Err(reason),
            };
            let evidence = confirm::evidence(&state, &look, &pods);
            break (outcome, evidence, ready_after(&pods, written_at));
        };
        record.timing = Some(Timing {
            to_write_seconds: seconds(recorded_at, written_at),
            pods_ready_seconds: ready,
            decided_seconds: seconds(window_start, self.cluster.now()),
        });
        record.evidence_seen = window.timeline.clone();
        record.evidence_seen.extend(evidence);
        match decision {
            Err(reason) => self.undo(&id, record, &reason).await,
            Ok(reason) => {
                record.status = ChangeStatus::Confirmed;
                record.step(&self.cluster_now(), format!("confirmed: {reason}"));
                self.progress.step(&record, "confirmed");
                let by = record.approver.clone();
                self.save(
                    &id,
                    &record,
                    Some(&(
                        Action::Apply,
                        by,
                        format!("applied and confirmed: {reason}"),
                    )),
                )
                .await
            }
        }
    }

    /// Applies the inverse of a change that regressed, and records `rolled-back` with the
    /// evidence. When the object no longer holds the change (someone changed it meanwhile),
    /// nothing is written and the change is left to a human.
    async fn undo(
        &self,
        id: &str,
        mut record: ChangeRecord,
        reason: &str,
    ) -> ChangeResult<Changed> {
        record.step(&self.cluster_now(), format!("regressed: {reason}"));
        self.progress
            .step(&record, &format!("regressed ({reason}); rolling back"));
        let state = self.load(record.target.namespace_str()).await?;
        let object = Lookup::new(&state).object(&record.target);
        let after = object.as_ref().map(|o| Basis::of(o, &record.patch));
        let ours = match (&object, &record.after, &after) {
            (Some(_), Some(expected), Some(now)) => expected.same_spec(now),
            (Some(object), None, _) => annotation(object) == Some(record.id.as_str()),
            _ => false,
        };
        if !ours {
            let why = format!(
                "it regressed ({reason}), but {} no longer holds the change, so the inverse patch was not applied",
                record.target
            );
            record.status = ChangeStatus::NeedsHuman {
                reason: why.clone(),
            };
            record.step(&self.cluster_now(), why);
            return self.save(id, &record, None).await;
        }
        let expected = after.unwrap_or_else(|| record.before.clone());
        let marker = format!("{}/rolled-back", record.id);
        let inverse = record.inverse_patch.clone();
        match self
            .write(
                &record.target,
                record.patch_type,
                &inverse,
                &marker,
                &expected,
            )
            .await
        {
            Ok(_) => {
                record.status = ChangeStatus::RolledBack;
                record.step(
                    &self.cluster_now(),
                    "rolled back: the inverse patch is in the cluster",
                );
                self.progress.step(&record, "rolled back");
                self.save(
                    id,
                    &record,
                    Some(&(
                        Action::RollBack,
                        self.by.clone(),
                        format!("rolled back automatically: {reason}"),
                    )),
                )
                .await
            }
            Err(error) => {
                let why = format!("it regressed ({reason}), and the inverse patch failed: {error}");
                record.status = ChangeStatus::NeedsHuman {
                    reason: why.clone(),
                };
                record.step(&self.cluster_now(), why);
                self.save(id, &record, None).await?;
                Err(error)
            }
        }
    }

    /// Finishes a change its owner left under way: a write that never happened is recorded as
    /// not made; a write that did is confirmed (or rolled back) by a new confirmation window.
    async fn recover(
        &self,
        stored: &StoredIncident,
        mut record: ChangeRecord,
    ) -> ChangeResult<Changed> {
        let id = stored.incident.id.clone();
        let state = self.load(record.target.namespace_str()).await?;
        let object = Lookup::new(&state).object(&record.target);
        let marker = object.as_ref().and_then(annotation).map(str::to_owned);
        let previous = record.owner.clone();
        record.owner = owner();
        let now = self.cluster_now();
        let taken = format!(
            "resumed by process {} on {} after process {} on {} stopped (last alive {})",
            record.owner.pid, record.owner.host, previous.pid, previous.host, previous.heartbeat
        );
        let rolled_back_marker = format!("{}/rolled-back", record.id);
        match (record.kind, marker.as_deref()) {
            (ChangeKind::Apply, Some(m)) if m == record.id => {
                record.status = ChangeStatus::Confirming;
                record.step(&now, taken);
                self.save(&id, &record, None).await?;
                self.progress
                    .step(&record, "resumed the confirmation window");
                let stored = self.store.find(&id).await?;
                self.confirm(&stored, record).await
            }
            (ChangeKind::Apply, Some(m)) if m == rolled_back_marker => {
                record.status = ChangeStatus::RolledBack;
                record.step(
                    &now,
                    format!("{taken}: the inverse patch was already in the cluster"),
                );
                self.save(&id, &record, Some(&(Action::RollBack, self.by.clone(), "rolled back automatically (finished after the process making the change stopped)".to_owned()))).await
            }
            (ChangeKind::Rollback, Some(m)) if m == record.id => {
                record.status = ChangeStatus::Made;
                record.step(
                    &now,
                    format!("{taken}: the inverse patch was already in the cluster"),
                );
                self.save(
                    &id,
                    &record,
                    Some(&(
                        Action::RollBack,
                        record.approver.clone(),
                        "rolled back by hand (finished after the process making it stopped)"
                            .to_owned(),
                    )),
                )
                .await
            }
            _ if record.status == ChangeStatus::Intent => {
                let reason =
                    "the process making it stopped before writing it; the cluster was not changed"
                        .to_owned();
                record.step(&now, format!("{taken}: {reason}"));
                record.status = ChangeStatus::NotMade { reason };
                self.save(&id, &record, None).await
            }
            _ => {
                let reason = format!(
                    "the process confirming it stopped, and {} no longer carries the change's annotation ({}): someone changed it meanwhile",
                    record.target,
                    marker.as_deref().unwrap_or("none")
                );
                record.step(&now, format!("{taken}: {reason}"));
                record.status = ChangeStatus::NeedsHuman { reason };
                self.save(&id, &record, None).await
            }
        }
    }

    /// Whether a write that failed with `error` reached the cluster anyway: a refusal did not;
    /// after a lost connection or timeout, the object's change annotation tells. When the
    /// object cannot be read either, the answer is unknown and the error stands, leaving the
    /// change recorded as under way for the next run to resolve.
    async fn landed(
        &self,
        target: &aegis_core::ResourceRef,
        marker: &str,
        error: &ChangeError,
    ) -> ChangeResult<bool> {
        let ambiguous = matches!(
            error,
            ChangeError::Write(WriteError::Transport { .. }) | ChangeError::Read { .. }
        );
        if !ambiguous {
            return Ok(false);
        }
        let state = self.load(target.namespace_str()).await?;
        Ok(Lookup::new(&state)
            .object(target)
            .as_ref()
            .and_then(annotation)
            == Some(marker))
    }

    fn check_source(&self, stored: &StoredIncident) -> ChangeResult<()> {
        let now = self.cluster.kind();
        if stored.source != now {
            return Err(ChangeError::SourceMismatch {
                id: stored.incident.id.clone(),
                recorded: stored.source.as_str(),
                now: now.as_str(),
            });
        }
        Ok(())
    }

    async fn load(&self, namespace: &str) -> ChangeResult<ClusterState> {
        self.cluster
            .load(&Scope::namespace_only(namespace))
            .await
            .map(|loaded| loaded.state)
            .map_err(|source| ChangeError::Read {
                namespace: namespace.to_owned(),
                source,
            })
    }

    fn cluster_now(&self) -> String {
        self.cluster.now().to_string()
    }
}

/// Refuses to touch a change whose owner is still at work.
fn ensure_abandoned(stored: &StoredIncident, change: &ChangeRecord) -> ChangeResult<()> {
    if owner_alive(&change.owner) {
        return Err(in_progress(stored, change));
    }
    Ok(())
}

fn in_progress(stored: &StoredIncident, change: &ChangeRecord) -> ChangeError {
    ChangeError::InProgress {
        id: stored.incident.id.clone(),
        change: change.id.clone(),
        pid: change.owner.pid,
        host: change.owner.host.clone(),
        heartbeat: change.owner.heartbeat.clone(),
    }
}

/// The hash of a fix's patch.
fn fix_hash(fix: &Fix) -> String {
    aegis_shadow::fix_hash(fix)
}

/// The id of the incident's next change: `chg-<incident hex>-<n>`.
fn next_change_id(stored: &StoredIncident) -> String {
    let hex = stored.incident.id.trim_start_matches("inc-");
    format!("chg-{hex}-{}", stored.changes.len() + 1)
}

/// The value of the change annotation on an object.
fn annotation(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CHANGE_ANNOTATION))
        .and_then(Value::as_str)
}

/// `patch` with the object's resourceVersion as a precondition and the change annotation.
fn with_change(patch: &Value, patch_type: PatchType, object: &Value, marker: &str) -> Value {
    let version = object
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    match patch_type {
        PatchType::StrategicMerge | PatchType::Merge => {
            let mut body = patch.clone();
            if !body.is_object() {
                return body;
            }
            if !body.get("metadata").is_some_and(Value::is_object) {
                body["metadata"] = json!({});
            }
            if !version.is_null() {
                body["metadata"]["resourceVersion"] = version;
            }
            if !body["metadata"]
                .get("annotations")
                .is_some_and(Value::is_object)
            {
                body["metadata"]["annotations"] = json!({});
            }
            body["metadata"]["annotations"][CHANGE_ANNOTATION] = json!(marker);
            body
        }
        PatchType::Json => {
            let mut operations = Vec::new();
            if !version.is_null() {
                operations.push(
                    json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}),
                );
            }
            if object
                .pointer("/metadata/annotations")
                .is_some_and(Value::is_object)
            {
                operations.push(json!({"op": "add", "path": format!("/metadata/annotations/{}", CHANGE_ANNOTATION.replace('~', "~0").replace('/', "~1")), "value": marker}));
            } else {
                operations.push(json!({"op": "add", "path": "/metadata/annotations", "value": {CHANGE_ANNOTATION: marker}}));
            }
            operations.extend(patch.as_array().cloned().unwrap_or_default());
            Value::Array(operations)
        }
    }
}

/// The object's diff that `patch` makes, as people read it.
fn object_diff(object: &Value, patch_type: PatchType, patch: &Value) -> Vec<String> {
    match patch::apply(object, patch_type, patch) {
        Ok(patched) => patch::diff(
            object.get("spec").unwrap_or(&Value::Null),
            patched.get("spec").unwrap_or(&Value::Null),
            3,
        ),
        Err(e) => vec![format!("the patch does not apply: {e}")],
    }
}

/// Seconds from the change's write until the last of its pods turned Ready, when all are.
fn ready_after(pods: &[&k8s_openapi::api::core::v1::Pod], written: Timestamp) -> Option<f64> {
    let mut latest: Option<Timestamp> = None;
    if pods.is_empty() {
        return None;
    }
    for pod in pods {
        let at = aegis_core::state::ready_condition(pod)?
            .last_transition_time
            .as_ref()?
            .0;
        latest = Some(latest.map_or(at, |l| l.max(at)));
    }
    latest.map(|at| seconds(written, at))
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

/// Now on the wall clock, to the second: when people and processes did things.
fn wall_now() -> String {
    Timestamp::now()
        .round(Unit::Second)
        .unwrap_or_else(|_| Timestamp::now())
        .to_string()
}

/// This process, as the owner of a change.
fn owner() -> Owner {
    Owner {
        host: host_name(),
        pid: std::process::id(),
        heartbeat: wall_now(),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether the process that owns a change may still be at work: on this host, whether it
/// runs (where `/proc` tells); elsewhere, whether its heartbeat is recent.
fn owner_alive(owner: &Owner) -> bool {
    let fresh = |limit: i64| {
        owner
            .heartbeat
            .parse::<Timestamp>()
            .is_ok_and(|at| Timestamp::now().duration_since(at).as_secs() < limit)
    };
    if owner.host == host_name() && std::path::Path::new("/proc/self").exists() {
        if owner.pid == std::process::id() {
            return true;
        }
        // A pid that runs again long after the heartbeat stopped is another process.
        return PathBuf::from(format!("/proc/{}", owner.pid)).exists() && fresh(600);
    }
    fresh(STALE_AFTER_SECONDS)
}

#[cfg(test)]
mod tests;
