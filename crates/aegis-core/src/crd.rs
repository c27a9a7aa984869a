//! The `Incident` custom resource (`incidents.aegis.io`, `aegis.io/v1alpha1`, SPEC §11): how the
//! operator records an incident in the cluster.
//!
//! The object's name is the incident's stable id (`inc-…`, from its workload and category), so
//! there is one `Incident` per (workload, category) however many events report it, and it lives
//! in its workload's namespace (cluster-scoped workloads, such as Nodes, file theirs in the
//! operator's namespace). The spec holds what identifies the incident and what people decide
//! (approval, rejection, rollback); the status holds what the operator found and did: the
//! diagnosis, fix and verdict, the lifecycle with its history, the audit records of production
//! changes, and the last error.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::change::ChangeRecord;
use crate::lifecycle::{Phase, Transition};
use crate::verification::Verdict;
use crate::{Category, Incident, ResourceRef};

/// The API group of AEGIS's resources.
pub const GROUP: &str = "aegis.io";
/// The version of the `Incident` resource.
pub const VERSION: &str = "v1alpha1";

/// What identifies an incident, and what people decided about it.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "aegis.io",
    version = "v1alpha1",
    kind = "Incident",
    root = "IncidentResource",
    plural = "incidents",
    singular = "incident",
    shortname = "inc",
    category = "aegis",
    namespaced,
    status = "IncidentStatus",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.workload.kind","priority":1}"#,
    printcolumn = r#"{"name":"Workload","type":"string","jsonPath":".spec.workload.name"}"#,
    printcolumn = r#"{"name":"Category","type":"string","jsonPath":".spec.category"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.verdict"}"#,
    printcolumn = r#"{"name":"Confidence","type":"number","jsonPath":".status.confidence","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSpec {
    /// The workload that fails (the object itself when nothing owns it).
    pub workload: ResourceRef,
    /// The root-cause category (SPEC §5).
    pub category: Category,
    /// A person's approval of one fix, named by its patch's hash: a different fix is not
    /// approved by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Decision>,
    /// A person's rejection of the fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Decision>,
    /// A person's request to undo the applied fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Decision>,
}

/// A decision a person wrote into an incident's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Who decided.
    pub by: String,
    /// The hash of the fix's patch the decision is about (`status.fixHash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_hash: Option<String>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// What the operator found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    /// Where the incident stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The shadow's verdict on the fix, once one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The diagnosis's confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The hash of the proposed fix's patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_hash: Option<String>,
    /// When the failure was first seen, RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_seen: String,
    /// When the failure was last seen to clear, RFC 3339 (set once per resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// What reported it: `aegis` (the analyzers on watched objects) and the K8sGPT `Result`s
    /// (`k8sgpt:<namespace>/<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The diagnosis: resource, findings, RCA with its evidence, fix, verification with the
    /// shadow's evidence bundle (SPEC §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
    /// Every transition of the lifecycle: from, to, who, when, why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Transition>,
    /// The audit records of production changes, oldest first, each written before its change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeRecord>,
    /// The last error the operator met on this incident, until a pass succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// What the LLM was last asked about this incident: its opinion (in the diagnosis) stands
    /// until the rules' diagnosis changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consulted: Option<Consulted>,
}

/// One consultation of the LLM by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Consulted {
    /// The rules' diagnosis it was asked about, as `<category>: <summary>`.
    pub about: String,
    /// What came of it (`agreed`, `contradicted`, `adopted`, `rejected`, `failed`).
    pub verdict: crate::LlmVerdict,
    /// When, RFC 3339.
    pub at: String,
}

/// An error the operator met while reconciling an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// What the operator was doing: `diagnose`, `verify`, `apply`, `roll back`, `resolve`.
    pub during: String,
    pub message: String,
    /// When it first happened, RFC 3339; repeated failures of the same kind keep this time.
    pub since: String,
    /// When it last happened, RFC 3339: the next attempt waits out the backoff from here.
    #[serde(default)]
    pub last: String,
    /// How many passes in a row failed so.
    pub attempts: u32,
}

/// The JSON schema of a value of any shape (a patch, an object as it was seen): kept as is by
/// the API server.
pub fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// The schema of an internally tagged enum as Kubernetes takes it (structural: one object whose
/// tag is a string from `tags`, with every variant's fields optional).
fn tagged(tag: &str, description: &str, tags: &[&str], fields: &[&str]) -> schemars::Schema {
    let mut properties = serde_json::Map::new();
    properties.insert(
        tag.to_owned(),
        serde_json::json!({ "type": "string", "enum": tags }),
    );
    for field in fields {
        properties.insert((*field).to_owned(), serde_json::json!({ "type": "string" }));
    }
    schemars::json_schema!({
        "type": "object",
        "description": description,
        "required": [tag],
        "properties": properties,
    })
}

impl JsonSchema for crate::Check {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Check".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let checks = [
            crate::Check::Ready,
            crate::Check::RestartsStable,
            crate::Check::NoBadWaiting,
            crate::Check::NotOomKilled,
            crate::Check::Scheduled,
            crate::Check::ProbesPassing,
            crate::Check::Endpoints {
                service: String::new(),
            },
        ];
        let ids: Vec<&str> = checks.iter().map(crate::Check::id).collect();
        tagged(
            "check",
            "A typed check of a verification plan; `service` names the Service of `endpoints`.",
            &ids,
            &["service"],
        )
    }
}

impl JsonSchema for crate::change::ChangeStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ChangeStatus".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        use crate::change::ChangeStatus as S;
        let statuses = [
            S::Intent,
            S::Confirming,
            S::Confirmed,
            S::Made,
            S::RolledBack,
            S::NotMade {
                reason: String::new(),
            },
            S::PatchFile {
                path: String::new(),
            },
            S::NeedsHuman {
                reason: String::new(),
            },
        ];
        let ids: Vec<&str> = statuses.iter().map(S::as_str).collect();
        tagged(
            "status",
            "Where a change stands; `reason` explains not-made and needs-human, `path` names a patch file.",
            &ids,
            &["reason", "path"],
        )
    }
}

impl JsonSchema for crate::lifecycle::Action {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Action".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // A word (`diagnose`, `approve`, …) or `{"verdict": "<verdict>"}`: two shapes, which a
        // structural schema cannot type, so the API server keeps it as written.
        schemars::json_schema!({
            "description": "What moved the incident: a word such as diagnose, verify, approve, apply, roll back, resolve, or {\"verdict\": VERDICT}.",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

/// The `CustomResourceDefinition` of `Incident` (what `aegis operator crd` prints and
/// `cargo xtask codegen` writes to `deploy/crds/`).
pub fn incident_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    <IncidentResource as kube::CustomResourceExt>::crd()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Kubernetes' structural-schema rule: every node states its type unless it keeps unknown
    /// fields or is int-or-string; no references; nothing typed inside `anyOf`/`oneOf`.
    fn assert_structural(node: &Value, path: &str) {
        let Some(map) = node.as_object() else {
            panic!("{path}: a schema must be an object, got {node}");
        };
        assert!(
            !map.contains_key("$ref"),
            "{path}: references are not allowed"
        );
        let free = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
            || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        assert!(
            free || map.contains_key("type"),
            "{path}: no type in {node}"
        );
        for combinator in ["anyOf", "oneOf", "allOf"] {
            for branch in map
                .get(combinator)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for forbidden in ["type", "description", "default", "nullable"] {
                    assert!(
                        branch.get(forbidden).is_none(),
                        "{path}.{combinator}: {forbidden} inside a combinator"
                    );
                }
            }
        }
        if let Some(properties) = map.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                assert_structural(child, &format!("{path}.{name}"));
            }
        }
        if let Some(items) = map.get("items") {
            assert_structural(items, &format!("{path}[]"));
        }
        if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
            assert_structural(additional, &format!("{path}{{}}"));
        }
    }

    #[test]
    fn the_incident_crd_is_namespaced_with_a_status_subresource_and_the_columns_people_read() {
        let crd = serde_json::to_value(incident_crd()).expect("serializes");
        assert_eq!(crd["metadata"]["name"], "incidents.aegis.io");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["kind"], "Incident");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "inc");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], VERSION);
        assert!(version["subresources"]["status"].is_object());
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .filter(|c| c.get("priority").is_none())
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(columns, ["Workload", "Category", "Phase", "Verdict", "Age"]);
        let schema = &version["schema"]["openAPIV3Schema"];
        assert_structural(schema, "");
        let status = &schema["properties"]["status"]["properties"];
        assert_eq!(
            status["incident"]["properties"]["fix"]["properties"]["patch"]["x-kubernetes-preserve-unknown-fields"],
            true,
            "a patch is kept as written"
        );
        assert_eq!(
            status["phase"]["enum"]
                .as_array()
                .map(|phases| phases.iter().filter(|p| !p.is_null()).count()),
            Some(crate::lifecycle::Phase::ALL.len())
        );
    }
}
