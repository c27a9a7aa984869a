//! The incident store: one JSON file per incident under the state directory, shared by the CLI
//! and the operator.
//!
//! Analyses record what they find; each record keeps when the incident was first and last seen
//! and its lifecycle (`aegis_core::lifecycle`) across analyses. When an incident was last seen
//! changes at every analysis, so it is also kept for all incidents in one file (`.sightings`):
//! an analysis rewrites only the records whose substance changed, and that one file (an
//! analysis of a few incidents writes their records instead, leaving the file alone).
//! Re-analysis updates findings, evidence and verdicts; a fix whose patch changed sends the
//! incident back to `diagnosed`, which voids an approval instead of silently keeping it. Writers
//! take an exclusive lock on the store for each read-modify-write, so two terminals (or a
//! terminal and the operator) cannot lose each other's updates; files are written to a temporary
//! name and renamed, so a crash never leaves half an incident behind.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use aegis_core::change::{ChangeKind, ChangeRecord, ChangeStatus};
use aegis_core::lifecycle::{Action, Lifecycle, Phase, Refused};
use aegis_core::verification::Verdict;
use aegis_core::{Incident, SourceKind};
use serde::{Deserialize, Serialize};

/// An incident with when and where it was seen, and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredIncident {
    pub first_seen: String,
    pub last_seen: String,
    pub times_seen: u64,
    pub source: SourceKind,
    /// The hash of the fix's patch when the lifecycle last moved on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_hash: Option<String>,
    /// Records written before lifecycles existed read as `detected`.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    pub incident: Incident,
    /// The audit records of the production changes made for this incident, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeRecord>,
}

impl StoredIncident {
    /// The change still under way (recorded, written or confirming), if any.
    pub fn change_in_progress(&self) -> Option<&ChangeRecord> {
        self.changes.iter().rev().find(|c| c.status.in_progress())
    }

    /// The change that undid a fix in production before (rolled back after a regression, or
    /// by hand) whose patch hashes to `hash` or whose result hashes to `result`.
    pub fn rolled_back(&self, hash: &str, result: Option<&str>) -> Option<&ChangeRecord> {
        self.changes.iter().rev().find(|c| {
            (c.fix_hash == hash || result.is_some_and(|r| !r.is_empty() && r == c.result_hash))
                && match c.kind {
                    ChangeKind::Apply => c.status == ChangeStatus::RolledBack,
                    ChangeKind::Rollback => c.status == ChangeStatus::Made,
                }
        })
    }

    /// The last change made for this incident, when it undid a fix in production: production
    /// disagreed with the shadow's verdict, so no later fix is applied on a verdict alone.
    pub fn last_undone(&self) -> Option<&ChangeRecord> {
        self.changes.last().filter(|c| match c.kind {
            ChangeKind::Apply => c.status == ChangeStatus::RolledBack,
            ChangeKind::Rollback => c.status == ChangeStatus::Made,
        })
    }
}

/// When an incident was last seen, how often and by what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sighting {
    last_seen: String,
    times_seen: u64,
    source: SourceKind,
}

impl Sighting {
    fn of(stored: &StoredIncident) -> Self {
        Self {
            last_seen: stored.last_seen.clone(),
            times_seen: stored.times_seen,
            source: stored.source,
        }
    }

    /// Puts this sighting into `stored` when it is the later one: a record is rewritten with
    /// the sighting of its last substantive change, the sightings file at every analysis, and
    /// either may be the newer after a crash between the two.
    fn settle(&self, stored: &mut StoredIncident) {
        if self.times_seen > stored.times_seen {
            self.put(stored);
        }
    }

    fn put(&self, stored: &mut StoredIncident) {
        stored.last_seen.clone_from(&self.last_seen);
        stored.times_seen = self.times_seen;
        stored.source = self.source;
    }
}

/// The name of the file holding every incident's latest sighting, by id.
const SIGHTINGS: &str = ".sightings";

/// Up to this many incidents, an analysis writes each record with its sighting instead.
const FEW: usize = 16;

/// Whether a record whose substance did not change is written again with its new sighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// The sightings file keeps the new sighting.
    WhenChanged,
    Always,
}

/// One incident's sighting in the sightings file's text, found by its key without decoding the
/// rest (ids are plain: `inc-` and hex digits).
fn sighting_in(text: &str, id: &str) -> Option<Sighting> {
    let key = format!("\"{id}\":");
    let at = text.find(&key)? + key.len();
    Sighting::deserialize(&mut serde_json::Deserializer::from_str(&text[at..])).ok()
}

/// A fix of this incident undone in production before, and whether it is the fix proposed now.
struct Undone<'a> {
    change: &'a ChangeRecord,
    same_fix: bool,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the incident store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {reason}")]
    Encode { path: PathBuf, reason: String },
    #[error("no incident {id} in {dir}")]
    NotFound { id: String, dir: PathBuf },
    #[error("{id} matches {count} incidents")]
    Ambiguous { id: String, count: usize },
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A store kept elsewhere (the operator's Incident objects) failed.
    #[error("the incident store failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who moves incidents when an analysis records them.
pub const ANALYSIS: &str = "aegis";

/// The store in one directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// An IO error on `path`, for `map_err`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { path, source }
}

/// An exclusive lock on the store, released when dropped.
struct Locked {
    _file: fs::File,
}

impl Store {
    /// The store under a state directory (`<state_dir>/incidents`).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("incidents"),
        }
    }

    /// The directory holding the records.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the store's lock, creating the store when it does not exist.
    fn lock(&self) -> StoreResult<Locked> {
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(Locked { _file: file })
    }

    /// Records what an analysis found at `now` (RFC 3339), keeping each incident's history.
    /// A record whose substance did not change is left as it is; every incident's sighting
    /// goes into the sightings file, written last, so a crash in between loses at most the
    /// sightings of this analysis.
    pub fn record(&self, incidents: &[Incident], source: SourceKind, now: &str) -> StoreResult<()> {
        let _lock = self.lock()?;
        if incidents.len() <= FEW {
            return self.record_few(incidents, source, now);
        }
        let mut sightings = self.sightings();
        let seen = &sightings;
        let record_one = |incident: &Incident| -> StoreResult<(String, Sighting)> {
            let sighting = seen.get(&incident.id);
            let recorded =
                self.record_one(incident, source, now, sighting, Rewrite::WhenChanged)?;
            Ok((incident.id.clone(), recorded))
        };
        let record_all = |chunk: &[Incident]| chunk.iter().map(&record_one).collect();
        // Each incident is its own file: a large analysis records them on every core.
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(incidents.len().div_ceil(64))
            .max(1);
        let share = incidents.len().div_ceil(workers).max(1);
        let mut chunks = incidents.chunks(share);
        let first = chunks.next().unwrap_or_default();
        let recorded: StoreResult<Vec<Vec<(String, Sighting)>>> = std::thread::scope(|threads| {
            let handles: Vec<_> = chunks
                .map(|chunk| threads.spawn(move || record_all(chunk)))
                .collect();
            let here = record_all(first);
            std::iter::once(here)
                .chain(handles.into_iter().map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(StoreError::Encode {
                            path: self.dir.clone(),
                            reason: "a thread recording incidents panicked".to_owned(),
                        })
                    })
                }))
                .collect()
        });
        sightings.extend(recorded?.into_iter().flatten());
        let path = self.dir.join(SIGHTINGS);
        let text = serde_json::to_string(&sightings).map_err(|e| StoreError::Encode {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Self::replace(&path, &text)
    }

    /// Records a few incidents each in its record, with its sighting, and leaves the sightings
    /// file as it is (its entries for them are older, and the later sighting stands): a small
    /// analysis costs a few files, not the whole store's sightings.
    fn record_few(&self, incidents: &[Incident], source: SourceKind, now: &str) -> StoreResult<()> {
        let sightings = self.sightings_text();
        for incident in incidents {
            let sighting = sightings
                .as_deref()
                .and_then(|text| sighting_in(text, &incident.id));
            self.record_one(incident, source, now, sighting.as_ref(), Rewrite::Always)?;
        }
        Ok(())
    }

    /// Records one incident seen at `now`: its record on file, settled with `sighting` (its
    /// entry in the sightings file), moves on as [`seen_again`] says, or starts as
    /// [`first_seen`] says. Returns its sighting now.
    fn record_one(
        &self,
        incident: &Incident,
        source: SourceKind,
        now: &str,
        sighting: Option<&Sighting>,
        rewrite: Rewrite,
    ) -> StoreResult<Sighting> {
        let path = self.path(&incident.id);
        let on_file = fs::read_to_string(&path).ok().and_then(|text| {
            let stored: StoredIncident = serde_json::from_str(&text).ok()?;
            Some((text, stored))
        });
        let Some((text, mut previous)) = on_file else {
            let stored = first_seen(incident, source, now);
            Self::write(&path, &stored)?;
            return Ok(Sighting::of(&stored));
        };
        let written = Sighting::of(&previous);
        if let Some(sighting) = sighting {
            sighting.settle(&mut previous);
        }
        let mut stored = seen_again(previous, incident, source, now);
        let seen_now = Sighting::of(&stored);
        if rewrite == Rewrite::WhenChanged {
            // The record as it would read with the sighting it was written with: when that is
            // the text on file, only the sighting changed, and the sightings file keeps it.
            written.put(&mut stored);
            let unchanged = Self::encode(&path, &stored)? == text;
            seen_now.put(&mut stored);
            if unchanged {
                return Ok(seen_now);
            }
        }
        Self::write(&path, &stored)?;
        Ok(seen_now)
    }

    /// Moves one incident (by id or unique prefix) by `action`, recording who and why; refused
    /// transitions change nothing.
    pub fn advance(
        &self,
        id: &str,
        action: Action,
        by: &str,
        reason: &str,
        now: &str,
    ) -> StoreResult<StoredIncident> {
        self.update(id, |stored| {
            stored.lifecycle.advance(action, by, now, reason)?;
            Ok(())
        })
        .map(|(stored, ())| stored)
    }

    /// Reads one incident (by id or unique prefix), lets `change` modify it and writes it back,
    /// all under the store's lock, so no other writer's update is lost in between. When
    /// `change` fails nothing is written.
    pub fn update<T, E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnOnce(&mut StoredIncident) -> Result<T, E>,
    ) -> Result<(StoredIncident, T), E> {
        let _lock = self.lock()?;
        let mut stored = self.find(id)?;
        let value = change(&mut stored)?;
        // The record now carries its latest sighting, so the sightings file needs no change.
        Self::write(&self.path(&stored.incident.id), &stored)?;
        Ok((stored, value))
    }

    /// The state directory the store lives in.
    pub fn state_dir(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// Every recorded incident, most recently seen first, and the files that could not be read.
    pub fn list(&self) -> StoreResult<(Vec<StoredIncident>, Vec<String>)> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut incidents = Vec::new();
        let mut problems = Vec::new();
        let sightings = self.sightings();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match Self::read(&path) {
                Ok(mut stored) => {
                    if let Some(sighting) = sightings.get(&stored.incident.id) {
                        sighting.settle(&mut stored);
                    }
                    incidents.push(stored);
                }
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
    pub fn find(&self, id: &str) -> StoreResult<StoredIncident> {
        let (incidents, _) = self.list()?;
        let mut matching: Vec<StoredIncident> = incidents
            .into_iter()
            .filter(|s| s.incident.id.starts_with(id))
            .collect();
        match matching.len() {
            1 => Ok(matching.swap_remove(0)),
            0 => Err(StoreError::NotFound {
                id: id.to_owned(),
                dir: self.dir.clone(),
            }),
            count => Err(StoreError::Ambiguous {
                id: id.to_owned(),
                count,
            }),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every incident's latest sighting. The file is only ever replaced whole; should it not
    /// read, each record's own sighting stands (said in the log) and the next analysis writes
    /// it anew.
    fn sightings(&self) -> BTreeMap<String, Sighting> {
        let Some(text) = self.sightings_text() else {
            return BTreeMap::new();
        };
        let path = self.dir.join(SIGHTINGS);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "the incidents' sightings do not decode; each record's own stands");
            BTreeMap::new()
        })
    }

    /// The sightings file's text, if there is one that reads.
    fn sightings_text(&self) -> Option<String> {
        let path = self.dir.join(SIGHTINGS);
        match fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the incidents' sightings do not read; each record's own stands");
                None
            }
        }
    }

    fn encode(path: &Path, stored: &StoredIncident) -> StoreResult<String> {
        serde_json::to_string_pretty(stored).map_err(|e| StoreError::Encode {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    fn write(path: &Path, stored: &StoredIncident) -> StoreResult<()> {
        Self::replace(path, &Self::encode(path, stored)?)
    }

    /// Writes `text` to a temporary name beside `path` and renames it over `path`.
    fn replace(path: &Path, text: &str) -> StoreResult<()> {
        let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
        fs::write(&temporary, text).map_err(io(&temporary))?;
        fs::rename(&temporary, path).map_err(io(path))
    }

    fn read(path: &Path) -> Result<StoredIncident, String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("not an incident record: {e}"))
    }
}

fn fix_hash(incident: &Incident) -> Option<String> {
    incident.fix.as_ref().map(aegis_shadow::fix_hash)
}

/// Moves a lifecycle by what an analysis found: a diagnosis with or without a fix, then the
/// shadow's verdict when one ran. Transitions the lifecycle refuses (an approved fix is not
/// re-verified, an applied one not re-diagnosed) leave it where it is. A fix that was undone in
/// production before is escalated instead of verified again, so production does not oscillate
/// between it and its inverse; so is any other fix proposed after the last change undid one
/// (production disagreed with a shadow's verdict for this incident, and an analysis made while
/// the rollback settles sees a workload in between), until a human decides.
fn follow_analysis(
    lifecycle: &mut Lifecycle,
    incident: &Incident,
    now: &str,
    changed: bool,
    undone: Option<Undone<'_>>,
    verified_now: bool,
) {
    // A refusal is the lifecycle keeping a human's decision; nothing to report.
    let step = |lifecycle: &mut Lifecycle, action: Action, reason: &str| {
        let _ = lifecycle.advance(action, ANALYSIS, now, reason);
    };
    if lifecycle.phase == Phase::Resolved && incident.fix.is_some() {
        step(lifecycle, Action::Diagnose, "the failure is seen again");
    }
    if let Some(undone) = undone.filter(|_| incident.fix.is_some()) {
        if lifecycle.phase == Phase::RolledBack {
            step(lifecycle, Action::Diagnose, &incident.rca.summary);
        }
        if matches!(
            lifecycle.phase,
            Phase::Diagnosed | Phase::Verified | Phase::Failed
        ) {
            let change = undone.change;
            let reason = if undone.same_fix {
                format!(
                    "the same fix was undone in production before (change {}, {}); applying it again would oscillate, so a human decides",
                    change.id, change.status
                )
            } else {
                format!(
                    "production undid this incident's last fix (change {}, {}); a new fix is not applied on a shadow's verdict alone, so a human decides",
                    change.id, change.status
                )
            };
            step(lifecycle, Action::Escalate, &reason);
        }
        return;
    }
    if incident.fix.is_none() {
        if lifecycle.phase == Phase::Approved {
            step(
                lifecycle,
                Action::Diagnose,
                "the fix is no longer proposed: the approval is void",
            );
        }
        if lifecycle.phase != Phase::Escalated {
            step(
                lifecycle,
                Action::Escalate,
                &incident.rca.decision_rationale,
            );
        }
        return;
    }
    if changed {
        step(
            lifecycle,
            Action::Diagnose,
            "the fix changed: any approval is void",
        );
    }
    let verdict = incident.verification.result.verdict;
    // A verdict kept from an earlier analysis moved the lifecycle then; only a shadow that ran
    // for this analysis moves it now.
    if verified_now
        && matches!(
            verdict,
            Verdict::Successful | Verdict::Failed | Verdict::Inconclusive
        )
        && matches!(
            lifecycle.phase,
            Phase::Diagnosed | Phase::Verified | Phase::Failed | Phase::Escalated
        )
    {
        step(lifecycle, Action::Verify, "a shadow verified the fix");
        step(
            lifecycle,
            Action::Verdict(verdict),
            &incident.verification.result.reason,
        );
    }
}

/// The record of an incident seen for the first time at `now` (pure; the operator keeps its
/// records in `Incident` objects and moves them with the same rules).
pub fn first_seen(incident: &Incident, source: SourceKind, now: &str) -> StoredIncident {
    let mut lifecycle = Lifecycle::default();
    if incident.fix.is_some() {
        let _ = lifecycle.advance(Action::Diagnose, ANALYSIS, now, &incident.rca.summary);
    }
    let verified_now = incident.verification.result.verdict != Verdict::Skipped;
    follow_analysis(&mut lifecycle, incident, now, false, None, verified_now);
    StoredIncident {
        first_seen: now.to_owned(),
        last_seen: now.to_owned(),
        times_seen: 1,
        source,
        fix_hash: fix_hash(incident),
        lifecycle,
        incident: incident.clone(),
        changes: Vec::new(),
    }
}

/// The record of an incident seen again at `now`: findings, evidence and verdict updated, the
/// lifecycle moved as [`follow_analysis`] says (pure, like [`first_seen`]).
pub fn seen_again(
    previous: StoredIncident,
    incident: &Incident,
    source: SourceKind,
    now: &str,
) -> StoredIncident {
    let hash = fix_hash(incident);
    let changed = hash.is_some() && hash != previous.fix_hash;
    let result = incident
        .verification
        .result
        .fix_result
        .as_ref()
        .map(|b| b.spec_hash.as_str());
    let same = hash
        .as_deref()
        .and_then(|h| previous.rolled_back(h, result));
    let undone = same
        .map(|change| (change, true))
        .or_else(|| previous.last_undone().map(|change| (change, false)))
        .map(|(change, same_fix)| (change.clone(), same_fix));
    let verified_now = incident.verification.result.verdict != Verdict::Skipped;
    // An analysis that did not verify (`--no-verify`, or the operator's detector between
    // shadows) keeps the verdict the same patch had: what a shadow proved is the patch on its
    // target, whatever the fix's summary or revision numbers say this time.
    let mut incident = incident.clone();
    let previous_result = &previous.incident.verification.result;
    if !changed
        && incident.verification.result.verdict == Verdict::Skipped
        && previous_result.verdict != Verdict::Skipped
        && same_patch(previous.incident.fix.as_ref(), incident.fix.as_ref())
    {
        incident.verification = previous.incident.verification.clone();
    }
    let incident = &incident;
    let mut lifecycle = previous.lifecycle;
    follow_analysis(
        &mut lifecycle,
        incident,
        now,
        changed,
        undone.as_ref().map(|(change, same_fix)| Undone {
            change,
            same_fix: *same_fix,
        }),
        verified_now,
    );
    StoredIncident {
        first_seen: previous.first_seen,
        last_seen: now.to_owned(),
        times_seen: previous.times_seen + 1,
        source,
        fix_hash: hash.or(previous.fix_hash),
        lifecycle,
        incident: incident.clone(),
        changes: previous.changes,
    }
}

/// Whether two fixes make the same change: the same patch of the same kind on the same object.
fn same_patch(a: Option<&aegis_core::Fix>, b: Option<&aegis_core::Fix>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.target == b.target && a.patch_type == b.patch_type && a.patch == b.patch
        }
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
