//! The Storage analyzer: StorageClasses set up so that claims cannot be served as intended.
//! K8sGPT's other storage checks are left out where they report what is normal: a volume under
//! 1 GiB, `kubernetes.io/no-provisioner` (the provisioner of local volumes, not deprecated), a
//! claim waiting for its first consumer. Claims that do not bind are the PersistentVolumeClaim
//! analyzer's.

use aegis_core::state::{StateIndex, ref_of};
use aegis_core::{EvidenceSource, ResourceKind};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::evidence::object_evidence;
use crate::{Analyzer, Detection, detection};

/// The annotations that make a StorageClass the default (the beta one is still honoured).
const DEFAULT_CLASS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Whether a StorageClass is marked as the cluster's default.
pub fn is_default(class: &StorageClass) -> bool {
    class.metadata.annotations.as_ref().is_some_and(|a| {
        DEFAULT_CLASS
            .iter()
            .any(|key| a.get(*key).is_some_and(|v| v == "true"))
    })
}

/// More than one default StorageClass: a claim without a class gets whichever was made last,
/// which is rarely what the one who added the second default wanted.
pub fn storage(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let defaults: Vec<&StorageClass> = index
        .state()
        .storage_classes
        .iter()
        .filter(|c| is_default(c))
        .collect();
    if defaults.len() < 2 {
        return;
    }
    let names: Vec<String> = defaults
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    for class in defaults {
        let resource = ref_of(ResourceKind::StorageClass, &class.metadata);
        out.push(detection(
            index,
            Analyzer::Storage,
            "MultipleDefaultClasses",
            format!(
                "{} StorageClasses are marked default ({}); claims without a class get the newest",
                names.len(),
                names.join(", ")
            ),
            resource.clone(),
            resource.clone(),
            vec![object_evidence(
                EvidenceSource::Spec,
                &resource,
                "metadata.annotations",
                "storageclass.kubernetes.io/is-default-class: \"true\"",
            )],
        ));
    }
}
