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
pub const TIME_TO_DIAGNOSIS: &str = "aegis_time_to_diagnosis_seconds";
pub const TIME_TO_VERDICT: &str = "aegis_time_to_verdict_seconds";
pub const SHADOW_NAMESPACES: &str = "aegis_shadow_namespaces";
pub const SHADOW_NAMESPACES_EXPIRED: &str = "aegis_shadow_namespaces_expired";

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the operator exports (its own and the LLM client's), with its help text: what
/// `/metrics` describes, and what the chart's alerts and dashboard may name.
pub const ALL: [(&str, Kind, &str); 22] = [
    (INCIDENTS, Kind::Gauge, "Incidents by phase and category."),
    (
        RECONCILE_SECONDS,
        Kind::Histogram,
        "Time to reconcile one Incident.",
    ),
    (
        RECONCILE_ERRORS,
        Kind::Counter,
        "Reconciles that failed, by what was being done.",
    ),
    (
        ANALYSIS_SECONDS,
        Kind::Histogram,
        "Time to analyze one namespace after a change.",
    ),
    (
        TIME_TO_DIAGNOSIS,
        Kind::Histogram,
        "Time from the first cluster change of a pass to a new incident recorded with its diagnosis.",
    ),
    (
        TIME_TO_VERDICT,
        Kind::Histogram,
        "Time from an incident first seen to its shadow's verdict, by verdict.",
    ),
    (
        SHADOW_VERDICTS,
        Kind::Counter,
        "Shadow verifications by verdict and category.",
    ),
    (
        SHADOW_SECONDS,
        Kind::Histogram,
        "Time from the start of a shadow verification to its verdict.",
    ),
    (
        SHADOWS_COLLECTED,
        Kind::Counter,
        "Expired shadow namespaces deleted.",
    ),
    (
        SHADOW_NAMESPACES,
        Kind::Gauge,
        "Shadow namespaces in the cluster at the last collection.",
    ),
    (
        SHADOW_NAMESPACES_EXPIRED,
        Kind::Gauge,
        "Shadow namespaces past their TTL still in the cluster after the last collection (deletion stuck or refused).",
    ),
    (CHANGES, Kind::Counter, "Production changes by outcome."),
    (ROLLBACKS, Kind::Counter, "Production changes rolled back."),
    (
        WATCH_ERRORS,
        Kind::Counter,
        "Watch stream errors by kind (each is retried with backoff).",
    ),
    (
        LEADER,
        Kind::Gauge,
        "1 while this replica leads (acts), 0 otherwise.",
    ),
    (
        CACHED_OBJECTS,
        Kind::Gauge,
        "Objects in the watch caches, by kind.",
    ),
    (
        "aegis_llm_calls_total",
        Kind::Counter,
        "LLM calls by model.",
    ),
    (
        "aegis_llm_failures_total",
        Kind::Counter,
        "LLM calls that failed, by model and kind.",
    ),
    (
        "aegis_llm_prompt_tokens_total",
        Kind::Counter,
        "Prompt tokens sent to the LLM, by model.",
    ),
    (
        "aegis_llm_completion_tokens_total",
        Kind::Counter,
        "Completion tokens received from the LLM, by model.",
    ),
    (
        "aegis_llm_latency_seconds",
        Kind::Histogram,
        "LLM call latency, by model.",
    ),
    (
        LLM_OPINIONS,
        Kind::Counter,
        "The LLM's second opinions on new diagnoses, by verdict (agreed, contradicted, adopted, rejected, failed).",
    ),
];

/// Seconds buckets for everything timed, from a fast reconcile to a slow shadow.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0, 300.0, 900.0,
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
    for (name, kind, help) in ALL {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ALL, Kind};

    /// The chart's files that name metrics: its alerts and its dashboard.
    fn chart_file(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/helm/aegis/files")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every `aegis_…` name in `text`.
    fn names_in(text: &str) -> Vec<&str> {
        let mut names = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("aegis_") {
            let before = rest[..start].chars().next_back();
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            // `aegis_` inside a longer word is not a metric.
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                names.push(&tail[..end]);
            }
            rest = &tail[end..];
        }
        names
    }

    /// The exported metric a series name belongs to (a histogram's `_bucket`, `_sum` and
    /// `_count` series belong to it).
    fn exported(series: &str) -> Option<&'static str> {
        ALL.iter().find_map(|(name, kind, _)| {
            let matches = series == *name
                || (*kind == Kind::Histogram
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| series.strip_suffix(suffix) == Some(*name)));
            matches.then_some(*name)
        })
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for (name, kind, help) in ALL {
            assert!(name.starts_with("aegis_"), "{name}");
            assert!(!help.is_empty(), "{name} has help");
            match kind {
                Kind::Counter => {
                    assert!(name.ends_with("_total"), "a counter ends in _total: {name}");
                }
                Kind::Histogram => {
                    assert!(name.ends_with("_seconds"), "a timing is in seconds: {name}");
                }
                Kind::Gauge => assert!(!name.ends_with("_total"), "a gauge is no total: {name}"),
            }
        }
        let mut names: Vec<&str> = ALL.iter().map(|(name, _, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "each metric once");
    }

    #[test]
    fn every_alert_and_dashboard_query_names_a_metric_the_operator_exports() {
        for file in ["aegis.rules.yaml", "aegis-dashboard.json"] {
            let text = chart_file(file);
            let named = names_in(&text);
            assert!(named.len() >= 8, "{file} names metrics: {named:?}");
            for series in named {
                assert!(
                    exported(series).is_some(),
                    "{file} names {series}, which the operator does not export"
                );
            }
        }
        // And the dashboard shows every metric there is.
        let dashboard = chart_file("aegis-dashboard.json");
        let shown: Vec<&str> = names_in(&dashboard)
            .into_iter()
            .filter_map(exported)
            .collect();
        for (name, _, _) in ALL {
            assert!(shown.contains(&name), "the dashboard does not show {name}");
        }
    }

    #[test]
    fn the_scanner_finds_series_and_skips_longer_words() {
        assert_eq!(
            names_in("sum(rate(aegis_llm_calls_total[5m])) / x_aegis_no{a=\"aegis_\"}"),
            ["aegis_llm_calls_total", "aegis_"]
        );
        assert_eq!(
            exported("aegis_shadow_duration_seconds_bucket"),
            Some(SHADOW)
        );
        assert_eq!(exported("aegis_leader_bucket"), None);
    }

    const SHADOW: &str = super::SHADOW_SECONDS;
}
