//! The real-world corpus (`tests/fixtures/real-world/`): snapshots in the shape of managed
//! clusters, each with the incidents an on-call SRE would find in it. Every case must give
//! exactly its expected incidents, with a fix where the cluster shows what it must be and an
//! escalation where it does not; every fix and candidate must pass the policy and be undone
//! exactly by its inverse.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aegis_agent::{Agent, AnalyzeRequest, change_scope};
use aegis_cluster::Scope;
use aegis_cluster::snapshot::SnapshotSource;
use aegis_core::settings::Settings;
use aegis_core::{ClusterState, Fix, Incident, PatchType, ResourceKind, ResourceRef, SourceKind};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    platform: String,
    description: String,
    incidents: Vec<Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    category: String,
    fix: FixExpected,
    #[serde(default)]
    patch_contains: Vec<String>,
    #[serde(default)]
    candidate_contains: Vec<String>,
    #[serde(default)]
    rollback: bool,
    #[serde(default)]
    candidates: usize,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum FixExpected {
    Required,
    Escalate,
}

/// The corpus holds at least this many cases.
const MIN_CASES: usize = 25;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/real-world")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("the corpus directory exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn candidates(incident: &Incident) -> Vec<&Fix> {
    incident
        .fix
        .iter()
        .chain(incident.alternative_fixes.iter())
        .collect()
}

fn patch_text(fix: &Fix) -> String {
    serde_json::to_string(&fix.patch).unwrap_or_default()
}

/// Problems with one fix: the policy must allow it and its inverse must restore the target.
fn check_fix(state: &ClusterState, fix: &Fix) -> Vec<String> {
    let lookup = aegis_rules::Lookup::new(state);
    let Some(original) = lookup.object(&fix.target) else {
        return vec![format!(
            "{}: target {} not in the state",
            fix.summary, fix.target
        )];
    };
    let mut problems = Vec::new();
    let decision = aegis_rules::check_fix(&lookup, fix, &original);
    if !decision.allowed {
        problems.push(format!(
            "{}: the policy denies it: {}",
            fix.summary,
            decision.violations_text()
        ));
    }
    let restored = aegis_core::patch::apply(&original, PatchType::StrategicMerge, &fix.patch)
        .and_then(|patched| {
            if aegis_core::patch::same_object(&patched, &original) {
                problems.push(format!("{}: the patch changes nothing", fix.summary));
            }
            aegis_core::patch::apply(&patched, PatchType::StrategicMerge, &fix.inverse_patch)
        });
    match restored {
        Ok(restored) if aegis_core::policy::same_template(&restored, &original) => {}
        Ok(_) => problems.push(format!(
            "{}: the inverse does not restore the target",
            fix.summary
        )),
        Err(e) => problems.push(format!("{}: {e}", fix.summary)),
    }
    problems
}

#[derive(Default)]
struct Tally {
    expected: usize,
    found: usize,
    fix_expected: usize,
    fixed: usize,
}

#[test]
fn every_real_world_case_gives_exactly_its_expected_incidents_and_fixes() {
    let agent = Agent::new(&Settings::default());
    let mut failures: Vec<String> = Vec::new();
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let (mut incidents_total, mut incidents_fixed) = (0, 0);
    let cases = cases();
    if cases.len() < MIN_CASES {
        failures.push(format!(
            "the corpus holds {} cases, fewer than {MIN_CASES}",
            cases.len()
        ));
    }
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy();
        let text = std::fs::read_to_string(case.join("expect.yaml"))
            .unwrap_or_else(|e| panic!("{name}/expect.yaml: {e}"));
        let expectation: Expectation =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}/expect.yaml: {e}"));
        assert!(
            !expectation.platform.is_empty() && !expectation.description.is_empty(),
            "{name}: platform and description are set"
        );
        let loaded = SnapshotSource::new(vec![case.clone()])
            .load_blocking(&Scope::all())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The expectation beside the snapshot is not a Kubernetes object; nothing else may warn.
        for warning in loaded
            .warnings
            .iter()
            .filter(|w| !w.location.ends_with("expect.yaml"))
        {
            failures.push(format!("{name}: load warning {warning}"));
        }
        let state = loaded.state;
        let report = agent
            .analyze(&state, SourceKind::Snapshot, &AnalyzeRequest::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        incidents_total += report.incidents.len();
        incidents_fixed += report.incidents.iter().filter(|i| i.fix.is_some()).count();
        let mut matched = vec![false; report.incidents.len()];
        for expected in &expectation.incidents {
            let kind = ResourceKind::from_kind(&expected.kind)
                .unwrap_or_else(|| panic!("{name}: unknown kind {}", expected.kind));
            let workload = ResourceRef::new(kind, expected.namespace.as_deref(), &expected.name);
            let entry = tally.entry(expected.category.clone()).or_default();
            entry.expected += 1;
            if expected.fix == FixExpected::Required {
                entry.fix_expected += 1;
            }
            let position = report
                .incidents
                .iter()
                .position(|i| i.workload == workload && i.rca.category.id() == expected.category);
            let Some(position) = position else {
                failures.push(format!(
                    "{name}: no {} incident on {workload}",
                    expected.category
                ));
                continue;
            };
            matched[position] = true;
            entry.found += 1;
            let incident = &report.incidents[position];
            let label = format!("{name}: {workload} {}", expected.category);
            match (expected.fix, &incident.fix) {
                (FixExpected::Required, None) => {
                    failures.push(format!(
                        "{label}: no fix ({})",
                        incident.rca.decision_rationale
                    ));
                    continue;
                }
                (FixExpected::Escalate, Some(fix)) => {
                    failures.push(format!("{label}: escalation expected, got {}", fix.summary));
                    continue;
                }
                (FixExpected::Escalate, None) => {
                    if !incident
                        .rca
                        .decision_rationale
                        .starts_with("No fix proposed")
                        && !incident.rca.decision_rationale.contains("threshold")
                    {
                        failures.push(format!(
                            "{label}: the escalation does not say why: {}",
                            incident.rca.decision_rationale
                        ));
                    }
                    continue;
                }
                (FixExpected::Required, Some(_)) => entry.fixed += 1,
            }
            let fix = incident.fix.as_ref().expect("matched above");
            let text = patch_text(fix);
            for needle in &expected.patch_contains {
                if !text.contains(needle.as_str()) {
                    failures.push(format!("{label}: the patch lacks {needle:?}: {text}"));
                }
            }
            let all = candidates(incident);
            for needle in &expected.candidate_contains {
                if !all.iter().any(|f| patch_text(f).contains(needle.as_str())) {
                    failures.push(format!("{label}: no candidate contains {needle:?}"));
                }
            }
            if expected.rollback && !all.iter().any(|f| f.rollback.is_some()) {
                failures.push(format!(
                    "{label}: no rollback candidate ({})",
                    incident.rca.decision_rationale
                ));
            }
            if all.len() < expected.candidates {
                failures.push(format!(
                    "{label}: {} candidate(s), {} expected",
                    all.len(),
                    expected.candidates
                ));
            }
        }
        for (incident, matched) in report.incidents.iter().zip(matched) {
            if !matched {
                failures.push(format!(
                    "{name}: unexpected {} incident on {}: {}",
                    incident.rca.category.id(),
                    incident.workload,
                    incident.rca.summary
                ));
            }
        }
        for incident in &report.incidents {
            for fix in candidates(incident) {
                failures.extend(
                    check_fix(&state, fix)
                        .into_iter()
                        .map(|p| format!("{name}: {p}")),
                );
            }
        }
    }
    println!("category                   cases  found  fix-expected  fixed");
    for (category, t) in &tally {
        println!(
            "{category:<26} {:>5}  {:>5}  {:>12}  {:>5}",
            t.expected, t.found, t.fix_expected, t.fixed
        );
    }
    println!("incidents with a fix: {incidents_fixed} of {incidents_total}");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every incident a whole analysis of `state` reports is reported, identical, by the analysis
/// scoped to a change of its resource, and a scoped analysis reports nothing out of scope.
/// Returns how many incidents were checked in a scope narrower than the whole.
fn scoped_analyses_agree(name: &str, state: &ClusterState) -> usize {
    let agent = Agent::new(&Settings::default());
    let whole = agent
        .analyze(state, SourceKind::Snapshot, &AnalyzeRequest::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut narrowed = 0;
    for incident in &whole.incidents {
        let Some(scope) = change_scope(state, &BTreeSet::from([incident.resource.clone()])) else {
            continue;
        };
        assert!(
            scope.workloads.contains(&incident.workload),
            "{name}: the scope of {} holds its workload {}",
            incident.resource,
            incident.workload
        );
        let request = AnalyzeRequest {
            scope: Some(scope.workloads.clone()),
            ..AnalyzeRequest::default()
        };
        let scoped = agent
            .analyze(state, SourceKind::Snapshot, &request)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for found in &scoped.incidents {
            assert!(
                scope.workloads.contains(&found.workload),
                "{name}: {} is out of the scope of {}",
                found.workload,
                incident.resource
            );
        }
        let expected: Vec<Value> = whole
            .incidents
            .iter()
            .filter(|i| scope.workloads.contains(&i.workload))
            .map(|i| serde_json::to_value(i).expect("serializes"))
            .collect();
        let got: Vec<Value> = scoped
            .incidents
            .iter()
            .map(|i| serde_json::to_value(i).expect("serializes"))
            .collect();
        assert_eq!(
            got, expected,
            "{name}: the analysis scoped to {} reports what the whole one does",
            incident.resource
        );
        narrowed += 1;
    }
    narrowed
}

#[test]
fn an_analysis_scoped_to_a_change_reports_what_a_whole_one_does() {
    let demo = aegis_cluster::sim::MockSource::demo_state().expect("the demo world simulates");
    let narrowed = scoped_analyses_agree("demo", &demo);
    assert!(
        narrowed >= 8,
        "most demo incidents have a narrower scope: {narrowed}"
    );
    let mut narrowed = 0;
    for case in cases() {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let state = SnapshotSource::new(vec![case])
            .load_blocking(&Scope::all())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .state;
        narrowed += scoped_analyses_agree(&name, &state);
    }
    assert!(
        narrowed >= 20,
        "corpus incidents checked in a narrower scope: {narrowed}"
    );
}
