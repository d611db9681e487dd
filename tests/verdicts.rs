//! What a scenario says must mean what it says, on any SUT: a fault that hit nothing fails the
//! run, a target that cannot match is refused before anything starts, a bare relative
//! scenario path starts its SUT where it lies, `--sut-env` reaches the SUT, the drain lets
//! background work finish. Each of these was found trying crashcart on integrations it was
//! not built beside (issue 14).

use std::path::{Path, PathBuf};
use std::process::Command;

use crashcart::run::{run, Events, RunOptions};

const BIN: &str = env!("CARGO_BIN_EXE_crashcart");

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crashcart-verdicts-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A short booking scenario against the reference, with `faults` and `extra` top-level keys.
fn booking(faults: &str, extra: &str) -> String {
    format!(
        r#"
name: verdicts
seed: 3
duration: 3s
mocks: {{llm: {{zero_delay: true}}}}
sut: {{reference: true}}
workload:
  rate: 5
  timeout: 5s
  operations:
    - name: book
      path: /appointments
      body:
        booking_key: "{{{{key}}}}"
        patient: {{external_id: "{{{{patient.external_id}}}}", last_name: "{{{{patient.last_name}}}}"}}
        practitioner: "{{{{practitioner}}}}"
        start: "{{{{slot.start}}}}"
        end: "{{{{slot.end}}}}"
faults:
{faults}
slos:
  - check: availability
    min_success_ratio: 0.5
{extra}
"#
    )
}

fn load(dir: &Path, name: &str, text: &str) -> crashcart::scenario::Scenario {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    crashcart::scenario::load(&f).unwrap_or_else(|e| panic!("{e}"))
}

fn sim(dir: &Path) -> RunOptions {
    RunOptions {
        report_dir: Some(dir.to_path_buf()),
        sim: true,
        ..RunOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_fault_that_hit_no_request_fails_the_run_unless_it_may_not_fire() {
    let dir = tempdir("unfired");
    // The reference never writes Accounts: this fault tests nothing.
    let fault = |extra: &str| {
        format!(
            "  - name: accounts-down\n    target: {{dependency: salesforce, sobject: Account}}\n    fault: {{kind: http_error, status: 503}}\n{extra}"
        )
    };
    let s = load(&dir, "a.yaml", &booking(&fault(""), ""));
    let r = run(&s, &sim(&dir), &Events::none()).await.unwrap().report;
    assert!(
        r.slos
            .iter()
            .all(|s| s.verdict != crashcart::checks::Verdict::Fail),
        "{r:?}"
    );
    assert_eq!(r.unfired_faults.len(), 1, "{:?}", r.unfired_faults);
    assert!(
        r.unfired_faults[0].contains("accounts-down"),
        "{:?}",
        r.unfired_faults
    );
    assert_eq!(r.exit_code(), crashcart::exit_code::SLO_FAILED);
    assert!(r.console().contains("FAULT NOT TESTED"), "{}", r.console());
    let s = load(
        &dir,
        "b.yaml",
        &booking(&fault("    may_not_fire: true\n"), ""),
    );
    let r = run(&s, &sim(&dir), &Events::none()).await.unwrap().report;
    assert!(r.unfired_faults.is_empty() && r.passed(), "{r:?}");
    // A fault that hits, hits.
    let hits = "  - target: {dependency: salesforce, sobject: Event}\n    trigger: {first_n: 1}\n    fault: {kind: http_error, status: 503}\n";
    let s = load(&dir, "c.yaml", &booking(hits, ""));
    let r = run(&s, &sim(&dir), &Events::none()).await.unwrap().report;
    assert!(r.unfired_faults.is_empty(), "{:?}", r.unfired_faults);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn targets_that_cannot_match_are_refused_with_the_closest_name() {
    let dir = tempdir("targets");
    let text = booking(
        "  - target: {dependency: salesforce, sobject: Evnet}\n    fault: {kind: http_error, status: 503}\n  - target: {dependency: llm, operation: query}\n    fault: {kind: hang}\n  - fault: {kind: field_removed, object: Contact, field: Emial}",
        "",
    )
    .replace(
        "        end: \"{{slot.end}}\"\n",
        "        end: \"{{slot.end}}\"\n      effects:\n        - {object: Appointment__c, match: {Key__c: \"{{key}}\"}}\n",
    );
    let f = dir.join("bad.yaml");
    std::fs::write(&f, text).unwrap();
    let out = Command::new(BIN).arg("validate").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("faults[0].target.sobject") && err.contains("did you mean \"Event\""),
        "{err}"
    );
    assert!(
        err.contains("faults[1].target.operation") && err.contains("cannot match"),
        "{err}"
    );
    assert!(
        err.contains("faults[2].fault") && err.contains("did you mean \"Email\""),
        "{err}"
    );
    assert!(
        err.contains("workload.operations[0].effects[0].object") && err.contains("Appointment__c"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_counts_in_words() {
    let dir = tempdir("count");
    let f = dir.join("one.yaml");
    std::fs::write(
        &f,
        booking("  - fault: {kind: expire_tokens}\n    at: 1s", ""),
    )
    .unwrap();
    let out = Command::new(BIN).arg("validate").arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 fault, 1 SLO)"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SUT that is ready only when `$FLAVOUR` is `ok`: python's http.server on `$PORT`.
fn picky_sut(dir: &Path) -> PathBuf {
    let f = dir.join("picky.yaml");
    std::fs::write(
        &f,
        r#"
name: picky
seed: 1
duration: 1s
sut:
  command: 'test "$FLAVOUR" = ok && exec python3 -m http.server "$PORT" --bind 127.0.0.1'
  ready: http://127.0.0.1:${PORT}/
  ready_timeout: 10s
  grace: 1s
workload:
  rate: 4
  timeout: 2s
  operations:
    - {name: list, method: GET, path: /}
slos:
  - check: availability
    min_success_ratio: 0.9
drain: {max: 0s}
"#,
    )
    .unwrap();
    f
}

#[test]
fn a_bare_relative_scenario_path_starts_its_sut_where_it_lies_and_sut_env_reaches_it() {
    let dir = tempdir("relative");
    picky_sut(&dir);
    // Before: `run picky.yaml` tried to start the SUT "in ", and failed.
    let s = crashcart::scenario::load(&dir.join("picky.yaml")).unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .current_dir(&dir)
            .args(["run", "picky.yaml", "--report-dir", "reports"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--sut-env", "FLAVOUR=ok"]);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    // Without it the SUT exits before it is ready: the run is aborted.
    let out = run(&[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A bad pair is refused by the command line.
    assert_eq!(run(&["--sut-env", "1X=y"]).status.code(), Some(2));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bare_relative_file_name_means_the_current_directory() {
    let s = crashcart::scenario::validate::parse(
        "duration: 1s\nsut: {command: [x], ready: 'http://127.0.0.1:${PORT}/'}\nworkload: {rate: 1, operations: [{name: a, path: /}]}\n",
        Path::new("x.yaml"),
    )
    .unwrap();
    let crashcart::scenario::SutKind::Command { cwd, .. } = &s.sut else {
        panic!("{:?}", s.sut)
    };
    assert_eq!(cwd, Path::new("."));
}

#[tokio::test(start_paused = true)]
async fn the_drain_waits_for_quiet_and_can_be_turned_off() {
    let dir = tempdir("drain");
    let s = load(&dir, "d.yaml", &booking("  []", ""));
    let marks = |t: &crashcart::timeline::Timeline| -> Vec<String> {
        t.events
            .iter()
            .filter_map(|e| match e {
                crashcart::timeline::Event::Run { what, .. } => Some(what.clone()),
                _ => None,
            })
            .collect()
    };
    let o = run(&s, &sim(&dir), &Events::none()).await.unwrap();
    let m = marks(&o.timeline);
    let drained = m
        .iter()
        .find(|w| w.starts_with("drain ended after"))
        .cloned();
    assert!(
        drained
            .as_deref()
            .is_some_and(|d| d.contains("quiet for 1s")),
        "{m:?}"
    );
    let cleared = m
        .iter()
        .position(|w| w.starts_with("faults cleared"))
        .unwrap();
    let drain = m.iter().position(|w| w.starts_with("drain ended")).unwrap();
    assert!(
        cleared < drain,
        "faults are cleared before the drain: {m:?}"
    );
    let s = load(&dir, "e.yaml", &booking("  []", "drain: {max: 0s}"));
    let o = run(&s, &sim(&dir), &Events::none()).await.unwrap();
    assert!(!marks(&o.timeline).iter().any(|w| w.starts_with("drain")));
    let _ = std::fs::remove_dir_all(&dir);
}
