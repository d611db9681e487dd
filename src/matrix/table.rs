//! The matrix as a table: a row per SUT (the one that must pass everything first, then the
//! broken ones), a column per scenario; a cell says which SLOs failed, in how many of its
//! runs. Rendered for the console and as Markdown (the README's tables), and parsed back.

use std::collections::BTreeMap;

use crate::checks::Verdict;
use crate::error::exit_code;
use crate::report::RunReport;

/// One cell: what the runs of one scenario against one row gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// SLOs that failed in any run (sorted), `aborted` when a run was.
    pub failed: Vec<String>,
    /// Runs in which something failed.
    pub failing_runs: usize,
    /// Runs made.
    pub runs: usize,
}

impl Cell {
    /// What failed in one run.
    pub fn failures(r: &RunReport) -> Vec<String> {
        let mut failed: Vec<String> = r
            .slos
            .iter()
            .filter(|s| s.verdict == Verdict::Fail)
            .map(|s| s.slo.split(' ').next().unwrap_or(&s.slo).to_string())
            .collect();
        if !r.unfired_faults.is_empty() {
            failed.push("faults-not-fired".into());
        }
        failed.sort();
        failed.dedup();
        if r.aborted.is_some() {
            failed.push("aborted".into());
        }
        failed
    }

    /// A cell of one run.
    pub fn from_report(r: &RunReport) -> Self {
        let mut c = Self::default();
        c.add(r);
        c
    }

    /// Count one more run.
    pub fn add(&mut self, r: &RunReport) {
        let f = Self::failures(r);
        self.runs += 1;
        if !f.is_empty() {
            self.failing_runs += 1;
        }
        self.failed.extend(f);
        self.failed.sort();
        self.failed.dedup();
    }

    /// True when something failed in every run (for a broken row: caught).
    pub fn caught(&self) -> bool {
        self.runs > 0 && self.failing_runs == self.runs
    }

    /// True when every run passed.
    pub fn passed(&self) -> bool {
        self.failing_runs == 0
    }

    /// ` 2/3` when some runs differ from the others, empty when all agree.
    fn share(&self, n: usize) -> String {
        if self.runs > 1 && n != self.runs {
            format!(" {n}/{}", self.runs)
        } else {
            String::new()
        }
    }

    /// The cell's text: `pass`/`FAIL: …` on the row that must pass, `caught: …`/`missed` on
    /// a broken row; `k/n` when only some of its runs failed.
    pub fn text(&self, must_pass: bool) -> String {
        let what = self.failed.join(", ");
        match (must_pass, self.failing_runs) {
            (true, 0) => "pass".into(),
            (true, n) => format!("FAIL{}: {what}", self.share(n)),
            (false, 0) => "missed".into(),
            (false, n) => format!("caught{}: {what}", self.share(n)),
        }
    }
}

/// The whole table.
#[derive(Clone, Debug, Default)]
pub struct Matrix {
    /// Scenario names, in column order.
    pub scenarios: Vec<String>,
    /// Rows: the one that must pass first (`reference`, or the SUT's correct build), then the
    /// broken ones; each maps scenario → cell.
    pub rows: Vec<(String, BTreeMap<String, Cell>)>,
    /// What the first column is headed (`defect`, `variant`).
    pub rows_are: String,
}

impl Matrix {
    /// An empty table with these rows and columns.
    pub fn new(rows_are: &str, rows: &[String], scenarios: Vec<String>) -> Self {
        Self {
            scenarios,
            rows: rows.iter().map(|n| (n.clone(), BTreeMap::new())).collect(),
            rows_are: rows_are.to_string(),
        }
    }

    fn must_pass(&self, row: &str) -> bool {
        self.rows.first().is_some_and(|(n, _)| n == row)
    }

    /// True when the first row passes every scenario in every run.
    pub fn reference_passes(&self) -> bool {
        self.rows
            .first()
            .is_none_or(|(_, cells)| cells.values().all(Cell::passed))
    }

    /// Broken rows no scenario caught in every run.
    pub fn missed(&self) -> Vec<String> {
        self.rows
            .iter()
            .skip(1)
            .filter(|(_, cells)| !cells.values().any(Cell::caught))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// 0 when the first row passes everything and every broken row is caught; 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.reference_passes() && self.missed().is_empty() {
            exit_code::OK
        } else {
            exit_code::SLO_FAILED
        }
    }

    fn grid(&self) -> Vec<Vec<String>> {
        let mut out = vec![];
        let mut head = vec![if self.rows_are.is_empty() {
            "defect".to_string()
        } else {
            self.rows_are.clone()
        }];
        head.extend(self.scenarios.iter().cloned());
        out.push(head);
        for (name, cells) in &self.rows {
            let mut row = vec![name.clone()];
            for s in &self.scenarios {
                row.push(
                    cells
                        .get(s)
                        .map(|c| c.text(self.must_pass(name)))
                        .unwrap_or_else(|| "-".into()),
                );
            }
            out.push(row);
        }
        out
    }

    /// A console table (one row per defect or variant, one column per scenario).
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
        let first = self.rows.first().map(|(n, _)| n.as_str()).unwrap_or("");
        out.push_str(&format!(
            "\n{first}: {}; {} caught: {}/{}{}\n",
            if self.reference_passes() {
                "passes every scenario"
            } else {
                "FAILS a scenario"
            },
            if self.rows_are.is_empty() || self.rows_are == "defect" {
                "defects"
            } else {
                "broken variants"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_round_trips_through_markdown_and_judges_rows() {
        let cell = |f: &[&str]| Cell {
            failed: f.iter().map(|s| s.to_string()).collect(),
            failing_runs: usize::from(!f.is_empty()),
            runs: 1,
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
            rows_are: String::new(),
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

    #[test]
    fn repeated_runs_show_how_many_failed() {
        let sometimes = Cell {
            failed: vec!["consistency".into()],
            failing_runs: 1,
            runs: 3,
        };
        assert_eq!(sometimes.text(true), "FAIL 1/3: consistency");
        assert_eq!(sometimes.text(false), "caught 1/3: consistency");
        assert!(!sometimes.caught() && !sometimes.passed());
        let always = Cell {
            failing_runs: 3,
            ..sometimes
        };
        assert_eq!(always.text(false), "caught: consistency");
        assert!(always.caught());
    }
}
