//! `aegis incident list|show`: incidents recorded by earlier analyses.

use serde_json::json;

use super::{print, warn};
use crate::args::{IncidentCommand, OutputFormat};
use crate::config::Resolved;
use crate::error::CliResult;
use crate::render::{self, Style};

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
