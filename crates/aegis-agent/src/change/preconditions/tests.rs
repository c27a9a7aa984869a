//! Every precondition of a production change, allowed and refused, as a table.

use aegis_core::change::{Basis, ChangeRecord, Owner};
use aegis_core::lifecycle::{Lifecycle, Transition};
use aegis_core::{Category, Incident, PatchType, SourceKind};
use serde_json::json;

use super::*;

const NOW: &str = "2026-12-02T12:00:00Z";

fn incident() -> Incident {
    let state = aegis_cluster::sim::MockSource::demo_state().expect("the demo world simulates");
    let mut incident = crate::Agent::new(&aegis_core::settings::Settings::default())
        .analyze(&state, SourceKind::Mock, &crate::AnalyzeRequest::default())
        .expect("analyzes")
        .incidents
        .into_iter()
        .find(|i| i.rca.category == Category::MissingEnvVar)
        .expect("the missing variable incident");
    incident.verification.result.verdict = Verdict::Successful;
    incident.verification.result.reason = "healthy".to_owned();
    incident
}

fn stored(phase: Phase, verdict: Verdict, reason: &str) -> StoredIncident {
    let mut incident = incident();
    incident.verification.result.verdict = verdict;
    incident.verification.result.reason = reason.to_owned();
    let history = vec![Transition {
        from: Phase::Verified,
        to: phase,
        action: aegis_core::lifecycle::Action::Approve,
        by: "alice".to_owned(),
        at: "2026-12-02T11:00:00Z".to_owned(),
        reason: "ok".to_owned(),
    }];
    StoredIncident {
        first_seen: NOW.to_owned(),
        last_seen: NOW.to_owned(),
        times_seen: 1,
        source: SourceKind::Mock,
        fix_hash: None,
        lifecycle: Lifecycle { phase, history },
        incident,
        changes: Vec::new(),
    }
}

fn change(stored: &StoredIncident, status: ChangeStatus, at: &str) -> ChangeRecord {
    ChangeRecord {
        id: "chg-1".to_owned(),
        kind: ChangeKind::Apply,
        incident: stored.incident.id.clone(),
        target: stored.incident.workload.clone(),
        patch_type: PatchType::StrategicMerge,
        patch: json!({}),
        inverse_patch: json!({}),
        fix_hash: "abc".to_owned(),
        result_hash: String::new(),
        fix_summary: String::new(),
        diff: Vec::new(),
        backend: "rules".to_owned(),
        prompt_hash: None,
        verdict: Verdict::Successful,
        verdict_reason: String::new(),
        evidence: String::new(),
        approver: "alice".to_owned(),
        approved_at: at.to_owned(),
        recorded_at: at.to_owned(),
        before: Basis::of(&json!({}), &json!({})),
        after: None,
        owner: Owner {
            host: "h".to_owned(),
            pid: 1,
            heartbeat: at.to_owned(),
        },
        status,
        steps: Vec::new(),
        evidence_seen: Vec::new(),
        timing: None,
    }
}

fn policy(auto: &[Category]) -> PolicySettings {
    PolicySettings {
        auto_apply_categories: auto.to_vec(),
        ..PolicySettings::default()
    }
}

/// What `may_apply` says, as a word: the grant, or the refusal's kind.
fn outcome(result: &Result<Grant, Refusal>) -> &'static str {
    match result {
        Ok(Grant::Approved { .. }) => "approved",
        Ok(Grant::AutoApply) => "auto-apply",
        Err(Refusal::NoFix { .. }) => "no-fix",
        Err(Refusal::PolicyDenied { .. }) => "policy-denied",
        Err(Refusal::NotApproved { .. }) => "not-approved",
        Err(Refusal::VerdictNotSuccessful { .. }) => "verdict",
        Err(Refusal::AlreadyApplied { .. }) => "already-applied",
        Err(Refusal::Cooldown { .. }) => "cooldown",
        Err(Refusal::NothingToRollBack { .. }) => "nothing-to-roll-back",
    }
}

#[test]
fn every_phase_verdict_and_policy_gives_the_expected_decision() {
    use Phase as P;
    use Verdict as V;
    let missing = Category::MissingEnvVar;
    let cases: &[(Phase, Verdict, &str, &[Category], &str)] = &[
        (P::Approved, V::Successful, "healthy", &[], "approved"),
        (
            P::Approved,
            V::Inconclusive,
            "cause-cleared: held back by isolation",
            &[],
            "approved",
        ),
        (
            P::Approved,
            V::Inconclusive,
            "the shadow does not reproduce the incident",
            &[],
            "verdict",
        ),
        (
            P::Approved,
            V::Failed,
            "the candidate failed",
            &[],
            "verdict",
        ),
        (P::Approved, V::Skipped, "not verified", &[], "verdict"),
        (
            P::Verified,
            V::Successful,
            "healthy",
            &[missing],
            "auto-apply",
        ),
        (
            P::Verified,
            V::Successful,
            "healthy",
            &[Category::OomKilled],
            "not-approved",
        ),
        (P::Verified, V::Successful, "healthy", &[], "not-approved"),
        (P::Failed, V::Failed, "failed", &[missing], "not-approved"),
        (
            P::Escalated,
            V::Inconclusive,
            "cause-cleared: x",
            &[missing],
            "not-approved",
        ),
        (P::Detected, V::Skipped, "", &[missing], "not-approved"),
        (P::Diagnosed, V::Skipped, "", &[], "not-approved"),
        (P::Verifying, V::Skipped, "", &[], "not-approved"),
        (
            P::Rejected,
            V::Successful,
            "healthy",
            &[missing],
            "not-approved",
        ),
        (
            P::RolledBack,
            V::Successful,
            "healthy",
            &[missing],
            "not-approved",
        ),
        (
            P::Applied,
            V::Successful,
            "healthy",
            &[missing],
            "already-applied",
        ),
    ];
    let now: Timestamp = NOW.parse().expect("time");
    for (phase, verdict, reason, auto, expected) in cases {
        let stored = stored(*phase, *verdict, reason);
        let result = may_apply(&stored, &[], &policy(auto), now);
        assert_eq!(
            outcome(&result),
            *expected,
            "{phase} {verdict} {reason:?} {auto:?}: {result:?}"
        );
        if let Err(refusal) = &result {
            assert!(!refusal.hint().is_empty(), "{refusal}");
        }
    }
}

#[test]
fn a_high_risk_fix_is_never_auto_applied() {
    let mut stored = stored(Phase::Verified, Verdict::Successful, "healthy");
    if let Some(fix) = &mut stored.incident.fix {
        fix.risk = aegis_core::Risk::High;
    }
    let now: Timestamp = NOW.parse().expect("time");
    let result = may_apply(&stored, &[], &policy(&[Category::MissingEnvVar]), now);
    match result {
        Err(refusal @ Refusal::NotApproved { .. }) => {
            assert!(refusal.to_string().contains("high-risk"), "{refusal}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_fix_and_a_denied_fix_are_refused_whatever_the_approval() {
    let now: Timestamp = NOW.parse().expect("time");
    let mut without = stored(Phase::Approved, Verdict::Successful, "healthy");
    without.incident.fix = None;
    assert_eq!(
        outcome(&may_apply(&without, &[], &policy(&[]), now)),
        "no-fix"
    );
    let mut denied = stored(Phase::Approved, Verdict::Successful, "healthy");
    if let Some(fix) = &mut denied.incident.fix {
        fix.policy.allowed = false;
    }
    assert_eq!(
        outcome(&may_apply(&denied, &[], &policy(&[]), now)),
        "policy-denied"
    );
}

#[test]
fn a_recent_change_to_the_same_workload_holds_the_next_one_until_the_cooldown_ends() {
    let stored = stored(Phase::Approved, Verdict::Successful, "healthy");
    let mut other = stored.clone();
    other.incident.id = "inc-other".to_owned();
    let cases = [
        (ChangeStatus::Confirmed, "2026-12-02T11:55:00Z", "cooldown"),
        (ChangeStatus::RolledBack, "2026-12-02T11:59:00Z", "cooldown"),
        (ChangeStatus::Confirming, "2026-12-02T11:59:30Z", "cooldown"),
        (ChangeStatus::Confirmed, "2026-12-02T11:49:59Z", "approved"),
        (
            ChangeStatus::NotMade {
                reason: "refused".into(),
            },
            "2026-12-02T11:59:00Z",
            "approved",
        ),
        (
            ChangeStatus::PatchFile { path: "p".into() },
            "2026-12-02T11:59:00Z",
            "approved",
        ),
    ];
    let now: Timestamp = NOW.parse().expect("time");
    for (status, at, expected) in cases {
        let mut recent = other.clone();
        recent.changes = vec![change(&other, status.clone(), at)];
        let result = may_apply(&stored, &[recent], &policy(&[]), now);
        assert_eq!(outcome(&result), expected, "{status} at {at}: {result:?}");
        if let Err(Refusal::Cooldown { until, .. }) = &result {
            let until: Timestamp = until.parse().expect("a time");
            assert_eq!(
                until,
                at.parse::<Timestamp>()
                    .expect("time")
                    .checked_add(SignedDuration::from_secs(600))
                    .expect("time")
            );
        }
    }
}

#[test]
fn only_an_applied_fix_can_be_rolled_back() {
    for phase in Phase::ALL {
        let stored = stored(phase, Verdict::Successful, "healthy");
        assert_eq!(
            may_roll_back(&stored).is_ok(),
            phase == Phase::Applied,
            "{phase}"
        );
    }
}
