//! The shipped examples (`examples/*/`): integrations of each shape crashcart drives, each
//! with its scenario, written against the SUT contract only with real client libraries. Each
//! runs green; each broken variant fails its scenario, on the SLO and for the reason it was
//! broken for (named by a phrase of the evidence). All of them at once, in real time.

mod support;

use std::path::Path;

use crashcart::checks::Verdict;
use crashcart::run::{run, Events, RunOptions};

/// An example and its broken builds: the environment that selects one, the SLO it must
/// fail and a phrase its evidence must hold.
struct Example {
    dir: &'static str,
    broken: &'static [Broken],
}

struct Broken {
    env: (&'static str, &'static str),
    slo: &'static str,
    evidence: &'static str,
}

const EXAMPLES: &[Example] = &[
    // A poller (Python): re-summarising every Case on every poll writes each one again.
    Example {
        dir: "case-poller",
        broken: &[Broken {
            env: ("CASE_POLLER_VARIANT", "resummarise-all"),
            slo: "consistency",
            evidence: "times (at most 1)",
        }],
    },
    // A Change Data Capture listener (Node, jsforce's streaming client): resubscribing
    // with -1 after the Streaming API dropped it loses the appointments booked meanwhile.
    Example {
        dir: "visit-prep-listener",
        broken: &[Broken {
            env: ("LISTENER_VARIANT", "loses-events-on-reconnect"),
            slo: "consistency",
            evidence: "never written by the SUT",
        }],
    },
    // A batch job (Python, Bulk API 2.0) run by the workload's command steps, twice per
    // appointment: inserting instead of upserting duplicates each follow-up Case.
    Example {
        dir: "followup-batch",
        broken: &[Broken {
            env: ("FOLLOWUP_BATCH_VARIANT", "non-idempotent"),
            slo: "consistency",
            evidence: "Case by ContactId (expected 1)",
        }],
    },
    // A multi-step booking API (Python): book, reschedule, cancel with the ids carried.
    Example {
        dir: "booking-flow",
        broken: &[],
    },
];

/// One run of an example's scenario with `env` over its `sut.env`; a description of what
/// was wrong with it, if anything.
async fn judge(dir: &'static str, env: Option<&'static Broken>) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("examples").join(dir).join("scenario.yaml");
    let s = crashcart::scenario::load(&file).expect("the example's scenario is valid");
    let reports = std::env::temp_dir().join(format!("crashcart-examples-{}", std::process::id()));
    let opts = RunOptions {
        report_dir: Some(reports),
        sut_env: env
            .map(|b| vec![(b.env.0.to_string(), b.env.1.to_string())])
            .unwrap_or_default(),
        ..RunOptions::default()
    };
    let label = match env {
        None => format!("{dir} (correct)"),
        Some(b) => format!("{dir} ({}={})", b.env.0, b.env.1),
    };
    let report = match run(&s, &opts, &Events::none()).await {
        Ok(o) => o.report,
        Err(e) => return Some(format!("{label}: the run failed: {e}")),
    };
    if let Some(why) = &report.aborted {
        return Some(format!("{label}: aborted: {why}"));
    }
    let table: Vec<String> = report
        .slos
        .iter()
        .map(|r| {
            format!(
                "    {} {:?}: {} {:?}",
                r.slo, r.verdict, r.measured, r.evidence
            )
        })
        .collect();
    let wrong = match env {
        None => report.slos.iter().any(|r| r.verdict != Verdict::Pass),
        Some(b) => !report.slos.iter().any(|r| {
            r.slo == b.slo
                && r.verdict == Verdict::Fail
                && r.evidence.iter().any(|e| e.contains(b.evidence))
        }),
    };
    wrong.then(|| format!("{label}:\n{}", table.join("\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_example_passes_and_each_broken_variant_is_caught_for_its_reason() {
    support::venv_python();
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/visit-prep-listener/setup.sh");
    let out = std::process::Command::new(&setup)
        .output()
        .expect("examples/visit-prep-listener/setup.sh runs (Node.js 20 and npm)");
    assert!(
        out.status.success(),
        "npm ci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut runs = tokio::task::JoinSet::new();
    for ex in EXAMPLES {
        runs.spawn(judge(ex.dir, None));
        for b in ex.broken {
            runs.spawn(judge(ex.dir, Some(b)));
        }
    }
    let mut wrong = vec![];
    while let Some(r) = runs.join_next().await {
        if let Some(w) = r.expect("a run does not panic") {
            wrong.push(w);
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    // After the examples, not beside them: four more SUTs at once would crowd two cores.
    tuning_reaches_the_booking_api_through_its_environment().await;
}

/// `tune --real-time` on the booking API, cut to four runs: one attempt against eight,
/// without and with backoff, under 70 % row locks. If the settings did not reach the SUT
/// through `tune.sut_env`, every row would be the same integration.
async fn tuning_reaches_the_booking_api_through_its_environment() {
    use crashcart::reference::resilience::Strategy;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = crashcart::scenario::load(&root.join("examples/booking-flow/tune.yaml"))
        .expect("the tune scenario is valid");
    let mut space = s.raw.tune.clone().expect("a tune: section");
    space.strategies = vec![Strategy::None, Strategy::FullJitter];
    space.base = vec![std::time::Duration::from_millis(50)];
    space.max_attempts = vec![1, 8];
    space.seeds = vec![1];
    space.clients = vec![2];
    let dir = std::env::temp_dir().join(format!("crashcart-tune-rt-{}", std::process::id()));
    let (configs, samples) = crashcart::tune::sweep_in(&s, &space, 4, &dir, true, || {})
        .await
        .expect("the sweep runs");
    let rows = crashcart::tune::rows(&configs, &samples);
    let table = crashcart::tune::table(&rows);
    let success = |attempts: &str| {
        rows.iter()
            .filter(|r| r.config.contains(&format!("attempts={attempts} ")))
            .map(|r| r.success)
            .fold(f64::NAN, f64::min)
    };
    assert_eq!(rows.len(), 4, "{table}");
    assert!(
        success("1") < 0.9 && success("8") >= 0.95,
        "one attempt should lose bookings to the row locks and eight should not:\n{table}"
    );
    assert!(rows.iter().any(|r| r.pareto), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}
