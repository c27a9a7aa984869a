//! `aegis operator run`: AEGIS as a controller in the cluster (SPEC §11).
//!
//! ```text
//! watch caches (pods, workloads, events, nodes, … and K8sGPT Results; managed fields stripped)
//!   ─► the namespaces that changed, gathered for a moment ─► analysis of each such namespace
//!   ─► one Incident per (workload, category): created, or its status moved on; incidents no
//!      longer diagnosed resolve
//! Incident controller (kube-runtime): verify the fix in a shadow; follow the decisions people
//!   write in the spec (approve, reject); delete resolved incidents after their retention
//! Lease: only the leader runs the two above; every replica serves /metrics, /healthz, /readyz
//! ```

pub mod crd;
mod detect;
mod incidents;
pub mod leader;
pub mod metrics;
mod pods;
mod reconcile;
pub mod serve;
pub mod status;
mod watch;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aegis_cluster::live::LiveSource;
use aegis_core::settings::Settings;
use kube::Client;

pub use crate::watch::Caches;

/// Why the operator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Incident resource (incidents.aegis.io) is not installed in the cluster")]
    CrdMissing,
    #[error("the Kubernetes API refused a request: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot serve on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the leader's lease was lost: {0}")]
    LeaseLost(String),
    #[error("{0}")]
    Contention(String),
    #[error("analysis failed: {0}")]
    Analysis(String),
    #[error("invalid operator setting: {0}")]
    Settings(String),
    #[error("llm.backend is ollama, but {0}")]
    Llm(aegis_llm::LlmError),
    #[error("cannot encode {what}: {reason}")]
    Encode { what: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How `aegis operator run` runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// Whether to take part in leader election (several replicas); without it this process
    /// acts alone.
    pub leader_elect: bool,
    /// The namespace the operator runs in: its Lease, and the Incidents of cluster-scoped
    /// workloads (Nodes), live here.
    pub namespace: String,
    /// Who this replica is in the Lease (the pod's name in the cluster).
    pub identity: String,
}

/// Everything the operator's tasks share.
pub(crate) struct Context {
    pub client: Client,
    pub live: LiveSource,
    pub settings: Settings,
    pub options: RunOptions,
    pub caches: Caches,
    pub agent: aegis_agent::Agent,
    pub tracker: aegis_shadow::Tracker,
    pub recorder: kube::runtime::events::Recorder,
    /// Incidents whose shadow verification runs in this process.
    pub verifying: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// One permit per shadow this process may run at once (`shadow.max_concurrent`).
    pub shadow_slots: tokio::sync::Semaphore,
    /// `operator.namespace_selector`, parsed once.
    pub namespace_selector: Option<aegis_agent::LabelSelector>,
    /// The LLM asked for a second opinion on each new diagnosis (`llm.backend`), if any.
    pub consultant: Option<aegis_llm::Consultant>,
}

impl Context {
    /// The namespace an incident of `workload` lives in.
    pub fn namespace_of(&self, workload: &aegis_core::ResourceRef) -> String {
        workload
            .namespace
            .clone()
            .unwrap_or_else(|| self.options.namespace.clone())
    }
}

/// The field manager and event reporter of the operator.
pub const MANAGER: &str = "aegis-operator";

/// Runs the operator until a shutdown signal (SIGTERM, Ctrl-C) or a lost lease: serves
/// metrics and probes at once, fills the watch caches, then — as the leader, or alone —
/// detects, records and verifies incidents.
pub async fn run(live: LiveSource, settings: Settings, options: RunOptions) -> Result<()> {
    let namespace_selector = validate(&settings)?;
    let shadow_slots = usize::try_from(settings.shadow.max_concurrent)
        .unwrap_or(1)
        .max(1);
    let handle = metrics::install();
    let client = live.client().clone();
    crd::require_installed(&client).await?;
    let consultant = consultant(&settings).await?;
    let health = serve::Health::default();
    let server = serve::spawn(options.metrics_addr, handle.clone(), health.clone()).await?;
    let caches = Caches::start(&client).await;
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: MANAGER.to_owned(),
            instance: Some(options.identity.clone()),
        },
    );
    let context = Arc::new(Context {
        agent: aegis_agent::Agent::new(&settings),
        client: client.clone(),
        live,
        settings,
        options,
        caches,
        tracker: aegis_shadow::Tracker::default(),
        recorder,
        verifying: std::sync::Mutex::default(),
        shadow_slots: tokio::sync::Semaphore::new(shadow_slots),
        namespace_selector,
        consultant,
    });
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    tokio::select! {
        () = context.caches.ready() => {}
        () = &mut shutdown => return Ok(()),
    }
    health.set_ready(true);
    tracing::info!("watch caches filled");

    let lease = if context.options.leader_elect {
        let lease = leader::Lease::new(
            client.clone(),
            &context.options.namespace,
            &context.options.identity,
            leader::Timing::from_settings(&context.settings.operator),
        );
        tokio::select! {
            acquired = lease.acquire() => acquired?,
            () = &mut shutdown => return Ok(()),
        }
        Some(lease)
    } else {
        None
    };
    health.set_leader(true);
    tracing::info!(identity = %context.options.identity, "acting (leader)");

    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                handle.run_upkeep();
            }
        })
    };
    let outcome = tokio::select! {
        outcome = detect::run(context.clone()) => outcome,
        outcome = reconcile::run(context.clone()) => outcome,
        outcome = collect_shadows(context.clone()) => outcome,
        outcome = async {
            match &lease {
                Some(lease) => lease.hold().await,
                None => std::future::pending().await,
            }
        } => outcome,
        () = &mut shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    upkeep.abort();
    health.set_leader(false);
    // Shadows this process created and did not finish are deleted; the rest expire by TTL.
    let left = context.tracker.clean_up(&context.live).await;
    for (name, why) in left {
        tracing::warn!(shadow = %name, %why, "shadow left to its TTL");
    }
    if let Some(lease) = &lease {
        lease.release().await;
    }
    server.abort();
    outcome
}

/// Checks the operator's settings; returns the namespace selector, parsed.
fn validate(settings: &Settings) -> Result<Option<aegis_agent::LabelSelector>> {
    let operator = &settings.operator;
    if operator.renew_deadline_seconds >= operator.lease_duration_seconds {
        return Err(Error::Settings(format!(
            "operator.renew_deadline_seconds ({}) must be shorter than operator.lease_duration_seconds ({}), or two replicas could act at once",
            operator.renew_deadline_seconds, operator.lease_duration_seconds
        )));
    }
    if operator.retry_period_seconds == 0
        || operator.retry_period_seconds >= operator.renew_deadline_seconds
    {
        return Err(Error::Settings(format!(
            "operator.retry_period_seconds ({}) must be at least 1 and shorter than operator.renew_deadline_seconds ({})",
            operator.retry_period_seconds, operator.renew_deadline_seconds
        )));
    }
    operator
        .namespace_selector
        .as_deref()
        .map(|selector| {
            selector
                .parse::<aegis_agent::LabelSelector>()
                .map_err(|e| Error::Settings(format!("operator.namespace_selector: {e}")))
        })
        .transpose()
}

/// The LLM per `llm.backend`: none for `rules`; for `ollama`, Ollama with its models or an
/// error; for `auto`, Ollama when it answers with its models, else none, said in the log.
async fn consultant(settings: &Settings) -> Result<Option<aegis_llm::Consultant>> {
    use aegis_core::settings::LlmBackendChoice;
    let choice = settings.llm.backend;
    if choice == LlmBackendChoice::Rules {
        return Ok(None);
    }
    match aegis_llm::Consultant::connect(settings).await {
        Ok(consultant) => {
            tracing::info!(model = %settings.llm.rca_model, "the LLM gives a second opinion on each new diagnosis");
            Ok(Some(consultant))
        }
        Err(error) if choice == LlmBackendChoice::Ollama => Err(Error::Llm(error)),
        Err(error) => {
            tracing::warn!(%error, "no LLM: diagnosing with the rules alone");
            Ok(None)
        }
    }
}

/// Expired shadows are deleted every `operator.shadow_gc_interval_seconds`, even those a
/// crashed process left.
async fn collect_shadows(context: Arc<Context>) -> Result<()> {
    let every = Duration::from_secs(context.settings.operator.shadow_gc_interval_seconds.max(1));
    loop {
        match aegis_shadow::collect_garbage(&context.live).await {
            Ok(collection) => {
                for name in collection.deleted {
                    ::metrics::counter!(metrics::SHADOWS_COLLECTED).increment(1);
                    tracing::info!(shadow = %name, "expired shadow deleted");
                }
                ::metrics::gauge!(metrics::SHADOW_NAMESPACES).set(collection.left as f64);
                ::metrics::gauge!(metrics::SHADOW_NAMESPACES_EXPIRED)
                    .set(collection.expired_left as f64);
                if collection.expired_left > 0 {
                    tracing::warn!(
                        count = collection.expired_left,
                        "shadows past their TTL are still being deleted"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "expired shadows could not be collected"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "SIGTERM cannot be caught; Ctrl-C still stops");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
