//! Verification plans: what a shadow must show before a fix counts as proved.

use aegis_core::settings::ShadowSettings;
use aegis_core::{Check, Fix, ResourceKind, VerificationPlan};

/// The plan for verifying `fix` on a workload that the Services named in `services` select. The
/// same checks judge every category: a fix is proved when the clone is healthy, whatever failed.
pub fn verification_plan(
    fix: &Fix,
    services: &[String],
    settings: &ShadowSettings,
) -> VerificationPlan {
    let mut checks = vec![
        Check::Scheduled,
        Check::NoBadWaiting,
        Check::NotOomKilled,
        Check::RestartsStable,
        Check::ProbesPassing,
        Check::Ready,
    ];
    if fix.target.kind == ResourceKind::Service {
        checks.push(Check::Endpoints {
            service: fix.target.name.clone(),
        });
    } else {
        checks.extend(services.iter().map(|service| Check::Endpoints {
            service: service.clone(),
        }));
    }
    VerificationPlan {
        checks,
        interval_seconds: settings.interval_seconds,
        success_threshold: settings.success_threshold,
        failure_limit: settings.failure_limit,
        timeout_seconds: settings.timeout_seconds,
    }
}
