//! Evidence gathering shared by the analyzers: events, log lines and fields of objects, quoted
//! with their source.

use aegis_core::state::StateIndex;
use aegis_core::{ClusterState, Evidence, EvidenceSource, ResourceKind, ResourceRef};

/// A field of an object as evidence, referenced as `kind/namespace/name: field`
/// (`kind/name: field` for a cluster-scoped kind).
pub(crate) fn object_evidence(
    source: EvidenceSource,
    resource: &ResourceRef,
    field: &str,
    value: impl Into<String>,
) -> Evidence {
    let kind = resource.kind.as_str().to_ascii_lowercase();
    let reference = if resource.namespace.is_some() {
        format!(
            "{kind}/{}/{}: {field}",
            resource.namespace_str(),
            resource.name
        )
    } else {
        format!("{kind}/{}: {field}", resource.name)
    };
    Evidence::new(source, reference, value)
}

/// Warning events about an object (and `Killing`, which explains probe restarts), newest last.
pub fn event_evidence(
    index: &StateIndex<'_>,
    kind: ResourceKind,
    namespace: &str,
    name: &str,
) -> Vec<Evidence> {
    index
        .events_for(kind, namespace, name)
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning") || e.reason.as_deref() == Some("Killing"))
        .map(|e| {
            let count = e.count.unwrap_or(1);
            let times = if count > 1 {
                format!(" (x{count})")
            } else {
                String::new()
            };
            Evidence::new(
                EvidenceSource::Event,
                format!(
                    "event/{namespace}/{}",
                    e.metadata.name.as_deref().unwrap_or_default()
                ),
                format!(
                    "{} {}{times}: {}",
                    e.type_.as_deref().unwrap_or("Normal"),
                    e.reason.as_deref().unwrap_or_default(),
                    e.message.as_deref().unwrap_or_default()
                ),
            )
        })
        .collect()
}

/// The last `lines` non-empty lines of a container's log, each as evidence with its line number.
pub fn log_evidence(
    state: &ClusterState,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
    lines: usize,
) -> Vec<Evidence> {
    let Some(log) = state.log(namespace, pod, container, previous) else {
        return Vec::new();
    };
    let which = if previous { "previous" } else { "current" };
    last_lines(
        log,
        lines,
        &format!("log/{namespace}/{pod}/{container}/{which}"),
    )
}

/// The last `lines` non-empty lines of a text the application wrote, each as log evidence
/// referenced `{prefix}:{line number}`.
pub fn last_lines(text: &str, lines: usize, prefix: &str) -> Vec<Evidence> {
    let all: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|(number, line)| {
            Evidence::new(
                EvidenceSource::Log,
                format!("{prefix}:{}", number + 1),
                (*line).to_owned(),
            )
        })
        .collect()
}
