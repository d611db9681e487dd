//! `crashcart explore`: the command around [`crate::explore`]: regressions replayed first,
//! the search on both cores (simulation) or one case at a time (`--real-time`), progress,
//! the report in words and the counterexample written as a scenario file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use sha2::Digest;

use crate::error::{exit_code, Error};
use crate::explore::{explore as search, scenario_yaml, CaseRunner, Found, Search};
use crate::reference::{Defect, Defects};
use crate::scenario::{Scenario, SutKind};

/// Arguments of `crashcart explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The starting scenario (its workload and SLOs; its `explore:` section is the budget).
    pub scenario: PathBuf,
    /// Generated schedules to try (in simulation, half on each core).
    #[arg(long, default_value_t = 64)]
    pub cases: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fault kinds to draw from instead of the budget's (comma-separated; `all`: every kind of
    /// the fault engine).
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Explore the reference integration with this defect (repeatable).
    #[arg(long = "defect", value_enum)]
    pub defects: Vec<Defect>,
    /// Run every case in wall time on real sockets, against the scenario's own SUT (an
    /// external process or URL) or the reference; one case at a time, each lasting the
    /// scenario's duration. Default: simulation, against the reference integration.
    #[arg(long)]
    pub real_time: bool,
    /// Failing schedules to try while shrinking, at most (default: 512 in simulation, 16 in
    /// real time).
    #[arg(long)]
    pub shrink_iters: Option<u32>,
    /// Where the counterexample scenario goes (default: in the report dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Counterexamples are kept here and replayed first next time.
    #[arg(long, default_value = "scenarios/regressions")]
    pub regressions: PathBuf,
    /// Where the runs' journals go.
    #[arg(long, default_value = "crashcart-reports/explore")]
    pub report_dir: PathBuf,
    /// Explore an integration of your own instead of the scenario's SUT: a variants file (as
    /// for `crashcart matrix --sut`); needs --real-time.
    #[arg(long, requires = "real_time", conflicts_with = "defects")]
    pub sut: Option<PathBuf>,
    /// With --sut: which build (default `correct`).
    #[arg(long, requires = "sut", default_value = "correct")]
    pub variant: String,
}

/// What the cases run against, and how.
#[derive(Clone)]
struct Mode {
    real_time: bool,
    /// `Some`: the reference integration with these defects; `None`: the scenario's own SUT.
    defects: Option<Defects>,
    dir: PathBuf,
}

impl Mode {
    fn runner(&self, rt: &tokio::runtime::Handle) -> Box<CaseRunner<'static>> {
        let (defects, dir) = (self.defects.clone(), self.dir.clone());
        if self.real_time {
            Box::new(crate::explore::real_time(rt.clone(), defects, dir))
        } else {
            Box::new(crate::explore::simulated(defects.unwrap_or_default(), dir))
        }
    }

    /// Label of what is explored, for file names and messages.
    fn label(&self) -> String {
        match &self.defects {
            Some(d) => d.label(),
            None => "sut".into(),
        }
    }
}

/// `crashcart explore`.
pub async fn explore(a: ExploreArgs) -> Result<i32, Error> {
    let mut s = crate::scenario::load(&a.scenario)?;
    if let Some(file) = &a.sut {
        let v = crate::matrix::variants::load(file)?;
        s = v.apply(&s, v.build(&a.variant)?);
        s.name = format!("{}-{}-{}", s.name, v.name, a.variant);
    }
    let mut budget = s.raw.explore.clone().unwrap_or_default();
    if !a.kinds.is_empty() {
        budget.kinds = crate::explore::kinds(&a.kinds);
    }
    budget.check()?;
    let mode = mode(&a, &s)?;
    let tag = format!("{}-{}", s.name, mode.label());
    if let Some(code) = replay_regressions(&a, &mode, &tag).await? {
        return Ok(code);
    }
    if a.real_time {
        errln!(
            "real time: {} cases of about {} each, one at a time",
            a.cases,
            humantime::format_duration(s.raw.duration)
        );
    }
    let started = std::time::Instant::now();
    let (found, runs) = search_all(&a, &s, &budget, &mode).await?;
    let wall = started.elapsed().as_secs_f64();
    outln!(
        "explored {} ({}, {}): {runs} runs in {wall:.1}s ({:.1} cases/s)",
        s.name,
        match &mode.defects {
            Some(d) => format!("reference integration, defects: {}", d.label()),
            None => "the scenario's SUT".into(),
        },
        if a.real_time {
            "real time"
        } else {
            "simulation"
        },
        runs as f64 / wall.max(1e-9)
    );
    let Some(found) = found else {
        outln!("no failing schedule found in {} cases", a.cases);
        return Ok(exit_code::OK);
    };
    outln!(
        "failure found; {} failing schedules tried while shrinking; minimal schedule: {}",
        found.shrink_steps,
        super::count(found.faults.len(), "fault")
    );
    outln!("counterexample: {}", found.describe());
    write_counterexample(&a, &s, &mode, &tag, &found)?;
    Ok(exit_code::SLO_FAILED)
}

/// What the cases run against: the reference (with `--defect`s, or when the scenario names
/// it), else the scenario's own SUT, which only real time can explore.
fn mode(a: &ExploreArgs, s: &Scenario) -> Result<Mode, Error> {
    let given: Defects = a.defects.iter().copied().collect();
    let defects = match (&s.sut, a.defects.is_empty()) {
        (_, false) | (SutKind::Reference, true) => Some(given),
        _ => None,
    };
    if defects.is_none() && !a.real_time {
        return Err(Error::InvalidInput(format!(
            "{}: the scenario's SUT is external; simulation explores the built-in reference integration only (give --defect to explore it), or add --real-time to explore your SUT in wall time",
            a.scenario.display()
        )));
    }
    Ok(Mode {
        real_time: a.real_time,
        defects,
        dir: a.report_dir.clone(),
    })
}

/// Counterexamples found before are tried first: the exit code when one still fails (or a
/// run is aborted), `None` when they all pass now.
async fn replay_regressions(a: &ExploreArgs, mode: &Mode, tag: &str) -> Result<Option<i32>, Error> {
    let rt = tokio::runtime::Handle::current();
    for f in crate::explore::regressions(&a.regressions, tag) {
        let kept = crate::scenario::load(&f)?;
        let run = mode.runner(&rt);
        let k = kept.clone();
        let o = tokio::task::spawn_blocking(move || run(&k))
            .await
            .map_err(|e| Error::Aborted(e.to_string()))??;
        if o.report.aborted.is_some() {
            out!("{}", o.report.console());
            return Ok(Some(exit_code::ABORTED));
        }
        if !o.report.passed() {
            outln!(
                "regression {} still fails: {}",
                f.display(),
                kept.raw.description.clone().unwrap_or_default()
            );
            return Ok(Some(exit_code::SLO_FAILED));
        }
        outln!("regression {} now passes", f.display());
    }
    Ok(None)
}

/// The search: in simulation two, with their own generator seeds, one per core; in real time
/// one, since cases share the SUT (and each lasts the scenario's duration). The first
/// failure found, and the runs made.
async fn search_all(
    a: &ExploreArgs,
    s: &Scenario,
    budget: &crate::explore::Budget,
    mode: &Mode,
) -> Result<(Option<Found>, u64), Error> {
    let rt = tokio::runtime::Handle::current();
    let runners: u32 = if a.real_time { 1 } else { 2 };
    let shrink_iters = a.shrink_iters.unwrap_or(if a.real_time { 16 } else { 512 });
    let stats = Arc::new(AtomicU64::new(0));
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("exploring {} ({} cases)", s.name, a.cases));
    let mut handles = vec![];
    for k in 0..runners {
        let (s, budget, stats, run) = (s.clone(), budget.clone(), stats.clone(), mode.runner(&rt));
        let plan = Search {
            cases: a.cases.div_ceil(runners),
            seed: a.seed.wrapping_add(k as u64),
            shrink_iters,
        };
        handles.push(tokio::task::spawn_blocking(move || {
            search(&s, &budget, plan, &stats, &*run)
        }));
    }
    let ticker = {
        let (bar, stats) = (bar.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(stats.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut found: Option<Found> = None;
    let mut error = None;
    for h in handles {
        match h.await.map_err(|e| Error::Aborted(e.to_string()))? {
            Ok(r) => {
                if found.is_none() {
                    found = r;
                }
            }
            Err(e) => error = Some(e),
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    match error {
        Some(e) => Err(e),
        None => Ok((found, stats.load(Ordering::Relaxed))),
    }
}

/// Write the counterexample to `--out` (or the report dir) and keep it among the regressions,
/// named by its schedule so different counterexamples of one scenario are all kept.
fn write_counterexample(
    a: &ExploreArgs,
    s: &Scenario,
    mode: &Mode,
    tag: &str,
    found: &Found,
) -> Result<(), Error> {
    let yaml = scenario_yaml(s, found, mode.defects.as_ref(), mode.real_time)?;
    let id: String = sha2::Sha256::digest(yaml.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.report_dir.join(format!("{tag}-counterexample.yaml")));
    for p in [out.clone(), a.regressions.join(format!("{tag}-{id}.yaml"))] {
        write(&p, &yaml)?;
    }
    outln!(
        "written to {} (replay: {})",
        out.display(),
        crate::explore::replay_command(&out, mode.defects.as_ref(), mode.real_time)
    );
    Ok(())
}

fn write(p: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = p.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(p, text).map_err(|source| Error::Io {
        context: format!("writing {}", p.display()),
        source,
    })
}
