//! Consulting the LLM on an incident the rules engine has diagnosed (or could not), and
//! cross-checking its answer against the rules.
//!
//! - The rules have a diagnosis with evidence, and the LLM reaches the same category: it
//!   *agreed*; its explanation joins the analysis steps.
//! - The LLM names another category: it *contradicted*; the rules' evidence wins, confidence
//!   drops by [`CONTRADICTION_PENALTY`], and if that takes it below the threshold the fix is
//!   withheld and the incident escalated. The output shows both diagnoses.
//! - The rules have nothing: the LLM's validated answer is *adopted*, its confidence capped by
//!   how much evidence it cites ([`evidence_cap`]); a fix it drafted is kept only when the
//!   capped confidence clears the threshold, and is high-risk and needs approval.
//! - An answer that fails validation is *rejected*, a call that fails has *failed*: the rules'
//!   result stands (or the incident stays escalated), and the reasons are reported.

use std::io::Write as _;
use std::path::PathBuf;

use aegis_core::incident::incident_id;
use aegis_core::settings::ShadowSettings;
use aegis_core::{
    Category, Evidence, Fix, Incident, LlmOpinion, LlmVerdict, PatchType, Risk, VerificationPlan,
};
use serde_json::{Value, json};

use crate::answer::{self, ValidAnswer};
use crate::ollama::{LlmError, OllamaBackend, Reply};
use crate::prompt::{self, Prompt, PromptInput, RulesView};
use crate::redact::Redactor;
use aegis_core::patch::inverse_of;
use aegis_core::verification::{NO_FIX, NOT_VERIFIED};
use aegis_rules::Lookup;
use aegis_rules::plan::verification_plan;

/// How much a contradiction by the LLM lowers the rules' confidence.
pub const CONTRADICTION_PENALTY: f64 = 0.15;

/// The most confidence an adopted LLM diagnosis may have when it cites `cited` pieces of
/// evidence: 0.45 for one, 0.75 for three, at most 0.9.
pub fn evidence_cap(cited: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let cited = cited as f64;
    (0.3 + 0.15 * cited).min(0.9)
}

/// The LLM side of the pipeline.
#[derive(Debug, Clone)]
pub struct Consultant {
    /// The diagnosis (RCA) role's model; it also drafts the fix unless `fix_backend` is set.
    pub backend: OllamaBackend,
    /// The fix role's model, when it differs from the RCA model: asked in a second call to
    /// draft the fix of a diagnosis the rules could not make.
    pub fix_backend: Option<OllamaBackend>,
    pub budget_tokens: usize,
    pub confidence_threshold: f64,
    pub shadow: ShadowSettings,
    /// Every prompt sent is appended here as a JSON line.
    pub prompt_log: Option<PathBuf>,
    /// The most incidents consulted per analysis.
    pub max_incidents: usize,
}

impl Consultant {
    /// The consultant the settings describe, once Ollama answers and has the RCA model (and
    /// the fix model, when it is another): the error says which is missing.
    pub async fn connect(settings: &aegis_core::settings::Settings) -> Result<Self, LlmError> {
        let llm = &settings.llm;
        let backend = OllamaBackend::new(crate::OllamaConfig::from_settings(llm, &llm.rca_model))?;
        let fix_backend = (llm.fix_model != llm.rca_model)
            .then(|| OllamaBackend::new(crate::OllamaConfig::from_settings(llm, &llm.fix_model)))
            .transpose()?;
        backend.probe().await?;
        if let Some(fixer) = &fix_backend {
            fixer.probe().await?;
        }
        Ok(Self {
            backend,
            fix_backend,
            budget_tokens: llm.prompt_budget_tokens,
            confidence_threshold: settings.agent.confidence_threshold,
            shadow: settings.shadow.clone(),
            prompt_log: llm.prompt_log.clone(),
            max_incidents: llm.max_incidents,
        })
    }
}

/// What one consultation cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Strips control characters (terminal escapes included) from model text and bounds its length.
fn clean(text: &str, limit: usize) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.chars().count() > limit {
        trimmed.chars().take(limit).collect::<String>() + "…"
    } else {
        trimmed.to_owned()
    }
}

impl Consultant {
    /// Asks the LLM about `incident` and merges its answer. `evidence` is everything the
    /// analyzers gathered for the incident's workload.
    pub async fn consult(
        &self,
        incident: &mut Incident,
        evidence: &[Evidence],
        lookup: &Lookup<'_>,
    ) -> Usage {
        let original = lookup.object(&incident.workload);
        let rules_has_diagnosis =
            incident.rca.category != Category::Unknown && !incident.rca.evidence.is_empty();
        let input = PromptInput {
            workload: &incident.workload,
            findings: &incident.findings,
            rules: rules_has_diagnosis.then(|| RulesView {
                category: incident.rca.category,
                summary: incident.rca.summary.clone(),
                confidence: incident.rca.confidence,
            }),
            evidence,
            cited: &incident.rca.evidence,
            object: original.as_ref(),
        };
        let mut redactor = Redactor::new();
        let prompt = prompt::build(&input, self.budget_tokens, &mut redactor);
        self.log_prompt(&incident.id, &prompt);
        let backend = self.backend.name();
        let allow_fix = self.offers_fix(rules_has_diagnosis);
        let reply = self
            .backend
            .chat(&prompt, answer::schema(&prompt.evidence_ids(), allow_fix))
            .await;
        let mut opinion = LlmOpinion {
            backend: backend.clone(),
            verdict: LlmVerdict::Failed,
            category: None,
            summary: None,
            confidence: None,
            evidence: Vec::new(),
            reasons: Vec::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            latency_ms: 0,
            prompt_hash: prompt.hash(),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                Self::failed(incident, opinion, &error);
                return Usage::default();
            }
        };
        let usage = Usage {
            prompt_tokens: reply.prompt_tokens,
            completion_tokens: reply.completion_tokens,
            latency_ms: u64::try_from(reply.latency.as_millis()).unwrap_or(u64::MAX),
        };
        opinion.prompt_tokens = usage.prompt_tokens;
        opinion.completion_tokens = usage.completion_tokens;
        opinion.latency_ms = usage.latency_ms;
        self.merge(
            incident,
            opinion,
            &prompt,
            &reply,
            original.as_ref(),
            lookup,
            rules_has_diagnosis,
        );
        let mut usage = usage;
        if let Some(fixer) = &self.fix_backend
            && incident
                .rca
                .llm
                .as_ref()
                .is_some_and(|o| o.verdict == LlmVerdict::Adopted)
            && incident.rca.confidence >= self.confidence_threshold
        {
            let spent = self
                .draft_fix(fixer, incident, &prompt, original.as_ref(), lookup)
                .await;
            usage.prompt_tokens += spent.prompt_tokens;
            usage.completion_tokens += spent.completion_tokens;
            usage.latency_ms += spent.latency_ms;
        }
        usage
    }

    /// The fix role: asks `fixer` to draft the fix of the diagnosis just adopted.
    async fn draft_fix(
        &self,
        fixer: &OllamaBackend,
        incident: &mut Incident,
        prompt: &Prompt,
        original: Option<&Value>,
        lookup: &Lookup<'_>,
    ) -> Usage {
        let name = fixer.name();
        let mut request = prompt.clone();
        request.user.push_str(&format!(
            "\nThe diagnosis is {}: {}\nDraft the fix, or answer null if no safe patch exists.\n",
            incident.rca.category,
            // The summary is the model's own text, already cleaned; it quotes no secret that
            // was not masked in the prompt it came from.
            incident.rca.summary
        ));
        let reply = match fixer.chat(&request, answer::fix_schema()).await {
            Ok(reply) => reply,
            Err(error) => {
                incident.rca.analysis_steps.push(format!(
                    "{name} could not be asked for a fix ({error}); a human decides"
                ));
                return Usage::default();
            }
        };
        let usage = Usage {
            prompt_tokens: reply.prompt_tokens,
            completion_tokens: reply.completion_tokens,
            latency_ms: u64::try_from(reply.latency.as_millis()).unwrap_or(u64::MAX),
        };
        match answer::validate_fix(&reply.content, &incident.workload, original) {
            Ok(Some((draft, policy))) => {
                self.attach_fix(incident, &draft, &policy, original, lookup);
                incident
                    .rca
                    .analysis_steps
                    .push(format!("{name} drafted the fix"));
                incident.rca.decision_rationale.push_str(&format!(
                    " {name} drafted the fix; it passed the fix policy and, drafted by an LLM, is high-risk and needs approval after shadow verification."
                ));
            }
            Ok(None) => incident
                .rca
                .decision_rationale
                .push_str(&format!(" {name} drafted no fix; a human decides.")),
            Err(reasons) => {
                let reasons: Vec<String> = reasons.iter().map(|r| clean(r, 400)).collect();
                incident.rca.analysis_steps.push(format!(
                    "the fix drafted by {name} was rejected ({})",
                    reasons.join("; ")
                ));
                incident
                    .rca
                    .decision_rationale
                    .push_str(" The fix the LLM drafted was rejected; a human decides.");
            }
        }
        usage
    }

    /// Makes a validated draft the incident's fix, with its inverse and verification plan.
    #[allow(clippy::too_many_arguments)]
    fn attach_fix(
        &self,
        incident: &mut Incident,
        draft: &answer::DraftFix,
        policy: &aegis_core::PolicyDecision,
        original: Option<&Value>,
        lookup: &Lookup<'_>,
    ) {
        let workload = incident.workload.clone();
        let fix = Fix {
            summary: clean(&draft.summary, 300),
            target: workload.clone(),
            patch_type: PatchType::StrategicMerge,
            patch: draft.patch.clone(),
            inverse_patch: inverse_of(&draft.patch, original.unwrap_or(&Value::Null)),
            risk: Risk::High,
            policy: policy.clone(),
            requires_approval: true,
            rollback: None,
        };
        let services = aegis_rules::services_selecting(lookup, &workload);
        let plan: VerificationPlan = verification_plan(&fix, &services, &self.shadow);
        incident.verification.plan = Some(plan);
        incident.verification.result.reason = NOT_VERIFIED.to_owned();
        incident.fix = Some(fix);
    }

    /// Whether the diagnosis call is offered a fix: only an adopted diagnosis can use one, and
    /// with a fix role of its own the fix is drafted in a second call.
    fn offers_fix(&self, rules_has_diagnosis: bool) -> bool {
        !rules_has_diagnosis && self.fix_backend.is_none()
    }

    fn log_prompt(&self, incident: &str, prompt: &Prompt) {
        let Some(path) = &self.prompt_log else { return };
        let line = json!({
            "incident": incident,
            "model": self.backend.config().model,
            "prompt_hash": prompt.hash(),
            "estimated_tokens": prompt.estimated_tokens,
            "evidence_sent": prompt.evidence.len(),
            "evidence_dropped": prompt.dropped,
            "masked": prompt.masked,
            "system": prompt.system,
            "user": prompt.user,
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "the prompt log could not be written");
        }
    }

    fn failed(incident: &mut Incident, mut opinion: LlmOpinion, error: &LlmError) {
        opinion.reasons = vec![error.to_string()];
        incident.rca.analysis_steps.push(format!(
            "{} could not be consulted ({error}); the rules' result stands",
            opinion.backend
        ));
        incident.rca.llm = Some(opinion);
    }

    #[allow(clippy::too_many_arguments)]
    fn merge(
        &self,
        incident: &mut Incident,
        mut opinion: LlmOpinion,
        prompt: &Prompt,
        reply: &Reply,
        original: Option<&Value>,
        lookup: &Lookup<'_>,
        rules_has_diagnosis: bool,
    ) {
        let backend = opinion.backend.clone();
        let valid = match answer::validate(
            &reply.content,
            &prompt.evidence_ids(),
            &incident.workload,
            original,
            self.offers_fix(rules_has_diagnosis),
        ) {
            Ok(valid) => valid,
            Err(reasons) => {
                // Reasons quote the model (a category it made up, an id it invented).
                let reasons: Vec<String> = reasons.iter().map(|r| clean(r, 400)).collect();
                incident.rca.analysis_steps.push(format!(
                    "the answer of {backend} was rejected ({}); the rules' result stands",
                    reasons.join("; ")
                ));
                opinion.verdict = LlmVerdict::Rejected;
                opinion.reasons = reasons;
                incident.rca.llm = Some(opinion);
                return;
            }
        };
        let cited: Vec<&Evidence> = valid
            .evidence
            .iter()
            .filter_map(|id| prompt.evidence.iter().find(|e| &e.id == id))
            .map(|e| &e.original)
            .collect();
        let summary = clean(&valid.summary, 300);
        opinion.category = Some(valid.category);
        opinion.summary = Some(summary.clone());
        opinion.confidence = Some(round2(valid.confidence));
        opinion.evidence = cited.iter().map(|e| e.reference.clone()).collect();

        if rules_has_diagnosis {
            if valid.category == incident.rca.category {
                opinion.verdict = LlmVerdict::Agreed;
                incident
                    .rca
                    .analysis_steps
                    .push(format!("{backend} reaches the same diagnosis: {summary}"));
                incident.rca.backend = backend;
            } else {
                opinion.verdict = LlmVerdict::Contradicted;
                self.contradicted(incident, &valid, &summary, &backend);
            }
        } else {
            opinion.verdict = LlmVerdict::Adopted;
            self.adopt(incident, &valid, &cited, original, lookup, &backend);
        }
        incident.rca.llm = Some(opinion);
    }

    fn contradicted(
        &self,
        incident: &mut Incident,
        valid: &ValidAnswer,
        summary: &str,
        backend: &str,
    ) {
        let before = incident.rca.confidence;
        let after = round2((before - CONTRADICTION_PENALTY).max(0.0));
        incident.rca.confidence = after;
        incident.rca.analysis_steps.push(format!(
            "{backend} disagrees: it says {} ({summary}); the rules' evidence wins, and confidence drops from {before:.2} to {after:.2}",
            valid.category
        ));
        if after < self.confidence_threshold && incident.fix.is_some() {
            incident.fix = None;
            incident.verification.plan = None;
            incident.verification.result.reason = NO_FIX.to_owned();
            incident.rca.decision_rationale = format!(
                "The LLM contradicts the rules' diagnosis, and confidence fell to {after:.2}, below the threshold {:.2}: the fix is withheld and the incident escalated to a human with both diagnoses.",
                self.confidence_threshold
            );
        } else {
            incident.rca.decision_rationale.push_str(&format!(
                " The LLM disagrees ({}); the rules' evidence wins at confidence {after:.2}.",
                valid.category
            ));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn adopt(
        &self,
        incident: &mut Incident,
        valid: &ValidAnswer,
        cited: &[&Evidence],
        original: Option<&Value>,
        lookup: &Lookup<'_>,
        backend: &str,
    ) {
        let cap = evidence_cap(cited.len());
        let confidence = round2(valid.confidence.min(cap));
        let workload = incident.workload.clone();
        incident.id = incident_id(&workload, valid.category);
        incident.rca.category = valid.category;
        incident.rca.summary = clean(&valid.summary, 300);
        incident.rca.root_cause = clean(&valid.root_cause, 1200);
        incident.rca.confidence = confidence;
        incident.rca.evidence = cited.iter().map(|e| (*e).clone()).collect();
        incident.rca.backend = backend.to_owned();
        incident.rca.analysis_steps.push(format!(
            "the rules have no diagnosis; {backend} diagnoses {} citing {} piece(s) of evidence, so its confidence is capped at {cap:.2}",
            valid.category,
            cited.len()
        ));
        let mut rationale = format!(
            "The rules engine has no diagnosis; the validated answer of {backend} stands with confidence {confidence:.2}."
        );
        incident.fix = None;
        incident.verification.plan = None;
        incident.verification.result.reason = NO_FIX.to_owned();
        match (&valid.fix, &valid.policy) {
            (Some(draft), Some(policy)) if confidence >= self.confidence_threshold => {
                self.attach_fix(incident, draft, policy, original, lookup);
                rationale.push_str(" Its patch passed the fix policy; drafted by an LLM, it is high-risk and needs approval after shadow verification.");
            }
            (Some(_), _) => rationale.push_str(&format!(
                " Its drafted patch is withheld: confidence {confidence:.2} is below the threshold {:.2}; escalated to a human.",
                self.confidence_threshold
            )),
            (None, _) if confidence < self.confidence_threshold => rationale.push_str(&format!(
                " Confidence {confidence:.2} is below the threshold {:.2}; escalated to a human.",
                self.confidence_threshold
            )),
            (None, _) if self.fix_backend.is_some() => {}
            (None, _) => rationale.push_str(" It drafted no fix; a human decides."),
        }
        incident.rca.decision_rationale = rationale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_text_loses_control_characters_and_is_bounded() {
        assert_eq!(clean("ok\u{1b}[2J\u{7}\r done\n", 100), "ok[2J done");
        assert_eq!(clean(&"x".repeat(20), 5), "xxxxx…");
        assert!((evidence_cap(1) - 0.45).abs() < 1e-9);
        assert!((evidence_cap(3) - 0.75).abs() < 1e-9);
        assert!((evidence_cap(10) - 0.9).abs() < 1e-9);
    }
}
