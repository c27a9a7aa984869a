//! The change engine on the simulated world: a verified fix approved, applied and confirmed
//! until AEGIS finds nothing; a fix that passes the shadow but regresses production rolled back
//! with its evidence; refusals that write nothing; racing engines that make one change; a change
//! left under way finished by the next run; the audit record before the write; GitOps targets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aegis_cluster::sim::{DEMO_MANIFESTS, DEMO_WORLD, MockSource};
use aegis_cluster::{ClusterRead, ClusterWrite, Loaded, WriteResult};
use aegis_core::lifecycle::Phase;
use aegis_core::{Category, Incident, ResourceKind, SourceKind, Verdict};
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{Agent, AnalyzeRequest, VerifyOptions, VerifyProgress};

struct Silent;

impl VerifyProgress for Silent {
    fn started(&self, _: &Incident) {}
    fn finished(&self, _: &Incident, _: &aegis_core::VerificationResult) {}
}

/// The demo world with one manifest file replaced.
fn world_with(name: &str, text: &str) -> MockSource {
    let mut manifests: Vec<(&str, &str)> = DEMO_MANIFESTS.to_vec();
    for (file, body) in &mut manifests {
        if *file == name {
            *body = text;
        }
    }
    MockSource::new(DEMO_WORLD, &manifests).expect("the world simulates")
}

/// Analyzes the world, verifies every fix in shadows on it and records the incidents.
async fn analyzed(world: &MockSource, store: &Store) -> Vec<Incident> {
    let state = world.observe(&Scope::all()).expect("observes").state;
    let mut report = Agent::new(&Settings::default())
        .analyze(&state, SourceKind::Mock, &AnalyzeRequest::default())
        .expect("analyzes");
    let mut options = VerifyOptions::from_settings(&Settings::default().shadow);
    options.concurrency = 1;
    crate::verify_incidents(
        &state,
        &mut report.incidents,
        world,
        world,
        &options,
        &aegis_shadow::Tracker::default(),
        &Silent,
    )
    .await;
    store
        .record(&report.incidents, SourceKind::Mock, &wall_now())
        .expect("records");
    report.incidents
}

fn of<'a>(incidents: &'a [Incident], workload: &str, category: Category) -> &'a Incident {
    incidents
        .iter()
        .find(|i| i.workload.name == workload && i.rca.category == category)
        .unwrap_or_else(|| panic!("no {category} incident on {workload}: {incidents:#?}"))
}

fn engine<'a>(
    store: &'a Store,
    cluster: &'a dyn Cluster,
    settings: &'a Settings,
) -> ChangeEngine<'a> {
    ChangeEngine {
        store,
        cluster,
        settings,
        by: "tester".to_owned(),
        progress: &Quiet,
    }
}

fn approve(store: &Store, id: &str) {
    store
        .advance(id, Action::Approve, "alice", "looks right", &wall_now())
        .expect("approves");
}

fn deployment(world: &MockSource, namespace: &str, name: &str) -> Value {
    let state = world.observe(&Scope::all()).expect("observes").state;
    Lookup::new(&state)
        .object(&aegis_core::ResourceRef::namespaced(
            ResourceKind::Deployment,
            namespace,
            name,
        ))
        .expect("the deployment exists")
}

#[tokio::test]
async fn an_approved_fix_is_applied_confirmed_and_the_workload_heals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = MockSource::demo().expect("demo");
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    assert_eq!(incident.verification.result.verdict, Verdict::Successful);
    approve(&store, &incident.id);
    let settings = Settings::default();
    let changed = engine(&store, &world, &settings)
        .apply(&incident.id)
        .await
        .expect("applies");
    let change = &changed.change;
    assert_eq!(change.status, ChangeStatus::Confirmed, "{change:#?}");
    assert_eq!(changed.incident.lifecycle.phase, Phase::Applied);
    assert_eq!(change.approver, "alice");
    assert_eq!(change.verdict, Verdict::Successful);
    assert!(
        change.diff.iter().any(|l| l.contains("DATABASE_URL")),
        "{:?}",
        change.diff
    );
    let recorded = change
        .steps
        .iter()
        .position(|s| s.what.starts_with("recorded"));
    let patched = change
        .steps
        .iter()
        .position(|s| s.what.starts_with("patched"));
    assert!(
        recorded.is_some() && recorded < patched,
        "{:#?}",
        change.steps
    );
    let timing = change.timing.expect("timed");
    assert!(timing.decided_seconds >= timing.pods_ready_seconds.unwrap_or(0.0));
    // Production holds the change, marked with its id, and AEGIS finds nothing there now.
    let object = deployment(&world, "demo", "orders-api");
    assert_eq!(annotation(&object), Some(change.id.as_str()));
    assert_eq!(
        change.after.as_ref().map(|a| a.spec_hash.clone()),
        Some(Basis::of(&object, &change.patch).spec_hash)
    );
    let state = world.observe(&Scope::all()).expect("observes").state;
    let after = Agent::new(&settings)
        .analyze(&state, SourceKind::Mock, &AnalyzeRequest::default())
        .expect("analyzes");
    assert!(
        !after
            .incidents
            .iter()
            .any(|i| i.workload.name == "orders-api"),
        "{:#?}",
        after
            .incidents
            .iter()
            .filter(|i| i.workload.name == "orders-api")
            .collect::<Vec<_>>()
    );
    // Applying again changes nothing; a rollback by hand restores the spec.
    let again = engine(&store, &world, &settings).apply(&incident.id).await;
    assert!(
        matches!(
            again,
            Err(ChangeError::Refused(Refusal::AlreadyApplied { .. }))
        ),
        "{again:?}"
    );
    let undone = engine(&store, &world, &settings)
        .rollback(&incident.id, "the on-call asked")
        .await
        .expect("rolls back");
    assert_eq!(undone.change.status, ChangeStatus::Made);
    assert_eq!(undone.incident.lifecycle.phase, Phase::RolledBack);
    let restored = deployment(&world, "demo", "orders-api");
    assert_eq!(
        Basis::of(&restored, &change.patch).spec_hash,
        change.before.spec_hash
    );
}

/// The trainer with four replicas: the shadow proves the smaller request on one clone, but
/// production's nodes hold only three of them.
const FOUR_TRAINERS: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: ml-trainer, namespace: demo, labels: {app: ml-trainer}}
spec:
  replicas: 4
  selector: {matchLabels: {app: ml-trainer}}
  template:
    metadata: {labels: {app: ml-trainer}}
    spec:
      containers:
        - name: trainer
          image: ghcr.io/aegis-demo/trainer:0.9.1
          resources:
            requests: {cpu: '1', memory: 24Gi}
            limits: {memory: 24Gi}
";

#[tokio::test]
async fn a_fix_that_passes_the_shadow_but_regresses_production_is_rolled_back_with_the_evidence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = world_with("pending-no-resources.yaml", FOUR_TRAINERS);
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "ml-trainer", Category::InsufficientResources);
    assert_eq!(
        incident.verification.result.verdict,
        Verdict::Successful,
        "{}",
        incident.verification.result.reason
    );
    approve(&store, &incident.id);
    let before = deployment(&world, "demo", "ml-trainer");
    let settings = Settings::default();
    let changed = engine(&store, &world, &settings)
        .apply(&incident.id)
        .await
        .expect("runs");
    let change = &changed.change;
    assert_eq!(change.status, ChangeStatus::RolledBack, "{change:#?}");
    assert_eq!(changed.incident.lifecycle.phase, Phase::RolledBack);
    let last = changed.incident.lifecycle.history.last().expect("history");
    assert!(
        last.reason.starts_with("rolled back automatically"),
        "{last:?}"
    );
    assert!(
        change
            .evidence_seen
            .iter()
            .any(|l| l.contains("FailedScheduling")),
        "{:#?}",
        change.evidence_seen
    );
    let after = deployment(&world, "demo", "ml-trainer");
    assert_eq!(
        Basis::of(&after, &change.patch).spec_hash,
        Basis::of(&before, &change.patch).spec_hash,
        "the inverse patch restores the spec"
    );
    assert_eq!(
        annotation(&after),
        Some(format!("{}/rolled-back", change.id).as_str())
    );
    // The next run finds nothing under way and the incident no longer approved.
    let refused = engine(&store, &world, &settings).apply(&incident.id).await;
    assert!(
        matches!(
            refused,
            Err(ChangeError::Refused(Refusal::NotApproved {
                phase: Phase::RolledBack,
                ..
            }))
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn refused_preconditions_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = MockSource::demo().expect("demo");
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    let settings = Settings::default();
    let before = deployment(&world, "demo", "orders-api");
    // Not approved.
    let refused = engine(&store, &world, &settings).apply(&incident.id).await;
    assert!(
        matches!(
            refused,
            Err(ChangeError::Refused(Refusal::NotApproved {
                phase: Phase::Verified,
                ..
            }))
        ),
        "{refused:?}"
    );
    // Approved, but the Deployment changed since the shadow verified the fix.
    approve(&store, &incident.id);
    let mut edited = before.clone();
    if let Some(env) = edited.pointer_mut("/spec/template/spec/containers/0/env/0") {
        *env = json!({"name": "LOG_LEVEL", "value": "debug"});
    }
    if let Some(meta) = edited.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    ClusterWrite::apply(&world, &edited, DryRun::No)
        .await
        .expect("edits");
    let changed = engine(&store, &world, &settings).apply(&incident.id).await;
    match changed {
        Err(error @ ChangeError::TargetChanged { .. }) => {
            assert!(error.to_string().contains("verified again"), "{error}");
            assert!(error.hint().is_some_and(|h| h.contains("analyze")));
        }
        other => panic!("{other:?}"),
    }
    let stored = store.find(&incident.id).expect("found");
    assert!(stored.changes.is_empty(), "{:#?}", stored.changes);
    assert_eq!(stored.lifecycle.phase, Phase::Approved);
    assert_eq!(annotation(&deployment(&world, "demo", "orders-api")), None);
}

#[tokio::test]
async fn two_engines_applying_at_once_make_one_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = MockSource::demo().expect("demo");
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    approve(&store, &incident.id);
    let settings = Settings::default();
    let (one, two) = (
        engine(&store, &world, &settings),
        engine(&store, &world, &settings),
    );
    let (a, b) = futures::join!(one.apply(&incident.id), two.apply(&incident.id));
    let made: Vec<_> = [&a, &b].into_iter().filter(|r| r.is_ok()).collect();
    assert_eq!(made.len(), 1, "{a:?}\n{b:?}");
    let refused = if a.is_ok() { &b } else { &a };
    assert!(
        matches!(
            refused,
            Err(ChangeError::InProgress { .. }
                | ChangeError::Refused(Refusal::AlreadyApplied { .. }))
        ),
        "{refused:?}"
    );
    let stored = store.find(&incident.id).expect("found");
    assert_eq!(stored.changes.len(), 1, "{:#?}", stored.changes);
    let state = world.observe(&Scope::all()).expect("observes").state;
    let history = aegis_rules::revision::history(
        &Lookup::new(&state),
        &aegis_core::ResourceRef::namespaced(ResourceKind::Deployment, "demo", "orders-api"),
    )
    .expect("revisions");
    assert_eq!(history.newest.number, 2, "one new revision");
}

/// A cluster that stops answering after the change's write: the process "dies" in the middle of
/// its confirmation window. With `lose_answer`, it instead loses the answer to the write (which
/// the world took) and goes on answering.
struct Dies<'a> {
    world: &'a MockSource,
    written: AtomicBool,
    lose_answer: bool,
}

/// A cluster that notes, at the first real write, whether the store already held the change's
/// audit record.
struct Audited<'a> {
    world: &'a MockSource,
    store: &'a Store,
    id: String,
    seen: Mutex<Vec<String>>,
}

impl ClusterRead for Dies<'_> {
    fn kind(&self) -> SourceKind {
        SourceKind::Mock
    }
    fn load<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, aegis_cluster::Result<Loaded>> {
        self.world.load(scope)
    }
}

impl ClusterRead for Audited<'_> {
    fn kind(&self) -> SourceKind {
        SourceKind::Mock
    }
    fn load<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, aegis_cluster::Result<Loaded>> {
        self.world.load(scope)
    }
}

/// Delegates every write to the world but `patch` and `wait`.
macro_rules! delegate_writes {
    ($type:ty, $patch:expr, $wait:expr) => {
        impl ClusterWrite for $type {
            fn now(&self) -> Timestamp {
                self.world.now()
            }
            fn apply<'a>(
                &'a self,
                object: &'a Value,
                dry_run: DryRun,
            ) -> BoxFuture<'a, WriteResult<Value>> {
                ClusterWrite::apply(self.world, object, dry_run)
            }
            fn patch<'a>(
                &'a self,
                target: &'a ObjectRef,
                patch_type: PatchType,
                patch: &'a Value,
                dry_run: DryRun,
            ) -> BoxFuture<'a, WriteResult<Value>> {
                $patch(self, target, patch_type, patch, dry_run)
            }
            fn get<'a>(
                &'a self,
                target: &'a ObjectRef,
            ) -> BoxFuture<'a, WriteResult<Option<Value>>> {
                self.world.get(target)
            }
            fn list<'a>(
                &'a self,
                api_version: &'a str,
                kind: &'a str,
                namespace: Option<&'a str>,
                label_selector: &'a str,
            ) -> BoxFuture<'a, WriteResult<Vec<Value>>> {
                self.world
                    .list(api_version, kind, namespace, label_selector)
            }
            fn delete<'a>(&'a self, target: &'a ObjectRef) -> BoxFuture<'a, WriteResult<bool>> {
                self.world.delete(target)
            }
            fn wait<'a>(
                &'a self,
                namespace: &'a str,
                timeout: Duration,
            ) -> BoxFuture<'a, WriteResult<()>> {
                $wait(self, namespace, timeout)
            }
        }
    };
}

fn dies_patch<'a>(
    this: &'a Dies<'_>,
    target: &'a ObjectRef,
    patch_type: PatchType,
    patch: &'a Value,
    dry_run: DryRun,
) -> BoxFuture<'a, WriteResult<Value>> {
    let real = dry_run == DryRun::No;
    if real {
        this.written.store(true, Ordering::SeqCst);
    }
    let lose = real && this.lose_answer;
    async move {
        let result = this.world.patch(target, patch_type, patch, dry_run).await;
        match result {
            Ok(_) if lose => Err(WriteError::Transport {
                action: "patch",
                object: target.to_string(),
                reason: "connection reset by peer".to_owned(),
            }),
            other => other,
        }
    }
    .boxed()
}

fn audited_patch<'a>(
    this: &'a Audited<'_>,
    target: &'a ObjectRef,
    patch_type: PatchType,
    patch: &'a Value,
    dry_run: DryRun,
) -> BoxFuture<'a, WriteResult<Value>> {
    if dry_run == DryRun::No {
        let status = this
            .store
            .find(&this.id)
            .ok()
            .and_then(|s| s.changes.last().map(|c| c.status.as_str().to_owned()))
            .unwrap_or_else(|| "no record".to_owned());
        if let Ok(mut seen) = this.seen.lock() {
            seen.push(status);
        }
    }
    this.world.patch(target, patch_type, patch, dry_run)
}

fn dies_wait<'a>(
    this: &'a Dies<'_>,
    namespace: &'a str,
    timeout: Duration,
) -> BoxFuture<'a, WriteResult<()>> {
    if this.written.load(Ordering::SeqCst) && !this.lose_answer {
        let refused = Err(WriteError::Transport {
            action: "watch",
            object: namespace.to_owned(),
            reason: "the process was killed".to_owned(),
        });
        return async move { refused }.boxed();
    }
    this.world.wait(namespace, timeout)
}

fn audited_wait<'a>(
    this: &'a Audited<'_>,
    namespace: &'a str,
    timeout: Duration,
) -> BoxFuture<'a, WriteResult<()>> {
    this.world.wait(namespace, timeout)
}

delegate_writes!(Dies<'_>, dies_patch, dies_wait);

delegate_writes!(Audited<'_>, audited_patch, audited_wait);

#[tokio::test]
async fn a_change_left_under_way_by_a_dead_process_is_finished_by_the_next_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = MockSource::demo().expect("demo");
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    approve(&store, &incident.id);
    let settings = Settings::default();
    let dying = Dies {
        world: &world,
        written: AtomicBool::new(false),
        lose_answer: false,
    };
    let died = engine(&store, &dying, &settings).apply(&incident.id).await;
    assert!(matches!(died, Err(ChangeError::Write(_))), "{died:?}");
    let stored = store.find(&incident.id).expect("found");
    let left = stored
        .change_in_progress()
        .expect("a change under way")
        .clone();
    assert_eq!(left.status, ChangeStatus::Confirming);
    // While its owner lives, nobody else touches it.
    let refused = engine(&store, &world, &settings).apply(&incident.id).await;
    assert!(
        matches!(refused, Err(ChangeError::InProgress { .. })),
        "{refused:?}"
    );
    // Its owner is gone (no process has pid 0 under /proc): the next run finishes the change.
    store
        .update(&incident.id, |s| {
            if let Some(c) = s.changes.last_mut() {
                c.owner.pid = 0;
                c.owner.heartbeat = "2020-01-01T00:00:00Z".to_owned();
            }
            Ok::<_, StoreError>(())
        })
        .expect("updates");
    let finished = engine(&store, &world, &settings)
        .apply(&incident.id)
        .await
        .expect("finishes");
    assert_eq!(finished.change.id, left.id);
    assert_eq!(
        finished.change.status,
        ChangeStatus::Confirmed,
        "{:#?}",
        finished.change
    );
    assert!(
        finished
            .change
            .steps
            .iter()
            .any(|s| s.what.starts_with("resumed by process"))
    );
    assert_eq!(finished.incident.lifecycle.phase, Phase::Applied);
    assert_eq!(finished.incident.changes.len(), 1);
}

#[tokio::test]
async fn a_change_whose_process_died_before_writing_is_recorded_as_not_made_and_made_afresh() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = MockSource::demo().expect("demo");
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    approve(&store, &incident.id);
    let stored = store.find(&incident.id).expect("found");
    let settings = Settings::default();
    let engine = engine(&store, &world, &settings);
    let fix = stored.incident.fix.clone().expect("a fix");
    let object = deployment(&world, "demo", "orders-api");
    let mut intent = engine.record(
        &stored,
        &fix,
        &object,
        &next_change_id(&stored),
        ChangeKind::Apply,
        &Grant::AutoApply,
        Basis::of(&object, &fix.patch),
    );
    intent.owner.pid = 0;
    intent.owner.heartbeat = "2020-01-01T00:00:00Z".to_owned();
    engine.begin(&incident.id, &intent).await.expect("records");
    let changed = engine.apply(&incident.id).await.expect("applies");
    assert_eq!(changed.change.status, ChangeStatus::Confirmed);
    assert_eq!(changed.incident.changes.len(), 2);
    assert!(
        matches!(&changed.incident.changes[0].status, ChangeStatus::NotMade { reason } if reason.contains("before writing")),
        "{:#?}",
        changed.incident.changes[0]
    );
}

#[tokio::test]
async fn the_audit_record_is_in_the_store_before_the_first_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = world_with("pending-no-resources.yaml", FOUR_TRAINERS);
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "ml-trainer", Category::InsufficientResources);
    approve(&store, &incident.id);
    let audited = Audited {
        world: &world,
        store: &store,
        id: incident.id.clone(),
        seen: Mutex::new(Vec::new()),
    };
    let settings = Settings::default();
    let changed = engine(&store, &audited, &settings)
        .apply(&incident.id)
        .await
        .expect("runs");
    assert_eq!(changed.change.status, ChangeStatus::RolledBack);
    let seen = audited.seen.lock().expect("lock").clone();
    // The fix's write found the record as an intent; the rollback's found it confirming.
    assert_eq!(seen, ["intent", "confirming"]);
}

#[tokio::test]
async fn auto_apply_covers_named_categories_with_a_successful_verdict_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = MockSource::demo().expect("demo");
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    let mut settings = Settings::default();
    settings.policy.auto_apply_categories = vec![Category::OomKilled];
    let refused = engine(&store, &world, &settings).apply(&incident.id).await;
    match refused {
        Err(ChangeError::Refused(refusal @ Refusal::NotApproved { .. })) => {
            assert!(
                refusal
                    .to_string()
                    .contains("does not name missing-env-var"),
                "{refusal}"
            );
        }
        other => panic!("{other:?}"),
    }
    settings.policy.auto_apply_categories = vec![Category::MissingEnvVar];
    let changed = engine(&store, &world, &settings)
        .apply(&incident.id)
        .await
        .expect("applies");
    assert_eq!(changed.change.status, ChangeStatus::Confirmed);
    assert!(
        changed.change.approver.contains("auto-apply"),
        "{}",
        changed.change.approver
    );
    let phases: Vec<Phase> = changed
        .incident
        .lifecycle
        .history
        .iter()
        .map(|t| t.to)
        .collect();
    assert!(
        phases.ends_with(&[Phase::Approved, Phase::Applied]),
        "{phases:?}"
    );
}

#[tokio::test]
async fn a_gitops_managed_target_gets_a_patch_file_and_the_cluster_is_not_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let text = aegis_cluster::sim::DEMO_MANIFESTS
        .iter()
        .find(|(name, _)| *name == "crashloop-missing-env.yaml")
        .map(|(_, text)| text.replace(
            "  name: orders-api\n  namespace: demo\n  labels: {app: orders-api}\n",
            "  name: orders-api\n  namespace: demo\n  labels: {app: orders-api}\n  annotations: {argocd.argoproj.io/tracking-id: 'shop:apps/Deployment:demo/orders-api'}\n",
        ))
        .expect("the manifest");
    assert!(text.contains("tracking-id"));
    let world = world_with("crashloop-missing-env.yaml", &text);
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    approve(&store, &incident.id);
    let before = deployment(&world, "demo", "orders-api");
    let settings = Settings::default();
    let changed = engine(&store, &world, &settings)
        .apply(&incident.id)
        .await
        .expect("writes a file");
    let ChangeStatus::PatchFile { path } = &changed.change.status else {
        panic!("{:#?}", changed.change);
    };
    let file = std::fs::read_to_string(path).expect("the patch file");
    assert!(file.contains("managed by Argo CD"), "{file}");
    assert!(file.contains("DATABASE_URL"), "{file}");
    let patch: Value = serde_yaml::from_str(&file).expect("YAML");
    assert_eq!(patch["kind"], "Deployment");
    assert_eq!(patch["metadata"]["name"], "orders-api");
    assert_eq!(changed.incident.lifecycle.phase, Phase::Approved);
    assert_eq!(deployment(&world, "demo", "orders-api"), before);
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_known_by_its_annotation_and_confirmed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::new(dir.path());
    let world = MockSource::demo().expect("demo");
    let incidents = analyzed(&world, &store).await;
    let incident = of(&incidents, "orders-api", Category::MissingEnvVar);
    approve(&store, &incident.id);
    let lossy = Dies {
        world: &world,
        written: AtomicBool::new(false),
        lose_answer: true,
    };
    let settings = Settings::default();
    let changed = engine(&store, &lossy, &settings)
        .apply(&incident.id)
        .await
        .expect("applies");
    assert_eq!(
        changed.change.status,
        ChangeStatus::Confirmed,
        "{:#?}",
        changed.change
    );
    assert!(
        changed
            .change
            .steps
            .iter()
            .any(|s| s.what.contains("but the object carries the change")),
        "{:#?}",
        changed.change.steps
    );
}
