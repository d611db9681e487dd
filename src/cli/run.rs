//! `crashcart run` and `crashcart check`: scenarios run several at once (`--jobs`), each with
//! its own mocks and ports; one at a time the console and the progress bar follow a run's
//! events as they come, several at once each run's console output is written in one piece
//! when it ends. Then the renderings of the reports (HTML per run, JSON and JUnit for all),
//! in the scenarios' order whatever order they finished in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::error::Error;
use crate::report::console::{Console, GroupedConsole};
use crate::report::progress::Progress;
use crate::report::{write_file, RunReport};
use crate::run::{EventSink, Events, RunOptions, RunOutcome};
use crate::scenario::Scenario;

/// Arguments of `crashcart run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file or directory.
    #[arg(default_value = "scenarios")]
    pub path: PathBuf,
    /// Run against the built-in reference integration with this defect (repeatable),
    /// whatever the scenario's `sut` says.
    #[arg(long = "defect", value_enum)]
    pub defects: Vec<crate::reference::Defect>,
    /// Simulation mode: mocks, faults, the reference integration and the workload in one
    /// process on a paused clock (no socket; virtual time runs as fast as the CPU allows).
    /// Needs the reference integration as the SUT.
    #[arg(long)]
    pub sim: bool,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where journals and reports go (default: crashcart-reports).
    #[arg(long, default_value = "crashcart-reports")]
    pub report_dir: PathBuf,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the HTML report here (default: one per scenario in the report dir).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Set an environment variable of a started SUT, over the scenario's `sut.env`
    /// (repeatable). The SUT also inherits crashcart's own environment.
    #[arg(long = "sut-env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub sut_env: Vec<(String, String)>,
    /// Scenarios run at once, each with its own mocks and ports (default: four per core in
    /// real time, where a run mostly waits; one per core with `--sim`). `--jobs 1` runs them
    /// one after the other, with the phases of each on the console as they come.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
}

/// The default of `--jobs`: one per core in simulation (it keeps a core busy), four per core
/// in real time (a run mostly waits on its workload's pace and its faults' schedule).
fn default_jobs(sim: bool) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if sim {
        cores
    } else {
        cores * 4
    }
}

/// `KEY=VALUE` (the key a shell variable name).
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    let valid = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!("{k:?} is not an environment variable name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `crashcart run`: the scenarios, `--jobs` at once, a summary, the reports; the worst exit
/// code wins (aborted 3 > failed 1 > met 0).
pub async fn run(a: RunArgs) -> Result<i32, Error> {
    use futures_util::StreamExt as _;
    let opts = RunOptions {
        seed: a.seed,
        report_dir: Some(a.report_dir.clone()),
        defects: (!a.defects.is_empty()).then(|| a.defects.iter().copied().collect()),
        sim: a.sim,
        policy: None,
        sut_env: a.sut_env.clone(),
    };
    let scenarios = load_scenarios(&a.path)?;
    let jobs = a
        .jobs
        .map_or_else(|| default_jobs(a.sim), usize::from)
        .clamp(1, scenarios.len().max(1));
    let single = scenarios.len() == 1;
    let runs: Vec<Result<RunReport, Error>> = futures_util::stream::iter(&scenarios)
        .map(|s| run_one(s, &opts, &a, single, jobs > 1))
        .buffered(jobs)
        .collect()
        .await;
    let reports = runs.into_iter().collect::<Result<Vec<_>, _>>()?;
    if reports.len() > 1 {
        outln!("\n{}", summary(&reports));
    }
    write_reports(&reports, &a)?;
    Ok(worst_exit_code(&reports))
}

/// One scenario's run and its HTML page; not started once a Ctrl-C or SIGTERM came (the
/// first signal stops the whole run). `grouped`: other runs go on at the same time.
async fn run_one(
    s: &Scenario,
    opts: &RunOptions,
    a: &RunArgs,
    single: bool,
    grouped: bool,
) -> Result<RunReport, Error> {
    if crate::run::shutdown::requested() {
        return Ok(RunReport::not_run(s));
    }
    let events = if grouped {
        Events::to(vec![Arc::new(GroupedConsole::new()) as Arc<dyn EventSink>])
    } else {
        Events::to(vec![
            Arc::new(Console) as Arc<dyn EventSink>,
            Arc::new(Progress::new()),
        ])
    };
    let outcome = crate::run::run(s, opts, &events).await?;
    write_html(
        &outcome,
        a.html.as_deref().filter(|_| single),
        &a.report_dir,
    );
    Ok(outcome.report)
}

/// The HTML page of one run, at `path` or in the report dir; said on the console when
/// written.
fn write_html(o: &RunOutcome, path: Option<&Path>, report_dir: &Path) {
    let page = crate::report::html::render(&o.report, &o.timeline);
    let path = path.map(Path::to_path_buf).unwrap_or_else(|| {
        report_dir.join(format!(
            "{}-{}.html",
            crate::report::file_stem(&o.report.scenario),
            o.report.seed
        ))
    });
    let parent = path.parent().unwrap_or(Path::new("."));
    if std::fs::create_dir_all(parent)
        .and_then(|_| std::fs::write(&path, page))
        .is_ok()
    {
        outln!("  html: {}", path.display());
    }
}

/// One line over several runs.
fn summary(reports: &[RunReport]) -> String {
    let count = |code| reports.iter().filter(|r| r.exit_code() == code).count();
    format!(
        "summary: {} scenarios, {} met, {} failed, {} aborted",
        reports.len(),
        count(0),
        count(1),
        count(3)
    )
}

/// JUnit and JSON where asked, and `report.json` in the report dir always.
fn write_reports(reports: &[RunReport], a: &RunArgs) -> Result<(), Error> {
    if let Some(p) = &a.junit {
        write_file(p, &RunReport::junit(reports))?;
    }
    let json = crate::report::json::render(reports);
    if let Some(p) = &a.json {
        write_file(p, &json)?;
    }
    let _ = std::fs::create_dir_all(&a.report_dir)
        .and_then(|_| std::fs::write(a.report_dir.join("report.json"), json));
    Ok(())
}

/// Aborted (3) beats failed (1) beats met (0).
fn worst_exit_code(reports: &[RunReport]) -> i32 {
    reports
        .iter()
        .map(|r| r.exit_code())
        .max_by_key(|c| match c {
            3 => 3,
            1 => 2,
            _ => 1,
        })
        .unwrap_or(0)
}

/// The scenarios of a file or a directory (`*.yaml`, `*.yml`, sorted), every one checked
/// before any runs.
pub fn load_scenarios(path: &Path) -> Result<Vec<Scenario>, Error> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| Error::Io {
                context: format!("reading {}", path.display()),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    // Check every file before running any.
    let mut scenarios = vec![];
    for f in &files {
        scenarios.push(crate::scenario::load(f)?);
    }
    Ok(scenarios)
}

/// `crashcart check`: a scenario's checkers on a recorded journal.
pub fn check(journal: &Path, scenario: &Path, seed: u64) -> Result<i32, Error> {
    let s = crate::scenario::load(scenario)?;
    let r = crate::run::recheck(&s, journal, seed)?;
    out!("{}", r.console());
    Ok(r.exit_code())
}
