//! The answer asked of the model, its JSON schema, and its validation.
//!
//! An answer is untrusted input. It is accepted only when it is one JSON object and nothing
//! else, matches the schema, names a taxonomy category, cites only evidence that was sent, and
//! — when it drafts a fix — the patch carries no masked secret and passes the fix policy on the
//! workload. Any failure rejects the whole answer, with every reason found.

use aegis_core::policy::{self, PolicyDecision};
use aegis_core::{Category, PatchType, ResourceRef};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::redact::has_mask;

/// A fix drafted by the model: a strategic-merge patch on the workload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftFix {
    pub summary: String,
    pub patch: Value,
}

/// The model's answer as parsed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub category: String,
    pub summary: String,
    pub root_cause: String,
    pub confidence: f64,
    pub evidence: Vec<String>,
    #[serde(default)]
    pub fix: Option<DraftFix>,
}

/// An answer that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidAnswer {
    pub category: Category,
    pub summary: String,
    pub root_cause: String,
    pub confidence: f64,
    /// Cited evidence ids, in the answer's order, without repeats.
    pub evidence: Vec<String>,
    pub fix: Option<DraftFix>,
    pub policy: Option<PolicyDecision>,
}

/// The JSON schema sent as `format`: inline, no `$ref`. The evidence ids are the ones sent, so
/// a constrained decoder cannot invent one. Without `allow_fix` the `fix` must be null (the
/// rules already have the fix; the model only diagnoses and explains).
pub fn schema(evidence_ids: &[String], allow_fix: bool) -> Value {
    let categories: Vec<&str> = Category::ALL.iter().map(|c| c.id()).collect();
    let evidence_item = if evidence_ids.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "enum": evidence_ids})
    };
    json!({
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": categories},
            "summary": {"type": "string"},
            "root_cause": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "evidence": {"type": "array", "items": evidence_item},
            "fix": if allow_fix { json!({
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {
                            "summary": {"type": "string"},
                            "patch": {"type": "object"}
                        },
                        "required": ["summary", "patch"],
                        "additionalProperties": false
                    }
                ]
            })} else { json!({"type": "null"}) }
        },
        "required": ["category", "summary", "root_cause", "confidence", "evidence", "fix"],
        "additionalProperties": false
    })
}

/// Checks a drafted fix: a JSON object, no masked value, allowed by the fix policy on the
/// workload. Reasons go to `reasons`; the policy's decision is returned when there was a patch
/// to check.
fn check_fix(
    fix: &DraftFix,
    workload: &ResourceRef,
    original: Option<&Value>,
    reasons: &mut Vec<String>,
) -> Option<PolicyDecision> {
    if !fix.patch.is_object() {
        reasons.push("its patch is not a JSON object".to_owned());
        return None;
    }
    if has_mask(&fix.patch.to_string()) {
        reasons.push(
            "its patch carries a masked secret value; masks are never turned back into values"
                .to_owned(),
        );
    }
    let checked = policy::check(
        workload.kind,
        PatchType::StrategicMerge,
        &fix.patch,
        original,
    );
    if !checked.allowed {
        let violations: Vec<String> = checked
            .violations
            .iter()
            .map(|v| format!("{} at `{}`", v.rule, v.path))
            .collect();
        reasons.push(format!(
            "the fix policy denies its patch: {}",
            violations.join("; ")
        ));
    }
    Some(checked)
}

/// The schema of the fix role's answer: `{"fix": null | {"summary", "patch"}}`.
pub fn fix_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"fix": schema(&[], true)["properties"]["fix"].clone()},
        "required": ["fix"],
        "additionalProperties": false
    })
}

/// The fix role's answer as parsed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixAnswer {
    fix: Option<DraftFix>,
}

/// Validates the fix role's answer: `Ok(None)` when it drafts no fix.
pub fn validate_fix(
    content: &str,
    workload: &ResourceRef,
    original: Option<&Value>,
) -> Result<Option<(DraftFix, PolicyDecision)>, Vec<String>> {
    let value = bare_json(content)?;
    let answer: FixAnswer = serde_json::from_value(value)
        .map_err(|e| vec![format!("the answer does not match the schema: {e}")])?;
    let Some(fix) = answer.fix else {
        return Ok(None);
    };
    let mut reasons = Vec::new();
    match check_fix(&fix, workload, original, &mut reasons) {
        Some(decision) if reasons.is_empty() => Ok(Some((fix, decision))),
        _ => Err(reasons),
    }
}

/// The answer as one bare JSON object, or why it is not one.
fn bare_json(content: &str) -> Result<Value, Vec<String>> {
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return Err(vec!["the answer is empty".to_owned()]);
    }
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        let reason = if trimmed.contains('{') && !trimmed.starts_with('{') {
            "the answer wraps its JSON in prose; only a bare JSON object is accepted"
        } else if trimmed.starts_with('{') {
            "the answer is not a complete JSON object (truncated, or text after it)"
        } else {
            "the answer is not JSON"
        };
        return Err(vec![reason.to_owned()]);
    }
    serde_json::from_str(trimmed).map_err(|e| {
        vec![if e.is_eof() {
            format!("the JSON is truncated: {e}")
        } else {
            format!("the JSON is malformed: {e}")
        }]
    })
}

/// Validates the text the model answered.
///
/// `sent` are the evidence ids of the prompt; `workload` is the object a fix would patch, and
/// `original` that object as it is now (for the policy's checks); `allow_fix` is whether the
/// schema offered a fix.
pub fn validate(
    content: &str,
    sent: &[String],
    workload: &ResourceRef,
    original: Option<&Value>,
    allow_fix: bool,
) -> Result<ValidAnswer, Vec<String>> {
    let value = bare_json(content)?;
    let answer: Answer = serde_json::from_value(value)
        .map_err(|e| vec![format!("the answer does not match the schema: {e}")])?;

    let mut reasons = Vec::new();
    let category = Category::from_id(&answer.category);
    if category.is_none() {
        reasons.push(format!(
            "category `{}` is not an id of the failure taxonomy",
            answer.category
        ));
    }
    if !(0.0..=1.0).contains(&answer.confidence) {
        reasons.push(format!("confidence {} is outside 0..1", answer.confidence));
    }
    let mut evidence: Vec<String> = Vec::new();
    for id in &answer.evidence {
        if !sent.contains(id) {
            reasons.push(format!("it cites evidence `{id}`, which was not sent"));
        } else if !evidence.contains(id) {
            evidence.push(id.clone());
        }
    }
    if answer.evidence.is_empty() {
        reasons.push("it cites no evidence".to_owned());
    }
    if answer.summary.trim().is_empty() || answer.root_cause.trim().is_empty() {
        reasons.push("its summary or root cause is empty".to_owned());
    }
    let mut decision = None;
    if answer.fix.is_some() && !allow_fix {
        reasons.push("it drafts a fix where the schema asked for none".to_owned());
    }
    if let Some(fix) = &answer.fix {
        decision = check_fix(fix, workload, original, &mut reasons);
    }
    match category {
        Some(category) if reasons.is_empty() => Ok(ValidAnswer {
            category,
            summary: answer.summary,
            root_cause: answer.root_cause,
            confidence: answer.confidence,
            evidence,
            fix: answer.fix,
            policy: decision,
        }),
        _ => Err(reasons),
    }
}
