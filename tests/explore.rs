//! `crashcart explore`: from the neutral scenario (no faults, generic SLOs), generated fault
//! schedules find every defect of the reference integration that the shipped scenarios catch,
//! shrink to at most two faults, and the emitted scenario replays to the same failing SLOs;
//! against the correct reference, the same search finds nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crashcart::explore::{explore, scenario_yaml, simulated, Found, Search};
use crashcart::reference::{Defect, Defects};
use crashcart::run::{run_simulated, RunOptions};
use crashcart::scenario::Scenario;

/// The allocator the `crashcart` binary uses: the searches here are allocation-bound.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cases of the correct reference's search in the suite: a bounded subset of the full search
/// (the `#[ignore]`d test below; `cargo test --release --test explore -- --ignored`).
const SUITE_CASES: u32 = 512;

/// Cases allowed per defect. A refresh storm needs two faults together (a token expiry while
/// Salesforce is slow enough for several calls to be in flight), so it takes longer to find.
fn bound(d: Defect) -> u32 {
    match d {
        Defect::RefreshStorm => 2048,
        _ => 128,
    }
}

fn neutral() -> Scenario {
    crashcart::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/explore/neutral.yaml"),
    )
    .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crashcart-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn search(s: &Scenario, defects: &Defects, cases: u32, dir: &Path) -> Option<Found> {
    let budget = s.raw.explore.clone().unwrap();
    let stats = Arc::new(AtomicU64::new(0));
    let plan = Search {
        cases,
        seed: 0,
        shrink_iters: 512,
    };
    let run = simulated(defects.clone(), dir.to_path_buf());
    explore(s, &budget, plan, &stats, &run).unwrap()
}

fn failed_slos(s: &Scenario, defects: &Defects, dir: &Path) -> Vec<String> {
    let opts = RunOptions {
        seed: None,
        report_dir: Some(dir.to_path_buf()),
        defects: Some(defects.clone()),
        sim: true,
        policy: None,
        ..RunOptions::default()
    };
    run_simulated(s, &opts)
        .unwrap()
        .report
        .slos
        .iter()
        .filter(|r| r.verdict == crashcart::checks::Verdict::Fail)
        .map(|r| r.slo.clone())
        .collect()
}

#[test]
fn every_defect_is_found_shrunk_and_replayed() {
    let neutral = neutral();
    let dir = scratch("explore-defects");
    let queue = Mutex::new(Defect::ALL.to_vec());
    let problems = Mutex::new(Vec::<String>::new());
    // Both cores: two workers take defects from the queue.
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some(d) = queue.lock().unwrap().pop() else {
                    return;
                };
                let defects: Defects = [d].into_iter().collect();
                let Some(found) = search(&neutral, &defects, bound(d), &dir) else {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("{d}: no failing schedule in {} cases", bound(d)));
                    continue;
                };
                if found.faults.is_empty() || found.faults.len() > 2 {
                    problems.lock().unwrap().push(format!(
                        "{d}: {} faults after shrinking: {}",
                        found.faults.len(),
                        found.describe()
                    ));
                }
                // The emitted scenario replays to the same failure.
                let file = dir.join(format!("{d}.yaml"));
                std::fs::write(
                    &file,
                    scenario_yaml(&neutral, &found, Some(&defects), false).unwrap(),
                )
                .unwrap();
                let replay = crashcart::scenario::load(&file)
                    .expect("the counterexample is a valid scenario");
                let wanted: Vec<String> = found.broken.iter().map(|(s, _)| s.clone()).collect();
                let got = failed_slos(&replay, &defects, &dir);
                if got != wanted {
                    problems.lock().unwrap().push(format!(
                        "{d}: the replay failed {got:?}, exploration {wanted:?}"
                    ));
                }
                println!("{d}: {}", found.describe());
            });
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let problems = problems.into_inner().unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The correct reference through the search a defect is allowed (`cases` schedules).
fn correct_reference_survives(cases: u32) {
    let neutral = neutral();
    let dir = scratch(&format!("explore-reference-{cases}"));
    let found = search(&neutral, &Defects::default(), cases, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(f) = found {
        panic!("the correct reference failed: {}", f.describe());
    }
}

#[test]
fn the_correct_reference_survives_the_same_search() {
    correct_reference_survives(SUITE_CASES);
}

/// The whole search the slowest defect is allowed (2,048 cases): about four times the
/// suite's; run by hand or before a release.
#[test]
#[ignore = "long: cargo test --release --test explore -- --ignored"]
fn the_correct_reference_survives_the_longest_search() {
    let most = Defect::ALL.iter().map(|d| bound(*d)).max().unwrap();
    correct_reference_survives(most);
}

/// The same, drawing from every fault kind of the engine.
#[test]
fn the_correct_reference_survives_every_fault_kind() {
    let mut neutral = neutral();
    let budget = neutral.raw.explore.as_mut().unwrap();
    budget.kinds = crashcart::explore::kinds(&["all".into()]);
    assert_eq!(
        budget.kinds.len(),
        crashcart::fault::model::kind_names::all().count()
    );
    let dir = scratch("explore-all-kinds");
    let found = search(&neutral, &Defects::default(), SUITE_CASES, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(f) = found {
        panic!("the correct reference failed: {}", f.describe());
    }
}
