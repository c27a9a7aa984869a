//! Fix proposals: for each diagnosed cause, the smallest typed patch on the owning workload that
//! removes it, with the patch that undoes it — or the reason no safe fix exists.

use aegis_core::image::ImageRef;
use aegis_core::{Evidence, EvidenceSource, ResourceKind, ResourceRef, Risk, quantity};
use serde_json::{Map, Value, json};

use crate::classify::{Cause, ProbeKind};
use crate::lookup::Lookup;
use crate::text::{edit_distance, similar};

/// A proposed patch before the policy has seen it.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub summary: String,
    pub target: ResourceRef,
    pub patch: Value,
    pub inverse: Value,
    pub risk: Risk,
    pub steps: Vec<String>,
    pub rationale: String,
    pub evidence: Vec<Evidence>,
    /// The target object as it is now, for the policy's checks.
    pub original: Value,
    /// For a rollback: where it returns, and the pod template it must produce.
    pub rollback: Option<(aegis_core::Rollback, Value)>,
}

/// A proposal, or why there is none.
// Built once per incident and consumed at once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Outcome {
    Proposed(Proposal),
    NoFix { reason: String, steps: Vec<String> },
}

fn no_fix(reason: impl Into<String>) -> Outcome {
    Outcome::NoFix {
        reason: reason.into(),
        steps: Vec::new(),
    }
}

/// Where the pod spec sits inside an object of `kind`.
fn pod_spec_path(kind: ResourceKind) -> Option<&'static [&'static str]> {
    match kind {
        ResourceKind::Pod => Some(&["spec"]),
        ResourceKind::Deployment
        | ResourceKind::StatefulSet
        | ResourceKind::DaemonSet
        | ResourceKind::ReplicaSet
        | ResourceKind::Job => Some(&["spec", "template", "spec"]),
        ResourceKind::CronJob => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Nests `inner` at the pod spec of an object of `kind`.
fn wrap(kind: ResourceKind, inner: Value) -> Value {
    let path = pod_spec_path(kind).unwrap_or(&["spec"]);
    path.iter()
        .rev()
        .fold(inner, |value, key| json!({ *key: value }))
}

fn container_patch(kind: ResourceKind, container: &str, fields: Value) -> Value {
    let mut entry = Map::new();
    entry.insert("name".to_owned(), json!(container));
    if let Value::Object(fields) = fields {
        entry.extend(fields);
    }
    wrap(kind, json!({"containers": [Value::Object(entry)]}))
}

fn pod_spec(object: &Value, kind: ResourceKind) -> Option<&Value> {
    let mut current = object;
    for key in pod_spec_path(kind)? {
        current = current.get(*key)?;
    }
    Some(current)
}

fn container_spec<'a>(object: &'a Value, kind: ResourceKind, name: &str) -> Option<&'a Value> {
    pod_spec(object, kind)?
        .get("containers")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

fn spec_evidence(target: &ResourceRef, field: &str, value: &Value) -> Evidence {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => "(not set)".to_owned(),
        other => other.to_string(),
    };
    Evidence::new(
        EvidenceSource::Spec,
        format!(
            "{}/{}/{}: {field}",
            target.kind.as_str().to_ascii_lowercase(),
            target.namespace_str(),
            target.name
        ),
        text,
    )
}

/// A bare Pod's spec is immutable except for images; other fixes need the manifest changed.
fn immutable_pod(workload: &ResourceRef) -> Option<Outcome> {
    (workload.kind == ResourceKind::Pod).then(|| {
        no_fix(format!(
            "pod {} has no owning workload and a pod's spec cannot be changed in place (only its images can); recreate it from a corrected manifest",
            workload.name
        ))
    })
}

/// The fixes for `cause` on `workload`, best first (never empty), or why there is none. The
/// first is the fix; the others are candidates the shadow verifies when it fails.
// The error is the outcome handed straight back to the caller, once per incident.
#[allow(clippy::result_large_err)]
pub fn candidates(
    lookup: &Lookup<'_>,
    cause: &Cause,
    workload: &ResourceRef,
) -> Result<Vec<Proposal>, Outcome> {
    let Some(object) = lookup.object(workload) else {
        return Err(no_fix(format!(
            "{workload} is not in the state read, so no patch can be computed against it"
        )));
    };
    let one = |outcome: Outcome| match outcome {
        Outcome::Proposed(proposal) => Ok(vec![proposal]),
        no_fix @ Outcome::NoFix { .. } => Err(no_fix),
    };
    let found = match cause {
        Cause::MissingEnv {
            container,
            variable,
        } => missing_env_fixes(lookup, &object, workload, container, variable),
        Cause::ConfigRef { container, message } => one(config_ref(
            lookup,
            &object,
            workload,
            container.as_deref(),
            message,
        )),
        Cause::Image { container } => image_fixes(lookup, &object, workload, container),
        Cause::PullAuth { container } => pull_auth_fixes(lookup, &object, workload, container),
        Cause::Oom { container } => one(oom(lookup, &object, workload, container)),
        Cause::Probe {
            container,
            probe,
            failure,
        } => one(probe_fix(&object, workload, container, *probe, failure)),
        Cause::Unschedulable { message } if message.contains("Insufficient ") => {
            one(requests(lookup, &object, workload))
        }
        Cause::Unschedulable { message } => Err(no_fix(format!(
            "the scheduler excludes every node for the pod's placement rules, not its size ({message}); a node selector, affinity or toleration says where the workload must run, and changing it (or adding such nodes) is a human decision"
        ))),
        Cause::ServiceSelector => selector_fixes(lookup, &object, workload),
        Cause::ServicePort => one(target_port(lookup, &object, workload)),
        Cause::IngressBackend { service } => {
            one(ingress_backend(lookup, &object, workload, service))
        }
        Cause::Other => Err(no_fix(
            "the evidence names no specific field to change for this cause",
        )),
    };
    match found {
        Ok(proposals) if proposals.is_empty() => Err(no_fix("no candidate fix was found")),
        other => other,
    }
}

/// `ConfigMap NAME key KEY` or `Secret NAME key KEY` for an env `valueFrom`.
fn describe_value_from(value_from: &Value) -> String {
    for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
        if let Some(reference) = value_from.get(field) {
            let text = |key: &str| {
                reference
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            return format!("{kind} {} key {}", text("name"), text("key"));
        }
    }
    value_from.to_string()
}

/// A variable name compared loosely: `DATABASE_URL`, `database-url` and `database.url` match.
fn normalised(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Where the value of a missing variable can come from, best first: a key of the same name in
/// a ConfigMap named after the workload, the `valueFrom` sibling workloads of the namespace use
/// for the same variable, a key of the same name elsewhere, then a key of the same normalised
/// name. Secret values are only ever referenced, never read.
// The error is the outcome handed straight back to the caller, once per incident.
#[allow(clippy::result_large_err)]
fn missing_env_fixes(
    lookup: &Lookup<'_>,
    object: &Value,
    workload: &ResourceRef,
    container: &str,
    variable: &str,
) -> Result<Vec<Proposal>, Outcome> {
    if let Some(outcome) = immutable_pod(workload) {
        return Err(outcome);
    }
    let namespace = workload.namespace_str();
    let state = lookup.index().state();
    let mut steps = vec![format!(
        "searched ConfigMaps and Secrets of namespace {namespace} for a key named {variable} (or its normalised form {}), and the other workloads of the namespace for how they set {variable}",
        normalised(variable)
    )];
    if !state.has_read("Secret") {
        steps.push("Secrets were not read, so their keys could not be searched".to_owned());
    }
    let wanted = normalised(variable);
    // (rank, source, valueFrom)
    let mut sources: Vec<(u8, String, Value)> = Vec::new();
    for (kind, field, objects, base) in [
        (
            "ConfigMap",
            "configMapKeyRef",
            lookup.config_map_keys(namespace),
            0u8,
        ),
        ("Secret", "secretKeyRef", lookup.secret_keys(namespace), 1),
    ] {
        for (name, keys) in objects {
            for key in keys {
                let rank = if key == variable {
                    if name.starts_with(&workload.name) {
                        base
                    } else {
                        2 + base
                    }
                } else if normalised(key) == wanted {
                    4 + base
                } else {
                    continue;
                };
                let source = if key == variable {
                    format!("{kind} {name}")
                } else {
                    format!("{kind} {name} (key {key})")
                };
                sources.push((rank, source, json!({ field: {"name": name, "key": key} })));
            }
        }
    }
    // The references siblings set the variable from, with the siblings using each.
    let mut used: Vec<(Value, Vec<&ResourceRef>)> = Vec::new();
    let sibling_sources = lookup.env_sources(namespace, variable);
    for (sibling, value_from) in &sibling_sources {
        if sibling == workload {
            continue;
        }
        // The object referenced must still hold the key, where its kind was read.
        let holds = |field: &str, kind: &str, keys: &[(String, Vec<String>)]| {
            let name = value_from
                .pointer(&format!("/{field}/name"))
                .and_then(Value::as_str);
            let key = value_from
                .pointer(&format!("/{field}/key"))
                .and_then(Value::as_str);
            match (name, key) {
                (Some(name), Some(key)) => {
                    !state.has_read(kind)
                        || keys
                            .iter()
                            .any(|(n, k)| n == name && k.iter().any(|k| k == key))
                }
                _ => false,
            }
        };
        let usable = if value_from.get("configMapKeyRef").is_some() {
            holds(
                "configMapKeyRef",
                "ConfigMap",
                lookup.config_map_keys(namespace),
            )
        } else if value_from.get("secretKeyRef").is_some() {
            holds("secretKeyRef", "Secret", lookup.secret_keys(namespace))
        } else {
            false
        };
        if !usable {
            continue;
        }
        match used.iter_mut().find(|(v, _)| v == value_from) {
            Some((_, siblings)) => siblings.push(sibling),
            None => used.push((value_from.clone(), vec![sibling])),
        }
    }
    // The reference most siblings share comes first.
    used.sort_by_key(|(_, siblings)| std::cmp::Reverse(siblings.len()));
    for (value_from, siblings) in used {
        let who = match siblings.as_slice() {
            [one] => format!("{} {}", one.kind, one.name),
            [first, ..] => format!(
                "{} {} and {} other workload(s)",
                first.kind,
                first.name,
                siblings.len() - 1
            ),
            [] => continue,
        };
        sources.push((
            1,
            format!(
                "{}, which {who} sets {variable} from,",
                describe_value_from(&value_from)
            ),
            value_from,
        ));
    }
    sources.sort_by_key(|a| a.0);
    let mut seen: Vec<Value> = Vec::new();
    sources.retain(|(_, _, value_from)| {
        let fresh = !seen.contains(value_from);
        seen.push(value_from.clone());
        fresh
    });
    // A ConfigMap named after the workload is its own configuration: other workloads' sources
    // are then not candidates (their values are theirs).
    if sources.first().is_some_and(|(rank, _, _)| *rank == 0) {
        sources.retain(|(rank, _, _)| *rank == 0);
    }
    if sources.is_empty() {
        return Err(Outcome::NoFix {
            reason: format!(
                "no ConfigMap or Secret in namespace {namespace} has a key {variable} (or {wanted}), and no other workload there sets {variable} from one; its value must come from a human (AEGIS never invents configuration values)"
            ),
            steps,
        });
    }
    let current_env = container_spec(object, workload.kind, container)
        .and_then(|c| c.get("env"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(sources
        .into_iter()
        .map(|(_, source_name, value_from)| {
            let mut steps = steps.clone();
            steps.push(format!("found {variable} in {}", source_name.trim_end_matches(',')));
            Proposal {
                summary: format!(
                    "Set {variable} in container {container} of {} {} from {}",
                    workload.kind,
                    workload.name,
                    describe_value_from(&value_from)
                ),
                target: workload.clone(),
                patch: container_patch(
                    workload.kind,
                    container,
                    json!({"env": [{"name": variable, "valueFrom": value_from}]}),
                ),
                inverse: container_patch(
                    workload.kind,
                    container,
                    json!({"env": [{"name": variable, "$patch": "delete"}]}),
                ),
                risk: Risk::Low,
                steps,
                rationale: format!(
                    "{source_name} already holds {variable} in the same namespace; referencing it adds the missing variable without copying or inventing a value."
                ),
                evidence: vec![spec_evidence(
                    workload,
                    &format!("spec.template.spec.containers[{container}].env"),
                    &current_env,
                )],
                original: object.clone(),
                rollback: None,
            }
        })
        .collect())
}

/// Parses the kubelet's message about a missing reference: `(kind, name, missing key)`.
fn parse_reference(message: &str) -> Option<(&'static str, String, Option<String>)> {
    for (kind, marker) in [("ConfigMap", "configmap \""), ("Secret", "secret \"")] {
        if let Some(rest) = message.split(marker).nth(1)
            && let Some((name, _)) = rest.split_once('"')
        {
            return Some((kind, name.to_owned(), None));
        }
    }
    let rest = message.split("couldn't find key ").nth(1)?;
    let (key, rest) = rest.split_once(" in ")?;
    let (kind, path) = rest.split_once(' ')?;
    let name = path.rsplit('/').next()?.trim_end_matches(['.', '"']);
    let kind = if kind == "ConfigMap" {
        "ConfigMap"
    } else {
        "Secret"
    };
    Some((kind, name.to_owned(), Some(key.to_owned())))
}

fn config_ref(
    lookup: &Lookup<'_>,
    object: &Value,
    workload: &ResourceRef,
    container: Option<&str>,
    message: &str,
) -> Outcome {
    let Some(container) = container else {
        return no_fix(format!(
            "a volume refers to a missing object ({message}); volume sources are fixed only by a human"
        ));
    };
    if let Some(outcome) = immutable_pod(workload) {
        return outcome;
    }
    let Some((kind, missing, missing_key)) = parse_reference(message) else {
        return no_fix(format!(
            "the kubelet's message does not name the missing reference: {message}"
        ));
    };
    let namespace = workload.namespace_str();
    let ref_field = if kind == "ConfigMap" {
        "configMapKeyRef"
    } else {
        "secretKeyRef"
    };
    let Some(spec) = container_spec(object, workload.kind, container) else {
        return no_fix(format!(
            "container {container} is not in the spec of {workload}"
        ));
    };
    let env = spec
        .get("env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let referring: Vec<&Value> = env
        .iter()
        .filter(|e| {
            e.pointer(&format!("/valueFrom/{ref_field}/name"))
                .and_then(Value::as_str)
                == Some(missing.as_str())
        })
        .collect();
    if referring.is_empty() {
        return no_fix(format!(
            "the missing {kind} {missing} is referenced outside the container's env (envFrom or a volume); no targeted change is safe"
        ));
    }
    let available = if kind == "ConfigMap" {
        lookup.config_map_keys(namespace)
    } else {
        lookup.secret_keys(namespace)
    };
    let mut steps = vec![format!(
        "container {container} refers to {kind} {missing}{}",
        missing_key
            .as_ref()
            .map(|k| format!(" key {k}"))
            .unwrap_or_default()
    )];
    let mut patched_env = Vec::new();
    let mut inverse_env = Vec::new();
    for entry in referring {
        let key = entry
            .pointer(&format!("/valueFrom/{ref_field}/key"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let replacement = if missing_key.is_some() {
            // The object exists but lacks the key: a key of a similar name is a typo.
            available
                .iter()
                .find(|(name, _)| *name == missing)
                .and_then(|(_, keys)| {
                    keys.iter()
                        .filter(|k| similar(k, key))
                        .min_by_key(|k| edit_distance(k, key))
                })
                .map(|k| (missing.clone(), (*k).clone()))
        } else {
            // The object is missing: another object of a similar name with the key is a typo.
            available
                .iter()
                .filter(|(name, keys)| similar(name, &missing) && keys.iter().any(|k| k == key))
                .min_by_key(|(name, _)| edit_distance(name, &missing))
                .map(|(name, _)| ((*name).clone(), key.to_owned()))
        };
        let Some((new_name, new_key)) = replacement else {
            steps.push(format!("no {kind} in namespace {namespace} has a name or key close enough to be the intended one"));
            return Outcome::NoFix {
                reason: format!(
                    "{kind} {missing} (or its key) must be created by a human; no similarly named {kind} in namespace {namespace} holds the value"
                ),
                steps,
            };
        };
        steps.push(format!(
            "{kind} {new_name} exists in namespace {namespace} and has key {new_key}"
        ));
        let variable = entry.get("name").cloned().unwrap_or(Value::Null);
        patched_env.push(
            json!({"name": variable, "valueFrom": {ref_field: {"name": new_name, "key": new_key}}}),
        );
        inverse_env.push(json!({"name": variable, "valueFrom": entry.get("valueFrom").cloned().unwrap_or(Value::Null)}));
    }
    let (new_name, new_key) = (
        patched_env[0]
            .pointer(&format!("/valueFrom/{ref_field}/name"))
            .cloned()
            .unwrap_or(Value::Null),
        patched_env[0]
            .pointer(&format!("/valueFrom/{ref_field}/key"))
            .cloned()
            .unwrap_or(Value::Null),
    );
    Outcome::Proposed(Proposal {
        summary: format!(
            "Point container {container} of {} {} at {kind} {} key {}",
            workload.kind,
            workload.name,
            new_name.as_str().unwrap_or_default(),
            new_key.as_str().unwrap_or_default()
        ),
        target: workload.clone(),
        patch: container_patch(workload.kind, container, json!({"env": patched_env})),
        inverse: container_patch(workload.kind, container, json!({"env": inverse_env})),
        risk: Risk::Low,
        steps,
        rationale: format!(
            "The reference names {kind} {missing}, which does not exist as written, while a {kind} of nearly the same name holds the same key: a typo in the reference."
        ),
        evidence: vec![spec_evidence(
            workload,
            &format!("containers[{container}].env"),
            &Value::Array(env.clone()),
        )],
        original: object.clone(),
        rollback: None,
    })
}

/// An image known to run, why it is trusted, and the risk of switching to it.
type ImageChoice = (String, String, Risk);

/// The images of the same repository known to work, best first: those earlier revisions of the
/// Deployment ran with ready pods (newest first), then tags that run, ready, elsewhere in the
/// cluster (closest to the requested tag first). Also the steps taken to find them.
fn image_choices(
    lookup: &Lookup<'_>,
    object: &Value,
    workload: &ResourceRef,
    container: &str,
    current: &str,
    reference: &ImageRef,
) -> (Vec<ImageChoice>, Vec<String>) {
    let repository = reference.full_repository();
    let mut steps = Vec::new();
    let mut choices: Vec<ImageChoice> = Vec::new();
    if workload.kind == ResourceKind::Deployment
        && let Some(history) = crate::revision::history_of(lookup, workload, object)
    {
        steps.push(format!(
            "looked for an earlier revision of deployment {} that ran {repository}",
            workload.name
        ));
        // Newest first: a revision's ready pods prove its image runs.
        let revisions = std::iter::once(&history.newest)
            .chain(&history.older)
            .filter(|r| r.ready > 0)
            .filter_map(|r| {
                let image = r
                    .template
                    .pointer("/spec/containers")?
                    .as_array()?
                    .iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(container))?
                    .get("image")?
                    .as_str()?;
                (image != current
                    && ImageRef::parse(image).is_some_and(|r| r.full_repository() == repository))
                .then(|| (r.number, image.to_owned()))
            });
        for (revision, image) in revisions {
            steps.push(format!("revision {revision} ran {image} with ready pods"));
            if !choices.iter().any(|(known, _, _)| *known == image) {
                choices.push((
                    image,
                    format!("revision {revision} of this Deployment ran it with ready pods"),
                    Risk::Low,
                ));
            }
        }
    }
    steps.push(format!(
        "looked for ready pods anywhere in the cluster running {repository}"
    ));
    let wanted_tag = reference.tag.clone().unwrap_or_default();
    let mut running: Vec<&(String, String)> = lookup
        .ready_images()
        .iter()
        .filter(|(image, _)| {
            image != current
                && ImageRef::parse(image)
                    .is_some_and(|r| r.full_repository() == repository && r.digest.is_none())
        })
        .collect();
    running.sort_by_key(|(image, _)| {
        let tag = ImageRef::parse(image)
            .and_then(|r| r.tag)
            .unwrap_or_default();
        (edit_distance(&tag, &wanted_tag), image.clone())
    });
    for (image, pod) in running {
        if choices.iter().any(|(known, _, _)| known == image) {
            continue;
        }
        steps.push(format!("pod {pod} runs {image} and is ready"));
        choices.push((
            image.clone(),
            format!(
                "pod {pod} runs it, ready, in this cluster; its tag is the closest to the requested one"
            ),
            Risk::Medium,
        ));
    }
    (choices, steps)
}

/// Fixes for an image that does not exist: every image of the same repository known to work,
/// best first (the first is the fix; the others are candidates the shadow tries when it fails).
// The error is the outcome handed straight back to the caller, once per incident.
#[allow(clippy::result_large_err)]
fn image_fixes(
    lookup: &Lookup<'_>,
    object: &Value,
    workload: &ResourceRef,
    container: &str,
) -> Result<Vec<Proposal>, Outcome> {
    let Some(current) = container_spec(object, workload.kind, container)
        .and_then(|c| c.get("image"))
        .and_then(Value::as_str)
    else {
        return Err(no_fix(format!(
            "container {container} is not in the spec of {workload}"
        )));
    };
    // An invalid reference is read as its nearest valid form, which is itself a candidate.
    let intended = aegis_core::image::nearest_valid(current);
    let Some(reference) =
        ImageRef::parse(current).or_else(|| intended.as_deref().and_then(ImageRef::parse))
    else {
        return Err(no_fix(format!(
            "image {current} is not a valid reference and no evident correction makes it one, so no image of the same repository can be chosen; a human must name the image"
        )));
    };
    let (mut choices, mut steps) =
        image_choices(lookup, object, workload, container, current, &reference);
    if let Some(intended) = intended
        && !choices.iter().any(|(known, _, _)| *known == intended)
    {
        steps.push(format!(
            "{intended} is the one valid reference {current} can be corrected to"
        ));
        // After images known to run, before tags merely seen elsewhere.
        let position = choices
            .iter()
            .position(|(_, _, risk)| *risk != Risk::Low)
            .unwrap_or(choices.len());
        choices.insert(
            position,
            (
                intended,
                "it is the reference as written, corrected to a valid form".to_owned(),
                Risk::Medium,
            ),
        );
    }
    if choices.is_empty() {
        return Err(Outcome::NoFix {
            reason: format!(
                "no earlier revision and no running pod uses another tag of {}; a human must choose the tag",
                reference.full_repository()
            ),
            steps,
        });
    }
    Ok(choices
        .into_iter()
        .map(|(image, why, risk)| Proposal {
            summary: format!(
                "Change the image of container {container} of {} {} from {current} to {image}",
                workload.kind, workload.name
            ),
            target: workload.clone(),
            patch: container_patch(workload.kind, container, json!({"image": image})),
            inverse: container_patch(workload.kind, container, json!({"image": current})),
            risk,
            steps: steps.clone(),
            rationale: format!(
                "{current} cannot be pulled; {image} is from the same repository: {why}."
            ),
            evidence: vec![spec_evidence(
                workload,
                &format!("containers[{container}].image"),
                &json!(current),
            )],
            original: object.clone(),
            rollback: None,
        })
        .collect())
}

/// Pull secrets for an image the registry refuses, best first: those other workloads of the
/// namespace use for images of the same registry and organisation (most used first), then the
/// namespace's only registry credential.
#[allow(clippy::result_large_err)]
fn pull_auth_fixes(
    lookup: &Lookup<'_>,
    object: &Value,
    workload: &ResourceRef,
    container: &str,
) -> Result<Vec<Proposal>, Outcome> {
    if let Some(outcome) = immutable_pod(workload) {
        return Err(outcome);
    }
    let namespace = workload.namespace_str();
    let existing: Vec<String> = pod_spec(object, workload.kind)
        .and_then(|s| s.get("imagePullSecrets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let image = container_spec(object, workload.kind, container)
        .and_then(|c| c.get("image"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Registry and organisation: `europe-west1-docker.pkg.dev` + `acme-prod`.
    let owner = |image: &str| {
        ImageRef::parse(image).map(|r| {
            let organisation = r
                .repository
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            (r.registry, organisation)
        })
    };
    let wanted = owner(image);
    let mut steps = vec![format!(
        "looked for the pull secrets other workloads of namespace {namespace} use for images of {}",
        wanted.as_ref().map_or_else(
            || image.to_owned(),
            |(registry, org)| format!("{registry}/{org}")
        )
    )];
    let mut used: Vec<(String, usize, Vec<String>)> = Vec::new();
    for (sibling, spec) in lookup.pod_specs(namespace) {
        if *sibling == *workload {
            continue;
        }
        let same_owner = spec
            .containers
            .iter()
            .filter_map(|c| c.image.as_deref())
            .any(|i| wanted.is_some() && owner(i) == wanted);
        if !same_owner {
            continue;
        }
        for secret in spec.image_pull_secrets.iter().flatten() {
            if existing.contains(&secret.name) {
                continue;
            }
            match used.iter_mut().find(|(name, _, _)| *name == secret.name) {
                Some(entry) => {
                    entry.1 += 1;
                    if !entry.2.contains(&sibling.to_string()) {
                        entry.2.push(sibling.to_string());
                    }
                }
                None => used.push((secret.name.clone(), 1, vec![sibling.to_string()])),
            }
        }
    }
    used.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut choices: Vec<(String, String)> = used
        .into_iter()
        .map(|(name, _, users)| {
            let why = format!(
                "{} pull(s) images of the same registry and organisation with it",
                users.join(", ")
            );
            (name, why)
        })
        .collect();
    if choices.is_empty() {
        steps.push(format!(
            "no other workload pulls from there; looked for registry credentials (kubernetes.io/dockerconfigjson Secrets) in namespace {namespace} not yet used by the pod"
        ));
        let unused: Vec<String> = lookup
            .pull_secrets(namespace)
            .into_iter()
            .filter(|s| !existing.contains(s))
            .collect();
        match unused.as_slice() {
            [only] => choices.push((
                only.clone(),
                format!("it is the only registry credential in namespace {namespace}"),
            )),
            [] => {
                let reason = if lookup.index().state().has_read("Secret") {
                    format!(
                        "no workload of namespace {namespace} pulls from the same registry and organisation with a pull secret, and the namespace has no unused registry credential; a human must create one"
                    )
                } else {
                    format!(
                        "no workload of namespace {namespace} pulls from the same registry and organisation with a pull secret, and Secrets were not read, so the namespace's credentials are unknown"
                    )
                };
                return Err(Outcome::NoFix { reason, steps });
            }
            several => {
                return Err(Outcome::NoFix {
                    reason: format!(
                        "several registry-credential Secrets could apply ({}) and no workload shows which one the registry accepts; a human must choose",
                        several.join(", ")
                    ),
                    steps,
                });
            }
        }
    }
    Ok(choices
        .into_iter()
        .map(|(secret, why)| {
            let mut steps = steps.clone();
            steps.push(format!("{secret}: {why}"));
            Proposal {
                summary: format!(
                    "Add imagePullSecret {secret} to {} {}",
                    workload.kind, workload.name
                ),
                target: workload.clone(),
                patch: wrap(
                    workload.kind,
                    json!({"imagePullSecrets": [{"name": secret}]}),
                ),
                inverse: wrap(
                    workload.kind,
                    json!({"imagePullSecrets": [{"name": secret, "$patch": "delete"}]}),
                ),
                risk: Risk::Low,
                steps,
                rationale: format!(
                    "Container {container} needs registry credentials to pull {image}; {why}."
                ),
                evidence: Vec::new(),
                original: object.clone(),
                rollback: None,
            }
        })
        .collect())
}

fn oom(lookup: &Lookup<'_>, object: &Value, workload: &ResourceRef, container: &str) -> Outcome {
    if let Some(outcome) = immutable_pod(workload) {
        return outcome;
    }
    let Some(spec) = container_spec(object, workload.kind, container) else {
        return no_fix(format!(
            "container {container} is not in the spec of {workload}"
        ));
    };
    let limit_text = spec
        .pointer("/resources/limits/memory")
        .and_then(Value::as_str);
    let Some(limit) = limit_text.and_then(quantity::bytes) else {
        return no_fix(format!(
            "container {container} has no memory limit, so the kill came from node memory pressure; raising a limit would not help"
        ));
    };
    let new_limit = limit * 2;
    let largest_node = lookup.largest_node_memory();
    if largest_node.is_some_and(|n| new_limit > n) {
        return no_fix(format!(
            "doubling the memory limit of container {container} would exceed every node's memory; the application's memory use needs a human"
        ));
    }
    let new_text = quantity::format_bytes(new_limit);
    let mut patch_resources = json!({"limits": {"memory": new_text}});
    let mut inverse_resources = json!({"limits": {"memory": limit_text}});
    let request = spec
        .pointer("/resources/requests/memory")
        .and_then(Value::as_str);
    if request
        .and_then(quantity::bytes)
        .is_some_and(|r| r > new_limit)
    {
        patch_resources["requests"] = json!({"memory": new_text});
        inverse_resources["requests"] = json!({"memory": request});
    }
    Outcome::Proposed(Proposal {
        summary: format!("Raise the memory limit of container {container} of {} {} from {} to {new_text}", workload.kind, workload.name, limit_text.unwrap_or_default()),
        target: workload.clone(),
        patch: container_patch(workload.kind, container, json!({"resources": patch_resources})),
        inverse: container_patch(workload.kind, container, json!({"resources": inverse_resources})),
        risk: Risk::Medium,
        steps: vec![format!("the memory limit of container {container} is {}", limit_text.unwrap_or_default()), format!("doubled, it is {new_text}, which fits on a node")],
        rationale: "The container dies at its memory limit, not from node pressure; doubling the limit gives the working set room. If memory keeps growing after the change, the application leaks and needs a developer.".to_owned(),
        evidence: vec![spec_evidence(workload, &format!("containers[{container}].resources.limits.memory"), &json!(limit_text))],
        original: object.clone(),
        rollback: None,
    })
}

fn probe_fix(
    object: &Value,
    workload: &ResourceRef,
    container: &str,
    probe: ProbeKind,
    failure: &str,
) -> Outcome {
    if let Some(outcome) = immutable_pod(workload) {
        return outcome;
    }
    let Some(spec) = container_spec(object, workload.kind, container) else {
        return no_fix(format!(
            "container {container} is not in the spec of {workload}"
        ));
    };
    let field = probe.field();
    let Some(current) = spec.get(field) else {
        return no_fix(format!("container {container} has no {field}"));
    };
    let handler = if current.get("httpGet").is_some() {
        "httpGet"
    } else if current.get("tcpSocket").is_some() {
        "tcpSocket"
    } else {
        ""
    };
    let declared: Vec<&Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut steps = Vec::new();
    let evidence = vec![spec_evidence(
        workload,
        &format!("containers[{container}].{field}"),
        current,
    )];
    let proposal =
        |summary: String, change: Value, undo: Value, steps: Vec<String>, rationale: String| {
            Outcome::Proposed(Proposal {
                summary,
                target: workload.clone(),
                patch: container_patch(workload.kind, container, json!({ field: change })),
                inverse: container_patch(workload.kind, container, json!({ field: undo })),
                risk: Risk::Low,
                steps,
                rationale,
                evidence: evidence.clone(),
                original: object.clone(),
                rollback: None,
            })
        };
    if failure.contains("connection refused") && !handler.is_empty() {
        let port = current
            .pointer(&format!("/{handler}/port"))
            .cloned()
            .unwrap_or(Value::Null);
        let matches_declared = declared.iter().any(|p| match &port {
            Value::String(name) => p.get("name").and_then(Value::as_str) == Some(name),
            number => p.get("containerPort") == Some(number),
        });
        steps.push(format!(
            "the probe connects to port {port}; the container declares {}",
            declared
                .iter()
                .map(|p| p
                    .get("containerPort")
                    .map(ToString::to_string)
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // Another probe of the same container on another port shows where the application
        // answers.
        let other = [
            ProbeKind::Readiness,
            ProbeKind::Liveness,
            ProbeKind::Startup,
        ]
        .into_iter()
        .filter(|other| *other != probe)
        .find_map(|other| {
            let other_port = spec.get(other.field()).and_then(|p| {
                p.pointer("/httpGet/port")
                    .or_else(|| p.pointer("/tcpSocket/port"))
            })?;
            (*other_port != port).then(|| (other, other_port.clone()))
        });
        // Nothing listens on the probed port: the probe goes where the evidence says the
        // application answers.
        let repoint = |new_port: Value, steps: Vec<String>, where_: String| {
            proposal(
                format!(
                    "Point the {} probe of container {container} at port {new_port} instead of {port}",
                    probe.word()
                ),
                json!({ handler: {"port": new_port} }),
                json!({ handler: {"port": port} }),
                steps,
                format!("Nothing listens on port {port}: the connection is refused. {where_}"),
            )
        };
        if let Some((other, new_port)) = other {
            steps.push(format!(
                "the {} probe of the same container checks port {new_port}",
                other.word()
            ));
            let where_ = format!(
                "The container's {} probe checks port {new_port}, where the application answers.",
                other.word()
            );
            return repoint(new_port, steps, where_);
        }
        if !matches_declared && let [only] = declared.as_slice() {
            let new_port = only
                .get("name")
                .cloned()
                .filter(Value::is_string)
                .or_else(|| only.get("containerPort").cloned())
                .unwrap_or(Value::Null);
            steps.push(format!("the only declared port is {new_port}"));
            let where_ = format!(
                "The container's only declared port is {new_port}, where the application serves."
            );
            return repoint(new_port, steps, where_);
        }
        return Outcome::NoFix {
            reason: format!(
                "the {} probe's port {port} is refused, but the container does not declare a single other port to use",
                probe.word()
            ),
            steps,
        };
    }
    if failure.contains("statuscode: 404") && handler == "httpGet" {
        let path = current
            .pointer("/httpGet/path")
            .cloned()
            .unwrap_or(json!("/"));
        let port = current
            .pointer("/httpGet/port")
            .cloned()
            .unwrap_or(Value::Null);
        // Another probe of the same container that answers on the same port shows a path that works.
        let working = [
            ProbeKind::Readiness,
            ProbeKind::Liveness,
            ProbeKind::Startup,
        ]
        .into_iter()
        .filter(|other| *other != probe)
        .filter_map(|other| spec.get(other.field()).map(|p| (other, p)))
        .find(|(_, p)| {
            p.pointer("/httpGet/port") == Some(&port) && p.pointer("/httpGet/path") != Some(&path)
        });
        if let Some((other, other_probe)) = working {
            let new_path = other_probe
                .pointer("/httpGet/path")
                .cloned()
                .unwrap_or(json!("/"));
            steps.push(format!(
                "the {} probe answers on the same port at path {new_path}",
                other.word()
            ));
            return proposal(
                format!(
                    "Probe path {new_path} instead of {path} in the {} probe of container {container}",
                    probe.word()
                ),
                json!({"httpGet": {"path": new_path}}),
                json!({"httpGet": {"path": path}}),
                steps,
                format!(
                    "The application answers 404 at {path}; its {} probe succeeds at {new_path} on the same port.",
                    other.word()
                ),
            );
        }
        return Outcome::NoFix {
            reason: format!(
                "the application answers 404 at {path} and no other probe shows a path that works"
            ),
            steps,
        };
    }
    if failure.contains("deadline exceeded")
        || failure.contains("Timeout")
        || failure.contains("timed out")
    {
        let timeout = current
            .get("timeoutSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let new_timeout = (timeout * 3).max(5);
        steps.push(format!(
            "the probe gives up after {timeout} s, before the application answers"
        ));
        return proposal(
            format!(
                "Raise the {} probe timeout of container {container} from {timeout} s to {new_timeout} s",
                probe.word()
            ),
            json!({"timeoutSeconds": new_timeout}),
            json!({"timeoutSeconds": current.get("timeoutSeconds").cloned().unwrap_or(Value::Null)}),
            steps,
            format!(
                "The endpoint answers, but slower than the probe's {timeout} s timeout; a longer timeout lets a slow but healthy answer count."
            ),
        );
    }
    no_fix(format!(
        "the {} probe fails with `{failure}`, which no rule knows how to correct",
        probe.word()
    ))
}

fn requests(lookup: &Lookup<'_>, object: &Value, workload: &ResourceRef) -> Outcome {
    if let Some(outcome) = immutable_pod(workload) {
        return outcome;
    }
    let Some(containers) = pod_spec(object, workload.kind)
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
    else {
        return no_fix("the workload has no containers");
    };
    let Some((node, free_cpu, free_memory, allocatable_cpu, allocatable_memory)) =
        lookup.roomiest_node().cloned()
    else {
        return no_fix("no schedulable node is known");
    };
    let mut steps = vec![format!(
        "node {node} has the most room: {} CPU and {} memory free",
        quantity::format_cpu_millis(free_cpu),
        quantity::format_bytes(free_memory)
    )];
    // Only requests larger than any node can ever offer are a mistake in the spec; a cluster
    // that is merely full needs capacity, not a smaller request.
    for container in containers {
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for (resource, allocatable, free, parse, format, step) in [
            (
                "memory",
                allocatable_memory,
                free_memory,
                quantity::bytes as fn(&str) -> Option<u64>,
                quantity::format_bytes as fn(u64) -> String,
                64 * 1024 * 1024,
            ),
            (
                "cpu",
                allocatable_cpu,
                free_cpu,
                quantity::cpu_millis,
                quantity::format_cpu_millis,
                100,
            ),
        ] {
            let request_text = container
                .pointer(&format!("/resources/requests/{resource}"))
                .and_then(Value::as_str);
            let Some(request) = request_text.and_then(parse) else {
                continue;
            };
            if request <= allocatable {
                continue;
            }
            // Four fifths of the room: the rest stays for the node's other pods and for the
            // surge of rolling updates, so the fixed pod does not lose its place to them.
            let new_request = free / 5 * 4 / step * step;
            if new_request == 0 {
                continue;
            }
            let new_text = format(new_request);
            steps.push(format!(
                "container {name} requests {} {resource}, more than any node's {} allocatable",
                request_text.unwrap_or_default(),
                format(allocatable)
            ));
            let mut patch_resources = json!({"requests": {resource: new_text}});
            let mut inverse_resources = json!({"requests": {resource: request_text}});
            // A limit above what any node has is meaningless; cap it at the node's size.
            let limit_text = container
                .pointer(&format!("/resources/limits/{resource}"))
                .and_then(Value::as_str);
            if limit_text
                .and_then(parse)
                .is_some_and(|limit| limit > allocatable)
            {
                patch_resources["limits"] = json!({resource: format(allocatable)});
                inverse_resources["limits"] = json!({resource: limit_text});
                steps.push(format!(
                    "its {resource} limit {} is above any node's size too",
                    limit_text.unwrap_or_default()
                ));
            }
            return Outcome::Proposed(Proposal {
                summary: format!(
                    "Lower the {resource} request of container {name} of {} {} from {} to {new_text}",
                    workload.kind,
                    workload.name,
                    request_text.unwrap_or_default()
                ),
                target: workload.clone(),
                patch: container_patch(workload.kind, name, json!({"resources": patch_resources})),
                inverse: container_patch(
                    workload.kind,
                    name,
                    json!({"resources": inverse_resources}),
                ),
                risk: Risk::Medium,
                steps,
                rationale: format!(
                    "The request exceeds the {resource} of every node, so the pod can never be scheduled. {new_text} is four fifths of what the roomiest node has free, leaving room for its other pods; check that the application fits in it."
                ),
                evidence: vec![spec_evidence(
                    workload,
                    &format!("containers[{name}].resources.requests.{resource}"),
                    &json!(request_text),
                )],
                original: object.clone(),
                rollback: None,
            });
        }
    }
    Outcome::NoFix {
        reason: "every request fits an empty node: the cluster is full, and needs more capacity or fewer workloads, which is a human decision".to_owned(),
        steps,
    }
}

/// A selector candidate: typo distance, distance of the workload's name from the Service's,
/// the workload, the selector, and how it was found.
type ScoredSelector = (usize, usize, ResourceRef, Map<String, Value>, &'static str);

/// Selectors that would give a Service the pods of exactly one workload, best first: the
/// selector with a typo corrected (the closest first), then the labels the selector already
/// shares with one workload's pods when they pick no other workload.
#[allow(clippy::result_large_err)]
fn selector_fixes(
    lookup: &Lookup<'_>,
    object: &Value,
    service: &ResourceRef,
) -> Result<Vec<Proposal>, Outcome> {
    let Some(selector) = object.pointer("/spec/selector").and_then(Value::as_object) else {
        return Err(no_fix("the Service has no selector"));
    };
    let namespace = service.namespace_str();
    let steps = vec![format!(
        "compared the selector with the pod labels of every workload in namespace {namespace}, and with the keys its other Services select by"
    )];
    let workloads = lookup.pod_template_labels(namespace);
    let picks = |candidate: &Map<String, Value>| -> Vec<&ResourceRef> {
        workloads
            .iter()
            .filter(|(_, labels)| {
                candidate
                    .iter()
                    .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
            })
            .map(|(w, _)| w)
            .collect()
    };
    let mut scored: Vec<ScoredSelector> = Vec::new();
    for (workload, labels) in workloads {
        let mut distance = 0;
        let mut matched = true;
        let mut corrected = Map::new();
        let mut shared = Map::new();
        for (key, wanted) in selector {
            let wanted = wanted.as_str().unwrap_or_default();
            match labels.get(key) {
                Some(actual) if actual == wanted => {
                    shared.insert(key.clone(), json!(actual));
                }
                Some(actual) if similar(actual, wanted) => {
                    distance += edit_distance(actual, wanted).max(1);
                }
                _ => matched = false,
            }
            if let Some(actual) = labels.get(key) {
                corrected.insert(key.clone(), json!(actual));
            }
        }
        let name_distance = edit_distance(&workload.name, &service.name);
        if matched && distance > 0 && picks(&corrected).len() == 1 {
            scored.push((distance, name_distance, workload.clone(), corrected, "typo"));
        }
        if !shared.is_empty() && shared.len() < selector.len() && picks(&shared) == [workload] {
            scored.push((
                usize::MAX,
                name_distance,
                workload.clone(),
                shared,
                "shared",
            ));
        }
    }
    // Among selectors found by shared labels, those keyed as the namespace's other Services
    // select come first: `app` where every sibling selects by `app`.
    let sibling_keys: std::collections::BTreeSet<String> = lookup
        .services_in(namespace)
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some(service.name.as_str()))
        .flat_map(|s| {
            s.spec
                .iter()
                .flat_map(|spec| spec.selector.iter().flatten())
        })
        .map(|(key, _)| key.clone())
        .collect();
    let unconventional = |candidate: &Map<String, Value>| {
        usize::from(!sibling_keys.is_empty() && !candidate.keys().all(|k| sibling_keys.contains(k)))
    };
    scored.sort_by_key(|a| (a.0, unconventional(&a.3), a.1));
    scored.dedup_by(|a, b| a.3 == b.3);
    if scored.is_empty() {
        return Err(Outcome::NoFix {
            reason: "no workload's pod labels are a near match for the selector, and no subset of it picks exactly one workload; a human must say which pods the Service is for".to_owned(),
            steps,
        });
    }
    let old = Value::Object(selector.clone());
    Ok(scored
        .into_iter()
        .map(|(_, _, workload, new_selector, how)| {
            let mut steps = steps.clone();
            steps.push(format!(
                "{workload} labels its pods {}",
                Value::Object(new_selector.clone())
            ));
            let rationale = if how == "typo" {
                format!(
                    "The selector differs from the pod labels of {} {} by a typo; correcting it gives the Service endpoints, and it selects no other workload.",
                    workload.kind, workload.name
                )
            } else {
                format!(
                    "The labels the selector shares with the pods of {} {} pick exactly that workload; the rest of the selector matches no pod.",
                    workload.kind, workload.name
                )
            };
            // A merge patch of a map: keys dropped from the selector are set to null.
            let mut patch_selector = new_selector.clone();
            for key in selector.keys() {
                if !new_selector.contains_key(key) {
                    patch_selector.insert(key.clone(), Value::Null);
                }
            }
            Proposal {
                summary: format!(
                    "Select the pods of {} {} in Service {}",
                    workload.kind, workload.name, service.name
                ),
                target: service.clone(),
                patch: json!({"spec": {"selector": patch_selector}}),
                inverse: json!({"spec": {"selector": old}}),
                risk: Risk::Medium,
                steps,
                rationale,
                evidence: vec![spec_evidence(service, "spec.selector", &old)],
                original: object.clone(),
                rollback: None,
            }
        })
        .collect())
}

fn target_port(lookup: &Lookup<'_>, object: &Value, service: &ResourceRef) -> Outcome {
    let ports = object
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let [port] = ports.as_slice() else {
        return no_fix("the Service has several ports; which target each should use needs a human");
    };
    let selector = object
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let declared = lookup.declared_ports(service.namespace_str(), &selector);
    let [only] = declared.as_slice() else {
        return no_fix("the selected pods do not declare exactly one port to send traffic to");
    };
    let new_target = only
        .get("name")
        .cloned()
        .filter(Value::is_string)
        .or_else(|| only.get("containerPort").cloned())
        .unwrap_or(Value::Null);
    let old_target = port
        .get("targetPort")
        .cloned()
        .unwrap_or_else(|| port.get("port").cloned().unwrap_or(Value::Null));
    let number = port.get("port").cloned().unwrap_or(Value::Null);
    Outcome::Proposed(Proposal {
        summary: format!(
            "Send port {number} of Service {} to target port {new_target}",
            service.name
        ),
        target: service.clone(),
        patch: json!({"spec": {"ports": [{"port": number, "targetPort": new_target}]}}),
        inverse: json!({"spec": {"ports": [{"port": number, "targetPort": old_target}]}}),
        risk: Risk::Medium,
        steps: vec![format!("the selected pods declare one port, {new_target}")],
        rationale: format!(
            "Target port {old_target} is not exposed by the selected pods; their only port is {new_target}."
        ),
        evidence: vec![spec_evidence(
            service,
            "spec.ports[0].targetPort",
            &old_target,
        )],
        original: object.clone(),
        rollback: None,
    })
}

fn ingress_backend(
    lookup: &Lookup<'_>,
    object: &Value,
    ingress: &ResourceRef,
    missing: &str,
) -> Outcome {
    // The ports the Ingress asks of the missing Service, by number or name.
    let wanted_ports: Vec<Value> = object
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|rule| {
            rule.pointer("/http/paths")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .chain(object.pointer("/spec/defaultBackend"))
        .filter_map(|path| {
            let service = path
                .pointer("/backend/service")
                .or_else(|| path.pointer("/service"))?;
            (service.get("name").and_then(Value::as_str) == Some(missing))
                .then(|| service.get("port").cloned())
                .flatten()
        })
        .collect();
    let namespace = ingress.namespace_str();
    let services = lookup.service_ports(namespace);
    let candidates: Vec<&String> = services
        .iter()
        .filter(|(name, _)| similar(name, missing))
        .filter(|(_, ports)| {
            wanted_ports.iter().all(|wanted| {
                ports.iter().any(|(number, name)| {
                    wanted.get("number").and_then(Value::as_i64) == Some(i64::from(*number))
                        || (wanted.get("name").and_then(Value::as_str).is_some()
                            && wanted.get("name").and_then(Value::as_str) == name.as_deref())
                })
            })
        })
        .map(|(name, _)| name)
        .collect();
    let [replacement] = candidates.as_slice() else {
        return no_fix(format!(
            "{} Service(s) in namespace {namespace} have a name close to {missing} and the port the Ingress asks for; only exactly one is changed to",
            candidates.len()
        ));
    };
    let Some(rules) = object.pointer("/spec/rules").cloned() else {
        return no_fix("only rule backends are corrected automatically");
    };
    // Only backend Service names change; hosts, paths and ports stay as they are.
    let mut new_rules = rules.clone();
    for rule in new_rules.as_array_mut().into_iter().flatten() {
        let paths = rule
            .pointer_mut("/http/paths")
            .and_then(Value::as_array_mut);
        for path in paths.into_iter().flatten() {
            if let Some(name) = path.pointer_mut("/backend/service/name")
                && name == missing
            {
                *name = json!(replacement);
            }
        }
    }
    Outcome::Proposed(Proposal {
        summary: format!(
            "Route ingress {} to Service {replacement} instead of the missing {missing}",
            ingress.name
        ),
        target: ingress.clone(),
        patch: json!({"spec": {"rules": new_rules}}),
        inverse: json!({"spec": {"rules": rules}}),
        risk: Risk::Medium,
        steps: vec![format!(
            "Service {replacement} exists, its name is a near match for {missing}, and it serves the port the Ingress asks for"
        )],
        rationale: format!(
            "Service {missing} does not exist; {replacement} is the only Service of a similar name with the port the Ingress routes to."
        ),
        evidence: Vec::new(),
        original: object.clone(),
        rollback: None,
    })
}
