//! `aegis analyze`: read the cluster (or snapshot, or mock world), find incidents, print them,
//! and record them in the incident store.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use aegis_agent::{Agent, AnalyzeRequest, Analyzer, LabelSelector};
use aegis_cluster::live::{LiveOptions, LiveSource};
use aegis_cluster::sim::MockSource;
use aegis_cluster::snapshot::SnapshotSource;
use aegis_cluster::{Cluster, ClusterRead, Scope};
use aegis_core::settings::{LlmBackendChoice, Settings};
use aegis_core::{Incident, ResourceRef, VerificationResult};
use aegis_llm::{Consultant, OllamaConfig};

use super::{print, print_data, warn};
use crate::args::{AnalyzeArgs, GlobalArgs, LlmChoice, OutputFormat};
use crate::config::{Resolved, default_state_dir};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use crate::store::Store;

/// The source chosen by the flags, with the namespace it defaults to.
pub struct Source {
    pub reader: Arc<dyn ClusterRead>,
    /// The same cluster for writes (shadows, dry runs); `None` for a snapshot.
    pub writer: Option<Arc<dyn Cluster>>,
    pub default_namespace: String,
}

/// Opens the source the flags name: the mock world, a snapshot, or the live cluster.
pub async fn open_source(global: &GlobalArgs, resolved: &Resolved) -> CliResult<Source> {
    let kubernetes = &resolved.settings.kubernetes;
    if global.mock {
        // The demo world as `aegis incident apply|rollback` left it; this command's own writes
        // (shadows) are not kept.
        let source = Arc::new(
            match crate::store::mock_journal(&resolved.settings) {
                Some(path) => MockSource::demo_journaled(&path, false),
                None => MockSource::demo(),
            }
            .map_err(mock_error)?,
        );
        return Ok(Source {
            reader: source.clone(),
            writer: Some(source),
            default_namespace: "default".to_owned(),
        });
    }
    if !global.snapshot.is_empty() {
        return Ok(Source {
            reader: Arc::new(SnapshotSource::new(global.snapshot.clone())),
            writer: None,
            default_namespace: "default".to_owned(),
        });
    }
    let source = Arc::new(connect(resolved, kubernetes.context.clone()).await?);
    let default_namespace = source.default_namespace().to_owned();
    Ok(Source {
        reader: source.clone(),
        writer: Some(source),
        default_namespace,
    })
}

/// A mock world that cannot be built or replayed.
pub fn mock_error(error: aegis_cluster::Error) -> CliError {
    CliError::failure(error).hint(
        "the mock world's journal is kept in the state directory (agent.state_dir) as mock-world.json; delete it to start the demo world afresh",
    )
}

/// Connects to the cluster of a kubeconfig context (the current one when `None`).
pub async fn connect(resolved: &Resolved, context: Option<String>) -> CliResult<LiveSource> {
    connect_with(&resolved.settings.kubernetes, context).await
}

/// [`connect`] with the `kubernetes` settings given.
pub async fn connect_with(
    kubernetes: &aegis_core::settings::KubernetesSettings,
    context: Option<String>,
) -> CliResult<LiveSource> {
    let options = LiveOptions {
        kubeconfig: kubernetes.kubeconfig.clone(),
        context,
        connect_timeout: Duration::from_secs(kubernetes.connect_timeout_secs),
        read_timeout: Duration::from_secs(kubernetes.read_timeout_secs),
        log_tail_lines: kubernetes.log_tail_lines,
    };
    LiveSource::connect(&options).await.map_err(|e| {
        let hint = match e {
            aegis_cluster::Error::Kubeconfig(_) => "point --kubeconfig or KUBECONFIG at a valid kubeconfig, or try the demo with --mock",
            _ => "check that the cluster is up and `kubectl cluster-info` works with the same context, or use --snapshot DIR / --mock",
        };
        CliError::failure(e).hint(hint)
    })
}

fn parse_filter(filter: &[String]) -> CliResult<Option<Vec<Analyzer>>> {
    if filter.is_empty() {
        return Ok(None);
    }
    let mut analyzers = Vec::new();
    for name in filter {
        let analyzer = Analyzer::parse(name).ok_or_else(|| {
            CliError::usage(format!("--filter: `{name}` is not an analyzer")).hint(format!(
                "analyzers (K8sGPT's names; kubectl's names of their kinds work too): {}",
                Analyzer::ALL
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        analyzers.push(analyzer);
    }
    Ok(Some(analyzers))
}

/// K8sGPT's findings from `k8sgpt analyze -o json` output in `path` (`-`: stdin); a result
/// AEGIS cannot read as a finding is said on stderr, not dropped in silence.
fn k8sgpt_findings(path: &std::path::Path) -> CliResult<Vec<aegis_k8sgpt::Detection>> {
    let shown = path.display();
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            CliError::failure(format!("cannot read K8sGPT's report from stdin: {e}"))
        })?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read --k8sgpt {shown}: {e}")))?
    };
    let report = aegis_k8sgpt::result::Report::parse(&text).map_err(|e| {
        CliError::usage(format!("--k8sgpt {shown} is not K8sGPT's JSON report: {e}"))
            .hint("write it with `k8sgpt analyze -o json > FILE` (no --explain needed)")
    })?;
    let findings = report.findings();
    for (result, why) in &findings.skipped {
        warn(format!("K8sGPT's result for {result} is not used: {why}"));
    }
    for error in report.errors.iter().flatten() {
        warn(format!("K8sGPT reported an analyzer error: {error}"));
    }
    Ok(findings.detections)
}

pub async fn run(
    global: &GlobalArgs,
    args: &AnalyzeArgs,
    resolved: &Resolved,
    style: Style,
) -> CliResult<()> {
    let filter = parse_filter(&args.filter)?;
    // Read before the cluster is: a bad file costs no API request.
    let external = match &args.k8sgpt {
        Some(path) => k8sgpt_findings(path)?,
        None => Vec::new(),
    };
    let selector = args
        .selector
        .as_deref()
        .map(str::parse::<LabelSelector>)
        .transpose()
        .map_err(|e| {
            CliError::usage(e)
                .hint("selectors look like app=web,tier!=db or 'env in (prod,staging)'")
        })?;
    let source = open_source(global, resolved).await?;
    let namespace = resolved
        .settings
        .kubernetes
        .namespace
        .clone()
        .unwrap_or_else(|| source.default_namespace.clone());
    let target = args.target.as_ref().map(|t| {
        ResourceRef::new(
            t.kind,
            t.kind.is_namespaced().then_some(namespace.as_str()),
            &t.name,
        )
    });
    // A namespaced target, or --all with a namespace given, reads one namespace; a cluster-scoped
    // target (a node) or --all without one reads everything.
    let one_namespace = match &target {
        Some(target) => target.kind.is_namespaced(),
        None => resolved.settings.kubernetes.namespace.is_some(),
    };
    let scope = if one_namespace {
        Scope::namespace(&namespace)
    } else {
        Scope::all()
    };
    let started = std::time::Instant::now();
    let loaded = source.reader.load(&scope).await.map_err(|e| {
        let hint = match e {
            aegis_cluster::Error::SnapshotUnreadable { .. } | aegis_cluster::Error::SnapshotEmpty { .. } => {
                Some("a snapshot is a directory (or file) of `kubectl get … -A -o yaml` output, with logs under logs/<namespace>/<pod>/<container>.log")
            }
            aegis_cluster::Error::Unreachable { .. } => Some("check that the cluster is up, or use --snapshot DIR / --mock"),
            _ => None,
        };
        let error = CliError::failure(e);
        match hint {
            Some(hint) => error.hint(hint),
            None => error,
        }
    })?;
    for warning in &loaded.warnings {
        warn(warning);
    }
    tracing::info!(
        objects = loaded.state.object_count(),
        logs = loaded.state.logs.len(),
        elapsed_ms = started.elapsed().as_millis(),
        "state loaded"
    );
    let started = std::time::Instant::now();
    let request = AnalyzeRequest {
        target,
        filter,
        selector,
        scope: None,
        external,
    };
    let not_found = |e: aegis_agent::Error| {
        let hint = if global.mock {
            "`aegis analyze --all --mock` lists what the demo world holds"
        } else {
            "check the name and the namespace (-n NS)"
        };
        CliError::failure(e).hint(hint)
    };
    let agent = Agent::new(&resolved.settings);
    let mut report = match choose_llm(args.llm, &resolved.settings).await? {
        Some(consultant) => {
            let (report, usage) = agent
                .analyze_with_llm(&loaded.state, source.reader.kind(), &request, &consultant)
                .await
                .map_err(not_found)?;
            tracing::info!(
                calls = usage.calls,
                unused = usage.unused,
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                llm_ms = usage.latency_ms,
                "LLM consulted"
            );
            if usage.skipped > 0 {
                eprintln!(
                    "notice: the LLM was consulted on {} of {} incidents (llm.max_incidents); the rules' results stand for the rest",
                    usage.calls,
                    usage.calls + usage.skipped
                );
            }
            if usage.unused > 0 {
                warn(format!(
                    "{} of {} LLM answers were rejected or failed; the rules' results stand for them (see rca.llm)",
                    usage.unused, usage.calls
                ));
            }
            report
        }
        None => agent
            .analyze(&loaded.state, source.reader.kind(), &request)
            .map_err(not_found)?,
    };
    tracing::info!(
        incidents = report.incidents.len(),
        elapsed_ms = started.elapsed().as_millis(),
        "analysis done"
    );
    if !args.no_verify {
        let started = std::time::Instant::now();
        verify(&source, resolved, &loaded.state, &mut report.incidents).await?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis(),
            "shadow verification done"
        );
    }
    let started = std::time::Instant::now();
    match global.output {
        OutputFormat::Table => print(&render::report(&report, style))?,
        format => print_data(&report, format)?,
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis(), "report printed");
    let started = std::time::Instant::now();
    record(resolved, &report);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "incidents recorded"
    );
    // The process ends with this command: handing every object of a large state back to the
    // allocator one by one costs about a tenth of the analysis, and the exit frees it at once.
    std::mem::forget(loaded);
    Ok(())
}

/// The LLM to consult, per `--llm` (else `llm.backend`): none for `rules`; Ollama for
/// `ollama`, which must answer and have the model; for `auto`, Ollama when it answers within the
/// connect timeout and has the model, else none with a one-line notice.
async fn choose_llm(flag: Option<LlmChoice>, settings: &Settings) -> CliResult<Option<Consultant>> {
    let choice = match flag {
        Some(LlmChoice::Auto) => LlmBackendChoice::Auto,
        Some(LlmChoice::Rules) => LlmBackendChoice::Rules,
        Some(LlmChoice::Ollama) => LlmBackendChoice::Ollama,
        None => settings.llm.backend,
    };
    if choice == LlmBackendChoice::Rules {
        return Ok(None);
    }
    let llm = &settings.llm;
    let url = OllamaConfig::resolve_url(llm.ollama_url.as_deref());
    match Consultant::connect(settings).await {
        Ok(consultant) => Ok(Some(consultant)),
        Err(error) => {
            let hint = match &error {
                aegis_llm::LlmError::ModelMissing { model, .. } => format!(
                    "create or pull it (`ollama pull {model}`), or set llm.rca_model / llm.fix_model; `--llm rules` needs no LLM"
                ),
                _ => format!(
                    "start Ollama (`ollama serve`, or `cargo xtask ollama up` in the repository) or point llm.ollama_url / OLLAMA_HOST at it (now {url}); `--llm rules` needs no LLM"
                ),
            };
            if choice == LlmBackendChoice::Ollama {
                return Err(CliError::failure(error).hint(hint));
            }
            eprintln!("notice: {error}; using the rules engine alone");
            Ok(None)
        }
    }
}

/// Records the incidents; a store that cannot be written is a loud warning, not a lost analysis.
fn record(resolved: &Resolved, report: &aegis_core::AnalysisReport) {
    let Some(state_dir) = resolved
        .settings
        .agent
        .state_dir
        .clone()
        .or_else(default_state_dir)
    else {
        warn("no state directory is known (set agent.state_dir); incidents were not recorded");
        return;
    };
    if let Err(error) =
        Store::new(&state_dir).record(&report.incidents, report.source, &crate::store::now())
    {
        warn(format!("incidents were not recorded: {error}"));
        eprintln!("hint: set agent.state_dir (or AEGIS_AGENT__STATE_DIR) to a writable directory");
    }
}

/// Verifies every proposed fix in a shadow: on the source's own cluster (the mock world, or the
/// live cluster), or in `shadow.context` when set. A snapshot cannot run anything: its fixes stay
/// `skipped`, and the reason says so. Ctrl-C deletes the shadows already created.
async fn verify(
    source: &Source,
    resolved: &Resolved,
    state: &aegis_core::ClusterState,
    incidents: &mut [Incident],
) -> CliResult<()> {
    let Some(production) = &source.writer else {
        for incident in incidents.iter_mut().filter(|i| i.fix.is_some()) {
            incident.verification.result = VerificationResult::skipped(
                "a snapshot is read-only: nothing can run there; analyze with --mock or against a cluster to verify fixes in a shadow",
            );
        }
        return Ok(());
    };
    let settings = &resolved.settings.shadow;
    let separate = match (&settings.context, source.reader.kind()) {
        (Some(context), aegis_core::SourceKind::Cluster) => {
            Some(Arc::new(connect(resolved, Some(context.clone())).await?) as Arc<dyn Cluster>)
        }
        _ => None,
    };
    let shadow_cluster: &dyn Cluster = separate.as_deref().unwrap_or(production.as_ref());
    let mut options = aegis_agent::VerifyOptions::from_settings(settings);
    if source.reader.kind() == aegis_core::SourceKind::Mock {
        // The simulator is in this process and instant; one shadow at a time keeps its clock
        // (and so the report) deterministic.
        options.concurrency = 1;
    }
    let tracker = aegis_shadow::Tracker::default();
    let progress = Progress::new();
    let verification = aegis_agent::verify_incidents(
        state,
        incidents,
        production.as_ref(),
        shadow_cluster,
        &options,
        &tracker,
        &progress,
    );
    let outcome = tokio::select! {
        () = verification => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            let left = tracker.clean_up(shadow_cluster).await;
            let mut error = CliError::failure("interrupted: shadow verification stopped and its shadows were deleted");
            if !left.is_empty() {
                let names: Vec<String> = left.iter().map(|(name, why)| format!("{name} ({why})")).collect();
                error = CliError::failure(format!("interrupted: these shadows could not be deleted: {}", names.join(", ")))
                    .hint("they expire by their TTL; `aegis shadow delete --expired` collects them, or delete them by name");
            }
            Err(error)
        }
    };
    outcome?;
    let not_run = incidents
        .iter()
        .filter(|i| {
            i.verification
                .result
                .reason
                .starts_with(aegis_agent::SHADOW_NOT_RUN)
        })
        .count();
    if not_run > 0 {
        warn(format!(
            "{not_run} fix(es) could not be verified because their shadow could not run (see each verification's reason)"
        ));
        eprintln!(
            "hint: shadows need rights to create namespaces and workloads; with read-only credentials use --no-verify, or set shadow.context to a cluster where they may"
        );
    }
    Ok(())
}

/// A spinner per verification on stderr, when it is a terminal; nothing otherwise (the
/// verdicts are in the report).
struct Progress {
    bars: Option<indicatif::MultiProgress>,
    running: std::sync::Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
}

impl Progress {
    fn new() -> Self {
        Self {
            bars: std::io::stderr()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
            running: std::sync::Mutex::default(),
        }
    }
}

impl aegis_agent::VerifyProgress for Progress {
    fn started(&self, incident: &Incident) {
        let Some(bars) = &self.bars else { return };
        let bar = bars.add(indicatif::ProgressBar::new_spinner());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(format!(
            "verifying {} ({}, {}) in a shadow",
            incident.id, incident.workload, incident.rca.category
        ));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut running) = self.running.lock() {
            running.insert(incident.id.clone(), bar);
        }
    }

    fn finished(&self, incident: &Incident, result: &VerificationResult) {
        let bar = self
            .running
            .lock()
            .ok()
            .and_then(|mut running| running.remove(&incident.id));
        if let Some(bar) = bar {
            bar.finish_with_message(format!(
                "{} {}: {}",
                incident.id, incident.workload, result.verdict
            ));
        }
    }
}
