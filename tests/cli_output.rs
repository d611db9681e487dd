//! A closed console (`crashcart … | head`) does not make a command panic or change its exit
//! code: the command finishes its work and exits as it would have.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_crashcart");

/// A pipe whose reading end is already closed: every write to it fails with EPIPE, as
/// when `head` has read its lines and gone.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Stdio::from(OwnedFd::from(writer))
}

fn run_closed(args: &[&str], close_stderr: bool) -> (Option<i32>, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(root).stdout(closed_pipe());
    if close_stderr {
        cmd.stderr(closed_pipe());
    } else {
        cmd.stderr(Stdio::piped());
    }
    let out = cmd.output().expect("crashcart starts");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn commands_printing_to_a_closed_stdout_exit_as_usual() {
    for (args, code) in [
        (&["schema"][..], 0),
        (&["plan", "scenarios/bad-monday.yaml"][..], 0),
        (&["validate", "scenarios/bad-monday.yaml"][..], 0),
        // Invalid input still exits 2 with its message on stderr.
        (&["plan", "scenarios/does-not-exist.yaml"][..], 2),
    ] {
        let (status, stderr) = run_closed(args, false);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(status, Some(code), "{args:?}: {stderr}");
    }
}

#[test]
fn a_simulated_run_with_both_streams_closed_still_writes_its_report() {
    let dir = std::env::temp_dir().join(format!("crashcart-closed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_s = dir.display().to_string();
    let (status, _) = run_closed(
        &[
            "run",
            "--sim",
            "scenarios/token-expiry.yaml",
            "--report-dir",
            &dir_s,
        ],
        true,
    );
    // Exit 0 (every SLO met): the reference is correct on this scenario; a panic is 101.
    assert_eq!(status, Some(0));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let slos = report[0]["slos"].as_array().expect("the report lists SLOs");
    assert!(!slos.is_empty(), "{report}");
    assert!(slos.iter().all(|s| s["verdict"] == "pass"), "{report}");
    let _ = std::fs::remove_dir_all(dir);
}
