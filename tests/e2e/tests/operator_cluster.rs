//! End-to-end: `aegis operator run` on a real control plane with kwok nodes, two replicas
//! electing a leader on a Lease.
//!
//! - the demo incidents become Incident objects, each diagnosed and its fix verified in a
//!   shadow (Detected → Diagnosed → Verifying → Verified), timed from `kubectl apply`;
//! - a second pass over an unchanged cluster writes nothing; 200 duplicate events make no new
//!   Incident;
//! - a K8sGPT `Result` created by hand becomes an Incident, and deleting it resolves it;
//! - an approval written in the spec for the verified fix moves it to Approved; one for another
//!   fix does not;
//! - a workload repaired by hand resolves its Incident, which is deleted after the retention;
//! - approved and regressing fixes are written once each (and undone once), with two replicas
//!   running: zero double applies;
//! - the API server restarted mid-run: the operator recovers (a replica that lost its lease
//!   is replaced, as its Deployment would), with no Incident lost or duplicated, and its
//!   watches follow changes again;
//! - idle, the operator's requests are its Lease, its watches and the shadow collection, counted
//!   from the API server's audit log;
//! - the leader killed, the standby takes over within the lease;
//! - /metrics, /healthz, /readyz answer, and `aegis operator status` names the leader;
//! - all of it as the Helm chart's ServiceAccount (a token from the TokenRequest API), with
//!   exactly the chart's RBAC: no request refused, no Secret read outside a shadow namespace,
//!   and a Secret read in a production namespace refused.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use aegis_core::crd::IncidentResource;
use aegis_core::lifecycle::Phase;
use aegis_e2e::binaries::Binaries;
use aegis_e2e::chart::{ChartAccount, OPERATOR_ACCOUNT};
use aegis_e2e::cluster::{Cluster, audit_events_of, audited_writes, requests_by};
use aegis_e2e::demo::{EXPECTED, kubectl};
use aegis_e2e::operator::{NAMESPACE, Replica, install_crds, warning_events};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long the operator's idle requests are counted.
const IDLE_WINDOW: Duration = Duration::from_secs(60);
/// How long the whole demo is given to be diagnosed and verified.
const VERIFY_DEADLINE: Duration = Duration::from_secs(420);

async fn incidents(api: &Api<IncidentResource>) -> Vec<IncidentResource> {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn phase(incident: &IncidentResource) -> Option<Phase> {
    incident.status.as_ref()?.phase
}

fn of<'a>(all: &'a [IncidentResource], workload: &str) -> Vec<&'a IncidentResource> {
    all.iter()
        .filter(|i| i.spec.workload.name == workload)
        .collect()
}

/// When the incident first reached `phase`, from its history.
fn reached(incident: &IncidentResource, phase: Phase) -> Option<k8s_openapi::jiff::Timestamp> {
    incident
        .status
        .as_ref()?
        .history
        .iter()
        .find(|t| t.to == phase)
        .and_then(|t| t.at.parse().ok())
}

async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    leases
        .get_opt("aegis-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_records_verifies_and_resolves_incidents_with_one_leader() {
    let binaries = Binaries::ensure().expect("the control plane builds");
    let binary = aegis_e2e::aegis_binary().expect("aegis builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(&binaries, dir.path())
        .await
        .expect("the control plane starts");
    let client = cluster.client().await.expect("a client");

    // Without its CRD the operator refuses to start, and says how to install it.
    let output = Command::new(&binary)
        .args([
            "operator",
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "-n",
            NAMESPACE,
        ])
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("aegis runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("aegis operator crd | kubectl apply -f -"),
        "{stderr}"
    );

    // The CRD as `aegis operator crd` prints it, and K8sGPT's Result CRD, applied for real.
    install_crds(&binaries, &cluster, &binary, true);
    for namespace in ["legacy", "k8sgpt-operator-system"] {
        kubectl(&binaries, &cluster, &["create", "namespace", namespace]);
    }

    // The operator's ServiceAccount, RBAC and configuration as the Helm chart installs them;
    // the replicas run with that account's token and the chart's aegis.toml.
    let account =
        ChartAccount::install(&binaries, &cluster, dir.path()).expect("the chart installs");
    let start = |identity: &str| {
        Replica::start_as(
            &binary,
            &account.kubeconfig,
            Some(&account.config),
            dir.path(),
            identity,
            &[],
        )
    };

    // Two replicas; one leads.
    let replica_a = start("replica-a");
    let replica_b = start("replica-b");
    let mut replicas = vec![replica_a, replica_b];
    wait_for("both replicas ready", Duration::from_secs(60), || {
        let ready = replicas.iter().all(|r| r.get("/readyz").0 == 200);
        async move { ready.then_some(()) }
    })
    .await;
    let leader = wait_for("a leader", Duration::from_secs(30), || {
        let client = client.clone();
        async move { holder(&client).await }
    })
    .await;
    assert!(replicas.iter().any(|r| r.identity == leader), "{leader}");
    for replica in &replicas {
        assert_eq!(replica.get("/healthz").0, 200);
        let (_, ready) = replica.get("/readyz");
        let role = if replica.identity == leader {
            "leader"
        } else {
            "standby"
        };
        assert!(ready.contains(role), "{}: {ready}", replica.identity);
    }

    // Idle (no incident yet, only kwok's node heartbeats changing): a minute of the two
    // replicas' requests, from the audit log. No polling: the Lease, watches, and the shadow
    // collection's label-selected namespace list.
    let idle_from = k8s_openapi::jiff::Timestamp::now();
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_to = k8s_openapi::jiff::Timestamp::now();
    let idle = requests_by(&cluster.audit_log(), OPERATOR_ACCOUNT, idle_from, idle_to);
    let total: usize = idle.values().sum();
    let per_hour = total as f64 * 3600.0 / IDLE_WINDOW.as_secs_f64();
    eprintln!(
        "idle, two replicas, lease retry 1 s: {total} requests in {} s ({per_hour:.0} an hour): {idle:?}",
        IDLE_WINDOW.as_secs()
    );
    for (what, count) in &idle {
        assert!(
            what.ends_with(" leases") || what.starts_with("watch ") || what == "list namespaces",
            "idle, only the Lease, watches and the shadow collection: {what} ×{count} in {idle:?}"
        );
    }
    assert!(
        idle.get("list namespaces").copied().unwrap_or(0) <= 2,
        "one shadow collection a minute per leader: {idle:?}"
    );

    // The demo incidents: `demo` is watched by the namespace selector, the bare pod in
    // `default` by its annotation.
    let applied = k8s_openapi::jiff::Timestamp::now();
    let examples = aegis_e2e::workspace_root().join("examples/incidents");
    kubectl(
        &binaries,
        &cluster,
        &["apply", "-f", examples.to_str().expect("UTF-8")],
    );
    kubectl(
        &binaries,
        &cluster,
        &["label", "namespace", "demo", "aegis.io/watch=true"],
    );
    kubectl(
        &binaries,
        &cluster,
        &[
            "annotate",
            "pod/demo-nginx",
            "-n",
            "default",
            "aegis.io/monitor=true",
        ],
    );
    let api: Api<IncidentResource> = Api::all(client.clone());
    let settled = wait_for(
        "every demo incident verified or escalated",
        VERIFY_DEADLINE,
        || {
            let api = api.clone();
            async move {
                let all = incidents(&api).await;
                let done = EXPECTED.iter().all(|(workload, category)| {
                    let mine = of(&all, workload);
                    mine.len() == 1
                        && mine[0].spec.category == *category
                        && matches!(
                            phase(mine[0]),
                            Some(Phase::Verified | Phase::Failed | Phase::Escalated)
                        )
                });
                done.then_some(all)
            }
        },
    )
    .await;
    let mut timings = BTreeMap::new();
    for (workload, _) in EXPECTED {
        let incident = of(&settled, workload)[0];
        let status = incident.status.as_ref().expect("a status");
        let path: Vec<Phase> = status.history.iter().map(|t| t.to).collect();
        eprintln!("{workload}: verdict {:?}", status.verdict);
        for step in &status.history {
            eprintln!(
                "    {} → {} by {}: {}",
                step.from, step.to, step.by, step.reason
            );
        }
        if phase(incident) == Some(Phase::Verified) {
            assert!(
                path.ends_with(&[Phase::Diagnosed, Phase::Verifying, Phase::Verified]),
                "{workload}: {path:?}"
            );
            let shadow = status
                .incident
                .as_ref()
                .and_then(|i| i.verification.result.shadow.clone());
            assert!(shadow.is_some(), "{workload}: the shadow is named");
        }
        let seconds =
            |phase| reached(incident, phase).map(|t| t.duration_since(applied).as_secs_f64());
        timings.insert(
            workload,
            (seconds(Phase::Diagnosed), seconds(Phase::Verified)),
        );
    }
    eprintln!("from kubectl apply: workload, diagnosed s, verified s");
    for (workload, (diagnosed, verified)) in &timings {
        eprintln!("  {workload:<14} {diagnosed:>6.1?} {verified:>6.1?}");
    }
    // Every demo incident's fix is proved in a shadow.
    let unverified: Vec<(&str, Option<Phase>)> = EXPECTED
        .iter()
        .map(|(workload, _)| (*workload, phase(of(&settled, workload)[0])))
        .filter(|(_, phase)| *phase != Some(Phase::Verified))
        .collect();
    assert!(unverified.is_empty(), "not verified: {unverified:?}");
    // Every Incident lives in its workload's namespace, named by its id.
    for incident in &settled {
        assert_eq!(
            incident.metadata.namespace, incident.spec.workload.namespace,
            "{:?}",
            incident.metadata.name
        );
        let id = incident
            .status
            .as_ref()
            .and_then(|s| s.incident.as_ref())
            .map(|i| i.id.clone());
        assert_eq!(incident.metadata.name, id);
    }

    // Nothing changes: a pass writes nothing (resourceVersions stay), and 200 duplicate
    // Warning events about one pod make no new Incident.
    let versions = |all: &[IncidentResource]| -> BTreeMap<String, String> {
        all.iter()
            .map(|i| {
                (
                    i.metadata.name.clone().unwrap_or_default(),
                    i.metadata.resource_version.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "demo");
    let orders = pods
        .list(&ListParams::default().labels("app=orders-api"))
        .await
        .expect("pods")
        .items;
    let pod = orders.first().expect("an orders-api pod");
    let before = versions(&incidents(&api).await);
    warning_events(
        &client,
        pod,
        "dup",
        200,
        "Back-off restarting failed container app",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_events = incidents(&api).await;
    assert_eq!(after_events.len(), settled.len(), "no new Incident");
    assert_eq!(of(&after_events, "orders-api").len(), 1);
    let unchanged: Vec<&String> = before
        .iter()
        .filter(|(name, version)| versions(&after_events).get(*name) == Some(version))
        .map(|(name, _)| name)
        .collect();
    eprintln!(
        "{} of {} Incidents unwritten across the duplicate events",
        unchanged.len(),
        before.len()
    );

    // A K8sGPT Result created by hand, about a workload nobody asked AEGIS to watch.
    kubectl(
        &binaries,
        &cluster,
        &[
            "create",
            "deployment",
            "legacy-api",
            "-n",
            "legacy",
            "--image=nginx:1.27",
        ],
    );
    let results: Api<aegis_k8sgpt::result::K8sgptResult> =
        Api::namespaced(client.clone(), "k8sgpt-operator-system");
    let result: aegis_k8sgpt::result::K8sgptResult = serde_json::from_value(json!({
        "apiVersion": "core.k8sgpt.ai/v1alpha1", "kind": "Result",
        "metadata": {"name": "legacylegacyapi", "namespace": "k8sgpt-operator-system"},
        "spec": {"backend": "openai", "kind": "Deployment", "name": "legacy/legacy-api",
                 "error": [{"text": "Deployment legacy/legacy-api has 1 replicas but 0 are available with a deprecated API"}],
                 "details": "", "parentObject": ""}
    }))
    .expect("a Result");
    results
        .create(&PostParams::default(), &result)
        .await
        .expect("the Result is created");
    let legacy: Api<IncidentResource> = Api::namespaced(client.clone(), "legacy");
    let from_k8sgpt = wait_for("the Result's Incident", Duration::from_secs(60), || {
        let legacy = legacy.clone();
        // Created with its spec, then its status written: wait for both.
        async move {
            incidents(&legacy)
                .await
                .into_iter()
                .find(|i| phase(i).is_some())
        }
    })
    .await;
    let status = from_k8sgpt.status.as_ref().expect("status");
    assert!(
        status
            .sources
            .contains(&"k8sgpt:k8sgpt-operator-system/legacylegacyapi".to_owned()),
        "{:?}",
        status.sources
    );
    let findings = &status.incident.as_ref().expect("diagnosis").findings;
    assert!(
        findings.iter().any(|f| f.analyzer == "K8sGPT"),
        "{findings:?}"
    );
    // K8sGPT removes a Result when its failure clears; the Incident resolves with it.
    results
        .delete("legacylegacyapi", &kube::api::DeleteParams::default())
        .await
        .expect("deleted");
    wait_for(
        "the Result's Incident resolved",
        Duration::from_secs(60),
        || {
            let legacy = legacy.clone();
            async move {
                incidents(&legacy)
                    .await
                    .iter()
                    .any(|i| phase(i) == Some(Phase::Resolved))
                    .then_some(())
            }
        },
    )
    .await;

    // Decisions in the spec: an approval of another fix does nothing; of this one, approves.
    let verified_in_demo = |i: &&IncidentResource| {
        phase(i) == Some(Phase::Verified)
            && i.metadata.namespace.as_deref() == Some("demo")
            && !["storefront", "ml-trainer"].contains(&i.spec.workload.name.as_str())
    };
    let payments = of(&settled, "payments-web")
        .into_iter()
        .find(verified_in_demo)
        .or_else(|| settled.iter().find(verified_in_demo))
        .expect("a verified incident in demo")
        .clone();
    eprintln!("approving {}", payments.spec.workload.name);
    let name = payments.metadata.name.clone().expect("a name");
    let demo: Api<IncidentResource> = Api::namespaced(client.clone(), "demo");
    let hash = payments
        .status
        .as_ref()
        .and_then(|s| s.fix_hash.clone())
        .expect("a fix hash");
    demo.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"approval": {"by": "e2e-sre", "fixHash": "not-this-fix"}}})),
    )
    .await
    .expect("patched");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        phase(&demo.get(&name).await.expect("read")),
        Some(Phase::Verified),
        "another fix's approval approves nothing"
    );
    demo.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"approval": {"by": "e2e-sre", "fixHash": hash, "reason": "checked the shadow"}}})),
    )
    .await
    .expect("patched");
    // Approved, the change engine applies it with its audit record in the status first, and
    // confirms it on the real rollout.
    let approved_at = Instant::now();
    let applied = wait_for("applied", Duration::from_secs(120), || {
        let demo = demo.clone();
        let name = name.clone();
        async move {
            let incident = demo.get(&name).await.ok()?;
            matches!(
                phase(&incident),
                Some(Phase::Applied | Phase::RolledBack | Phase::Resolved)
            )
            .then_some(incident)
        }
    })
    .await;
    eprintln!(
        "{}: approval to applied in {:.1} s",
        payments.spec.workload.name,
        approved_at.elapsed().as_secs_f64()
    );
    let status = applied.status.as_ref().expect("status");
    let approval = status
        .history
        .iter()
        .find(|t| t.to == Phase::Approved)
        .expect("the approval in the history");
    assert_eq!(approval.by, "e2e-sre");
    assert_eq!(approval.reason, "checked the shadow");
    assert!(
        status.history.iter().any(|t| t.to == Phase::Applied),
        "{:?}",
        status.history
    );
    let change = status.changes.first().expect("the audit record");
    assert_eq!(change.approver, "e2e-sre");
    assert_eq!(
        change.status,
        aegis_core::change::ChangeStatus::Confirmed,
        "{change:?}"
    );
    assert_eq!(change.fix_hash, hash);
    // Two replicas ran; the fix reached the workload once.
    let workload = &payments.spec.workload;
    let resource = format!("{}s", workload.kind.as_str().to_lowercase());
    assert_eq!(
        audited_writes(&cluster.audit_log(), &resource, &workload.name).len(),
        1,
        "one write of the fix to {}",
        workload.name
    );
    let standby_log = replicas
        .iter()
        .find(|r| r.identity != leader)
        .map(Replica::log)
        .unwrap_or_default();
    assert!(
        !standby_log.contains("production change"),
        "the standby changed nothing:\n{standby_log}"
    );

    // A fix production cannot hold (four trainers, each sized to one node's room, on three
    // nodes): applied, regressed, rolled back with the inverse patch.
    kubectl(
        &binaries,
        &cluster,
        &["scale", "deploy/ml-trainer", "-n", "demo", "--replicas=4"],
    );
    let trainer = of(&settled, "ml-trainer")[0].clone();
    let trainer_name = trainer.metadata.name.clone().expect("a name");
    let trainer_now = demo.get(&trainer_name).await.expect("read");
    let trainer_hash = trainer_now
        .status
        .as_ref()
        .and_then(|s| s.fix_hash.clone())
        .expect("a fix hash");
    assert_eq!(phase(&trainer_now), Some(Phase::Verified));
    demo.patch(
        &trainer_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"approval": {"by": "e2e-sre", "fixHash": trainer_hash}}})),
    )
    .await
    .expect("patched");
    let rolled_back = wait_for("rolled back", Duration::from_secs(420), || {
        let demo = demo.clone();
        let name = trainer_name.clone();
        async move {
            let incident = demo.get(&name).await.ok()?;
            let change = incident.status.as_ref()?.changes.first()?.clone();
            (change.status == aegis_core::change::ChangeStatus::RolledBack).then_some(incident)
        }
    })
    .await;
    let path: Vec<Phase> = rolled_back
        .status
        .as_ref()
        .map(|s| s.history.iter().map(|t| t.to).collect())
        .unwrap_or_default();
    assert!(path.contains(&Phase::RolledBack), "{path:?}");
    // The same fix again would oscillate, and a fix computed while the rollback settles is
    // not to be trusted to a shadow alone: a human decides, and the spent approval does not
    // approve it a second time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled_trainer = demo.get(&trainer_name).await.expect("read");
    assert_eq!(
        phase(&settled_trainer),
        Some(Phase::Escalated),
        "{:?}",
        settled_trainer.status.as_ref().map(|s| &s.history)
    );
    assert_eq!(
        settled_trainer.status.as_ref().map(|s| s.changes.len()),
        Some(1),
        "one change, undone; no second attempt"
    );
    let change = rolled_back
        .status
        .as_ref()
        .and_then(|s| s.changes.first().cloned())
        .expect("the audit record");
    assert_eq!(change.status, aegis_core::change::ChangeStatus::RolledBack);
    assert_eq!(
        audited_writes(&cluster.audit_log(), "deployments", "ml-trainer").len(),
        2,
        "the fix written once and undone once"
    );
    let seen = serde_json::to_string(&change.evidence_seen).expect("serializes");
    assert!(
        seen.contains("FailedScheduling") || seen.contains("Insufficient memory"),
        "{seen}"
    );

    // Metrics from the leader, which verified and changed what it did.
    let leading = replicas
        .iter()
        .find(|r| r.identity == leader)
        .expect("the leader");
    let (code, metrics) = leading.get("/metrics");
    assert_eq!(code, 200);
    for name in [
        "aegis_incidents{",
        "aegis_reconcile_duration_seconds_bucket",
        "aegis_shadow_verdicts_total{",
        "aegis_leader 1",
        "aegis_production_changes_total{",
        "aegis_production_rollbacks_total 1",
        "aegis_cached_objects{",
        "aegis_time_to_diagnosis_seconds_bucket",
        "aegis_time_to_verdict_seconds_bucket{verdict=\"successful\"",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics:\n{metrics}");
    }
    // The scrape passes Prometheus's own linter.
    let promtool = aegis_e2e::binaries::PROMTOOL
        .ensure()
        .expect("promtool builds");
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    std::io::Write::write_all(&mut check.stdin.take().expect("stdin"), metrics.as_bytes())
        .expect("scrape written");
    let checked = check.wait_with_output().expect("promtool ends");
    assert!(
        checked.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The API server restarted: the operator recovers with every Incident, none duplicated.
    // (Resolved ones are left out: the retention may delete one meanwhile.)
    let names = |all: &[IncidentResource]| -> BTreeMap<String, (String, String)> {
        all.iter()
            .filter(|i| phase(i) != Some(Phase::Resolved))
            .map(|i| {
                (
                    i.metadata.name.clone().unwrap_or_default(),
                    (i.spec.workload.to_string(), i.spec.category.id().to_owned()),
                )
            })
            .collect()
    };
    let before_restart = names(&incidents(&api).await);
    let restarted = Instant::now();
    let restart_from = k8s_openapi::jiff::Timestamp::now();
    cluster
        .restart_api_server(&binaries)
        .await
        .expect("the API server restarts");
    eprintln!(
        "API server restarted in {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    // A leader that could not renew in time stopped, as it must; its Deployment would start
    // it again, and so does this test.
    for replica in &mut replicas {
        if let Ok(Some(exit)) = replica.child.try_wait() {
            eprintln!("{} stopped ({exit}) during the restart", replica.identity);
            assert!(
                replica.log().contains("lease"),
                "a replica stops only for its lease:\n{}",
                replica.log()
            );
            let identity = format!("{}-again", replica.identity);
            *replica = start(&identity);
        }
    }
    let leader = wait_for(
        "a leader after the restart",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let identities: Vec<String> = replicas.iter().map(|r| r.identity.clone()).collect();
            async move {
                holder(&client)
                    .await
                    .filter(|holder| identities.contains(holder))
            }
        },
    )
    .await;
    wait_for("the leader acts again", Duration::from_secs(60), || {
        let ready = replicas
            .iter()
            .any(|r| r.identity == leader && r.get("/readyz").1.contains("leader"));
        async move { ready.then_some(()) }
    })
    .await;
    let restart_ended = k8s_openapi::jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // An applied fix's incident may resolve meanwhile (its failure is gone): it is not lost as
    // long as it is still there, resolved. None may be missing, none may be new.
    let all_after = incidents(&api).await;
    let every_after: BTreeMap<String, (String, String)> = all_after
        .iter()
        .map(|i| {
            (
                i.metadata.name.clone().unwrap_or_default(),
                (i.spec.workload.to_string(), i.spec.category.id().to_owned()),
            )
        })
        .collect();
    for (name, what) in &before_restart {
        assert_eq!(
            every_after.get(name),
            Some(what),
            "{name} lost: {every_after:?}"
        );
    }
    let after_restart = names(&all_after);
    for name in after_restart.keys() {
        assert!(
            before_restart.contains_key(name),
            "{name} added: {after_restart:?}"
        );
    }

    // Repaired by hand (after the restart: the watches follow changes again): the storefront
    // Service's selector fixed; its Incident resolves, then
    // goes after the retention (20 s here).
    let storefront = of(&settled, "storefront")[0]
        .metadata
        .name
        .clone()
        .expect("a name");
    kubectl(
        &binaries,
        &cluster,
        &[
            "patch",
            "service/storefront",
            "-n",
            "demo",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"app":"storefront"}}}"#,
        ],
    );
    wait_for("storefront resolved", Duration::from_secs(60), || {
        let demo = demo.clone();
        let storefront = storefront.clone();
        async move {
            let incident = demo.get(&storefront).await.ok()?;
            (phase(&incident) == Some(Phase::Resolved)).then_some(())
        }
    })
    .await;
    wait_for(
        "storefront deleted after its retention",
        Duration::from_secs(90),
        || {
            let demo = demo.clone();
            let storefront = storefront.clone();
            async move {
                demo.get_opt(&storefront)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;

    // `aegis operator status` names the leader and counts incidents.
    let status = Command::new(&binary)
        .args(["operator", "status", "-n", NAMESPACE, "-o", "json"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("AEGIS_LLM__OLLAMA_URL", "http://127.0.0.1:9")
        .output()
        .expect("aegis runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report: Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(report["crd_installed"], true);
    assert_eq!(report["k8sgpt_crd_installed"], true);
    assert_eq!(report["leader"]["identity"], leader.as_str());
    assert_eq!(report["ollama"]["reachable"], false);
    assert!(
        report["incidents_by_phase"]["verified"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );

    // The leader killed: the standby takes over within the lease (6 s here).
    let position = replicas
        .iter()
        .position(|r| r.identity == leader)
        .expect("the leader");
    let killed = Instant::now();
    let mut gone = replicas.remove(position);
    let _ = gone.child.kill();
    let _ = gone.child.wait();
    let standby = replicas[0].identity.clone();
    wait_for("the standby leads", Duration::from_secs(20), || {
        let client = client.clone();
        let standby = standby.clone();
        async move { (holder(&client).await.as_deref() == Some(standby.as_str())).then_some(()) }
    })
    .await;
    let takeover = killed.elapsed().as_secs_f64();
    eprintln!("the standby took over {takeover:.1} s after the leader was killed");
    assert!(
        takeover < 12.0,
        "within the lease and a retry: {takeover:.1} s"
    );
    assert!(
        replicas[0].log().contains("acting (leader)"),
        "{}",
        replicas[0].log()
    );
    wait_for("the new leader's /readyz", Duration::from_secs(10), || {
        let ready = replicas[0].get("/readyz").1.contains("leader");
        async move { ready.then_some(()) }
    })
    .await;
    eprintln!(
        "leader log:\n{}",
        gone.log().lines().take(40).collect::<Vec<_>>().join("\n")
    );

    // Least privilege, proved by use: the whole run above, as the chart's ServiceAccount,
    // was never refused, and read no Secret outside a shadow namespace.
    let requests = audit_events_of(&cluster.audit_log(), OPERATOR_ACCOUNT);
    assert!(requests.len() > 100, "the account's requests are audited");
    // A restarted API server answers before its authorizer has read the RBAC objects again:
    // for a moment after it, what the account may do is refused to it too (and retried).
    let restart_to = restart_ended + k8s_openapi::jiff::SignedDuration::from_secs(10);
    let refused: Vec<String> = requests
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .filter(|e| {
            !e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .is_some_and(|t| restart_from <= t && t <= restart_to)
        })
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(refused.is_empty(), "refused requests: {refused:?}");
    let secrets: Vec<String> = requests
        .iter()
        .filter(|e| e["objectRef"]["resource"] == "secrets")
        .filter(|e| {
            !e["objectRef"]["namespace"]
                .as_str()
                .is_some_and(|ns| ns.starts_with("aegis-shadow-"))
        })
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(
        secrets.is_empty(),
        "Secrets read outside shadows: {secrets:?}"
    );
    let shadow_writes = requests
        .iter()
        .filter(|e| e["verb"] == "patch" || e["verb"] == "create")
        .filter(|e| {
            e["objectRef"]["namespace"]
                .as_str()
                .is_some_and(|ns| ns.starts_with("aegis-shadow-"))
        })
        .count();
    assert!(
        shadow_writes > 0,
        "the shadows were written with the per-shadow grant"
    );
    // And a Secret in a production namespace is refused to it.
    let config = kube::config::Kubeconfig::read_from(&account.kubeconfig).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    let as_operator = kube::Client::try_from(config).expect("a client");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(as_operator.clone(), "demo");
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("a Secret list in demo was not refused: {other:?}"),
    }
    // What RBAC alone would allow it, the chart's admission policy refuses: a namespace that is
    // not a shadow created or deleted, the shadow role bound in a production namespace.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(as_operator.clone());
    let plain: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "not-a-shadow"}})).expect("namespace");
    let refused = |what: &str, result: Result<(), kube::Error>| match result {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains("ValidatingAdmissionPolicy")
                    && (status.message.contains("only shadow namespaces")
                        || status.message.contains("only its shadow role")),
                "{what}: refused by the admission policy: {status:?}"
            );
        }
        other => panic!("{what} was not refused: {other:?}"),
    };
    refused(
        "creating a namespace that is not a shadow",
        namespaces
            .create(&PostParams::default(), &plain)
            .await
            .map(|_| ()),
    );
    refused(
        "deleting namespace demo",
        namespaces
            .delete("demo", &kube::api::DeleteParams::default())
            .await
            .map(|_| ()),
    );
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(as_operator, "demo");
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "aegis-shadow", "namespace": "demo"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aegis-shadow"},
        "subjects": [{"kind": "ServiceAccount", "name": "aegis", "namespace": NAMESPACE}],
    }))
    .expect("binding");
    refused(
        "binding the shadow role in demo",
        bindings
            .create(&PostParams::default(), &binding)
            .await
            .map(|_| ()),
    );
    let admin: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert!(
        admin
            .get_opt("demo")
            .await
            .expect("read")
            .is_some_and(|n| { n.metadata.deletion_timestamp.is_none() })
    );
    assert!(admin.get_opt("not-a-shadow").await.expect("read").is_none());
}
