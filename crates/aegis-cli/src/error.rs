//! The CLI's errors: what failed, the way out, and the exit code.

use std::fmt;

/// Exit code of a command that could not do its job.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error.
pub const EXIT_USAGE: u8 = 2;

/// An error reported to the user.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl CliError {
    /// The command could not do its job.
    pub fn failure(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            hint: None,
            code: EXIT_FAILURE,
        }
    }

    /// The command line was wrong.
    pub fn usage(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            hint: None,
            code: EXIT_USAGE,
        }
    }

    #[must_use]
    pub fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        Self::failure(format!("{error:#}"))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
