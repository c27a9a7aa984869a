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

fn list<T: Serialize>(dir: &Path, file: &str, items: &[T]) -> std::io::Result<usize> {
    if items.is_empty() {
        return Ok(0);
    }
    let document = serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
    let text = serde_yaml::to_string(&document).map_err(std::io::Error::other)?;
    fs::write(dir.join(file), text)?;
    Ok(items.len())
}

/// Writes the state as one `List` file per kind and a `logs/` tree; returns the object count.
pub fn write(dir: &Path, state: &ClusterState) -> std::io::Result<usize> {
    fs::create_dir_all(dir)?;
    let mut count = 0;
    count += list(dir, "namespaces.yaml", &state.namespaces)?;
    count += list(dir, "nodes.yaml", &state.nodes)?;
    count += list(dir, "pods.yaml", &state.pods)?;
    count += list(dir, "deployments.yaml", &state.deployments)?;
    count += list(dir, "replicasets.yaml", &state.replica_sets)?;
    count += list(dir, "statefulsets.yaml", &state.stateful_sets)?;
    count += list(dir, "daemonsets.yaml", &state.daemon_sets)?;
    count += list(dir, "jobs.yaml", &state.jobs)?;
    count += list(dir, "cronjobs.yaml", &state.cron_jobs)?;
    count += list(dir, "services.yaml", &state.services)?;
    count += list(dir, "endpointslices.yaml", &state.endpoint_slices)?;
    count += list(
        dir,
        "persistentvolumeclaims.yaml",
        &state.persistent_volume_claims,
    )?;
    count += list(dir, "ingresses.yaml", &state.ingresses)?;
    count += list(
        dir,
        "horizontalpodautoscalers.yaml",
        &state.horizontal_pod_autoscalers,
    )?;
    count += list(dir, "configmaps.yaml", &state.config_maps)?;
    count += list(dir, "secrets.yaml", &state.secrets)?;
    count += list(dir, "events.yaml", &state.events)?;
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
