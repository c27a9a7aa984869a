//! The operator's metrics (Prometheus names, SPEC §11a), registered with their help texts.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const INCIDENTS: &str = "aegis_incidents";
pub const RECONCILE_SECONDS: &str = "aegis_reconcile_duration_seconds";
pub const RECONCILE_ERRORS: &str = "aegis_reconcile_errors_total";
pub const ANALYSIS_SECONDS: &str = "aegis_analysis_duration_seconds";
pub const SHADOW_VERDICTS: &str = "aegis_shadow_verdicts_total";
pub const SHADOW_SECONDS: &str = "aegis_shadow_duration_seconds";
pub const SHADOWS_COLLECTED: &str = "aegis_shadows_collected_total";
pub const CHANGES: &str = "aegis_production_changes_total";
pub const ROLLBACKS: &str = "aegis_production_rollbacks_total";
pub const WATCH_ERRORS: &str = "aegis_watch_errors_total";
pub const LEADER: &str = "aegis_leader";
/// What became of the LLM's answers on the operator's diagnoses (the calls, tokens and latency
/// themselves are `aegis_llm_*`, recorded by the LLM client).
pub const LLM_OPINIONS: &str = "aegis_llm_opinions_total";
pub const CACHED_OBJECTS: &str = "aegis_cached_objects";

/// Seconds buckets for everything timed, from a fast reconcile to a slow shadow.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];

/// Installs the Prometheus recorder (once per process) and describes every metric.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &BUCKETS)
                .map_or_else(
                    |_| PrometheusBuilder::new().build_recorder(),
                    PrometheusBuilder::build_recorder,
                );
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only what this one records");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(INCIDENTS, "Incidents by phase and category.");
    describe_histogram!(RECONCILE_SECONDS, "Time to reconcile one Incident.");
    describe_counter!(
        RECONCILE_ERRORS,
        "Reconciles that failed, by what was being done."
    );
    describe_histogram!(
        ANALYSIS_SECONDS,
        "Time to analyze one namespace after a change."
    );
    describe_counter!(
        SHADOW_VERDICTS,
        "Shadow verifications by verdict and category."
    );
    describe_histogram!(
        SHADOW_SECONDS,
        "Time from the start of a shadow verification to its verdict."
    );
    describe_counter!(SHADOWS_COLLECTED, "Expired shadow namespaces deleted.");
    describe_counter!(CHANGES, "Production changes by outcome.");
    describe_counter!(ROLLBACKS, "Production changes rolled back.");
    describe_counter!(
        WATCH_ERRORS,
        "Watch stream errors by kind (each is retried with backoff)."
    );
    describe_gauge!(LEADER, "1 while this replica leads (acts), 0 otherwise.");
    describe_gauge!(CACHED_OBJECTS, "Objects in the watch caches, by kind.");
    describe_counter!("aegis_llm_calls_total", "LLM calls by model.");
    describe_counter!(
        "aegis_llm_failures_total",
        "LLM calls that failed, by model and kind."
    );
    describe_counter!(
        "aegis_llm_prompt_tokens_total",
        "Prompt tokens sent to the LLM, by model."
    );
    describe_counter!(
        "aegis_llm_completion_tokens_total",
        "Completion tokens received from the LLM, by model."
    );
    describe_histogram!("aegis_llm_latency_seconds", "LLM call latency, by model.");
    describe_counter!(
        LLM_OPINIONS,
        "The LLM's second opinions on new diagnoses, by verdict (agreed, contradicted, adopted, rejected, failed)."
    );
}
