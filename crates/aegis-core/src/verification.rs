//! Verification in a shadow: the typed checks a plan asks for, and what a verification found
//! (SPEC §4 `verification`, §9). Checks are data; the sentence shown to people is rendering.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reason of a `skipped` verification whose fix has not been run in a shadow yet.
pub const NOT_VERIFIED: &str = "analysis only: the fix has not been run in a shadow environment";
/// The reason of a `skipped` verification when there is no fix.
pub const NO_FIX: &str = "no fix to verify";

/// One thing the shadow checks on the candidate clone at every interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum Check {
    /// Every container of the clone is ready.
    Ready,
    /// No container restarts once it has started.
    RestartsStable,
    /// No container waits in CrashLoopBackOff, ImagePullBackOff, ErrImagePull,
    /// CreateContainerConfigError, InvalidImageName or RunContainerError.
    NoBadWaiting,
    /// No container was OOMKilled.
    NotOomKilled,
    /// The clone's pod is scheduled (no FailedScheduling).
    Scheduled,
    /// No probe reports Unhealthy, and the containers outlived their liveness and startup
    /// probes' failure window.
    ProbesPassing,
    /// The clone of this Service has at least one ready endpoint.
    Endpoints { service: String },
}

impl Check {
    /// The stable identifier of the check (`ready`, `endpoints`, …).
    pub fn id(&self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::RestartsStable => "restarts-stable",
            Self::NoBadWaiting => "no-bad-waiting",
            Self::NotOomKilled => "not-oom-killed",
            Self::Scheduled => "scheduled",
            Self::ProbesPassing => "probes-passing",
            Self::Endpoints { .. } => "endpoints",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready => f.write_str("every container of the shadow copy is ready"),
            Self::RestartsStable => f.write_str("no container restarts once it has started"),
            Self::NoBadWaiting => f.write_str(
                "no container is waiting in CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError, InvalidImageName or RunContainerError",
            ),
            Self::NotOomKilled => f.write_str("no container was OOMKilled"),
            Self::Scheduled => f.write_str("the shadow pod is scheduled (no FailedScheduling)"),
            Self::ProbesPassing => f.write_str(
                "no probe reports Unhealthy, and the containers outlive their liveness and startup windows",
            ),
            Self::Endpoints { service } => {
                write!(f, "service {service} lists the shadow pod as a ready endpoint")
            }
        }
    }
}

/// How a fix will be verified in a shadow environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VerificationPlan {
    /// The checks made on the candidate at every interval.
    pub checks: Vec<Check>,
    pub interval_seconds: u64,
    /// Consecutive passing intervals needed for `successful`.
    pub success_threshold: u32,
    /// Failing intervals beyond which the verdict is `failed`.
    pub failure_limit: u32,
    /// After this long with no decision the verdict is `inconclusive`.
    pub timeout_seconds: u64,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Successful,
    Failed,
    Inconclusive,
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Successful => "successful",
            Self::Failed => "failed",
            Self::Inconclusive => "inconclusive",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one check showed over the whole verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    #[serde(flatten)]
    pub check: Check,
    /// Intervals at which it passed.
    pub passes: u32,
    /// Intervals at which it failed (a definite bad signal, not "not yet").
    pub failures: u32,
    /// When the check came to each new state: `+0s pending: not ready yet`, `+3s pass`,
    /// `+9s fail: container api is CrashLoopBackOff`.
    pub timeline: Vec<String>,
}

/// Whether the unchanged clone showed the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Baseline {
    pub reproduced: bool,
    /// The failure signature seen on it (finding reasons), or what was seen instead.
    pub signature: Vec<String>,
    /// Seconds from the shadow's creation until the incident was first seen on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduced_after_seconds: Option<f64>,
}

/// One fix that was tried, and how it fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CandidateOutcome {
    pub fix_summary: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// What a verification kept as evidence (SPEC §9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct EvidenceBundle {
    /// The patch applied to the candidate.
    #[schemars(schema_with = "crate::crd::any_value")]
    pub patch: Value,
    /// The diff of the workload's pod template (or Service spec) made by the patch.
    pub template_diff: Vec<String>,
    /// What the shadow holds instead of the real thing (placeholder Secrets), said plainly.
    pub placeholders: Vec<String>,
    /// Container statuses of the baseline clone, first and last seen.
    #[schemars(schema_with = "crate::crd::any_value")]
    pub baseline_before: Value,
    #[schemars(schema_with = "crate::crd::any_value")]
    pub baseline_after: Value,
    /// Container statuses of the candidate clone, first and last seen.
    #[schemars(schema_with = "crate::crd::any_value")]
    pub candidate_before: Value,
    #[schemars(schema_with = "crate::crd::any_value")]
    pub candidate_after: Value,
    /// Events of the shadow namespace (`Kind/name: Reason: message`).
    pub events: Vec<String>,
    /// Last log lines of the clones' containers.
    pub logs: Vec<String>,
    /// Seconds from the shadow's creation until the candidate's pods were Ready, as their Ready
    /// condition tells it; the verdict's own delay is `duration_seconds` less this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_ready_seconds: Option<f64>,
}

/// The result of verifying a fix (or why it was not verified).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VerificationResult {
    pub verdict: Verdict,
    /// Why the verdict is what it is, in a sentence.
    pub reason: String,
    /// Share of the candidate's checks passing at the last interval, `null` when nothing ran.
    pub health_score: Option<f64>,
    /// The shadow namespace, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Every fix tried, in order; the proposed fix is the first that verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateOutcome>,
    /// Time from the shadow's creation to the verdict, as the cluster's clock tells it (the
    /// simulator's clock on the mock world).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Box<EvidenceBundle>>,
    /// What the fix's target held when the shadow cloned it: production must still hold it
    /// when the fix is applied, or the fix is verified again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_basis: Option<crate::change::Basis>,
    /// What the target holds with the fix applied (the candidate's source): two fixes with the
    /// same result are the same change, however their patches are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_result: Option<crate::change::Basis>,
}

impl VerificationResult {
    /// A verification that did not run, and why.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Skipped,
            reason: reason.into(),
            health_score: None,
            shadow: None,
            baseline: None,
            checks: Vec::new(),
            candidates: Vec::new(),
            duration_seconds: None,
            evidence: None,
            target_basis: None,
            fix_result: None,
        }
    }
}

/// The verification of an incident's fix: the plan, and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    pub plan: Option<VerificationPlan>,
    pub result: VerificationResult,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_results_carry_the_check_id_beside_their_counts() {
        let result = CheckResult {
            check: Check::Endpoints {
                service: "web".to_owned(),
            },
            passes: 3,
            failures: 0,
            timeline: vec!["+5s pass".to_owned()],
        };
        let json = serde_json::to_value(&result).expect("serializable");
        assert_eq!(json["check"], "endpoints");
        assert_eq!(json["service"], "web");
        assert_eq!(json["passes"], 3);
        let back: CheckResult = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, result);
    }
}
