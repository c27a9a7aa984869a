//! Reasoning backends. The embedded default is the rules engine: it diagnoses every failure
//! class of the taxonomy it can recognise from the evidence the analyzers gathered, cites that
//! evidence, and proposes a fix as a typed patch on the owning workload, with its inverse,
//! checked against the fix policy.
//!
//! This crate reads the state it is given and never touches a cluster.

pub mod plan;
pub mod rules;
mod text;

pub use rules::{Diagnosis, RulesConfig, RulesEngine};
