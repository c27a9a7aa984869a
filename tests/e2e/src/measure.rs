//! Wall time and peak resident memory of one program run.
//!
//! The kernel reports the peak RSS of a process's waited-for children together
//! (`getrusage(RUSAGE_CHILDREN)`), so a program is measured as the only child of a fresh
//! measuring process ([`measurer_main`], behind the `aegis-e2e-measure` binary and `cargo xtask
//! measure-rss`), which writes its figures to a file while the program's own output passes
//! through untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One measured run.
#[derive(Debug)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size, in KiB.
    pub peak_kib: u64,
    pub output: Output,
}

impl Measured {
    /// The peak RSS in MB (10^6 bytes).
    pub fn peak_mb(&self) -> f64 {
        self.peak_kib as f64 * 1024.0 / 1e6
    }
}

/// The measuring process's body: `args` are `OUT_FILE PROGRAM [ARG...]`; runs the program as
/// this process's only child, with this process's standard streams, and writes `WALL_MICROS
/// PEAK_KIB EXIT_CODE` to `OUT_FILE`.
pub fn measurer_main(args: &[String]) -> Result<()> {
    let [out, program, rest @ ..] = args else {
        bail!("usage: OUT_FILE PROGRAM [ARG...]");
    };
    let start = Instant::now();
    let status = Command::new(program)
        .args(rest)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    let wall = start.elapsed();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let code = status.code().unwrap_or(-1);
    std::fs::write(
        out,
        format!("{} {} {code}\n", wall.as_micros(), usage.max_rss()),
    )
    .with_context(|| format!("cannot write {out}"))?;
    Ok(())
}

/// How to start a measuring process: a program and the arguments that make it run
/// [`measurer_main`] on the arguments that follow.
#[derive(Debug, Clone)]
pub struct Measurer {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Measurer {
    /// The `aegis-e2e-measure` binary at `path`.
    pub fn binary(path: &Path) -> Self {
        Self {
            program: path.to_path_buf(),
            args: Vec::new(),
        }
    }

    /// Runs `command` (its program, arguments, environment and directory) under a measuring
    /// process; its output is captured. `scratch` is a directory for the figures' file.
    pub fn run(&self, command: &Command, scratch: &Path) -> Result<Measured> {
        std::fs::create_dir_all(scratch)
            .with_context(|| format!("cannot create {}", scratch.display()))?;
        let figures = scratch.join(format!(
            "measured-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let mut measuring = Command::new(&self.program);
        measuring
            .args(&self.args)
            .arg(&figures)
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => measuring.env(key, value),
                None => measuring.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            measuring.current_dir(dir);
        }
        let output = measuring.output().with_context(|| {
            format!(
                "cannot run the measuring process {}",
                self.program.display()
            )
        })?;
        let text = std::fs::read_to_string(&figures).with_context(|| {
            format!(
                "the measuring process wrote no figures ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        let _ = std::fs::remove_file(&figures);
        let numbers: Vec<i64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("unreadable figures {text:?}"))?;
        let [micros, peak, _code] = numbers[..] else {
            bail!("unreadable figures {text:?}");
        };
        Ok(Measured {
            wall: Duration::from_micros(u64::try_from(micros).unwrap_or_default()),
            peak_kib: u64::try_from(peak).unwrap_or_default(),
            output,
        })
    }
}
