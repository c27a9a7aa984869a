//! The verdict engine, without IO: fed one observation per interval, it decides as Argo Rollouts'
//! analysis does — `successful` after N consecutive passing intervals, `failed` once failures
//! exceed the limit, `inconclusive` at the timeout — with the shadow's own rule on top: nothing
//! is proved unless the baseline clone reproduced the incident.

use aegis_core::{Category, Check, CheckResult, Verdict, VerificationPlan};

use crate::checks::Status;

/// One look at the shadow.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Milliseconds since the shadow's clones were created, on the cluster's clock.
    pub elapsed_ms: u64,
    /// Every check of the plan on the candidate, in plan order.
    pub checks: Vec<(Check, Status)>,
    /// What AEGIS diagnoses on the baseline clone: the incident's category, with the finding
    /// reasons behind it, when the baseline shows it now.
    pub baseline_signature: Option<Vec<String>>,
    /// The categories AEGIS diagnoses on the candidate clone now.
    pub candidate_categories: Vec<Category>,
}

/// Where the engine stands after an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Continue,
    Done { verdict: Verdict, reason: String },
}

/// Categories a clone can show only because of the shadow's isolation: an application that
/// exits or is not ready when its dependencies are unreachable (egress denied) or its Secrets
/// hold placeholder values.
const ISOLATION_EXPLAINS: [Category; 4] = [
    Category::AppCrash,
    Category::ReadinessProbeFailure,
    Category::LivenessProbeFailure,
    Category::Unknown,
];

/// How early a look may come and still count as the next interval's: ticks are scheduled, and a
/// scheduled wake-up lands a little before or after its time.
const TICK_SLACK_MS: u64 = 100;

/// Milliseconds as people read them: `5s`, `2.3s`.
fn seconds_text(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// The state of one verification.
#[derive(Debug, Clone)]
pub struct Engine {
    category: Category,
    interval_ms: u64,
    success_threshold: u32,
    failure_limit: u32,
    timeout_ms: u64,
    results: Vec<CheckResult>,
    /// Looks in a row at which every check passed, and when that run began.
    consecutive: u32,
    run_start: Option<u64>,
    failures: u32,
    last_failure: Option<u64>,
    reproduced: Option<Vec<String>>,
    /// When the baseline first showed the incident.
    reproduced_at: Option<u64>,
    last_failures: Vec<String>,
    last_health: Option<f64>,
    last_candidate: Vec<Category>,
}

impl Engine {
    /// An engine for verifying a fix of `category` by `plan`.
    pub fn new(category: Category, plan: &VerificationPlan) -> Self {
        Self {
            category,
            interval_ms: plan.interval_seconds.max(1) * 1000,
            success_threshold: plan.success_threshold.max(1),
            failure_limit: plan.failure_limit,
            timeout_ms: plan.timeout_seconds * 1000,
            results: plan
                .checks
                .iter()
                .map(|check| CheckResult {
                    check: check.clone(),
                    passes: 0,
                    failures: 0,
                    timeline: Vec::new(),
                })
                .collect(),
            consecutive: 0,
            run_start: None,
            failures: 0,
            last_failure: None,
            reproduced: None,
            reproduced_at: None,
            last_failures: Vec::new(),
            last_health: None,
            last_candidate: Vec::new(),
        }
    }

    /// Each check's counts and timeline so far.
    pub fn results(&self) -> &[CheckResult] {
        &self.results
    }

    /// The baseline's signature, once it reproduced the incident.
    pub fn reproduced(&self) -> Option<&[String]> {
        self.reproduced.as_deref()
    }

    /// Milliseconds from the shadow's creation until the baseline first showed the incident.
    pub fn reproduced_after_ms(&self) -> Option<u64> {
        self.reproduced_at
    }

    /// The share of checks passing at the last observation.
    pub fn health_score(&self) -> Option<f64> {
        self.last_health
    }

    /// Takes one observation and says whether the verdict is certain.
    pub fn observe(&mut self, observation: Observation) -> Decision {
        let elapsed = observation.elapsed_ms;
        if self.reproduced.is_none()
            && let Some(signature) = observation.baseline_signature
        {
            self.reproduced = Some(signature);
            self.reproduced_at = Some(elapsed);
        }
        self.last_candidate = observation.candidate_categories;
        let passing = observation
            .checks
            .iter()
            .filter(|(_, s)| s.is_pass())
            .count();
        self.last_health = (!observation.checks.is_empty())
            .then(|| passing as f64 / observation.checks.len() as f64);
        // A failure counts once per interval: a look in between (a watch woke us) shows it
        // early, and the count waits for the next interval.
        let any_failure = observation
            .checks
            .iter()
            .any(|(_, s)| matches!(s, Status::Fail(_)));
        let failure_counts = any_failure
            && self.last_failure.is_none_or(|last| {
                elapsed.saturating_sub(last) + TICK_SLACK_MS >= self.interval_ms
            });
        let mut failed_now = Vec::new();
        for ((check, status), result) in observation.checks.iter().zip(&mut self.results) {
            debug_assert_eq!(check, &result.check);
            let state = match status {
                Status::Pass => "pass".to_owned(),
                Status::Pending(why) => format!("pending: {why}"),
                Status::Fail(why) => {
                    failed_now.push(format!("{}: {why}", check.id()));
                    format!("fail: {why}")
                }
            };
            // The timeline records changes: each line is when a check came to a new state.
            let unchanged = result
                .timeline
                .last()
                .and_then(|line| line.split_once(' '))
                .is_some_and(|(_, last)| last == state);
            if !unchanged {
                result
                    .timeline
                    .push(format!("+{} {state}", seconds_text(elapsed)));
            }
            match status {
                Status::Pass => result.passes += 1,
                Status::Fail(_) if failure_counts => result.failures += 1,
                _ => {}
            }
        }
        if failure_counts {
            self.failures += 1;
            self.last_failure = Some(elapsed);
        }
        if !failed_now.is_empty() {
            self.last_failures = failed_now;
        }
        // A run of looks at which every check passed; it proves the fix once it spans the
        // threshold's intervals.
        if passing == observation.checks.len() {
            self.run_start.get_or_insert(elapsed);
            self.consecutive += 1;
        } else {
            self.run_start = None;
            self.consecutive = 0;
        }
        self.decide(elapsed)
    }

    fn decide(&self, elapsed_ms: u64) -> Decision {
        let category = self.category;
        if let Some(signature) = &self.reproduced {
            let needed_ms = u64::from(self.success_threshold - 1) * self.interval_ms;
            if let Some(start) = self.run_start
                && self.consecutive >= self.success_threshold
                && elapsed_ms.saturating_sub(start) + TICK_SLACK_MS >= needed_ms
            {
                return Decision::Done {
                    verdict: Verdict::Successful,
                    reason: format!(
                        "the candidate passed every check at {} looks in a row over {} while the unchanged baseline showed {category} ({})",
                        self.consecutive,
                        seconds_text(elapsed_ms.saturating_sub(start)),
                        signature.join(", ")
                    ),
                };
            }
            if self.failures > self.failure_limit {
                return self.unhealthy_candidate(&format!(
                    "{} failing intervals, more than the limit of {}",
                    self.failures, self.failure_limit
                ));
            }
        }
        let timeout = self.timeout_ms / 1000;
        if elapsed_ms >= self.timeout_ms {
            if self.reproduced.is_none() {
                return Decision::Done {
                    verdict: Verdict::Inconclusive,
                    reason: format!(
                        "the shadow does not reproduce the incident: the unchanged baseline showed no {category} within {timeout} s"
                    ),
                };
            }
            if self.failures > 0 || !self.last_candidate.is_empty() {
                return self.unhealthy_candidate(&format!("no verdict within {timeout} s"));
            }
            return Decision::Done {
                verdict: Verdict::Inconclusive,
                reason: format!(
                    "the candidate did not pass every check {} times in a row within {timeout} s",
                    self.success_threshold
                ),
            };
        }
        Decision::Continue
    }

    /// The verdict on a candidate that did not become healthy: `cause-cleared` when it lost the
    /// incident's failure and what it shows instead the isolation explains, else `failed`.
    fn unhealthy_candidate(&self, why: &str) -> Decision {
        let category = self.category;
        let shows_incident = self.last_candidate.contains(&category);
        let isolation_explains = !self.last_candidate.is_empty()
            && self
                .last_candidate
                .iter()
                .all(|c| ISOLATION_EXPLAINS.contains(c));
        if !shows_incident && isolation_explains {
            let shown: Vec<&str> = self.last_candidate.iter().map(|c| c.id()).collect();
            return Decision::Done {
                verdict: Verdict::Inconclusive,
                reason: format!(
                    "cause-cleared: the candidate no longer shows {category} but is held back by the shadow's isolation (it shows {}; egress is denied and Secrets hold placeholders)",
                    shown.join(", ")
                ),
            };
        }
        let mut seen = self.last_failures.join("; ");
        if shows_incident {
            seen = format!("it still shows {category}; {seen}");
        }
        Decision::Done {
            verdict: Verdict::Failed,
            reason: format!("the candidate failed ({why}): {seen}"),
        }
    }
}

#[cfg(test)]
mod tests;
