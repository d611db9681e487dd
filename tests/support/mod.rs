//! Shared helpers of the harness's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's Python venv with the real client libraries (created on first use by
/// tests/python/setup-venv.sh, which .ci/run also calls).
pub fn venv_python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("tests/python/setup-venv.sh"))
        .output()
        .expect("tests/python/setup-venv.sh runs (needs python3 with venv)");
    assert!(
        out.status.success(),
        "setting up the Python venv failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A script under tests/python.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Run a Python script with the venv and parse the one JSON object it prints.
pub async fn run_json(
    python: &Path,
    script: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> serde_json::Value {
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script).args(args).kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the client script finishes within 120 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed:\nstdout: {stdout}\nstderr: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {stdout}", script.display()))
}
