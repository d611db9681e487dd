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
