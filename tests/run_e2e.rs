//! `crashcart run` end to end: a small SUT (tests/python/toy_sut.py) started through the SUT
//! contract, under token expiry and a Salesforce partition. A correct SUT meets the SLOs
//! (exit 0); the same SUT with its token refresh removed fails the token SLO (exit 1). The
//! JUnit file parses, the journal re-checks.

mod support;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_crashcart");

/// The faults of the plain runs.
const FAULTS: &str = r#"faults:
  - name: tokens-expire
    at: 2s
    for: 500ms
    fault: {kind: expire_tokens}
  - name: sf-partition
    at: 3500ms
    for: 1s
    target: {dependency: salesforce}
    fault: {kind: partition}
"#;

/// The toy SUT's scenario with `faults` (a `faults:` block, or an `explore:` budget).
fn scenario(dir: &Path, python: &Path, defect: bool, faults: &str) -> std::path::PathBuf {
    let script = support::script("toy_sut.py");
    let args = if defect { ", \"--no-refresh\"" } else { "" };
    let text = format!(
        r#"
name: toy-{name}
seed: 7
duration: 6s
sut:
  command: ["{python}", "{script}"{args}]
  ready: http://127.0.0.1:${{PORT}}/health
  ready_timeout: 20s
  grace: 2s
workload:
  rate: 4
  timeout: 5s
  operations:
    - name: book
      path: /appointments
      body:
        booking_key: "{{{{key}}}}"
        patient: {{external_id: "{{{{patient.external_id}}}}", first_name: "{{{{patient.first_name}}}}", last_name: "{{{{patient.last_name}}}}"}}
        start: "{{{{slot.start}}}}"
        end: "{{{{slot.end}}}}"
      effects:
        - object: Event
          match: {{Booking_Key__c: "{{{{key}}}}"}}
{faults}
slos:
  - check: token
    refresh_within_requests: 4
    max_refreshes_per_expiry: 4
  - check: availability
    min_success_ratio: 0.5
  - check: consistency
"#,
        name = if defect { "no-refresh" } else { "good" },
        python = python.display(),
        script = script.display(),
    );
    let path = dir.join(format!(
        "toy-{}{}.yaml",
        if defect { "defect" } else { "good" },
        if faults.starts_with("explore") {
            "-explore"
        } else {
            ""
        }
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(file: &Path, dir: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["run"])
        .arg(file)
        .arg("--report-dir")
        .arg(dir)
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_correct_sut_meets_the_slos_and_a_defective_one_fails_the_token_slo() {
    let python = support::venv_python();
    let dir = std::env::temp_dir().join(format!("crashcart-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let good = scenario(&dir, &python, false, FAULTS);
    let (code, out, err) = run(&good, &dir);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("all SLOs met") && out.contains("seed 7"),
        "{out}"
    );
    assert!(
        out.contains("replay: crashcart run") && out.contains("--seed 7"),
        "{out}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let parsed = quick_junit::Report::deserialize_from_str(&junit).expect("the JUnit file parses");
    assert_eq!(parsed.test_suites.len(), 1);
    assert_eq!(parsed.test_suites[0].test_cases.len(), 3);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let slos = &report[0]["slos"];
    let verdict = |name: &str| {
        slos.as_array()
            .unwrap()
            .iter()
            .find(|s| s["slo"] == name)
            .unwrap()["verdict"]
            .clone()
    };
    assert_eq!(verdict("token"), "pass", "{report}");
    assert_eq!(verdict("consistency"), "pass", "{report}");
    let html =
        std::fs::read_to_string(dir.join("toy-good-7.html")).expect("an HTML report per scenario");
    assert!(
        html.contains("<svg") && html.contains("tokens-expire") && html.contains("sf-partition"),
        "fault bands drawn"
    );
    assert!(
        html.contains("all SLOs met") && html.contains("crashcart run"),
        "verdict and replay command"
    );
    let journal = report[0]["journal"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains("INVALID_SESSION_ID") && text.contains("\"type\":\"sut_log\""),
        "the journal has the 401s and the SUT's output"
    );
    assert!(
        !text.contains("crashcart-consumer-secret") && !text.contains("crashcart-Pa55"),
        "no secrets in the journal"
    );
    // Re-checking the journal gives the same token verdict without re-running.
    let out = Command::new(BIN)
        .args(["check", &journal, "--scenario"])
        .arg(&good)
        .args(["--seed", "7"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let bad = scenario(&dir, &python, true, FAULTS);
    let (code, out, err) = run(&bad, &dir);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("SLO FAILED"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let token = report[0]["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slo"] == "token")
        .unwrap()
        .clone();
    assert_eq!(token["verdict"], "fail", "{report}");
    assert!(
        token["evidence"][0]
            .as_str()
            .unwrap()
            .contains("never obtained a new token"),
        "{token}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `crashcart explore --real-time` against an external SUT: the toy SUT without token
/// refresh, explored with token expiries only, is caught in wall time, and the counterexample
/// names a real-time replay (no `--sim`) against the scenario's own SUT.
#[test]
fn explore_in_real_time_catches_an_external_suts_missing_refresh() {
    let python = support::venv_python();
    let dir = std::env::temp_dir().join(format!("crashcart-e2e-explore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = scenario(
        &dir,
        &python,
        true,
        "faults: []\nexplore: {kinds: [expire_tokens], max_faults: 3}\n",
    );
    let out_file = dir.join("counterexample.yaml");
    let out = Command::new(BIN)
        .arg("explore")
        .arg(&file)
        .args(["--real-time", "--cases", "3", "--shrink-iters", "1"])
        .arg("--out")
        .arg(&out_file)
        .arg("--regressions")
        .arg(dir.join("regressions"))
        .arg("--report-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("the scenario's SUT, real time") && stdout.contains("breaks token"),
        "{stdout}"
    );
    let yaml = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        yaml.contains("kind: expire_tokens") && yaml.contains("toy_sut.py"),
        "{yaml}"
    );
    assert!(
        yaml.starts_with("# Found by `crashcart explore`") && !yaml.contains("--sim"),
        "{yaml}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A scenario whose SUT becomes ready only once the other scenario's SUT has started: it can
/// pass only when both run at the same time.
fn waits_for(dir: &Path, me: &str, other: &str) -> std::path::PathBuf {
    let up = |n: &str| dir.join(format!("{n}.up")).display().to_string();
    let cmd = format!(
        "touch {me_up}; while [ ! -e {other_up} ]; do sleep 0.02; done; exec python3 -m http.server \"$PORT\" --bind 127.0.0.1 --directory {dir}",
        me_up = up(me),
        other_up = up(other),
        dir = dir.display()
    );
    let path = dir.join(format!("{me}.yaml"));
    let text = format!(
        r#"
name: side-{me}
seed: 3
duration: 1s
sut:
  command: {cmd:?}
  ready: http://127.0.0.1:${{PORT}}/
  ready_timeout: 20s
  grace: 1s
workload:
  concurrency: 1
  operations: [{{name: list, method: GET, path: /}}]
slos:
  - {{check: availability, min_success_ratio: 0.9}}
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn scenarios_of_a_directory_run_side_by_side_and_report_in_their_order() {
    let dir = std::env::temp_dir().join(format!("crashcart-side-{}", std::process::id()));
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    waits_for(&scenarios, "a", "b");
    waits_for(&scenarios, "b", "a");
    let out = Command::new(BIN)
        .arg("run")
        .arg(&scenarios)
        .args(["--jobs", "2", "--report-dir"])
        .arg(dir.join("reports"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reports/report.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["side-a", "side-b"], "the scenarios' order");
    // Each run's console output is one piece: its table never has the other's lines inside.
    let table = |name: &str| {
        let start = stdout
            .find(&format!("scenario {name}"))
            .expect("a table per run");
        let len = stdout[start..].find("replay:").expect("the table's end");
        stdout[start..start + len].to_string()
    };
    assert!(!table("side-a").contains("side-b"), "{stdout}");
    assert!(!table("side-b").contains("side-a"), "{stdout}");
    assert!(stderr.contains("crashcart run: side-a started"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
