//! Integration tests that run the `aegis` binary: the demo scenarios in `--mock`, snapshots,
//! configuration, the incident store, and bad input of every kind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A sandbox for one test: its own home, config, state and working directory, and an Ollama
/// address where nothing listens (unless a test points it elsewhere).
struct Sandbox {
    dir: tempfile::TempDir,
    ollama: String,
}

impl Sandbox {
    fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            ollama: format!("http://127.0.0.1:{port}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aegis"));
        command.args(args).current_dir(self.path());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("AEGIS_")
                || key == "KUBECONFIG"
                || key == "NO_COLOR"
                || key == "OLLAMA_HOST"
            {
                command.env_remove(&key);
            }
        }
        command
            .env("OLLAMA_HOST", &self.ollama)
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_DATA_HOME", self.path().join("data"));
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("aegis runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON: {e}"))
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn assert_clean_failure(output: &Output, code: i32, needles: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {text}");
    assert!(!text.contains("panicked"), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "expected `{needle}` in: {text}");
    }
    assert!(
        output.stdout.is_empty(),
        "stdout carries data only: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn every_demo_scenario_is_diagnosed_with_a_policy_allowed_fix_on_its_workload() {
    let sandbox = Sandbox::new();
    let cases = [
        ("deploy/orders-api", "demo", "missing-env-var", "Deployment"),
        ("deploy/report-worker", "demo", "oom-killed", "Deployment"),
        (
            "deploy/payments-web",
            "demo",
            "image-not-found",
            "Deployment",
        ),
        (
            "deploy/inventory",
            "demo",
            "liveness-probe-failure",
            "Deployment",
        ),
        (
            "deploy/catalog",
            "demo",
            "readiness-probe-failure",
            "Deployment",
        ),
        (
            "deploy/ml-trainer",
            "demo",
            "insufficient-resources",
            "Deployment",
        ),
        (
            "svc/storefront",
            "demo",
            "service-selector-mismatch",
            "Service",
        ),
        ("pod/demo-nginx", "default", "image-not-found", "Pod"),
        (
            "deployment/api-gateway",
            "production",
            "missing-config-ref",
            "Deployment",
        ),
    ];
    for (target, namespace, category, fix_kind) in cases {
        let report = sandbox.json(&["analyze", target, "-n", namespace, "--mock", "-o", "json"]);
        assert_eq!(report["source"], "mock");
        let incidents = report["incidents"].as_array().expect("incidents");
        assert_eq!(incidents.len(), 1, "{target}: {report}");
        let incident = &incidents[0];
        assert_eq!(incident["rca"]["category"], category, "{target}");
        assert_eq!(incident["rca"]["backend"], "rules");
        assert!(
            incident["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("inc-") && id.len() == 12)
        );
        let fix = &incident["fix"];
        assert_eq!(fix["policy"]["allowed"], true, "{target}: {fix}");
        assert_eq!(fix["target"]["kind"], fix_kind, "{target}");
        assert_eq!(
            fix["target"], incident["workload"],
            "{target}: the fix targets the owning workload"
        );
        assert_eq!(fix["patch_type"], "strategic-merge");
        assert_eq!(fix["requires_approval"], true);
        assert!(
            !incident["rca"]["evidence"]
                .as_array()
                .expect("evidence")
                .is_empty()
        );
        let result = &incident["verification"]["result"];
        assert_eq!(
            result["verdict"], "successful",
            "{target}: {}",
            result["reason"]
        );
        assert_eq!(result["baseline"]["reproduced"], true, "{target}");
        assert!(
            result["shadow"]
                .as_str()
                .is_some_and(|s| s.starts_with("aegis-shadow-")),
            "{target}"
        );
    }
}

#[test]
fn analyze_all_reports_every_demo_incident_and_yaml_is_the_same_document() {
    let sandbox = Sandbox::new();
    let json = sandbox.json(&["analyze", "--all", "--mock", "-o", "json"]);
    let incidents = json["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 9);
    assert!(
        incidents
            .iter()
            .all(|i| i["fix"]["policy"]["allowed"] == true)
    );
    let yaml = sandbox.run(&["analyze", "--all", "--mock", "-o", "yaml"]);
    assert!(yaml.status.success());
    let from_yaml: Value = serde_yaml::from_slice(&yaml.stdout).expect("yaml parses");
    assert_eq!(from_yaml, json);
}

#[test]
fn a_kubectl_dump_with_logs_is_analyzed_and_bad_files_are_reported() {
    let sandbox = Sandbox::new();
    let dump = fixture("kubectl-dump");
    let output = sandbox.run(&[
        "analyze",
        "--all",
        "--snapshot",
        dump.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("broken.yaml"),
        "the bad file is named: {}",
        stderr(&output)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["source"], "snapshot");
    let incidents = report["incidents"].as_array().expect("incidents");
    let checkout = incidents
        .iter()
        .find(|i| i["workload"]["name"] == "checkout")
        .expect("checkout incident");
    assert_eq!(checkout["rca"]["category"], "missing-env-var");
    assert_eq!(
        checkout["fix"]["patch"]["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]
            ["secretKeyRef"]["name"],
        "checkout-secrets"
    );
    assert!(
        checkout["rca"]["evidence"]
            .as_array()
            .expect("evidence")
            .iter()
            .any(|e| e["excerpt"] == "KeyError: 'STRIPE_API_KEY'")
    );
    let job = incidents
        .iter()
        .find(|i| i["workload"]["name"] == "nightly-export")
        .expect("job incident");
    assert_eq!(job["rca"]["category"], "job-failed");
    assert!(
        job["fix"].is_null(),
        "a failed job without a known cause is escalated"
    );
    assert!(
        incidents.iter().all(|i| i["workload"]["kind"] != "Node"),
        "a Node Problem Detector condition is not an incident"
    );
}

#[test]
fn a_captured_snapshot_gives_the_same_analysis_as_its_source() {
    let sandbox = Sandbox::new();
    let capture = sandbox.run(&["snapshot", "capture", "dump", "--mock"]);
    assert!(capture.status.success(), "{}", stderr(&capture));
    let from_mock = sandbox.json(&["analyze", "--all", "--mock", "--no-verify", "-o", "json"]);
    let from_snapshot = sandbox.json(&[
        "analyze",
        "--all",
        "--snapshot",
        "dump",
        "--no-verify",
        "-o",
        "json",
    ]);
    assert_eq!(from_snapshot["incidents"], from_mock["incidents"]);
    // Without --no-verify a snapshot says why it cannot verify anything.
    let verified = sandbox.json(&["analyze", "--all", "--snapshot", "dump", "-o", "json"]);
    for incident in verified["incidents"].as_array().expect("incidents") {
        let result = &incident["verification"]["result"];
        assert_eq!(result["verdict"], "skipped");
        if !incident["fix"].is_null() {
            assert!(
                result["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("snapshot is read-only")),
                "{result}"
            );
        }
    }
    let again = sandbox.run(&["snapshot", "capture", "dump", "--mock"]);
    assert_clean_failure(&again, 1, &["dump exists and is not empty"]);
}

#[test]
fn bad_input_gets_a_clear_error_and_the_right_exit_code() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path().join("garbage.yaml"), "- just\n- a list\n").expect("write");
    std::fs::write(
        sandbox.path().join("unreachable.kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .expect("write");
    std::fs::write(
        sandbox.path().join("bad.toml"),
        "[agent]\nconfidence_threshold = \"high\"\n",
    )
    .expect("write");
    let cases: [(&[&str], i32, &[&str]); 11] = [
        (
            &["analyze", "demo-nginx", "--mock"],
            2,
            &["not of the form KIND/NAME"],
        ),
        (
            &["analyze", "widget/x", "--mock"],
            2,
            &["names no resource kind"],
        ),
        (&["analyze", "--mock"], 2, &["KIND/NAME"]),
        (
            &["analyze", "pod/x", "--all", "--mock"],
            2,
            &["cannot be used with"],
        ),
        (
            &["analyze", "pod/nope", "--mock"],
            1,
            &["Pod \"nope\" not found in namespace \"default\"", "hint:"],
        ),
        (
            &["analyze", "--all", "--snapshot", "missing-dir"],
            1,
            &["cannot read snapshot missing-dir", "hint:"],
        ),
        (
            &["analyze", "--all", "--snapshot", "garbage.yaml"],
            1,
            &["garbage.yaml", "sequence"],
        ),
        (
            &["analyze", "--all", "--kubeconfig", "unreachable.kubeconfig"],
            1,
            &["unreachable", "127.0.0.1:9", "hint:"],
        ),
        (
            &["analyze", "--all", "--kubeconfig", "no-such.kubeconfig"],
            1,
            &["kubeconfig", "no-such.kubeconfig"],
        ),
        (
            &["analyze", "--all", "--mock", "--config", "bad.toml"],
            1,
            &["invalid configuration", "confidence_threshold"],
        ),
        (
            &["analyze", "--all", "--mock", "--filter", "Widget"],
            2,
            &["not an analyzer"],
        ),
    ];
    for (args, code, needles) in cases {
        let output = sandbox.run(args);
        assert_clean_failure(&output, code, needles);
    }
}

/// An analysis of one demo workload, as JSON.
const ANALYZE_ORDERS_API: [&str; 7] = [
    "analyze",
    "deploy/orders-api",
    "-n",
    "demo",
    "--mock",
    "-o",
    "json",
];

#[test]
fn k8sgpt_s_report_joins_the_analysis_and_a_bad_one_is_refused() {
    let sandbox = Sandbox::new();
    // The real K8sGPT's report of the demo incidents on the local control plane: its findings
    // join the rules' diagnoses of the same workloads instead of making incidents of their own.
    let report = fixture("k8sgpt/demo-analyze.json");
    let report = report.to_str().expect("UTF-8");
    let alone = sandbox.json(&["analyze", "--all", "--mock", "--no-verify", "-o", "json"]);
    let joined = sandbox.json(&[
        "analyze",
        "--all",
        "--mock",
        "--no-verify",
        "--k8sgpt",
        report,
        "-o",
        "json",
    ]);
    let categories = |report: &Value, workload: &str| -> Vec<String> {
        report["incidents"]
            .as_array()
            .expect("incidents")
            .iter()
            .filter(|i| i["workload"]["name"] == workload && i["workload"]["kind"] == "Deployment")
            .map(|i| i["rca"]["category"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    for workload in [
        "orders-api",
        "report-worker",
        "ml-trainer",
        "catalog",
        "inventory",
    ] {
        assert_eq!(
            categories(&joined, workload),
            categories(&alone, workload),
            "{workload}: one incident, the rules' diagnosis"
        );
        let incident = joined["incidents"]
            .as_array()
            .expect("incidents")
            .iter()
            .find(|i| i["workload"]["name"] == workload && i["workload"]["kind"] == "Deployment")
            .expect("the incident");
        assert!(
            incident["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .any(|f| f["analyzer"] == "K8sGPT"),
            "{workload}: K8sGPT's finding is among its findings"
        );
    }

    // A result of a kind AEGIS does not read is said, not dropped in silence.
    let unknown = sandbox.path().join("olm.json");
    std::fs::write(
        &unknown,
        r#"{"status": "ProblemDetected", "problems": 1, "results": [{"kind": "ClusterServiceVersion", "name": "olm/db-operator", "error": [{"Text": "install failed"}], "parentObject": ""}]}"#,
    )
    .expect("write");
    let output = sandbox.run(&[
        "analyze",
        "--all",
        "--mock",
        "--no-verify",
        "--k8sgpt",
        unknown.to_str().expect("UTF-8"),
        "-o",
        "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("K8sGPT's result for ClusterServiceVersion olm/db-operator is not used"),
        "{}",
        stderr(&output)
    );

    std::fs::write(sandbox.path().join("garbage.json"), "- not json\n").expect("write");
    assert_clean_failure(
        &sandbox.run(&["analyze", "--all", "--mock", "--k8sgpt", "garbage.json"]),
        2,
        &[
            "--k8sgpt garbage.json is not K8sGPT's JSON report",
            "k8sgpt analyze -o json",
        ],
    );
    assert_clean_failure(
        &sandbox.run(&["analyze", "--all", "--mock", "--k8sgpt", "missing.json"]),
        2,
        &["cannot read --k8sgpt missing.json"],
    );
}

#[test]
fn analyses_are_recorded_and_incidents_can_be_listed_and_shown() {
    let sandbox = Sandbox::new();
    let empty = sandbox.json(&["incident", "list", "-o", "json"]);
    assert_eq!(empty["incidents"], Value::Array(Vec::new()));
    let report = sandbox.json(&ANALYZE_ORDERS_API);
    let id = report["incidents"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    sandbox.json(&ANALYZE_ORDERS_API);
    let list = sandbox.json(&["incident", "list", "-o", "json"]);
    let listed = list["incidents"].as_array().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["incident"]["id"], id.as_str());
    assert_eq!(listed[0]["times_seen"], 2);
    assert!(
        sandbox
            .path()
            .join("state/aegis/incidents")
            .join(format!("{id}.json"))
            .is_file()
    );
    // SPEC §4: the incident as `analyze` printed it, plus its phase and history.
    let shown = sandbox.json(&["incident", "show", &id[..8], "-o", "json"]);
    let incident = report["incidents"][0].as_object().expect("an incident");
    for (key, value) in incident {
        assert_eq!(&shown[key], value, "{key}");
    }
    assert_eq!(shown["phase"], "verified");
    assert!(shown["history"].as_array().is_some_and(|h| !h.is_empty()));
    assert_eq!(shown["audit"], Value::Array(Vec::new()));
    let missing = sandbox.run(&["incident", "show", "inc-00000000"]);
    assert_clean_failure(&missing, 1, &["no incident inc-00000000", "hint:"]);
}

#[test]
fn a_verified_fix_can_be_approved_or_rejected_once_and_an_unverified_one_not_at_all() {
    let sandbox = Sandbox::new();
    // Analyzed without a shadow: the fix is only diagnosed.
    let mut unverified = ANALYZE_ORDERS_API.to_vec();
    unverified.push("--no-verify");
    let report = sandbox.json(&unverified);
    let id = report["incidents"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let refused = sandbox.run(&["incident", "approve", &id]);
    assert_clean_failure(
        &refused,
        1,
        &[
            "cannot approve",
            "verify the fix in a shadow first",
            "deployment/orders-api -n demo",
        ],
    );
    // Verified in a shadow (the default): a human may approve it, once.
    sandbox.json(&ANALYZE_ORDERS_API);
    let approved = sandbox
        .command(&["incident", "approve", &id, "-o", "json"])
        .env("AEGIS_USER", "alice")
        .output()
        .expect("runs");
    assert!(approved.status.success(), "{}", stderr(&approved));
    let approved: Value = serde_json::from_slice(&approved.stdout).expect("json");
    assert_eq!(approved["phase"], "approved");
    let last = approved["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("history");
    assert_eq!(
        (last["from"].as_str(), last["by"].as_str()),
        (Some("verified"), Some("alice"))
    );
    let again = sandbox.run(&["incident", "approve", &id]);
    assert_clean_failure(&again, 1, &["cannot approve", "the decision is made"]);
    // The approval stands when the same fix is seen again; a rejection needs a reason.
    sandbox.json(&ANALYZE_ORDERS_API);
    let shown = sandbox.json(&["incident", "show", &id, "-o", "json"]);
    assert_eq!(shown["phase"], "approved");
    let empty = sandbox.run(&["incident", "reject", &id, "--reason", " "]);
    assert_clean_failure(&empty, 2, &["--reason is empty", "hint:"]);
    let rejected = sandbox.json(&[
        "incident",
        "reject",
        &id,
        "--reason",
        "wrong database",
        "-o",
        "json",
    ]);
    assert_eq!(rejected["phase"], "rejected");
}

#[test]
fn on_the_mock_world_an_approved_fix_is_applied_confirmed_and_kept_between_commands() {
    let sandbox = Sandbox::new();
    let report = sandbox.json(&ANALYZE_ORDERS_API);
    let id = report["incidents"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let refused = sandbox.run(&["incident", "apply", &id, "--mock"]);
    assert_clean_failure(
        &refused,
        1,
        &["is not approved", &format!("aegis incident approve {id}")],
    );
    let snapshot = sandbox.run(&["incident", "apply", &id, "--snapshot", "."]);
    assert_clean_failure(&snapshot, 2, &["snapshot is read-only", "hint:"]);
    let applied = sandbox
        .command(&["incident", "approve", &id, "--apply", "--mock"])
        .env("AEGIS_USER", "alice")
        .output()
        .expect("runs");
    assert!(applied.status.success(), "{}", stderr(&applied));
    let text = String::from_utf8_lossy(&applied.stdout);
    assert!(
        text.contains(&format!("{id} applied: change chg-")) && text.contains("confirmed"),
        "{text}"
    );
    // The demo world keeps the change: the next command finds the workload healed.
    let after = sandbox.json(&[
        "analyze",
        "--all",
        "-n",
        "demo",
        "--mock",
        "--no-verify",
        "-o",
        "json",
    ]);
    let incidents = after["incidents"].as_array().expect("incidents");
    assert!(!incidents.is_empty());
    assert!(
        !incidents
            .iter()
            .any(|i| i["workload"]["name"] == "orders-api"),
        "{after:#}"
    );
    let shown = sandbox.json(&["incident", "show", &id, "-o", "json"]);
    assert_eq!(shown["phase"], "applied");
    let audit = &shown["audit"][0];
    assert_eq!(audit["status"], "confirmed");
    assert_eq!(audit["approver"], "alice");
    assert_eq!(audit["verdict"], "successful");
    assert!(audit["inverse_patch"].is_object(), "{audit:#}");
    let steps: Vec<&str> = audit["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["what"].as_str())
        .collect();
    let recorded = steps.iter().position(|s| s.starts_with("recorded"));
    let patched = steps.iter().position(|s| s.starts_with("patched"));
    assert!(recorded.is_some() && recorded < patched, "{steps:?}");
    let table = sandbox.run(&["incident", "show", &id]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("inverse patch:"),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );
    let again = sandbox.run(&["incident", "apply", &id, "--mock"]);
    assert_clean_failure(&again, 1, &["already applied", "rollback"]);
    // Rolled back by hand: the previous spec is back, recorded as a second change.
    let rolled = sandbox.run(&["incident", "rollback", &id, "--mock", "--reason", "drill"]);
    assert!(rolled.status.success(), "{}", stderr(&rolled));
    assert!(String::from_utf8_lossy(&rolled.stdout).contains("rolled back"));
    let shown = sandbox.json(&["incident", "show", &id, "-o", "json"]);
    assert_eq!(shown["phase"], "rolled-back", "{:#}", shown["history"]);
    assert_eq!(shown["audit"][1]["kind"], "rollback");
    assert_eq!(shown["audit"][1]["status"], "made");
    assert_eq!(
        shown["audit"][1]["inverse_patch"], shown["audit"][0]["patch"],
        "a rollback's inverse is the fix"
    );
    let twice = sandbox.run(&["incident", "rollback", &id, "--mock"]);
    assert_clean_failure(&twice, 1, &["nothing in production to roll back"]);
}

#[test]
fn aegis_variables_that_are_not_section_keys_are_ignored_and_typos_in_keys_are_named() {
    let sandbox = Sandbox::new();
    let output = sandbox
        .command(&["config", "show", "-o", "json"])
        .env("AEGIS_BIN", "/usr/local/bin/aegis")
        .env("AEGIS_VERSION", "0.1.0")
        .env("AEGIS_AGENT__CONFIDENCE_THRESHOLD", "0.75")
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: Value = serde_json::from_slice(&output.stdout).expect("json");
    let threshold = shown["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|e| e["key"] == "agent.confidence_threshold")
        .cloned()
        .expect("threshold");
    assert_eq!(threshold["value"], 0.75);

    let output = sandbox
        .command(&["analyze", "pod/demo-nginx", "--mock"])
        .env("AEGIS_AGENT__CONFIDENCE_TRESHOLD", "0.75")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("confidence_treshold"), "{message}");
    assert!(message.contains("unknown field"), "{message}");
}

#[test]
fn configuration_layers_say_where_each_value_came_from() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.path().join("aegis.toml"),
        "[shadow]\nttl_minutes = 45\n",
    )
    .expect("write");
    let output = sandbox
        .command(&["config", "show", "-o", "json", "-n", "prod"])
        .env("AEGIS_AGENT__CONFIDENCE_THRESHOLD", "0.8")
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: Value = serde_json::from_slice(&output.stdout).expect("json");
    let entry = |key: &str| {
        shown["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|e| e["key"] == key)
            .cloned()
            .expect(key)
    };
    assert_eq!(entry("agent.confidence_threshold")["value"], 0.8);
    assert!(
        entry("agent.confidence_threshold")["source"]
            .as_str()
            .expect("source")
            .contains("environment variable")
    );
    assert_eq!(entry("shadow.ttl_minutes")["value"], 45);
    assert!(
        entry("shadow.ttl_minutes")["source"]
            .as_str()
            .expect("source")
            .contains("aegis.toml")
    );
    assert_eq!(entry("kubernetes.namespace")["value"], "prod");
    assert_eq!(entry("kubernetes.namespace")["source"], "command-line flag");
    assert_eq!(
        entry("llm.connect_timeout_ms")["source"],
        "built-in default"
    );

    let init = sandbox.run(&["config", "init", "written.toml"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let written = sandbox.run(&["config", "show", "--config", "written.toml"]);
    assert!(
        written.status.success(),
        "the written template is valid: {}",
        stderr(&written)
    );
    assert_clean_failure(
        &sandbox.run(&["config", "init", "written.toml"]),
        1,
        &["already exists", "--force"],
    );
    let paths = sandbox.json(&["config", "path", "-o", "json"]);
    let layers: Vec<&str> = paths["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["layer"].as_str())
        .collect();
    assert_eq!(layers, ["system", "user", "working directory"]);
}

#[test]
fn version_and_completions_work() {
    let sandbox = Sandbox::new();
    let version = sandbox.json(&["version", "-o", "json"]);
    assert_eq!(version["aegis_version"], env!("CARGO_PKG_VERSION"));
    let completions = sandbox.run(&["completions", "bash"]);
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("analyze"));
}

#[test]
fn human_output_is_plain_when_not_a_terminal() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["analyze", "pod/demo-nginx", "--mock"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes when stdout is a pipe"
    );
    insta::assert_snapshot!("analyze_demo_nginx_table", text);
}

#[test]
fn the_json_report_keeps_its_contract() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&ANALYZE_ORDERS_API);
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!(
        "analyze_orders_api_json",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn without_a_reachable_ollama_auto_falls_back_to_the_rules_with_a_notice_and_ollama_fails() {
    let sandbox = Sandbox::new();
    let auto = sandbox.run(&["analyze", "pod/demo-nginx", "--mock", "-o", "json"]);
    assert!(auto.status.success(), "{}", stderr(&auto));
    let notice = stderr(&auto);
    assert_eq!(notice.lines().count(), 1, "{notice}");
    assert!(
        notice.starts_with("notice: Ollama is not reachable at http://127.0.0.1:")
            && notice.contains("using the rules engine alone"),
        "{notice}"
    );
    let report: Value = serde_json::from_slice(&auto.stdout).expect("JSON");
    assert_eq!(report["incidents"][0]["rca"]["backend"], "rules");
    assert!(report["incidents"][0]["rca"].get("llm").is_none());

    let rules = sandbox.run(&["analyze", "pod/demo-nginx", "--mock", "--llm", "rules"]);
    assert!(rules.status.success());
    assert_eq!(
        stderr(&rules),
        "",
        "no notice when the rules were asked for"
    );

    let ollama = sandbox.run(&["analyze", "pod/demo-nginx", "--mock", "--llm", "ollama"]);
    assert_eq!(ollama.status.code(), Some(1));
    let error = stderr(&ollama);
    assert!(
        error.contains("error: Ollama is not reachable at"),
        "{error}"
    );
    assert!(error.contains("hint: start Ollama"), "{error}");
    assert!(ollama.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ollama_every_incident_carries_the_llm_opinion_and_bad_answers_are_reported() {
    use aegis_llm::mock_server::{MockOllama, Script};
    // Every answer wraps its JSON in prose: each is rejected and the rules' results stand.
    let prose = Script::Answer(
        "Sure! {\"category\": \"unknown\", \"summary\": \"s\", \"root_cause\": \"r\", \"confidence\": 0.5, \"evidence\": [\"E1\"], \"fix\": null}"
            .to_owned(),
    );
    let server = MockOllama::start(&["smollm2:135m"], vec![prose; 9])
        .await
        .expect("server");
    let mut sandbox = Sandbox::new();
    sandbox.ollama = server.url();
    let prompts = sandbox.path().join("prompts.jsonl");
    let output = sandbox
        .command(&[
            "analyze", "--all", "--mock", "--llm", "ollama", "-o", "json",
        ])
        .env("AEGIS_LLM__PROMPT_LOG", &prompts)
        .output()
        .expect("aegis runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let incidents = report["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 9);
    for incident in incidents {
        let llm = &incident["rca"]["llm"];
        assert_eq!(llm["verdict"], "rejected", "{llm}");
        assert_eq!(llm["backend"], "ollama:smollm2:135m");
        assert!(
            llm["reasons"][0]
                .as_str()
                .expect("a reason")
                .contains("prose")
        );
        assert_eq!(incident["rca"]["backend"], "rules");
    }
    assert!(
        stderr(&output).contains("9 of 9 LLM answers were rejected or failed"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.requests().len(), 9);
    let logged = std::fs::read_to_string(&prompts).expect("the prompt log");
    assert_eq!(logged.lines().count(), 9);
    let first: Value = serde_json::from_str(logged.lines().next().expect("a line")).expect("JSON");
    assert_eq!(
        first["user"],
        server.requests()[0]["messages"][1]["content"],
        "the log holds what was sent"
    );

    // The table shows the LLM's part.
    server.push(vec![Script::Answer("not json".to_owned())]);
    let table = sandbox.run(&["analyze", "pod/demo-nginx", "--mock", "--llm", "ollama"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("LLM") && text.contains("answer rejected"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_is_named_with_the_way_out() {
    let server = aegis_llm::mock_server::MockOllama::start(&["llama3:8b"], vec![])
        .await
        .expect("server");
    let mut sandbox = Sandbox::new();
    sandbox.ollama = server.url();
    let output = sandbox.run(&["analyze", "pod/demo-nginx", "--mock", "--llm", "ollama"]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains("model `smollm2:135m` is not available"),
        "{error}"
    );
    assert!(
        error.contains("hint: create or pull it (`ollama pull smollm2:135m`)"),
        "{error}"
    );
    let auto = sandbox.run(&["analyze", "pod/demo-nginx", "--mock"]);
    assert!(auto.status.success());
    assert!(stderr(&auto).starts_with("notice: model `smollm2:135m` is not available"));
}

#[test]
fn shadow_commands_verify_by_hand_and_refuse_what_they_cannot_do() {
    let sandbox = Sandbox::new();
    let created = sandbox.json(&[
        "shadow",
        "create",
        "deploy/orders-api",
        "-n",
        "demo",
        "--mock",
        "--wait",
        "-o",
        "json",
    ]);
    assert_eq!(created["verdict"], "successful", "{created}");
    assert_eq!(created["baseline"]["reproduced"], true);
    assert!(created["checks"].as_array().is_some_and(|c| !c.is_empty()));
    // A fix from a file: a wrong image tag fails; a privileged container is refused by policy.
    let wrong = sandbox.path().join("wrong.yaml");
    std::fs::write(
        &wrong,
        "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:0.0.0-missing\n",
    )
    .expect("write");
    let failed = sandbox.json(&[
        "shadow",
        "create",
        "deploy/payments-web",
        "-n",
        "demo",
        "--mock",
        "--wait",
        "--fix",
        wrong.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert_eq!(failed["verdict"], "failed", "{failed}");
    let privileged = sandbox.path().join("privileged.json");
    std::fs::write(
        &privileged,
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","securityContext":{"privileged":true}}]}}}}"#,
    )
    .expect("write");
    let refused = sandbox.run(&[
        "shadow",
        "create",
        "deploy/payments-web",
        "-n",
        "demo",
        "--mock",
        "--fix",
        privileged.to_str().expect("utf-8"),
    ]);
    assert_clean_failure(&refused, 1, &["fix policy denies"]);
    let listed = sandbox.json(&["shadow", "list", "--mock", "-o", "json"]);
    assert_eq!(listed["shadows"], serde_json::json!([]));
    let missing = sandbox.run(&["shadow", "delete", "aegis-shadow-00000000", "--mock"]);
    assert_clean_failure(&missing, 1, &["not found"]);
    let snapshot = sandbox.run(&["shadow", "list", "--snapshot", "dump"]);
    assert_eq!(snapshot.status.code(), Some(1), "{}", stderr(&snapshot));
    let bad_ttl = sandbox.run(&[
        "shadow",
        "create",
        "deploy/orders-api",
        "-n",
        "demo",
        "--mock",
        "--ttl",
        "5y",
    ]);
    assert_clean_failure(&bad_ttl, 2, &["--ttl"]);
    let elsewhere = sandbox.run(&[
        "shadow",
        "create",
        "deploy/orders-api",
        "-n",
        "demo",
        "--mock",
        "--shadow-context",
        "staging",
    ]);
    assert_clean_failure(&elsewhere, 2, &["--shadow-context"]);
    let no_incident = sandbox.run(&[
        "shadow",
        "create",
        "sts/redis",
        "-n",
        "production",
        "--mock",
    ]);
    assert_eq!(
        no_incident.status.code(),
        Some(1),
        "{}",
        stderr(&no_incident)
    );
}
