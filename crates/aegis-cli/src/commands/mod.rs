//! The commands: each takes resolved settings and arguments and returns an exit status.

pub mod analyze;
pub mod config;
pub mod incident;
pub mod operator;
pub mod shadow;
pub mod snapshot;

use std::io::Write;

use crate::error::{CliError, CliResult};

/// Writes data to stdout; a closed pipe (`aegis … | head`) is not an error.
pub fn print(text: &str) -> CliResult<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("cannot write to stdout: {e}"))),
    }
}

/// A warning for people, on stderr.
pub fn warn(message: impl std::fmt::Display) {
    eprintln!("warning: {message}");
}
