//! The lifecycle of an incident (SPEC §8): the phases it passes through from detection to a
//! change in production, and the transitions between them as a pure function, with a history of
//! who moved it, when and why.
//!
//! ```text
//! Detected → Diagnosed → Verifying → Verified | Failed | Escalated → Approved → Applied → RolledBack
//!                    ╰──→ Escalated                      ╰──→ Rejected ╰──→ RolledBack
//! any phase but Verifying and Approved ──→ Resolved ──→ Diagnosed | Escalated (it came back)
//! ```
//!
//! `Applied` means the change was made and confirmed on the production workload; a change that
//! regresses within its confirmation window goes from `Approved` straight to `RolledBack`.
//!
//! A changed fix sends an incident back to `Diagnosed` from wherever it stood before `Applied`,
//! which voids an approval instead of silently keeping it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::verification::Verdict;

/// Where an incident stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Analyzers found the failure.
    Detected,
    /// The rules (or the LLM) named a cause and proposed a fix.
    Diagnosed,
    /// The fix is being proved in a shadow.
    Verifying,
    /// The shadow's verdict is `successful`.
    Verified,
    /// The shadow's verdict is `failed`.
    Failed,
    /// A human must decide: no fix, low confidence, or an inconclusive shadow.
    Escalated,
    /// A human approved the fix for production.
    Approved,
    /// A human rejected the fix.
    Rejected,
    /// The fix was applied to production and confirmed.
    Applied,
    /// The fix was undone in production (by hand or after a regression).
    RolledBack,
    /// The failure is no longer seen (healed by a fix or on its own); the operator deletes
    /// resolved incidents after a retention period.
    Resolved,
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Self; 11] = [
        Self::Detected,
        Self::Diagnosed,
        Self::Verifying,
        Self::Verified,
        Self::Failed,
        Self::Escalated,
        Self::Approved,
        Self::Rejected,
        Self::Applied,
        Self::RolledBack,
        Self::Resolved,
    ];

    /// The phase as JSON and the CLI write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detected => "detected",
            Self::Diagnosed => "diagnosed",
            Self::Verifying => "verifying",
            Self::Verified => "verified",
            Self::Failed => "failed",
            Self::Escalated => "escalated",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Applied => "applied",
            Self::RolledBack => "rolled-back",
            Self::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What moves an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A diagnosis with a fix was made (or remade with a different fix).
    Diagnose,
    /// The diagnosis has no fix to propose, or is not confident enough: a human decides.
    Escalate,
    /// A shadow verification began.
    Verify,
    /// The shadow ended with this verdict.
    Verdict(Verdict),
    /// A human approved the fix.
    Approve,
    /// A human rejected the fix.
    Reject,
    /// The fix was applied to production and confirmed.
    Apply,
    /// The fix was undone in production.
    RollBack,
    /// The failure is no longer seen.
    Resolve,
}

impl Action {
    /// Every action, each verdict once.
    pub const ALL: [Self; 12] = [
        Self::Diagnose,
        Self::Escalate,
        Self::Verify,
        Self::Verdict(Verdict::Successful),
        Self::Verdict(Verdict::Failed),
        Self::Verdict(Verdict::Inconclusive),
        Self::Verdict(Verdict::Skipped),
        Self::Approve,
        Self::Reject,
        Self::Apply,
        Self::RollBack,
        Self::Resolve,
    ];
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Diagnose => f.write_str("diagnose"),
            Self::Escalate => f.write_str("escalate"),
            Self::Verify => f.write_str("verify"),
            Self::Verdict(verdict) => write!(f, "verdict {}", verdict.as_str()),
            Self::Approve => f.write_str("approve"),
            Self::Reject => f.write_str("reject"),
            Self::Apply => f.write_str("apply"),
            Self::RollBack => f.write_str("roll back"),
            Self::Resolve => f.write_str("resolve"),
        }
    }
}

/// A transition the lifecycle does not allow, with the actions that are allowed from there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an incident that is {from} cannot {action}; from {from} it can: {}", allowed_text(*.from))]
pub struct Refused {
    pub from: Phase,
    pub action: Action,
}

fn allowed_text(from: Phase) -> String {
    let allowed = allowed(from);
    if allowed.is_empty() {
        "nothing".to_owned()
    } else {
        allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The actions that can move an incident out of `from`.
pub fn allowed(from: Phase) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|action| next(from, *action).is_ok())
        .collect()
}

/// The phase `action` moves an incident in `from` to, or why it cannot.
pub fn next(from: Phase, action: Action) -> Result<Phase, Refused> {
    use Action as A;
    use Phase as P;
    let refused = Refused { from, action };
    let before_production = !matches!(from, P::Applied | P::RolledBack);
    Ok(match (from, action) {
        // A new or changed fix restarts the path to production, voiding an approval; an
        // applied fix is changed only through a rollback.
        (_, A::Diagnose) if before_production && from != P::Verifying => P::Diagnosed,
        (P::RolledBack, A::Diagnose) => P::Diagnosed,
        (
            P::Detected | P::Diagnosed | P::Verifying | P::Verified | P::Failed | P::Resolved,
            A::Escalate,
        )
        | (P::Verifying, A::Verdict(Verdict::Inconclusive | Verdict::Skipped)) => P::Escalated,
        (P::Diagnosed | P::Verified | P::Failed | P::Escalated, A::Verify) => P::Verifying,
        (P::Verifying, A::Verdict(Verdict::Successful)) => P::Verified,
        (P::Verifying, A::Verdict(Verdict::Failed)) => P::Failed,
        // A human may approve a fix the shadow could not prove; the change engine still checks
        // what approval alone does not allow.
        (P::Verified | P::Failed | P::Escalated, A::Approve) => P::Approved,
        (P::Verified | P::Failed | P::Escalated | P::Approved, A::Reject) => P::Rejected,
        (P::Approved, A::Apply) => P::Applied,
        // A change is undone after it was confirmed (by hand), or within its confirmation
        // window (a regression), before it ever counted as applied.
        (P::Applied | P::Approved, A::RollBack) => P::RolledBack,
        // A failure that is no longer seen resolves the incident, unless a shadow or a
        // production change is still under way: those end on their own evidence first.
        (
            P::Detected
            | P::Diagnosed
            | P::Verified
            | P::Failed
            | P::Escalated
            | P::Rejected
            | P::Applied
            | P::RolledBack,
            A::Resolve,
        ) => P::Resolved,
        _ => return Err(refused),
    })
}

/// One step of an incident's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
    pub action: Action,
    /// Who: a user name, `aegis` for the analysis, `operator` for the controller.
    pub by: String,
    /// When, RFC 3339.
    pub at: String,
    /// Why, in words.
    pub reason: String,
}

/// An incident's phase and how it got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Lifecycle {
    pub phase: Phase,
    #[serde(default)]
    pub history: Vec<Transition>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            phase: Phase::Detected,
            history: Vec::new(),
        }
    }
}

impl Lifecycle {
    /// Moves the incident by `action`, recording who, when and why; on refusal nothing changes.
    pub fn advance(
        &mut self,
        action: Action,
        by: &str,
        at: &str,
        reason: &str,
    ) -> Result<Phase, Refused> {
        let to = next(self.phase, action)?;
        self.history.push(Transition {
            from: self.phase,
            to,
            action,
            by: by.to_owned(),
            at: at.to_owned(),
            reason: reason.to_owned(),
        });
        self.phase = to;
        Ok(to)
    }

    /// Whether a human approved the fix and nothing has voided it since.
    pub fn is_approved(&self) -> bool {
        self.phase == Phase::Approved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every allowed transition: (from, action, to). Everything else is refused.
    const ALLOWED: &[(Phase, Action, Phase)] = {
        use Action as A;
        use Phase as P;
        &[
            (P::Detected, A::Diagnose, P::Diagnosed),
            (P::Detected, A::Escalate, P::Escalated),
            (P::Diagnosed, A::Diagnose, P::Diagnosed),
            (P::Diagnosed, A::Escalate, P::Escalated),
            (P::Diagnosed, A::Verify, P::Verifying),
            (P::Verifying, A::Escalate, P::Escalated),
            (P::Verifying, A::Verdict(Verdict::Successful), P::Verified),
            (P::Verifying, A::Verdict(Verdict::Failed), P::Failed),
            (
                P::Verifying,
                A::Verdict(Verdict::Inconclusive),
                P::Escalated,
            ),
            (P::Verifying, A::Verdict(Verdict::Skipped), P::Escalated),
            (P::Verified, A::Diagnose, P::Diagnosed),
            (P::Verified, A::Escalate, P::Escalated),
            (P::Verified, A::Verify, P::Verifying),
            (P::Verified, A::Approve, P::Approved),
            (P::Verified, A::Reject, P::Rejected),
            (P::Failed, A::Diagnose, P::Diagnosed),
            (P::Failed, A::Escalate, P::Escalated),
            (P::Failed, A::Verify, P::Verifying),
            (P::Failed, A::Approve, P::Approved),
            (P::Failed, A::Reject, P::Rejected),
            (P::Escalated, A::Diagnose, P::Diagnosed),
            (P::Escalated, A::Verify, P::Verifying),
            (P::Escalated, A::Approve, P::Approved),
            (P::Escalated, A::Reject, P::Rejected),
            (P::Approved, A::Diagnose, P::Diagnosed),
            (P::Approved, A::Reject, P::Rejected),
            (P::Approved, A::Apply, P::Applied),
            (P::Rejected, A::Diagnose, P::Diagnosed),
            (P::Approved, A::RollBack, P::RolledBack),
            (P::Applied, A::RollBack, P::RolledBack),
            (P::RolledBack, A::Diagnose, P::Diagnosed),
            (P::Detected, A::Resolve, P::Resolved),
            (P::Diagnosed, A::Resolve, P::Resolved),
            (P::Verified, A::Resolve, P::Resolved),
            (P::Failed, A::Resolve, P::Resolved),
            (P::Escalated, A::Resolve, P::Resolved),
            (P::Rejected, A::Resolve, P::Resolved),
            (P::Applied, A::Resolve, P::Resolved),
            (P::RolledBack, A::Resolve, P::Resolved),
            (P::Resolved, A::Diagnose, P::Diagnosed),
            (P::Resolved, A::Escalate, P::Escalated),
        ]
    };

    #[test]
    fn every_transition_is_allowed_or_refused_as_the_table_says() {
        for from in Phase::ALL {
            for action in Action::ALL {
                let expected = ALLOWED
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                match (next(from, action), expected) {
                    (Ok(to), Some(wanted)) => assert_eq!(to, wanted, "{from} + {action}"),
                    (Err(refused), None) => {
                        assert_eq!((refused.from, refused.action), (from, action));
                        assert!(refused.to_string().contains(from.as_str()), "{refused}");
                    }
                    (got, wanted) => {
                        panic!("{from} + {action}: got {got:?}, table says {wanted:?}")
                    }
                }
            }
        }
    }

    #[test]
    fn a_changed_fix_voids_an_approval_and_an_applied_fix_changes_only_by_rolling_back() {
        let mut lifecycle = Lifecycle::default();
        let at = "2026-12-02T20:00:00Z";
        for action in [
            Action::Diagnose,
            Action::Verify,
            Action::Verdict(Verdict::Successful),
            Action::Approve,
        ] {
            lifecycle
                .advance(action, "alice", at, "test")
                .expect("allowed");
        }
        assert!(lifecycle.is_approved());
        lifecycle
            .advance(Action::Diagnose, "aegis", at, "the fix changed")
            .expect("a new fix restarts the path");
        assert!(!lifecycle.is_approved(), "the approval is void");
        assert_eq!(lifecycle.history.len(), 5);
        assert_eq!(lifecycle.history[4].from, Phase::Approved);

        let mut applied = Lifecycle {
            phase: Phase::Applied,
            history: Vec::new(),
        };
        let refused = applied
            .advance(Action::Diagnose, "aegis", at, "re-analysis")
            .expect_err("an applied fix is not replaced in place");
        assert_eq!(
            refused.to_string(),
            "an incident that is applied cannot diagnose; from applied it can: roll back, resolve"
        );
        assert!(applied.history.is_empty(), "a refusal records nothing");
        assert_eq!(
            applied.advance(Action::RollBack, "aegis", at, "regression"),
            Ok(Phase::RolledBack)
        );
    }

    #[test]
    fn the_lifecycle_round_trips_through_json() {
        let mut lifecycle = Lifecycle::default();
        lifecycle
            .advance(Action::Escalate, "aegis", "2026-12-02T20:00:00Z", "no fix")
            .expect("allowed");
        let text = serde_json::to_string(&lifecycle).expect("serializes");
        assert!(text.contains("\"phase\":\"escalated\""), "{text}");
        let back: Lifecycle = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, lifecycle);
    }
}
