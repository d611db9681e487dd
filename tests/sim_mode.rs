//! Simulation mode: the same runner, mocks, faults, checkers and reference integration, in one
//! process on tokio's paused clock. The same seed gives the same history, byte for byte.

use std::path::Path;

use crashcart::run::{run, Events, RunOptions};

fn scenario(name: &str) -> crashcart::scenario::Scenario {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.yaml"));
    crashcart::scenario::load(&f).expect("shipped scenario")
}

fn opts(seed: Option<u64>, dir: &Path) -> RunOptions {
    RunOptions {
        seed,
        report_dir: Some(dir.to_path_buf()),
        defects: None,
        sim: true,
        policy: None,
        ..RunOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_history_digest_and_another_seed_another() {
    let dir = std::env::temp_dir().join(format!("crashcart-sim-{}", std::process::id()));
    let s = scenario("bad-monday");
    let wall = std::time::Instant::now();
    let a = run(&s, &opts(Some(5), &dir), &Events::none())
        .await
        .unwrap();
    let b = run(&s, &opts(Some(5), &dir), &Events::none())
        .await
        .unwrap();
    let c = run(&s, &opts(Some(6), &dir), &Events::none())
        .await
        .unwrap();
    assert!(a.report.digest.is_some());
    assert_eq!(a.report.digest, b.report.digest, "same seed, same history");
    assert_ne!(
        a.report.digest, c.report.digest,
        "another seed, another history"
    );
    assert!(a.report.requests > 100, "{} requests", a.report.requests);
    assert!(
        a.report.replay.ends_with("--seed 5 --sim"),
        "{}",
        a.report.replay
    );
    // 8 s of scenario time, three times, in far less wall time.
    assert!(
        wall.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        wall.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn simulation_needs_the_reference_integration() {
    let dir = std::env::temp_dir();
    let mut s = scenario("token-expiry");
    s.sut = crashcart::scenario::SutKind::Url("http://127.0.0.1:9".into());
    let e = run(&s, &opts(None, &dir), &Events::none())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, crashcart::Error::InvalidInput(m) if m.contains("--sim")),
        "{e}"
    );
    assert_eq!(e.exit_code(), crashcart::exit_code::INVALID_INPUT);
}

/// A two-step operation against the reference, in simulation: book (its answer held against
/// expectations, the Event's id captured), then a clinician's edit of that Event in the org
/// through the captured id. `expect` is the book step's body expectation.
fn steps_scenario(expect: &str) -> crashcart::scenario::Scenario {
    let text = format!(
        r#"
name: steps-on-the-reference
seed: 3
duration: 3s
mocks: {{llm: {{zero_delay: true}}}}
sut: {{reference: true}}
workload:
  rate: 4
  operations:
    - name: book-then-edit
      steps:
        - name: book
          path: /appointments
          body:
            booking_key: "{{{{key}}}}"
            patient: {{external_id: "{{{{patient.external_id}}}}", first_name: "{{{{patient.first_name}}}}", last_name: "{{{{patient.last_name}}}}"}}
            practitioner: "{{{{practitioner}}}}"
            start: "{{{{slot.start}}}}"
            end: "{{{{slot.end}}}}"
          expect:
            status: [200, 201]
            body: {{{expect}}}
          capture: {{event_id: /event}}
        - name: clinician-notes
          org: {{update: Event, id: "{{{{event_id}}}}", as: nurse.lind@crashcart.test, fields: {{Description: "Bring the inhaler"}}}}
      effects:
        - object: Event
          match: {{Id: "{{{{event_id}}}}", Description: "Bring the inhaler"}}
faults:
  - {{name: slow-llm, target: {{dependency: llm}}, fault: {{kind: latency, latency: {{distribution: fixed, value: 5ms}}}}}}
slos:
  - check: availability
    min_success_ratio: 0.9
  - check: consistency
"#
    );
    crashcart::scenario::validate::parse(&text, Path::new("steps.yaml")).expect("valid")
}

#[tokio::test(start_paused = true)]
async fn steps_carry_captured_ids_and_an_unmet_expectation_fails_the_operation_with_its_reason() {
    let dir = std::env::temp_dir().join(format!("crashcart-steps-{}", std::process::id()));
    let ok = run(
        &steps_scenario(r#""/event": {matches: "^00U"}, "/contact": {exists: true}"#),
        &opts(None, &dir),
        &Events::none(),
    )
    .await
    .unwrap();
    let verdicts: Vec<_> = ok
        .report
        .slos
        .iter()
        .map(|r| (&r.slo, r.verdict, &r.evidence))
        .collect();
    assert!(
        ok.report
            .slos
            .iter()
            .all(|r| r.verdict == crashcart::checks::Verdict::Pass),
        "{verdicts:?}"
    );
    assert!(ok.report.operations[1] >= 10, "{:?}", ok.report.operations);
    // Every completed operation recorded the id it captured, and the clinician's edit went
    // to that very Event (the consistency SLO found it by that id).
    let captured = ok
        .timeline
        .ops()
        .filter(|o| o.phase == crashcart::timeline::Phase::Ok)
        .filter(|o| {
            o.captured
                .get("event_id")
                .is_some_and(|id| id.starts_with("00U"))
        })
        .count() as u64;
    assert_eq!(captured, ok.report.operations[1]);

    let bad = run(
        &steps_scenario(r#""/event": {matches: "^a0X"}"#),
        &opts(None, &dir),
        &Events::none(),
    )
    .await
    .unwrap();
    assert_eq!(bad.report.operations[1], 0, "{:?}", bad.report.operations);
    let availability = bad
        .report
        .slos
        .iter()
        .find(|r| r.slo == "availability")
        .unwrap();
    assert_eq!(availability.verdict, crashcart::checks::Verdict::Fail);
    let why = availability.evidence.join("\n");
    assert!(
        why.contains("book: body /event is \"00U") && why.contains("expected text matching /^a0X/"),
        "{why}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
