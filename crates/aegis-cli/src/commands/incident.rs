//! `aegis incident list|show|approve|reject|apply|rollback`: incidents recorded by earlier
//! analyses, the decisions humans make on their fixes, and the production changes that follow
//! them through the change engine.

use std::io::IsTerminal;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{print, warn};
use crate::args::{GlobalArgs, IncidentCommand, OutputFormat};
use crate::config::Resolved;
use aegis_agent::change::{ChangeEngine, ChangeError, ChangeProgress, Changed};
use aegis_agent::store::{Store, StoreError, StoredIncident};
use aegis_cluster::Cluster;
use aegis_cluster::sim::MockSource;
use aegis_core::change::{ChangeRecord, ChangeStatus};
use aegis_core::lifecycle::{Action, Phase};

use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use crate::store::now;

pub async fn run(
    global: &GlobalArgs,
    command: &IncidentCommand,
    resolved: &Resolved,
    style: Style,
) -> CliResult<()> {
    let output = global.output;
    let store = crate::store::configured(&resolved.settings)?;
    match command {
        IncidentCommand::List => {
            let (incidents, problems) = store.list()?;
            for problem in problems {
                warn(format!("skipped {problem}"));
            }
            let text = match output {
                OutputFormat::Table => render::incident_list(&incidents, style),
                format => render::data(&json!({"incidents": incidents}), format)?,
            };
            print(&text)
        }
        IncidentCommand::Approve { id, apply } => {
            let stored = store.find(id)?;
            let Some(fix) = &stored.incident.fix else {
                return Err(CliError::failure(format!(
                    "incident {} has no fix to approve",
                    stored.incident.id
                ))
                .hint("it was escalated: `aegis incident show` gives the evidence and why no fix was proposed"));
            };
            if !fix.policy.allowed {
                return Err(CliError::failure(format!(
                    "the fix of incident {} is denied by the fix policy: {}",
                    stored.incident.id,
                    fix.policy.violations_text()
                ))
                .hint("a denied fix is reported, never approved or applied"));
            }
            let reason = format!("approved: {}", fix.summary);
            let moved = store
                .advance(
                    &stored.incident.id,
                    Action::Approve,
                    &user(),
                    &reason,
                    &now(),
                )
                .map_err(|e| refusal(e, &stored.incident))?;
            if *apply {
                eprintln!("{}", decided_line(&moved));
                return change(global, resolved, &store, &moved.incident.id, None, output).await;
            }
            decided(&moved, output)
        }
        IncidentCommand::Reject { id, reason } => {
            if reason.trim().is_empty() {
                return Err(CliError::usage("--reason is empty")
                    .hint("say why the fix is rejected: --reason \"…\""));
            }
            let stored = store.find(id)?;
            let moved = store
                .advance(&stored.incident.id, Action::Reject, &user(), reason, &now())
                .map_err(|e| refusal(e, &stored.incident))?;
            decided(&moved, output)
        }
        IncidentCommand::Apply { id } => change(global, resolved, &store, id, None, output).await,
        IncidentCommand::Rollback { id, reason } => {
            let reason = match reason {
                Some(reason) if reason.trim().is_empty() => {
                    return Err(CliError::usage("--reason is empty")
                        .hint("say why the fix is rolled back, or leave --reason out"));
                }
                Some(reason) => reason.clone(),
                None => format!("asked by {}", user()),
            };
            change(global, resolved, &store, id, Some(&reason), output).await
        }
        IncidentCommand::Show { id } => {
            let stored = store.find(id)?;
            let text = match output {
                OutputFormat::Table => format!(
                    "{} · first seen {} · last seen {} · seen {} times · source {}\n{}{}\n{}{}",
                    stored.lifecycle.phase,
                    stored.first_seen,
                    stored.last_seen,
                    stored.times_seen,
                    stored.source.as_str(),
                    history(&stored.lifecycle),
                    render::detail(&stored.incident, style),
                    render::verification_evidence(&stored.incident.verification.result),
                    audit(&stored.changes)
                ),
                format => render::data(&shown(&stored), format)?,
            };
            print(&text)
        }
    }
}

/// An incident as `incident show -o json` prints it (SPEC §4): the incident, its `phase`,
/// `history` and, once a production change was made, `audit`; with when and where it was seen.
fn shown(stored: &StoredIncident) -> Value {
    let mut value = serde_json::to_value(&stored.incident).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("phase".to_owned(), json!(stored.lifecycle.phase));
        map.insert("history".to_owned(), json!(stored.lifecycle.history));
        map.insert("audit".to_owned(), json!(stored.changes));
        map.insert("first_seen".to_owned(), json!(stored.first_seen));
        map.insert("last_seen".to_owned(), json!(stored.last_seen));
        map.insert("times_seen".to_owned(), json!(stored.times_seen));
        map.insert("source".to_owned(), json!(stored.source));
    }
    value
}

/// The cluster production changes go to: the live cluster, or the mock world that keeps its
/// changes in the state directory. A snapshot is read-only.
async fn production(global: &GlobalArgs, resolved: &Resolved) -> CliResult<Arc<dyn Cluster>> {
    if global.mock {
        let path = crate::store::mock_journal(&resolved.settings).ok_or_else(|| {
            CliError::failure("no state directory is known to keep the mock world's changes in")
                .hint("set agent.state_dir or AEGIS_AGENT__STATE_DIR")
        })?;
        let world = MockSource::demo_journaled(&path, true).map_err(super::analyze::mock_error)?;
        return Ok(Arc::new(world));
    }
    if !global.snapshot.is_empty() {
        return Err(CliError::usage("a snapshot is read-only: no fix can be applied to it")
            .hint("apply on the cluster the snapshot was taken from (its kubeconfig context), or try the flow with --mock"));
    }
    let context = resolved.settings.kubernetes.context.clone();
    Ok(Arc::new(super::analyze::connect(resolved, context).await?))
}

/// Applies an incident's fix (or, with a reason, rolls it back) through the change engine and
/// prints the outcome. Ctrl-C leaves a change under way for the next run to finish.
async fn change(
    global: &GlobalArgs,
    resolved: &Resolved,
    store: &Store,
    id: &str,
    rollback: Option<&str>,
    output: OutputFormat,
) -> CliResult<()> {
    let cluster = production(global, resolved).await?;
    let progress = Progress {
        shown: std::io::stderr().is_terminal(),
    };
    let engine = ChangeEngine {
        store,
        cluster: cluster.as_ref(),
        settings: &resolved.settings,
        by: user(),
        progress: &progress,
    };
    let work = async {
        match rollback {
            Some(reason) => engine.rollback(id, reason).await,
            None => engine.apply(id).await,
        }
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => {
            return Err(CliError::failure("interrupted: a change may be left under way")
                .hint(format!("rerun `aegis incident apply {id}` (or `rollback`): it finds the audit record and finishes or undoes the change")));
        }
    };
    let changed = outcome.map_err(change_error)?;
    report(&changed, output)
}

/// Prints what became of a change; one that did not stand is an error (exit 1).
fn report(changed: &Changed, output: OutputFormat) -> CliResult<()> {
    let Changed { incident, change } = changed;
    let id = &incident.incident.id;
    if output != OutputFormat::Table {
        let mut value = shown(incident);
        value["change"] = json!(change);
        print(&render::data(&value, output)?)?;
    }
    let timing = change
        .timing
        .map(|t| {
            format!(
                " (written {:.1}s after the record; pods ready after {}; decided after {:.1}s)",
                t.to_write_seconds,
                t.pods_ready_seconds
                    .map_or_else(|| "—".to_owned(), |s| format!("{s:.1}s")),
                t.decided_seconds
            )
        })
        .unwrap_or_default();
    let last = change.steps.last().map_or("", |s| s.what.as_str());
    let line = match &change.status {
        ChangeStatus::Confirmed => format!(
            "{id} applied: change {} confirmed{timing}\n  {last}\n",
            change.id
        ),
        ChangeStatus::Made => format!(
            "{id} rolled back: change {} restored the previous spec\n",
            change.id
        ),
        ChangeStatus::PatchFile { path } => format!(
            "{id}: {} is managed by GitOps; the fix is written to {path} for its source repository (the cluster is unchanged)\n",
            change.target
        ),
        ChangeStatus::RolledBack => {
            return Err(CliError::failure(format!(
                "the fix of {id} regressed production and was rolled back{timing}: {}",
                change
                    .steps
                    .iter()
                    .rev()
                    .find_map(|s| s.what.strip_prefix("regressed: "))
                    .unwrap_or(last)
            ))
            .hint(format!(
                "`aegis incident show {id}` gives the evidence the confirmation window saw"
            )));
        }
        ChangeStatus::NeedsHuman { reason } => {
            return Err(CliError::failure(format!(
                "change {} of {id} needs a human: {reason}",
                change.id
            ))
            .hint(format!(
                "`aegis incident show {id}` gives the change's steps"
            )));
        }
        ChangeStatus::NotMade { reason } => {
            return Err(CliError::failure(format!(
                "change {} of {id} was not made: {reason}",
                change.id
            )));
        }
        ChangeStatus::Intent | ChangeStatus::Confirming => {
            return Err(CliError::failure(format!(
                "change {} of {id} is still under way",
                change.id
            ))
            .hint(format!("rerun `aegis incident apply {id}` to finish it")));
        }
    };
    if output == OutputFormat::Table {
        print(&line)
    } else {
        Ok(())
    }
}

/// A change engine error as the CLI reports it.
fn change_error(error: ChangeError) -> CliError {
    let hint = error.hint();
    let error = match error {
        ChangeError::Store(store) => return CliError::from(store),
        other => CliError::failure(other),
    };
    match hint {
        Some(hint) => error.hint(hint),
        None => error,
    }
}

/// Progress of a change on stderr, when it is a terminal.
struct Progress {
    shown: bool,
}

impl ChangeProgress for Progress {
    fn step(&self, change: &ChangeRecord, what: &str) {
        if self.shown {
            eprintln!("{} {}: {what}", change.id, change.target);
        }
    }
}

/// The audit records, each with its steps.
fn audit(changes: &[ChangeRecord]) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for change in changes {
        let _ = writeln!(
            text,
            "\nchange {} ({:?}) · {} · {} · approved by {} at {} · recorded {}",
            change.id,
            change.kind,
            change.status,
            change.target,
            change.approver,
            change.approved_at,
            change.recorded_at
        );
        let _ = writeln!(
            text,
            "  verdict {} · backend {}{} · evidence: {}",
            change.verdict,
            change.backend,
            change
                .prompt_hash
                .as_deref()
                .map(|h| format!(" · prompt {h}"))
                .unwrap_or_default(),
            change.evidence
        );
        for step in &change.steps {
            let _ = writeln!(text, "  {} {}", step.at, step.what);
        }
        for line in &change.diff {
            let _ = writeln!(text, "  {line}");
        }
        let _ = writeln!(text, "  inverse patch: {}", change.inverse_patch);
        for line in &change.evidence_seen {
            let _ = writeln!(text, "  seen: {line}");
        }
    }
    text
}

/// The lifecycle's history, a line per transition.
fn history(lifecycle: &aegis_core::lifecycle::Lifecycle) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for t in &lifecycle.history {
        let _ = writeln!(
            text,
            "  {} {} → {} by {} ({}): {}",
            t.at, t.from, t.to, t.by, t.action, t.reason
        );
    }
    text
}

/// Who decides: the user running the command.
fn user() -> String {
    ["AEGIS_USER", "USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "unknown user".to_owned())
}

/// A refused decision as the CLI reports it, with the way forward for the phase the incident
/// is in.
fn refusal(error: StoreError, incident: &aegis_core::Incident) -> CliError {
    let hint = match &error {
        StoreError::Refused(refused) => match refused.from {
            Phase::Detected | Phase::Diagnosed | Phase::Verifying => Some(format!(
                "verify the fix in a shadow first: `aegis analyze {}/{}{}` (without --no-verify)",
                incident.workload.kind.as_str().to_ascii_lowercase(),
                incident.workload.name,
                incident
                    .workload
                    .namespace
                    .as_deref()
                    .map(|n| format!(" -n {n}"))
                    .unwrap_or_default()
            )),
            Phase::Approved | Phase::Rejected => {
                Some("the decision is made; `aegis incident show` gives its history".to_owned())
            }
            Phase::Applied | Phase::RolledBack => Some(
                "the fix has reached production; `aegis incident show` gives its history"
                    .to_owned(),
            ),
            Phase::Resolved => Some(
                "the failure is no longer seen; analyze the workload again if it comes back"
                    .to_owned(),
            ),
            Phase::Verified | Phase::Failed | Phase::Escalated => None,
        },
        _ => None,
    };
    let error = CliError::from(error);
    match hint {
        Some(hint) => error.hint(hint),
        None => error,
    }
}

/// The incident's new phase in one line.
fn decided_line(stored: &StoredIncident) -> String {
    let last = stored.lifecycle.history.last();
    format!(
        "{} {} by {}: {}",
        stored.incident.id,
        stored.lifecycle.phase,
        last.map_or("", |t| t.by.as_str()),
        last.map_or("", |t| t.reason.as_str())
    )
}

/// Prints the incident's new phase: one line, or the whole record as data.
fn decided(stored: &StoredIncident, output: OutputFormat) -> CliResult<()> {
    let text = match output {
        OutputFormat::Table => format!("{}\n", decided_line(stored)),
        format => render::data(&shown(stored), format)?,
    };
    print(&text)
}
