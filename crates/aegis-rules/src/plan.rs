//! Verification plans: what a shadow must show before a fix counts as proved.

use aegis_core::settings::ShadowSettings;
use aegis_core::{Category, Fix, ResourceKind, VerificationPlan};

/// The plan for verifying `fix`, a fix for `category`.
pub fn verification_plan(
    category: Category,
    fix: &Fix,
    services: &[String],
    settings: &ShadowSettings,
) -> VerificationPlan {
    let target = &fix.target;
    let mut checks = Vec::new();
    if target.kind == ResourceKind::Service {
        checks.push(format!(
            "service {} has at least one ready endpoint",
            target.name
        ));
    } else {
        checks.push(format!(
            "every container of the shadow copy of {} {} is ready",
            target.kind, target.name
        ));
        checks.push("no container restarts after it became ready".to_owned());
        checks.push("no container is waiting in CrashLoopBackOff, ImagePullBackOff, ErrImagePull or CreateContainerConfigError".to_owned());
        checks.push("no container was OOMKilled".to_owned());
        for service in services {
            checks.push(format!(
                "service {service} selects the shadow pod and lists it as a ready endpoint"
            ));
        }
    }
    match category {
        Category::LivenessProbeFailure | Category::StartupProbeFailure => {
            checks.push("no Unhealthy liveness or startup probe events".to_owned());
        }
        Category::ReadinessProbeFailure => {
            checks.push("no Unhealthy readiness probe events once ready".to_owned());
        }
        Category::InsufficientResources => {
            checks.push("the shadow pod is scheduled (no FailedScheduling events)".to_owned());
        }
        _ => {}
    }
    VerificationPlan {
        checks,
        interval_seconds: settings.interval_seconds,
        success_threshold: settings.success_threshold,
        failure_limit: settings.failure_limit,
        timeout_seconds: settings.timeout_seconds,
    }
}
