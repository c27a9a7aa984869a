//! `aegis snapshot capture`: save what a source holds in the snapshot format (SPEC §6), so an
//! analysis can be repeated offline, shared, or attached to a ticket.
//!
//! Secrets are written without their values: the state never holds them.

use std::fs;
use std::path::Path;

use aegis_cluster::Scope;
use aegis_core::ClusterState;
use serde::Serialize;

use super::analyze::open_source;
use super::warn;
use crate::args::{GlobalArgs, SnapshotCommand};
use crate::config::Resolved;
use crate::error::{CliError, CliResult};

pub async fn run(
    global: &GlobalArgs,
    command: &SnapshotCommand,
    resolved: &Resolved,
) -> CliResult<()> {
    let SnapshotCommand::Capture {
        dir,
        all_namespaces,
    } = command;
    if dir.exists() && fs::read_dir(dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(
            CliError::failure(format!("{} exists and is not empty", dir.display()))
                .hint("name a new directory"),
        );
    }
    let source = open_source(global, resolved).await?;
    let scope = match (&resolved.settings.kubernetes.namespace, all_namespaces) {
        (Some(namespace), false) => Scope::namespace(namespace),
        _ => Scope::all(),
    };
    let loaded = source
        .reader
        .load(&scope)
        .await
        .map_err(CliError::failure)?;
    for warning in &loaded.warnings {
        warn(warning);
    }
    let written = write(dir, &loaded.state)
        .map_err(|e| CliError::failure(format!("cannot write snapshot {}: {e}", dir.display())))?;
    eprintln!(
        "wrote {written} objects and {} logs to {}",
        loaded.state.logs.len(),
        dir.display()
    );
    Ok(())
}

/// Writes one kind as a `List` file. A kind that was read but has no objects is written as an
/// empty typed list (`SecretList`), so the snapshot still says it was read (SPEC §6, coverage);
/// a kind that was not read is not written.
fn list<T: Serialize>(
    dir: &Path,
    state: &ClusterState,
    (api_version, kind, file): (&str, &str, &str),
    items: &[T],
) -> std::io::Result<usize> {
    let document = if items.is_empty() {
        if !state.has_read(kind) {
            return Ok(0);
        }
        serde_json::json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": ""}, "items": []})
    } else {
        serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
    };
    let text = serde_yaml::to_string(&document).map_err(std::io::Error::other)?;
    fs::write(dir.join(file), text)?;
    Ok(items.len())
}

/// Writes the state as one `List` file per kind and a `logs/` tree; returns the object count.
pub fn write(dir: &Path, state: &ClusterState) -> std::io::Result<usize> {
    fs::create_dir_all(dir)?;
    let mut count = 0;
    count += list(
        dir,
        state,
        ("v1", "Namespace", "namespaces.yaml"),
        &state.namespaces,
    )?;
    count += list(dir, state, ("v1", "Node", "nodes.yaml"), &state.nodes)?;
    count += list(dir, state, ("v1", "Pod", "pods.yaml"), &state.pods)?;
    count += list(
        dir,
        state,
        ("apps/v1", "Deployment", "deployments.yaml"),
        &state.deployments,
    )?;
    count += list(
        dir,
        state,
        ("apps/v1", "ReplicaSet", "replicasets.yaml"),
        &state.replica_sets,
    )?;
    count += list(
        dir,
        state,
        ("apps/v1", "StatefulSet", "statefulsets.yaml"),
        &state.stateful_sets,
    )?;
    count += list(
        dir,
        state,
        ("apps/v1", "DaemonSet", "daemonsets.yaml"),
        &state.daemon_sets,
    )?;
    count += list(
        dir,
        state,
        ("apps/v1", "ControllerRevision", "controllerrevisions.yaml"),
        &state.controller_revisions,
    )?;
    count += list(dir, state, ("batch/v1", "Job", "jobs.yaml"), &state.jobs)?;
    count += list(
        dir,
        state,
        ("batch/v1", "CronJob", "cronjobs.yaml"),
        &state.cron_jobs,
    )?;
    count += list(
        dir,
        state,
        ("v1", "Service", "services.yaml"),
        &state.services,
    )?;
    count += list(
        dir,
        state,
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "endpointslices.yaml",
        ),
        &state.endpoint_slices,
    )?;
    count += list(
        dir,
        state,
        ("v1", "PersistentVolumeClaim", "persistentvolumeclaims.yaml"),
        &state.persistent_volume_claims,
    )?;
    count += list(
        dir,
        state,
        ("storage.k8s.io/v1", "StorageClass", "storageclasses.yaml"),
        &state.storage_classes,
    )?;
    count += list(
        dir,
        state,
        ("networking.k8s.io/v1", "Ingress", "ingresses.yaml"),
        &state.ingresses,
    )?;
    count += list(
        dir,
        state,
        (
            "policy/v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets.yaml",
        ),
        &state.pod_disruption_budgets,
    )?;
    count += list(
        dir,
        state,
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "networkpolicies.yaml",
        ),
        &state.network_policies,
    )?;
    count += list(
        dir,
        state,
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations.yaml",
        ),
        &state.validating_webhooks,
    )?;
    count += list(
        dir,
        state,
        (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations.yaml",
        ),
        &state.mutating_webhooks,
    )?;
    count += list(
        dir,
        state,
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers.yaml",
        ),
        &state.horizontal_pod_autoscalers,
    )?;
    count += list(
        dir,
        state,
        ("v1", "ConfigMap", "configmaps.yaml"),
        &state.config_maps,
    )?;
    count += list(dir, state, ("v1", "Secret", "secrets.yaml"), &state.secrets)?;
    count += list(dir, state, ("v1", "Event", "events.yaml"), &state.events)?;
    // Custom resources of every kind in one List (each item names its own apiVersion and kind).
    // A custom kind read with no objects is not recorded, so a snapshot never claims a Gateway
    // or GatewayClass is missing.
    if !state.custom_objects.is_empty() {
        count += list(
            dir,
            state,
            ("v1", "List", "customresources.yaml"),
            &state.custom_objects,
        )?;
    }
    for (key, text) in &state.logs {
        let pod_dir = dir.join("logs").join(&key.namespace).join(&key.pod);
        fs::create_dir_all(&pod_dir)?;
        let name = if key.previous {
            format!("{}.previous.log", key.container)
        } else {
            format!("{}.log", key.container)
        };
        fs::write(pod_dir.join(name), text)?;
    }
    Ok(count)
}
