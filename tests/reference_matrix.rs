//! The defect matrix, end to end: every shipped scenario against the reference integration
//! and against each of its defects, on real sockets through the chaos proxies.
//!
//! Asserts that the reference passes every shipped scenario, that every defect is caught by
//! the scenario built for it, and that the matrix agrees cell by cell (caught or missed, pass
//! or fail) with the table in README.md, in real time and in simulation (`--sim`) alike. The SLO names in the README's cells are those of the
//! run that wrote it; which further SLOs also fail can vary with timing, so they are not
//! compared.

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
    (Defect::NoCompensation, "salesforce-partition"),
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
    let m = crashcart::matrix::run(&scenarios, &Defect::ALL, 12, &reports, false, |line| {
        eprintln!("{line}")
    })
    .await
    .expect("the matrix runs");
    eprintln!("{}", m.table());

    let cells: BTreeMap<(String, String), String> = m
        .rows
        .iter()
        .flat_map(|(row, cells)| {
            cells
                .iter()
                .map(move |(s, c)| ((row.clone(), s.clone()), c.text(row == "reference")))
        })
        .collect();
    for s in &m.scenarios {
        let c = &cells[&("reference".to_string(), s.clone())];
        assert_eq!(c, "pass", "the reference must pass {s}: {c}");
    }
    for (d, s) in DESIGNED {
        let c = &cells[&(d.name().to_string(), s.to_string())];
        assert!(
            c.starts_with("caught"),
            "{d} must be caught by {s}, the scenario built for it: {c}"
        );
    }
    let readme = readme_table();
    assert_eq!(
        readme.len(),
        cells.len(),
        "the README table has {} cells, the matrix {}; regenerate it with `crashcart matrix --markdown`",
        readme.len(),
        cells.len()
    );
    let differ: Vec<String> = cells
        .iter()
        .filter(|(k, c)| readme.get(*k).map(|r| verdict(r)) != Some(verdict(c)))
        .map(|((row, s), c)| {
            format!(
                "{row} × {s}: README says {:?}, the run gave {c:?}",
                readme.get(&(row.clone(), s.clone()))
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the matrix disagrees with README.md:\n{}",
        differ.join("\n")
    );
    // Simulation (paused clock, in-process) gives the same verdicts, in seconds.
    let sim = crashcart::matrix::run(&scenarios, &Defect::ALL, 2, &reports, true, |_| {})
        .await
        .expect("the simulated matrix runs");
    let readme = &readme;
    let sim_differ: Vec<String> = sim
        .rows
        .iter()
        .flat_map(|(row, cells)| {
            cells.iter().filter_map(move |(s, c)| {
                let text = c.text(row == "reference");
                let want = cells_verdict(readme, row, s);
                (want.as_deref() != Some(verdict(&text)))
                    .then(|| format!("{row} × {s}: README {want:?}, simulation {text:?}"))
            })
        })
        .collect();
    assert!(
        sim_differ.is_empty(),
        "simulation disagrees with README.md (and so with real time):\n{}",
        sim_differ.join("\n")
    );
    let _ = std::fs::remove_dir_all(&reports);
}

fn cells_verdict(
    readme: &BTreeMap<(String, String), String>,
    row: &str,
    scenario: &str,
) -> Option<String> {
    readme
        .get(&(row.to_string(), scenario.to_string()))
        .map(|c| verdict(c).to_string())
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("crashcart-matrix-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
