//! The LLM backend. The embedded default is the rules engine (`aegis-rules`); Ollama is
//! consulted on top of it ([`consult`]): the prompt is built from the gathered
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
pub mod prompt;
pub mod redact;

pub use consult::Consultant;
pub use ollama::{LlmError, OllamaBackend, OllamaConfig};
