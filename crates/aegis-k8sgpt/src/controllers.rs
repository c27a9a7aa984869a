//! Analyzers of the controllers K8sGPT checks beside Deployments: DaemonSets, CronJobs and
//! HorizontalPodAutoscalers — each reporting what is broken, not what is by design (a
//! DaemonSet mid-rollout, a CronJob suspended on purpose, an autoscaler at its maximum).

use aegis_core::state::{StateIndex, pod_is_ready, ref_of};
use aegis_core::{Evidence, EvidenceSource, ResourceKind, ResourceRef};
use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::evidence::{event_evidence, object_evidence};
use crate::workload::status;
use crate::{Analyzer, AnalyzerConfig, Detection, detection};

/// DaemonSets whose pods are not ready on every node they should run on, once those pods (or
/// the set, when pods are missing) are older than the grace period; and pull secrets that do
/// not exist (only when Secrets were read: a Secret the source may not read is not missing).
pub fn daemon_sets(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    let state = index.state();
    for set in &state.daemon_sets {
        let resource = ref_of(ResourceKind::DaemonSet, &set.metadata);
        let namespace = resource.namespace_str();
        let status_of = set.status.clone().unwrap_or_default();
        let desired = status_of.desired_number_scheduled;
        let ready = status_of.number_ready;
        let pods = set
            .metadata
            .uid
            .as_deref()
            .map(|uid| index.pods_owned_by(uid))
            .unwrap_or_default();
        let settled = |meta| state.age_seconds(meta) >= config.grace_period_seconds;
        let stuck_pod = pods
            .iter()
            .any(|p| !pod_is_ready(p) && settled(&p.metadata));
        let missing_pods = status_of.current_number_scheduled < desired && settled(&set.metadata);
        if ready < desired && (stuck_pod || missing_pods) {
            let mut evidence = vec![status(
                &resource,
                "status.numberReady",
                format!("{ready} of {desired} scheduled"),
            )];
            evidence.extend(event_evidence(
                index,
                ResourceKind::DaemonSet,
                namespace,
                &resource.name,
            ));
            out.push(detection(
                index,
                Analyzer::DaemonSet,
                "UnavailablePods",
                format!(
                    "daemon set {} has {ready} of {desired} pods ready",
                    resource.name
                ),
                resource.clone(),
                resource.clone(),
                evidence,
            ));
        }
        let spec = set.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        missing_pull_secrets(index, Analyzer::DaemonSet, &resource, spec, out);
    }
}

/// Pull secrets a pod template names that the state (which read Secrets) does not hold.
fn missing_pull_secrets(
    index: &StateIndex<'_>,
    analyzer: Analyzer,
    resource: &ResourceRef,
    spec: Option<&PodSpec>,
    out: &mut Vec<Detection>,
) {
    let state = index.state();
    if !state.has_read("Secret") {
        return;
    }
    for secret in spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|s| s.name.as_str())
        .filter(|name| !name.is_empty())
    {
        if state.contains(ResourceKind::Secret, resource.namespace_str(), secret) {
            continue;
        }
        out.push(detection(
            index,
            analyzer,
            "PullSecretMissing",
            format!(
                "{} {} names image pull secret {secret}, which does not exist",
                resource.kind.as_str().to_ascii_lowercase(),
                resource.name
            ),
            resource.clone(),
            resource.clone(),
            vec![object_evidence(
                EvidenceSource::Spec,
                resource,
                "spec.template.spec.imagePullSecrets",
                secret,
            )],
        ));
    }
}

/// CronJobs whose schedule cannot be parsed, or that the controller reports it cannot run
/// (Warning events: jobs it cannot create, too many missed start times). A suspended CronJob is
/// someone's decision, not a failure; the Jobs it made are the Job analyzer's.
pub fn cron_jobs(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    for cron_job in &index.state().cron_jobs {
        let resource = ref_of(ResourceKind::CronJob, &cron_job.metadata);
        let namespace = resource.namespace_str();
        let spec = cron_job.spec.as_ref();
        let schedule = spec.map(|s| s.schedule.as_str()).unwrap_or_default();
        if let Err(why) = check_schedule(schedule) {
            out.push(detection(
                index,
                Analyzer::CronJob,
                "InvalidSchedule",
                format!(
                    "cron job {} has an invalid schedule \"{schedule}\": {why}",
                    resource.name
                ),
                resource.clone(),
                resource.clone(),
                vec![object_evidence(
                    EvidenceSource::Spec,
                    &resource,
                    "spec.schedule",
                    schedule,
                )],
            ));
        }
        if spec.and_then(|s| s.suspend).unwrap_or(false) {
            continue;
        }
        let events = event_evidence(index, ResourceKind::CronJob, namespace, &resource.name);
        if let Some(first) = events.first() {
            let reason = first
                .excerpt
                .split_whitespace()
                .nth(1)
                .unwrap_or("Warning")
                .trim_end_matches(':')
                .to_owned();
            out.push(detection(
                index,
                Analyzer::CronJob,
                &reason,
                format!(
                    "cron job {} cannot run its jobs: {}",
                    resource.name, first.excerpt
                ),
                resource.clone(),
                resource.clone(),
                events,
            ));
        }
    }
}

/// Month and day names a schedule may use.
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Checks a schedule as the CronJob controller parses it: five fields (minute, hour, day of
/// month, month, day of week) of values, ranges, lists, steps, `*` and `?`, month and day
/// names; or a descriptor (`@hourly`, `@every 5m`, …).
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if let Some(descriptor) = schedule.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            every if every.starts_with("every ") => {
                let duration = every["every ".len()..].trim();
                if is_duration(duration) {
                    Ok(())
                } else {
                    Err(format!("\"@every {duration}\" is not a duration"))
                }
            }
            other => Err(format!("@{other} is not a descriptor")),
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected 5 fields, found {}", fields.len()));
    }
    let limits: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day of month", 1, 31, &[], 0),
        ("month", 1, 12, &MONTHS, 1),
        ("day of week", 0, 7, &DAYS, 0),
    ];
    for (field, (name, low, high, names, first)) in fields.iter().zip(limits) {
        let value = |text: &str| -> Result<u32, String> {
            let lower = text.to_ascii_lowercase();
            if let Some(position) = names.iter().position(|n| *n == lower) {
                return Ok(u32::try_from(position).unwrap_or(0) + first);
            }
            let number: u32 = text
                .parse()
                .map_err(|_| format!("{name} \"{text}\" is not a number"))?;
            if number < low || number > high {
                return Err(format!("{name} {number} is outside {low}-{high}"));
            }
            Ok(number)
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(step) if step > 0 => {}
                    _ => return Err(format!("{name} step \"{step}\" is not a positive number")),
                }
            }
            if range == "*" || (range == "?" && matches!(name, "day of month" | "day of week")) {
                continue;
            }
            match range.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (value(from)?, value(to)?);
                    if from > to {
                        return Err(format!("{name} range {from}-{to} runs backwards"));
                    }
                }
                None => {
                    value(range)?;
                }
            }
        }
    }
    Ok(())
}

/// Whether `text` is a Go duration (`90s`, `1h30m`, `1.5h`), as `@every` takes.
fn is_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 || rest[..digits].parse::<f64>().is_err() {
            return false;
        }
        rest = &rest[digits..];
        // Longer units first: `ms` is not `m` followed by `s`.
        match ["ns", "us", "µs", "ms", "h", "m", "s"]
            .iter()
            .find(|unit| rest.starts_with(*unit))
        {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    true
}

/// The object of `objects` named `name` in `namespace`.
fn named<'a, T: Metadata<Ty = ObjectMeta>>(
    objects: &'a [T],
    namespace: &str,
    name: &str,
) -> Option<&'a T> {
    objects.iter().find(|o| {
        o.metadata().namespace.as_deref() == Some(namespace)
            && o.metadata().name.as_deref() == Some(name)
    })
}

/// Autoscalers that cannot scale: a target that does not exist (when its kind was read), a
/// target whose containers request none of the resource the autoscaler scales on (the
/// utilization it computes is a share of the request), or a controller condition saying it
/// cannot read the target's scale or its metrics. At its maximum, or rate-limited, an
/// autoscaler is doing its job; `ScalingDisabled` (a target scaled to zero) is a choice.
pub fn autoscalers(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let state = index.state();
    for hpa in &state.horizontal_pod_autoscalers {
        let resource = ref_of(ResourceKind::HorizontalPodAutoscaler, &hpa.metadata);
        let namespace = resource.namespace_str();
        let Some(spec) = hpa.spec.as_ref() else {
            continue;
        };
        let target = &spec.scale_target_ref;
        let kind = ResourceKind::from_kind(&target.kind);
        let target_ref = kind.map(|k| ResourceRef::namespaced(k, namespace, &target.name));
        let name = target.name.as_str();
        let template = match kind {
            Some(ResourceKind::Deployment) => named(&state.deployments, namespace, name)
                .and_then(|d| d.spec.as_ref()?.template.spec.as_ref()),
            Some(ResourceKind::StatefulSet) => named(&state.stateful_sets, namespace, name)
                .and_then(|d| d.spec.as_ref()?.template.spec.as_ref()),
            Some(ResourceKind::ReplicaSet) => named(&state.replica_sets, namespace, name)
                .and_then(|d| d.spec.as_ref()?.template.as_ref()?.spec.as_ref()),
            _ => None,
        };
        let exists = kind.is_some_and(|k| state.contains(k, namespace, &target.name));
        let workload = match (&target_ref, exists) {
            (Some(target), true) => target.clone(),
            _ => resource.clone(),
        };
        let report =
            |out: &mut Vec<Detection>, reason: &str, message: String, evidence: Vec<Evidence>| {
                let mut evidence = evidence;
                evidence.extend(event_evidence(
                    index,
                    ResourceKind::HorizontalPodAutoscaler,
                    namespace,
                    &resource.name,
                ));
                out.push(detection(
                    index,
                    Analyzer::HorizontalPodAutoscaler,
                    reason,
                    message,
                    resource.clone(),
                    workload.clone(),
                    evidence,
                ));
            };
        if let Some(kind) = kind.filter(|k| state.has_read(k.as_str()))
            && !exists
        {
            report(
                out,
                "ScaleTargetMissing",
                format!(
                    "autoscaler {} scales {} {}, which does not exist",
                    resource.name, kind, target.name
                ),
                vec![object_evidence(
                    EvidenceSource::Spec,
                    &resource,
                    "spec.scaleTargetRef",
                    format!("{}/{}", target.kind, target.name),
                )],
            );
            continue;
        }
        if let Some(template) = template {
            for metric in spec.metrics.iter().flatten() {
                let Some(name) = metric
                    .resource
                    .as_ref()
                    .map(|r| r.name.as_str())
                    .or_else(|| metric.container_resource.as_ref().map(|r| r.name.as_str()))
                else {
                    continue;
                };
                let utilization = metric
                    .resource
                    .as_ref()
                    .map(|r| r.target.type_.as_str())
                    .or_else(|| {
                        metric
                            .container_resource
                            .as_ref()
                            .map(|r| r.target.type_.as_str())
                    })
                    == Some("Utilization");
                let requested = template.containers.iter().any(|c| {
                    c.resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .is_some_and(|r| r.contains_key(name))
                });
                if utilization && !requested {
                    report(
                        out,
                        "MissingRequests",
                        format!(
                            "autoscaler {} scales {} on {name} utilization, but no container of {} requests {name}",
                            resource.name, target.name, target.name
                        ),
                        vec![object_evidence(
                            EvidenceSource::Spec,
                            &resource,
                            "spec.metrics",
                            format!("{name} Utilization"),
                        )],
                    );
                }
            }
        }
        for condition in hpa
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .filter(|c| c.status == "False")
            .filter(|c| matches!(c.type_.as_str(), "AbleToScale" | "ScalingActive"))
            .filter(|c| c.reason.as_deref() != Some("ScalingDisabled"))
        {
            let reason = condition.reason.clone().unwrap_or_default();
            let message = condition.message.clone().unwrap_or_default();
            report(
                out,
                &format!("{}False", condition.type_),
                format!(
                    "autoscaler {} cannot scale ({} {reason}): {message}",
                    resource.name, condition.type_
                ),
                vec![object_evidence(
                    EvidenceSource::Status,
                    &resource,
                    &format!("status.conditions[{}]", condition.type_),
                    format!("False {reason}: {message}"),
                )],
            );
        }
    }
}
