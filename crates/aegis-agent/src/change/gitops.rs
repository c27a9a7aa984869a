//! GitOps-managed targets (SPEC §8): an object an Argo CD Application or a Flux Kustomization or
//! HelmRelease manages is not patched in place — its controller would revert the change — so
//! the fix is written as a patch file for the source repository instead.

use std::path::{Path, PathBuf};

use aegis_core::{Incident, PatchType};
use serde_json::{Value, json};

/// Labels and annotations by which GitOps controllers mark what they manage. Argo CD's default
/// label `app.kubernetes.io/instance` is not among them: Helm charts set it too, so alone it
/// does not say that a controller syncs the object.
const MARKERS: [(&str, &str); 5] = [
    ("argocd.argoproj.io/tracking-id", "Argo CD"),
    ("argocd.argoproj.io/instance", "Argo CD"),
    ("kustomize.toolkit.fluxcd.io/name", "Flux (Kustomization)"),
    ("helm.toolkit.fluxcd.io/name", "Flux (HelmRelease)"),
    ("fluxcd.io/sync-checksum", "Flux"),
];

/// The controller that manages `object`, with the marker that says so, when one does.
pub fn manager(object: &Value) -> Option<String> {
    for field in ["labels", "annotations"] {
        let Some(map) = object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (key, name) in MARKERS {
            if let Some(value) = map.get(key).and_then(Value::as_str) {
                let singular = &field[..field.len() - 1];
                return Some(format!("{name} ({singular} {key}={value})"));
            }
        }
    }
    None
}

/// Writes the fix of `incident` on `object` as a patch file under `dir`, named after the
/// incident and the fix's hash, and returns its path. Strategic-merge and merge patches become
/// a Kustomize patch (the object's identity and the patch); a JSON patch keeps its operations
/// under a `target`.
pub fn write_patch_file(
    dir: &Path,
    incident: &Incident,
    object: &Value,
    fix_hash: &str,
    managed_by: &str,
) -> Result<PathBuf, String> {
    let Some(fix) = &incident.fix else {
        return Err(format!("incident {} has no fix", incident.id));
    };
    let identity = json!({
        "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": object.get("kind").cloned().unwrap_or(Value::Null),
        "metadata": {
            "name": fix.target.name,
            "namespace": fix.target.namespace_str(),
        },
    });
    let document = match fix.patch_type {
        PatchType::StrategicMerge | PatchType::Merge => {
            let mut document = identity;
            if let (Some(into), Some(from)) = (document.as_object_mut(), fix.patch.as_object()) {
                for (key, value) in from {
                    if key == "metadata" {
                        if let (Some(meta), Some(extra)) = (
                            into.get_mut("metadata").and_then(Value::as_object_mut),
                            value.as_object(),
                        ) {
                            for (k, v) in extra {
                                meta.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    } else {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
            document
        }
        PatchType::Json => json!({"target": identity, "patch": fix.patch}),
    };
    let body = serde_yaml::to_string(&document).map_err(|e| e.to_string())?;
    let header = [
        format!(
            "# AEGIS fix for incident {} ({}): {}",
            incident.id, incident.rca.category, fix.summary
        ),
        format!(
            "# {} is managed by {managed_by}: a change made in the cluster would be reverted,",
            fix.target
        ),
        "# so the fix is given here for the source repository. As a Kustomize patch:".to_owned(),
        "#   patches:".to_owned(),
        format!("#     - path: {}", file_name(&incident.id, fix_hash)),
        format!(
            "# Shadow verdict: {} ({})",
            incident.verification.result.verdict, incident.verification.result.reason
        ),
        format!("# Patch type: {}", fix.patch_type.kubectl_name()),
    ]
    .join("\n");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(file_name(&incident.id, fix_hash));
    let temporary = path.with_extension(format!("yaml.{}.tmp", std::process::id()));
    std::fs::write(&temporary, format!("{header}\n{body}"))
        .map_err(|e| format!("{}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn file_name(incident: &str, fix_hash: &str) -> String {
    format!("{incident}-{fix_hash}.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argo_and_flux_markers_name_the_manager_and_helm_labels_alone_do_not() {
        let argo = json!({"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:demo/web"}}});
        assert!(manager(&argo).is_some_and(|m| m.starts_with("Argo CD (annotation")));
        let flux = json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}});
        assert!(manager(&flux).is_some_and(|m| m.starts_with("Flux (Kustomization) (label")));
        let helm = json!({"metadata": {"labels": {"app.kubernetes.io/instance": "web", "app.kubernetes.io/managed-by": "Helm"}}});
        assert_eq!(manager(&helm), None);
    }
}
