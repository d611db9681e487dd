//! `crashcart matrix`: every scenario against the reference integration and against each of
//! its defects. A row per defect, a column per scenario; a cell says whether the defect was
//! caught there and by which SLO. The reference row must pass everywhere; every defect must be
//! caught somewhere. That table is the evidence that the checkers mean something.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::checks::Verdict;
use crate::error::{exit_code, Error};
use crate::reference::{Defect, Defects};
use crate::report::RunReport;
use crate::run::RunOptions;
use crate::scenario::Scenario;

/// One cell: what a run of one scenario against one row gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// SLOs that failed (sorted), `aborted` when the run was.
    pub failed: Vec<String>,
}

impl Cell {
    fn from_report(r: &RunReport) -> Self {
        let mut failed: Vec<String> = r
            .slos
            .iter()
            .filter(|s| s.verdict == Verdict::Fail)
            .map(|s| s.slo.split(' ').next().unwrap_or(&s.slo).to_string())
            .collect();
        failed.sort();
        failed.dedup();
        if r.aborted.is_some() {
            failed.push("aborted".into());
        }
        Self { failed }
    }

    /// True when something failed (for a defect row: caught).
    pub fn caught(&self) -> bool {
        !self.failed.is_empty()
    }

    /// The cell's text: `pass`/`FAIL: …` on the reference row, `caught: …`/`missed` on a
    /// defect row.
    pub fn text(&self, reference_row: bool) -> String {
        match (reference_row, self.caught()) {
            (true, false) => "pass".into(),
            (true, true) => format!("FAIL: {}", self.failed.join(", ")),
            (false, true) => format!("caught: {}", self.failed.join(", ")),
            (false, false) => "missed".into(),
        }
    }
}

/// The whole table.
#[derive(Clone, Debug, Default)]
pub struct Matrix {
    /// Scenario names, in column order.
    pub scenarios: Vec<String>,
    /// Rows: `reference` first, then the defects; each maps scenario → cell.
    pub rows: Vec<(String, BTreeMap<String, Cell>)>,
}

impl Matrix {
    /// True when the reference passes every scenario.
    pub fn reference_passes(&self) -> bool {
        self.rows
            .iter()
            .filter(|(n, _)| n == "reference")
            .all(|(_, cells)| cells.values().all(|c| !c.caught()))
    }

    /// Defects no scenario caught.
    pub fn missed(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|(n, _)| n != "reference")
            .filter(|(_, cells)| cells.values().all(|c| !c.caught()))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// 0 when the reference passes everything and every defect is caught; 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.reference_passes() && self.missed().is_empty() {
            exit_code::OK
        } else {
            exit_code::SLO_FAILED
        }
    }

    fn grid(&self) -> Vec<Vec<String>> {
        let mut out = vec![];
        let mut head = vec!["defect".to_string()];
        head.extend(self.scenarios.iter().cloned());
        out.push(head);
        for (name, cells) in &self.rows {
            let mut row = vec![name.clone()];
            for s in &self.scenarios {
                row.push(
                    cells
                        .get(s)
                        .map(|c| c.text(name == "reference"))
                        .unwrap_or_else(|| "-".into()),
                );
            }
            out.push(row);
        }
        out
    }

    /// A console table (one row per defect, one column per scenario).
    pub fn table(&self) -> String {
        let grid = self.grid();
        let widths: Vec<usize> = (0..grid[0].len())
            .map(|i| grid.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (k, row) in grid.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if k == 0 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
                out.push('\n');
            }
        }
        let missed = self.missed();
        out.push_str(&format!(
            "\nreference: {}; defects caught: {}/{}{}\n",
            if self.reference_passes() {
                "passes every scenario"
            } else {
                "FAILS a scenario"
            },
            self.rows.len().saturating_sub(1) - missed.len(),
            self.rows.len().saturating_sub(1),
            if missed.is_empty() {
                String::new()
            } else {
                format!(" (missed: {})", missed.join(", "))
            }
        ));
        out
    }

    /// The same table in Markdown (the README shows it).
    pub fn markdown(&self) -> String {
        let grid = self.grid();
        let mut out = String::new();
        for (k, row) in grid.iter().enumerate() {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
            if k == 0 {
                out.push_str(&format!("|{}\n", "---|".repeat(row.len())));
            }
        }
        out
    }

    /// Parse a Markdown table written by [`Matrix::markdown`] back to its cells' texts:
    /// (row, scenario) → text.
    pub fn parse_markdown(text: &str) -> BTreeMap<(String, String), String> {
        let rows: Vec<Vec<String>> = text
            .lines()
            .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect();
        let mut out = BTreeMap::new();
        if let Some((head, body)) = rows.split_first() {
            for row in body {
                for (i, cell) in row.iter().enumerate().skip(1) {
                    if let Some(s) = head.get(i) {
                        out.insert((row[0].clone(), s.clone()), cell.clone());
                    }
                }
            }
        }
        out
    }
}

/// Run the matrix: `jobs` runs at once, each scenario with its own seed; with `sim`, each run
/// in simulation on a paused clock of its own thread. `progress` hears about each finished run.
pub async fn run(
    scenarios: &[Scenario],
    defects: &[Defect],
    jobs: usize,
    report_dir: &Path,
    sim: bool,
    mut progress: impl FnMut(String),
) -> Result<Matrix, Error> {
    let mut rows: Vec<(String, Defects)> = vec![("reference".into(), Defects::none())];
    rows.extend(
        defects
            .iter()
            .map(|d| (d.name().to_string(), [*d].into_iter().collect())),
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for (row, d) in &rows {
        for s in scenarios {
            let (row, d, s) = (row.clone(), d.clone(), s.clone());
            let permits = permits.clone();
            let dir = report_dir.join(&row);
            tasks.spawn(async move {
                let _p = permits.acquire_owned().await;
                let opts = RunOptions {
                    seed: None,
                    report_dir: Some(dir),
                    defects: Some(d),
                    sim,
                    policy: None,
                };
                let r = if sim {
                    let s2 = s.clone();
                    tokio::task::spawn_blocking(move || crate::run::run_simulated(&s2, &opts))
                        .await
                        .unwrap_or_else(|e| Err(Error::Aborted(e.to_string())))
                } else {
                    crate::run::run(&s, &opts, &crate::run::Events::none()).await
                };
                (row, s.name.clone(), r)
            });
        }
    }
    let mut m = Matrix {
        scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
        rows: rows
            .iter()
            .map(|(n, _)| (n.clone(), BTreeMap::new()))
            .collect(),
    };
    while let Some(done) = tasks.join_next().await {
        let (row, scenario, r) = done.map_err(|e| Error::Aborted(e.to_string()))?;
        let outcome = r?;
        let cell = Cell::from_report(&outcome.report);
        progress(format!(
            "{row} × {scenario}: {} ({:.1}s)",
            cell.text(row == "reference"),
            outcome.report.duration_s
        ));
        if let Some((_, cells)) = m.rows.iter_mut().find(|(n, _)| *n == row) {
            cells.insert(scenario, cell);
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_round_trips_through_markdown_and_judges_rows() {
        let cell = |f: &[&str]| Cell {
            failed: f.iter().map(|s| s.to_string()).collect(),
        };
        let m = Matrix {
            scenarios: vec!["a".into(), "b".into()],
            rows: vec![
                (
                    "reference".into(),
                    [("a".into(), cell(&[])), ("b".into(), cell(&[]))].into(),
                ),
                (
                    "no-backoff".into(),
                    [("a".into(), cell(&["retry"])), ("b".into(), cell(&[]))].into(),
                ),
                (
                    "no-jitter".into(),
                    [("a".into(), cell(&[])), ("b".into(), cell(&[]))].into(),
                ),
            ],
        };
        assert!(m.reference_passes());
        assert_eq!(m.missed(), vec!["no-jitter".to_string()]);
        assert_eq!(m.exit_code(), exit_code::SLO_FAILED);
        let parsed = Matrix::parse_markdown(&m.markdown());
        assert_eq!(parsed[&("no-backoff".into(), "a".into())], "caught: retry");
        assert_eq!(parsed[&("reference".into(), "b".into())], "pass");
        assert_eq!(parsed[&("no-jitter".into(), "b".into())], "missed");
        assert!(m
            .table()
            .contains("defects caught: 1/2 (missed: no-jitter)"));
    }
}
