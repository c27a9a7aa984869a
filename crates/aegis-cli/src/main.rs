//! The `aegis` binary: parse the command line, resolve settings, run a command, exit with its
//! status. Errors print as `error: …` and `hint: …` on stderr; exit 1 when the command could not
//! do its job, 2 for usage errors.

mod args;
mod commands;
mod config;
mod error;
mod render;
mod store;

use std::process::ExitCode;

use aegis_core::VERSION;
use clap::{CommandFactory, Parser};
use serde_json::json;

use crate::args::{Cli, Command, OutputFormat};
use crate::error::{CliError, CliResult, EXIT_USAGE};
use crate::render::Style;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error.message);
            if let Some(hint) = &error.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(error.code)
        }
    }
}

fn init_logging(cli: &Cli, configured: &str) {
    let level = if cli.global.quiet {
        "error".to_owned()
    } else {
        match cli.global.verbose {
            0 => configured.to_owned(),
            1 => "info".to_owned(),
            2 => "debug".to_owned(),
            _ => "trace".to_owned(),
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!cli.global.no_color && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}

fn run(cli: &Cli) -> CliResult<()> {
    let style = Style::detect(cli.global.no_color);
    match &cli.command {
        Command::Version => {
            let text = match cli.global.output {
                OutputFormat::Table => format!(
                    "aegis {VERSION} (Kubernetes API 1.34, {}-{})\n",
                    std::env::consts::OS,
                    std::env::consts::ARCH
                ),
                format => render::data(
                    &json!({"aegis_version": VERSION, "kubernetes_api": "1.34", "os": std::env::consts::OS, "arch": std::env::consts::ARCH}),
                    format,
                )?,
            };
            return commands::print(&text);
        }
        Command::Completions { shell } => {
            let mut buffer = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "aegis", &mut buffer);
            return commands::print(&String::from_utf8_lossy(&buffer));
        }
        _ => {}
    }
    let resolved = config::resolve(&cli.global)?;
    init_logging(cli, &resolved.settings.observability.log_level);
    match &cli.command {
        Command::Analyze(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(commands::analyze::run(&cli.global, args, &resolved, style))
        }
        Command::Snapshot(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(commands::snapshot::run(&cli.global, command, &resolved))
        }
        Command::Shadow(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(commands::shadow::run(
                &cli.global,
                command,
                &resolved,
                style,
            ))
        }
        Command::Incident(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(commands::incident::run(
                &cli.global,
                command,
                &resolved,
                style,
            ))
        }
        Command::Operator(command) => commands::operator::run(&cli.global, command, &resolved),
        Command::Config(args) => {
            commands::config::run(args.action.as_ref(), cli.global.output, &resolved, style)
        }
        Command::Version | Command::Completions { .. } => Ok(()),
    }
}
