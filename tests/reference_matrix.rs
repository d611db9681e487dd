//! The defect matrix, end to end: every shipped scenario against the reference integration
//! and against each of its defects, on real sockets through the chaos proxies.
//!
//! Asserts, in simulation and in real time alike, that the reference passes every shipped
//! scenario and that every defect is caught by the scenario built for it; and that the
//! simulated matrix (deterministic) is the table in README.md, cell for cell.

use std::collections::BTreeMap;
use std::path::Path;

use crashcart::matrix::Matrix;
use crashcart::reference::Defect;

/// The scenario built to catch each defect.
const DESIGNED: [(Defect, &str); 13] = [
    (Defect::NoRefresh, "token-expiry"),
    (Defect::RefreshStorm, "token-expiry"),
    (Defect::NoBackoff, "record-lock"),
    (Defect::NoJitter, "record-lock"),
    (Defect::IgnoreRetryAfter, "llm-overload"),
    (Defect::RetryNonRetryable, "salesforce-schema-drift"),
    (Defect::UnboundedRetries, "record-lock"),
    (Defect::NoBreaker, "llm-overload"),
    (Defect::NoTimeout, "salesforce-latency"),
    (Defect::NoCompensation, "event-answers-lost"),
    (Defect::BlindOverwrite, "concurrent-edits"),
    (Defect::NonIdempotentCreate, "lost-responses"),
    (Defect::NoDriftHandling, "salesforce-schema-drift"),
];

fn readme_table() -> BTreeMap<(String, String), String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- matrix:start -->")
        .expect("README has <!-- matrix:start -->");
    let end = readme
        .find("<!-- matrix:end -->")
        .expect("README has <!-- matrix:end -->");
    Matrix::parse_markdown(&readme[start..end])
}

fn verdict(cell: &str) -> &str {
    cell.split(':').next().unwrap_or(cell).trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_passes_and_every_defect_is_caught_as_the_readme_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let scenarios: Vec<_> = files
        .iter()
        .map(|f| crashcart::scenario::load(f).expect("shipped scenarios are valid"))
        .collect();
    let reports = tempdir();
    let readme = readme_table();

    // Simulation is deterministic: its table is the README's, cell for cell (SLO names too).
    let sim = crashcart::matrix::run(&scenarios, &Defect::ALL, 2, &reports, true, |_| {})
        .await
        .expect("the simulated matrix runs");
    let sim_cells = cells(&sim);
    assert_eq!(
        readme.len(),
        sim_cells.len(),
        "the README table has {} cells, the matrix {}; regenerate it with `crashcart matrix --sim --markdown FILE`",
        readme.len(),
        sim_cells.len()
    );
    let differ: Vec<String> = sim_cells
        .iter()
        .filter(|(k, c)| readme.get(*k) != Some(*c))
        .map(|((row, s), c)| {
            format!(
                "{row} × {s}: README says {:?}, the simulated run gave {c:?}",
                readme.get(&(row.clone(), s.clone()))
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the simulated matrix disagrees with README.md:\n{}",
        differ.join("\n")
    );
    check_rows(&sim_cells, &sim.scenarios, "simulation");

    // Real time, on sockets through the proxies: the same guarantees. Cells outside them can
    // flip with the machine's load (which call a partition catches), so they are only shown.
    let real = crashcart::matrix::run(&scenarios, &Defect::ALL, 12, &reports, false, |line| {
        eprintln!("{line}")
    })
    .await
    .expect("the matrix runs");
    let real_cells = cells(&real);
    check_rows(&real_cells, &real.scenarios, "real time");
    for (k, c) in &real_cells {
        if readme.get(k).map(|r| verdict(r)) != Some(verdict(c)) {
            eprintln!(
                "real time differs from the README at {} × {}: {c}",
                k.0, k.1
            );
        }
    }
    let _ = std::fs::remove_dir_all(&reports);
}

fn cells(m: &Matrix) -> BTreeMap<(String, String), String> {
    m.rows
        .iter()
        .flat_map(|(row, cells)| {
            cells
                .iter()
                .map(move |(s, c)| ((row.clone(), s.clone()), c.text(row == "reference")))
        })
        .collect()
}

/// The reference passes every scenario; every defect is caught by the scenario built for it.
fn check_rows(cells: &BTreeMap<(String, String), String>, scenarios: &[String], how: &str) {
    for s in scenarios {
        let c = &cells[&("reference".to_string(), s.clone())];
        assert_eq!(c, "pass", "{how}: the reference must pass {s}: {c}");
    }
    for (d, s) in DESIGNED {
        let c = &cells[&(d.name().to_string(), s.to_string())];
        assert!(
            c.starts_with("caught"),
            "{how}: {d} must be caught by {s}, the scenario built for it: {c}"
        );
    }
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("crashcart-matrix-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
