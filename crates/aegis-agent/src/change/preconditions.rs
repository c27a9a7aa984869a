//! What must hold before a fix may change production, decided from the incident store alone
//! (no IO): a fix the policy allows, an approval (or auto-apply for the category with a
//! `successful` verdict), a verdict that proved the fix, and no recent change to the workload.
//! What only the cluster can tell (the target unchanged since verification, the policy on the
//! live object, the API server's dry run) the engine checks afterwards.

use aegis_core::change::{ChangeKind, ChangeStatus};
use aegis_core::lifecycle::Phase;
use aegis_core::settings::PolicySettings;
use aegis_core::{Category, ResourceRef, Risk, Verdict};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::store::StoredIncident;

/// Why a change may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A human approved the fix.
    Approved { by: String, at: String },
    /// `policy.auto_apply_categories` names the category and the shadow's verdict is
    /// `successful`.
    AutoApply,
}

/// A precondition that does not hold, with what it saw.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("incident {id} has no fix to apply")]
    NoFix { id: String },
    #[error("the fix of incident {id} is denied by the fix policy: {violations}")]
    PolicyDenied { id: String, violations: String },
    #[error("the fix of incident {id} is not approved (the incident is {phase}){auto}")]
    NotApproved {
        id: String,
        phase: Phase,
        /// Why auto-apply does not cover it, when that was a possibility.
        auto: String,
    },
    #[error(
        "the fix of incident {id} was not proved in a shadow: its verdict is {verdict} ({reason})"
    )]
    VerdictNotSuccessful {
        id: String,
        verdict: Verdict,
        reason: String,
    },
    #[error("the fix of incident {id} is already applied")]
    AlreadyApplied { id: String },
    #[error(
        "{workload} was changed by {change} at {at}; no other change is made to it until {until} (policy.cooldown_seconds)"
    )]
    Cooldown {
        workload: String,
        change: String,
        at: String,
        until: String,
    },
    #[error("incident {id} was {phase}: nothing in production to roll back")]
    NothingToRollBack { id: String, phase: Phase },
}

impl Refusal {
    /// The way out, for the `hint:` line.
    pub fn hint(&self) -> String {
        match self {
            Self::NoFix { .. } => {
                "it was escalated: `aegis incident show` gives the evidence and why no fix was proposed".to_owned()
            }
            Self::PolicyDenied { .. } => "a denied fix is reported, never applied".to_owned(),
            Self::NotApproved { id, phase, .. } => match phase {
                Phase::Verified | Phase::Failed | Phase::Escalated => {
                    format!("approve it first: `aegis incident approve {id}` (or `approve {id} --apply`)")
                }
                Phase::Rejected => "the fix was rejected; `aegis incident show` gives who and why".to_owned(),
                Phase::RolledBack => "the fix was rolled back; analyze the workload again for a new diagnosis".to_owned(),
                Phase::Resolved => "the failure is no longer seen; nothing is left to fix".to_owned(),
                _ => "verify the fix in a shadow first: `aegis analyze KIND/NAME` (without --no-verify)".to_owned(),
            },
            Self::VerdictNotSuccessful { .. } => {
                "analyze the workload again to verify the fix in a shadow; only a successful verdict (or a cause-cleared one a human approved) reaches production".to_owned()
            }
            Self::AlreadyApplied { id } => {
                format!("`aegis incident show {id}` gives the change; `aegis incident rollback {id}` undoes it")
            }
            Self::Cooldown { until, .. } => {
                format!("wait until {until}, or lower policy.cooldown_seconds")
            }
            Self::NothingToRollBack { id, .. } => {
                format!("`aegis incident show {id}` gives its history")
            }
        }
    }
}

/// The verdicts that let a human-approved fix reach production: `successful`, or
/// `inconclusive` because the shadow's isolation held a candidate back that had lost the
/// failure (`cause-cleared`).
fn proves_fix(verdict: Verdict, reason: &str) -> bool {
    verdict == Verdict::Successful
        || (verdict == Verdict::Inconclusive && reason.starts_with("cause-cleared"))
}

/// Whether `stored`'s fix may be applied now (`now` on the cluster's clock), given every
/// recorded incident (for the workload's cooldown).
pub fn may_apply(
    stored: &StoredIncident,
    all: &[StoredIncident],
    policy: &PolicySettings,
    now: Timestamp,
) -> Result<Grant, Refusal> {
    let incident = &stored.incident;
    let id = incident.id.clone();
    let Some(fix) = &incident.fix else {
        return Err(Refusal::NoFix { id });
    };
    if !fix.policy.allowed {
        return Err(Refusal::PolicyDenied {
            id,
            violations: fix.policy.violations_text(),
        });
    }
    let result = &incident.verification.result;
    let grant = match stored.lifecycle.phase {
        Phase::Applied => return Err(Refusal::AlreadyApplied { id }),
        Phase::Approved => {
            let approval = stored
                .lifecycle
                .history
                .iter()
                .rev()
                .find(|t| t.to == Phase::Approved);
            Grant::Approved {
                by: approval.map_or_else(String::new, |t| t.by.clone()),
                at: approval.map_or_else(String::new, |t| t.at.clone()),
            }
        }
        Phase::Verified => {
            let category = incident.rca.category;
            match auto_apply_refused(category, fix.risk, result.verdict, policy) {
                None => Grant::AutoApply,
                Some(why) => {
                    return Err(Refusal::NotApproved {
                        id,
                        phase: Phase::Verified,
                        auto: format!(", and auto-apply does not cover it: {why}"),
                    });
                }
            }
        }
        phase => {
            return Err(Refusal::NotApproved {
                id,
                phase,
                auto: String::new(),
            });
        }
    };
    if !proves_fix(result.verdict, &result.reason) {
        return Err(Refusal::VerdictNotSuccessful {
            id,
            verdict: result.verdict,
            reason: result.reason.clone(),
        });
    }
    cooldown(&incident.workload, &fix.target, all, policy, now)?;
    Ok(grant)
}

/// Why auto-apply does not cover a verified fix, or `None` when it does.
fn auto_apply_refused(
    category: Category,
    risk: Risk,
    verdict: Verdict,
    policy: &PolicySettings,
) -> Option<String> {
    if !policy.auto_apply_categories.contains(&category) {
        return Some(format!(
            "policy.auto_apply_categories does not name {category}"
        ));
    }
    // High risk: a model's own fix, which always needs a human's approval.
    if risk == Risk::High {
        return Some("the fix is high-risk and always needs a human's approval".to_owned());
    }
    (verdict != Verdict::Successful).then(|| format!("the shadow's verdict is {verdict}"))
}

/// Refuses a change to a workload another change touched within the cooldown.
fn cooldown(
    workload: &ResourceRef,
    target: &ResourceRef,
    all: &[StoredIncident],
    policy: &PolicySettings,
    now: Timestamp,
) -> Result<(), Refusal> {
    let window =
        SignedDuration::from_secs(i64::try_from(policy.cooldown_seconds).unwrap_or(i64::MAX));
    let recent = all
        .iter()
        .flat_map(|s| s.changes.iter().map(move |c| (s, c)))
        .filter(|(s, c)| {
            let touched = matches!(
                c.status,
                ChangeStatus::Confirmed | ChangeStatus::Made | ChangeStatus::RolledBack
            ) || (c.kind == ChangeKind::Apply && c.status.in_progress());
            touched && (&s.incident.workload == workload || &c.target == target)
        })
        .filter_map(|(_, c)| {
            let at: Timestamp = c.last_at().parse().ok()?;
            let until = at.checked_add(window).ok()?;
            (until > now).then_some((c, until))
        })
        .max_by_key(|(_, until)| *until);
    match recent {
        Some((change, until)) => Err(Refusal::Cooldown {
            workload: workload.to_string(),
            change: change.id.clone(),
            at: change.last_at().to_owned(),
            until: until.to_string(),
        }),
        None => Ok(()),
    }
}

/// Whether `stored`'s applied fix may be rolled back by hand.
pub fn may_roll_back(stored: &StoredIncident) -> Result<(), Refusal> {
    match stored.lifecycle.phase {
        Phase::Applied => Ok(()),
        phase => Err(Refusal::NothingToRollBack {
            id: stored.incident.id.clone(),
            phase,
        }),
    }
}

#[cfg(test)]
mod tests;
