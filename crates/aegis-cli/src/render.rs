//! Rendering for people (tables and panels, colour on terminals only) and for programs
//! (`-o json|yaml`, the same document).

use aegis_core::{AnalysisReport, Fix, Incident, ResourceRef};
use comfy_table::presets::{UTF8_BORDERS_ONLY, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use crate::args::OutputFormat;
use crate::error::{CliError, CliResult};
use crate::store::StoredIncident;

/// Whether to colour, and how wide to lay out.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: u16,
}

impl Style {
    /// Colour only on a terminal, without `--no-color` or `NO_COLOR`.
    pub fn detect(no_color: bool) -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal();
        let color =
            terminal && !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let width = if terminal {
            comfy_table::Table::new()
                .width()
                .unwrap_or(100)
                .clamp(60, 160)
        } else {
            100
        };
        Self { color, width }
    }

    fn cell(self, text: impl std::fmt::Display, color: Color) -> Cell {
        let cell = Cell::new(text);
        if self.color { cell.fg(color) } else { cell }
    }

    fn table(self) -> Table {
        let mut table = Table::new();
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(self.width);
        if !self.color {
            table.force_no_tty();
        }
        table
    }
}

/// Serializes a document for `-o json|yaml`.
pub fn data<T: Serialize>(value: &T, format: OutputFormat) -> CliResult<String> {
    match format {
        OutputFormat::Yaml => serde_yaml::to_string(value).map_err(CliError::failure),
        _ => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(CliError::failure),
    }
}

fn workload_text(reference: &ResourceRef) -> String {
    reference.to_string()
}

fn fix_text(fix: Option<&Fix>) -> String {
    match fix {
        Some(fix) if fix.policy.allowed => format!("{:?} risk", fix.risk).to_lowercase(),
        Some(_) => "denied by policy".to_owned(),
        None => "escalated".to_owned(),
    }
}

/// The human form of an analysis.
pub fn report(report: &AnalysisReport, style: Style) -> String {
    let count = report.incidents.len();
    let mut out = format!(
        "AEGIS analysis · source {} · {count} incident{}\n",
        report.source.as_str(),
        if count == 1 { "" } else { "s" }
    );
    if count == 0 {
        out.push_str("No problems found.\n");
        return out;
    }
    let mut table = style.table();
    table
        .load_style(UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_header(["ID", "CATEGORY", "WORKLOAD", "CONFIDENCE", "FIX"]);
    for incident in &report.incidents {
        let fix_color = match &incident.fix {
            Some(f) if f.policy.allowed => Color::Green,
            Some(_) => Color::Red,
            None => Color::Yellow,
        };
        table.add_row(vec![
            style.cell(&incident.id, Color::Cyan),
            style.cell(incident.rca.category, Color::Magenta),
            Cell::new(workload_text(&incident.workload)),
            Cell::new(format!("{:.2}", incident.rca.confidence)),
            style.cell(fix_text(incident.fix.as_ref()), fix_color),
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    for incident in &report.incidents {
        out.push('\n');
        out.push_str(&detail(incident, style));
        out.push('\n');
    }
    out
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The `kubectl patch` command that applies a patch.
pub fn kubectl_patch(
    target: &ResourceRef,
    patch_type: aegis_core::PatchType,
    patch: &serde_json::Value,
) -> String {
    let namespace = target
        .namespace
        .as_ref()
        .map(|n| format!(" -n {n}"))
        .unwrap_or_default();
    format!(
        "kubectl patch {} {}{namespace} --type {} -p {}",
        target.kind.as_str().to_ascii_lowercase(),
        target.name,
        patch_type.kubectl_name(),
        shell_quote(&patch.to_string())
    )
}

/// What the LLM said about an incident, and what became of it.
fn llm_text(opinion: &aegis_core::LlmOpinion) -> String {
    let verdict = match opinion.verdict {
        aegis_core::LlmVerdict::Agreed => "agreed with the rules",
        aegis_core::LlmVerdict::Contradicted => "contradicted the rules (the rules win)",
        aegis_core::LlmVerdict::Adopted => "diagnosed what the rules could not",
        aegis_core::LlmVerdict::Rejected => "answer rejected",
        aegis_core::LlmVerdict::Failed => "call failed",
    };
    let mut text = format!("{} {verdict}", opinion.backend);
    if let (Some(category), Some(confidence)) = (opinion.category, opinion.confidence) {
        text.push_str(&format!(": {category} ({confidence:.2})"));
    }
    if let Some(summary) = &opinion.summary {
        text.push_str(&format!("\n{summary}"));
    }
    for reason in &opinion.reasons {
        text.push_str(&format!("\n- {reason}"));
    }
    text.push_str(&format!(
        "\n{} prompt + {} completion tokens, {} ms",
        opinion.prompt_tokens, opinion.completion_tokens, opinion.latency_ms
    ));
    text
}

/// One incident as a panel.
pub fn detail(incident: &Incident, style: Style) -> String {
    let rca = &incident.rca;
    let mut table = style.table();
    table.load_style(UTF8_BORDERS_ONLY.with_rounded_corners());
    table.set_header(vec![
        style.cell(&incident.id, Color::Cyan),
        style.cell(
            format!("{} · {}", rca.category, workload_text(&incident.workload)),
            Color::Magenta,
        ),
    ]);
    table.add_row(vec![Cell::new("Summary"), Cell::new(&rca.summary)]);
    table.add_row(vec![Cell::new("Root cause"), Cell::new(&rca.root_cause)]);
    table.add_row(vec![
        Cell::new("Confidence"),
        Cell::new(format!("{:.2} ({})", rca.confidence, rca.backend)),
    ]);
    let findings: Vec<String> = incident
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.resource, f.message))
        .collect();
    table.add_row(vec![Cell::new("Findings"), Cell::new(findings.join("\n"))]);
    let evidence: Vec<String> = rca
        .evidence
        .iter()
        .map(|e| {
            format!(
                "[{}] {}\n  {}",
                format!("{:?}", e.source).to_lowercase(),
                e.reference,
                e.excerpt
            )
        })
        .collect();
    table.add_row(vec![Cell::new("Evidence"), Cell::new(evidence.join("\n"))]);
    let steps: Vec<String> = rca
        .analysis_steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. {s}", i + 1))
        .collect();
    table.add_row(vec![Cell::new("Analysis"), Cell::new(steps.join("\n"))]);
    if let Some(opinion) = &rca.llm {
        table.add_row(vec![Cell::new("LLM"), Cell::new(llm_text(opinion))]);
    }
    table.add_row(vec![
        Cell::new("Decision"),
        Cell::new(&rca.decision_rationale),
    ]);
    match &incident.fix {
        Some(fix) => {
            let policy = if fix.policy.allowed {
                "policy allowed".to_owned()
            } else {
                let rules: Vec<String> = fix
                    .policy
                    .violations
                    .iter()
                    .map(|v| format!("{} at {}", v.rule, v.path))
                    .collect();
                format!("policy DENIED: {}", rules.join(", "))
            };
            let approval = if fix.requires_approval {
                " · needs approval"
            } else {
                ""
            };
            let text = format!(
                "{}\n{:?} risk · {policy}{approval}\napply: {}\nundo:  {}",
                fix.summary,
                fix.risk,
                kubectl_patch(&fix.target, fix.patch_type, &fix.patch),
                kubectl_patch(&fix.target, fix.patch_type, &fix.inverse_patch)
            );
            let color = if fix.policy.allowed {
                Color::Green
            } else {
                Color::Red
            };
            table.add_row(vec![Cell::new("Fix"), style.cell(text, color)]);
        }
        None => {
            table.add_row(vec![
                Cell::new("Fix"),
                style.cell("none: escalated to a human (see Decision)", Color::Yellow),
            ]);
        }
    }
    let verify = verification_text(&incident.verification);
    table.add_row(vec![Cell::new("Verification"), Cell::new(verify)]);
    table.to_string()
}

/// The verification of an incident for people: the verdict and its reason, what the shadow
/// showed (baseline, candidates, each check's counts), or the plan when nothing ran.
fn verification_text(verification: &aegis_core::Verification) -> String {
    let result = &verification.result;
    let mut text = format!("{}: {}", result.verdict, result.reason);
    if let Some(shadow) = &result.shadow {
        text.push_str(&format!("\nshadow: {shadow}"));
        if let Some(seconds) = result.duration_seconds {
            text.push_str(&format!(" ({seconds:.1} s to the verdict)"));
        }
    }
    if let Some(baseline) = &result.baseline {
        text.push_str(&format!(
            "\nbaseline (unchanged copy): {} [{}]",
            if baseline.reproduced {
                "reproduced the incident"
            } else {
                "did not reproduce the incident"
            },
            baseline.signature.join(", ")
        ));
    }
    if result.candidates.len() > 1 {
        for candidate in &result.candidates {
            text.push_str(&format!(
                "\ncandidate {}: {} ({})",
                candidate.fix_summary, candidate.verdict, candidate.reason
            ));
        }
    }
    for check in &result.checks {
        text.push_str(&format!(
            "\n- {}: {} passed, {} failed",
            check.check, check.passes, check.failures
        ));
    }
    if let Some(evidence) = &result.evidence
        && !evidence.placeholders.is_empty()
    {
        text.push_str(&format!(
            "\nplaceholders: {}",
            evidence.placeholders.join("; ")
        ));
    }
    if result.checks.is_empty()
        && let Some(plan) = &verification.plan
    {
        text.push_str(&format!(
            "\nplan: every {} s, {} passes in a row succeed, more than {} failures fail, {} s timeout",
            plan.interval_seconds, plan.success_threshold, plan.failure_limit, plan.timeout_seconds
        ));
        for check in &plan.checks {
            text.push_str(&format!("\n- {check}"));
        }
    }
    text
}

/// A verification result on its own, for `aegis shadow create --wait`.
pub fn verification(result: &aegis_core::VerificationResult) -> String {
    let mut text = verification_text(&aegis_core::Verification {
        plan: None,
        result: result.clone(),
    });
    text.push('\n');
    text.push_str(&verification_evidence(result));
    text
}

/// The evidence bundle of a verification, for people: the change, each check's timeline, the
/// shadow's events and log lines. Empty when no shadow ran.
pub fn verification_evidence(result: &aegis_core::VerificationResult) -> String {
    let Some(evidence) = &result.evidence else {
        return String::new();
    };
    let mut text = String::new();
    let mut section = |title: &str, lines: &[String]| {
        if !lines.is_empty() {
            text.push_str(&format!("{title}:\n"));
            for line in lines {
                text.push_str(&format!("  {line}\n"));
            }
        }
    };
    section("change made to the candidate", &evidence.template_diff);
    for check in &result.checks {
        section(&format!("check {}", check.check.id()), &check.timeline);
    }
    section("placeholders", &evidence.placeholders);
    section("shadow events", &evidence.events);
    section("shadow logs", &evidence.logs);
    text
}

/// The human form of `aegis shadow list`.
pub fn shadow_list(
    shadows: &[aegis_shadow::ShadowInfo],
    now: k8s_openapi::jiff::Timestamp,
    style: Style,
) -> String {
    if shadows.is_empty() {
        return "No shadows; `aegis shadow create KIND/NAME` makes one.\n".to_owned();
    }
    let mut table = style.table();
    table
        .load_style(UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_header(["NAME", "WORKLOAD", "INCIDENT", "VERDICT", "AGE", "EXPIRES"]);
    let seconds = |from: k8s_openapi::jiff::Timestamp, to: k8s_openapi::jiff::Timestamp| {
        to.duration_since(from).as_secs()
    };
    for shadow in shadows {
        let age = shadow
            .created
            .map_or_else(|| "?".to_owned(), |c| human_seconds(seconds(c, now)));
        let expires = match shadow.expires {
            Some(e) if e <= now => "expired".to_owned(),
            Some(e) => format!("in {}", human_seconds(seconds(now, e))),
            None => "never".to_owned(),
        };
        let verdict = match (shadow.terminating, shadow.verdict) {
            (true, _) => "deleting".to_owned(),
            (false, Some(verdict)) => verdict.to_string(),
            (false, None) => "running".to_owned(),
        };
        table.add_row(vec![
            style.cell(&shadow.name, Color::Cyan),
            Cell::new(&shadow.source_workload),
            Cell::new(shadow.incident.as_deref().unwrap_or("-")),
            Cell::new(verdict),
            Cell::new(age),
            Cell::new(expires),
        ]);
    }
    format!("{table}\n")
}

fn human_seconds(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        _ => format!("{}h{}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// The human form of `aegis incident list`.
pub fn incident_list(incidents: &[StoredIncident], style: Style) -> String {
    if incidents.is_empty() {
        return "No incidents recorded yet; `aegis analyze` records what it finds.\n".to_owned();
    }
    let mut table = style.table();
    table
        .load_style(UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_header([
            "ID",
            "PHASE",
            "CATEGORY",
            "WORKLOAD",
            "FIX",
            "SOURCE",
            "LAST SEEN",
            "SEEN",
        ]);
    for stored in incidents {
        let incident = &stored.incident;
        table.add_row(vec![
            style.cell(&incident.id, Color::Cyan),
            Cell::new(stored.lifecycle.phase),
            style.cell(incident.rca.category, Color::Magenta),
            Cell::new(workload_text(&incident.workload)),
            Cell::new(fix_text(incident.fix.as_ref())),
            Cell::new(stored.source.as_str()),
            Cell::new(&stored.last_seen),
            Cell::new(stored.times_seen),
        ]);
    }
    table.to_string() + "\n"
}

/// The human form of `aegis config show`.
pub fn config_entries(entries: &[crate::config::Entry], style: Style) -> String {
    let mut table = style.table();
    table
        .load_style(UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_header(["KEY", "VALUE", "SOURCE"]);
    for entry in entries {
        let value = match &entry.value {
            serde_json::Value::Null => "(unset)".to_owned(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let color = if entry.source == "built-in default" {
            Color::DarkGrey
        } else {
            Color::Green
        };
        table.add_row(vec![
            Cell::new(&entry.key),
            Cell::new(value),
            style.cell(&entry.source, color),
        ]);
    }
    table.to_string() + "\n"
}
