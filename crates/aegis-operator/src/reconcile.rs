//! The Incident controller (kube-runtime): everything that happens to an incident after the
//! detector recorded it.
//!
//! - a diagnosed fix is verified in a shadow (`verifying`, then the verdict); a verification
//!   a crashed process left `verifying` is run again;
//! - the decisions people write in the spec move the lifecycle: a rejection, an approval of the
//!   fix whose hash it names (an approval of another fix is ignored, and said so);
//! - a resolved incident is deleted once `operator.retention_seconds` have passed.
//!
//! A pass that fails records the error in `status.lastError` and as a Warning Event, and is
//! retried with exponential backoff; a pass that changes nothing writes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_core::crd::{IncidentResource, IncidentStatus, LastError};
use aegis_core::lifecycle::{Action as Move, Phase};
use aegis_core::{Incident, Verdict};
use futures::StreamExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::detect::OPERATOR;
use crate::{Context, incidents, metrics};

/// Why one pass over an incident failed.
#[derive(Debug, thiserror::Error)]
#[error("{during}: {message}")]
pub struct ReconcileError {
    pub during: &'static str,
    pub message: String,
}

fn failed(during: &'static str) -> impl FnOnce(crate::Error) -> ReconcileError {
    move |error| ReconcileError {
        during,
        message: error.to_string(),
    }
}

/// How many passes in a row a shadow may fail to run before the incident is escalated.
const NOT_RUN_RETRIES: u32 = 4;

pub(crate) async fn run(context: Arc<Context>) -> crate::Result<()> {
    let api: Api<IncidentResource> = Api::all(context.client.clone());
    let concurrency =
        u16::try_from(context.settings.shadow.max_concurrent.max(1) + 2).unwrap_or(u16::MAX);
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(Config::default().concurrency(concurrency))
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                tracing::debug!(%error, "reconcile");
            }
        })
        .await;
    Ok(())
}

fn api_of(context: &Context, incident: &IncidentResource) -> Api<IncidentResource> {
    Api::namespaced(
        context.client.clone(),
        &incident
            .namespace()
            .unwrap_or_else(|| context.options.namespace.clone()),
    )
}

async fn reconcile(
    incident: Arc<IncidentResource>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    // After a failure, an event (such as the error's own status write) does not cut the
    // backoff short.
    if let Some(wait) = incident
        .status
        .as_ref()
        .and_then(|s| s.last_error.as_ref())
        .and_then(backoff_left)
    {
        return Ok(Action::requeue(wait));
    }
    let started = Instant::now();
    let outcome = step(&incident, &context).await;
    ::metrics::histogram!(metrics::RECONCILE_SECONDS).record(started.elapsed().as_secs_f64());
    let api = api_of(&context, &incident);
    let name = incident.name_any();
    match &outcome {
        Ok(_) => {
            if incident
                .status
                .as_ref()
                .is_some_and(|s| s.last_error.is_some())
            {
                incidents::update_status(&api, &name, |_, status| status.last_error = None)
                    .await
                    .map_err(failed("clear the last error"))?;
            }
        }
        Err(error) => {
            ::metrics::counter!(metrics::RECONCILE_ERRORS, "during" => error.during).increment(1);
            tracing::warn!(incident = %name, %error, "reconcile failed");
            let now = incidents::now();
            let recorded = incidents::update_status(&api, &name, |_, status| {
                status.last_error = Some(next_error(status.last_error.as_ref(), error, &now));
            })
            .await;
            if let Err(record_error) = recorded {
                tracing::warn!(incident = %name, error = %record_error, "the error could not be recorded in status");
            }
            let event = Event {
                type_: EventType::Warning,
                reason: "ReconcileFailed".to_owned(),
                note: Some(truncate(&error.to_string(), 1000)),
                action: action_name(error.during).to_owned(),
                secondary: None,
            };
            if let Err(event_error) = context
                .recorder
                .publish(&event, &incident.object_ref(&()))
                .await
            {
                tracing::debug!(incident = %name, error = %event_error, "event not published");
            }
        }
    }
    outcome
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn action_name(during: &str) -> &'static str {
    match during {
        "verify" => "Verify",
        "decide" => "Decide",
        "collect" => "Collect",
        "apply" => "Apply",
        "roll back" => "RollBack",
        _ => "Reconcile",
    }
}

/// The error to record: the same kind as the last one keeps its start and counts up.
pub(crate) fn next_error(
    previous: Option<&LastError>,
    error: &ReconcileError,
    now: &str,
) -> LastError {
    match previous {
        Some(previous) if previous.during == error.during => LastError {
            during: previous.during.clone(),
            message: error.message.clone(),
            since: previous.since.clone(),
            last: now.to_owned(),
            attempts: previous.attempts.saturating_add(1),
        },
        _ => LastError {
            during: error.during.to_owned(),
            message: error.message.clone(),
            since: now.to_owned(),
            last: now.to_owned(),
            attempts: 1,
        },
    }
}

/// Requeues a failed pass after 5 s, doubling with each failure in a row, up to 5 minutes.
#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime calls
fn error_policy(
    incident: Arc<IncidentResource>,
    _error: &ReconcileError,
    _context: Arc<Context>,
) -> Action {
    let attempts = incident
        .status
        .as_ref()
        .and_then(|s| s.last_error.as_ref())
        .map_or(0, |e| e.attempts);
    Action::requeue(backoff(attempts))
}

/// What is left of the backoff after `error`, if anything.
fn backoff_left(error: &LastError) -> Option<Duration> {
    let last = error.last.parse::<k8s_openapi::jiff::Timestamp>().ok()?;
    let since = k8s_openapi::jiff::Timestamp::now()
        .duration_since(last)
        .unsigned_abs();
    backoff(error.attempts.saturating_sub(1))
        .checked_sub(since)
        .filter(|left| !left.is_zero())
}

pub(crate) fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((5u64 << attempts.min(6)).min(300))
}

async fn step(
    incident: &IncidentResource,
    context: &Arc<Context>,
) -> Result<Action, ReconcileError> {
    let Some(status) = incident.status.as_ref() else {
        return Ok(Action::await_change());
    };
    let Some(phase) = status.phase else {
        return Ok(Action::await_change());
    };
    if let Some(moved) = decide(incident, status, phase, context).await? {
        return Ok(moved);
    }
    let name = incident.name_any();
    let fix_and_plan = status
        .incident
        .as_ref()
        .is_some_and(|i| i.fix.is_some() && i.verification.plan.is_some());
    match phase {
        Phase::Diagnosed if fix_and_plan => verify(incident, context).await,
        Phase::Verifying if fix_and_plan => {
            let running = context.verifying.lock().is_ok_and(|v| v.contains(&name));
            if running {
                Ok(Action::await_change())
            } else {
                // Left verifying by a process that stopped: run it again.
                verify(incident, context).await
            }
        }
        Phase::Resolved => collect(incident, status, context).await,
        // Approved by a person (or auto-applied earlier and resumed after a stop): the change
        // engine applies, confirms, and rolls back on a regression.
        Phase::Approved => change(incident, context, None).await,
        Phase::Verified if auto_applies(status, context) => change(incident, context, None).await,
        Phase::Applied => match &incident.spec.rollback {
            Some(decision) => {
                let reason = if decision.reason.is_empty() {
                    format!("asked for by {} in the Incident's spec", decision.by)
                } else {
                    format!("{} (asked for by {})", decision.reason, decision.by)
                };
                change(incident, context, Some(reason)).await
            }
            None => Ok(Action::await_change()),
        },
        _ => Ok(Action::await_change()),
    }
}

/// Whether the policy lets the engine apply this verified fix without a person.
fn auto_applies(status: &IncidentStatus, context: &Context) -> bool {
    let Some(record) = incidents::stored(status) else {
        return false;
    };
    let all = incidents::all_records(&context.caches.incidents);
    matches!(
        aegis_agent::change::preconditions::may_apply(
            &record,
            &all,
            &context.settings.policy,
            k8s_openapi::jiff::Timestamp::now(),
        ),
        Ok(aegis_agent::change::Grant::AutoApply)
    )
}

/// Runs the change engine on the incident: its fix applied (`rollback` unset) or undone.
async fn change(
    incident: &IncidentResource,
    context: &Context,
    rollback: Option<String>,
) -> Result<Action, ReconcileError> {
    let name = incident.name_any();
    let patch_dir = context
        .settings
        .agent
        .state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("aegis"))
        .join("gitops");
    let records = incidents::IncidentRecords {
        client: context.client.clone(),
        cache: &context.caches.incidents,
        patch_dir,
    };
    let engine = aegis_agent::change::ChangeEngine {
        store: &records,
        cluster: &context.live,
        settings: &context.settings,
        by: OPERATOR.to_owned(),
        progress: &Traced,
    };
    let during = if rollback.is_some() {
        "roll back"
    } else {
        "apply"
    };
    let outcome = match &rollback {
        None => engine.apply(&name).await,
        Some(reason) => engine.rollback(&name, reason).await,
    };
    match outcome {
        Ok(changed) => {
            let status = changed.change.status.as_str();
            ::metrics::counter!(metrics::CHANGES, "outcome" => status).increment(1);
            if changed.change.status == aegis_core::change::ChangeStatus::RolledBack {
                ::metrics::counter!(metrics::ROLLBACKS).increment(1);
            }
            tracing::info!(incident = %name, change = %changed.change.id, status, "production change");
            Ok(Action::await_change())
        }
        Err(error) => {
            let hint = error.hint().map(|h| format!(" ({h})")).unwrap_or_default();
            Err(ReconcileError {
                during,
                message: format!("{error}{hint}"),
            })
        }
    }
}

/// The change engine's progress, as log lines (the status holds every step).
struct Traced;

impl aegis_agent::change::ChangeProgress for Traced {
    fn step(&self, change: &aegis_core::change::ChangeRecord, what: &str) {
        tracing::info!(change = %change.id, incident = %change.incident, "{what}");
    }
}

/// Follows a decision written in the spec; `Some` when it moved the incident.
async fn decide(
    incident: &IncidentResource,
    status: &IncidentStatus,
    phase: Phase,
    context: &Context,
) -> Result<Option<Action>, ReconcileError> {
    let spec = &incident.spec;
    let now = incidents::now();
    if incidents::stored(status).is_some_and(|s| s.change_in_progress().is_some()) {
        // A change under way ends on its own evidence (confirmed or rolled back) first.
        return Ok(None);
    }
    let (action, decision) = if let Some(rejection) = spec.rejection.as_ref().filter(|r| {
        matches!(
            phase,
            Phase::Verified | Phase::Failed | Phase::Escalated | Phase::Approved
        ) && (r.fix_hash.is_none() || r.fix_hash == status.fix_hash)
    }) {
        (Move::Reject, rejection)
    } else if let Some(approval) = spec
        .approval
        .as_ref()
        .filter(|_| matches!(phase, Phase::Verified | Phase::Failed | Phase::Escalated))
    {
        if approval.fix_hash.is_none() || approval.fix_hash != status.fix_hash {
            // An approval names the fix it approves; another fix stays unapproved.
            return Ok(None);
        }
        let spent = status.changes.iter().any(|c| {
            c.kind == aegis_core::change::ChangeKind::Apply
                && Some(&c.fix_hash) == approval.fix_hash.as_ref()
        });
        if spent {
            // The approval was used: the change was made (and maybe undone). Applying the
            // same fix again takes a new decision, not the old one left in the spec.
            return Ok(None);
        }
        (Move::Approve, approval)
    } else {
        return Ok(None);
    };
    let api = api_of(context, incident);
    let reason = if decision.reason.is_empty() {
        format!("{action} in the Incident's spec")
    } else {
        decision.reason.clone()
    };
    incidents::update_status(&api, &incident.name_any(), |_, status| {
        let Some(mut stored) = incidents::stored(status) else {
            return;
        };
        if stored
            .lifecycle
            .advance(action, &decision.by, &now, &reason)
            .is_ok()
        {
            incidents::write_back(status, stored);
        }
    })
    .await
    .map_err(failed("decide"))?;
    Ok(Some(Action::await_change()))
}

/// Verifies the incident's fix in a shadow and records the verdict.
async fn verify(
    incident: &IncidentResource,
    context: &Arc<Context>,
) -> Result<Action, ReconcileError> {
    let name = incident.name_any();
    let api = api_of(context, incident);
    if let Ok(mut running) = context.verifying.lock() {
        running.insert(name.clone());
    }
    // Boxed: the verification holds the incident and its shadow's evidence.
    let outcome = Box::pin(verify_unguarded(context, &api, &name)).await;
    if let Ok(mut running) = context.verifying.lock() {
        running.remove(&name);
    }
    outcome
}

async fn verify_unguarded(
    context: &Arc<Context>,
    api: &Api<IncidentResource>,
    name: &str,
) -> Result<Action, ReconcileError> {
    let now = incidents::now();
    let started = incidents::update_status(api, name, |_, status| {
        let Some(mut stored) = incidents::stored(status) else {
            return;
        };
        if stored.lifecycle.phase == Phase::Diagnosed
            && stored
                .lifecycle
                .advance(Move::Verify, OPERATOR, &now, "a shadow verifies the fix")
                .is_ok()
        {
            incidents::write_back(status, stored);
        }
    })
    .await
    .map_err(failed("verify"))?;
    let Some(started) = started else {
        return Ok(Action::await_change());
    };
    let Some(status) = started.status.as_ref() else {
        return Ok(Action::await_change());
    };
    if status.phase != Some(Phase::Verifying) {
        return Ok(Action::await_change());
    }
    let Some(subject) = status.incident.clone() else {
        return Ok(Action::await_change());
    };
    let verified_hash = status.fix_hash.clone();
    let first_seen = status.first_seen.clone();
    // Shadows beyond the cap wait here instead of failing to start.
    let Ok(_slot) = context.shadow_slots.acquire().await else {
        return Ok(Action::await_change());
    };
    let workload_namespace = subject.workload.namespace.clone().unwrap_or_default();
    let mut state = context.caches.state_of(&workload_namespace);
    context
        .live
        .read_failing_logs_of(&mut state, |_| true)
        .await;
    let mut subjects = [subject];
    let options = aegis_agent::VerifyOptions::from_settings(&context.settings.shadow);
    let clock = Instant::now();
    aegis_agent::verify_incidents(
        &state,
        &mut subjects,
        &context.live,
        &context.live,
        &options,
        &context.tracker,
        &Silent,
    )
    .await;
    let [verified]: [Incident; 1] = subjects;
    let result = verified.verification.result.clone();
    let failed_before = status
        .last_error
        .as_ref()
        .filter(|e| e.during == "verify")
        .map_or(0, |e| e.attempts);
    if result.reason.starts_with(aegis_agent::SHADOW_NOT_RUN) && failed_before < NOT_RUN_RETRIES {
        // No shadow ran (the cluster's cap, a refused dry run, an API error): not a verdict.
        // The incident stays verifying and the pass is retried with backoff; after
        // NOT_RUN_RETRIES the inconclusive result stands and a human decides.
        return Err(ReconcileError {
            during: "verify",
            message: result.reason,
        });
    }
    ::metrics::histogram!(metrics::SHADOW_SECONDS).record(clock.elapsed().as_secs_f64());
    ::metrics::counter!(
        metrics::SHADOW_VERDICTS,
        "verdict" => result.verdict.as_str(),
        "category" => verified.rca.category.id()
    )
    .increment(1);
    let now = incidents::now();
    let written = incidents::update_status(api, name, |_, status| {
        let Some(mut stored) = incidents::stored(status) else {
            return;
        };
        if stored.lifecycle.phase != Phase::Verifying {
            return;
        }
        if status.fix_hash == verified_hash {
            stored.incident.verification = verified.verification.clone();
            stored.incident.fix = verified.fix.clone();
            stored.incident.alternative_fixes = verified.alternative_fixes.clone();
            let _ = stored.lifecycle.advance(
                Move::Verdict(result.verdict),
                OPERATOR,
                &now,
                &result.reason,
            );
            stored.fix_hash = stored.incident.fix.as_ref().map(aegis_shadow::fix_hash);
        } else {
            // The detector proposed another fix meanwhile: this verdict is not about it.
            let _ = stored.lifecycle.advance(
                Move::Verdict(Verdict::Skipped),
                OPERATOR,
                &now,
                "the fix changed while its shadow ran; the new fix is verified next",
            );
            let _ = stored.lifecycle.advance(
                Move::Diagnose,
                OPERATOR,
                &now,
                "the fix changed: any approval is void",
            );
        }
        incidents::write_back(status, stored);
    })
    .await
    .map_err(failed("verify"))?;
    let reached = written
        .as_ref()
        .and_then(|w| w.status.as_ref())
        .is_some_and(|s| s.verdict == Some(result.verdict) && s.phase != Some(Phase::Verifying));
    if let (true, Ok(first_seen)) = (reached, first_seen.parse::<k8s_openapi::jiff::Timestamp>()) {
        let since = k8s_openapi::jiff::Timestamp::now().duration_since(first_seen);
        ::metrics::histogram!(metrics::TIME_TO_VERDICT, "verdict" => result.verdict.as_str())
            .record(since.as_secs_f64().max(0.0));
    }
    Ok(Action::await_change())
}

/// Verification progress nobody watches (the status says where it stands).
struct Silent;

impl aegis_agent::VerifyProgress for Silent {
    fn started(&self, incident: &Incident) {
        tracing::info!(incident = %incident.id, workload = %incident.workload, "shadow verification started");
    }

    fn finished(&self, incident: &Incident, result: &aegis_core::VerificationResult) {
        tracing::info!(incident = %incident.id, workload = %incident.workload, verdict = result.verdict.as_str(), reason = %result.reason, "shadow verification finished");
    }
}

/// Deletes a resolved incident whose retention has passed; otherwise comes back then.
async fn collect(
    incident: &IncidentResource,
    status: &IncidentStatus,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let retention = Duration::from_secs(context.settings.operator.retention_seconds);
    let resolved = status
        .resolved_at
        .as_deref()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
    let Some(resolved) = resolved else {
        return Ok(Action::await_change());
    };
    let age = k8s_openapi::jiff::Timestamp::now()
        .duration_since(resolved)
        .unsigned_abs();
    if age < retention {
        return Ok(Action::requeue(
            retention.saturating_sub(age) + Duration::from_secs(1),
        ));
    }
    let api = api_of(context, incident);
    match api
        .delete(&incident.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => {
            tracing::info!(incident = %incident.name_any(), "resolved incident deleted after its retention");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Action::await_change()),
        Err(error) => Err(ReconcileError {
            during: "collect",
            message: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
