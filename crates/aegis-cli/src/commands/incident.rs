//! `aegis incident list|show|approve|reject`: incidents recorded by earlier analyses, and the
//! decisions humans make on their fixes.

use serde_json::json;

use super::{print, warn};
use crate::args::{IncidentCommand, OutputFormat};
use crate::config::Resolved;
use aegis_agent::store::{StoreError, StoredIncident};
use aegis_core::lifecycle::{Action, Phase};

use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use crate::store::now;

pub fn run(
    command: &IncidentCommand,
    output: OutputFormat,
    resolved: &Resolved,
    style: Style,
) -> CliResult<()> {
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
        IncidentCommand::Approve { id } => {
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
        IncidentCommand::Show { id } => {
            let stored = store.find(id)?;
            let text = match output {
                OutputFormat::Table => format!(
                    "{} · first seen {} · last seen {} · seen {} times · source {}\n{}{}\n{}",
                    stored.lifecycle.phase,
                    stored.first_seen,
                    stored.last_seen,
                    stored.times_seen,
                    stored.source.as_str(),
                    history(&stored.lifecycle),
                    render::detail(&stored.incident, style),
                    render::verification_evidence(&stored.incident.verification.result)
                ),
                format => render::data(&stored, format)?,
            };
            print(&text)
        }
    }
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

/// Prints the incident's new phase: one line, or the whole record as data.
fn decided(stored: &StoredIncident, output: OutputFormat) -> CliResult<()> {
    let text = match output {
        OutputFormat::Table => {
            let last = stored.lifecycle.history.last();
            format!(
                "{} {} by {}: {}",
                stored.incident.id,
                stored.lifecycle.phase,
                last.map_or("", |t| t.by.as_str()),
                last.map_or("", |t| t.reason.as_str())
            )
        }
        format => render::data(stored, format)?,
    };
    print(&text)
}
