//! Changes to production (SPEC §8): what a fix was verified against, and the audit record of
//! every change, written before the change is made and kept with its inverse.
//!
//! A [`Basis`] fingerprints the spec of the object a fix patches, so the change engine can tell
//! whether production still holds what the shadow verified. A [`ChangeRecord`] is the audit
//! trail of one change: who approved it, the diff, the verdict and its evidence, the inverse
//! patch, and each step from the intent to its confirmation or rollback.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::incident::PatchType;
use crate::patch::normalized;
use crate::resource::ResourceRef;
use crate::verification::Verdict;

/// The annotation every change of AEGIS sets on the object it patches: the change's id, so a
/// process that died mid-change can tell afterwards whether its write reached the cluster.
pub const CHANGE_ANNOTATION: &str = "aegis.io/change";

/// What an object held when a fix was computed and verified against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Basis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// A hash of the object's `spec` as the API server stores it. `spec.replicas` is left out
    /// unless the fix patches it: autoscalers change it, and it does not change what a template
    /// fix does.
    pub spec_hash: String,
}

impl Basis {
    /// The basis of `object` for a fix whose patch is `patch`.
    pub fn of(object: &Value, patch: &Value) -> Self {
        let replicas = patch.pointer("/spec/replicas").is_some();
        Self {
            resource_version: object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned),
            generation: object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64),
            spec_hash: spec_hash(object, replicas),
        }
    }

    /// Whether `now` holds the same spec as this basis.
    pub fn same_spec(&self, now: &Self) -> bool {
        self.spec_hash == now.spec_hash
    }

    /// What differs between this basis and `now`, in words.
    pub fn difference(&self, now: &Self) -> String {
        let mut parts = Vec::new();
        if self.generation != now.generation {
            parts.push(format!(
                "generation {} → {}",
                option_text(self.generation),
                option_text(now.generation)
            ));
        }
        if self.spec_hash != now.spec_hash {
            parts.push(format!("spec {} → {}", self.spec_hash, now.spec_hash));
        }
        if parts.is_empty() {
            "nothing in its spec".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn option_text(value: Option<i64>) -> String {
    value.map_or_else(|| "unset".to_owned(), |v| v.to_string())
}

/// A hash of an object's `spec` (empty fields left out, keys sorted), with or without
/// `spec.replicas`.
pub fn spec_hash(object: &Value, with_replicas: bool) -> String {
    let mut spec = normalized(object.get("spec").unwrap_or(&Value::Null));
    if !with_replicas && let Some(map) = spec.as_object_mut() {
        map.remove("replicas");
    }
    let mut text = String::new();
    canonical(&spec, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().fold(String::new(), |mut hex, byte| {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// JSON text with object keys sorted, whatever order the map keeps them in.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Whether the change applies a fix or undoes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// The fix's patch, after approval (or auto-apply).
    Apply,
    /// The inverse patch, asked for by a human after the fix was applied.
    Rollback,
}

/// Where a change stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum ChangeStatus {
    /// Recorded; the write to the cluster may or may not have happened yet.
    Intent,
    /// The patch is in the cluster; the confirmation window is running.
    Confirming,
    /// The confirmation window saw the workload healthy: the change stands.
    Confirmed,
    /// A rollback asked for by hand was written.
    Made,
    /// The confirmation window saw a regression, and the inverse patch was applied.
    RolledBack,
    /// Nothing was written: the cluster refused the patch, the target changed meanwhile, or the
    /// process stopped before writing.
    NotMade { reason: String },
    /// The target is managed by GitOps: the fix was written as a patch file for its source
    /// repository instead of changing the cluster.
    PatchFile { path: String },
    /// The change was written but cannot be confirmed or undone by AEGIS (the object was
    /// changed by someone else meanwhile): a human must look.
    NeedsHuman { reason: String },
}

impl ChangeStatus {
    /// Whether the change is still under way (its owner may be running, or died).
    pub fn in_progress(&self) -> bool {
        matches!(self, Self::Intent | Self::Confirming)
    }

    /// The status as a word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Confirming => "confirming",
            Self::Confirmed => "confirmed",
            Self::Made => "made",
            Self::RolledBack => "rolled-back",
            Self::NotMade { .. } => "not-made",
            Self::PatchFile { .. } => "patch-file",
            Self::NeedsHuman { .. } => "needs-human",
        }
    }
}

impl fmt::Display for ChangeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMade { reason } | Self::NeedsHuman { reason } => {
                write!(f, "{}: {reason}", self.as_str())
            }
            Self::PatchFile { path } => write!(f, "{}: {path}", self.as_str()),
            other => f.write_str(other.as_str()),
        }
    }
}

/// The process making a change, so another can tell a running change from an abandoned one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// When the owner last showed it was alive (RFC 3339, wall clock).
    pub heartbeat: String,
}

/// One step of a change, as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Step {
    /// RFC 3339, on the cluster's clock.
    pub at: String,
    pub what: String,
}

/// The audit record of one production change (SPEC §8), written before the change is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeRecord {
    /// `chg-<incident id suffix>-<n>`.
    pub id: String,
    pub kind: ChangeKind,
    pub incident: String,
    pub target: ResourceRef,
    pub patch_type: PatchType,
    /// The patch this change writes, and the one that undoes it.
    #[schemars(schema_with = "crate::crd::any_value")]
    pub patch: Value,
    #[schemars(schema_with = "crate::crd::any_value")]
    pub inverse_patch: Value,
    /// The hash of the fix's patch (as the shadow's annotation carries it), and the spec hash
    /// of the target with the patch applied (by the pure applier) when it was recorded: a later
    /// fix with the same result is the same change.
    pub fix_hash: String,
    #[serde(default)]
    pub result_hash: String,
    pub fix_summary: String,
    /// The object's diff the patch makes, in unified form.
    pub diff: Vec<String>,
    /// The backend whose diagnosis this is (`rules`, `ollama:<model>`), and the hash of the
    /// prompt sent when an LLM was consulted.
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_hash: Option<String>,
    /// The shadow's verdict and why, and where its evidence is kept.
    pub verdict: Verdict,
    pub verdict_reason: String,
    pub evidence: String,
    /// Who allowed the change (a user, or the auto-apply policy), and when.
    pub approver: String,
    pub approved_at: String,
    /// When the record was written (the cluster's clock).
    pub recorded_at: String,
    /// What the target held just before the change, and just after it.
    pub before: Basis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Basis>,
    pub owner: Owner,
    #[serde(flatten)]
    pub status: ChangeStatus,
    /// What happened, in order: the record, the dry run, the write, each confirmation look that
    /// changed something, the outcome.
    pub steps: Vec<Step>,
    /// What the confirmation window saw when it decided (check states, events, logs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_seen: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// How long a change took, on the cluster's clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timing {
    /// From the audit record to the patch in the cluster.
    pub to_write_seconds: f64,
    /// From the patch to the last pod of the new revision turning Ready (its Ready condition):
    /// the rollout's own time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_ready_seconds: Option<f64>,
    /// From the patch to the decision (confirmed or rolled back).
    pub decided_seconds: f64,
}

impl ChangeRecord {
    /// Adds a step at `at`.
    pub fn step(&mut self, at: &str, what: impl Into<String>) {
        self.steps.push(Step {
            at: at.to_owned(),
            what: what.into(),
        });
    }

    /// When the change last did something: its last step, else when it was recorded.
    pub fn last_at(&self) -> &str {
        self.steps
            .last()
            .map_or(self.recorded_at.as_str(), |s| s.at.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_spec_hash_ignores_key_order_empty_fields_and_replicas_unless_patched() {
        let a = json!({"metadata": {"resourceVersion": "5", "generation": 2}, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1", "env": []}]}}}});
        let b = json!({"spec": {"template": {"spec": {"containers": [{"image": "x:1", "name": "a"}]}}, "replicas": 3}});
        assert_eq!(spec_hash(&a, false), spec_hash(&b, false));
        assert_ne!(spec_hash(&a, true), spec_hash(&b, true));
        let c = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:2"}]}}}});
        assert_ne!(spec_hash(&a, false), spec_hash(&c, false));
        let basis = Basis::of(&a, &json!({"spec": {"template": {}}}));
        assert_eq!(basis.resource_version.as_deref(), Some("5"));
        assert_eq!(basis.generation, Some(2));
        assert!(basis.same_spec(&Basis::of(&b, &json!({}))));
        let scaled = Basis::of(&a, &json!({"spec": {"replicas": 1}}));
        assert!(!scaled.same_spec(&Basis::of(&b, &json!({"spec": {"replicas": 1}}))));
    }

    #[test]
    fn a_difference_names_what_changed() {
        let before = Basis::of(
            &json!({"metadata": {"generation": 1}, "spec": {"a": 1}}),
            &json!({}),
        );
        let after = Basis::of(
            &json!({"metadata": {"generation": 2}, "spec": {"a": 2}}),
            &json!({}),
        );
        let text = before.difference(&after);
        assert!(text.contains("generation 1 → 2"), "{text}");
        assert!(text.contains("spec "), "{text}");
        assert_eq!(before.difference(&before), "nothing in its spec");
    }

    #[test]
    fn statuses_in_progress_are_intent_and_confirming_only() {
        let all = [
            ChangeStatus::Intent,
            ChangeStatus::Confirming,
            ChangeStatus::Confirmed,
            ChangeStatus::Made,
            ChangeStatus::RolledBack,
            ChangeStatus::NotMade { reason: "x".into() },
            ChangeStatus::PatchFile { path: "p".into() },
            ChangeStatus::NeedsHuman { reason: "y".into() },
        ];
        let running: Vec<&str> = all
            .iter()
            .filter(|s| s.in_progress())
            .map(ChangeStatus::as_str)
            .collect();
        assert_eq!(running, ["intent", "confirming"]);
        let json = serde_json::to_value(&all[5]).expect("serializable");
        assert_eq!(json, json!({"status": "not-made", "reason": "x"}));
    }
}
