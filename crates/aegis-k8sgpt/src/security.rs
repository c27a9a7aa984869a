//! The Security analyzer (runs only when asked for, as in K8sGPT): workloads that run with more
//! privilege than they should — privileged containers, privilege escalation allowed in a
//! container that runs as root, and pods that run as the namespace's `default` ServiceAccount
//! with its token mounted. One finding per workload, not per pod.

use std::collections::BTreeSet;

use aegis_core::state::StateIndex;
use aegis_core::{Evidence, EvidenceSource, ResourceKind, ResourceRef};

use crate::{Analyzer, Detection, detection};

pub fn security(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let mut seen: BTreeSet<(ResourceRef, String)> = BTreeSet::new();
    for pod in &index.state().pods {
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let workload = index.workload_of(ResourceKind::Pod, &pod.metadata);
        let namespace = workload.namespace_str().to_owned();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let mut report = |reason: &str, message: String, field: String, value: String| {
            if !seen.insert((workload.clone(), format!("{reason}:{field}"))) {
                return;
            }
            out.push(detection(
                index,
                Analyzer::Security,
                reason,
                message,
                workload.clone(),
                workload.clone(),
                vec![Evidence::new(
                    EvidenceSource::Spec,
                    format!("pod/{namespace}/{pod_name}: {field}"),
                    value,
                )],
            ));
        };
        let pod_user = spec.security_context.as_ref().and_then(|c| c.run_as_user);
        for container in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            let context = container.security_context.as_ref();
            if context.and_then(|c| c.privileged) == Some(true) {
                report(
                    "Privileged",
                    format!(
                        "container {} of {} {} runs privileged (full access to the node)",
                        container.name, workload.kind, workload.name
                    ),
                    format!("containers[{}].securityContext.privileged", container.name),
                    "true".to_owned(),
                );
                continue;
            }
            let user = context.and_then(|c| c.run_as_user).or(pod_user);
            if context.and_then(|c| c.allow_privilege_escalation) == Some(true) && user == Some(0) {
                report(
                    "PrivilegeEscalation",
                    format!(
                        "container {} of {} {} runs as root and may gain more privileges",
                        container.name, workload.kind, workload.name
                    ),
                    format!(
                        "containers[{}].securityContext.allowPrivilegeEscalation",
                        container.name
                    ),
                    "true (runAsUser 0)".to_owned(),
                );
            }
        }
        let account = spec
            .service_account_name
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or("default");
        if account == "default" && spec.automount_service_account_token != Some(false) {
            report(
                "DefaultServiceAccount",
                format!(
                    "{} {} runs as the default ServiceAccount with its API token mounted",
                    workload.kind, workload.name
                ),
                "spec.serviceAccountName".to_owned(),
                "default".to_owned(),
            );
        }
    }
}
