//! Scenario files: the shipped ones validate against the Rust model and the JSON Schema;
//! bad files list every problem with its key path or line and column; `plan` resolves the
//! timeline; the CLI's exit codes follow the contract.

use std::path::Path;
use std::process::Command;

use crashcart::scenario::{self, plan::plan};

const BIN: &str = env!("CARGO_BIN_EXE_crashcart");

fn shipped() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("tune")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .chain(
            std::fs::read_dir(&examples)
                .unwrap()
                .map(|e| e.unwrap().path().join("scenario.yaml"))
                .filter(|p| p.is_file()),
        )
        .collect();
    v.sort();
    v
}

const BAD_STEPS: &str = r#"
duration: 5s
sut: {url: http://127.0.0.1:8080}
workload:
  rate: 1
  operations:
    - name: flow
      steps:
        - {path: "/a/{{booking_id}}", capture: {id: "id"}}
        - {run: [./job, --once], capture: {n: /n}}
        - {org: {create: Case, as: nobody@crashcart.test, fields: {Subjekt: x}}}
        - {org: {update: Kase, id: "{{id}}", fields: {Subject: x}}}
        - {path: /b, expect: {status: [700], body: {"/x": {matches: "("}}}}
      effects:
        - {object: Case, match: {Id: "{{case_id}}"}, written: [AI_Summary__c]}
        - {object: Case, match: {Id: "{{id}}"}, within: 20s, written: [Summary]}
drain: {max: 5s}
faults:
  - {fault: {kind: expire_tokens}}
slos:
  - check: consistency
"#;

#[test]
fn step_problems_are_located_down_to_the_capture_and_the_pointer() {
    let e = scenario::validate::parse(BAD_STEPS, Path::new("steps.yaml")).unwrap_err();
    let at: Vec<&str> = e.problems.iter().map(|p| p.at.as_str()).collect();
    let op = "workload.operations[0]";
    for want in [
        "steps[0].path",       // {{booking_id}} is captured nowhere before
        "steps[0].capture.id", // not a JSON pointer
        "steps[1].capture.n",  // a command answers nothing to capture
        "steps[2].org.as",     // no such user
        "steps[2].org.fields.Subjekt",
        "steps[3].org.update",    // no such sObject
        "steps[4].expect.status", // not an HTTP status
        "steps[4].expect.body./x.matches",
        "effects[0].match.Id", // case_id is captured by no step
        "effects[0].written",  // written without within
        "effects[1].written",  // no such field
    ] {
        let key = format!("{op}.{want}");
        assert!(at.contains(&key.as_str()), "{key} missing from {at:#?}");
    }
    assert!(
        at.contains(&"drain.max"),
        "a drain shorter than `within`: {at:#?}"
    );
    let text = e.to_string();
    assert!(text.contains("booking_id"), "{text}");
    assert!(text.contains("Subjekt"), "{text}");
}

#[test]
fn shipped_scenarios_validate_against_the_model_and_the_json_schema() {
    let schema = scenario::json_schema();
    let validator =
        jsonschema::validator_for(&schema).expect("crashcart schema is a valid JSON Schema");
    let files = shipped();
    assert!(!files.is_empty());
    for f in files {
        let s = scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let as_json: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&as_json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
        assert!(!s.raw.faults.is_empty() && !s.raw.slos.is_empty());
    }
}

const BAD: &str = r#"
duration: 30s
sut:
  command: ["python3", "x.py"]
  url: http://elsewhere:8080
workload:
  rate: 2
  concurrency: 3
  operations:
    - name: a
      path: appointments
      method: "GET POST"
    - name: a
      path: /x/{{patient.ssn}}
faults:
  - at: 45s
    fault: {kind: http_error, status: 700}
  - target: {route: "[unclosed"}
    fault: {kind: hang}
slos:
  - check: circuit_breaker
    dependency: mainframe
    max_calls: 3
  - check: availability
    min_success_ratio: 1.5
"#;

#[test]
fn every_problem_is_listed_with_its_key_path() {
    let e = scenario::validate::parse(BAD, Path::new("bad.yaml")).unwrap_err();
    let at: Vec<&str> = e.problems.iter().map(|p| p.at.as_str()).collect();
    for expected in [
        "sut",
        "sut.ready",
        "workload",
        "workload.operations[0].path",
        "workload.operations[0].method",
        "workload.operations[1].name",
        "workload.operations[1].path",
        "faults[0]",
        "faults[0].at",
        "faults[1]",
        "slos[0].dependency",
        "slos[1].min_success_ratio",
    ] {
        assert!(at.contains(&expected), "missing {expected} in {at:?}\n{e}");
    }
    let text = e.to_string();
    assert!(text.starts_with("bad.yaml: "), "{text}");
    assert!(
        text.contains(
            "bad.yaml: workload.operations[1].path: unknown template variable {{patient.ssn}}"
        ),
        "{text}"
    );
    assert!(text.contains("valid HTTP status, got 700"), "{text}");
}

#[test]
fn parse_errors_name_line_and_column() {
    let e = scenario::validate::parse("duration: 30s\nsut: {url: http://x}\nworkload:\n  rate: 1\n  operations: []\n  colour: red\n", Path::new("s.yaml")).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(
        e.problems[0].at.starts_with("line 6 column"),
        "{:?}",
        e.problems
    );
    assert!(e.problems[0].message.contains("colour"), "{:?}", e.problems);
}

#[test]
fn plan_unrolls_repeats_and_flaps_deterministically() {
    let text = r#"
duration: 20s
seed: 5
sut: {url: http://127.0.0.1:9}
workload: {concurrency: 2, operations: [{name: ping, method: GET, path: /ping}]}
faults:
  - name: blink
    at: 2s
    for: 6s
    flap: {on: 1s, off: 2s}
    fault: {kind: refuse_connections}
  - name: tick
    at: 1s
    for: 500ms
    repeat: {every: 5s, times: 3}
    fault: {kind: quota_exhausted}
"#;
    let s = scenario::validate::parse(text, Path::new("p.yaml")).unwrap();
    let p = plan(&s, 5);
    let lines: Vec<(u64, &str)> = p
        .events
        .iter()
        .map(|e| (e.at_ms, e.what.as_str()))
        .collect();
    let blink: Vec<u64> = lines
        .iter()
        .filter(|(_, w)| w.contains("blink"))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(blink, [2000, 3000, 5000, 6000, 8000], "{lines:?}");
    let tick_on: Vec<u64> = lines
        .iter()
        .filter(|(_, w)| w.starts_with("fault tick on"))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(tick_on, [1000, 6000, 11000]);
    assert_eq!(format!("{p}"), format!("{}", plan(&s, 5)));
}

#[test]
fn cli_validate_plan_and_schema_follow_the_exit_code_contract() {
    let dir = std::env::temp_dir().join(format!("crashcart-scn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, BAD).unwrap();
    let good = &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/salesforce-partition.yaml");
    let out = Command::new(BIN)
        .args(["validate"])
        .arg(good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml: 1") || err.contains("problems"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    let out = Command::new(BIN).args(["plan"]).arg(good).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fault sf-partition on"));
    let out = Command::new(BIN).args(["plan"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["schema"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["faults"].is_object());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_external_toxiproxy_must_be_loopback_unless_allowed() {
    let base = "duration: 5s\nsut: {url: http://127.0.0.1:9}\nworkload: {rate: 1, operations: [{name: p, path: /p}]}\n";
    let far = format!("{base}mocks: {{network: {{toxiproxy: \"10.0.0.7:8474\"}}}}\n");
    let e = scenario::validate::parse(&far, Path::new("far.yaml")).unwrap_err();
    assert_eq!(e.problems[0].at, "mocks.network.toxiproxy");
    assert!(
        e.problems[0].message.contains("not a loopback address"),
        "{e}"
    );
    let allowed =
        format!("{base}mocks: {{network: {{toxiproxy: \"10.0.0.7:8474\", allow_remote: true}}}}\n");
    assert!(scenario::validate::parse(&allowed, Path::new("ok.yaml")).is_ok());
    let local = format!(
        "{base}mocks: {{network: {{toxiproxy: \"127.0.0.1:8474\", salesforce_proxy: sf}}}}\n"
    );
    let s = scenario::validate::parse(&local, Path::new("ok.yaml")).unwrap();
    assert_eq!(s.raw.mocks.network.salesforce_proxy.as_deref(), Some("sf"));
}
