use aegis_core::Check;

use super::*;

fn plan() -> VerificationPlan {
    VerificationPlan {
        checks: vec![Check::Ready, Check::NoBadWaiting],
        interval_seconds: 5,
        success_threshold: 3,
        failure_limit: 2,
        timeout_seconds: 60,
    }
}

/// One observation: `p` pass, `.` pending, `f` fail for each check; `b` the baseline shows the
/// incident; the candidate's categories.
fn look(elapsed: u64, checks: &str, baseline: bool, candidate: &[Category]) -> Observation {
    let plan = plan();
    Observation {
        elapsed_ms: elapsed * 1000,
        checks: plan
            .checks
            .iter()
            .zip(checks.chars())
            .map(|(check, c)| {
                let status = match c {
                    'p' => Status::Pass,
                    'f' => Status::Fail("CrashLoopBackOff".to_owned()),
                    _ => Status::Pending("starting".to_owned()),
                };
                (check.clone(), status)
            })
            .collect(),
        baseline_signature: baseline.then(|| vec!["CrashLoopBackOff".to_owned()]),
        candidate_categories: candidate.to_vec(),
    }
}

/// Feeds a sequence and returns the verdict and when it came.
fn run(sequence: &[Observation]) -> Option<(Verdict, String, u64)> {
    let mut engine = Engine::new(Category::MissingEnvVar, &plan());
    for observation in sequence {
        let at = observation.elapsed_ms / 1000;
        if let Decision::Done { verdict, reason } = engine.observe(observation.clone()) {
            return Some((verdict, reason, at));
        }
    }
    None
}

#[test]
fn the_verdict_engine_on_recorded_sequences() {
    use Category::{AppCrash, MissingEnvVar};
    /// A case: its name, the observations, and the verdict expected (with a phrase of its reason
    /// and when it comes), or none.
    type Case = (
        &'static str,
        Vec<Observation>,
        Option<(Verdict, &'static str, u64)>,
    );
    let cases: Vec<Case> = vec![
        (
            "three passes in a row after the baseline reproduced",
            vec![
                look(5, ".p", true, &[]),
                look(10, "pp", true, &[]),
                look(15, "pp", true, &[]),
                look(20, "pp", true, &[]),
            ],
            Some((Verdict::Successful, "3 looks in a row over 10s", 20)),
        ),
        (
            "a pending interval resets the run of passes",
            vec![
                look(5, "pp", true, &[]),
                look(10, "pp", true, &[]),
                look(15, ".p", true, &[]),
                look(20, "pp", true, &[]),
                look(25, "pp", true, &[]),
                look(30, "pp", true, &[]),
            ],
            Some((Verdict::Successful, "", 30)),
        ),
        (
            "passes do not count as proof until the baseline reproduces",
            vec![
                look(5, "pp", false, &[]),
                look(10, "pp", false, &[]),
                look(15, "pp", false, &[]),
                look(20, "pp", true, &[]),
            ],
            Some((Verdict::Successful, "", 20)),
        ),
        (
            "failures past the limit fail while the candidate still shows the incident",
            vec![
                look(5, ".f", true, &[MissingEnvVar]),
                look(10, ".f", true, &[MissingEnvVar]),
                look(15, ".f", true, &[MissingEnvVar]),
            ],
            Some((Verdict::Failed, "still shows missing-env-var", 15)),
        ),
        (
            "failures within the limit do not decide",
            vec![
                look(5, ".f", true, &[MissingEnvVar]),
                look(10, ".f", true, &[MissingEnvVar]),
            ],
            None,
        ),
        (
            "a look within the interval counts no second failure",
            vec![
                look(5, ".f", true, &[MissingEnvVar]),
                look(6, ".f", true, &[MissingEnvVar]),
                look(7, ".f", true, &[MissingEnvVar]),
                look(8, ".f", true, &[MissingEnvVar]),
            ],
            None,
        ),
        (
            "a candidate that lost the incident but crashes as isolation explains is cause-cleared",
            vec![
                look(5, ".f", true, &[AppCrash]),
                look(10, ".f", true, &[AppCrash]),
                look(15, ".f", true, &[AppCrash]),
            ],
            Some((Verdict::Inconclusive, "cause-cleared", 15)),
        ),
        (
            "no reproduction by the timeout is inconclusive",
            (1..=12).map(|i| look(i * 5, "pp", false, &[])).collect(),
            Some((Verdict::Inconclusive, "does not reproduce", 60)),
        ),
        (
            "a candidate still starting at the timeout is inconclusive",
            (1..=12).map(|i| look(i * 5, "..", true, &[])).collect(),
            Some((Verdict::Inconclusive, "did not pass every check", 60)),
        ),
    ];
    for (name, sequence, expected) in cases {
        let got = run(&sequence);
        match (got, expected) {
            (None, None) => {}
            (Some((verdict, reason, at)), Some((want, phrase, want_at))) => {
                assert_eq!(verdict, want, "{name}: {reason}");
                assert!(reason.contains(phrase), "{name}: {reason}");
                assert_eq!(at, want_at, "{name}");
            }
            (got, _) => panic!("{name}: got {got:?}"),
        }
    }
}

#[test]
fn timelines_record_each_change_and_counts_follow_the_intervals() {
    let mut engine = Engine::new(Category::MissingEnvVar, &plan());
    for observation in [
        look(5, ".p", true, &[]),
        look(10, "pp", true, &[]),
        look(15, "pp", true, &[]),
    ] {
        engine.observe(observation);
    }
    let ready = &engine.results()[0];
    assert_eq!(ready.passes, 2);
    assert_eq!(ready.timeline, ["+5s pending: starting", "+10s pass"]);
    assert_eq!(engine.health_score(), Some(1.0));
    assert_eq!(
        engine.reproduced(),
        Some(&["CrashLoopBackOff".to_owned()][..])
    );
}
