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

/// Writes data as JSON or YAML straight to stdout, never holding the whole text: a large
/// analysis's report is as big as its state's text. A closed pipe is not an error.
pub fn print_data<T: serde::Serialize>(
    value: &T,
    format: crate::args::OutputFormat,
) -> CliResult<()> {
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = match format {
        crate::args::OutputFormat::Yaml => serde_yaml::to_writer(&mut stdout, value)
            .map_err(|e| std::io::Error::other(e.to_string())),
        _ => serde_json::to_writer_pretty(&mut stdout, value)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n")),
    }
    .and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("cannot write to stdout: {e}"))),
    }
}

/// A warning for people, on stderr.
pub fn warn(message: impl std::fmt::Display) {
    eprintln!("warning: {message}");
}
