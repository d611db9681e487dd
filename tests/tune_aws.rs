//! `crashcart tune` repeats the classic contention study ("Exponential Backoff And Jitter",
//! AWS Architecture Blog): clients each make one conditional write to one record and retry on
//! 412. The published qualitative findings must hold in our simulation; bad sweep spaces are
//! refused with exit code 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use crashcart::tune::{rows, sweep, Row};

fn aws() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/tune/aws-jitter.yaml")
}

fn row<'a>(rows: &'a [Row], strategy: &str, clients: u32) -> &'a Row {
    rows.iter()
        .find(|r| r.strategy == strategy && r.clients == clients)
        .unwrap_or_else(|| panic!("no row {strategy} × {clients}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_findings_hold() {
    let s = crashcart::scenario::load(&aws()).unwrap();
    let mut space = s.raw.tune.clone().expect("the scenario has a tune section");
    space.clients = vec![10, 50, 100];
    let dir = std::env::temp_dir().join(format!("crashcart-tune-{}", std::process::id()));
    let (configs, samples) = sweep(&s, &space, 2, &dir, || {}).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let rows = rows(&configs, &samples);
    eprintln!("{}", crashcart::tune::table(&rows));
    let n = 100;
    let (exp, full, equal, decor) = (
        row(&rows, "exponential", n),
        row(&rows, "full-jitter", n),
        row(&rows, "equal-jitter", n),
        row(&rows, "decorrelated", n),
    );
    for r in [exp, full, equal, decor] {
        assert_eq!(r.success, 1.0, "every write lands eventually: {}", r.config);
    }
    // No-jitter exponential backoff needs the most calls and the most time.
    for other in [full, equal, decor] {
        assert!(exp.calls > other.calls, "{} vs {}", exp.calls, other.calls);
        assert!(exp.completion_mean_s > other.completion_mean_s);
    }
    // Full jitter needs the fewest calls.
    for other in [exp, equal, decor] {
        assert!(
            full.calls <= other.calls,
            "{} vs {}",
            full.calls,
            other.calls
        );
    }
    // Equal jitter takes longer than full jitter.
    assert!(equal.completion_mean_s > full.completion_mean_s);
    // Total calls grow faster than linearly with clients.
    for s in ["exponential", "full-jitter", "equal-jitter", "decorrelated"] {
        let per = |c: u32| row(&rows, s, c).calls / c as f64;
        assert!(per(100) > per(10) * 1.2, "{s}: {} vs {}", per(100), per(10));
    }
}

fn tune(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crashcart"))
        .arg("tune")
        .args(args)
        .arg("--report-dir")
        .arg(std::env::temp_dir().join("crashcart-tune-bad"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_sweep_spaces_are_refused_with_exit_code_2() {
    let file = aws();
    let f = file.to_str().unwrap();
    let (code, err) = tune(&[f, "--base", "3s", "--cap", "2s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("above cap"), "{err}");
    let (code, err) = tune(&[f, "--clients", "0,10"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("0 clients"), "{err}");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "strategies: [exponential, full-jitter, equal-jitter, decorrelated]",
        "strategies: []",
    );
    let empty =
        std::env::temp_dir().join(format!("crashcart-empty-space-{}.yaml", std::process::id()));
    std::fs::write(&empty, text).unwrap();
    let (code, err) = tune(&[empty.to_str().unwrap()]);
    let _ = std::fs::remove_file(&empty);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tune.strategies: the sweep space is empty"),
        "{err}"
    );
}
