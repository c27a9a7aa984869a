//! Reasoning backends. The embedded default is the rules engine: it diagnoses every failure
//! class of the taxonomy it can recognise from the evidence the analyzers gathered, cites that
//! evidence, and proposes a fix as a typed patch on the owning workload, with its inverse,
//! checked against the fix policy.
//!
//! Ollama is consulted on top of it ([`consult`]): the prompt is built from the gathered
//! evidence within a token budget ([`prompt`]), secrets are masked before anything leaves the
//! process ([`redact`]), the answer is untrusted input validated against its schema, the
//! evidence sent and the fix policy ([`answer`]), and cross-checked against the rules.
//!
//! This crate reads the state it is given and never touches a cluster.

pub mod answer;
pub mod consult;
#[cfg(feature = "mock-server")]
pub mod mock_server;
pub mod ollama;
pub mod plan;
pub mod prompt;
pub mod redact;
pub mod rules;
mod text;

pub use consult::Consultant;
pub use ollama::{LlmError, OllamaBackend, OllamaConfig};
pub use rules::{Diagnosis, RulesConfig, RulesEngine};
