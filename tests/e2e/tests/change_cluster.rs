//! End-to-end: production changes on a real control plane, through the `aegis` binary as an SRE
//! runs it. The demo incidents are analysed and their fixes verified in shadows; then:
//!
//! - approved fixes are applied, confirmed on real rollouts, and timed (approve → applied);
//! - a fix the shadow proves on one clone but production cannot hold (four trainers on three
//!   nodes) is rolled back automatically, with the scheduler's evidence;
//! - an object changed between verification and apply is refused;
//! - two `aegis incident apply` with separate stores (two machines) make one change;
//! - an apply killed in its confirmation window is finished by the next run;
//! - the API server's audit log shows every write after the change's audit record.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::{Cluster, audited_writes};
use aegis_e2e::demo::{apply_and_wait, kubectl, summary};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// The `aegis` binary on the test cluster, with its own state directory.
struct Aegis {
    binary: PathBuf,
    kubeconfig: PathBuf,
    state: PathBuf,
}

impl Aegis {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = aegis_e2e::aegis_command(&self.binary);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AEGIS_AGENT__STATE_DIR", &self.state)
            .env("AEGIS_AGENT__GRACE_PERIOD_SECONDS", "5")
            .env("AEGIS_LLM__BACKEND", "rules")
            .env("AEGIS_USER", "e2e-sre");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("aegis runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "aegis {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }

    fn record(&self, id: &str) -> Value {
        let path = self.state.join("incidents").join(format!("{id}.json"));
        let text = std::fs::read_to_string(&path).expect("the incident's record");
        serde_json::from_str(&text).expect("a JSON record")
    }
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The id of the incident of `workload` in a report, with its verdict.
fn incident_of(report: &Value, workload: &str) -> (String, String) {
    let incident = report["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["workload"]["name"] == workload)
        .unwrap_or_else(|| panic!("no incident on {workload}: {report:#}"));
    (
        incident["id"].as_str().expect("an id").to_owned(),
        incident["verification"]["result"]["verdict"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// One line of the timing table: the command's wall time, and from the change's record the
/// seconds from its write until its pods were Ready and until it was confirmed.
fn timed<'a>(workload: &'a str, wall: f64, change: &Value) -> (&'a str, f64, Option<f64>, f64) {
    let timing = &change["timing"];
    (
        workload,
        wall,
        timing["pods_ready_seconds"].as_f64(),
        timing["decided_seconds"].as_f64().unwrap_or_default(),
    )
}

/// When the change's audit record was written, from its steps.
fn recorded_at(change: &Value) -> Timestamp {
    change["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| {
            s["what"]
                .as_str()
                .is_some_and(|w| w.starts_with("recorded"))
        })
        .and_then(|s| s["at"].as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no record step: {change:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_changes_are_approved_recorded_confirmed_and_rolled_back_on_a_real_control_plane()
 {
    let binaries = Binaries::ensure().expect("the control plane builds");
    let binary = aegis_e2e::aegis_binary().expect("aegis builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(&binaries, dir.path())
        .await
        .expect("the control plane starts");
    let (_, report) = apply_and_wait(&binaries, &cluster).await;
    eprintln!("incidents: {:?}", summary(&report));
    // Four trainers: one fits a node once its request is fixed, four do not fit three nodes.
    kubectl(
        &binaries,
        &cluster,
        &["scale", "deploy/ml-trainer", "-n", "demo", "--replicas=4"],
    );
    let aegis = Aegis {
        binary,
        kubeconfig: cluster.kubeconfig(),
        state: dir.path().join("state-a"),
    };
    // Every demo incident in `demo`, each fix verified in a shadow on this control plane.
    let analysed = Instant::now();
    let mut report = aegis.json(&["analyze", "--all", "-n", "demo", "-o", "json"]);
    let bare = aegis.json(&["analyze", "pod/demo-nginx", "-n", "default", "-o", "json"]);
    if let (Some(all), Some(more)) = (
        report["incidents"].as_array_mut(),
        bare["incidents"].as_array(),
    ) {
        all.extend(more.iter().cloned());
    }
    eprintln!(
        "analysed and verified in {:.1} s",
        analysed.elapsed().as_secs_f64()
    );
    let audit_log = cluster.audit_log();

    // 1. Approved fixes reach production, are confirmed on real rollouts, and are timed.
    let mut timings = Vec::new();
    for (workload, resource) in [
        ("payments-web", "deployments"),
        ("inventory", "deployments"),
        ("storefront", "services"),
        ("demo-nginx", "pods"),
    ] {
        let (id, verdict) = incident_of(&report, workload);
        assert_eq!(verdict, "successful", "{workload}");
        let started = Instant::now();
        let output = aegis.run(&["incident", "approve", &id, "--apply"]);
        let wall = started.elapsed().as_secs_f64();
        assert!(output.status.success(), "{workload}: {}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("applied: change"),
            "{}",
            text(&output)
        );
        let shown = aegis.json(&["incident", "show", &id, "-o", "json"]);
        assert_eq!(shown["phase"], "applied", "{workload}");
        let change = &shown["audit"][0];
        assert_eq!(change["status"], "confirmed", "{change:#}");
        assert_eq!(change["approver"], "e2e-sre");
        let writes = audited_writes(&audit_log, resource, workload);
        assert_eq!(writes.len(), 1, "{workload}: one write, {writes:?}");
        assert!(
            recorded_at(change) <= writes[0],
            "{workload}: the audit record ({}) precedes the write ({})",
            recorded_at(change),
            writes[0]
        );
        timings.push(timed(workload, wall, change));
    }

    // 2. Proved on one clone, too big for production: rolled back with the scheduler's word.
    let (id, verdict) = incident_of(&report, "ml-trainer");
    assert_eq!(verdict, "successful");
    let output = aegis.run(&["incident", "approve", &id, "--apply"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("regressed production and was rolled back"),
        "{}",
        text(&output)
    );
    let shown = aegis.json(&["incident", "show", &id, "-o", "json"]);
    assert_eq!(shown["phase"], "rolled-back");
    let change = &shown["audit"][0];
    assert_eq!(change["status"], "rolled-back");
    let seen = change["evidence_seen"].to_string();
    assert!(
        seen.contains("FailedScheduling") || seen.contains("Insufficient memory"),
        "{change:#}"
    );
    let restored = Command::new(binaries.path("kubectl"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["get", "deploy/ml-trainer", "-n", "demo", "-o", "json"])
        .output()
        .expect("kubectl runs");
    let restored: Value = serde_json::from_slice(&restored.stdout).expect("json");
    assert_eq!(
        restored
            .pointer("/spec/template/spec/containers/0/resources/requests/memory")
            .and_then(Value::as_str),
        Some("24Gi"),
        "the inverse patch restored the request"
    );
    assert_eq!(
        audited_writes(&audit_log, "deployments", "ml-trainer").len(),
        2
    );

    // 3. Changed between verification and apply: refused, nothing written.
    let (id, _) = incident_of(&report, "report-worker");
    let approved = aegis.run(&["incident", "approve", &id]);
    assert!(approved.status.success(), "{}", text(&approved));
    kubectl(
        &binaries,
        &cluster,
        &[
            "set",
            "env",
            "deploy/report-worker",
            "-n",
            "demo",
            "REPORT_FORMAT=pdf",
        ],
    );
    let output = aegis.run(&["incident", "apply", &id]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("changed since the fix was verified"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: analyze the workload again"),
        "{stderr}"
    );
    assert!(aegis.record(&id)["changes"].is_null());

    // 4. Two machines (two stores) apply the same approved fix at once: one change.
    let (id, verdict) = incident_of(&report, "catalog");
    assert_eq!(verdict, "successful");
    let approved = aegis.run(&["incident", "approve", &id]);
    assert!(approved.status.success(), "{}", text(&approved));
    let other = Aegis {
        binary: aegis.binary.clone(),
        kubeconfig: aegis.kubeconfig.clone(),
        state: dir.path().join("state-b"),
    };
    std::fs::create_dir_all(other.state.join("incidents")).expect("a second store");
    std::fs::copy(
        aegis.state.join("incidents").join(format!("{id}.json")),
        other.state.join("incidents").join(format!("{id}.json")),
    )
    .expect("the record is copied");
    let spawn = |who: &Aegis| {
        who.command(&["incident", "apply", &id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("aegis starts")
    };
    let raced = Instant::now();
    let (first, second) = (spawn(&aegis), spawn(&other));
    let outcomes = [
        first.wait_with_output().expect("finishes"),
        second.wait_with_output().expect("finishes"),
    ];
    let succeeded = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        succeeded,
        1,
        "{}\n{}",
        text(&outcomes[0]),
        text(&outcomes[1])
    );
    let loser = outcomes
        .iter()
        .find(|o| !o.status.success())
        .expect("one lost");
    assert!(
        String::from_utf8_lossy(&loser.stderr).contains("changed since the fix was verified"),
        "{}",
        text(loser)
    );
    assert_eq!(
        audited_writes(&audit_log, "deployments", "catalog").len(),
        1
    );
    let winner = if outcomes[0].status.success() {
        &aegis
    } else {
        &other
    };
    timings.push(timed(
        "catalog (raced)",
        raced.elapsed().as_secs_f64(),
        &winner.record(&id)["changes"][0],
    ));

    // 5. Killed in the confirmation window: the next run finishes the change.
    let (id, verdict) = incident_of(&report, "orders-api");
    assert_eq!(verdict, "successful");
    let approved = aegis.run(&["incident", "approve", &id]);
    assert!(approved.status.success(), "{}", text(&approved));
    let mut child = aegis
        .command(&["incident", "apply", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aegis starts");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = aegis.record(&id);
        if record["changes"][0]["status"] == "confirming" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change never reached its confirmation window: {record:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("killed");
    child.wait().expect("reaped");
    let left = aegis.record(&id);
    assert_eq!(left["changes"][0]["status"], "confirming");
    assert_eq!(left["changes"][0]["owner"]["pid"], pid);
    let resumed = Instant::now();
    let output = aegis.run(&["incident", "apply", &id]);
    assert!(output.status.success(), "{}", text(&output));
    let finished = aegis.json(&["incident", "show", &id, "-o", "json"]);
    timings.push(timed(
        "orders-api (resumed)",
        resumed.elapsed().as_secs_f64(),
        &finished["audit"][0],
    ));
    assert_eq!(finished["phase"], "applied");
    let change = &finished["audit"][0];
    assert_eq!(change["status"], "confirmed", "{change:#}");
    assert!(
        change["steps"].to_string().contains("resumed by process"),
        "{change:#}"
    );
    assert_eq!(
        audited_writes(&audit_log, "deployments", "orders-api").len(),
        1
    );

    // The measurement: approve → applied per incident, and AEGIS's part beyond the rollout.
    eprintln!("approve --apply to applied on the local control plane:");
    eprintln!("  workload              wall    pods ready  confirmed  overhead beyond the rollout");
    for (workload, wall, ready, decided) in &timings {
        let overhead = ready.map(|r| decided - r);
        eprintln!(
            "  {workload:<20} {wall:>5.1} s  {:>8}  {decided:>7.1} s  {}",
            ready.map_or_else(|| "-".to_owned(), |r| format!("{r:.1} s")),
            overhead.map_or_else(|| "-".to_owned(), |o| format!("{o:.1} s"))
        );
    }
}
