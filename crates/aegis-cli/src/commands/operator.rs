//! `aegis operator run|status|crd`.

use aegis_llm::ollama::{OllamaBackend, OllamaConfig};
use aegis_operator::status::{ClusterStatus, Gpus};
use serde::Serialize;

use super::analyze::connect_with;
use super::print;
use crate::args::{GlobalArgs, OperatorCommand, OutputFormat};
use crate::config::Resolved;
use crate::error::{CliError, CliResult};
use crate::render;

/// The read timeout of the operator's client: longer than a watch is held open.
const WATCH_READ_TIMEOUT_SECS: u64 = 330;

pub fn run(global: &GlobalArgs, command: &OperatorCommand, resolved: &Resolved) -> CliResult<()> {
    if let OperatorCommand::Crd = command {
        return crd(global.output);
    }
    if global.mock || !global.snapshot.is_empty() {
        return Err(CliError::usage(
            "the operator works on a live cluster, not --mock or --snapshot",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        // Watches are held open for up to 290 s by the server (kube's timeoutSeconds); a
        // shorter read timeout would cut and re-open every watch, costing requests when idle.
        let mut kubernetes = resolved.settings.kubernetes.clone();
        kubernetes.read_timeout_secs = kubernetes.read_timeout_secs.max(WATCH_READ_TIMEOUT_SECS);
        let live = connect_with(&kubernetes, kubernetes.context.clone()).await?;
        let namespace = global
            .namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| live.default_namespace().to_owned());
        match command {
            OperatorCommand::Run {
                metrics_addr,
                leader_elect,
                identity,
            } => {
                let options = aegis_operator::RunOptions {
                    metrics_addr: *metrics_addr,
                    leader_elect: *leader_elect,
                    namespace,
                    identity: identity.clone().unwrap_or_else(default_identity),
                };
                // Boxed: the operator's future holds its whole state for the process's life.
                Box::pin(aegis_operator::run(
                    live,
                    resolved.settings.clone(),
                    options,
                ))
                .await
                .map_err(run_error)
            }
            OperatorCommand::Status => status(&live, &namespace, resolved, global.output).await,
            OperatorCommand::Crd => Ok(()),
        }
    })
}

fn crd(format: OutputFormat) -> CliResult<()> {
    let text = match format {
        OutputFormat::Table | OutputFormat::Yaml => {
            aegis_operator::crd::yaml().map_err(CliError::failure)?
        }
        OutputFormat::Json => render::data(&aegis_core::crd::incident_crd(), format)?,
    };
    print(&text)
}

/// `$POD_NAME` in the cluster; elsewhere the host name and process id.
fn default_identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()) {
        return pod;
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "aegis".to_owned());
    format!("{host}-{}", std::process::id())
}

fn run_error(error: aegis_operator::Error) -> CliError {
    let hint = match &error {
        aegis_operator::Error::CrdMissing => {
            Some("install it first: `aegis operator crd | kubectl apply -f -` (or the Helm chart)")
        }
        aegis_operator::Error::Serve { .. } => {
            Some("choose another address with --metrics-addr (127.0.0.1:0 picks a free port)")
        }
        aegis_operator::Error::LeaseLost(_) => Some(
            "another replica leads now; this one stopped so two never act at once (its Deployment restarts it as a standby)",
        ),
        aegis_operator::Error::Settings(_) => {
            Some("fix the [operator] section: `aegis config show` lists the values in effect")
        }
        _ => None,
    };
    let error = CliError::failure(error);
    match hint {
        Some(hint) => error.hint(hint),
        None => error,
    }
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    cluster: ClusterStatus,
    ollama: Ollama,
    gpu: Gpus,
}

#[derive(Debug, Serialize)]
struct Ollama {
    url: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    models: Vec<String>,
    /// The models the configuration asks for that Ollama does not have.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn ollama(resolved: &Resolved) -> Ollama {
    let llm = &resolved.settings.llm;
    let config = OllamaConfig {
        max_retries: 0,
        ..OllamaConfig::from_settings(llm, &llm.rca_model)
    };
    let url = config.url.clone();
    let listed = match OllamaBackend::new(config) {
        Ok(backend) => backend.models().await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    match listed {
        Ok(models) => {
            let has = |wanted: &str| {
                models.iter().any(|m| {
                    m == wanted || (!wanted.contains(':') && *m == format!("{wanted}:latest"))
                })
            };
            let mut missing: Vec<String> = [&llm.rca_model, &llm.fix_model]
                .into_iter()
                .filter(|m| !has(m))
                .cloned()
                .collect();
            missing.dedup();
            Ollama {
                url,
                reachable: true,
                models,
                missing,
                error: None,
            }
        }
        Err(error) => Ollama {
            url,
            reachable: false,
            models: Vec::new(),
            missing: Vec::new(),
            error: Some(error),
        },
    }
}

async fn status(
    live: &aegis_cluster::live::LiveSource,
    namespace: &str,
    resolved: &Resolved,
    format: OutputFormat,
) -> CliResult<()> {
    let cluster = aegis_operator::status::cluster(live.client(), namespace)
        .await
        .map_err(|e| {
            CliError::failure(e).hint("check that `kubectl get crd` works with the same context")
        })?;
    let report = Report {
        cluster,
        ollama: ollama(resolved).await,
        gpu: aegis_operator::status::gpus(),
    };
    let text = match format {
        OutputFormat::Table => status_text(&report, namespace),
        format => render::data(&report, format)?,
    };
    print(&text)
}

fn yes(value: bool) -> &'static str {
    if value { "installed" } else { "not installed" }
}

fn status_text(report: &Report, namespace: &str) -> String {
    let cluster = &report.cluster;
    let mut out = String::new();
    out.push_str(&format!(
        "Incident CRD (incidents.aegis.io):  {}\n",
        yes(cluster.crd_installed)
    ));
    out.push_str(&format!(
        "K8sGPT Result CRD:                  {}\n",
        yes(cluster.k8sgpt_crd_installed)
    ));
    match &cluster.leader {
        Some(leader) => out.push_str(&format!(
            "Leader (Lease {namespace}/{}):  {} (renewed {}, {} transitions)\n",
            aegis_operator::leader::NAME,
            leader.identity,
            leader.renewed.as_deref().unwrap_or("never"),
            leader.transitions
        )),
        None => out.push_str(&format!(
            "Leader (Lease {namespace}/{}):  none — no operator holds the lease\n",
            aegis_operator::leader::NAME
        )),
    }
    let ollama = &report.ollama;
    if ollama.reachable {
        out.push_str(&format!(
            "Ollama ({}):  reachable; models: {}\n",
            ollama.url,
            if ollama.models.is_empty() {
                "none".to_owned()
            } else {
                ollama.models.join(", ")
            }
        ));
        if !ollama.missing.is_empty() {
            out.push_str(&format!(
                "  missing configured models: {} (`ollama pull` them)\n",
                ollama.missing.join(", ")
            ));
        }
    } else {
        out.push_str(&format!(
            "Ollama ({}):  unreachable ({}); analysis uses the rules engine\n",
            ollama.url,
            ollama.error.as_deref().unwrap_or("no answer")
        ));
    }
    match &report.gpu {
        Gpus::Found { gpus } if gpus.is_empty() => {
            out.push_str("GPU:  NVIDIA driver present, no GPU\n");
        }
        Gpus::Found { gpus } => {
            for gpu in gpus {
                out.push_str(&format!(
                    "GPU {}:  {}, {} of {} MiB used, {}% busy\n",
                    gpu.index,
                    gpu.name,
                    gpu.memory_used_bytes / (1024 * 1024),
                    gpu.memory_total_bytes / (1024 * 1024),
                    gpu.utilization_percent
                ));
            }
        }
        Gpus::NoDriver { .. } => {
            out.push_str("GPU:  no NVIDIA driver (models run on the CPU)\n");
        }
        Gpus::Error { detail } => out.push_str(&format!("GPU:  NVML failed: {detail}\n")),
    }
    match &cluster.incidents_by_phase {
        Some(counts) => {
            let total: u64 = counts.values().sum();
            let listed: Vec<String> = counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(phase, n)| format!("{phase} {n}"))
                .collect();
            out.push_str(&format!(
                "Incidents:  {total}{}\n",
                if listed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", listed.join(", "))
                }
            ));
        }
        None => out.push_str(
            "Incidents:  unknown — install the CRD: `aegis operator crd | kubectl apply -f -`\n",
        ),
    }
    out
}
