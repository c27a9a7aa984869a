//! The command line, as clap types only: no behaviour lives here.

use std::path::PathBuf;

use aegis_core::TargetSpec;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// AEGIS: an SRE agent for Kubernetes that finds the root cause of an incident, proposes a
/// typed, reversible fix, and checks it against policy before anything is changed.
#[derive(Debug, Parser)]
#[command(
    name = "aegis",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// A configuration file, layered above the system, user and ./aegis.toml files.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The kubeconfig file to use.
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace of KIND/NAME arguments, and the only one analysed with --all.
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Use the built-in simulated demo cluster instead of a real one.
    #[arg(long, global = true, conflicts_with = "snapshot")]
    pub mock: bool,
    /// Read a snapshot (files from `kubectl get … -o yaml` and a logs/ tree) instead of a cluster.
    #[arg(long, global = true, value_name = "PATH")]
    pub snapshot: Vec<PathBuf>,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// No colour, even on a terminal.
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find incidents, their root cause and a fix.
    Analyze(AnalyzeArgs),
    /// Incidents recorded by earlier analyses.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Save what a source holds as a snapshot directory (`kubectl get … -o yaml` Lists and logs/).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Show or create the configuration.
    Config(ConfigArgs),
    /// Print the version.
    Version,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The resource to analyse: pod/x, deploy/x, svc/x, sts/x, job/x, node/x, pvc/x, ingress/x, …
    #[arg(
        value_name = "KIND/NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub target: Option<TargetSpec>,
    /// Analyse every resource (of one namespace with -n).
    #[arg(long)]
    pub all: bool,
    /// Only these analyzers (Pod, Deployment, ReplicaSet, StatefulSet, Service, Node, PersistentVolumeClaim, Job, Ingress).
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    pub filter: Vec<String>,
    /// Only objects whose labels match this selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// The reasoning backend: the rules engine alone, Ollama on top of it, or Ollama when it is
    /// reachable (default: llm.backend of the configuration, `auto`).
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub llm: Option<LlmChoice>,
}

/// `--llm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LlmChoice {
    Auto,
    Rules,
    Ollama,
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// List recorded incidents.
    List,
    /// Show one recorded incident.
    Show {
        /// The incident id (inc-…), or a unique prefix of it.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Write every object of the source (one namespace with -n) and failing containers' logs to DIR.
    Capture {
        /// The directory to create; it must not exist or be empty.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Every namespace (the default unless -n is given).
        #[arg(short = 'A', long, conflicts_with = "namespace")]
        all_namespaces: bool,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: Option<ConfigAction>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration and where each value came from (the default).
    Show,
    /// Print the configuration files read, lowest precedence first.
    Path,
    /// Write a commented configuration file with the defaults.
    Init {
        /// Where to write it; the user configuration file when omitted.
        #[arg(value_name = "FILE")]
        path: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}
