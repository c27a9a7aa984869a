//! The confirmation window after a production change: the workload's rollout, the shadow's
//! typed checks on the pods of the new revision, and whether AEGIS still diagnoses the incident
//! on the workload — looked at every interval until the change is confirmed or has regressed.
//!
//! [`Confirmation`] decides without IO, as the shadow's verdict engine does: confirmed after
//! the plan's number of healthy looks in a row, regressed once failing intervals exceed the
//! plan's limit or when the window closes without confirmation (an unknown outcome is never
//! left standing in production).

use aegis_core::state::pod_is_ready;
use aegis_core::{Category, Check, ClusterState, ResourceKind, ResourceRef, VerificationPlan};
use aegis_rules::Lookup;
use aegis_shadow::checks::{self, Status, Subject};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// One look at the production workload.
#[derive(Debug, Clone)]
pub struct Look {
    /// Milliseconds since the change was written, on the cluster's clock.
    pub elapsed_ms: u64,
    /// Whether the workload's controller rolled the change out.
    pub rollout: Status,
    /// The plan's checks on the pods of the new revision.
    pub checks: Vec<(Check, Status)>,
    /// The incident's finding reasons, while AEGIS still diagnoses it on the workload.
    pub still_failing: Option<Vec<String>>,
}

impl Look {
    /// The look in one line: what passes, what waits and what fails.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("rollout {}", status_text(&self.rollout))];
        for (check, status) in &self.checks {
            parts.push(format!("{} {}", check.id(), status_text(status)));
        }
        if let Some(reasons) = &self.still_failing {
            parts.push(format!("incident still diagnosed ({})", reasons.join(", ")));
        }
        parts.join("; ")
    }

    fn failures(&self) -> Vec<String> {
        let mut failed: Vec<String> = std::iter::once(("rollout", &self.rollout))
            .chain(self.checks.iter().map(|(c, s)| (c.id(), s)))
            .filter_map(|(name, status)| match status {
                Status::Fail(why) => Some(format!("{name}: {why}")),
                _ => None,
            })
            .collect();
        // Once the rollout is complete, a failure AEGIS still diagnoses is the fix not working.
        if self.rollout.is_pass()
            && let Some(reasons) = &self.still_failing
        {
            failed.push(format!(
                "the incident is still diagnosed: {}",
                reasons.join(", ")
            ));
        }
        failed
    }

    fn healthy(&self) -> bool {
        self.rollout.is_pass()
            && self.checks.iter().all(|(_, s)| s.is_pass())
            && self.still_failing.is_none()
    }
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Pass => "pass".to_owned(),
        Status::Pending(why) => format!("pending ({why})"),
        Status::Fail(why) => format!("fail ({why})"),
    }
}

/// Where the window stands after a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Confirmed(String),
    Regressed(String),
}

/// How early a look may come and still count as the next interval's.
const TICK_SLACK_MS: u64 = 100;

/// The state of one confirmation window.
#[derive(Debug, Clone)]
pub struct Confirmation {
    interval_ms: u64,
    success_threshold: u32,
    failure_limit: u32,
    timeout_ms: u64,
    consecutive: u32,
    run_start: Option<u64>,
    failures: u32,
    last_failure: Option<u64>,
    last_failed: Vec<String>,
    last_summary: String,
    /// Each change of what the looks saw: `+3s rollout pass; ready pending (…)`.
    pub timeline: Vec<String>,
}

impl Confirmation {
    /// A window with the plan's interval, success threshold and failure limit, closing after
    /// `timeout_seconds`.
    pub fn new(plan: &VerificationPlan, timeout_seconds: u64) -> Self {
        Self {
            interval_ms: plan.interval_seconds.max(1) * 1000,
            success_threshold: plan.success_threshold.max(1),
            failure_limit: plan.failure_limit,
            timeout_ms: timeout_seconds.saturating_mul(1000),
            consecutive: 0,
            run_start: None,
            failures: 0,
            last_failure: None,
            last_failed: Vec::new(),
            last_summary: String::new(),
            timeline: Vec::new(),
        }
    }

    /// Takes one look and says whether the outcome is certain.
    pub fn observe(&mut self, look: &Look) -> Decision {
        let elapsed = look.elapsed_ms;
        let summary = look.summary();
        if summary != self.last_summary {
            self.timeline
                .push(format!("+{:.1}s {summary}", elapsed as f64 / 1000.0));
            self.last_summary = summary;
        }
        let failed = look.failures();
        // A failure counts once per interval, however often a watch wakes the window.
        if !failed.is_empty()
            && self
                .last_failure
                .is_none_or(|last| elapsed.saturating_sub(last) + TICK_SLACK_MS >= self.interval_ms)
        {
            self.failures += 1;
            self.last_failure = Some(elapsed);
            self.last_failed = failed;
        }
        if look.healthy() {
            self.run_start.get_or_insert(elapsed);
            self.consecutive += 1;
        } else {
            self.run_start = None;
            self.consecutive = 0;
        }
        let needed_ms = u64::from(self.success_threshold - 1) * self.interval_ms;
        if let Some(start) = self.run_start
            && self.consecutive >= self.success_threshold
            && elapsed.saturating_sub(start) + TICK_SLACK_MS >= needed_ms
        {
            return Decision::Confirmed(format!(
                "the rollout completed and every check passed at {} looks in a row, {:.1}s after the change, and the incident is no longer diagnosed",
                self.consecutive,
                elapsed as f64 / 1000.0
            ));
        }
        if self.failures > self.failure_limit {
            return Decision::Regressed(format!(
                "{} failing intervals, more than the limit of {}: {}",
                self.failures,
                self.failure_limit,
                self.last_failed.join("; ")
            ));
        }
        if elapsed >= self.timeout_ms {
            return Decision::Regressed(format!(
                "not confirmed within {} s: {}",
                self.timeout_ms / 1000,
                self.last_summary
            ));
        }
        Decision::Continue
    }
}

/// What one look at production needs to know about the change.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// The workload whose pods run the change (for a Service fix, the workload it selects).
    pub workload: ResourceRef,
    /// The object the change patched.
    pub target: ResourceRef,
    pub category: Category,
    pub plan: VerificationPlan,
}

/// Looks at production in `state`: the rollout of the workload, the plan's checks on the pods
/// of its current revision, and what AEGIS diagnoses on it. Also returns the pods looked at.
pub fn look<'a>(
    state: &'a ClusterState,
    subjects: &Subjects,
    elapsed_ms: u64,
) -> (Look, Vec<&'a Pod>) {
    let lookup = Lookup::new(state);
    let (pods, mut controllers, rollout) = match pods_of(&lookup, subjects) {
        Some((pods, controllers)) => {
            let rollout = rollout(&lookup, &subjects.workload);
            (pods, controllers, rollout)
        }
        None => (
            Vec::new(),
            Vec::new(),
            Status::Pending("the controller has not created the new revision yet".to_owned()),
        ),
    };
    controllers.push(subjects.workload.name.clone());
    let subject = Subject::Production {
        controllers: &controllers,
    };
    let checks = subjects
        .plan
        .checks
        .iter()
        .map(|check| {
            (
                check.clone(),
                checks::evaluate_for(check, state, &pods, subject),
            )
        })
        .collect();
    let (_, mut on_workload) =
        checks::diagnoses(state, &[], std::slice::from_ref(&subjects.workload));
    let look = Look {
        elapsed_ms,
        rollout,
        checks,
        still_failing: on_workload.remove(&subjects.category),
    };
    (look, pods)
}

/// The pods that run the workload's current template, and the names of the controllers that
/// create them; `None` until the new revision exists.
fn pods_of<'a>(lookup: &Lookup<'a>, subjects: &Subjects) -> Option<(Vec<&'a Pod>, Vec<String>)> {
    let workload = &subjects.workload;
    if workload.kind == ResourceKind::Service {
        // A Service incident: the pods the (fixed) selector picks.
        let service = lookup.object(workload)?;
        let selector = service.pointer("/spec/selector")?.as_object()?.clone();
        let pods = lookup
            .index()
            .state()
            .pods
            .iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(workload.namespace_str()))
            .filter(|pod| {
                let labels = pod.metadata.labels.as_ref();
                selector.iter().all(|(key, value)| {
                    labels.and_then(|l| l.get(key)).map(String::as_str) == value.as_str()
                })
            })
            .collect();
        return Some((pods, Vec::new()));
    }
    aegis_rules::revision::current_pods(lookup, workload)
}

/// Whether the workload's controller has rolled its current spec out to every replica.
fn rollout(lookup: &Lookup<'_>, workload: &ResourceRef) -> Status {
    let Some(object) = lookup.object(workload) else {
        return Status::Fail(format!("{workload} no longer exists"));
    };
    let int = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64);
    if let (Some(generation), Some(observed)) = (
        int("/metadata/generation"),
        int("/status/observedGeneration"),
    ) && observed < generation
    {
        return Status::Pending("the controller has not observed the change yet".to_owned());
    }
    let deadline_exceeded = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Progressing")
                && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
        });
    if deadline_exceeded {
        return Status::Fail("the rollout exceeded its progress deadline".to_owned());
    }
    let wanted = int("/spec/replicas").unwrap_or(1);
    let (updated, ready, total) = match workload.kind {
        ResourceKind::Deployment => (
            int("/status/updatedReplicas").unwrap_or(0),
            int("/status/readyReplicas").unwrap_or(0),
            int("/status/replicas").unwrap_or(0),
        ),
        ResourceKind::StatefulSet => {
            let updated = if object.pointer("/status/updateRevision")
                == object.pointer("/status/currentRevision")
            {
                int("/status/replicas").unwrap_or(0)
            } else {
                int("/status/updatedReplicas").unwrap_or(0)
            };
            (updated, int("/status/readyReplicas").unwrap_or(0), updated)
        }
        ResourceKind::DaemonSet => {
            let desired = int("/status/desiredNumberScheduled").unwrap_or(0);
            let updated = int("/status/updatedNumberScheduled").unwrap_or(0);
            let ready = int("/status/numberReady").unwrap_or(0);
            return if updated >= desired && ready >= desired {
                Status::Pass
            } else {
                Status::Pending(format!("{updated} of {desired} updated, {ready} ready"))
            };
        }
        // A bare pod, a Service: nothing rolls out.
        _ => return Status::Pass,
    };
    if updated >= wanted && ready >= wanted && total <= wanted {
        Status::Pass
    } else {
        Status::Pending(format!(
            "{updated} of {wanted} updated, {ready} ready, {total} in all"
        ))
    }
}

/// The evidence a decision rests on: the look, the pods' container states, their events and
/// the last lines of their logs.
pub fn evidence(state: &ClusterState, look: &Look, pods: &[&Pod]) -> Vec<String> {
    let mut lines = vec![look.summary()];
    let names: Vec<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten();
        for status in statuses {
            let state_text = status
                .state
                .as_ref()
                .map(|s| {
                    if let Some(w) = &s.waiting {
                        format!("waiting ({})", w.reason.as_deref().unwrap_or_default())
                    } else if let Some(t) = &s.terminated {
                        format!("terminated ({})", t.reason.as_deref().unwrap_or_default())
                    } else {
                        "running".to_owned()
                    }
                })
                .unwrap_or_default();
            lines.push(format!(
                "pod {name} container {}: {state_text}, {} restart(s), ready {}",
                status.name,
                status.restart_count,
                pod_is_ready(pod)
            ));
        }
    }
    for event in &state.events {
        let about = event.involved_object.name.as_deref().unwrap_or_default();
        if names.contains(&about) && event.type_.as_deref() == Some("Warning") {
            lines.push(format!(
                "event {about}: {}: {}",
                event.reason.as_deref().unwrap_or_default(),
                event.message.as_deref().unwrap_or_default()
            ));
        }
    }
    for (key, text) in &state.logs {
        if names.contains(&key.pod.as_str()) {
            for line in text
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                lines.push(format!("log {}/{}: {line}", key.pod, key.container));
            }
        }
    }
    lines.dedup();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> VerificationPlan {
        VerificationPlan {
            checks: vec![Check::Ready],
            interval_seconds: 1,
            success_threshold: 2,
            failure_limit: 2,
            timeout_seconds: 60,
        }
    }

    fn look(ms: u64, rollout: Status, ready: Status, failing: bool) -> Look {
        Look {
            elapsed_ms: ms,
            rollout,
            checks: vec![(Check::Ready, ready)],
            still_failing: failing.then(|| vec!["CrashLoopBackOff".to_owned()]),
        }
    }

    fn pending() -> Status {
        Status::Pending("not yet".to_owned())
    }

    #[test]
    fn a_change_is_confirmed_after_healthy_looks_in_a_row_spanning_the_threshold() {
        let mut window = Confirmation::new(&plan(), 30);
        assert_eq!(
            window.observe(&look(1000, pending(), pending(), true)),
            Decision::Continue
        );
        assert_eq!(
            window.observe(&look(2000, Status::Pass, Status::Pass, false)),
            Decision::Continue
        );
        // A look woken early by a watch does not shorten the run.
        assert_eq!(
            window.observe(&look(2300, Status::Pass, Status::Pass, false)),
            Decision::Continue
        );
        assert!(matches!(
            window.observe(&look(3000, Status::Pass, Status::Pass, false)),
            Decision::Confirmed(_)
        ));
        assert_eq!(window.timeline.len(), 2, "{:?}", window.timeline);
    }

    #[test]
    fn a_look_that_is_not_healthy_restarts_the_run() {
        let mut window = Confirmation::new(&plan(), 30);
        window.observe(&look(1000, Status::Pass, Status::Pass, false));
        window.observe(&look(2000, Status::Pass, pending(), false));
        assert_eq!(
            window.observe(&look(3000, Status::Pass, Status::Pass, false)),
            Decision::Continue
        );
        assert!(matches!(
            window.observe(&look(4000, Status::Pass, Status::Pass, false)),
            Decision::Confirmed(_)
        ));
    }

    #[test]
    fn failing_intervals_beyond_the_limit_are_a_regression_and_counted_once_per_interval() {
        let mut window = Confirmation::new(&plan(), 30);
        let bad = || Status::Fail("container api is CrashLoopBackOff".to_owned());
        for ms in [1000, 1200, 1400, 2000, 2500] {
            assert_eq!(
                window.observe(&look(ms, Status::Pass, bad(), false)),
                Decision::Continue,
                "{ms}"
            );
        }
        match window.observe(&look(3000, Status::Pass, bad(), false)) {
            Decision::Regressed(why) => {
                assert!(why.contains("3 failing intervals"), "{why}");
                assert!(why.contains("CrashLoopBackOff"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_incident_still_diagnosed_after_a_complete_rollout_is_a_failure_but_not_before() {
        let mut window = Confirmation::new(&plan(), 30);
        for ms in [1000, 2000, 3000, 4000] {
            assert_eq!(
                window.observe(&look(ms, pending(), Status::Pass, true)),
                Decision::Continue
            );
        }
        for ms in [5000, 6000] {
            assert_eq!(
                window.observe(&look(ms, Status::Pass, Status::Pass, true)),
                Decision::Continue
            );
        }
        assert!(matches!(
            window.observe(&look(7000, Status::Pass, Status::Pass, true)),
            Decision::Regressed(why) if why.contains("still diagnosed")
        ));
    }

    #[test]
    fn a_window_that_closes_unconfirmed_is_a_regression() {
        let mut window = Confirmation::new(&plan(), 5);
        assert_eq!(
            window.observe(&look(4000, pending(), pending(), false)),
            Decision::Continue
        );
        match window.observe(&look(5000, pending(), pending(), false)) {
            Decision::Regressed(why) => {
                assert!(why.starts_with("not confirmed within 5 s"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
}
