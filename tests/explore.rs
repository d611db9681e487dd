//! `crashcart explore`: from the neutral scenario (no faults, generic SLOs), generated fault
//! schedules find each of these defects of the reference integration, shrink to at most two
//! faults, and the emitted scenario replays to the same failing SLO.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crashcart::explore::{explore, scenario_yaml};
use crashcart::reference::{Defect, Defects};
use crashcart::runner::{run_simulated, RunOptions};

#[test]
fn defects_are_found_shrunk_and_replayed() {
    let neutral = crashcart::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/explore/neutral.yaml"),
    )
    .unwrap();
    let budget = neutral.raw.explore.clone().unwrap();
    let dir = std::env::temp_dir().join(format!("crashcart-explore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for d in [Defect::NoRefresh, Defect::NoBackoff, Defect::BlindOverwrite] {
        let defects: Defects = [d].into_iter().collect();
        let stats = Arc::new(AtomicU64::new(0));
        let found = explore(&neutral, &budget, &defects, 64, 0, &dir, &stats)
            .unwrap()
            .unwrap_or_else(|| panic!("{d}: no failing schedule in 64 cases"));
        assert!(
            !found.faults.is_empty() && found.faults.len() <= 2,
            "{d}: {} faults after shrinking: {}",
            found.faults.len(),
            found.describe()
        );
        // The emitted scenario replays to the same failure.
        let file = dir.join(format!("{d}.yaml"));
        std::fs::write(&file, scenario_yaml(&neutral, &found, &defects).unwrap()).unwrap();
        let replay =
            crashcart::scenario::load(&file).expect("the counterexample is a valid scenario");
        let opts = RunOptions {
            seed: None,
            report_dir: Some(dir.clone()),
            defects: Some(defects.clone()),
            sim: true,
            policy: None,
        };
        let o = run_simulated(&replay, &opts).unwrap();
        let failed: Vec<String> = o
            .report
            .slos
            .iter()
            .filter(|s| s.verdict == crashcart::checks::Verdict::Fail)
            .map(|s| s.slo.clone())
            .collect();
        let wanted: Vec<String> = found.broken.iter().map(|(s, _)| s.clone()).collect();
        assert_eq!(failed, wanted, "{d}: the replay fails the same SLOs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
