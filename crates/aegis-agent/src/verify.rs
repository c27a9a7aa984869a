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
                    fixes: vec![fix.clone()],
                    plan: plan.clone(),
                    incident: Some(incident.id.clone()),
                    limits: options.limits.clone(),
                },
            ))
        })
        .collect();
    let snapshot: Vec<Incident> = incidents.to_vec();
    let results: Vec<(usize, VerificationResult)> = futures::stream::iter(work)
        .map(|(position, request)| {
            let incident = &snapshot[position];
            async move {
                progress.started(incident);
                let result = aegis_shadow::verify(production, shadow, &request, tracker)
                    .await
                    .unwrap_or_else(|e| VerificationResult {
                        verdict: Verdict::Inconclusive,
                        reason: format!("the shadow could not run: {e}"),
                        ..VerificationResult::skipped("")
                    });
                progress.finished(incident, &result);
                (position, result)
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    for (position, result) in results {
        incidents[position].verification.result = result;
    }
}
