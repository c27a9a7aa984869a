//! Settings types: every configurable value, with its built-in default (SPEC §12).
//!
//! Loading and layering (files, environment, flags) is the CLI's job; these are plain data.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::taxonomy::Category;

/// All settings, one field per configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub llm: LlmSettings,
    pub kubernetes: KubernetesSettings,
    pub shadow: ShadowSettings,
    pub policy: PolicySettings,
    pub agent: AgentSettings,
    pub observability: ObservabilitySettings,
    pub operator: OperatorSettings,
}

/// Which reasoning backend `aegis analyze` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmBackendChoice {
    /// Ollama when reachable, else the rules engine.
    Auto,
    /// The embedded rules engine only.
    Rules,
    /// Ollama, failing when it cannot be reached.
    Ollama,
}

/// The `llm` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    pub backend: LlmBackendChoice,
    /// Ollama's URL; when unset, `OLLAMA_HOST`, else `http://127.0.0.1:11434`.
    pub ollama_url: Option<String>,
    /// The model of the diagnosis call (one per incident).
    pub rca_model: String,
    /// The model that drafts the fix of a diagnosis the rules could not make: the diagnosis
    /// call itself when it is `rca_model`, else a second call.
    pub fix_model: String,
    /// The model for verification plans. No call uses it yet: plans are built by the rules
    /// (`aegis-llm` `plan.rs`) so that every check is one the shadow can run.
    pub verification_model: String,
    pub connect_timeout_ms: u64,
    pub request_timeout_secs: u64,
    /// Retries of a call that failed transiently (429, 5xx, connection lost), with back-off.
    pub max_retries: u32,
    /// The sampling seed (with temperature 0, answers repeat).
    pub seed: i32,
    /// The most tokens a prompt may take (instructions, incident and evidence); the most
    /// telling evidence is kept, and always at least one piece.
    pub prompt_budget_tokens: usize,
    /// The most tokens an answer may take.
    pub max_answer_tokens: i32,
    /// When set, every prompt sent is appended here as one JSON line (after redaction).
    pub prompt_log: Option<PathBuf>,
    /// The most incidents one analysis consults the LLM on (one call each, in turn): those the
    /// rules could not diagnose first, then the least confident.
    pub max_incidents: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            backend: LlmBackendChoice::Auto,
            ollama_url: None,
            rca_model: "smollm2:135m".to_owned(),
            fix_model: "smollm2:135m".to_owned(),
            verification_model: "smollm2:135m".to_owned(),
            connect_timeout_ms: 300,
            request_timeout_secs: 120,
            max_retries: 2,
            seed: 42,
            prompt_budget_tokens: 1500,
            max_answer_tokens: 512,
            prompt_log: None,
            max_incidents: 20,
        }
    }
}

/// The `kubernetes` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSettings {
    /// A kubeconfig file; when unset, `KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// A kubeconfig context; when unset, the current context.
    pub context: Option<String>,
    /// The namespace used for `KIND/NAME` arguments; when unset, the context's, else `default`.
    pub namespace: Option<String>,
    pub connect_timeout_secs: u64,
    pub read_timeout_secs: u64,
    /// Lines of each failing container's log read for evidence.
    pub log_tail_lines: i64,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            namespace: None,
            connect_timeout_secs: 5,
            read_timeout_secs: 30,
            log_tail_lines: 200,
        }
    }
}

/// The `shadow` section: how fixes are verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShadowSettings {
    /// How long a shadow lives before any shadow command deletes it.
    pub ttl_minutes: u64,
    /// Shadows that may exist at once (and verifications running at once).
    pub max_concurrent: u32,
    /// Fixes verified per incident at most, when the rules have several for one cause.
    pub max_candidates: u32,
    /// A kubeconfig context to create shadows in (a staging cluster) instead of the analysed one.
    pub context: Option<String>,
    /// Seconds between counted checks of a shadow (a watch event brings a look sooner).
    pub interval_seconds: u64,
    /// Looks in a row at which every check passes, spanning this many intervals less one, that
    /// make a fix `successful`: with the defaults, a verdict comes about a second after the
    /// candidate is Ready (and past its probes' window) and the baseline shows the incident.
    pub success_threshold: u32,
    /// Failing intervals tolerated; one more makes the fix `failed`.
    pub failure_limit: u32,
    /// Seconds after which an undecided verification is `inconclusive`.
    pub timeout_seconds: u64,
    /// What each shadow namespace grants the operator: a RoleBinding there to this ClusterRole
    /// for this ServiceAccount, written right after the namespace. The operator's own RBAC then
    /// needs no write outside shadows (the Helm chart sets it); unset, nothing is granted and
    /// the caller's credentials must allow the shadow's writes themselves.
    pub grant: Option<ShadowGrant>,
}

/// The RoleBinding written into every shadow namespace (see [`ShadowSettings::grant`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowGrant {
    /// The ClusterRole bound in the shadow.
    pub cluster_role: String,
    /// The ServiceAccount it is bound to, and its namespace.
    pub service_account: String,
    pub namespace: String,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        Self {
            ttl_minutes: 30,
            max_concurrent: 3,
            max_candidates: 3,
            context: None,
            interval_seconds: 1,
            success_threshold: 2,
            failure_limit: 3,
            timeout_seconds: 300,
            grant: None,
        }
    }
}

/// The `policy` section: when and how fixes reach production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    /// Categories whose fixes may be applied without approval once a shadow verified them.
    pub auto_apply_categories: Vec<Category>,
    /// Seconds after a change to a workload (applied, confirmed or rolled back) during which no
    /// other change is made to it.
    pub cooldown_seconds: u64,
    /// Seconds a change has to prove itself on the production workload (rollout complete,
    /// checks passing, the failure gone) before it is rolled back.
    pub confirmation_timeout_seconds: u64,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            auto_apply_categories: Vec::new(),
            cooldown_seconds: 600,
            confirmation_timeout_seconds: 300,
        }
    }
}

/// The `agent` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Below this confidence no fix is proposed and the incident is escalated.
    pub confidence_threshold: f64,
    /// Pods younger than this are not reported for transient states (Pending, ContainerCreating).
    pub grace_period_seconds: u64,
    /// Where incidents are recorded; when unset, the user's state directory.
    pub state_dir: Option<PathBuf>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            confidence_threshold: 0.7,
            grace_period_seconds: 120,
            state_dir: None,
        }
    }
}

/// The `observability` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilitySettings {
    /// The log filter for stderr (`warn`, `info`, `aegis_cluster=debug`, …).
    pub log_level: String,
}

impl Default for ObservabilitySettings {
    fn default() -> Self {
        Self {
            log_level: "warn".to_owned(),
        }
    }
}

/// The `operator` section: what `aegis operator run` watches and how it keeps its lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorSettings {
    /// A label selector for namespaces whose every workload is watched (`team=shop`,
    /// `env in (prod,staging)`); outside them only objects annotated `aegis.io/monitor: "true"`
    /// (or owned by one that is) are. Unset: annotated objects only.
    pub namespace_selector: Option<String>,
    /// How long a resolved incident is kept before it is deleted.
    pub retention_seconds: u64,
    /// How long changes are gathered before the namespaces they touched are analyzed again.
    pub debounce_millis: u64,
    /// The leader's Lease: how long it holds without renewal, how long the leader keeps trying
    /// to renew before it stops acting, and how often candidates try.
    pub lease_duration_seconds: u64,
    pub renew_deadline_seconds: u64,
    pub retry_period_seconds: u64,
    /// How often expired shadows are collected.
    pub shadow_gc_interval_seconds: u64,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            namespace_selector: None,
            retention_seconds: 24 * 3600,
            debounce_millis: 1000,
            lease_duration_seconds: 15,
            renew_deadline_seconds: 10,
            retry_period_seconds: 2,
            shadow_gc_interval_seconds: 60,
        }
    }
}
