//! Domain types of AEGIS: resources, findings, evidence, root-cause analyses, fixes, incidents,
//! the failure taxonomy, the fix policy, settings and the in-memory view of a cluster.
//!
//! This crate does no IO. Everything above it (cluster access, analyzers, reasoning backends,
//! the CLI) speaks in these types.

pub mod change;
pub mod crd;
pub mod image;
pub mod incident;
pub mod lifecycle;
pub mod patch;
pub mod policy;
pub mod quantity;
pub mod resource;
pub mod settings;
pub mod state;
pub mod taxonomy;
pub mod verification;

pub use incident::{
    AnalysisReport, Evidence, EvidenceSource, Finding, Fix, Incident, LlmOpinion, LlmVerdict,
    PatchType, Rca, Risk, Rollback, SourceKind,
};
pub use policy::{PolicyDecision, PolicyViolation};
pub use resource::{ResourceKind, ResourceRef, TargetSpec};
pub use state::ClusterState;
pub use taxonomy::Category;
pub use verification::{
    Check, CheckResult, Verdict, Verification, VerificationPlan, VerificationResult,
};

/// The version of AEGIS, as reported by `aegis version` and in every analysis report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
