//! The deploy artefacts checked by the real tools that consume them: the Helm chart linted and
//! rendered by Helm, the operator's configuration it renders read by `aegis` itself, its
//! security context and RBAC checked on the rendered manifests, and the alert rules checked and
//! unit-tested by promtool.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use aegis_e2e::binaries::PROMTOOL;
use aegis_e2e::chart::{chart_dir, documents, helm};
use aegis_e2e::workspace_root;
use serde_json::Value;

/// Every optional part of the chart switched on.
const EVERYTHING: &str =
    "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true";

fn succeeded(output: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn render(home: &Path, set: &[&str]) -> Vec<Value> {
    let text = aegis_e2e::chart::render(home, set).expect("helm template");
    documents(&text).expect("the rendered chart is YAML")
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn the_chart_lints_and_renders_a_restricted_operator() {
    let home = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8");
    for set in ["replicaCount=2", EVERYTHING] {
        let output = helm(home.path(), &["lint", "--strict", chart, "--set", set]).expect("helm");
        let stdout = succeeded(&output, "helm lint --strict");
        assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
    }

    let started = Instant::now();
    let objects = render(home.path(), &[EVERYTHING]);
    eprintln!(
        "helm template: {} objects in {:.2} s",
        objects.len(),
        started.elapsed().as_secs_f64()
    );
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(
            !of_kind(&objects, kind).is_empty(),
            "the chart renders a {kind}"
        );
    }
    // Without the Prometheus Operator's parts by default.
    let plain = render(home.path(), &[]);
    assert!(of_kind(&plain, "ServiceMonitor").is_empty());
    assert!(of_kind(&plain, "PrometheusRule").is_empty());

    // The CRD is the generated one.
    let crd = of_kind(&objects, "CustomResourceDefinition")[0];
    assert_eq!(crd["metadata"]["name"], "incidents.aegis.io");

    // A restricted pod: non-root, read-only root, no escalation, no capabilities, seccomp.
    let deployment = of_kind(&objects, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        pod["serviceAccountName"],
        of_kind(&objects, "ServiceAccount")[0]["metadata"]["name"]
    );

    // Least privilege on paper (the operator e2e test proves it by use): no wildcard
    // anywhere, no Secret in what is bound cluster-wide, the shadow role bound by no
    // ClusterRoleBinding, and namespaces confined by the admission policy.
    let roles: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        .collect();
    assert_eq!(roles.len(), 3, "operator, shadow and leader roles");
    for role in &roles {
        for rule in role["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                for item in rule[field].as_array().into_iter().flatten() {
                    assert!(
                        !item.as_str().unwrap_or_default().contains('*'),
                        "a wildcard in {}: {rule}",
                        role["metadata"]["name"]
                    );
                }
            }
        }
    }
    let names = |o: &Value, field: &str| -> Vec<String> {
        o["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r[field].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let bound: Vec<String> = of_kind(&objects, "ClusterRoleBinding")
        .iter()
        .map(|b| b["roleRef"]["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    for role in of_kind(&objects, "ClusterRole") {
        let name = role["metadata"]["name"].as_str().unwrap_or_default();
        let resources = names(role, "resources");
        if bound.iter().any(|b| b == name) {
            assert!(
                !resources.iter().any(|r| r == "secrets"),
                "{name} is bound cluster-wide and names secrets"
            );
        } else {
            assert!(name.ends_with("-shadow"), "{name} is bound nowhere");
            assert!(resources.iter().any(|r| r == "secrets"));
            assert!(
                !names(role, "verbs")
                    .iter()
                    .any(|v| v == "delete" || v == "get" || v == "watch"),
                "{name}: creates and patches only"
            );
        }
    }
    let policy = of_kind(&objects, "ValidatingAdmissionPolicy");
    assert_eq!(policy.len(), 1);
    assert_eq!(
        of_kind(&objects, "ValidatingAdmissionPolicyBinding")[0]["spec"]["policyName"],
        policy[0]["metadata"]["name"]
    );

    // The PrometheusRule carries the file promtool checks.
    let rule = of_kind(&objects, "PrometheusRule")[0];
    let file = std::fs::read_to_string(chart_file("aegis.rules.yaml")).expect("rules");
    let groups: Value = serde_yaml::from_str(&file).expect("rules YAML");
    assert_eq!(rule["spec"], groups);
}

fn chart_file(name: &str) -> PathBuf {
    chart_dir().join("files").join(name)
}

#[test]
fn the_rendered_configuration_is_what_aegis_reads() {
    let home = tempfile::tempdir().expect("tempdir");
    let binary = aegis_e2e::aegis_binary().expect("aegis builds");
    let objects = render(
        home.path(),
        &[
            "llm.ollamaUrl=http://ollama.ollama.svc:11434",
            "llm.backend=ollama",
            "watch.namespaceSelector=team in (shop\\,pay)",
            "policy.autoApplyCategories={oom-killed,image-not-found}",
            "extraConfig=[kubernetes]\nlog_tail_lines = 77",
        ],
    );
    let config = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["data"]["aegis.toml"].is_string())
        .expect("the ConfigMap of aegis.toml");
    let toml = config["data"]["aegis.toml"].as_str().expect("text");
    let path = home.path().join("aegis.toml");
    std::fs::write(&path, toml).expect("written");
    let output = aegis_e2e::aegis_command(&binary)
        .current_dir(home.path())
        .args(["config", "show", "-o", "json", "--config"])
        .arg(&path)
        .output()
        .expect("aegis runs");
    let shown = succeeded(&output, "aegis config show");
    let shown: Value = serde_json::from_str(&shown).expect("JSON");
    let value = |section: &str, key: &str| shown_value(&shown, section, key);
    assert_eq!(
        value("llm", "ollama_url"),
        "http://ollama.ollama.svc:11434",
        "{toml}"
    );
    assert_eq!(value("llm", "backend"), "ollama");
    assert_eq!(
        value("operator", "namespace_selector"),
        "team in (shop,pay)"
    );
    assert_eq!(
        value("policy", "auto_apply_categories"),
        serde_json::json!(["oom-killed", "image-not-found"])
    );
    assert_eq!(value("kubernetes", "log_tail_lines"), 77);
    assert_eq!(value("agent", "state_dir"), "/var/lib/aegis");

    // A value the operator would refuse fails here, not in the cluster.
    let objects = render(
        home.path(),
        &["policy.autoApplyCategories={no-such-category}"],
    );
    let config = of_kind(&objects, "ConfigMap")[0];
    std::fs::write(&path, config["data"]["aegis.toml"].as_str().expect("text")).expect("written");
    let output = aegis_e2e::aegis_command(&binary)
        .current_dir(home.path())
        .args(["config", "show", "--config"])
        .arg(&path)
        .output()
        .expect("aegis runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no-such-category"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A setting's value in `aegis config show -o json`, which must come from the file.
fn shown_value(shown: &Value, section: &str, key: &str) -> Value {
    let key = format!("{section}.{key}");
    let entry = shown["settings"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["key"] == key.as_str()))
        .unwrap_or_else(|| panic!("{key} is not shown: {shown}"));
    assert!(
        entry["source"]
            .as_str()
            .is_some_and(|s| s.contains("aegis.toml")),
        "{key} comes from the rendered file: {entry}"
    );
    entry["value"].clone()
}

#[test]
fn the_alerts_pass_promtool_check_and_their_unit_tests() {
    let promtool = PROMTOOL.ensure().expect("promtool builds");
    let rules = chart_file("aegis.rules.yaml");
    let output = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool runs");
    let stdout = succeeded(&output, "promtool check rules");
    assert!(stdout.contains("SUCCESS: 9 rules found"), "{stdout}");
    let tests = workspace_root().join("deploy/prometheus/aegis.rules.test.yaml");
    let output = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .expect("promtool runs");
    let stdout = succeeded(&output, "promtool test rules");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
}

/// The image cannot be built here (no container runtime); its Dockerfile is parsed and linted
/// by hadolint instead, which must find nothing, and must refuse a broken one.
#[test]
fn the_dockerfile_parses_and_lints_clean() {
    let hadolint = aegis_e2e::binaries::hadolint().expect("hadolint installs");
    let dockerfile = workspace_root().join("Dockerfile");
    let output = Command::new(&hadolint)
        .args(["--format", "json"])
        .arg(&dockerfile)
        .output()
        .expect("hadolint runs");
    let stdout = succeeded(&output, "hadolint");
    let findings: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(findings, serde_json::json!([]), "hadolint findings");
    let text = std::fs::read_to_string(&dockerfile).expect("Dockerfile");
    // Multi-stage, non-root, the binary only.
    assert_eq!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")),
        2
    );
    assert!(text.contains("USER 65532:65532"));
    assert!(text.contains("COPY --from=build /out/aegis /usr/local/bin/aegis"));
    let broken = tempfile::tempdir().expect("tempdir");
    let path = broken.path().join("Dockerfile");
    std::fs::write(&path, text.replacen("RUN ", "RUNN ", 1)).expect("written");
    let output = Command::new(&hadolint)
        .arg(&path)
        .output()
        .expect("hadolint runs");
    assert!(!output.status.success(), "a broken Dockerfile is refused");
}

/// Trivy's embedded Kubernetes checks over everything the chart renders: no HIGH or CRITICAL
/// misconfiguration but the reviewed grants of `ACCEPTED_FINDINGS`. (Offline: the checks
/// compiled into Trivy, no bundle download.)
#[test]
fn trivy_finds_nothing_high_or_critical_in_the_chart_but_its_reviewed_grants() {
    let trivy = aegis_e2e::binaries::TRIVY.ensure().expect("trivy builds");
    let home = tempfile::tempdir().expect("tempdir");
    let rendered = aegis_e2e::chart::render(home.path(), &[EVERYTHING]).expect("helm template");
    let manifests = home.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("dir");
    // One file per object, named by its kind and name.
    for object in &documents(&rendered).expect("YAML") {
        let name = format!(
            "{}-{}.yaml",
            object["kind"].as_str().unwrap_or("object").to_lowercase(),
            object["metadata"]["name"].as_str().unwrap_or("unnamed")
        );
        std::fs::write(
            manifests.join(name),
            serde_yaml::to_string(object).expect("YAML"),
        )
        .expect("written");
    }
    let scan = |dir: &Path| -> Vec<String> {
        let output = Command::new(&trivy)
            .args([
                "config",
                "--quiet",
                "--skip-check-update",
                "--disable-telemetry",
                "--severity",
                "HIGH,CRITICAL",
                "--format",
                "json",
                "--cache-dir",
            ])
            .arg(home.path().join("cache"))
            .arg(dir)
            .output()
            .expect("trivy runs");
        let report: Value =
            serde_json::from_str(&succeeded(&output, "trivy config")).expect("JSON");
        report["Results"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| {
                let target = r["Target"].as_str().unwrap_or_default().to_owned();
                r["Misconfigurations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| m["Status"] == "FAIL")
                    .map(move |m| format!("{target}: {} {} {}", m["ID"], m["Severity"], m["Title"]))
            })
            .collect()
    };
    // The checks run: a privileged container is a HIGH finding.
    let control = home.path().join("control");
    std::fs::create_dir_all(&control).expect("dir");
    std::fs::write(
        control.join("privileged.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: loose}\nspec:\n  selector: {matchLabels: {app: loose}}\n  template:\n    metadata: {labels: {app: loose}}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.27.2\n        securityContext: {privileged: true}\n",
    )
    .expect("written");
    let control_findings = scan(&control);
    assert!(
        control_findings
            .iter()
            .any(|f| f.contains("HIGH") || f.contains("CRITICAL")),
        "Trivy's checks flag a privileged container: {control_findings:?}"
    );
    let started = Instant::now();
    let findings = scan(&manifests);
    eprintln!(
        "trivy config over the chart's {} objects: {:.1} s",
        std::fs::read_dir(&manifests).map_or(0, Iterator::count),
        started.elapsed().as_secs_f64()
    );
    // Each finding is one of the grants the operator's job needs, reviewed and listed in
    // deploy/README.md; anything else fails, and so does an accepted one no longer found (the
    // list would hide a future regression).
    let accepted = ACCEPTED_FINDINGS
        .iter()
        .map(|(id, file, _)| (format!("\"{id}\""), *file))
        .collect::<Vec<_>>();
    let unexpected: Vec<&String> = findings
        .iter()
        .filter(|f| {
            !accepted
                .iter()
                .any(|(id, file)| f.starts_with(&format!("{file}: {id} ")))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "Trivy findings not accepted: {unexpected:#?}"
    );
    for (id, file) in &accepted {
        assert!(
            findings
                .iter()
                .any(|f| f.starts_with(&format!("{file}: {id} "))),
            "{id} on {file} is accepted but no longer found: drop it from the list: {findings:#?}"
        );
    }
}

/// The Trivy findings on the chart that are the operator's job, with why (deploy/README.md).
const ACCEPTED_FINDINGS: [(&str, &str, &str); 4] = [
    (
        "KSV-0050",
        "clusterrole-aegis.yaml",
        "RoleBindings: the operator binds the shadow role inside each shadow namespace it creates; `bind` is limited to that role by name and the admission policy confines the bindings to shadows",
    ),
    (
        "KSV-0056",
        "clusterrole-aegis.yaml",
        "patch of Services and Ingresses: the fields selector, port and backend fixes touch, after approval",
    ),
    (
        "KSV-0041",
        "clusterrole-aegis-shadow.yaml",
        "Secrets: the placeholders (same keys, dummy values) written into a shadow; the role is bound only inside shadow namespaces",
    ),
    (
        "KSV-0056",
        "clusterrole-aegis-shadow.yaml",
        "Services and the default-deny NetworkPolicy of a shadow, inside shadow namespaces only",
    ),
];
