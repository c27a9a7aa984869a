//! The incident store of the CLI: `aegis_agent::store` in the configured state directory, with
//! its errors turned into the CLI's (a message, a `hint:` and an exit code).

use aegis_agent::store::StoreError;
pub use aegis_agent::store::{Store, StoredIncident};
use k8s_openapi::jiff::Timestamp;

use crate::error::{CliError, CliResult};

/// The store of the configured state directory (`agent.state_dir`, else the user's).
pub fn configured(settings: &aegis_core::settings::Settings) -> CliResult<Store> {
    let state_dir = settings
        .agent
        .state_dir
        .clone()
        .or_else(crate::config::default_state_dir)
        .ok_or_else(|| {
            CliError::failure("no state directory is known")
                .hint("set agent.state_dir or AEGIS_AGENT__STATE_DIR")
        })?;
    Ok(Store::new(&state_dir))
}

/// Where the mock world's journal lives: the writes `aegis incident apply|rollback --mock` made
/// to the demo world, replayed by every later `--mock` command.
pub fn mock_journal(settings: &aegis_core::settings::Settings) -> Option<std::path::PathBuf> {
    settings
        .agent
        .state_dir
        .clone()
        .or_else(crate::config::default_state_dir)
        .map(|dir| dir.join("mock-world.json"))
}

/// Now, to the second, as the store records times.
pub fn now() -> String {
    Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_else(|_| Timestamp::now())
        .to_string()
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::NotFound { .. } => CliError::failure(message).hint(
                "`aegis incident list` shows the recorded incidents; `aegis analyze` records new ones",
            ),
            StoreError::Ambiguous { .. } => CliError::usage(message).hint("give more of the id"),
            StoreError::Io { .. } | StoreError::Encode { .. } => CliError::failure(message)
                .hint("set agent.state_dir (or AEGIS_AGENT__STATE_DIR) to a writable directory"),
            StoreError::Refused(_) | StoreError::Backend(_) => CliError::failure(message),
        }
    }
}
