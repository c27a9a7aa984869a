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
    /// Shadow environments: prove a fix on an isolated copy of a workload.
    #[command(subcommand)]
    Shadow(ShadowCommand),
    /// Save what a source holds as a snapshot directory (`kubectl get … -o yaml` Lists and logs/).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// AEGIS as a controller in the cluster: Incident resources, leader election, metrics.
    #[command(subcommand)]
    Operator(OperatorCommand),
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
    /// Only these analyzers, named as K8sGPT names them (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Service, Ingress, Node, PersistentVolumeClaim, HorizontalPodAutoscaler, ConfigMap, Storage; and Security, Log, which run only when named).
    #[arg(long, value_delimiter = ',', value_name = "ANALYZER,...")]
    pub filter: Vec<String>,
    /// Only objects whose labels match this selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// The reasoning backend: the rules engine alone, Ollama on top of it, or Ollama when it is
    /// reachable (default: llm.backend of the configuration, `auto`).
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub llm: Option<LlmChoice>,
    /// Do not verify fixes in shadows (verification: skipped).
    #[arg(long)]
    pub no_verify: bool,
    /// Also take K8sGPT's findings from FILE (`k8sgpt analyze -o json` output of the same
    /// cluster; `-` reads stdin): they go through the same rules as AEGIS's own.
    #[arg(long, value_name = "FILE")]
    pub k8sgpt: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Clone a workload into a shadow namespace: a baseline copy and a copy with the fix.
    Create {
        /// The workload: deploy/x, sts/x, rs/x, ds/x, pod/x, job/x, cronjob/x.
        #[arg(value_name = "KIND/NAME")]
        target: TargetSpec,
        /// The recorded incident whose fix to verify (its id, or a unique prefix).
        #[arg(long, value_name = "ID", conflicts_with = "fix")]
        incident: Option<String>,
        /// A fix from a file (JSON or YAML): a strategic-merge patch for the workload, or a fix
        /// object as `aegis analyze -o json` prints it.
        #[arg(long, value_name = "FILE")]
        fix: Option<PathBuf>,
        /// How long the shadow lives (30m, 2h, 90s); shadow.ttl_minutes by default.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Wait for the verdict and print the verification result.
        #[arg(long)]
        wait: bool,
        /// Create the shadow in another kubeconfig context (a staging cluster).
        #[arg(long, value_name = "NAME")]
        shadow_context: Option<String>,
    },
    /// List shadows (found by their label), with age, expiry and verdict.
    List,
    /// Delete a shadow, or every expired one.
    Delete {
        /// The shadow's namespace (aegis-shadow-…).
        #[arg(
            value_name = "ID",
            required_unless_present = "expired",
            conflicts_with = "expired"
        )]
        id: Option<String>,
        /// Delete every shadow past its expiry.
        #[arg(long)]
        expired: bool,
    },
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
    /// Approve an incident's fix for production (it must have been verified, or failed or
    /// escalated and be approved on a human's judgement); a changed fix voids the approval.
    Approve {
        /// The incident id (inc-…), or a unique prefix of it.
        id: String,
        /// Apply the fix right after approving it (as `aegis incident apply`).
        #[arg(long)]
        apply: bool,
    },
    /// Apply an approved fix to production: checks that production still holds what the shadow
    /// verified, records the change before making it, watches the workload through a
    /// confirmation window and rolls the change back if it regresses. Rerun after an
    /// interruption, it finishes (or undoes) a change left under way.
    Apply {
        /// The incident id (inc-…), or a unique prefix of it.
        id: String,
    },
    /// Undo an applied fix with its inverse patch.
    Rollback {
        /// The incident id (inc-…), or a unique prefix of it.
        id: String,
        /// Why it is rolled back (recorded in the history and the audit record).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject an incident's fix, with the reason.
    Reject {
        /// The incident id (inc-…), or a unique prefix of it.
        id: String,
        /// Why the fix is rejected.
        #[arg(long)]
        reason: String,
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

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Run the operator: watch the cluster, record incidents as Incident objects, verify their
    /// fixes in shadows. Runs until SIGTERM or Ctrl-C.
    Run {
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: std::net::SocketAddr,
        /// Take part in leader election on a Lease (for several replicas); only the leader acts.
        #[arg(long)]
        leader_elect: bool,
        /// This replica's name in the Lease (default: $POD_NAME, else host name and process id).
        #[arg(long, value_name = "NAME")]
        identity: Option<String>,
    },
    /// The operator's state: CRDs, leader, Ollama and its models, GPUs, incidents by phase.
    Status,
    /// Print the Incident CustomResourceDefinition (apply it with `kubectl apply -f -`).
    Crd,
}
