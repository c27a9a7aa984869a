//! Shadow verification on the simulated demo world: every demo incident's baseline reproduces
//! it and its proposed fix verifies; a deliberately wrong fix fails; nothing outside the shadow
//! namespaces changes and no shadow is left behind.

use aegis_agent::{Agent, AnalyzeRequest, VerifyOptions, VerifyProgress, verify_incidents};
use aegis_cluster::sim::MockSource;
use aegis_cluster::{ClusterRead, ClusterWrite, Scope};
use aegis_core::settings::Settings;
use aegis_core::{Incident, SourceKind, Verdict, VerificationResult};
use aegis_shadow::Tracker;
use serde_json::json;

struct Quiet;

impl VerifyProgress for Quiet {
    fn started(&self, _: &Incident) {}
    fn finished(&self, _: &Incident, _: &VerificationResult) {}
}

async fn analyzed(world: &MockSource) -> (aegis_core::ClusterState, Vec<Incident>) {
    let state = world
        .load(&Scope::all())
        .await
        .expect("the demo world simulates")
        .state;
    let report = Agent::new(&Settings::default())
        .analyze(&state, SourceKind::Mock, &AnalyzeRequest::default())
        .expect("analysis");
    (state, report.incidents)
}

/// Verifies `incidents` on the mock world, one shadow at a time.
async fn verified(
    world: &MockSource,
    incidents: &mut [Incident],
    state: &aegis_core::ClusterState,
) {
    let options = VerifyOptions {
        concurrency: 1,
        ..VerifyOptions::from_settings(&Settings::default().shadow)
    };
    verified_with(world, incidents, state, &options).await;
}

/// Verifies `incidents` on the mock world with `options`.
async fn verified_with(
    world: &MockSource,
    incidents: &mut [Incident],
    state: &aegis_core::ClusterState,
    options: &VerifyOptions,
) {
    verify_incidents(
        state,
        incidents,
        world,
        world,
        options,
        &Tracker::default(),
        &Quiet,
    )
    .await;
}

#[tokio::test]
async fn every_demo_fix_verifies_after_its_baseline_reproduces_the_incident() {
    let world = MockSource::demo().expect("demo");
    let (state, mut incidents) = analyzed(&world).await;
    let before = world.load(&Scope::all()).await.expect("load").state;
    verified(&world, &mut incidents, &state).await;
    let with_fix: Vec<&Incident> = incidents.iter().filter(|i| i.fix.is_some()).collect();
    assert!(
        with_fix.len() >= 8,
        "{} incidents with a fix",
        with_fix.len()
    );
    for incident in with_fix {
        let result = &incident.verification.result;
        assert_eq!(
            result.verdict,
            Verdict::Successful,
            "{} {} {}: {}\n{:#?}",
            incident.id,
            incident.workload,
            incident.rca.category,
            result.reason,
            result.checks
        );
        let baseline = result.baseline.as_ref().expect("a baseline ran");
        assert!(baseline.reproduced, "{}: {baseline:?}", incident.workload);
        assert!(
            result
                .shadow
                .as_deref()
                .is_some_and(|s| s.starts_with("aegis-shadow-"))
        );
        let evidence = result.evidence.as_ref().expect("an evidence bundle");
        assert!(!evidence.template_diff.is_empty(), "{}", incident.workload);
        assert_eq!(result.candidates.len(), 1);
    }
    for incident in incidents.iter().filter(|i| i.fix.is_none()) {
        assert_eq!(incident.verification.result.verdict, Verdict::Skipped);
    }
    // Shadows are deleted after their verdict, and production reads as it did (the clock moved,
    // so compare what the workloads are, not their ages).
    assert!(aegis_shadow::list(&world).await.expect("list").is_empty());
    let after = world.load(&Scope::all()).await.expect("load").state;
    let names = |s: &aegis_core::ClusterState| {
        let mut names: Vec<String> = s
            .pods
            .iter()
            .map(|p| format!("{:?}/{:?}", p.metadata.namespace, p.metadata.name))
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&before), names(&after));
}

#[tokio::test]
async fn a_wrong_fix_fails_verification() {
    let world = MockSource::demo().expect("demo");
    let (state, mut incidents) = analyzed(&world).await;
    let image = incidents
        .iter_mut()
        .find(|i| {
            i.rca.category == aegis_core::Category::ImageNotFound
                && i.workload.kind == aegis_core::ResourceKind::Deployment
                && i.fix.is_some()
        })
        .expect("an image incident with a fix");
    // The wrong fix alone: without candidates to fall back on.
    image.alternative_fixes.clear();
    let fix = image.fix.as_mut().expect("fix");
    // A tag that does not exist in the registry.
    let container = fix.patch["spec"]["template"]["spec"]["containers"][0].clone();
    let repository = container["image"]
        .as_str()
        .and_then(|i| i.rsplit_once(':'))
        .map(|(r, _)| r.to_owned())
        .expect("a tagged image");
    fix.patch["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!(format!("{repository}:0.0.0-missing"));
    // No longer the rollback it may have been: an ordinary image fix.
    fix.rollback = None;
    let image_id = image.id.clone();
    // A liveness probe on a port nothing serves.
    let probe = incidents
        .iter_mut()
        .find(|i| i.rca.category == aegis_core::Category::LivenessProbeFailure)
        .expect("a liveness incident");
    let fix = probe.fix.as_mut().expect("fix");
    fix.patch["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] =
        json!(9999);
    let probe_id = probe.id.clone();
    let mut wrong: Vec<Incident> = incidents
        .into_iter()
        .filter(|i| i.id == image_id || i.id == probe_id)
        .collect();
    verified(&world, &mut wrong, &state).await;
    for incident in &wrong {
        let result = &incident.verification.result;
        assert_eq!(
            result.verdict,
            Verdict::Failed,
            "{}: {}",
            incident.workload,
            result.reason
        );
        assert!(
            result.reason.contains(incident.rca.category.id()),
            "{}",
            result.reason
        );
        assert!(result.baseline.as_ref().is_some_and(|b| b.reproduced));
    }
}

#[tokio::test]
async fn shadows_expire_and_are_collected() {
    let world = MockSource::demo().expect("demo");
    let (state, mut incidents) = analyzed(&world).await;
    let mut options = VerifyOptions::from_settings(&Settings::default().shadow);
    options.limits.keep = true;
    let first = incidents
        .iter()
        .position(|i| i.fix.is_some())
        .expect("a fix");
    let mut one = vec![incidents.swap_remove(first)];
    verified_with(&world, &mut one, &state, &options).await;
    let shadows = aegis_shadow::list(&world).await.expect("list");
    assert_eq!(shadows.len(), 1);
    assert_eq!(shadows[0].verdict, Some(Verdict::Successful));
    let kept = aegis_shadow::collect_garbage(&world).await.expect("gc");
    assert_eq!(
        kept,
        aegis_shadow::Collection {
            deleted: vec![],
            left: 1,
            expired_left: 0
        }
    );
    world.advance(std::time::Duration::from_secs(31 * 60));
    let collected = aegis_shadow::collect_garbage(&world).await.expect("gc");
    assert_eq!(collected.deleted, vec![shadows[0].name.clone()]);
    assert_eq!((collected.left, collected.expired_left), (0, 0));
    assert!(aegis_shadow::list(&world).await.expect("list").is_empty());
    assert!(world.now() > state.now());
}

#[tokio::test]
async fn when_the_first_fix_fails_a_candidate_that_verifies_is_proposed_instead() {
    let world = MockSource::demo().expect("demo");
    let (state, incidents) = analyzed(&world).await;
    let mut payments: Vec<Incident> = incidents
        .into_iter()
        .filter(|i| i.workload.name == "payments-web")
        .collect();
    assert_eq!(payments.len(), 1);
    let incident = &mut payments[0];
    assert!(
        !incident.alternative_fixes.is_empty(),
        "the rules know more than one working tag"
    );
    let good = incident.fix.clone().expect("fix");
    // Spoil the first fix: a tag that does not exist.
    let first = incident.fix.as_mut().expect("fix");
    first.summary = "a tag that does not exist".to_owned();
    first.patch["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("nginx:0.0.0-missing");
    first.rollback = None;
    incident.alternative_fixes.insert(0, good.clone());
    verified(&world, &mut payments, &state).await;
    let incident = &payments[0];
    let result = &incident.verification.result;
    assert_eq!(result.verdict, Verdict::Successful, "{}", result.reason);
    let verdicts: Vec<(String, Verdict)> = result
        .candidates
        .iter()
        .map(|c| (c.fix_summary.clone(), c.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("a tag that does not exist".to_owned(), Verdict::Failed),
            (good.summary.clone(), Verdict::Successful)
        ]
    );
    assert_eq!(
        incident.fix.as_ref().map(|f| &f.summary),
        Some(&good.summary)
    );
    assert_eq!(
        incident.alternative_fixes[0].summary,
        "a tag that does not exist"
    );
    assert!(
        incident
            .rca
            .decision_rationale
            .contains("Shadow verification chose")
    );
}

#[tokio::test]
async fn a_shadow_that_cannot_run_leaves_the_fix_inconclusive_and_says_why() {
    let world = MockSource::demo().expect("demo");
    let (state, incidents) = analyzed(&world).await;
    let mut with_fix: Vec<Incident> = incidents.into_iter().filter(|i| i.fix.is_some()).collect();
    // One kept shadow fills a cap of one.
    let mut options = VerifyOptions::from_settings(&Settings::default().shadow);
    options.limits.keep = true;
    options.limits.max_concurrent = 1;
    options.concurrency = 1;
    let mut first = vec![with_fix.remove(0)];
    verified_with(&world, &mut first, &state, &options).await;
    assert_eq!(first[0].verification.result.verdict, Verdict::Successful);
    let mut second = vec![with_fix.remove(0)];
    verified_with(&world, &mut second, &state, &options).await;
    let result = &second[0].verification.result;
    assert_eq!(result.verdict, Verdict::Inconclusive);
    assert!(
        result.reason.starts_with(aegis_agent::SHADOW_NOT_RUN)
            && result.reason.contains("max_concurrent"),
        "{}",
        result.reason
    );
    assert_eq!(aegis_shadow::list(&world).await.expect("list").len(), 1);
}
