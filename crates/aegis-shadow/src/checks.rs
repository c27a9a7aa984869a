//! Reading a shadow's state: the typed checks on the candidate clone, and whether a clone shows
//! the incident — judged by running the same analyzers and rules as `aegis analyze` over the
//! shadow namespace, so "reproduced" means AEGIS would diagnose the same category there.

use std::collections::BTreeMap;

use aegis_core::state::pod_is_ready;
use aegis_core::{Category, Check, ClusterState, ResourceRef};
use aegis_k8sgpt::{AnalyzerConfig, Detection};
use aegis_rules::{Lookup, RulesEngine};
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::clone::{VARIANT_LABEL, Variant};

/// How a check stands at one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// Not yet decided (still starting, within a probe's window); carries what it waits for.
    Pending(String),
    /// A definite bad signal, with what was seen.
    Fail(String),
}

impl Status {
    pub fn is_pass(&self) -> bool {
        matches!(self, Self::Pass)
    }
}

/// Waiting reasons that mean the container will not start by itself.
const BAD_WAITING: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "RunContainerError",
];

/// The pods of one variant in the shadow state.
pub fn variant_pods(state: &ClusterState, variant: Variant) -> Vec<&Pod> {
    state
        .pods
        .iter()
        .filter(|pod| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(VARIANT_LABEL))
                .is_some_and(|v| v == variant.as_str())
        })
        .collect()
}

/// Whose pods a check looks at: the shadow's candidate clone, or a production workload after a
/// change.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Candidate,
    /// A workload in production: its Services keep their names, and refusals to create its pods
    /// are reported on these controllers (the workload and its ReplicaSets).
    Production {
        controllers: &'a [String],
    },
}

impl Subject<'_> {
    fn service_name(&self, service: &str) -> String {
        match self {
            Self::Candidate => Variant::Candidate.clone_name(service),
            Self::Production { .. } => service.to_owned(),
        }
    }

    fn is_controller(&self, name: &str) -> bool {
        match self {
            Self::Candidate => is_candidate_controller(name),
            Self::Production { controllers } => controllers.iter().any(|c| c == name),
        }
    }
}

/// Evaluates one check on the candidate's pods.
pub fn evaluate(check: &Check, state: &ClusterState, pods: &[&Pod]) -> Status {
    evaluate_for(check, state, pods, Subject::Candidate)
}

/// Evaluates one check on the pods of `subject`.
pub fn evaluate_for(
    check: &Check,
    state: &ClusterState,
    pods: &[&Pod],
    subject: Subject<'_>,
) -> Status {
    let now = state.now();
    if let Check::Endpoints { service } = check {
        return endpoints(state, pods, &subject.service_name(service));
    }
    let pod_names: Vec<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    let events_about = |reason: &str| -> Vec<String> {
        state
            .events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("Pod")
                    && e.involved_object
                        .name
                        .as_deref()
                        .is_some_and(|n| pod_names.contains(&n))
            })
            .map(|e| e.message.clone().unwrap_or_default())
            .collect()
    };
    if pods.is_empty() {
        let refused: Vec<String> = state
            .events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
            .filter(|e| {
                e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|name| subject.is_controller(name))
            })
            .map(|e| e.message.clone().unwrap_or_default())
            .collect();
        return match refused.first() {
            Some(message) => Status::Fail(format!("no pod: {message}")),
            None => Status::Pending("no pod yet".to_owned()),
        };
    }
    let statuses = || {
        pods.iter().flat_map(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default()
        })
    };
    match check {
        Check::Scheduled => {
            if let Some(message) = events_about("FailedScheduling").first() {
                return Status::Fail(format!("FailedScheduling: {message}"));
            }
            let scheduled = pods
                .iter()
                .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some());
            if scheduled {
                Status::Pass
            } else {
                Status::Pending("not scheduled yet".to_owned())
            }
        }
        Check::NoBadWaiting => {
            for status in statuses() {
                let waiting = status
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone());
                if let Some(reason) = waiting.filter(|r| BAD_WAITING.contains(&r.as_str())) {
                    return Status::Fail(format!("container {} is {reason}", status.name));
                }
            }
            Status::Pass
        }
        Check::NotOomKilled => {
            for status in statuses() {
                let oom = [&status.state, &status.last_state]
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.terminated.as_ref())
                    .any(|t| t.reason.as_deref() == Some("OOMKilled"));
                if oom {
                    return Status::Fail(format!("container {} was OOMKilled", status.name));
                }
            }
            Status::Pass
        }
        Check::RestartsStable => {
            for status in statuses() {
                if status.restart_count > 0 {
                    return Status::Fail(format!(
                        "container {} restarted {} time(s)",
                        status.name, status.restart_count
                    ));
                }
            }
            if statuses().all(|s| s.state.as_ref().and_then(|s| s.running.as_ref()).is_some())
                && statuses().next().is_some()
            {
                Status::Pass
            } else {
                Status::Pending("containers not running yet".to_owned())
            }
        }
        Check::ProbesPassing => {
            if let Some(message) = events_about("Unhealthy").first() {
                return Status::Fail(format!("Unhealthy: {message}"));
            }
            for pod in pods {
                let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
                for container in containers.unwrap_or_default() {
                    let window = failure_window(container);
                    if window == 0 {
                        continue;
                    }
                    let running_for = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|all| all.iter().find(|s| s.name == container.name))
                        .and_then(|s| s.state.as_ref()?.running.as_ref()?.started_at.clone())
                        .map(|started| now.duration_since(started.0).as_secs().max(0) as u64);
                    match running_for {
                        Some(seconds) if seconds >= window => {}
                        Some(_) => {
                            return Status::Pending(format!(
                                "container {} has not yet outlived its {window} s probe window",
                                container.name
                            ));
                        }
                        None => {
                            return Status::Pending(format!(
                                "container {} is not running yet",
                                container.name
                            ));
                        }
                    }
                }
            }
            Status::Pass
        }
        Check::Ready => {
            if pods.iter().all(|p| pod_is_ready(p)) {
                Status::Pass
            } else {
                Status::Pending("not ready yet".to_owned())
            }
        }
        Check::Endpoints { .. } => Status::Pending("evaluated above".to_owned()),
    }
}

/// Whether an object is the candidate clone or its ReplicaSet (the clone's name and a hash):
/// where a refusal to create the candidate's pods is reported.
fn is_candidate_controller(name: &str) -> bool {
    let suffix = format!("-{}", Variant::Candidate.as_str());
    let baseline = format!("-{}", Variant::Baseline.as_str());
    name.ends_with(&suffix)
        || (!name.ends_with(&baseline)
            && name
                .rsplit_once('-')
                .is_some_and(|(owner, _hash)| owner.ends_with(&suffix)))
}

/// Seconds a container must run before its liveness and startup probes could have killed it:
/// the longest initial delay plus period × failure threshold; 0 without such probes.
pub fn failure_window(container: &Container) -> u64 {
    [&container.liveness_probe, &container.startup_probe]
        .into_iter()
        .flatten()
        .map(|probe| {
            let delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
            let period = probe.period_seconds.unwrap_or(10).max(1) as u64;
            let threshold = probe.failure_threshold.unwrap_or(3).max(1) as u64;
            delay + period * threshold
        })
        .max()
        .unwrap_or(0)
}

/// Whether the Service clone `service` has a ready endpoint; a failure once the candidate's
/// pods are ready and it still has none (its selector does not pick them).
fn endpoints(state: &ClusterState, pods: &[&Pod], service: &str) -> Status {
    let ready_endpoint = state
        .endpoint_slices
        .iter()
        .filter(|slice| {
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|n| n == service)
        })
        .flat_map(|slice| slice.endpoints.iter())
        .any(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true));
    if ready_endpoint {
        return Status::Pass;
    }
    let pods_ready = !pods.is_empty() && pods.iter().all(|p| pod_is_ready(p));
    if pods_ready {
        Status::Fail(format!(
            "service {service} has no ready endpoint although the pods it should select are ready"
        ))
    } else {
        Status::Pending(format!("service {service} has no ready endpoint yet"))
    }
}

/// The categories AEGIS diagnoses on some clones, with the finding reasons behind each.
pub type Diagnosed = BTreeMap<Category, Vec<String>>;

/// What AEGIS diagnoses on the baseline's clones and on the candidate's, from one run of the
/// analyzers and rules over the shadow's state.
pub fn diagnoses(
    state: &ClusterState,
    baseline: &[ResourceRef],
    candidate: &[ResourceRef],
) -> (Diagnosed, Diagnosed) {
    let lookup = Lookup::new(state);
    let config = AnalyzerConfig {
        grace_period_seconds: 0,
        ..AnalyzerConfig::default()
    };
    let detections = aegis_k8sgpt::analyze(lookup.index(), &config, None, None);
    let mut by_workload: BTreeMap<&ResourceRef, Vec<&Detection>> = BTreeMap::new();
    for detection in &detections {
        if baseline.contains(&detection.workload) || candidate.contains(&detection.workload) {
            by_workload
                .entry(&detection.workload)
                .or_default()
                .push(detection);
        }
    }
    let rules = RulesEngine::default();
    let (mut on_baseline, mut on_candidate) = (Diagnosed::new(), Diagnosed::new());
    for (workload, detections) in by_workload {
        let found = if baseline.contains(workload) {
            &mut on_baseline
        } else {
            &mut on_candidate
        };
        for diagnosis in rules.diagnose(&lookup, workload, &detections) {
            let reasons = found.entry(diagnosis.category).or_default();
            for finding in diagnosis.findings {
                if !reasons.contains(&finding.reason) {
                    reasons.push(finding.reason);
                }
            }
        }
    }
    (on_baseline, on_candidate)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Event, ObjectReference};

    use super::*;

    fn refused(owner: &str) -> ClusterState {
        ClusterState {
            events: vec![Event {
                reason: Some("FailedCreate".to_owned()),
                message: Some("pods \"x\" is forbidden: exceeded quota".to_owned()),
                involved_object: ObjectReference {
                    kind: Some("ReplicaSet".to_owned()),
                    name: Some(owner.to_owned()),
                    ..ObjectReference::default()
                },
                ..Event::default()
            }],
            ..ClusterState::default()
        }
    }

    #[test]
    fn a_refused_candidate_pod_fails_and_a_refused_baseline_pod_does_not_count() {
        let cases = [
            ("web-candidate-7d9c5f", true),
            ("web-candidate", true),
            ("web-baseline-7d9c5f", false),
            ("web-candidate-baseline-7d9c5f", false),
            ("web-candidate-baseline", false),
        ];
        for (owner, fails) in cases {
            let status = evaluate(&Check::Ready, &refused(owner), &[]);
            assert_eq!(
                matches!(status, Status::Fail(_)),
                fails,
                "{owner}: {status:?}"
            );
        }
    }
}
