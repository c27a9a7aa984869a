//! Analyzers of workloads and infrastructure: Deployments, ReplicaSets, StatefulSets, Jobs,
//! PersistentVolumeClaims and Nodes (not Ready, or under the kubelet's pressure conditions).

use std::collections::HashMap;

use aegis_core::state::{StateIndex, pod_is_ready, ref_of};
use aegis_core::{Evidence, EvidenceSource, ResourceKind, ResourceRef};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::evidence::event_evidence;
use crate::{Analyzer, AnalyzerConfig, Detection, detection};

pub(crate) fn status(resource: &ResourceRef, field: &str, value: impl Into<String>) -> Evidence {
    crate::evidence::object_evidence(EvidenceSource::Status, resource, field, value)
}

pub fn deployments(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    for deployment in &index.state().deployments {
        let resource = ref_of(ResourceKind::Deployment, &deployment.metadata);
        let Some(deployment_status) = &deployment.status else {
            continue;
        };
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let available = deployment_status.available_replicas.unwrap_or(0);
        let stuck = deployment_status.conditions.iter().flatten().find(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        let mut evidence = vec![status(
            &resource,
            "status.availableReplicas",
            format!("{available} of {desired}"),
        )];
        if let Some(condition) = stuck {
            let message = condition.message.clone().unwrap_or_default();
            evidence.push(status(
                &resource,
                "status.conditions[Progressing]",
                format!("ProgressDeadlineExceeded: {message}"),
            ));
            evidence.extend(event_evidence(
                index,
                ResourceKind::Deployment,
                resource.namespace_str(),
                &resource.name,
            ));
            out.push(detection(
                index,
                Analyzer::Deployment,
                "ProgressDeadlineExceeded",
                format!(
                    "rollout of deployment {} is stuck: {message}",
                    resource.name
                ),
                resource.clone(),
                resource,
                evidence,
            ));
        } else if desired > 0
            && available < desired
            && unavailable_for(
                index,
                deployment_status.conditions.as_deref(),
                &deployment.metadata,
            ) >= config.grace_period_seconds
            && !settling(index, deployment, config.grace_period_seconds)
        {
            out.push(detection(
                index,
                Analyzer::Deployment,
                "UnavailableReplicas",
                format!(
                    "deployment {} has {available} of {desired} replicas available",
                    resource.name
                ),
                resource.clone(),
                resource,
                evidence,
            ));
        }
    }
}

/// Whether a Deployment is in the middle of normal work: it progressed within the grace period
/// (a rollout or a scale-up under way), or every pod it is missing readiness from is younger
/// than the grace period (pods being replaced or added seconds ago).
fn settling(
    index: &StateIndex<'_>,
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    grace_seconds: u64,
) -> bool {
    let state = index.state();
    let now = state.now();
    let progressed_recently = deployment
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| c.type_ == "Progressing" && c.status == "True")
        .filter_map(|c| c.last_update_time.as_ref())
        .any(|t| (now.duration_since(t.0).as_secs().max(0) as u64) < grace_seconds);
    if progressed_recently {
        return true;
    }
    let Some(uid) = deployment.metadata.uid.as_deref() else {
        return false;
    };
    let unready: Vec<&Pod> = index
        .pods_of_workload(ResourceKind::Deployment, uid)
        .into_iter()
        .filter(|p| !pod_is_ready(p))
        .collect();
    !unready.is_empty()
        && unready
            .iter()
            .all(|p| state.age_seconds(&p.metadata) < grace_seconds)
}

/// How long a Deployment has been without minimum availability: since its `Available`
/// condition turned False, else since it was created.
fn unavailable_for(
    index: &StateIndex<'_>,
    conditions: Option<&[k8s_openapi::api::apps::v1::DeploymentCondition]>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> u64 {
    let now = index.state().now();
    conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Available" && c.status == "False")
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or_else(
            || index.state().age_seconds(meta),
            |t| now.duration_since(t.0).as_secs().max(0) as u64,
        )
}

pub fn replica_sets(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    for replica_set in &index.state().replica_sets {
        let Some(failure) = replica_set
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| {
                c.iter()
                    .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
            })
        else {
            continue;
        };
        let resource = ref_of(ResourceKind::ReplicaSet, &replica_set.metadata);
        let workload = index.workload_of(ResourceKind::ReplicaSet, &replica_set.metadata);
        let message = failure.message.clone().unwrap_or_default();
        let mut evidence = vec![status(
            &resource,
            "status.conditions[ReplicaFailure]",
            format!(
                "{}: {message}",
                failure.reason.as_deref().unwrap_or_default()
            ),
        )];
        evidence.extend(event_evidence(
            index,
            ResourceKind::ReplicaSet,
            resource.namespace_str(),
            &resource.name,
        ));
        out.push(detection(
            index,
            Analyzer::ReplicaSet,
            failure.reason.as_deref().unwrap_or("ReplicaFailure"),
            format!(
                "replica set {} cannot create pods: {message}",
                resource.name
            ),
            resource,
            workload,
            evidence,
        ));
    }
}

pub fn stateful_sets(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    let state = index.state();
    for set in &state.stateful_sets {
        let resource = ref_of(ResourceKind::StatefulSet, &set.metadata);
        let spec = set.spec.as_ref();
        if let Some(service) = spec.and_then(|s| s.service_name.as_deref())
            && !service.is_empty()
            && state.has_read("Service")
            && !state.contains(ResourceKind::Service, resource.namespace_str(), service)
        {
            out.push(detection(
                index,
                Analyzer::StatefulSet,
                "ServiceMissing",
                format!(
                    "stateful set {} names governing service {service}, which does not exist",
                    resource.name
                ),
                resource.clone(),
                resource.clone(),
                vec![Evidence::new(
                    EvidenceSource::Spec,
                    format!(
                        "statefulset/{}/{}: spec.serviceName",
                        resource.namespace_str(),
                        resource.name
                    ),
                    service,
                )],
            ));
        }
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        let ready = set
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        // A set that is still rolling out its first replicas is not broken yet.
        if desired > 0
            && ready < desired
            && index.state().age_seconds(&set.metadata) >= config.grace_period_seconds
        {
            out.push(detection(
                index,
                Analyzer::StatefulSet,
                "UnavailableReplicas",
                format!(
                    "stateful set {} has {ready} of {desired} replicas ready",
                    resource.name
                ),
                resource.clone(),
                resource.clone(),
                vec![status(
                    &resource,
                    "status.readyReplicas",
                    format!("{ready} of {desired}"),
                )],
            ));
        }
    }
}

pub fn jobs(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    for job in &index.state().jobs {
        let Some(failed) = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"))
        else {
            continue;
        };
        let resource = ref_of(ResourceKind::Job, &job.metadata);
        let workload = index.workload_of(ResourceKind::Job, &job.metadata);
        let reason = failed.reason.clone().unwrap_or_else(|| "Failed".to_owned());
        let message = failed.message.clone().unwrap_or_default();
        let mut evidence = vec![status(
            &resource,
            "status.conditions[Failed]",
            format!("{reason}: {message}"),
        )];
        evidence.extend(event_evidence(
            index,
            ResourceKind::Job,
            resource.namespace_str(),
            &resource.name,
        ));
        out.push(detection(
            index,
            Analyzer::Job,
            &reason,
            format!("job {} failed: {message}", resource.name),
            resource,
            workload,
            evidence,
        ));
    }
}

pub fn claims(index: &StateIndex<'_>, config: &AnalyzerConfig, out: &mut Vec<Detection>) {
    let state = index.state();
    // The pod that mounts each claim: a claim's failure is its workload's failure.
    let mut consumers: HashMap<(&str, &str), &Pod> = HashMap::new();
    for pod in &state.pods {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(claim) = &volume.persistent_volume_claim {
                consumers.insert((namespace, claim.claim_name.as_str()), pod);
            }
        }
    }
    for claim in &state.persistent_volume_claims {
        let phase = claim
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        if phase == "Bound" {
            continue;
        }
        let resource = ref_of(ResourceKind::PersistentVolumeClaim, &claim.metadata);
        let namespace = resource.namespace_str();
        let events = event_evidence(
            index,
            ResourceKind::PersistentVolumeClaim,
            namespace,
            &resource.name,
        );
        let consumer = consumers.get(&(namespace, resource.name.as_str())).copied();
        // A claim of a `WaitForFirstConsumer` class binds only once a pod is scheduled with it:
        // Pending is its normal state, and a pod that cannot be scheduled is reported on its own.
        if phase == "Pending" && events.is_empty() && waits_for_first_consumer(index, claim) {
            continue;
        }
        let age = state.age_seconds(&claim.metadata);
        if age < config.grace_period_seconds && events.is_empty() {
            continue;
        }
        let workload = consumer.map_or_else(
            || resource.clone(),
            |pod| index.workload_of(ResourceKind::Pod, &pod.metadata),
        );
        let mut evidence = vec![status(&resource, "status.phase", phase)];
        if let Some(class) = storage_class_of(index, claim) {
            evidence.push(Evidence::new(
                EvidenceSource::Spec,
                format!(
                    "persistentvolumeclaim/{namespace}/{}: spec.storageClassName",
                    resource.name
                ),
                class,
            ));
        }
        evidence.extend(events);
        out.push(detection(
            index,
            Analyzer::PersistentVolumeClaim,
            if phase == "Lost" { "Lost" } else { "Pending" },
            format!("persistent volume claim {} is {phase}", resource.name),
            resource,
            workload,
            evidence,
        ));
    }
}

/// The storage class a claim asks for: its own, or the cluster's default class.
fn storage_class_of(index: &StateIndex<'_>, claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .or_else(|| {
            claim
                .metadata
                .annotations
                .as_ref()?
                .get("volume.beta.kubernetes.io/storage-class")
                .cloned()
        })
        .or_else(|| {
            index
                .state()
                .storage_classes
                .iter()
                .find(|c| {
                    c.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                        .is_some_and(|v| v == "true")
                })
                .and_then(|c| c.metadata.name.clone())
        })
}

/// Whether a claim waits for its first consumer: its class binds `WaitForFirstConsumer`, or
/// the volume controller said so in a (Normal) event.
fn waits_for_first_consumer(index: &StateIndex<'_>, claim: &PersistentVolumeClaim) -> bool {
    let namespace = claim.metadata.namespace.as_deref().unwrap_or("default");
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let said_so = index
        .events_for(ResourceKind::PersistentVolumeClaim, namespace, name)
        .iter()
        .any(|e| e.reason.as_deref() == Some("WaitForFirstConsumer"));
    said_so
        || storage_class_of(index, claim).is_some_and(|class| {
            index.state().storage_classes.iter().any(|c| {
                c.metadata.name.as_deref() == Some(class.as_str())
                    && c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
            })
        })
}

/// The conditions the kubelet (or the network plugin) sets that mean trouble when `True`.
const PRESSURE: [&str; 4] = [
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

pub fn nodes(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    for node in &index.state().nodes {
        let resource = ref_of(ResourceKind::Node, &node.metadata);
        for condition in node
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .filter(|c| PRESSURE.contains(&c.type_.as_str()) && c.status == "True")
        {
            let message = condition.message.clone().unwrap_or_default();
            let mut evidence = vec![Evidence::new(
                EvidenceSource::Status,
                format!(
                    "node/{}: status.conditions[{}]",
                    resource.name, condition.type_
                ),
                format!(
                    "True {}: {message}",
                    condition.reason.as_deref().unwrap_or_default()
                ),
            )];
            evidence.extend(event_evidence(
                index,
                ResourceKind::Node,
                "",
                &resource.name,
            ));
            out.push(detection(
                index,
                Analyzer::Node,
                &condition.type_,
                format!("node {} has {}: {message}", resource.name, condition.type_),
                resource.clone(),
                resource.clone(),
                evidence,
            ));
        }
        // Beyond those, only the kubelet's Ready condition counts: Node Problem Detector
        // conditions (KernelDeadlock, FrequentKubeletRestart, …) are informational.
        let Some(ready) = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        else {
            continue;
        };
        if ready.status == "True" {
            continue;
        }
        let message = ready.message.clone().unwrap_or_default();
        let mut evidence = vec![Evidence::new(
            EvidenceSource::Status,
            format!("node/{}: status.conditions[Ready]", resource.name),
            format!(
                "{} {}: {message}",
                ready.status,
                ready.reason.as_deref().unwrap_or_default()
            ),
        )];
        evidence.extend(event_evidence(
            index,
            ResourceKind::Node,
            "",
            &resource.name,
        ));
        out.push(detection(
            index,
            Analyzer::Node,
            "NotReady",
            format!("node {} is not ready: {message}", resource.name),
            resource.clone(),
            resource,
            evidence,
        ));
    }
}
