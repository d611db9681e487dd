//! `crashcart explore`'s speed in simulation: cases per second of wall time, from the shipped
//! neutral scenario (`scenarios/explore/neutral.yaml`) against the correct reference
//! integration (which meets the SLOs, so every case runs to the end and none shrinks).
//!
//! - `explore/cases_32`: 32 generated schedules on one core (criterion reports elements/s).
//! - `explore/plain_run`: the baseline, measured in the same run: the same scenario with no
//!   fault, run once. A case costs the schedule's generation plus a run with faults; the
//!   ratio says what exploration adds to a plain simulated run.
//! - After criterion, plain figures: cases/s on one core, and on both cores with two
//!   searches (what the CLI does).
//!
//! Run: `cargo bench --bench explore`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crashcart::explore::{explore, simulated, Search};
use crashcart::reference::Defects;
use crashcart::scenario::Scenario;
use criterion::{criterion_group, Criterion, Throughput};

/// The allocator the `crashcart` binary uses, so the figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CASES: u32 = 32;

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("crashcart-explore-bench-{}", std::process::id()))
}

fn neutral() -> Scenario {
    crashcart::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/explore/neutral.yaml"),
    )
    .unwrap()
}

/// One search of `cases` schedules from generator seed `seed`; returns the runs made.
fn search(s: &Scenario, cases: u32, seed: u64) -> u64 {
    let stats = Arc::new(AtomicU64::new(0));
    let run = simulated(Defects::default(), dir());
    let plan = Search {
        cases,
        seed,
        shrink_iters: 512,
    };
    let found = explore(s, s.raw.explore.as_ref().unwrap(), plan, &stats, &run).unwrap();
    assert!(found.is_none(), "the correct reference failed a case");
    stats.load(std::sync::atomic::Ordering::Relaxed)
}

fn plain(s: &Scenario) {
    let run = simulated(Defects::default(), dir());
    assert!(run(s).unwrap().report.passed());
}

fn bench(c: &mut Criterion) {
    let s = neutral();
    let mut g = c.benchmark_group("explore");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(CASES as u64));
    g.bench_function("cases_32", |b| b.iter(|| search(&s, CASES, 1)));
    g.throughput(Throughput::Elements(1));
    g.bench_function("plain_run", |b| b.iter(|| plain(&s)));
    g.finish();

    // The figures, from plain timings.
    let t = Instant::now();
    let runs = search(&s, 256, 2);
    let one_core = runs as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..20 {
        plain(&s);
    }
    let plain_per_s = 20.0 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let both: u64 = std::thread::scope(|scope| {
        let a = scope.spawn(|| search(&s, 128, 3));
        let b = scope.spawn(|| search(&s, 128, 4));
        a.join().unwrap() + b.join().unwrap()
    });
    let two_cores = both as f64 / t.elapsed().as_secs_f64();
    println!(
        "\nexplore, simulation: {one_core:.0} cases/s on one core, {two_cores:.0} cases/s on both ({} cores here); plain faultless runs: {plain_per_s:.0}/s, so a case costs {:.2}× a plain run",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        plain_per_s / one_core
    );
    let _ = std::fs::remove_dir_all(dir());
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
