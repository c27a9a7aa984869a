//! The redactor on the labelled corpus (`tests/data/redaction-corpus.json`): every planted
//! secret is masked (recall), and texts without secrets pass unchanged (false positives).

use aegis_llm::redact::{MASK_PREFIX, Redactor};
use serde_json::Value;

fn corpus() -> Vec<Value> {
    let text = include_str!("data/redaction-corpus.json");
    let corpus: Value = serde_json::from_str(text).expect("the corpus is JSON");
    corpus["cases"].as_array().expect("cases").clone()
}

fn redact(case: &Value) -> String {
    let mut redactor = Redactor::new();
    if let Some(name) = case["name"].as_str() {
        redactor.learn_variable(name, case["value"].as_str(), false);
    }
    for known in case["known"].as_array().into_iter().flatten() {
        redactor.learn_variable(
            known["name"].as_str().unwrap_or_default(),
            known["value"].as_str(),
            false,
        );
    }
    for name in case["secret_variables"].as_array().into_iter().flatten() {
        redactor.learn_variable(name.as_str().unwrap_or_default(), None, true);
    }
    redactor.redact(case["text"].as_str().expect("text"))
}

#[test]
fn every_planted_secret_is_masked_and_clean_texts_pass_unchanged() {
    let mut planted = 0;
    let mut missed = Vec::new();
    let mut clean = 0;
    let mut false_positives = Vec::new();
    for case in corpus() {
        let text = case["text"].as_str().expect("text");
        let out = redact(&case);
        let secrets = case["secrets"].as_array().expect("secrets");
        if secrets.is_empty() {
            clean += 1;
            if out != text {
                false_positives.push(format!("{text}\n  → {out}"));
            }
            continue;
        }
        for secret in secrets {
            planted += 1;
            let secret = secret.as_str().expect("a secret");
            if out.contains(secret) {
                missed.push(format!("{secret} in {out}"));
            }
        }
        assert!(out.contains(MASK_PREFIX), "{out}");
    }
    let caught = planted - missed.len();
    eprintln!(
        "redaction recall {caught}/{planted} planted secrets; false positives {}/{clean} clean texts",
        false_positives.len()
    );
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
    assert!(
        false_positives.is_empty(),
        "false positives:\n{}",
        false_positives.join("\n")
    );
    assert!(planted >= 40 && clean >= 20, "the corpus is too small");
}

#[test]
fn one_value_gets_one_mask_across_texts_and_masks_are_not_masked_again() {
    let mut redactor = Redactor::new();
    redactor.learn_variable("DB_PASSWORD", None, true);
    let first = redactor.redact("DB_PASSWORD=Sup3rS3cret! rejected by postgres");
    let second = redactor.redact("login as app with password=Sup3rS3cret! failed");
    let mask = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("DB_PASSWORD="))
        .expect("masked")
        .to_owned();
    assert!(mask.starts_with(MASK_PREFIX), "{first}");
    assert!(second.contains(&mask), "{second}");
    assert_eq!(redactor.masked(), 1);
    assert_eq!(redactor.redact(&second), second);
}
