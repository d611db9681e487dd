//! The zoo: integrations crashcart's checkers were not built beside, each in a language and
//! style of its own, with a correct build and broken ones (`zoo/*/variants.yaml`). A bounded
//! subset of their matrix runs here, in real time: each correct build through a few shipped
//! scenarios, each broken build through the first scenario built to catch it. The full
//! matrix, 3 runs a cell, is `crashcart matrix scenarios --sut zoo/NAME/variants.yaml --runs 3`
//! (README, "The zoo").

mod support;

use std::path::{Path, PathBuf};

use crashcart::matrix::variants::load;
use crashcart::matrix::{run_rows, variant_rows};

/// The scenarios the correct builds go through here: one per family of checks.
const CORRECT_THROUGH: [&str; 5] = [
    "token-expiry",
    "record-lock",
    "llm-overload",
    "event-answers-lost",
    "concurrent-edits",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run the subset for one integration; panics with the table when a cell is wrong.
async fn subset(variants: &Path) {
    let v = load(variants).expect("the variants file");
    let scenarios: Vec<_> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| crashcart::scenario::load(&p).expect("shipped scenario"))
        .collect();
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    v.check_scenarios(&names)
        .expect("caught_by names shipped scenarios");
    let designed: Vec<(String, String)> = v
        .broken
        .iter()
        .map(|(b, r)| (b.clone(), r.caught_by[0].clone()))
        .collect();
    let dir = std::env::temp_dir().join(format!("crashcart-zoo-{}-{}", v.name, std::process::id()));
    // One row at a time, each through its own scenarios, so a broken build runs only the
    // scenario it must fail (the table fills only those cells).
    let mut failures = vec![];
    for row in variant_rows(v) {
        let wanted: Vec<&str> = if row.name == "correct" {
            CORRECT_THROUGH.to_vec()
        } else {
            designed
                .iter()
                .filter(|(b, _)| *b == row.name)
                .map(|(_, s)| s.as_str())
                .collect()
        };
        let mine: Vec<_> = scenarios
            .iter()
            .filter(|s| wanted.contains(&s.name.as_str()))
            .cloned()
            .collect();
        let name = row.name.clone();
        let m = run_rows(&mine, vec![row], "variant", 1, 3, &dir, false, |l| {
            eprintln!("  {l}")
        })
        .await
        .expect("the matrix runs");
        for (s, cell) in &m.rows[0].1 {
            let must_pass = name == "correct";
            let right = if must_pass {
                cell.passed()
            } else {
                cell.caught()
            };
            if !right {
                failures.push(format!("{name} × {s}: {}", cell.text(must_pass)));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "the zoo's verdicts are wrong:\n{}",
        failures.join("\n")
    );
}

/// One test for both integrations, one after the other: each runs three SUTs at once, and
/// six on two cores would starve the real-time runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_integrations_pass_when_correct_and_are_caught_when_broken() {
    support::venv_python();
    let setup: PathBuf = root().join("zoo/node-jsforce/setup.sh");
    let out = std::process::Command::new(&setup)
        .output()
        .expect("zoo/node-jsforce/setup.sh runs (Node.js 20 and npm)");
    assert!(
        out.status.success(),
        "npm ci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    subset(&root().join("zoo/python-requests/variants.yaml")).await;
    subset(&root().join("zoo/node-jsforce/variants.yaml")).await;
}
