//! `crashcart matrix`: every scenario against a SUT that must pass and against broken ones.
//! By default the SUT is the reference integration and the broken ones its defects; with
//! `--sut FILE` ([`variants`]) they are an integration of your own and its builds. A row per
//! build, a column per scenario; a cell says which SLO caught it, in how many runs. The first
//! row must pass everywhere; every broken one must be caught somewhere. That table is the
//! evidence that the checkers mean something.
//!
//! - [`table`]: cells and the table (console, Markdown, parsed back).
//! - [`variants`]: the file describing an integration's builds.

pub mod table;
pub mod variants;

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use crate::reference::{Defect, Defects};
use crate::run::{Events, RunOptions, RunOutcome};
use crate::scenario::Scenario;

pub use table::{Cell, Matrix};
use variants::{RawVariant, Variants};

/// What a row runs against.
#[derive(Clone, Debug)]
pub enum Subject {
    /// The reference integration with these defects.
    Reference(Defects),
    /// A build of an integration of your own.
    Build(Arc<Variants>, RawVariant),
}

/// One row of the matrix.
#[derive(Clone, Debug)]
pub struct Row {
    /// Its name (`reference`, a defect, `correct`, a broken build).
    pub name: String,
    /// What runs.
    pub subject: Subject,
}

/// The reference integration's rows: the reference, then each defect.
pub fn reference_rows(defects: &[Defect]) -> Vec<Row> {
    let mut rows = vec![Row {
        name: "reference".into(),
        subject: Subject::Reference(Defects::none()),
    }];
    rows.extend(defects.iter().map(|d| Row {
        name: d.name().to_string(),
        subject: Subject::Reference([*d].into_iter().collect()),
    }));
    rows
}

/// An integration's rows: `correct`, then each broken build.
pub fn variant_rows(v: Variants) -> Vec<Row> {
    let v = Arc::new(v);
    let mut rows = vec![Row {
        name: "correct".into(),
        subject: Subject::Build(v.clone(), v.correct.clone()),
    }];
    rows.extend(v.broken.iter().map(|(name, b)| Row {
        name: name.clone(),
        subject: Subject::Build(v.clone(), b.clone()),
    }));
    rows
}

/// One run of one cell.
async fn run_cell(row: &Row, s: &Scenario, dir: &Path, sim: bool) -> Result<RunOutcome, Error> {
    let (s, defects) = match &row.subject {
        Subject::Reference(d) => (s.clone(), Some(d.clone())),
        Subject::Build(v, b) => (v.apply(s, b), None),
    };
    let opts = RunOptions {
        report_dir: Some(dir.to_path_buf()),
        defects,
        sim,
        ..RunOptions::default()
    };
    if sim {
        tokio::task::spawn_blocking(move || crate::run::run_simulated(&s, &opts))
            .await
            .unwrap_or_else(|e| Err(Error::Aborted(e.to_string())))
    } else {
        crate::run::run(&s, &opts, &Events::none()).await
    }
}

/// Run the reference matrix: the reference and `defects`, each scenario once, `jobs` runs
/// at once; with `sim`, each run in simulation on a paused clock of its own thread.
/// `progress` hears about each finished run.
pub async fn run(
    scenarios: &[Scenario],
    defects: &[Defect],
    jobs: usize,
    report_dir: &Path,
    sim: bool,
    progress: impl FnMut(String),
) -> Result<Matrix, Error> {
    run_rows(
        scenarios,
        reference_rows(defects),
        "defect",
        1,
        jobs,
        report_dir,
        sim,
        progress,
    )
    .await
}

/// Run `rows` × `scenarios`, `runs` times each, `jobs` runs at once.
#[allow(clippy::too_many_arguments)]
pub async fn run_rows(
    scenarios: &[Scenario],
    rows: Vec<Row>,
    rows_are: &str,
    runs: usize,
    jobs: usize,
    report_dir: &Path,
    sim: bool,
    mut progress: impl FnMut(String),
) -> Result<Matrix, Error> {
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let mut m = Matrix::new(
        rows_are,
        &names,
        scenarios.iter().map(|s| s.name.clone()).collect(),
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for row in &rows {
        for s in scenarios {
            for k in 0..runs.max(1) {
                let (row, s, permits) = (row.clone(), s.clone(), permits.clone());
                let dir = report_dir
                    .join(crate::report::file_stem(&row.name))
                    .join(format!("run{}", k + 1));
                tasks.spawn(async move {
                    let _p = permits.acquire_owned().await;
                    // After a Ctrl-C or SIGTERM nothing new starts.
                    let r = if crate::run::shutdown::requested() {
                        Err(Error::Aborted("interrupted (Ctrl-C or SIGTERM)".into()))
                    } else {
                        run_cell(&row, &s, &dir, sim).await
                    };
                    (row.name, s.name.clone(), r)
                });
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (row, scenario, r) = done.map_err(|e| Error::Aborted(e.to_string()))?;
        let outcome = r?;
        let first = names.first() == Some(&row);
        progress(format!(
            "{row} × {scenario}: {} ({:.1}s)",
            Cell::from_report(&outcome.report).text(first),
            outcome.report.duration_s
        ));
        if let Some((_, cells)) = m.rows.iter_mut().find(|(n, _)| *n == row) {
            cells.entry(scenario).or_default().add(&outcome.report);
        }
    }
    Ok(m)
}
