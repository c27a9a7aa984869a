//! The store on the demo world's incidents: lifecycles across analyses, approvals voided by a
//! changed fix, refusals that change nothing, and concurrent writers that lose no update.

use aegis_cluster::sim::MockSource;
use aegis_core::settings::Settings;
use aegis_core::verification::Verdict;
use serde_json::json;

use super::*;
use crate::{Agent, AnalyzeRequest};

fn incidents() -> Vec<Incident> {
    let state = MockSource::demo_state().expect("the demo world simulates");
    Agent::new(&Settings::default())
        .analyze(&state, SourceKind::Mock, &AnalyzeRequest::default())
        .expect("analyzes")
        .incidents
}

fn verified(mut incident: Incident, verdict: Verdict) -> Incident {
    incident.verification.result.verdict = verdict;
    incident.verification.result.reason = format!("the shadow said {}", verdict.as_str());
    incident
}

const T1: &str = "2026-12-02T20:00:00Z";
const T2: &str = "2026-12-02T20:05:00Z";

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    (dir, store)
}

#[test]
fn an_analysis_moves_each_incident_as_far_as_its_evidence_goes() {
    let (_dir, store) = store();
    let all = incidents();
    let with_fix = verified(
        all.iter()
            .find(|i| i.fix.is_some())
            .cloned()
            .expect("a fix"),
        Verdict::Successful,
    );
    let mut without_fix = all[0].clone();
    without_fix.id = "inc-nofix".to_owned();
    without_fix.fix = None;
    store
        .record(&[with_fix.clone(), without_fix], SourceKind::Mock, T1)
        .expect("records");
    let stored = store.find(&with_fix.id).expect("found");
    let path: Vec<Phase> = stored.lifecycle.history.iter().map(|t| t.to).collect();
    assert_eq!(
        path,
        [Phase::Diagnosed, Phase::Verifying, Phase::Verified],
        "{:#?}",
        stored.lifecycle
    );
    assert!(
        stored
            .lifecycle
            .history
            .iter()
            .all(|t| t.by == ANALYSIS && t.at == T1)
    );
    assert_eq!(
        store.find("inc-nofix").expect("found").lifecycle.phase,
        Phase::Escalated
    );
}

#[test]
fn an_approval_survives_re_analysis_and_a_changed_fix_voids_it() {
    let (_dir, store) = store();
    let incident = verified(
        incidents()
            .into_iter()
            .find(|i| i.fix.is_some())
            .expect("a fix"),
        Verdict::Successful,
    );
    store
        .record(std::slice::from_ref(&incident), SourceKind::Mock, T1)
        .expect("records");
    let approved = store
        .advance(&incident.id, Action::Approve, "alice", "looks right", T1)
        .expect("a verified fix can be approved");
    assert_eq!(approved.lifecycle.phase, Phase::Approved);

    // The same fix seen again: the approval stands.
    store
        .record(std::slice::from_ref(&incident), SourceKind::Mock, T2)
        .expect("records");
    let again = store.find(&incident.id).expect("found");
    assert_eq!(again.lifecycle.phase, Phase::Approved);
    assert_eq!(again.times_seen, 2);
    assert_eq!(again.first_seen, T1);

    // A different patch: back to diagnosed, and the history says why.
    let mut changed = incident.clone();
    if let Some(fix) = changed.fix.as_mut() {
        fix.patch = json!({"spec": {"replicas": 3}});
    }
    changed.verification.result.verdict = Verdict::Skipped;
    store
        .record(&[changed], SourceKind::Mock, T2)
        .expect("records");
    let voided = store.find(&incident.id).expect("found");
    assert_eq!(voided.lifecycle.phase, Phase::Diagnosed);
    let last = voided.lifecycle.history.last().expect("history");
    assert_eq!((last.from, last.by.as_str()), (Phase::Approved, ANALYSIS));
    assert!(last.reason.contains("approval is void"), "{}", last.reason);
}

#[test]
fn a_refused_transition_changes_nothing_and_says_what_is_allowed() {
    let (_dir, store) = store();
    let incident = incidents()
        .into_iter()
        .find(|i| i.fix.is_some())
        .expect("a fix");
    store
        .record(std::slice::from_ref(&incident), SourceKind::Mock, T1)
        .expect("records");
    let before = std::fs::read_to_string(store.path(&incident.id)).expect("record");
    let error = store
        .advance(&incident.id, Action::Apply, "alice", "now", T2)
        .expect_err("a diagnosed fix is not applied");
    assert!(
        error
            .to_string()
            .starts_with("an incident that is diagnosed cannot apply"),
        "{error}"
    );
    let after = std::fs::read_to_string(store.path(&incident.id)).expect("record");
    assert_eq!(before, after);
    assert!(matches!(
        store.advance("inc-none", Action::Approve, "alice", "", T2),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn concurrent_writers_lose_no_update() {
    let (_dir, store) = store();
    let incident = incidents().into_iter().next().expect("an incident");
    let writers = 8;
    std::thread::scope(|scope| {
        for _ in 0..writers {
            let store = store.clone();
            let incident = incident.clone();
            scope.spawn(move || {
                store
                    .record(std::slice::from_ref(&incident), SourceKind::Mock, T1)
                    .expect("records");
            });
        }
    });
    let stored = store.find(&incident.id).expect("found");
    assert_eq!(stored.times_seen, writers, "every writer's update is kept");
}

/// An applied change of `incident`'s fix that production rolled back.
fn rolled_back_change(incident: &Incident, fix_hash: &str, result_hash: &str) -> ChangeRecord {
    use aegis_core::change::{Basis, ChangeKind, Owner};
    let fix = incident.fix.clone().expect("a fix");
    ChangeRecord {
        id: "chg-1".to_owned(),
        kind: ChangeKind::Apply,
        incident: incident.id.clone(),
        target: fix.target.clone(),
        patch_type: fix.patch_type,
        patch: fix.patch.clone(),
        inverse_patch: fix.inverse_patch.clone(),
        fix_hash: fix_hash.to_owned(),
        result_hash: result_hash.to_owned(),
        fix_summary: fix.summary.clone(),
        diff: Vec::new(),
        backend: "rules".to_owned(),
        prompt_hash: None,
        verdict: Verdict::Successful,
        verdict_reason: String::new(),
        evidence: String::new(),
        approver: "alice".to_owned(),
        approved_at: T1.to_owned(),
        recorded_at: T1.to_owned(),
        before: Basis::of(&json!({}), &json!({})),
        after: None,
        owner: Owner {
            host: "h".to_owned(),
            pid: 1,
            heartbeat: T1.to_owned(),
        },
        status: ChangeStatus::RolledBack,
        steps: Vec::new(),
        evidence_seen: Vec::new(),
        timing: None,
    }
}

#[test]
fn any_fix_proposed_after_a_rollback_is_escalated_until_one_is_confirmed() {
    let with_result = |hash: &str| {
        let mut incident = verified(
            incidents()
                .into_iter()
                .find(|i| i.fix.is_some())
                .expect("a fix"),
            Verdict::Successful,
        );
        incident.verification.result.fix_result = Some(aegis_core::change::Basis {
            resource_version: None,
            generation: None,
            spec_hash: hash.to_owned(),
        });
        incident
    };
    // By the patch's hash, and by the result's hash when the patch is written differently.
    for (undone_fix, undone_result) in [("same-patch", "other"), ("other-patch", "r1")] {
        let (_dir, store) = store();
        let incident = with_result("r1");
        let hash = fix_hash(&incident).expect("a fix");
        let undone_fix = if undone_fix == "same-patch" {
            hash.as_str()
        } else {
            undone_fix
        };
        store
            .record(std::slice::from_ref(&incident), SourceKind::Mock, T1)
            .expect("records");
        store
            .advance(&incident.id, Action::Approve, "alice", "ok", T1)
            .expect("approves");
        store
            .update(&incident.id, |s| {
                s.changes
                    .push(rolled_back_change(&incident, undone_fix, undone_result));
                s.lifecycle
                    .advance(Action::RollBack, "aegis", T1, "regressed")?;
                Ok::<_, StoreError>(())
            })
            .expect("records the rollback");
        store
            .record(std::slice::from_ref(&incident), SourceKind::Mock, T2)
            .expect("records");
        let again = store.find(&incident.id).expect("found");
        assert_eq!(
            again.lifecycle.phase,
            Phase::Escalated,
            "{undone_fix}: {:#?}",
            again.lifecycle
        );
        let last = again.lifecycle.history.last().expect("history");
        assert!(last.reason.contains("oscillate"), "{}", last.reason);
        // Seen once more, it stays with the human; a human may still approve it.
        store
            .record(std::slice::from_ref(&incident), SourceKind::Mock, T2)
            .expect("records");
        assert_eq!(
            store.find(&incident.id).expect("found").lifecycle.phase,
            Phase::Escalated
        );
        store
            .advance(&incident.id, Action::Approve, "bob", "one more try", T2)
            .expect("approves");
        store
            .record(std::slice::from_ref(&incident), SourceKind::Mock, T2)
            .expect("records");
        assert_eq!(
            store.find(&incident.id).expect("found").lifecycle.phase,
            Phase::Approved
        );
    }
    // A different fix after the rollback is escalated too, with the new fix on record for a
    // human to approve; once a fix is applied and confirmed, the next one is verified as usual.
    let (_dir, store) = store();
    let incident = with_result("r1");
    store
        .record(std::slice::from_ref(&incident), SourceKind::Mock, T1)
        .expect("records");
    store
        .advance(&incident.id, Action::Approve, "alice", "ok", T1)
        .expect("approves");
    store
        .update(&incident.id, |s| {
            s.changes.push(rolled_back_change(&incident, "old", "r0"));
            s.lifecycle
                .advance(Action::RollBack, "aegis", T1, "regressed")?;
            Ok::<_, StoreError>(())
        })
        .expect("records the rollback");
    let mut other = with_result("r2");
    if let Some(fix) = other.fix.as_mut() {
        fix.patch = json!({"spec": {"replicas": 3}});
    }
    store
        .record(std::slice::from_ref(&other), SourceKind::Mock, T2)
        .expect("records");
    let escalated = store.find(&incident.id).expect("found");
    assert_eq!(escalated.lifecycle.phase, Phase::Escalated);
    assert_eq!(escalated.fix_hash, fix_hash(&other));
    let last = escalated.lifecycle.history.last().expect("history");
    assert!(last.reason.contains("a human decides"), "{}", last.reason);
    store
        .update(&incident.id, |s| {
            let mut confirmed = rolled_back_change(&incident, "new", "r2");
            confirmed.id = "chg-2".to_owned();
            confirmed.status = ChangeStatus::Confirmed;
            s.changes.push(confirmed);
            Ok::<_, StoreError>(())
        })
        .expect("records the confirmed change");
    let mut third = with_result("r3");
    if let Some(fix) = third.fix.as_mut() {
        fix.patch = json!({"spec": {"replicas": 4}});
    }
    store
        .record(&[third], SourceKind::Mock, T2)
        .expect("records");
    assert_eq!(
        store.find(&incident.id).expect("found").lifecycle.phase,
        Phase::Verified
    );
}

/// An incident with a fix, verified `successful` and recorded at T1; then the same incident
/// recorded at T2 as `rework` leaves it, unverified.
fn verified_then_seen_unverified(store: &Store, rework: impl FnOnce(&mut Incident)) -> Incident {
    let incident = verified(
        incidents()
            .into_iter()
            .find(|i| i.fix.is_some())
            .expect("a fix"),
        Verdict::Successful,
    );
    store
        .record(std::slice::from_ref(&incident), SourceKind::Mock, T1)
        .expect("records");
    let mut again = incident.clone();
    again.verification.result = aegis_core::VerificationResult::skipped("not verified");
    rework(&mut again);
    store
        .record(std::slice::from_ref(&again), SourceKind::Mock, T2)
        .expect("records");
    again
}

#[test]
fn an_analysis_without_verification_keeps_the_verdict_of_the_same_fix() {
    let (_dir, store) = store();
    let incident = verified_then_seen_unverified(&store, |_| {});
    let stored = store.find(&incident.id).expect("found");
    assert_eq!(
        stored.incident.verification.result.verdict,
        Verdict::Successful
    );
    assert_eq!(stored.lifecycle.phase, Phase::Verified);
}

#[test]
fn the_verdict_stays_with_the_same_patch_whatever_its_summary_says() {
    let (_dir, store) = store();
    // The next analysis words the same patch differently (a revision number moved).
    let reworded = verified_then_seen_unverified(&store, |incident| {
        let fix = incident.fix.as_mut().expect("a fix");
        fix.summary.push_str(" (reworded)");
        fix.requires_approval = !fix.requires_approval;
    });
    let stored = store.find(&reworded.id).expect("found");
    assert_eq!(
        stored.incident.verification.result.verdict,
        Verdict::Successful
    );
    assert_eq!(stored.lifecycle.phase, Phase::Verified);
    assert!(
        stored
            .incident
            .fix
            .as_ref()
            .is_some_and(|f| f.summary.ends_with("(reworded)")),
        "the fix reads as the latest analysis words it"
    );
    // Another patch is not what the shadow proved.
    let mut other = reworded.clone();
    other.fix.as_mut().expect("a fix").patch = json!({"spec": {"replicas": 9}});
    store
        .record(&[other], SourceKind::Mock, "2026-12-02T20:10:00Z")
        .expect("records");
    let stored = store.find(&reworded.id).expect("found");
    assert_eq!(
        stored.incident.verification.result.verdict,
        Verdict::Skipped
    );
    assert_eq!(stored.lifecycle.phase, Phase::Diagnosed);
}

#[test]
fn a_large_analysis_is_recorded_whole_on_every_core_and_seen_again() {
    let (_dir, store) = store();
    let template = incidents().into_iter().next().expect("an incident");
    // Enough incidents that the store shares them out over threads.
    let many: Vec<Incident> = (0..300)
        .map(|n| {
            let mut incident = template.clone();
            incident.id = format!("inc-many-{n:03}");
            incident
        })
        .collect();
    store.record(&many, SourceKind::Mock, T1).expect("records");
    store
        .record(&many, SourceKind::Mock, T2)
        .expect("records again");
    let (stored, problems) = store.list().expect("lists");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(stored.len(), many.len());
    assert!(
        stored
            .iter()
            .all(|s| s.times_seen == 2 && s.first_seen == T1 && s.last_seen == T2),
        "{:?}",
        stored
            .iter()
            .map(|s| (&s.incident.id, s.times_seen))
            .collect::<Vec<_>>()
    );
    let mut ids: Vec<&str> = stored.iter().map(|s| s.incident.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), many.len());
}

/// `incidents` and enough others that the store records them as a large analysis does.
fn many(incidents: &[Incident]) -> Vec<Incident> {
    let mut all = incidents.to_vec();
    all.extend((0..=FEW).map(|n| {
        let mut other = incidents[0].clone();
        other.id = format!("inc-other-{n:02}");
        other
    }));
    all
}

#[test]
fn an_unchanged_incident_is_seen_again_without_rewriting_its_record() {
    let (_dir, store) = store();
    let all = incidents();
    let unverified = all
        .iter()
        .find(|i| i.fix.is_some())
        .cloned()
        .expect("a fix");
    assert_eq!(unverified.verification.result.verdict, Verdict::Skipped);
    let kept = verified(unverified.clone(), Verdict::Successful);
    let changing = all
        .iter()
        .find(|i| i.id != kept.id)
        .cloned()
        .expect("a second incident");
    store
        .record(
            &many(&[kept.clone(), changing.clone()]),
            SourceKind::Mock,
            T1,
        )
        .expect("records");
    let kept_path = store.path(&kept.id);
    let written = fs::read_to_string(&kept_path).expect("the record is on file");

    let mut changed = changing.clone();
    changed.rca.summary = "a different root cause".to_owned();
    // Seen again by an analysis that did not verify: the verdict stands, nothing new is said.
    store
        .record(&many(&[unverified, changed]), SourceKind::Mock, T2)
        .expect("records again");
    assert_eq!(
        fs::read_to_string(&kept_path).expect("still on file"),
        written,
        "only the sighting changed, so the record is not rewritten"
    );
    let on_file: StoredIncident =
        serde_json::from_str(&fs::read_to_string(store.path(&changing.id)).expect("on file"))
            .expect("decodes");
    assert_eq!(
        (on_file.incident.rca.summary.as_str(), on_file.times_seen),
        ("a different root cause", 2),
        "a record whose substance changed is rewritten with its sighting"
    );
    for id in [&kept.id, &changing.id] {
        let stored = store.find(id).expect("found");
        assert_eq!(
            (
                stored.first_seen.as_str(),
                stored.last_seen.as_str(),
                stored.times_seen
            ),
            (T1, T2, 2),
            "{id} reads with its latest sighting"
        );
    }
    // An approval writes the record with its latest sighting.
    let approved = store
        .advance(&kept.id, Action::Approve, "sre", "looks right", T2)
        .expect("approves");
    assert_eq!(approved.times_seen, 2);
    let on_file: StoredIncident =
        serde_json::from_str(&fs::read_to_string(&kept_path).expect("on file")).expect("decodes");
    assert_eq!((on_file.times_seen, on_file.last_seen.as_str()), (2, T2));
}

#[test]
fn the_later_of_a_record_and_its_sighting_stands_after_a_crash_between_them() {
    let (dir, store) = store();
    let incident = incidents().into_iter().next().expect("an incident");
    store
        .record(&many(std::slice::from_ref(&incident)), SourceKind::Mock, T1)
        .expect("records");
    let sightings = dir.path().join("incidents").join(SIGHTINGS);
    let first = fs::read_to_string(&sightings).expect("the sightings are on file");
    store
        .record(&many(std::slice::from_ref(&incident)), SourceKind::Mock, T2)
        .expect("records again");
    // The sightings as a crash before their rewrite leaves them, beside a record rewritten by
    // a later change: the record's sighting is the later one.
    let mut changed = incident.clone();
    changed.rca.summary = "a different root cause".to_owned();
    store
        .record(
            &many(std::slice::from_ref(&changed)),
            SourceKind::Mock,
            "2026-12-02T20:10:00Z",
        )
        .expect("records a change");
    fs::write(&sightings, &first).expect("rewinds the sightings");
    let stored = store.find(&incident.id).expect("found");
    assert_eq!(
        (stored.times_seen, stored.last_seen.as_str()),
        (3, "2026-12-02T20:10:00Z")
    );
    // Sightings that do not decode leave each record's own; the next analysis writes them anew.
    fs::write(&sightings, "{not json").expect("spoils the sightings");
    assert_eq!(store.find(&incident.id).expect("found").times_seen, 3);
    store
        .record(
            &many(std::slice::from_ref(&changed)),
            SourceKind::Mock,
            "2026-12-02T20:15:00Z",
        )
        .expect("records over spoiled sightings");
    assert_eq!(store.find(&incident.id).expect("found").times_seen, 4);
    assert!(
        serde_json::from_str::<serde_json::Value>(
            &fs::read_to_string(&sightings).expect("rewritten")
        )
        .is_ok()
    );
}

#[test]
fn a_small_analysis_writes_its_records_and_leaves_the_sightings_of_the_rest() {
    let (dir, store) = store();
    let incident = incidents().into_iter().next().expect("an incident");
    let large = many(std::slice::from_ref(&incident));
    store.record(&large, SourceKind::Mock, T1).expect("records");
    store
        .record(&large, SourceKind::Mock, T2)
        .expect("records again");
    let sightings = dir.path().join("incidents").join(SIGHTINGS);
    let before = fs::read_to_string(&sightings).expect("the sightings are on file");
    let on_file = || -> StoredIncident {
        serde_json::from_str(&fs::read_to_string(store.path(&incident.id)).expect("on file"))
            .expect("decodes")
    };
    // The record still carries its first sighting; the sightings file holds the second.
    assert_eq!(on_file().times_seen, 1);

    let t3 = "2026-12-02T20:10:00Z";
    store
        .record(std::slice::from_ref(&incident), SourceKind::Mock, t3)
        .expect("records one");
    assert_eq!(
        fs::read_to_string(&sightings).expect("still on file"),
        before,
        "a small analysis leaves the sightings file alone"
    );
    assert_eq!(
        (on_file().times_seen, on_file().last_seen),
        (3, t3.to_owned()),
        "the record counts from the sightings file's later sighting"
    );
    let (listed, problems) = store.list().expect("lists");
    assert!(problems.is_empty(), "{problems:?}");
    let seen = |id: &str| {
        listed
            .iter()
            .find(|s| s.incident.id == id)
            .map(|s| (s.times_seen, s.last_seen.clone()))
    };
    assert_eq!(seen(&incident.id), Some((3, t3.to_owned())));
    assert_eq!(seen("inc-other-00"), Some((2, T2.to_owned())));
    // A large analysis after it counts on from the record's sighting.
    store
        .record(&large, SourceKind::Mock, "2026-12-02T20:15:00Z")
        .expect("records all again");
    assert_eq!(store.find(&incident.id).expect("found").times_seen, 4);
    assert_eq!(store.find("inc-other-00").expect("found").times_seen, 3);
}
