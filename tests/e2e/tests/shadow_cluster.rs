//! End-to-end: shadow verification on a real control plane (kwok plays the kubelets with stages
//! from the mock world model). Every demo incident's baseline reproduces it in a shadow and its
//! fix verifies `successful`; a wrong fix `failed`; production objects are untouched; shadows
//! come and go without leaving a namespace behind; the API server's own Pod Security admission
//! guards a shadow namespace; and a shadow can live in a second control plane.
//!
//! One control plane (and a second one for `--shadow-context`) serves every scenario, in order,
//! to keep the e2e tier's time down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aegis_agent::{VerifyOptions, VerifyProgress, verify_incidents};
use aegis_cluster::live::LiveSource;
use aegis_cluster::{ClusterWrite, DryRun, WriteError};
use aegis_core::{Category, ClusterState, Incident, Verdict, VerificationResult};
use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;
use aegis_e2e::demo::{EXPECTED, apply_and_wait, of_workload, settings, source, summary};
use aegis_shadow::{Creation, Limits, ShadowRequest, Tracker};
use serde_json::json;

/// Prints when each verification starts and ends, with its time, for the test's log.
struct Timing {
    started: std::sync::Mutex<BTreeMap<String, Instant>>,
}

impl VerifyProgress for Timing {
    fn started(&self, incident: &Incident) {
        if let Ok(mut started) = self.started.lock() {
            started.insert(incident.id.clone(), Instant::now());
        }
    }

    fn finished(&self, incident: &Incident, result: &VerificationResult) {
        let wall = self
            .started
            .lock()
            .ok()
            .and_then(|s| s.get(&incident.id).map(Instant::elapsed))
            .unwrap_or_default();
        let seconds =
            |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s"));
        let ready = result
            .evidence
            .as_ref()
            .and_then(|e| e.candidate_ready_seconds);
        let reproduced = result
            .baseline
            .as_ref()
            .and_then(|b| b.reproduced_after_seconds);
        let duration = result.duration_seconds.unwrap_or_default();
        // AEGIS's own delay: from the moment both clones had settled (the candidate Ready, the
        // baseline showing the incident) to the verdict.
        let settled = ready.zip(reproduced).map(|(r, b)| r.max(b));
        eprintln!(
            "{} {}: {} in {:.1} s wall; cluster clock: verdict {duration:.1} s, candidate ready {}, baseline reproduced {}, verdict after both settled {}: {}",
            incident.workload,
            incident.rca.category,
            result.verdict,
            wall.as_secs_f64(),
            seconds(ready),
            seconds(reproduced),
            seconds(settled.map(|s| duration - s)),
            result.reason
        );
    }
}

/// Verifies `incidents` with dry runs on `production` and shadows on `shadows`.
async fn verify(
    state: &ClusterState,
    incidents: &mut [Incident],
    production: &LiveSource,
    shadows: &LiveSource,
    timing: &Timing,
) {
    verify_incidents(
        state,
        incidents,
        production,
        shadows,
        &options(),
        &Tracker::default(),
        timing,
    )
    .await;
}

fn options() -> VerifyOptions {
    let mut shadow = settings().shadow;
    shadow.max_concurrent = 4;
    VerifyOptions::from_settings(&shadow)
}

/// The resourceVersions of what a fix could touch in production: Deployments, Services,
/// ConfigMaps and Secrets of the demo namespaces, and the specs of bare pods.
async fn production_versions(client: &kube::Client) -> BTreeMap<String, String> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
    let mut versions = BTreeMap::new();
    for namespace in ["default", "demo", "production"] {
        macro_rules! record {
            ($kind:ty, $what:expr) => {
                let api: kube::Api<$kind> = kube::Api::namespaced(client.clone(), namespace);
                for object in api.list(&Default::default()).await.expect("list").items {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    let version: String = $what(&object);
                    versions.insert(format!("{}/{namespace}/{name}", stringify!($kind)), version);
                }
            };
        }
        // A Deployment's status is the cluster's to change; its spec (generation) is not.
        record!(Deployment, |d: &Deployment| format!(
            "{:?}",
            d.metadata.generation
        ));
        record!(Service, |s: &Service| s
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default());
        record!(ConfigMap, |c: &ConfigMap| c
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default());
        record!(Secret, |s: &Secret| s
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default());
        record!(Pod, |p: &Pod| serde_json::to_string(&p.spec)
            .unwrap_or_default());
    }
    versions
}

async fn shadow_namespaces(cluster: &LiveSource) -> Vec<String> {
    aegis_shadow::list(cluster)
        .await
        .expect("shadows are listed")
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// Waits until no namespace labelled as a shadow is left (deletion is asynchronous).
async fn no_shadow_left(cluster: &LiveSource) -> Vec<String> {
    let started = Instant::now();
    loop {
        let left = shadow_namespaces(cluster).await;
        if left.is_empty() || started.elapsed() > Duration::from_secs(120) {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn request<'a>(state: &'a ClusterState, incident: &Incident, keep: bool) -> ShadowRequest<'a> {
    let options = options();
    ShadowRequest {
        state,
        workload: incident.workload.clone(),
        category: incident.rca.category,
        fixes: incident.fix.clone().into_iter().collect(),
        plan: incident.verification.plan.clone().expect("a plan"),
        incident: Some(incident.id.clone()),
        limits: Limits {
            keep,
            ..options.limits
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixes_are_proved_in_shadows_on_a_real_control_plane() {
    let binaries = Binaries::ensure().expect("the control plane builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(&binaries, &dir.path().join("production"))
        .await
        .expect("the control plane starts");
    let (state, report) = apply_and_wait(&binaries, &cluster).await;
    let live = source(&cluster).await;
    let client = cluster.client().await.expect("a client");
    let before = production_versions(&client).await;

    // Every expected incident: the baseline reproduces it, the fix verifies.
    let mut incidents: Vec<Incident> = EXPECTED
        .iter()
        .map(|(workload, category)| {
            let found = of_workload(&report, workload);
            assert!(
                found.len() == 1 && found[0].rca.category == *category,
                "{workload}: {:#?}",
                summary(&report)
            );
            found[0].clone()
        })
        .collect();
    let timing = Timing {
        started: std::sync::Mutex::default(),
    };
    let started = Instant::now();
    verify(&state, &mut incidents, &live, &live, &timing).await;
    eprintln!(
        "verified {} incidents in {:.1} s",
        incidents.len(),
        started.elapsed().as_secs_f64()
    );
    for incident in &incidents {
        let result = &incident.verification.result;
        assert_eq!(
            result.verdict,
            Verdict::Successful,
            "{} {}: {}\n{:#?}\n{:#?}",
            incident.workload,
            incident.rca.category,
            result.reason,
            result.checks,
            result.evidence.as_ref().map(|e| &e.events)
        );
        assert!(result.baseline.as_ref().is_some_and(|b| b.reproduced));
    }
    assert_eq!(no_shadow_left(&live).await, Vec::<String>::new());

    // A wrong fix fails: a tag that does not exist.
    let mut wrong = incidents
        .iter()
        .find(|i| i.workload.name == "payments-web")
        .cloned()
        .expect("payments-web");
    wrong.alternative_fixes.clear();
    if let Some(fix) = wrong.fix.as_mut() {
        fix.patch["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("nginx:0.0.0-missing");
        // No longer the rollback it is: an ordinary image fix.
        fix.rollback = None;
    }
    let mut wrong = vec![wrong];
    verify(&state, &mut wrong, &live, &live, &timing).await;
    let result = &wrong[0].verification.result;
    assert_eq!(result.verdict, Verdict::Failed, "{}", result.reason);

    // Production is as it was: no spec, Service, ConfigMap or Secret changed.
    assert_eq!(production_versions(&client).await, before);

    // The API server's Pod Security admission guards a shadow namespace.
    let orders = incidents
        .iter()
        .find(|i| i.rca.category == Category::MissingEnvVar)
        .expect("orders-api");
    let fix = orders.fix.clone().expect("a fix");
    let tracker = Tracker::default();
    let Creation::Created(created) =
        aegis_shadow::create(&live, &live, &request(&state, orders, true), &fix, &tracker)
            .await
            .expect("a shadow is created")
    else {
        panic!("the dry run refused the fix");
    };
    let privileged = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": created.namespace},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27.2", "securityContext": {"privileged": true}}]},
    });
    match live.apply(&privileged, DryRun::No).await {
        Err(WriteError::Refused { reason, .. }) => {
            assert!(reason.contains("privileged"), "{reason}");
        }
        other => panic!("a privileged pod in a shadow namespace was not refused: {other:?}"),
    }
    aegis_shadow::delete(&live, &created.namespace)
        .await
        .expect("the shadow is deleted");
    // A namespace that is not a shadow is never deleted by `shadow delete`.
    assert!(matches!(
        aegis_shadow::delete(&live, "demo").await,
        Err(aegis_shadow::Error::NotAShadow { .. })
    ));

    // Twenty create/delete cycles leave no shadow namespace.
    let started = Instant::now();
    for _ in 0..20 {
        let Creation::Created(created) =
            aegis_shadow::create(&live, &live, &request(&state, orders, true), &fix, &tracker)
                .await
                .expect("a shadow is created")
        else {
            panic!("the dry run refused the fix");
        };
        aegis_shadow::delete(&live, &created.namespace)
            .await
            .expect("the shadow is deleted");
    }
    assert_eq!(no_shadow_left(&live).await, Vec::<String>::new());
    eprintln!(
        "20 create/delete cycles and their cleanup took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A shadow in a second control plane: production only sees the dry run.
    let staging = Cluster::start(&binaries, &dir.path().join("staging"))
        .await
        .expect("a second control plane starts");
    let staging_source = source(&staging).await;
    let mut elsewhere = vec![orders.clone()];
    verify(&state, &mut elsewhere, &live, &staging_source, &timing).await;
    let result = &elsewhere[0].verification.result;
    assert_eq!(result.verdict, Verdict::Successful, "{}", result.reason);
    assert!(shadow_namespaces(&live).await.is_empty());
    assert_eq!(production_versions(&client).await, before);
}
