//! `crashcart matrix`: every scenario against the reference integration and each defect (or,
//! with `--sut`, against an integration of your own and its broken builds), as a table (and
//! Markdown).

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::report::write_file;

/// Arguments of `crashcart matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Scenario directory or file.
    #[arg(default_value = "scenarios")]
    pub path: PathBuf,
    /// Only these defects (repeatable; default: all).
    #[arg(long = "defect", value_enum)]
    pub defects: Vec<crate::reference::Defect>,
    /// Runs at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Where journals go.
    #[arg(long, default_value = "crashcart-reports/matrix")]
    pub report_dir: PathBuf,
    /// Also write the table as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Run in simulation (paused clock, in-process; seconds instead of minutes).
    #[arg(long)]
    pub sim: bool,
    /// Your integration and its builds instead of the reference and its defects: a variants
    /// file (`zoo/python-requests/variants.yaml`). Runs in real time.
    #[arg(long, conflicts_with_all = ["sim", "defects"])]
    pub sut: Option<PathBuf>,
    /// Runs of each cell (a cell shows in how many something failed).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
}

/// `crashcart matrix`.
pub async fn matrix(a: MatrixArgs) -> Result<i32, Error> {
    let scenarios = super::run::load_scenarios(&a.path)?;
    let (rows, rows_are) = match &a.sut {
        Some(file) => {
            let v = crate::matrix::variants::load(file)?;
            let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
            v.check_scenarios(&names)?;
            (crate::matrix::variant_rows(v), "variant")
        }
        None => {
            let defects = if a.defects.is_empty() {
                crate::reference::Defect::ALL.to_vec()
            } else {
                a.defects.clone()
            };
            (crate::matrix::reference_rows(&defects), "defect")
        }
    };
    let m = crate::matrix::run_rows(
        &scenarios,
        rows,
        rows_are,
        a.runs,
        a.jobs.max(1),
        &a.report_dir,
        a.sim,
        |line| errln!("  {line}"),
    )
    .await?;
    out!("{}", m.table());
    if let Some(p) = a.markdown {
        write_file(&p, &m.markdown())?;
    }
    Ok(m.exit_code())
}
