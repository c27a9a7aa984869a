//! The local incident store: one JSON file per incident under the state directory.
//!
//! Analyses record what they find; `aegis incident list/show` read it back. Files are written
//! to a temporary name and renamed, so a crash never leaves half an incident behind.

use std::fs;
use std::path::{Path, PathBuf};

use aegis_core::{Incident, SourceKind};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};

/// An incident with when and where it was seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredIncident {
    pub first_seen: String,
    pub last_seen: String,
    pub times_seen: u64,
    pub source: SourceKind,
    pub incident: Incident,
}

/// The store in one directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of the configured state directory (`agent.state_dir`, else the user's).
    pub fn configured(settings: &aegis_core::settings::Settings) -> CliResult<Self> {
        let state_dir = settings
            .agent
            .state_dir
            .clone()
            .or_else(crate::config::default_state_dir)
            .ok_or_else(|| {
                CliError::failure("no state directory is known")
                    .hint("set agent.state_dir or AEGIS_AGENT__STATE_DIR")
            })?;
        Ok(Self::new(&state_dir))
    }

    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("incidents"),
        }
    }

    /// Records incidents, keeping when each was first seen.
    pub fn record(&self, incidents: &[Incident], source: SourceKind) -> CliResult<()> {
        fs::create_dir_all(&self.dir).map_err(|e| {
            CliError::failure(format!(
                "cannot create incident store {}: {e}",
                self.dir.display()
            ))
        })?;
        let now = Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or_else(|_| Timestamp::now())
            .to_string();
        for incident in incidents {
            let path = self.path(&incident.id);
            let previous = Self::read(&path).ok();
            let stored = StoredIncident {
                first_seen: previous
                    .as_ref()
                    .map_or_else(|| now.clone(), |p| p.first_seen.clone()),
                last_seen: now.clone(),
                times_seen: previous.as_ref().map_or(0, |p| p.times_seen) + 1,
                source,
                incident: incident.clone(),
            };
            let text = serde_json::to_string_pretty(&stored).map_err(CliError::failure)?;
            let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
            fs::write(&temporary, text).map_err(|e| {
                CliError::failure(format!("cannot write {}: {e}", temporary.display()))
            })?;
            fs::rename(&temporary, &path)
                .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Every recorded incident, most recently seen first. Unreadable files are reported and skipped.
    pub fn list(&self) -> CliResult<(Vec<StoredIncident>, Vec<String>)> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(e) => {
                return Err(CliError::failure(format!(
                    "cannot read incident store {}: {e}",
                    self.dir.display()
                )));
            }
        };
        let mut incidents = Vec::new();
        let mut problems = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match Self::read(&path) {
                Ok(stored) => incidents.push(stored),
                Err(reason) => problems.push(format!("{}: {reason}", path.display())),
            }
        }
        incidents.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then(a.incident.id.cmp(&b.incident.id))
        });
        Ok((incidents, problems))
    }

    /// One incident by id or unique id prefix.
    pub fn find(&self, id: &str) -> CliResult<StoredIncident> {
        let (incidents, _) = self.list()?;
        let matching: Vec<StoredIncident> = incidents
            .into_iter()
            .filter(|s| s.incident.id.starts_with(id))
            .collect();
        match matching.len() {
            1 => Ok(matching.into_iter().next().expect("one element, checked above")),
            0 => Err(CliError::failure(format!("no incident {id} in {}", self.dir.display()))
                .hint("`aegis incident list` shows the recorded incidents; `aegis analyze` records new ones")),
            n => Err(CliError::usage(format!("{id} matches {n} incidents")).hint("give more of the id")),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn read(path: &Path) -> Result<StoredIncident, String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("not an incident record: {e}"))
    }
}
