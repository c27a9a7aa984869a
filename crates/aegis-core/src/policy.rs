//! The fix policy (SPEC §8): which fields a fix may change, and what is always denied.
//!
//! A fix is checked by walking its patch into leaf paths (`spec.template.spec.containers[].env`)
//! and testing each against the always-denied rules first, then against the allow-list of the
//! target's kind. The check is pure: it sees the patch and, when known, the object it would change.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::image::keeps_repository;
use crate::incident::PatchType;
use crate::resource::ResourceKind;

/// The verdict of the policy on one fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyDecision {
    pub allowed: bool,
    pub violations: Vec<PolicyViolation>,
}

impl PolicyDecision {
    /// The violations in one line for people: `path: rule (message); …`.
    pub fn violations_text(&self) -> String {
        self.violations
            .iter()
            .map(|v| format!("{}: {} ({})", v.path, v.rule, v.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One reason a fix is denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyViolation {
    /// The rule broken (`privileged`, `host-path`, `field-not-allowed`, …).
    pub rule: String,
    /// The patch path that breaks it.
    pub path: String,
    pub message: String,
}

/// The container fields a fix may change.
const CONTAINER_FIELDS: [&str; 8] = [
    "name",
    "env",
    "envFrom",
    "image",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
];

/// Checks a patch against the policy. `original` is the object the patch applies to, when known;
/// it is needed to check that an image change stays in the same repository and that no
/// container is added.
pub fn check(
    target: ResourceKind,
    patch_type: PatchType,
    patch: &Value,
    original: Option<&Value>,
) -> PolicyDecision {
    let mut violations = Vec::new();
    let mut leaves = Vec::new();
    match patch_type {
        PatchType::StrategicMerge | PatchType::Merge => {
            collect_leaves(patch, &mut Vec::new(), &mut leaves, &mut violations);
        }
        PatchType::Json => collect_json_patch_leaves(patch, &mut leaves, &mut violations),
    }
    if leaves.is_empty() && violations.is_empty() {
        violations.push(violation("empty-patch", "", "the patch changes nothing"));
    }
    for leaf in &leaves {
        if let Some(v) = denied(leaf) {
            violations.push(v);
        } else if !allowed(target, &leaf.path) {
            violations.push(violation(
                "field-not-allowed",
                &leaf.path.join("."),
                &format!(
                    "a fix on a {target} may not change `{}`",
                    leaf.path.join(".")
                ),
            ));
        }
    }
    if let Some(original) = original {
        check_containers(patch_type, patch, original, &mut violations);
    }
    PolicyDecision {
        allowed: violations.is_empty(),
        violations,
    }
}

/// Checks a rollback: a strategic-merge patch that returns a workload's pod template to an
/// earlier revision's, `restored` (the template, with `metadata` and `spec`). Any template field
/// may go back to the value the revision ran with, so the allow-list does not apply; the
/// always-denied rules do, and the patch must change nothing but the template and produce
/// exactly `restored`.
pub fn check_rollback(
    target: ResourceKind,
    patch: &Value,
    original: &Value,
    restored: &Value,
) -> PolicyDecision {
    let mut violations = Vec::new();
    let mut leaves = Vec::new();
    collect_leaves(patch, &mut Vec::new(), &mut leaves, &mut violations);
    if leaves.is_empty() && violations.is_empty() {
        violations.push(violation("empty-patch", "", "the patch changes nothing"));
    }
    let template_path: &[&str] = match target {
        ResourceKind::Deployment
        | ResourceKind::StatefulSet
        | ResourceKind::DaemonSet
        | ResourceKind::ReplicaSet => &["spec", "template"],
        _ => {
            violations.push(violation(
                "rollback-kind",
                "",
                &format!("a {target} has no revisions to roll back to"),
            ));
            &[]
        }
    };
    for leaf in &leaves {
        if let Some(v) = denied(leaf) {
            violations.push(v);
        } else if !template_path.is_empty()
            && !leaf
                .path
                .iter()
                .map(String::as_str)
                .take(template_path.len())
                .eq(template_path.iter().copied())
        {
            violations.push(violation(
                "field-not-allowed",
                &leaf.path.join("."),
                "a rollback changes only the pod template",
            ));
        }
    }
    if violations.is_empty() {
        let produced = crate::patch::apply(original, PatchType::StrategicMerge, patch)
            .ok()
            .and_then(|patched| patched.pointer("/spec/template").cloned());
        if !produced.is_some_and(|t| same_template(&t, restored)) {
            violations.push(violation(
                "rollback-mismatch",
                "spec.template",
                "the patch does not produce the template of the revision it returns to",
            ));
        }
    }
    PolicyDecision {
        allowed: violations.is_empty(),
        violations,
    }
}

/// Whether two pod templates are the same as Kubernetes compares them: empty fields omitted,
/// and lists merged by `name` compared regardless of order.
pub fn same_template(a: &Value, b: &Value) -> bool {
    fn canonical(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
            }
            Value::Array(items) => {
                let mut items: Vec<Value> = items.iter().map(canonical).collect();
                if items
                    .iter()
                    .all(|i| i.get("name").is_some_and(Value::is_string))
                {
                    items.sort_by(|x, y| x["name"].as_str().cmp(&y["name"].as_str()));
                }
                Value::Array(items)
            }
            other => other.clone(),
        }
    }
    canonical(&crate::patch::normalized(a)) == canonical(&crate::patch::normalized(b))
}

/// A scalar (or empty container) set by a patch, with the path leading to it.
#[derive(Debug)]
struct Leaf<'a> {
    path: Vec<String>,
    value: &'a Value,
}

fn violation(rule: &str, path: &str, message: &str) -> PolicyViolation {
    PolicyViolation {
        rule: rule.to_owned(),
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

fn collect_leaves<'a>(
    value: &'a Value,
    path: &mut Vec<String>,
    leaves: &mut Vec<Leaf<'a>>,
    violations: &mut Vec<PolicyViolation>,
) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                if key == "$patch" {
                    if matches!(child.as_str(), Some("delete" | "replace")) {
                        violations.push(violation(
                            "deletion",
                            &path.join("."),
                            "the patch deletes or replaces content wholesale",
                        ));
                    }
                    continue;
                }
                if key.starts_with("$setElementOrder/") {
                    continue;
                }
                if key.starts_with('$') {
                    violations.push(violation(
                        "deletion",
                        &path.join("."),
                        &format!("the patch uses the `{key}` directive, which removes content"),
                    ));
                    continue;
                }
                path.push(key.clone());
                collect_leaves(child, path, leaves, violations);
                path.pop();
            }
        }
        // Merging an empty map changes nothing.
        Value::Object(_) => {}
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let last = path.pop().unwrap_or_default();
            path.push(format!("{last}[]"));
            for item in items {
                collect_leaves(item, path, leaves, violations);
            }
            path.pop();
            path.push(last);
        }
        _ => leaves.push(Leaf {
            path: path.clone(),
            value,
        }),
    }
}

fn collect_json_patch_leaves<'a>(
    patch: &'a Value,
    leaves: &mut Vec<Leaf<'a>>,
    violations: &mut Vec<PolicyViolation>,
) {
    let Some(operations) = patch.as_array() else {
        violations.push(violation(
            "malformed",
            "",
            "a JSON patch must be a list of operations",
        ));
        return;
    };
    for operation in operations {
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let pointer = operation
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut path: Vec<String> = Vec::new();
        for segment in pointer.split('/').skip(1) {
            if segment == "-" || segment.parse::<usize>().is_ok() {
                let last = path.pop().unwrap_or_default();
                path.push(format!("{last}[]"));
            } else {
                path.push(segment.replace("~1", "/").replace("~0", "~"));
            }
        }
        match op {
            "add" | "replace" => match operation.get("value") {
                Some(value) => collect_leaves(value, &mut path, leaves, violations),
                None => violations.push(violation("malformed", pointer, "operation has no value")),
            },
            "test" => {}
            "remove" => {
                violations.push(violation("deletion", pointer, "the patch removes a field"));
            }
            other => violations.push(violation(
                "malformed",
                pointer,
                &format!("JSON patch operation `{other}` is not allowed in a fix"),
            )),
        }
    }
}

/// The always-denied rules: they hold whatever the allow-list says.
fn denied(leaf: &Leaf<'_>) -> Option<PolicyViolation> {
    let path = leaf.path.join(".");
    let has = |key: &str| {
        leaf.path
            .iter()
            .any(|segment| segment.trim_end_matches("[]") == key)
    };
    let deny = |rule: &str, message: &str| Some(violation(rule, &path, message));
    if has("privileged") && leaf.value != &Value::Bool(false) {
        return deny("privileged", "privileged containers are never allowed");
    }
    if has("capabilities") && has("add") {
        return deny("capabilities", "adding Linux capabilities is never allowed");
    }
    if has("allowPrivilegeEscalation") && leaf.value != &Value::Bool(false) {
        return deny(
            "privilege-escalation",
            "allowing privilege escalation is never allowed",
        );
    }
    for (key, rule) in [
        ("hostNetwork", "host-namespaces"),
        ("hostPID", "host-namespaces"),
        ("hostIPC", "host-namespaces"),
        ("hostPath", "host-path"),
        ("hostPort", "host-port"),
    ] {
        if has(key) {
            return deny(rule, &format!("`{key}` is never allowed in a fix"));
        }
    }
    if (has("runAsUser") && leaf.value.as_i64() == Some(0))
        || (has("runAsNonRoot") && leaf.value == &Value::Bool(false))
        || (has("runAsGroup") && leaf.value.as_i64() == Some(0))
    {
        return deny("run-as-root", "a fix may not make a container run as root");
    }
    if has("serviceAccountName") || has("serviceAccount") || has("automountServiceAccountToken") {
        return deny(
            "service-account",
            "a fix may not change the service account",
        );
    }
    let top = leaf.path.first().map(String::as_str);
    if matches!(top, Some("kind" | "apiVersion"))
        || (top == Some("metadata")
            && leaf
                .path
                .get(1)
                .is_some_and(|s| s == "namespace" || s == "name"))
    {
        return deny(
            "identity",
            "a fix may not change an object's kind, name or namespace",
        );
    }
    None
}

/// The allow-list: fields a fix on `target` may change.
fn allowed(target: ResourceKind, path: &[String]) -> bool {
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    match target {
        ResourceKind::Service => {
            matches!(segments.as_slice(), ["spec", "selector" | "ports[]", ..])
        }
        ResourceKind::Ingress => matches!(
            segments.as_slice(),
            ["spec", "defaultBackend", "service", ..]
                | ["spec", "rules[]", "host"]
                | ["spec", "rules[]", "http", "paths[]", "path" | "pathType"]
                | [
                    "spec",
                    "rules[]",
                    "http",
                    "paths[]",
                    "backend",
                    "service",
                    ..
                ]
                | ["spec", "tls[]", "hosts" | "secretName"]
        ),
        ResourceKind::Pod => pod_spec_allowed(&segments[..], &["spec"]),
        ResourceKind::Deployment | ResourceKind::StatefulSet | ResourceKind::ReplicaSet => {
            segments == ["spec", "replicas"]
                || pod_spec_allowed(&segments, &["spec", "template", "spec"])
        }
        ResourceKind::DaemonSet | ResourceKind::Job => {
            pod_spec_allowed(&segments, &["spec", "template", "spec"])
        }
        ResourceKind::CronJob => pod_spec_allowed(
            &segments,
            &["spec", "jobTemplate", "spec", "template", "spec"],
        ),
        _ => false,
    }
}

fn pod_spec_allowed(segments: &[&str], prefix: &[&str]) -> bool {
    let Some(rest) = segments.strip_prefix(prefix) else {
        return false;
    };
    match rest {
        ["containers[]" | "initContainers[]", field, ..] => {
            let field = field.trim_end_matches("[]");
            CONTAINER_FIELDS.contains(&field) || field == "ports"
        }
        ["imagePullSecrets[]" | "imagePullSecrets", ..]
        | ["volumes[]", "name" | "configMap", ..]
        | [
            "volumes[]",
            "secret",
            "secretName" | "items[]" | "items" | "optional",
        ] => true,
        _ => false,
    }
}

/// Container-level rules that need the original object: no added containers, images stay in
/// their repository.
fn check_containers(
    patch_type: PatchType,
    patch: &Value,
    original: &Value,
    violations: &mut Vec<PolicyViolation>,
) {
    if patch_type == PatchType::Json {
        return;
    }
    let Some(pointer) = pod_spec_pointer(original) else {
        return;
    };
    for list in ["containers", "initContainers"] {
        let patched = patch
            .pointer(&format!("{pointer}/{list}"))
            .and_then(Value::as_array);
        let existing = original
            .pointer(&format!("{pointer}/{list}"))
            .and_then(Value::as_array);
        for container in patched.into_iter().flatten() {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let before = existing
                .into_iter()
                .flatten()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name));
            let path = format!(
                "{}.{list}[name={name}]",
                pointer.trim_start_matches('/').replace('/', ".")
            );
            let Some(before) = before else {
                violations.push(violation(
                    "new-container",
                    &path,
                    &format!("the patch adds container `{name}`, which the workload does not have"),
                ));
                continue;
            };
            if let (Some(new_image), Some(old_image)) = (
                container.get("image").and_then(Value::as_str),
                before.get("image").and_then(Value::as_str),
            ) && !keeps_repository(new_image, old_image)
            {
                violations.push(violation(
                    "image-repository",
                    &format!("{path}.image"),
                    &format!("image `{new_image}` is not from the repository of `{old_image}`"),
                ));
            }
        }
    }
}

fn pod_spec_pointer(object: &Value) -> Option<&'static str> {
    match object.get("kind").and_then(Value::as_str)? {
        "Pod" => Some("/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some("/spec/template/spec")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": "nginx:1.25.3"}]}}}
        })
    }

    fn containers(container: &Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": [container]}}}})
    }

    fn rules(kind: ResourceKind, patch: &Value) -> Vec<String> {
        check(kind, PatchType::StrategicMerge, patch, Some(&deployment()))
            .violations
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn allowed_fixes_pass() {
        let cases = [
            containers(
                &json!({"name": "api", "env": [{"name": "DATABASE_URL", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]}),
            ),
            containers(&json!({"name": "api", "image": "docker.io/library/nginx:1.27"})),
            containers(&json!({"name": "api", "resources": {"limits": {"memory": "256Mi"}}})),
            containers(&json!({"name": "api", "livenessProbe": {"httpGet": {"port": 8080}}})),
            containers(&json!({"name": "api", "ports": [{"containerPort": 8080}]})),
            json!({"spec": {"replicas": 3}}),
            json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "regcred"}]}}}}),
        ];
        for patch in cases {
            assert_eq!(
                rules(ResourceKind::Deployment, &patch),
                Vec::<String>::new(),
                "{patch}"
            );
        }
        let service = json!({"spec": {"selector": {"app": "web", "tier": null}}});
        assert_eq!(rules(ResourceKind::Service, &service), Vec::<String>::new());
    }

    #[test]
    fn forbidden_fixes_are_denied_with_the_rule_they_break() {
        let cases = [
            (
                containers(&json!({"name": "api", "securityContext": {"privileged": true}})),
                "privileged",
            ),
            (
                containers(
                    &json!({"name": "api", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}),
                ),
                "capabilities",
            ),
            (
                json!({"spec": {"template": {"spec": {"hostNetwork": true}}}}),
                "host-namespaces",
            ),
            (
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}}}),
                "host-path",
            ),
            (
                containers(
                    &json!({"name": "api", "ports": [{"containerPort": 80, "hostPort": 80}]}),
                ),
                "host-port",
            ),
            (
                containers(&json!({"name": "api", "securityContext": {"runAsUser": 0}})),
                "run-as-root",
            ),
            (
                json!({"spec": {"template": {"spec": {"serviceAccountName": "admin"}}}}),
                "service-account",
            ),
            (json!({"metadata": {"namespace": "prod"}}), "identity"),
            (json!({"kind": "DaemonSet"}), "identity"),
            (json!({"$patch": "delete"}), "deletion"),
            (
                containers(&json!({"name": "api", "image": "ghcr.io/evil/nginx:1"})),
                "image-repository",
            ),
            (
                containers(&json!({"name": "miner", "image": "nginx:1.25.3"})),
                "new-container",
            ),
            (
                containers(&json!({"name": "api", "command": ["sh"]})),
                "field-not-allowed",
            ),
            (
                json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
                "field-not-allowed",
            ),
            (json!({}), "empty-patch"),
        ];
        for (patch, rule) in cases {
            let found = rules(ResourceKind::Deployment, &patch);
            assert!(
                found.iter().any(|r| r == rule),
                "{patch}: expected {rule}, got {found:?}"
            );
        }
    }

    #[test]
    fn a_rollback_may_restore_any_template_field_but_only_to_the_revision_and_never_a_denied_one() {
        let original = deployment();
        let mut revision = original["spec"]["template"].clone();
        revision["spec"]["containers"][0]["command"] = json!(["/app/server"]);
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "command": ["/app/server"]}]}}}});
        assert!(check_rollback(ResourceKind::Deployment, &patch, &original, &revision).allowed);
        // The same change is outside the allow-list as an ordinary fix.
        assert!(
            !check(
                ResourceKind::Deployment,
                PatchType::StrategicMerge,
                &patch,
                Some(&original)
            )
            .allowed
        );
        let elsewhere = json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "command": ["/bin/sh"]}]}}}});
        let decision = check_rollback(ResourceKind::Deployment, &elsewhere, &original, &revision);
        assert!(
            decision
                .violations
                .iter()
                .any(|v| v.rule == "rollback-mismatch")
        );
        let mut privileged = revision.clone();
        privileged["spec"]["hostNetwork"] = json!(true);
        let patch = json!({"spec": {"template": {"spec": {"hostNetwork": true, "containers": [{"name": "api", "command": ["/app/server"]}]}}}});
        let decision = check_rollback(ResourceKind::Deployment, &patch, &original, &privileged);
        assert!(
            decision
                .violations
                .iter()
                .any(|v| v.rule == "host-namespaces")
        );
        let replicas = json!({"spec": {"replicas": 9}});
        let decision = check_rollback(ResourceKind::Deployment, &replicas, &original, &revision);
        assert!(
            decision
                .violations
                .iter()
                .any(|v| v.rule == "field-not-allowed")
        );
    }

    #[test]
    fn json_patches_are_walked_by_their_paths() {
        let allowed = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"}]);
        assert!(check(ResourceKind::Deployment, PatchType::Json, &allowed, None).allowed);
        let hostile = json!([{"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"privileged": true}}]);
        let decision = check(ResourceKind::Deployment, PatchType::Json, &hostile, None);
        assert!(!decision.allowed);
        assert_eq!(decision.violations[0].rule, "privileged");
        let removal = json!([{"op": "remove", "path": "/spec/template"}]);
        assert!(!check(ResourceKind::Deployment, PatchType::Json, &removal, None).allowed);
    }

    #[test]
    fn patches_on_kinds_outside_the_allow_list_are_denied() {
        let patch = json!({"data": {"k": "v"}});
        assert!(!check(ResourceKind::ConfigMap, PatchType::Merge, &patch, None).allowed);
    }
}
