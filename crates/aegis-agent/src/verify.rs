//! Shadow verification of an analysis's fixes: every incident with a fix gets a shadow of its
//! workload on the cluster, at most `shadow.max_concurrent` at once, and its verification result
//! is the shadow's verdict. An incident whose shadow could not run is `inconclusive` and says
//! why; it never keeps a verdict it did not earn.

use std::time::Duration;

use aegis_cluster::{Cluster, ClusterWrite};
use aegis_core::settings::ShadowSettings;
use aegis_core::{ClusterState, Incident, Verdict, VerificationResult};
use aegis_shadow::{Limits, ShadowRequest, Tracker};
use futures::StreamExt;

/// How the reason of a verification whose shadow could not run begins.
pub const SHADOW_NOT_RUN: &str = "the shadow could not run";

/// How the fixes of one analysis are verified.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub limits: Limits,
    /// Shadows running at once.
    pub concurrency: usize,
}

impl VerifyOptions {
    /// Options from the `shadow` settings; shadows are deleted after their verdict.
    pub fn from_settings(settings: &ShadowSettings) -> Self {
        Self {
            limits: Limits {
                ttl: Duration::from_secs(settings.ttl_minutes.saturating_mul(60)),
                max_concurrent: settings.max_concurrent as usize,
                max_candidates: settings.max_candidates as usize,
                keep: false,
                grant: settings.grant.clone(),
            },
            concurrency: settings.max_concurrent.max(1) as usize,
        }
    }
}

/// What a caller is told as verifications start and end (to draw progress).
pub trait VerifyProgress: Sync {
    fn started(&self, incident: &Incident);
    fn finished(&self, incident: &Incident, result: &VerificationResult);
}

/// Verifies the fix of every incident that has one and a plan, in shadows on `shadow`, with dry
/// runs against `production`; each incident's `verification.result` becomes what its shadow
/// showed.
pub async fn verify_incidents(
    state: &ClusterState,
    incidents: &mut [Incident],
    production: &dyn ClusterWrite,
    shadow: &dyn Cluster,
    options: &VerifyOptions,
    tracker: &Tracker,
    progress: &dyn VerifyProgress,
) {
    let work: Vec<(usize, ShadowRequest<'_>)> = incidents
        .iter()
        .enumerate()
        .filter_map(|(position, incident)| {
            let fix = incident.fix.as_ref()?;
            let plan = incident.verification.plan.as_ref()?;
            Some((
                position,
                ShadowRequest {
                    state,
                    workload: incident.workload.clone(),
                    category: incident.rca.category,
                    fixes: std::iter::once(fix.clone())
                        .chain(incident.alternative_fixes.iter().cloned())
                        .collect(),
                    plan: plan.clone(),
                    incident: Some(incident.id.clone()),
                    limits: options.limits.clone(),
                },
            ))
        })
        .collect();
    let read: &[Incident] = incidents;
    // The futures are boxed and built in a loop, not by a closure over the requests: a
    // closure's type would become part of this future's, and callers that need a `Send`
    // future (the operator's controller) could not prove it for every lifetime.
    let mut runs: Vec<futures::future::BoxFuture<'_, (usize, VerificationResult)>> = Vec::new();
    for (position, request) in work {
        let incident = &read[position];
        runs.push(Box::pin(async move {
            progress.started(incident);
            let result = aegis_shadow::verify(production, shadow, &request, tracker)
                .await
                .unwrap_or_else(|e| VerificationResult {
                    verdict: Verdict::Inconclusive,
                    reason: format!("{SHADOW_NOT_RUN}: {e}"),
                    ..VerificationResult::skipped("")
                });
            progress.finished(incident, &result);
            (position, result)
        }));
    }
    let results: Vec<(usize, VerificationResult)> = futures::stream::iter(runs)
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    for (position, result) in results {
        let incident = &mut incidents[position];
        adopt_verified_candidate(incident, &result);
        incident.verification.result = result;
    }
}

/// When the first fix did not verify but another candidate did, the verified one becomes the
/// incident's fix (the others stay as alternatives) and the rationale says why.
fn adopt_verified_candidate(incident: &mut Incident, result: &VerificationResult) {
    let Some(verified) = result
        .candidates
        .iter()
        .find(|c| c.verdict == Verdict::Successful)
    else {
        return;
    };
    if incident
        .fix
        .as_ref()
        .is_none_or(|first| first.summary == verified.fix_summary)
    {
        return;
    }
    let Some(position) = incident
        .alternative_fixes
        .iter()
        .position(|f| f.summary == verified.fix_summary)
    else {
        return;
    };
    let chosen = incident.alternative_fixes.remove(position);
    let Some(current) = incident.fix.as_mut() else {
        return;
    };
    let replaced = std::mem::replace(current, chosen);
    incident.rca.decision_rationale.push_str(&format!(
        " Shadow verification chose \"{}\": the first candidate (\"{}\") did not verify.",
        verified.fix_summary, replaced.summary
    ));
    incident.alternative_fixes.insert(0, replaced);
}

/// Why a fix given by hand cannot be verified.
#[derive(Debug, thiserror::Error)]
pub enum ManualFixError {
    #[error("its target {0} is not in the cluster")]
    TargetMissing(aegis_core::ResourceRef),
    #[error(
        "only strategic-merge patches can be verified by hand, since only their inverse is known"
    )]
    NotStrategicMerge,
    #[error("the fix policy denies it: {0}")]
    Denied(String),
}

/// A fix given by hand (`aegis shadow create --fix`): checked against the fix policy like any
/// other, with its inverse computed from the target as the cluster holds it.
pub fn manual_fix(
    state: &ClusterState,
    target: aegis_core::ResourceRef,
    patch_type: aegis_core::PatchType,
    patch: serde_json::Value,
    summary: String,
) -> Result<aegis_core::Fix, ManualFixError> {
    if patch_type != aegis_core::PatchType::StrategicMerge {
        return Err(ManualFixError::NotStrategicMerge);
    }
    let original = aegis_rules::Lookup::new(state)
        .object(&target)
        .ok_or_else(|| ManualFixError::TargetMissing(target.clone()))?;
    let policy = aegis_core::policy::check(target.kind, patch_type, &patch, Some(&original));
    if !policy.allowed {
        return Err(ManualFixError::Denied(policy.violations_text()));
    }
    Ok(aegis_core::Fix {
        summary,
        inverse_patch: aegis_core::patch::inverse_of(&patch, &original),
        target,
        patch_type,
        patch,
        risk: aegis_core::Risk::Medium,
        policy,
        requires_approval: true,
        rollback: None,
    })
}

/// The verification plan of a fix on `workload`, as the rules write it.
pub fn plan_for(
    state: &ClusterState,
    fix: &aegis_core::Fix,
    workload: &aegis_core::ResourceRef,
    settings: &ShadowSettings,
) -> aegis_core::VerificationPlan {
    let services = aegis_rules::services_selecting(&aegis_rules::Lookup::new(state), workload);
    aegis_rules::plan::verification_plan(fix, &services, settings)
}
