//! What a shadow holds, computed without IO: its namespace with labels and annotations, the
//! isolation objects, the baseline and candidate clones of the workload with cluster-assigned
//! fields stripped, the ConfigMaps they reference, placeholder Secrets, and the Services that
//! select them (SPEC §9).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// The label every shadow namespace carries; `aegis shadow list` finds shadows by it.
pub const SHADOW_LABEL: &str = "aegis.io/shadow";
/// The label that tells the baseline clone from the candidate.
pub const VARIANT_LABEL: &str = "aegis.io/variant";
/// Annotations of a shadow namespace.
pub const SOURCE_ANNOTATION: &str = "aegis.io/source-workload";
pub const INCIDENT_ANNOTATION: &str = "aegis.io/incident";
pub const FIX_HASH_ANNOTATION: &str = "aegis.io/fix-hash";
pub const EXPIRES_ANNOTATION: &str = "aegis.io/expires-at";
pub const CREATED_ANNOTATION: &str = "aegis.io/created-at";
pub const VERDICT_ANNOTATION: &str = "aegis.io/verdict";
/// The value every placeholder Secret key holds (base64 of `aegis-placeholder`).
pub const PLACEHOLDER_VALUE: &str = "YWVnaXMtcGxhY2Vob2xkZXI=";

/// The two copies of the workload a shadow runs side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The spec unchanged: it must show the incident.
    Baseline,
    /// The spec with the fix applied.
    Candidate,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Candidate => "candidate",
        }
    }

    /// The name of this variant's copy of an object named `name`, kept within the 63
    /// characters Service and label names allow.
    pub fn clone_name(self, name: &str) -> String {
        let suffix = self.as_str();
        let keep = 62 - suffix.len();
        let base: String = name.chars().take(keep).collect();
        format!("{}-{suffix}", base.trim_end_matches('-'))
    }
}

/// Why a shadow could not be built from what the source holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloneError {
    #[error(
        "{kind} objects cannot be shadowed: AEGIS clones Deployments, StatefulSets, ReplicaSets, DaemonSets, Pods, Jobs and CronJobs"
    )]
    UnsupportedKind { kind: String },
    #[error("{what} has no {field}")]
    Missing { what: String, field: &'static str },
}

/// The kind a workload's clone has: a DaemonSet runs as one Pod, a CronJob as one Job.
pub fn clone_kind(kind: &str) -> Result<(&'static str, &'static str), CloneError> {
    Ok(match kind {
        "Deployment" => ("apps/v1", "Deployment"),
        "StatefulSet" => ("apps/v1", "StatefulSet"),
        "ReplicaSet" => ("apps/v1", "ReplicaSet"),
        "DaemonSet" | "Pod" => ("v1", "Pod"),
        "Job" | "CronJob" => ("batch/v1", "Job"),
        other => {
            return Err(CloneError::UnsupportedKind {
                kind: other.to_owned(),
            });
        }
    })
}

/// Labels a pod carries that its controller set, not its author.
const CONTROLLER_LABELS: [&str; 5] = [
    "pod-template-hash",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// Annotations that describe the source object's history, not its spec.
fn is_history_annotation(key: &str) -> bool {
    key.starts_with("deployment.kubernetes.io/")
        || key == "kubectl.kubernetes.io/last-applied-configuration"
        || key.starts_with("argocd.argoproj.io/")
        || key.starts_with("kustomize.toolkit.fluxcd.io/")
        // A clone is an experiment, not a workload the operator watches.
        || key == "aegis.io/monitor"
}

/// The labels of `metadata` that its author set (not a controller), with `extra` added.
fn author_labels(metadata: Option<&Value>, extra: &Value) -> Map<String, Value> {
    let mut labels = Map::new();
    for (key, value) in metadata
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !CONTROLLER_LABELS.contains(&key.as_str()) {
            labels.insert(key.clone(), value.clone());
        }
    }
    for (key, value) in extra.as_object().into_iter().flatten() {
        labels.insert(key.clone(), value.clone());
    }
    labels
}

/// Metadata of a clone: the name and namespace given, the author's labels and annotations.
fn clean_metadata(metadata: &Value, name: &str, namespace: &str, extra_labels: &Value) -> Value {
    let labels = author_labels(Some(metadata), extra_labels);
    let annotations: Map<String, Value> = metadata
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(key, _)| !is_history_annotation(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut clean = json!({"name": name, "namespace": namespace, "labels": labels});
    if !annotations.is_empty() {
        clean["annotations"] = Value::Object(annotations);
    }
    clean
}

/// A pod template (or a bare pod's spec and metadata) made fit for a shadow: the node and the
/// service account are the cluster's, not the workload's; no token is mounted.
fn clean_template(template: &Value, extra_labels: &Value) -> Value {
    let labels = author_labels(template.get("metadata"), extra_labels);
    let mut metadata = json!({"labels": labels});
    if let Some(annotations) = template.pointer("/metadata/annotations") {
        metadata["annotations"] = annotations.clone();
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        for field in [
            "nodeName",
            "serviceAccountName",
            "serviceAccount",
            "hostname",
            "subdomain",
            "ephemeralContainers",
        ] {
            spec.remove(field);
        }
        spec.insert("automountServiceAccountToken".to_owned(), json!(false));
    }
    json!({"metadata": metadata, "spec": spec})
}

/// A selector's `matchLabels` with the variant label added.
fn variant_selector(selector: Option<&Value>, variant: Variant) -> Value {
    let mut selector = selector.cloned().unwrap_or_else(|| json!({}));
    selector["matchLabels"][VARIANT_LABEL] = json!(variant.as_str());
    selector
}

/// The clone of `workload` (a JSON object of a supported kind) for `variant`, in `namespace`:
/// one replica, cluster-assigned fields stripped, the variant label on its pods.
pub fn clone_workload(
    workload: &Value,
    namespace: &str,
    variant: Variant,
) -> Result<Value, CloneError> {
    let kind = workload
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (api_version, clone_kind) = clone_kind(kind)?;
    let source_name = workload
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| CloneError::Missing {
            what: kind.to_owned(),
            field: "metadata.name",
        })?;
    let name = variant.clone_name(source_name);
    let variant_labels = json!({ VARIANT_LABEL: variant.as_str() });
    let metadata = clean_metadata(
        workload.get("metadata").unwrap_or(&Value::Null),
        &name,
        namespace,
        &variant_labels,
    );
    let template_of = |pointer: &str| {
        workload
            .pointer(pointer)
            .ok_or_else(|| CloneError::Missing {
                what: format!("{kind} {source_name}"),
                field: "a pod template",
            })
            .map(|template| clean_template(template, &variant_labels))
    };
    let clone = match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" => {
            let mut spec = workload.get("spec").cloned().unwrap_or_else(|| json!({}));
            spec["replicas"] = json!(1);
            spec["selector"] = variant_selector(workload.pointer("/spec/selector"), variant);
            spec["template"] = template_of("/spec/template")?;
            if kind == "StatefulSet"
                && let Some(service) = spec.get("serviceName").and_then(Value::as_str)
            {
                spec["serviceName"] = json!(variant.clone_name(service));
            }
            json!({"apiVersion": api_version, "kind": clone_kind, "metadata": metadata, "spec": spec})
        }
        "DaemonSet" | "Pod" => {
            let template = if kind == "Pod" {
                clean_template(workload, &variant_labels)
            } else {
                template_of("/spec/template")?
            };
            let mut metadata = metadata;
            metadata["labels"] = template["metadata"]["labels"].clone();
            json!({"apiVersion": api_version, "kind": clone_kind, "metadata": metadata, "spec": template["spec"]})
        }
        "Job" | "CronJob" => {
            let source_spec = if kind == "CronJob" {
                workload.pointer("/spec/jobTemplate/spec")
            } else {
                workload.get("spec")
            };
            let mut spec = source_spec.cloned().unwrap_or_else(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                spec.remove("selector");
                spec.remove("manualSelector");
            }
            let template_pointer = if kind == "CronJob" {
                "/spec/jobTemplate/spec/template"
            } else {
                "/spec/template"
            };
            spec["template"] = template_of(template_pointer)?;
            spec["parallelism"] = json!(1);
            spec["completions"] = json!(1);
            json!({"apiVersion": api_version, "kind": clone_kind, "metadata": metadata, "spec": spec})
        }
        other => {
            return Err(CloneError::UnsupportedKind {
                kind: other.to_owned(),
            });
        }
    };
    Ok(clone)
}

/// The clone of a Service for `variant`: its selector also picks the variant label, so it
/// selects exactly that variant's clone; cluster-assigned addresses and node ports stripped.
pub fn clone_service(service: &Value, namespace: &str, variant: Variant) -> Value {
    let name = service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let metadata = clean_metadata(
        service.get("metadata").unwrap_or(&Value::Null),
        &variant.clone_name(name),
        namespace,
        &json!({}),
    );
    let mut spec = service.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(fields) = spec.as_object_mut() {
        for field in [
            "clusterIP",
            "clusterIPs",
            "externalIPs",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "healthCheckNodePort",
            "externalTrafficPolicy",
            "externalName",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
        ] {
            fields.remove(field);
        }
        fields.insert("type".to_owned(), json!("ClusterIP"));
    }
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(port) = port.as_object_mut() {
            port.remove("nodePort");
        }
    }
    if spec.get("selector").and_then(Value::as_object).is_some() {
        spec["selector"][VARIANT_LABEL] = json!(variant.as_str());
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec})
}

/// The namespace of a shadow, with what `aegis shadow list` and garbage collection read.
pub fn shadow_namespace(name: &str, annotations: &[(&str, String)]) -> Value {
    let annotations: Map<String, Value> = annotations
        .iter()
        .map(|(key, value)| ((*key).to_owned(), json!(value)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                SHADOW_LABEL: "true",
                "app.kubernetes.io/managed-by": "aegis",
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
            "annotations": annotations,
        },
    })
}

/// The RoleBinding that lets the operator write into the shadow `namespace` (and nowhere
/// else): its ClusterRole, bound to its ServiceAccount in this namespace only.
pub fn grant_binding(namespace: &str, grant: &aegis_core::settings::ShadowGrant) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": "aegis-shadow",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "aegis"},
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": grant.cluster_role,
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": grant.service_account,
            "namespace": grant.namespace,
        }],
    })
}

/// The isolation applied before any workload: default-deny traffic (DNS allowed), a quota on
/// pods and on node ports and load balancers, a LimitRange giving unrequested containers a
/// small request so the quota's accounting never rejects them, and the namespace's `default`
/// ServiceAccount created by AEGIS with token automounting off (pods may not start before it
/// exists, and none of them gets a token).
pub fn isolation_objects(namespace: &str, pods: u32) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
            "automountServiceAccountToken": false,
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "aegis-default-deny", "namespace": namespace},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "egress": [{
                    "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }],
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "aegis-shadow-quota", "namespace": namespace},
            "spec": {"hard": {"pods": pods.to_string(), "services.nodeports": "0", "services.loadbalancers": "0"}},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "aegis-shadow-limits", "namespace": namespace},
            "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "10m", "memory": "16Mi"}}]},
        }),
    ]
}

/// The ConfigMaps and Secrets a pod spec refers to, by name, with the Secret keys it names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    pub config_maps: BTreeSet<String>,
    /// Secret name → keys referenced by `secretKeyRef` and secret volume items.
    pub secrets: std::collections::BTreeMap<String, BTreeSet<String>>,
    /// Secrets named in `imagePullSecrets`.
    pub pull_secrets: BTreeSet<String>,
}

impl References {
    /// Adds what a pod spec (`spec` of a pod, or of a template) refers to.
    pub fn collect(&mut self, spec: &Value) {
        let text =
            |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        for list in ["containers", "initContainers"] {
            for container in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for env in container
                    .get("env")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(reference) = env.pointer("/valueFrom/configMapKeyRef") {
                        self.config_maps.extend(text(reference, "name"));
                    }
                    if let Some(reference) = env.pointer("/valueFrom/secretKeyRef")
                        && let Some(name) = text(reference, "name")
                    {
                        self.secrets
                            .entry(name)
                            .or_default()
                            .extend(text(reference, "key"));
                    }
                }
                for source in container
                    .get("envFrom")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(reference) = source.get("configMapRef") {
                        self.config_maps.extend(text(reference, "name"));
                    }
                    if let Some(name) = source.get("secretRef").and_then(|r| text(r, "name")) {
                        self.secrets.entry(name).or_default();
                    }
                }
            }
        }
        for volume in spec
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut sources = vec![volume.clone()];
            sources.extend(
                volume
                    .pointer("/projected/sources")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            for source in sources {
                if let Some(reference) = source.get("configMap") {
                    self.config_maps.extend(text(reference, "name"));
                }
                if let Some(reference) = source.get("secret") {
                    let name = text(reference, "secretName").or_else(|| text(reference, "name"));
                    if let Some(name) = name {
                        let keys = self.secrets.entry(name).or_default();
                        for item in reference
                            .get("items")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            keys.extend(text(item, "key"));
                        }
                    }
                }
            }
        }
        for secret in spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.pull_secrets.extend(text(secret, "name"));
        }
    }
}

/// A copy of a ConfigMap for the shadow.
pub fn clone_config_map(config_map: &Value, namespace: &str) -> Value {
    let name = config_map
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut copy = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": clean_metadata(config_map.get("metadata").unwrap_or(&Value::Null), name, namespace, &json!({})),
    });
    for field in ["data", "binaryData", "immutable"] {
        if let Some(value) = config_map.get(field) {
            copy[field] = value.clone();
        }
    }
    copy
}

/// A placeholder for a Secret: the same name, type and keys, every value a dummy. A pull
/// secret gets an empty Docker config, so the pull fails as it would without credentials.
pub fn placeholder_secret(
    name: &str,
    namespace: &str,
    secret_type: Option<&str>,
    keys: &BTreeSet<String>,
) -> Value {
    let mut data = Map::new();
    let secret_type = secret_type.unwrap_or("Opaque");
    if secret_type == "kubernetes.io/dockerconfigjson" {
        // `{"auths":{}}`, base64.
        data.insert(".dockerconfigjson".to_owned(), json!("eyJhdXRocyI6e319"));
    }
    for key in keys {
        data.entry(key.clone())
            .or_insert_with(|| json!(PLACEHOLDER_VALUE));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"aegis.io/placeholder": "true"},
            "annotations": {"aegis.io/placeholder": "values are dummies; the real Secret is never copied"},
        },
        "type": secret_type,
        "data": data,
    })
}

#[cfg(test)]
mod tests;
