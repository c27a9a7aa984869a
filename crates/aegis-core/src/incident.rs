//! Findings, evidence, root-cause analyses, fixes and incidents: the analysis report of SPEC §4.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::policy::PolicyDecision;
use crate::resource::ResourceRef;
use crate::taxonomy::Category;
use crate::verification::Verification;

/// Where the analysed state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Mock,
    Snapshot,
    Cluster,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mock => "mock",
            Self::Snapshot => "snapshot",
            Self::Cluster => "cluster",
        }
    }
}

/// One thing an analyzer saw wrong with one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// The analyzer that reported it (`Pod`, `Service`, …).
    pub analyzer: String,
    /// A short machine-readable reason (`CrashLoopBackOff`, `NoEndpoints`, …).
    pub reason: String,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The object the finding is about.
    pub resource: ResourceRef,
}

/// What kind of fact a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EvidenceSource {
    Log,
    Event,
    Status,
    Spec,
}

/// A fact cited by a root-cause analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evidence {
    pub source: EvidenceSource,
    /// Where the fact can be found: `pod/ns/name/container: line 3`, `event/ns/name`, a field path.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The fact itself, quoted.
    pub excerpt: String,
}

impl Evidence {
    pub fn new(
        source: EvidenceSource,
        reference: impl Into<String>,
        excerpt: impl Into<String>,
    ) -> Self {
        Self {
            source,
            reference: reference.into(),
            excerpt: excerpt.into(),
        }
    }
}

/// A root-cause analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rca {
    pub category: Category,
    pub summary: String,
    pub root_cause: String,
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    pub analysis_steps: Vec<String>,
    pub decision_rationale: String,
    /// Which backend's diagnosis this is: `rules` or `ollama:<model>`.
    pub backend: String,
    /// What the LLM said, when it was consulted, and what became of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmOpinion>,
}

/// What became of the LLM's answer on one incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LlmVerdict {
    /// It reached the rules' diagnosis.
    Agreed,
    /// It contradicted the rules' diagnosis; the rules' evidence wins.
    Contradicted,
    /// The rules had no diagnosis; its validated answer stands.
    Adopted,
    /// Its answer failed validation and was discarded.
    Rejected,
    /// The call failed (unreachable, timeout, missing model, …).
    Failed,
}

impl LlmVerdict {
    /// Its name in output and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agreed => "agreed",
            Self::Contradicted => "contradicted",
            Self::Adopted => "adopted",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// The LLM's opinion on an incident, shown beside the diagnosis that stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LlmOpinion {
    /// `ollama:<model>`.
    pub backend: String,
    pub verdict: LlmVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The evidence it cited, by reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// Why its answer was rejected or the call failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    /// A hash of the prompt sent (after redaction), for audit.
    pub prompt_hash: String,
}

/// The kind of patch a fix carries, as `kubectl patch --type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PatchType {
    StrategicMerge,
    Merge,
    Json,
}

impl PatchType {
    /// The name `kubectl patch --type` expects.
    pub fn kubectl_name(self) -> &'static str {
        match self {
            Self::StrategicMerge => "strategic",
            Self::Merge => "merge",
            Self::Json => "json",
        }
    }
}

/// How much could go wrong if the fix is applied.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    /// The word used in JSON and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A proposed fix: a typed patch on one object, with the patch that undoes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fix {
    pub summary: String,
    pub target: ResourceRef,
    pub patch_type: PatchType,
    #[schemars(schema_with = "crate::crd::any_value")]
    pub patch: Value,
    #[schemars(schema_with = "crate::crd::any_value")]
    pub inverse_patch: Value,
    pub risk: Risk,
    pub policy: PolicyDecision,
    pub requires_approval: bool,
    /// Set when the fix returns the workload to an earlier revision's pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
}

/// A fix that returns a workload to the revision that last ran healthy (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rollback {
    /// The failing revision, and the one returned to.
    pub from_revision: i64,
    pub to_revision: i64,
    /// The object holding the revision returned to: `ReplicaSet/<name>` or
    /// `ControllerRevision/<name>`.
    pub source: String,
    /// The pod-template fields the rollback changes, as paths.
    pub fields: Vec<String>,
}

/// One incident: a failure of one workload, with its diagnosis and fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Incident {
    pub id: String,
    /// The most telling object of the incident.
    pub resource: ResourceRef,
    /// The workload that owns it (the object itself when nothing owns it).
    pub workload: ResourceRef,
    pub findings: Vec<Finding>,
    pub rca: Rca,
    pub fix: Option<Fix>,
    /// Other safe fixes for the same cause, best first: verified in a shadow, in order, when
    /// `fix` does not verify, and proposed instead when one does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternative_fixes: Vec<Fix>,
    pub verification: Verification,
}

/// What `aegis analyze` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnalysisReport {
    pub aegis_version: String,
    pub source: SourceKind,
    pub incidents: Vec<Incident>,
}

/// The stable identifier of the incident of one workload and category: `inc-` and eight hex digits.
pub fn incident_id(workload: &ResourceRef, category: Category) -> String {
    let mut hasher = Sha256::new();
    hasher.update(workload.kind.as_str());
    hasher.update([0]);
    hasher.update(workload.namespace_str());
    hasher.update([0]);
    hasher.update(&workload.name);
    hasher.update([0]);
    hasher.update(category.id());
    let digest = hasher.finalize();
    format!(
        "inc-{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ResourceKind;

    #[test]
    fn incident_ids_are_stable_and_distinguish_workload_and_category() {
        let web = ResourceRef::namespaced(ResourceKind::Deployment, "default", "web");
        let api = ResourceRef::namespaced(ResourceKind::Deployment, "default", "api");
        let id = incident_id(&web, Category::OomKilled);
        assert_eq!(id, incident_id(&web, Category::OomKilled));
        assert_eq!(id.len(), "inc-".len() + 8);
        assert!(id.starts_with("inc-"));
        assert_ne!(id, incident_id(&api, Category::OomKilled));
        assert_ne!(id, incident_id(&web, Category::MissingEnvVar));
    }
}
