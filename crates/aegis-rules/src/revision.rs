//! Revisions of workloads and rollbacks (SPEC §8): the pod templates a Deployment's ReplicaSets
//! and a StatefulSet's or DaemonSet's ControllerRevisions hold, which revision pods run and
//! which are ready, and the typed patch that returns exactly the differing template fields to
//! the last revision that ran healthy.

use aegis_core::patch::{self, strategic_diff};
use aegis_core::policy::same_template;
use aegis_core::{Evidence, EvidenceSource, PatchType, ResourceKind, ResourceRef, Risk, Rollback};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::fix::Proposal;
use crate::lookup::Lookup;

/// One revision of a workload.
#[derive(Debug, Clone)]
pub struct Revision {
    pub number: i64,
    /// `ReplicaSet/<name>` or `ControllerRevision/<name>`.
    pub source: String,
    /// The revision's pod template (`metadata`, `spec`), without the revision's hash label.
    pub template: Value,
    /// Pods of this revision that are ready now.
    pub ready: usize,
    /// The values of the hash label the revision's pods carry.
    hashes: Vec<String>,
}

impl Revision {
    fn runs(&self, pod: &Pod) -> bool {
        let labels = pod.metadata.labels.as_ref();
        ["pod-template-hash", "controller-revision-hash"]
            .iter()
            .filter_map(|label| labels.and_then(|l| l.get(*label)))
            .any(|value| self.hashes.contains(value))
    }
}

/// The revisions of a workload: the newest, and the older ones, newest first.
#[derive(Debug, Clone)]
pub struct History {
    pub newest: Revision,
    pub older: Vec<Revision>,
}

fn without_hash_label(mut template: Value) -> Value {
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
        labels.remove("controller-revision-hash");
    }
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    template
}

/// The revisions of `workload` found in the state, when it has any.
pub fn history(lookup: &Lookup<'_>, workload: &ResourceRef) -> Option<History> {
    history_of(lookup, workload, &lookup.object(workload)?)
}

/// The revisions of `workload`, whose object (as [`Lookup::object`] gives it) the caller holds.
pub(crate) fn history_of(
    lookup: &Lookup<'_>,
    workload: &ResourceRef,
    object: &Value,
) -> Option<History> {
    let index = lookup.index();
    let state = index.state();
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str)?;
    let mut revisions: Vec<Revision> = match workload.kind {
        ResourceKind::Deployment => index
            .replica_sets_owned_by(uid)
            .iter()
            .filter_map(|rs| {
                let number = rs
                    .metadata
                    .annotations
                    .as_ref()?
                    .get("deployment.kubernetes.io/revision")?
                    .parse()
                    .ok()?;
                let template = serde_json::to_value(rs.spec.as_ref()?.template.as_ref()?).ok()?;
                let hash = rs
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("pod-template-hash"))
                    .cloned();
                Some(Revision {
                    number,
                    source: format!("ReplicaSet/{}", rs.metadata.name.as_deref()?),
                    template: without_hash_label(template),
                    ready: rs.status.as_ref()?.ready_replicas.unwrap_or(0).max(0) as usize,
                    hashes: hash.into_iter().collect(),
                })
            })
            .collect(),
        ResourceKind::StatefulSet | ResourceKind::DaemonSet => {
            let pods = index.pods_owned_by(uid);
            state
                .controller_revisions
                .iter()
                .filter(|cr| {
                    cr.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.controller == Some(true) && o.uid == uid)
                })
                .filter_map(|cr| {
                    let name = cr.metadata.name.clone()?;
                    let template = cr.data.as_ref()?.0.pointer("/spec/template")?.clone();
                    let mut hashes = vec![name.clone()];
                    if let Some(hash) = cr
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("controller.kubernetes.io/hash"))
                    {
                        hashes.push(hash.clone());
                    }
                    if let Some(suffix) = name.strip_prefix(&format!("{}-", workload.name)) {
                        hashes.push(suffix.to_owned());
                    }
                    let mut revision = Revision {
                        number: cr.revision,
                        source: format!("ControllerRevision/{name}"),
                        template: without_hash_label(template),
                        ready: 0,
                        hashes,
                    };
                    revision.ready = pods
                        .iter()
                        .filter(|p| revision.runs(p) && aegis_core::state::pod_is_ready(p))
                        .count();
                    Some(revision)
                })
                .collect()
        }
        _ => return None,
    };
    revisions.sort_by_key(|r| std::cmp::Reverse(r.number));
    // A StatefulSet names the revision it is updating to.
    if workload.kind == ResourceKind::StatefulSet
        && let Some(update) = object
            .pointer("/status/updateRevision")
            .and_then(Value::as_str)
        && let Some(position) = revisions
            .iter()
            .position(|r| r.source == format!("ControllerRevision/{update}"))
    {
        let newest = revisions.remove(position);
        revisions.insert(0, newest);
    }
    let mut revisions = revisions.into_iter();
    let newest = revisions.next()?;
    Some(History {
        newest,
        older: revisions.collect(),
    })
}

/// The pods of `workload` that run its current pod template, and the revision names they
/// run under (the ReplicaSet or ControllerRevision): what a change is confirmed on. A bare Pod
/// is its own. `None` while no revision holds the workload's template yet (its controller
/// has not seen the change) or the kind has no pods.
pub fn current_pods<'a>(
    lookup: &Lookup<'a>,
    workload: &ResourceRef,
) -> Option<(Vec<&'a Pod>, Vec<String>)> {
    let index = lookup.index();
    if workload.kind == ResourceKind::Pod {
        let pod = lookup.pod(workload.namespace_str(), &workload.name)?;
        return Some((vec![pod], Vec::new()));
    }
    let object = lookup.object(workload)?;
    let template = without_hash_label(object.pointer("/spec/template")?.clone());
    let history = history_of(lookup, workload, &object)?;
    let revision = std::iter::once(&history.newest)
        .chain(&history.older)
        .find(|r| same_template(&r.template, &template))?;
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str)?;
    let pods = index
        .pods_of_workload(workload.kind, uid)
        .into_iter()
        .filter(|pod| revision.runs(pod))
        .collect();
    let name = revision
        .source
        .split_once('/')
        .map_or(revision.source.clone(), |(_, name)| name.to_owned());
    Some((pods, vec![name]))
}

/// The pod template a revision source (`ReplicaSet/<name>` or `ControllerRevision/<name>`) of
/// `workload` holds: what a rollback fix must produce, for re-checking it against the policy.
pub fn template_of(lookup: &Lookup<'_>, workload: &ResourceRef, source: &str) -> Option<Value> {
    let history = history(lookup, workload)?;
    std::iter::once(history.newest)
        .chain(history.older)
        .find(|r| r.source == source)
        .map(|r| r.template)
}

/// The pod-template fields that differ between two templates, as paths people read.
fn changed_fields(from: &Value, to: &Value) -> Vec<String> {
    let mut fields = Vec::new();
    let containers = |template: &Value, list: &str| -> Vec<Value> {
        template
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for list in ["initContainers", "containers"] {
        let before = containers(from, list);
        let after = containers(to, list);
        let mut names: Vec<&str> = before
            .iter()
            .chain(&after)
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let find = |all: &[Value]| {
                all.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
                    .cloned()
            };
            match (find(&before), find(&after)) {
                (Some(a), Some(b)) => {
                    let keys: std::collections::BTreeSet<&String> = a
                        .as_object()
                        .into_iter()
                        .flatten()
                        .chain(b.as_object().into_iter().flatten())
                        .map(|(k, _)| k)
                        .collect();
                    for key in keys {
                        let (x, y) = (
                            a.get(key).cloned().unwrap_or(Value::Null),
                            b.get(key).cloned().unwrap_or(Value::Null),
                        );
                        if !same_template(&x, &y) {
                            fields.push(format!("{list}[{name}].{key}"));
                        }
                    }
                }
                _ => fields.push(format!("{list}[{name}]")),
            }
        }
    }
    let keys: std::collections::BTreeSet<String> = [from, to]
        .iter()
        .flat_map(|t| {
            t.get("spec")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
        })
        .map(|(k, _)| k.clone())
        .filter(|k| k != "containers" && k != "initContainers")
        .collect();
    for key in keys {
        let pointer = format!("/spec/{key}");
        let (x, y) = (
            from.pointer(&pointer).cloned().unwrap_or(Value::Null),
            to.pointer(&pointer).cloned().unwrap_or(Value::Null),
        );
        if !same_template(&x, &y) {
            fields.push(key);
        }
    }
    for key in ["labels", "annotations"] {
        let pointer = format!("/metadata/{key}");
        let (x, y) = (
            from.pointer(&pointer).cloned().unwrap_or(Value::Null),
            to.pointer(&pointer).cloned().unwrap_or(Value::Null),
        );
        if !same_template(&x, &y) {
            fields.push(format!("metadata.{key}"));
        }
    }
    fields
}

/// The rollback of `workload` to the last revision that ran healthy, when the failure is the
/// newest revision's: `failing_pods` (the incident's pods) all run the newest revision, and an
/// older revision has ready pods. Otherwise why there is none.
pub fn rollback(
    lookup: &Lookup<'_>,
    workload: &ResourceRef,
    failing_pods: &[&Pod],
) -> Result<Proposal, String> {
    let Some(object) = lookup.object(workload) else {
        return Err(format!("{workload} is not in the state read"));
    };
    let Some(history) = history_of(lookup, workload, &object) else {
        return Err(format!("{workload} keeps no revisions in the state read"));
    };
    let newest = &history.newest;
    if let Some(pod) = failing_pods.iter().find(|p| !newest.runs(p)) {
        return Err(format!(
            "pod {} does not run the newest revision {}, so the failure did not come with the last rollout",
            pod.metadata.name.as_deref().unwrap_or_default(),
            newest.number
        ));
    }
    let Some(healthy) = history.older.iter().find(|r| r.ready > 0) else {
        return Err(if history.older.is_empty() {
            format!("{workload} has a single revision; there is nothing to roll back to")
        } else {
            format!(
                "no earlier revision of {workload} has ready pods, so none is known to run healthy"
            )
        });
    };
    let Some(current) = object.pointer("/spec/template").cloned() else {
        return Err(format!("{workload} has no pod template"));
    };
    if same_template(&current, &healthy.template) {
        return Err(format!(
            "revision {} has the same pod template as the running spec",
            healthy.number
        ));
    }
    let fields = changed_fields(&current, &healthy.template);
    let patch = json!({"spec": {"template": strategic_diff(&current, &healthy.template)}});
    let patched = patch::apply(&object, PatchType::StrategicMerge, &patch)
        .map_err(|e| format!("the rollback patch does not apply: {e}"))?;
    let Some(restored) = patched
        .pointer("/spec/template")
        .filter(|t| same_template(t, &healthy.template))
        .cloned()
    else {
        return Err(format!(
            "no strategic-merge patch reproduces revision {}'s template exactly",
            healthy.number
        ));
    };
    let inverse = json!({"spec": {"template": strategic_diff(&restored, &current)}});
    let undone = patch::apply(&patched, PatchType::StrategicMerge, &inverse)
        .ok()
        .and_then(|o| o.pointer("/spec/template").cloned());
    if !undone.is_some_and(|t| same_template(&t, &current)) {
        return Err("the rollback's inverse does not restore the running template".to_owned());
    }
    let field_list = fields.join(", ");
    let steps = vec![
        format!(
            "revision {} ({}) is the newest; the failing pods run it",
            newest.number, newest.source
        ),
        format!(
            "revision {} ({}) has {} ready pod(s)",
            healthy.number, healthy.source, healthy.ready
        ),
        format!(
            "revision {} changed {field_list} from revision {}",
            newest.number, healthy.number
        ),
    ];
    let evidence = vec![Evidence::new(
        EvidenceSource::Status,
        healthy.source.to_ascii_lowercase(),
        format!(
            "revision {}: {} ready pod(s)",
            healthy.number, healthy.ready
        ),
    )];
    Ok(Proposal {
        summary: format!(
            "Roll back {} {} from revision {} to revision {} ({field_list})",
            workload.kind, workload.name, newest.number, healthy.number
        ),
        target: workload.clone(),
        patch,
        inverse,
        risk: Risk::Low,
        steps,
        rationale: format!(
            "Revision {} runs {} ready pod(s) in this cluster now, while revision {}'s pods fail; returning exactly the fields revision {} changed ({field_list}) to revision {}'s values restores a template proven here.",
            healthy.number, healthy.ready, newest.number, newest.number, healthy.number
        ),
        evidence,
        original: object,
        rollback: Some((
            Rollback {
                from_revision: newest.number,
                to_revision: healthy.number,
                source: healthy.source.clone(),
                fields,
            },
            healthy.template.clone(),
        )),
    })
}
