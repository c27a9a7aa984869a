//! A pure patch applier: strategic-merge, JSON merge (RFC 7386) and JSON patch (RFC 6902) on
//! objects as JSON, the way the API server applies them to the fields fixes touch.
//!
//! It lets the rest of AEGIS compute a patched object without a cluster (the simulator's
//! shadow clones, the diff shown to people) and prove a fix's inverse: applying a patch and then
//! its inverse gives the object back ([`same_object`]).
//!
//! Strategic merge follows Kubernetes for the lists the fix policy allows: lists of named
//! things merge by their merge key (`name` for containers, env, volumes, imagePullSecrets;
//! `mountPath` for volumeMounts; `containerPort` for a container's ports, `port` for a
//! Service's), every other list is replaced whole. `null` deletes a key; `$patch: delete` in a
//! list element removes the element with that key; `$patch: replace` on an object replaces it;
//! `$setElementOrder/…` and `$retainKeys` directives are accepted and have no effect here.

use serde_json::{Map, Value, json};

use crate::incident::PatchType;

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("{patch_type} patch must be {expected}")]
    Shape {
        patch_type: &'static str,
        expected: &'static str,
    },
    #[error("JSON patch operation {index}: {reason}")]
    Operation { index: usize, reason: String },
    #[error("strategic-merge patch at {path}: {reason}")]
    Strategic { path: String, reason: String },
}

/// Applies `patch` of `patch_type` to `object` and returns the patched object.
pub fn apply(object: &Value, patch_type: PatchType, patch: &Value) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::StrategicMerge => {
            let Value::Object(patch) = patch else {
                return Err(PatchError::Shape {
                    patch_type: "a strategic-merge",
                    expected: "a JSON object",
                });
            };
            let mut out = object.clone();
            strategic_object(&mut out, patch, &mut Vec::new())?;
            Ok(out)
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(PatchError::Shape {
                    patch_type: "a merge",
                    expected: "a JSON object",
                });
            }
            Ok(merge_patch(object, patch))
        }
        PatchType::Json => json_patch(object, patch),
    }
}

/// Whether two objects are the same as the API server stores them: keys whose value is `null`,
/// an empty list or an empty object are absent (Kubernetes omits empty fields).
pub fn same_object(a: &Value, b: &Value) -> bool {
    normalized(a) == normalized(b)
}

/// The object with `null`, empty lists and empty objects left out, recursively.
pub fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| {
                    let v = normalized(v);
                    (!is_empty(&v)).then(|| (k.clone(), v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// The merge key of the list at `path` (its field name last), if Kubernetes merges it by one.
fn merge_key(path: &[String]) -> Option<&'static str> {
    let field = path.last()?.as_str();
    let parent_is_container = path.len() >= 3
        && matches!(
            path[path.len() - 3].as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        );
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" if parent_is_container => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

fn path_text(path: &[String]) -> String {
    format!("/{}", path.join("/"))
}

fn strategic_object(
    target: &mut Value,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Result<(), PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Strategic {
                path: path_text(path),
                reason: format!("unknown directive $patch: {other}"),
            });
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        unreachable!("made an object above")
    };
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(inner) => {
                let slot = map.entry(key.clone()).or_insert(Value::Null);
                strategic_object(slot, inner, path)?;
                if slot.is_null() {
                    map.remove(key);
                }
            }
            Value::Array(items) => match merge_key(path) {
                Some(merge_key) => {
                    let slot = map
                        .entry(key.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !slot.is_array() {
                        *slot = Value::Array(Vec::new());
                    }
                    let Value::Array(list) = slot else {
                        unreachable!("made a list above")
                    };
                    strategic_list(list, items, merge_key, path)?;
                }
                None => {
                    map.insert(key.clone(), Value::Array(strip_directives(items)));
                }
            },
            scalar => {
                map.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    Ok(())
}

fn strip_directives(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .filter(|item| item.get("$patch").and_then(Value::as_str) != Some("delete"))
        .cloned()
        .collect()
}

fn strategic_list(
    list: &mut Vec<Value>,
    items: &[Value],
    merge_key: &str,
    path: &mut Vec<String>,
) -> Result<(), PatchError> {
    for (position, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(PatchError::Strategic {
                path: format!("{}/{position}", path_text(path)),
                reason: format!("elements of this list merge by {merge_key} and must be objects"),
            });
        };
        let Some(key) = item.get(merge_key).filter(|k| !k.is_null()) else {
            return Err(PatchError::Strategic {
                path: format!("{}/{position}", path_text(path)),
                reason: format!("the element has no {merge_key}, the key this list merges by"),
            });
        };
        let existing = list.iter().position(|e| e.get(merge_key) == Some(key));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(found) = existing {
                list.remove(found);
            }
            continue;
        }
        if let Some(found) = existing {
            path.push(found.to_string());
            strategic_object(&mut list[found], item, path)?;
            path.pop();
        } else {
            let mut fresh = Value::Object(Map::new());
            path.push(list.len().to_string());
            strategic_object(&mut fresh, item, path)?;
            path.pop();
            list.push(fresh);
        }
    }
    Ok(())
}

fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            out.remove(key);
        } else {
            let merged = merge_patch(out.get(key).unwrap_or(&Value::Null), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

fn json_patch(object: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(operations) = patch else {
        return Err(PatchError::Shape {
            patch_type: "a JSON",
            expected: "a list of operations",
        });
    };
    let mut out = object.clone();
    for (index, operation) in operations.iter().enumerate() {
        let fail = |reason: String| PatchError::Operation { index, reason };
        let field = |name: &str| {
            operation
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| fail(format!("has no string field {name:?}")))
        };
        let op = field("op")?;
        let path = field("path")?;
        let value = || {
            operation
                .get("value")
                .cloned()
                .ok_or_else(|| fail(format!("{op} needs a value")))
        };
        match op {
            "add" => add(&mut out, path, value()?).map_err(fail)?,
            "remove" => {
                remove(&mut out, path).map_err(fail)?;
            }
            "replace" => {
                remove(&mut out, path).map_err(fail)?;
                add(&mut out, path, value()?).map_err(fail)?;
            }
            "move" => {
                let from = field("from")?;
                let moved = remove(&mut out, from).map_err(fail)?;
                add(&mut out, path, moved).map_err(fail)?;
            }
            "copy" => {
                let from = field("from")?;
                let copied = out
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| fail(format!("{from} does not exist")))?;
                add(&mut out, path, copied).map_err(fail)?;
            }
            "test" => {
                if out.pointer(path) != Some(&value()?) {
                    return Err(fail(format!("test of {path} failed")));
                }
            }
            other => return Err(fail(format!("unknown op {other:?}"))),
        }
    }
    Ok(out)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Splits a JSON pointer into its parent pointer and last token.
fn split_pointer(path: &str) -> Result<(&str, String), String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} is not a JSON pointer"));
    }
    let cut = path.rfind('/').unwrap_or(0);
    Ok((&path[..cut], unescape(&path[cut + 1..])))
}

fn add(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *root = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match root.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            if last == "-" {
                list.push(value);
                return Ok(());
            }
            let at: usize = last
                .parse()
                .map_err(|_| format!("{path}: {last:?} is not a list index"))?;
            if at > list.len() {
                return Err(format!("{path}: index {at} is past the end of the list"));
            }
            list.insert(at, value);
            Ok(())
        }
        Some(_) => Err(format!("{parent} is neither an object nor a list")),
        None => Err(format!("{parent} does not exist")),
    }
}

fn remove(root: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    match root.pointer_mut(parent) {
        Some(Value::Object(map)) => map
            .remove(&last)
            .ok_or_else(|| format!("{path} does not exist")),
        Some(Value::Array(list)) => {
            let at: usize = last
                .parse()
                .map_err(|_| format!("{path}: {last:?} is not a list index"))?;
            if at >= list.len() {
                return Err(format!("{path} does not exist"));
            }
            Ok(list.remove(at))
        }
        _ => Err(format!("{path} does not exist")),
    }
}

/// A line diff of two objects rendered as YAML-like indented text, for people: unchanged lines
/// start with two spaces, removed ones with `- `, added ones with `+ `. Only changed lines and up
/// to `context` lines around them are kept; a gap is shown as `  …`.
pub fn diff(before: &Value, after: &Value, context: usize) -> Vec<String> {
    let old = lines(&normalized(before));
    let new = lines(&normalized(after));
    // Longest common subsequence over lines (objects here are a pod template: small).
    let (n, m) = (old.len(), new.len());
    let mut table = vec![vec![0_u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i][j] = if old[i] == new[j] {
                table[i + 1][j + 1] + 1
            } else {
                table[i + 1][j].max(table[i][j + 1])
            };
        }
    }
    let mut all: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            all.push((' ', &old[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || table[i + 1][j] >= table[i][j + 1]) {
            all.push(('-', &old[i]));
            i += 1;
        } else {
            all.push(('+', &new[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..all.len()).filter(|&k| all[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= context);
    let mut out = Vec::new();
    let mut gap = false;
    for (k, (mark, line)) in all.iter().enumerate() {
        if *mark != ' ' || near(k) {
            out.push(format!("{mark} {line}"));
            gap = false;
        } else if !gap {
            out.push("  …".to_owned());
            gap = true;
        }
    }
    out
}

fn lines(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    render(value, 0, None, &mut out);
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn render(value: &Value, depth: usize, label: Option<String>, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    match value {
        Value::Object(map) => {
            let mut inner = depth;
            if let Some(label) = label {
                out.push(format!("{pad}{label}:"));
                inner += 1;
            }
            for (k, v) in map {
                render(v, inner, Some(k.clone()), out);
            }
        }
        Value::Array(items) => {
            let mut inner = depth;
            if let Some(label) = label {
                out.push(format!("{pad}{label}:"));
                inner += 1;
            }
            for item in items {
                let item_pad = "  ".repeat(inner);
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        out.push(format!("{item_pad}-"));
                        render(item, inner + 1, None, out);
                    }
                    other => out.push(format!("{item_pad}- {}", scalar(other))),
                }
            }
        }
        other => match label {
            Some(label) => out.push(format!("{pad}{label}: {}", scalar(other))),
            None => out.push(format!("{pad}{}", scalar(other))),
        },
    }
}

/// The strategic-merge patch that turns `from` into `to`: fields that differ take `to`'s value,
/// fields `to` lacks are removed (`null`), lists Kubernetes merges by a key are diffed entry by
/// entry (entries only `from` has are removed with `$patch: delete`), other lists are replaced.
/// Fields equal in both are left out, so the patch names exactly what differs.
pub fn strategic_diff(from: &Value, to: &Value) -> Value {
    let mut path = Vec::new();
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => Value::Object(diff_map(from, to, &mut path)),
        _ => to.clone(),
    }
}

fn diff_value(from: Option<&Value>, to: &Value, path: &mut Vec<String>) -> Option<Value> {
    if from.is_some_and(|f| same_object(f, to)) || (from.is_none() && is_empty(&normalized(to))) {
        return None;
    }
    Some(match (from, to) {
        (Some(Value::Object(from)), Value::Object(to)) => Value::Object(diff_map(from, to, path)),
        (Some(Value::Array(from)), Value::Array(to)) => match merge_key(path) {
            Some(key)
                if from
                    .iter()
                    .chain(to)
                    .all(|item| item.get(key).is_some_and(|k| !k.is_null())) =>
            {
                Value::Array(diff_list(from, to, key, path))
            }
            _ => Value::Array(to.clone()),
        },
        _ => to.clone(),
    })
}

fn diff_map(
    from: &Map<String, Value>,
    to: &Map<String, Value>,
    path: &mut Vec<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in to {
        path.push(key.clone());
        if let Some(changed) = diff_value(from.get(key), value, path) {
            out.insert(key.clone(), changed);
        }
        path.pop();
    }
    for (key, value) in from {
        if !to.contains_key(key) && !is_empty(&normalized(value)) {
            out.insert(key.clone(), Value::Null);
        }
    }
    out
}

fn diff_list(from: &[Value], to: &[Value], key: &str, path: &mut Vec<String>) -> Vec<Value> {
    let mut out = Vec::new();
    for item in to {
        let id = &item[key];
        match from.iter().find(|f| &f[key] == id) {
            Some(before) if same_object(before, item) => {}
            Some(Value::Object(before)) => {
                if let Value::Object(after) = item {
                    path.push(String::new());
                    let mut entry = diff_map(before, after, path);
                    path.pop();
                    entry.insert(key.to_owned(), id.clone());
                    out.push(Value::Object(entry));
                }
            }
            _ => out.push(item.clone()),
        }
    }
    for before in from {
        let id = &before[key];
        if !to.iter().any(|t| &t[key] == id) {
            out.push(json!({ key: id, "$patch": "delete" }));
        }
    }
    out
}

/// The strategic-merge patch that undoes `patch` on `original`: every field it sets goes back
/// to its value, or is removed when it had none; list entries are matched by `name` and removed
/// with `$patch: delete` when the patch added them.
pub fn inverse_of(patch: &Value, original: &Value) -> Value {
    match patch {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                if key.starts_with('$') {
                    continue;
                }
                let before = original.get(key);
                let undone = match (value, before) {
                    (_, None) => Value::Null,
                    (Value::Object(_) | Value::Array(_), Some(before)) => inverse_of(value, before),
                    (_, Some(before)) => before.clone(),
                };
                out.insert(key.clone(), undone);
            }
            Value::Object(out)
        }
        Value::Array(items) if items.iter().all(|i| i.get("name").is_some()) => {
            let before = original.as_array();
            let undone = items
                .iter()
                .map(|item| {
                    let name = &item["name"];
                    match before.and_then(|b| b.iter().find(|o| &o["name"] == name)) {
                        Some(existing) => {
                            let mut entry = inverse_of(item, existing);
                            if let Value::Object(map) = &mut entry {
                                map.insert("name".to_owned(), name.clone());
                            }
                            entry
                        }
                        None => json!({"name": name, "$patch": "delete"}),
                    }
                })
                .collect();
            Value::Array(undone)
        }
        _ => original.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "demo"},
            "spec": {
                "replicas": 2,
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {
                        "imagePullSecrets": [{"name": "old"}],
                        "containers": [
                            {
                                "name": "api",
                                "image": "repo/api:1.0",
                                "env": [{"name": "A", "value": "1"}],
                                "ports": [{"containerPort": 8080, "name": "http"}],
                                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                                "resources": {"limits": {"memory": "128Mi"}}
                            },
                            {"name": "sidecar", "image": "repo/side:2"}
                        ]
                    }
                }
            }
        })
    }

    #[test]
    fn a_strategic_diff_turns_one_template_into_the_other_and_names_only_what_differs() {
        let from = deployment();
        let mut to = deployment();
        let container = &mut to["spec"]["template"]["spec"]["containers"][0];
        container["image"] = json!("repo/api:0.9");
        container["command"] = json!(["/app/server"]);
        container["env"] = json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a"}}}, {"name": "B", "value": "2"}]);
        container["volumeMounts"] = json!([]);
        to["spec"]["template"]["spec"]["containers"][1]["image"] = json!("repo/side:1");
        to["spec"]["template"]["spec"]["imagePullSecrets"] = json!([{"name": "new"}]);
        let patch = strategic_diff(&from, &to);
        let patched = apply(&from, PatchType::StrategicMerge, &patch).expect("applies");
        assert!(same_object(&patched, &to), "{patch:#}");
        assert!(
            patch.pointer("/spec/replicas").is_none(),
            "equal fields are left out"
        );
        let env = &patch["spec"]["template"]["spec"]["containers"][0]["env"][0];
        assert_eq!(
            env["value"],
            Value::Null,
            "a field the target lacks is removed"
        );
        let back = strategic_diff(&patched, &from);
        let restored = apply(&patched, PatchType::StrategicMerge, &back).expect("applies");
        assert!(same_object(&restored, &from), "{back:#}");
    }

    fn containers(patch: Value) -> Value {
        let mut containers = Map::new();
        containers.insert("containers".to_owned(), Value::Array(vec![patch]));
        json!({"spec": {"template": {"spec": containers}}})
    }

    #[test]
    fn strategic_merge_cases_and_their_inverses() {
        // (what, patch, inverse, pointer, expected value after the patch)
        let cases: Vec<(&str, Value, Value, &str, Value)> = vec![
            (
                "add an env var by name",
                containers(
                    json!({"name": "api", "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "B"}}}]}),
                ),
                containers(json!({"name": "api", "env": [{"name": "B", "$patch": "delete"}]})),
                "/spec/template/spec/containers/0/env",
                json!([{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "B"}}}]),
            ),
            (
                "image of the second container",
                containers(json!({"name": "sidecar", "image": "repo/side:3"})),
                containers(json!({"name": "sidecar", "image": "repo/side:2"})),
                "/spec/template/spec/containers/1/image",
                json!("repo/side:3"),
            ),
            (
                "memory limit",
                containers(json!({"name": "api", "resources": {"limits": {"memory": "256Mi"}}})),
                containers(json!({"name": "api", "resources": {"limits": {"memory": "128Mi"}}})),
                "/spec/template/spec/containers/0/resources/limits/memory",
                json!("256Mi"),
            ),
            (
                "a probe where none was, and null takes it away",
                containers(
                    json!({"name": "api", "livenessProbe": {"httpGet": {"path": "/", "port": "http"}}}),
                ),
                containers(json!({"name": "api", "livenessProbe": null})),
                "/spec/template/spec/containers/0/livenessProbe/httpGet/port",
                json!("http"),
            ),
            (
                "container ports merge by containerPort",
                containers(
                    json!({"name": "api", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}),
                ),
                containers(
                    json!({"name": "api", "ports": [{"containerPort": 8080, "protocol": null}]}),
                ),
                "/spec/template/spec/containers/0/ports",
                json!([{"containerPort": 8080, "name": "http", "protocol": "TCP"}]),
            ),
            (
                "imagePullSecrets merge by name",
                json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "new"}]}}}}),
                json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "new", "$patch": "delete"}]}}}}),
                "/spec/template/spec/imagePullSecrets",
                json!([{"name": "old"}, {"name": "new"}]),
            ),
            (
                "replicas",
                json!({"spec": {"replicas": 1}}),
                json!({"spec": {"replicas": 2}}),
                "/spec/replicas",
                json!(1),
            ),
        ];
        let original = deployment();
        for (what, patch, inverse, pointer, expected) in cases {
            let patched = apply(&original, PatchType::StrategicMerge, &patch).expect(what);
            assert_eq!(patched.pointer(pointer), Some(&expected), "{what}");
            assert!(
                !same_object(&patched, &original),
                "{what}: the patch changed nothing"
            );
            let back = apply(&patched, PatchType::StrategicMerge, &inverse).expect(what);
            assert!(same_object(&back, &original), "{what}: {back:#}");
        }
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced_and_service_ports_merge_by_port() {
        let service = json!({"spec": {"selector": {"app": "a", "tier": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        let patched = apply(
            &service,
            PatchType::StrategicMerge,
            &json!({"spec": {"selector": {"app": "b", "tier": null}, "ports": [{"port": 80, "targetPort": "http"}]}}),
        )
        .expect("applies");
        assert_eq!(patched["spec"]["selector"], json!({"app": "b"}));
        assert_eq!(
            patched["spec"]["ports"],
            json!([{"port": 80, "targetPort": "http"}])
        );
        let ingress = json!({"spec": {"rules": [{"host": "a"}, {"host": "b"}]}});
        let patched = apply(
            &ingress,
            PatchType::StrategicMerge,
            &json!({"spec": {"rules": [{"host": "c"}]}}),
        )
        .expect("applies");
        assert_eq!(patched["spec"]["rules"], json!([{"host": "c"}]));
    }

    #[test]
    fn replace_directive_and_bad_strategic_patches() {
        let patched = apply(
            &deployment(),
            PatchType::StrategicMerge,
            &containers(json!({"name": "api", "resources": {"$patch": "replace", "requests": {"cpu": "1"}}})),
        )
        .expect("applies");
        assert_eq!(
            patched.pointer("/spec/template/spec/containers/0/resources"),
            Some(&json!({"requests": {"cpu": "1"}}))
        );
        let no_key = apply(
            &deployment(),
            PatchType::StrategicMerge,
            &containers(json!({"image": "x"})),
        )
        .expect_err("a container without a name");
        assert!(no_key.to_string().contains("no name"), "{no_key}");
        assert!(
            no_key
                .to_string()
                .contains("/spec/template/spec/containers/0"),
            "{no_key}"
        );
        assert!(apply(&deployment(), PatchType::StrategicMerge, &json!([1])).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let patched = apply(
            &json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}),
            PatchType::Merge,
            &json!({"a": "z", "c": {"f": null}, "l": [3]}),
        )
        .expect("applies");
        assert_eq!(patched, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_operations_and_errors() {
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "B", "value": "2"}},
            {"op": "remove", "path": "/spec/template/spec/imagePullSecrets/0"},
            {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels"},
            {"op": "move", "from": "/metadata/labels", "path": "/metadata/annotations"}
        ]);
        let patched = apply(&deployment(), PatchType::Json, &patch).expect("applies");
        assert_eq!(patched["spec"]["replicas"], 3);
        assert_eq!(
            patched.pointer("/spec/template/spec/containers/0/env/1/name"),
            Some(&json!("B"))
        );
        assert_eq!(
            patched["spec"]["template"]["spec"]["imagePullSecrets"],
            json!([])
        );
        assert_eq!(patched["metadata"]["annotations"], "api");
        assert!(patched["metadata"].get("labels").is_none());
        for (bad, says) in [
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 9}]),
                "test of /spec/replicas failed",
            ),
            (
                json!([{"op": "remove", "path": "/spec/nothing"}]),
                "/spec/nothing does not exist",
            ),
            (
                json!([{"op": "add", "path": "/no/parent", "value": 1}]),
                "/no does not exist",
            ),
            (json!([{"op": "jump", "path": "/a"}]), "unknown op"),
            (json!([{"path": "/a"}]), "no string field \"op\""),
            (json!({"op": "add"}), "a list of operations"),
        ] {
            let error = apply(&deployment(), PatchType::Json, &bad).expect_err(says);
            assert!(error.to_string().contains(says), "{error}");
        }
    }

    #[test]
    fn the_diff_shows_changed_lines_with_context() {
        let before = deployment();
        let after = apply(
            &before,
            PatchType::StrategicMerge,
            &containers(json!({"name": "api", "image": "repo/api:1.1"})),
        )
        .expect("applies");
        let diff = diff(&before, &after, 1);
        let changed: Vec<&String> = diff.iter().filter(|l| !l.starts_with("  ")).collect();
        assert_eq!(
            changed,
            [
                &"-           image: \"repo/api:1.0\"".to_owned(),
                &"+           image: \"repo/api:1.1\"".to_owned()
            ],
            "{diff:#?}"
        );
        assert!(diff.iter().any(|l| l == "  …"));
        assert!(super::diff(&before, &before, 2).iter().all(|l| l == "  …"));
    }

    #[test]
    fn the_inverse_restores_changed_fields_and_removes_added_ones() {
        let original = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "api", "image": "app:1", "env": [{"name": "A", "value": "1"}],
             "resources": {"limits": {"memory": "128Mi"}}},
            {"name": "sidecar", "image": "proxy:2"}]}}}});
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "api", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "x"}],
             "resources": {"limits": {"memory": "256Mi", "cpu": "1"}}}]}}}});
        assert_eq!(
            inverse_of(&patch, &original),
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "api", "env": [{"name": "A", "value": "1"}, {"name": "B", "$patch": "delete"}],
                 "resources": {"limits": {"memory": "128Mi", "cpu": null}}}]}}}})
        );
    }
}
