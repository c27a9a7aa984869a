//! The scope of a change: which workloads an analysis must look at again when only some
//! objects changed. A changed pod or ReplicaSet concerns its workload; a workload concerns
//! itself; a Service concerns itself. With them come the Services selecting those workloads'
//! pods, and every workload whose pods those Services select (a Service's endpoints are judged
//! on all its pods), until nothing is added.
//!
//! The scope narrows what is analyzed, never what the analysis knows: the rules still read the
//! whole state (the images other pods run, the room on nodes, the labels and ports of other
//! workloads), so a fix proposed in a scoped analysis is the one a whole analysis proposes.

use std::collections::BTreeSet;

use aegis_core::{ClusterState, ResourceKind, ResourceRef};
use k8s_openapi::api::core::v1::{Pod, Service};

/// Past this share of the state's pods, a scope is not worth it: the whole state is analyzed.
const MAX_SHARE: usize = 2;

/// The workloads (Services among them) a change concerns, and their pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeScope {
    /// Incidents of these workloads are the analysis's to report (and, for a caller that
    /// records them, to resolve when no longer found).
    pub workloads: BTreeSet<ResourceRef>,
    /// The pods of those workloads.
    pub pods: BTreeSet<ResourceRef>,
}

impl ChangeScope {
    /// Whether a pod is in the scope.
    pub fn has_pod(&self, pod: &Pod) -> bool {
        self.pods
            .contains(&aegis_core::state::ref_of(ResourceKind::Pod, &pod.metadata))
    }
}

/// Whether `service` selects `pod` (a Service without a selector selects nothing).
fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    service.metadata.namespace == pod.metadata.namespace
        && selector.iter().all(|(key, value)| {
            pod.metadata.labels.as_ref().and_then(|l| l.get(key)) == Some(value)
        })
}

/// The scope of a change of `changed` in `state` (see the module's documentation), or `None`
/// when it would hold more than half the state's pods anyway. An object no longer in the state
/// concerns itself (a bare pod's incident is its own).
pub fn change_scope(state: &ClusterState, changed: &BTreeSet<ResourceRef>) -> Option<ChangeScope> {
    let index = state.index();
    let pods: Vec<(ResourceRef, &Pod)> = state
        .pods
        .iter()
        .map(|p| (index.workload_of(ResourceKind::Pod, &p.metadata), p))
        .collect();
    let mut workloads = BTreeSet::new();
    let mut serving = BTreeSet::new();
    for reference in changed {
        if reference.kind == ResourceKind::Service {
            serving.insert(reference.clone());
            continue;
        }
        let workload = state
            .meta(reference.kind, reference.namespace_str(), &reference.name)
            .map_or_else(
                || reference.clone(),
                |meta| index.workload_of(reference.kind, meta),
            );
        workloads.insert(workload);
    }
    // Which workloads each Service selects pods of, matched once.
    let selected: Vec<(ResourceRef, BTreeSet<&ResourceRef>)> = state
        .services
        .iter()
        .map(|service| {
            let workloads = pods
                .iter()
                .filter(|(_, pod)| selects(service, pod))
                .map(|(workload, _)| workload)
                .collect();
            (
                aegis_core::state::ref_of(ResourceKind::Service, &service.metadata),
                workloads,
            )
        })
        .collect();
    // Each round adds the Services of the workloads in scope and the workloads those select.
    loop {
        let before = (workloads.len(), serving.len());
        for (service, selects) in &selected {
            if serving.contains(service) || selects.iter().any(|w| workloads.contains(*w)) {
                serving.insert(service.clone());
                workloads.extend(selects.iter().map(|w| (*w).clone()));
            }
        }
        if (workloads.len(), serving.len()) == before {
            break;
        }
    }
    let scoped: BTreeSet<ResourceRef> = pods
        .iter()
        .filter(|(workload, _)| workloads.contains(workload))
        .map(|(_, pod)| aegis_core::state::ref_of(ResourceKind::Pod, &pod.metadata))
        .collect();
    if scoped.len() * MAX_SHARE > pods.len() {
        return None;
    }
    workloads.extend(serving);
    Some(ChangeScope {
        workloads,
        pods: scoped,
    })
}

#[cfg(test)]
mod tests;
