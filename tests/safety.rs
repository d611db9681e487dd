//! Safe on any input (issue 15): a scenario is a file from someone else, and a run is stopped
//! by people and machines in every way. Each test here failed on the code before its fix.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_crashcart");

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crashcart-safety-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn validate(text: &str, dir: &Path) -> (i32, String, String) {
    let f = dir.join("s.yaml");
    std::fs::write(&f, text).unwrap();
    let out = Command::new(BIN).arg("validate").arg(&f).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const SMALL: &str =
    "sut: {reference: true}\nworkload: {rate: 1, operations: [{name: a, path: /}]}\n";

#[test]
fn values_that_would_exhaust_the_machine_are_refused_with_their_range() {
    let dir = tempdir("bounds");
    for (yaml, key) in [
        ("duration: 1s\nfaults: [{fault: {kind: expire_tokens}, repeat: {every: 1ns}}]\n", "repeat.every"),
        ("duration: 1s\nfaults: [{fault: {kind: partition}, flap: {on: 0s, off: 0s}}]\n", "flap.on"),
        ("duration: 99999h\n", "duration"),
        ("duration: 1s\nsut: {reference: true, grace: 99999h}\nworkload: {rate: 1, operations: [{name: a, path: /}]}\n", "sut.grace"),
    ] {
        let text = if yaml.contains("sut:") { yaml.to_string() } else { format!("{yaml}{SMALL}") };
        let (code, _, err) = validate(&text, &dir);
        assert_eq!(code, 2, "{yaml}: {err}");
        assert!(err.contains(key) && err.contains("out of range"), "{yaml}: {err}");
    }
    for (workload, key) in [
        (
            "{rate: 1e12, operations: [{name: a, path: /}]}",
            "workload.rate",
        ),
        (
            "{concurrency: 1000000, operations: [{name: a, path: /}]}",
            "workload.concurrency",
        ),
    ] {
        let text = format!("duration: 1s\nsut: {{reference: true}}\nworkload: {workload}\n");
        let (code, _, err) = validate(&text, &dir);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(key) && err.contains("between"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_data_file_that_is_not_yaml_is_refused_without_echoing_it() {
    // Anything may be named as a schema or personas file: a password file, a patient export,
    // a binary. The error names the file's key and position, never its contents.
    let dir = tempdir("echo");
    let files = [
        (
            "passwd.txt",
            "root:x:0:0:SECRET-ROOT-LINE:/root:/bin/bash\n{{{ [\n".as_bytes(),
        ),
        (
            "patients.csv",
            b"SECRET-PATIENT Jane Doe,1980-01-01\n".as_slice(),
        ),
        (
            "typed.yaml",
            b"objects: SECRET-VALUE\nmodels: SECRET-MODEL\n".as_slice(),
        ),
        ("binary.dat", b"\xff\xfeSECRET-BIN\x00\x01".as_slice()),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
        let text = format!(
            "duration: 1s\nmocks: {{salesforce: {{schema: [{name}]}}, llm: {{personas: [{name}]}}}}\n{SMALL}"
        );
        let (code, out, err) = validate(&text, &dir);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.contains("mocks.salesforce.schema[0]") && err.contains("mocks.llm.personas[0]"),
            "{name}: {err}"
        );
        assert!(
            !format!("{out}{err}").contains("SECRET"),
            "{name} echoed: {err}"
        );
        let (code, err) = serve_refusing(&dir, &["--schema", name]);
        assert_eq!(code, 2, "serve --schema {name}: {err}");
        assert!(
            !err.contains("SECRET"),
            "serve --schema {name} echoed: {err}"
        );
        let (code, err) = serve_refusing(&dir, &["--personas", name]);
        assert_eq!(code, 2, "serve --personas {name}: {err}");
        assert!(
            !err.contains("SECRET"),
            "serve --personas {name} echoed: {err}"
        );
    }
}

/// `crashcart serve` with `args`, expected to refuse them and exit within 20 s: its exit code
/// and stderr.
fn serve_refusing(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(["serve", "--port", "0", "--llm-port", "0", "--api-port", "0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `crashcart plan` of a scenario with this duration and fault line: its output, after
/// checking it exits 0 in fewer than 400 lines.
fn bounded_plan(dir: &Path, duration: &str, fault: &str) -> String {
    let f = dir.join("p.yaml");
    std::fs::write(
        &f,
        format!("duration: {duration}\nfaults: [{fault}]\n{SMALL}"),
    )
    .unwrap();
    let out = Command::new(BIN).arg("plan").arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().count() < 400, "{} lines", text.lines().count());
    text
}

#[test]
fn a_plan_of_a_fault_repeating_every_millisecond_is_bounded() {
    let dir = tempdir("plan");
    let text = bounded_plan(
        &dir,
        "1h",
        "{fault: {kind: expire_tokens}, repeat: {every: 1ms}}",
    );
    assert!(
        text.contains("starts 3600001 times"),
        "{}",
        &text[..text.len().min(500)]
    );
    // A fault every second of the day that flaps every millisecond: 86 million flaps.
    let text = bounded_plan(
        &dir,
        "24h",
        "{fault: {kind: partition}, repeat: {every: 1s}, flap: {on: 1ms, off: 1ms}}",
    );
    assert!(
        text.contains("further flaps are not listed"),
        "{}",
        &text[..text.len().min(500)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scenario_name_cannot_escape_the_report_dir_nor_drive_the_terminal() {
    let dir = tempdir("names");
    let reports = dir.join("reports");
    for name in [
        "/tmp/crashcart-escaped",
        "../../escaped",
        "x\u{1b}[2J\u{1b}]0;owned\u{7}",
    ] {
        let f = dir.join("n.yaml");
        std::fs::write(
            &f,
            format!("name: {name:?}\nseed: 1\nduration: 1s\nmocks: {{llm: {{zero_delay: true}}}}\n{SMALL}"),
        )
        .unwrap();
        let out = Command::new(BIN)
            .args(["run", "--sim"])
            .arg(&f)
            .arg("--report-dir")
            .arg(&reports)
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(!o.contains('\u{1b}') && !e.contains('\u{1b}'), "{o}\n{e}");
        for entry in std::fs::read_dir(&reports).unwrap() {
            let p = entry.unwrap().path();
            assert_eq!(p.parent(), Some(reports.as_path()), "{}", p.display());
        }
    }
    assert!(!Path::new("/tmp/crashcart-escaped-1.jsonl").exists());
    assert!(!dir.join("escaped-1.jsonl").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sut_elsewhere_needs_allow_remote() {
    let dir = tempdir("remote");
    let text = "duration: 1s\nsut: {url: 'http://10.1.2.3:8080'}\nworkload: {rate: 1, operations: [{name: a, path: /}]}\n";
    let (code, _, err) = validate(text, &dir);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sut.url") && err.contains("allow_remote"),
        "{err}"
    );
    let allowed = text.replace("sut: {url:", "sut: {allow_remote: true, url:");
    assert_eq!(validate(&allowed, &dir).0, 0);
    let local = "duration: 1s\nsut: {url: 'http://localhost:8080'}\nworkload: {rate: 1, operations: [{name: a, path: /}]}\n";
    assert_eq!(validate(local, &dir).0, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn populate_is_all_or_nothing() {
    use tower::ServiceExt;
    let proxy = crashcart::proxy::ChaosProxy::new(1, false);
    let app = crashcart::proxy::api::router(proxy.clone());
    let body = serde_json::json!([
        {"name": "good", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"},
        {"name": "bad", "listen": "127.0.0.1:0", "upstream": "10.1.2.3:443"}
    ]);
    let req = http::Request::post("/populate")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(
        proxy.list().is_empty(),
        "nothing is created when one item is refused"
    );
}

/// Run `crashcart run FILE` and wait (bounded) until its stderr says `line`.
async fn run_until(
    file: &Path,
    dir: &Path,
    line: &str,
) -> (tokio::process::Child, tokio::process::ChildStderr) {
    // One run at a time: its phases reach the console as they come.
    let mut child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(file)
        .args(["--jobs", "1"])
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = err.next_line().await.unwrap() {
            if l.trim() == line {
                return;
            }
        }
        panic!("stderr ended before {line:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {line:?} within 30 s"));
    (child, err.into_inner().into_inner())
}

/// A SUT: python's http.server, tagged in `ps` by its directory; `ignore_term` makes it
/// ignore SIGTERM; `grandchild` leaves a sleeping grandchild in its group.
fn sut_scenario(
    dir: &Path,
    tag: &str,
    ignore_term: bool,
    grandchild: bool,
    grace: &str,
) -> PathBuf {
    let serve_dir = dir.join(tag);
    std::fs::create_dir_all(&serve_dir).unwrap();
    let mut cmd = String::new();
    if ignore_term {
        cmd.push_str("trap '' TERM; ");
    }
    if grandchild {
        cmd.push_str(&format!(
            "python3 -c 'import time; time.sleep(600)' {tag} & "
        ));
    }
    cmd.push_str(&format!(
        "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1 --directory {}",
        serve_dir.display()
    ));
    let f = dir.join(format!("{tag}.yaml"));
    std::fs::write(
        &f,
        format!(
            r#"
name: {tag}
seed: 1
duration: 10m
sut:
  command: {cmd:?}
  ready: http://127.0.0.1:${{PORT}}/
  grace: {grace}
workload:
  concurrency: 1
  operations: [{{name: list, method: GET, path: /}}]
slos:
  - {{check: availability, min_success_ratio: 0.5}}
"#
        ),
    )
    .unwrap();
    f
}

/// True while a process whose command line holds `tag` runs, polled up to `limit`.
async fn gone_within(tag: &str, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        if !String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.contains(tag) && !l.contains("ps -eo"))
        {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(child: &tokio::process::Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, sig) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_crashcart_takes_its_sut_and_its_grandchildren_along() {
    let dir = tempdir("sigkill");
    let tag = format!("cc-sigkill-{}", std::process::id());
    let f = sut_scenario(&dir, &tag, false, true, "5s");
    let (mut child, _err) = run_until(&f, &dir, "workload").await;
    signal(&child, libc::SIGKILL);
    let _ = child.wait().await;
    assert!(
        gone_within(&tag, Duration::from_secs(10)).await,
        "the SUT outlived crashcart"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_cleanup_kills_a_sut_that_ignores_sigterm_at_once() {
    let dir = tempdir("escalate");
    let tag = format!("cc-escalate-{}", std::process::id());
    let f = sut_scenario(&dir, &tag, true, false, "10m");
    let (mut child, err) = run_until(&f, &dir, "workload").await;
    signal(&child, libc::SIGINT);
    // Wait for the cleanup phase, then a second Ctrl-C.
    let mut lines = BufReader::new(err).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.trim() == "cleanup" {
                return;
            }
        }
    })
    .await
    .expect("cleanup starts");
    signal(&child, libc::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("crashcart ends long before the SUT's 10 m grace")
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let report = report_of(&dir);
    assert!(
        report[0]["aborted"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{report}"
    );
    assert!(gone_within(&tag, Duration::from_secs(10)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_is_on_disk_while_the_run_goes() {
    // A four-hour game day must not hold its journal in memory until the end: the lines are
    // on disk during the workload (before, the journal was written at the end only).
    let dir = tempdir("journal");
    let tag = format!("cc-journal-{}", std::process::id());
    let f = sut_scenario(&dir, &tag, false, false, "5s");
    let (mut child, _err) = run_until(&f, &dir, "workload").await;
    let journal = dir.join(format!("reports/{tag}-1.jsonl"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ops = loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        let ops = text
            .lines()
            .filter(|l| l.contains(r#""type":"op""#))
            .count();
        if ops >= 3 || tokio::time::Instant::now() > deadline {
            break ops;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    signal(&child, libc::SIGINT);
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    assert!(
        ops >= 3,
        "{ops} operations in the journal during the workload"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_signal_stops_a_run_of_several_scenarios() {
    let dir = tempdir("several");
    let tag = format!("cc-several-{}", std::process::id());
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    for n in ["a", "b"] {
        let f = sut_scenario(&dir, &format!("{tag}-{n}"), false, false, "2s");
        std::fs::rename(&f, scenarios.join(format!("{n}.yaml"))).unwrap();
    }
    let (mut child, _err) = run_until(&scenarios, &dir, "workload").await;
    signal(&child, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the whole run stops")
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let report = report_of(&dir);
    assert_eq!(report.as_array().unwrap().len(), 2, "{report}");
    assert!(
        report[1]["aborted"]
            .as_str()
            .unwrap()
            .starts_with("not run"),
        "{report}"
    );
    assert!(gone_within(&tag, Duration::from_secs(10)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run's `report.json` under `dir/reports`.
fn report_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reports/report.json")).unwrap())
        .unwrap()
}

/// True once a process whose command line holds `tag` runs, polled up to `limit`.
async fn up_within(tag: &str, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        if String::from_utf8_lossy(&ps.stdout).contains(tag) {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_signal_stops_scenarios_running_side_by_side() {
    let dir = tempdir("side");
    let tag = format!("cc-side-{}", std::process::id());
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    for n in ["a", "b", "c"] {
        let f = sut_scenario(&dir, &format!("{tag}-{n}"), false, false, "2s");
        std::fs::rename(&f, scenarios.join(format!("{n}.yaml"))).unwrap();
    }
    let mut child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&scenarios)
        .args(["--jobs", "2", "--report-dir"])
        .arg(dir.join("reports"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for n in ["a", "b"] {
        assert!(
            up_within(&format!("{tag}-{n}"), Duration::from_secs(30)).await,
            "the SUT of {n} runs"
        );
    }
    signal(&child, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the whole run stops")
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let report = report_of(&dir);
    let aborted: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["aborted"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(aborted.len(), 3, "{report}");
    assert!(
        aborted[..2]
            .iter()
            .all(|a| !a.is_empty() && !a.starts_with("not run")),
        "both running scenarios were stopped: {report}"
    );
    assert!(aborted[2].starts_with("not run"), "{report}");
    assert!(gone_within(&tag, Duration::from_secs(10)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The signal mask of a process: true once it catches SIGINT (bit 2 of `SigCgt`).
fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .is_some_and(|m| m & 0b10 != 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctrl_c_in_the_first_milliseconds_ends_the_run_cleanly() {
    let dir = tempdir("early");
    let tag = format!("cc-early-{}", std::process::id());
    let f = sut_scenario(&dir, &tag, false, false, "2s");
    let mut child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&f)
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    // As soon as the process catches Ctrl-C (its very first step), send one.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !catches_sigint(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "crashcart never caught SIGINT"
        );
        std::thread::yield_now();
    }
    signal(&child, libc::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("crashcart ends")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "ended by the default action: {status:?}"
    );
    assert!(dir.join("reports/report.json").exists());
    assert!(gone_within(&tag, Duration::from_secs(10)).await);
    let _ = std::fs::remove_dir_all(&dir);
}
