//! Simulation mode's speed: simulated Salesforce requests per second of wall time, on one
//! core (a current-thread runtime on a paused clock), and the cost of one whole simulated
//! scenario run.
//!
//! - `sim/sync_10k_ops`: 10 s of virtual time at 1,000 patient syncs per second against the
//!   reference integration (three Salesforce requests each, no LLM): about 30,000 simulated
//!   Salesforce requests per run. Target (issue 7): at least 200,000 per second of wall time.
//! - `sim/bad_monday`: the shipped `bad-monday` scenario end to end (mocks, faults,
//!   reference, checkers, journal).
//!
//! Run: `cargo bench --bench sim`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crashcart::run::{run_simulated, RunOptions, RunOutcome};
use crashcart::scenario::Scenario;
use criterion::{criterion_group, Criterion};

/// The allocator the `crashcart` binary uses, so the figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYNC_LOAD: &str = r#"
name: sim-sync-load
duration: 10s
seed: 7
mocks: {llm: {zero_delay: true}, salesforce: {daily_api_limit: 100000000}}
sut: {reference: true}
workload:
  rate: 1000
  timeout: 10s
  operations:
    - name: sync
      path: /patients/{{patient.external_id}}/sync
      body: {first_name: "{{patient.first_name}}", last_name: "{{patient.last_name}}", email: "{{patient.email}}", phone: "{{patient.phone}}"}
faults:
  - fault: {kind: latency, latency: {distribution: normal, mean: 10ms, std_dev: 2ms}}
    target: {dependency: salesforce}
slos:
  - check: availability
    min_success_ratio: 0.99
"#;

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("crashcart-sim-bench-{}", std::process::id()))
}

fn load(text: Option<&str>, shipped: &str) -> Scenario {
    match text {
        Some(t) => {
            let f = dir().join("sync-load.yaml");
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&f, t).unwrap();
            crashcart::scenario::load(&f).unwrap()
        }
        None => crashcart::scenario::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{shipped}.yaml")),
        )
        .unwrap(),
    }
}

/// One simulated run on a fresh single-threaded runtime with the clock paused.
fn once(s: &Scenario) -> RunOutcome {
    let opts = RunOptions {
        seed: None,
        report_dir: Some(dir()),
        defects: None,
        sim: true,
        policy: None,
        ..RunOptions::default()
    };
    run_simulated(s, &opts).unwrap()
}

fn sf_requests(o: &RunOutcome) -> usize {
    o.timeline
        .requests()
        .filter(|r| r.dependency.as_str().starts_with("salesforce"))
        .count()
}

fn bench(c: &mut Criterion) {
    let sync = load(Some(SYNC_LOAD), "");
    let monday = load(None, "bad-monday");
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("sync_10k_ops", |b| b.iter(|| once(&sync)));
    g.bench_function("bad_monday", |b| b.iter(|| once(&monday)));
    g.finish();

    // The figures, from a few plain runs.
    let mut rates = vec![];
    let mut requests = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let o = once(&sync);
        let wall = t.elapsed().as_secs_f64();
        requests = sf_requests(&o);
        assert!(o.report.passed(), "{:?}", o.report.slos);
        rates.push(requests as f64 / wall);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "\nsimulation, one core: {requests} Salesforce requests per run; median {:.0} simulated requests per second of wall time (target ≥ 200,000)",
        rates[rates.len() / 2]
    );
    let t = Instant::now();
    let o = once(&monday);
    println!(
        "bad-monday (8 s of virtual time, {} requests): {:.1} ms of wall time per run",
        o.report.requests,
        t.elapsed().as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(dir());
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
