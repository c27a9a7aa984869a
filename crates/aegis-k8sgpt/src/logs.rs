//! The Log analyzer (runs only when asked for, as in K8sGPT): error lines in the container logs
//! the source holds. A line counts when it is logged at error level or worse, or is a panic,
//! an uncaught exception or a traceback — not when it merely contains "error" or "fail"
//! ("0 errors", "failover", "failed=0" are not failures). One finding per container log.

use std::sync::LazyLock;

use aegis_core::state::StateIndex;
use aegis_core::{Evidence, EvidenceSource, ResourceKind, ResourceRef};
use regex::Regex;

use crate::{Analyzer, Detection, detection};

/// Lines that report an error: level fields and prefixes of the common loggers, panics,
/// exceptions and tracebacks.
static ERROR_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        (?i:level[=:]\s*"?(error|err|fatal|critical|crit|panic|emerg|alert)\b)
        | "(?i:level|severity)"\s*:\s*"(?i:error|fatal|critical|panic|emergency|alert)"
        | (^|[\s\[|])(ERROR|ERR|FATAL|CRITICAL|CRIT|PANIC|SEVERE|EMERGENCY)([\s\]|:]|$)
        | ^panic:\s
        | ^Traceback\s\(most\ recent\ call\ last\)
        | ^(Exception|Error)\ in\ thread\ 
        | ^\s*(Unhandled|Uncaught)\ \w*\s*(exception|rejection|error)
        | ^[\w.$]+(Exception|Error):\s
        "#,
    )
    .unwrap_or_else(|e| panic!("the built-in error-line pattern is valid: {e}"))
});

/// Whether a log line reports an error.
pub fn is_error_line(line: &str) -> bool {
    ERROR_LINE.is_match(line)
}

pub fn logs(index: &StateIndex<'_>, out: &mut Vec<Detection>) {
    let state = index.state();
    for (key, text) in &state.logs {
        let Some(line) = text.lines().rev().find(|l| is_error_line(l)) else {
            continue;
        };
        let resource = ResourceRef::namespaced(ResourceKind::Pod, &key.namespace, &key.pod);
        let workload = state
            .meta(ResourceKind::Pod, &key.namespace, &key.pod)
            .map_or_else(
                || resource.clone(),
                |meta| index.workload_of(ResourceKind::Pod, meta),
            );
        let which = if key.previous { "previous " } else { "" };
        let mut found = detection(
            index,
            Analyzer::Log,
            "ErrorLogged",
            format!(
                "the {which}log of container {} of pod {} reports an error: {}",
                key.container,
                key.pod,
                line.trim()
            ),
            resource,
            workload,
            vec![Evidence::new(
                EvidenceSource::Log,
                format!(
                    "log/{}/{}/{}{}",
                    key.namespace,
                    key.pod,
                    key.container,
                    if key.previous { " (previous)" } else { "" }
                ),
                line.trim(),
            )],
        );
        found.container = Some(key.container.clone());
        out.push(found);
    }
}
