//! Redaction of secrets before anything leaves the process.
//!
//! Every text bound for an LLM goes through one [`Redactor`] per prompt. It masks, in logs,
//! events and specs alike: PEM blocks, bearer tokens, JWTs, cloud and SaaS keys, the values of
//! `password=`/`secret=`/`token=`-like assignments (also in JSON and YAML form), credentials in
//! URLs and connection strings, the values of environment variables that come from Secrets
//! wherever the log prints them (`DB_PASSWORD=…`), and literal values of secret-named variables
//! wherever they appear. A value gets one mask (`«redacted-3»`) for the whole prompt, so the
//! answer can refer to it; masks are never turned back into values, and an answer whose patch
//! carries one is rejected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// The text of a mask's start: no Kubernetes value or log line begins with it by accident.
pub const MASK_PREFIX: &str = "«redacted-";

static PEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|\z)")
        .expect("valid regex")
});

/// Patterns whose whole match is a secret.
static WHOLE: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // JWTs (header.payload.signature, base64url).
        r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        // AWS access key ids.
        r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b",
        // Google API keys and OAuth access tokens.
        r"\bAIza[0-9A-Za-z_-]{35}\b",
        r"\bya29\.[0-9A-Za-z_-]{20,}",
        // GitHub, GitLab, Slack, Stripe, OpenAI-style and Hugging Face tokens.
        r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
        r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
        r"\bglpat-[A-Za-z0-9_-]{20,}\b",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
        r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}\b",
        r"\bsk-[A-Za-z0-9_-]{32,}\b",
        r"\bhf_[A-Za-z0-9]{30,}\b",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("valid regex"))
    .collect()
});

/// `Bearer <token>` / `Basic <credentials>` in headers and logs: the credential is masked.
static AUTH_SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{8,})").expect("valid regex")
});

/// `user:password@` in URLs and connection strings: the password is masked.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)(@)").expect("valid regex")
});

/// `key=value`, `key: value`, `"key": "value"` where the key names a secret.
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(["']?)([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth[_-]?key|accountkey|sharedaccesskey|sas)[A-Za-z0-9_.-]*)(["']?)(\s*[=:]\s*)(["']?)([^\s"',;&}]+)"#,
    )
    .expect("valid regex")
});

/// Key names that contain a secret word but name a reference, not a value
/// (`secretKeyRef: db/password`, `secretName: tls`, `tokenPath: /var/run/…`).
fn names_a_reference(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "ref", "name", "path", "file", "dir", "mount", "expiry", "ttl", "type", "length",
    ]
    .iter()
    .any(|suffix| key.ends_with(suffix))
}

/// Values that are not secrets although they sit in a secret-looking assignment.
fn harmless_value(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    value.starts_with(MASK_PREFIX)
        || value.len() < 3
        || [
            "true", "false", "null", "none", "nil", "empty", "unset", "missing", "required",
            "invalid", "expired", "redacted", "<none>", "not", "is",
        ]
        .contains(&lower.as_str())
}

/// Env-var names that mark their literal value as a secret.
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let about_the_secret = [
        "_TTL",
        "_SECONDS",
        "_PATH",
        "_FILE",
        "_NAME",
        "_TYPE",
        "_LENGTH",
        "_EXPIRY",
        "_REF",
        "_DIR",
        "_ENABLED",
        "_URL_PATH",
    ]
    .iter()
    .any(|suffix| upper.ends_with(suffix));
    !about_the_secret
        && [
            "PASSWORD",
            "PASSWD",
            "SECRET",
            "TOKEN",
            "API_KEY",
            "APIKEY",
            "ACCESS_KEY",
            "PRIVATE_KEY",
            "CREDENTIAL",
            "AUTH",
        ]
        .iter()
        .any(|word| upper.contains(word))
}

/// Masks secrets in texts, consistently within one prompt.
#[derive(Debug, Default)]
pub struct Redactor {
    masks: BTreeMap<String, String>,
    /// Literal secret values known from the spec, masked wherever they appear.
    known_values: BTreeSet<String>,
    /// Variables whose values come from Secrets; `NAME=value` prints of them are masked.
    secret_variables: BTreeSet<String>,
    /// The pattern of those prints, built once per set of variables.
    printed: Option<Regex>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// An environment variable of the workload. `from_secret` when its value comes from a
    /// Secret (`secretKeyRef`, `envFrom.secretRef`); `value` when the spec carries it literally.
    pub fn learn_variable(&mut self, name: &str, value: Option<&str>, from_secret: bool) {
        if (from_secret || secret_name(name)) && self.secret_variables.insert(name.to_owned()) {
            self.printed = None;
        }
        if let Some(value) = value
            && secret_name(name)
            && !harmless_value(value)
        {
            self.known_values.insert(value.to_owned());
        }
    }

    /// How many distinct values were masked.
    pub fn masked(&self) -> usize {
        self.masks.len()
    }

    fn mask(&mut self, value: &str) -> String {
        let next = self.masks.len() + 1;
        self.masks
            .entry(value.to_owned())
            .or_insert_with(|| format!("{MASK_PREFIX}{next}»"))
            .clone()
    }

    /// The text with every secret it holds masked.
    pub fn redact(&mut self, text: &str) -> String {
        let mut out = text.to_owned();
        // Known values first: they may not match any pattern.
        let known: Vec<String> = self.known_values.iter().cloned().collect();
        for value in known {
            if out.contains(&value) {
                let mask = self.mask(&value);
                out = out.replace(&value, &mask);
            }
        }
        out = self.replace(&PEM, &out, |_| 0);
        for pattern in WHOLE.iter() {
            out = self.replace(pattern, &out, |_| 0);
        }
        out = self.replace(&AUTH_SCHEME, &out, |_| 3);
        out = self.replace(&URL_CREDENTIALS, &out, |_| 2);
        out = self.replace(&ASSIGNMENT, &out, |caps| {
            let key = caps.get(2).map_or("", |m| m.as_str());
            let value = caps.get(6).map_or("", |m| m.as_str());
            if names_a_reference(key) || harmless_value(value) {
                usize::MAX
            } else {
                6
            }
        });
        if self.printed.is_none() && !self.secret_variables.is_empty() {
            let names: Vec<String> = self
                .secret_variables
                .iter()
                .map(|n| regex::escape(n))
                .collect();
            self.printed = Regex::new(&format!(
                r#"\b({})(["']?\s*[=:]\s*["']?)([^\s"',;&}}]+)"#,
                names.join("|")
            ))
            .inspect_err(|e| {
                tracing::warn!(error = %e, "the pattern of Secret-backed variables could not be built");
            })
            .ok();
        }
        if let Some(printed) = self.printed.clone() {
            out = self.replace(&printed, &out, |caps| {
                let value = caps.get(3).map_or("", |m| m.as_str());
                if harmless_value(value) { usize::MAX } else { 3 }
            });
        }
        out
    }

    /// Replaces, in every match of `pattern`, the capture group `group(captures)` (0: the whole
    /// match; `usize::MAX`: leave the match alone) by its mask.
    fn replace(
        &mut self,
        pattern: &Regex,
        text: &str,
        group: impl Fn(&Captures<'_>) -> usize,
    ) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in pattern.captures_iter(text) {
            let which = group(&caps);
            let Some(secret) = (which != usize::MAX).then(|| caps.get(which)).flatten() else {
                continue;
            };
            if secret.as_str().starts_with(MASK_PREFIX) {
                continue;
            }
            out.push_str(&text[last..secret.start()]);
            let mask = self.mask(secret.as_str());
            out.push_str(&mask);
            last = secret.end();
        }
        out.push_str(&text[last..]);
        out
    }
}

/// Whether a text carries a mask (an answer must not put one into a patch).
pub fn has_mask(text: &str) -> bool {
    text.contains(MASK_PREFIX)
}
