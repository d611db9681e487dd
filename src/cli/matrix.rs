//! `crashcart matrix`: every scenario against the reference integration and each defect,
//! as a table (and Markdown).

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
}

/// `crashcart matrix`.
pub async fn matrix(a: MatrixArgs) -> Result<i32, Error> {
    let defects = if a.defects.is_empty() {
        crate::reference::Defect::ALL.to_vec()
    } else {
        a.defects
    };
    let scenarios = super::run::load_scenarios(&a.path)?;
    let m = crate::matrix::run(
        &scenarios,
        &defects,
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
