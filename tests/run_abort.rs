//! Ctrl-C during `crashcart run`: the run is marked aborted, the report is still written,
//! and nothing is left behind: no SUT process, no listening port, no active fault.

mod support;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_crashcart");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_aborts_cleanly_and_still_reports() {
    let python = tokio::task::spawn_blocking(support::venv_python)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("crashcart-abort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tag = format!("crashcart-abort-tag-{}", std::process::id());
    let scenario = dir.join("long.yaml");
    std::fs::write(
        &scenario,
        format!(
            r#"
name: long
seed: 3
duration: 10m
sut:
  command: ["{python}", "{script}", "{tag}"]
  ready: http://127.0.0.1:${{PORT}}/health
workload:
  concurrency: 2
  operations: [{{name: health, method: GET, path: /health}}]
faults:
  - {{name: slow, fault: {{kind: latency, latency: {{distribution: fixed, value: 50ms}}}}}}
  - {{name: partition, at: 1s, target: {{dependency: llm}}, fault: {{kind: partition}}}}
slos:
  - {{check: availability, min_success_ratio: 0.5}}
"#,
            python = python.display(),
            script = support::script("toy_sut.py").display(),
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait (bounded) until the workload runs, then a little longer so faults are active.
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = err.next_line().await.unwrap() {
            if l.trim() == "workload" {
                break;
            }
        }
    })
    .await
    .expect("the run reaches its workload within 30 s");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("crashcart exits after SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(3), "aborted runs exit 3");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert!(
        report[0]["aborted"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{report}"
    );
    let journal = std::fs::read_to_string(report[0]["journal"].as_str().unwrap()).unwrap();
    // Faults were in force when the signal came (at least the one active from the start),
    // and none is left.
    let cleared = journal
        .lines()
        .find(|l| l.contains("faults cleared ("))
        .expect("the cleanup is in the journal");
    let active: u32 = cleared
        .split("faults cleared (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        active >= 1 && cleared.contains("were active, 0 now)"),
        "{cleared}"
    );
    assert!(journal.contains("SUT stopped"));
    // No SUT process is left.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines().any(|l| l.contains(&tag)),
        "a SUT process survived:\n{ps}"
    );
    // No port the run listened on is still open: mocks, proxies, the SUT.
    let listening: Vec<String> = journal
        .lines()
        .find(|l| l.contains("listening:"))
        .unwrap()
        .split_whitespace()
        .filter_map(|w| {
            w.split_once("http://")
                .map(|(_, a)| a.trim_end_matches(['"', '}']).to_string())
        })
        .collect();
    assert!(listening.len() >= 4, "{listening:?}");
    let sut_port = journal
        .lines()
        .find(|l| l.contains("toy-sut listening on"))
        .and_then(|l| l.split("listening on ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    for addr in listening
        .iter()
        .cloned()
        .chain([format!("127.0.0.1:{sut_port}")])
    {
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "{addr} still accepts connections"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
