//! The Pod analyzer: scheduling failures, containers that cannot start, crash, are killed for
//! memory or by probes, and containers that run but never become ready.

use std::collections::BTreeSet;

use aegis_core::state::{StateIndex, ref_of};
use aegis_core::{Evidence, EvidenceSource, ResourceKind, ResourceRef};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::evidence::{event_evidence, last_lines, log_evidence};
use crate::{Analyzer, AnalyzerConfig, Detection, detection};

/// Waiting reasons that mean a container cannot start (as opposed to starting up).
const FAILED_WAITING: [&str; 8] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ErrImageNeverPull",
];

pub fn analyze(
    index: &StateIndex<'_>,
    config: &AnalyzerConfig,
    scope: Option<&BTreeSet<ResourceRef>>,
    out: &mut Vec<Detection>,
) {
    let state = index.state();
    for pod in &state.pods {
        let Some(status) = &pod.status else { continue };
        let phase = status.phase.as_deref().unwrap_or_default();
        if phase == "Succeeded" {
            continue;
        }
        let workload = index.workload_of(ResourceKind::Pod, &pod.metadata);
        if scope.is_some_and(|s| !s.contains(&workload)) {
            continue;
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let age = index.state().age_seconds(&pod.metadata);
        let settled = age >= config.grace_period_seconds;
        let resource = ref_of(ResourceKind::Pod, &pod.metadata);
        let events = event_evidence(index, ResourceKind::Pod, namespace, name);
        let has_event = |needle: &str| events.iter().any(|e| e.excerpt.contains(needle));
        let report = |out: &mut Vec<Detection>,
                      container: Option<&str>,
                      reason: &str,
                      message: String,
                      mut evidence: Vec<Evidence>| {
            evidence.extend(events.iter().cloned());
            let mut found = detection(
                index,
                Analyzer::Pod,
                reason,
                message,
                resource.clone(),
                workload.clone(),
                evidence,
            );
            found.container = container.map(str::to_owned);
            out.push(found);
        };

        if phase == "Failed" {
            let reason = status.reason.clone().unwrap_or_else(|| "Failed".to_owned());
            let owned_by_job = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Job");
            if !owned_by_job {
                let message = format!(
                    "pod {name} failed: {}",
                    status.message.clone().unwrap_or_else(|| reason.clone())
                );
                report(
                    out,
                    None,
                    &reason,
                    message,
                    vec![status_evidence(namespace, name, "status.reason", &reason)],
                );
            }
            continue;
        }

        let unschedulable = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        if let Some(condition) = unschedulable
            && condition.reason.as_deref() == Some("SchedulingGated")
        {
            // Held back by scheduling gates (a queue such as Kueue, or a controller that has
            // not released it): never tried by the scheduler, so no FailedScheduling event.
            if settled {
                let gates: Vec<&str> = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.scheduling_gates.iter().flatten())
                    .map(|g| g.name.as_str())
                    .collect();
                report(
                    out,
                    None,
                    "SchedulingGated",
                    format!(
                        "pod {name} is held back from scheduling by gates: {}",
                        if gates.is_empty() {
                            "(not listed)".to_owned()
                        } else {
                            gates.join(", ")
                        }
                    ),
                    vec![status_evidence(
                        namespace,
                        name,
                        "spec.schedulingGates",
                        &gates.join(", "),
                    )],
                );
            }
            continue;
        }
        if let Some(condition) = unschedulable {
            if settled || has_event("FailedScheduling") {
                let message = condition.message.clone().unwrap_or_default();
                report(
                    out,
                    None,
                    "Unschedulable",
                    format!("pod {name} cannot be scheduled: {message}"),
                    vec![status_evidence(
                        namespace,
                        name,
                        "status.conditions[PodScheduled].message",
                        &message,
                    )],
                );
            }
            continue;
        }

        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        let mut reported = false;
        for container in containers {
            if let Some(detected) = container_problem(pod, container, settled, &has_event) {
                let (reason, message, mut evidence) = detected;
                evidence.extend(log_evidence(
                    state,
                    namespace,
                    name,
                    &container.name,
                    true,
                    config.log_lines,
                ));
                evidence.extend(log_evidence(
                    state,
                    namespace,
                    name,
                    &container.name,
                    false,
                    config.log_lines,
                ));
                report(out, Some(&container.name), &reason, message, evidence);
                reported = true;
            }
        }
        if !reported && settled && has_event("FailedMount") {
            report(
                out,
                None,
                "FailedMount",
                format!("pod {name} is waiting for a volume to mount"),
                Vec::new(),
            );
        }
    }
}

type Problem = (String, String, Vec<Evidence>);

fn container_problem(
    pod: &Pod,
    container: &ContainerStatus,
    settled: bool,
    has_event: &dyn Fn(&str) -> bool,
) -> Option<Problem> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let name = &container.name;
    let field = |path: &str| format!("status.containerStatuses[{name}].{path}");
    let state = container.state.as_ref();
    let last_terminated = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());

    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.clone().unwrap_or_default();
        if FAILED_WAITING.contains(&reason.as_str()) {
            let detail = waiting.message.clone().unwrap_or_default();
            let mut evidence = vec![status_evidence(
                namespace,
                pod_name,
                &field("state.waiting.reason"),
                &reason,
            )];
            if !detail.is_empty() {
                evidence.push(status_evidence(
                    namespace,
                    pod_name,
                    &field("state.waiting.message"),
                    &detail,
                ));
            }
            if let Some(terminated) = last_terminated {
                evidence.extend(terminated_evidence(namespace, pod_name, name, terminated));
            }
            let restarts = container.restart_count;
            let message = match reason.as_str() {
                "CrashLoopBackOff" => {
                    format!("container {name} is crash-looping ({restarts} restarts)")
                }
                "ImagePullBackOff" | "ErrImagePull" => {
                    format!("container {name} cannot pull image {}", container.image)
                }
                "InvalidImageName" => format!(
                    "container {name} has an invalid image name {}",
                    container.image
                ),
                "CreateContainerConfigError" => {
                    format!("container {name} cannot be created: {detail}")
                }
                _ => format!("container {name} cannot start: {reason} {detail}")
                    .trim_end()
                    .to_owned(),
            };
            return Some((reason, message, evidence));
        }
        if reason == "ContainerCreating" && settled && has_event("FailedMount") {
            return Some((
                "FailedMount".to_owned(),
                format!("container {name} is waiting for a volume to mount"),
                vec![status_evidence(
                    namespace,
                    pod_name,
                    &field("state.waiting.reason"),
                    &reason,
                )],
            ));
        }
    }
    // Killed for memory: reported at the first kill, whether the container has restarted
    // since (last state) or not yet (current state), not only once it crash-loops.
    if let Some(terminated) = last_terminated
        .filter(|t| t.reason.as_deref() == Some("OOMKilled"))
        .or_else(|| {
            state
                .and_then(|s| s.terminated.as_ref())
                .filter(|t| t.reason.as_deref() == Some("OOMKilled"))
        })
    {
        return Some((
            "OOMKilled".to_owned(),
            format!(
                "container {name} was killed for running out of memory ({} restarts)",
                container.restart_count
            ),
            terminated_evidence(namespace, pod_name, name, terminated),
        ));
    }
    if container.restart_count > 0
        && (has_event("Liveness probe failed") || has_event("Startup probe failed"))
    {
        let mut evidence = vec![status_evidence(
            namespace,
            pod_name,
            &field("restartCount"),
            &container.restart_count.to_string(),
        )];
        if let Some(terminated) = last_terminated {
            evidence.extend(terminated_evidence(namespace, pod_name, name, terminated));
        }
        return Some((
            "Unhealthy".to_owned(),
            format!(
                "container {name} is restarted by failing probes ({} restarts)",
                container.restart_count
            ),
            evidence,
        ));
    }
    if let Some(terminated) = state.and_then(|s| s.terminated.as_ref())
        && terminated.exit_code != 0
    {
        return Some((
            "Terminated".to_owned(),
            format!("container {name} exited with code {}", terminated.exit_code),
            terminated_evidence(namespace, pod_name, name, terminated),
        ));
    }
    // A container that keeps dying is explained by how it dies, not by being unready between
    // two crashes.
    if container.restart_count >= 3
        && let Some(terminated) = last_terminated
        && terminated.exit_code != 0
    {
        return Some((
            "Restarting".to_owned(),
            format!(
                "container {name} keeps restarting ({} restarts, last exit code {})",
                container.restart_count, terminated.exit_code
            ),
            terminated_evidence(namespace, pod_name, name, terminated),
        ));
    }
    let running = state.is_some_and(|s| s.running.is_some());
    if running && !container.ready && settled {
        return Some((
            "NotReady".to_owned(),
            format!("container {name} is running but not ready"),
            vec![status_evidence(
                namespace,
                pod_name,
                &field("ready"),
                "false",
            )],
        ));
    }
    None
}

pub(crate) fn status_evidence(namespace: &str, pod: &str, field: &str, value: &str) -> Evidence {
    Evidence::new(
        EvidenceSource::Status,
        format!("pod/{namespace}/{pod}: {field}"),
        value.to_owned(),
    )
}

/// How many lines of a termination message are quoted.
const TERMINATION_MESSAGE_LINES: usize = 5;

/// A container's last termination: reason and exit code, then the last lines of its termination
/// message. The message is the application's own words (the file it wrote at
/// `terminationMessagePath`, or with `FallbackToLogsOnError` the tail of its log), so each line
/// is quoted as log evidence.
fn terminated_evidence(
    namespace: &str,
    pod: &str,
    container: &str,
    terminated: &k8s_openapi::api::core::v1::ContainerStateTerminated,
) -> Vec<Evidence> {
    let field = format!(
        "pod/{namespace}/{pod}: status.containerStatuses[{container}].lastState.terminated"
    );
    let mut evidence = vec![Evidence::new(
        EvidenceSource::Status,
        field.clone(),
        format!(
            "reason={} exitCode={}",
            terminated.reason.as_deref().unwrap_or("Unknown"),
            terminated.exit_code
        ),
    )];
    if let Some(message) = &terminated.message {
        evidence.extend(last_lines(
            message,
            TERMINATION_MESSAGE_LINES,
            &format!("{field}.message"),
        ));
    }
    evidence
}
