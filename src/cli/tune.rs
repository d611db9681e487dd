//! `crashcart tune`: backoff settings swept in simulation (or in real time against your own
//! SUT, `--real-time`); the ranked table, the Pareto front, the recommendation, CSV and SVG.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::{exit_code, Error};
use crate::report::write_file;

/// Arguments of `crashcart tune`; each list flag replaces that list of the scenario's
/// `tune:` section (or of the defaults).
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The scenario (in simulation its SUT must be the reference integration).
    pub scenario: PathBuf,
    /// Strategies (repeatable).
    #[arg(long = "strategy", value_enum)]
    pub strategies: Vec<crate::reference::resilience::Strategy>,
    /// First backoff steps (repeatable), e.g. `5ms`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub base: Vec<Duration>,
    /// Backoff caps (repeatable).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub cap: Vec<Duration>,
    /// Attempts per call (repeatable).
    #[arg(long)]
    pub max_attempts: Vec<u32>,
    /// Retry budget: `true`, `false` (repeatable).
    #[arg(long)]
    pub budget: Vec<bool>,
    /// Breaker thresholds (repeatable).
    #[arg(long)]
    pub breaker_threshold: Vec<u32>,
    /// Breaker open times (repeatable).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub breaker_open: Vec<Duration>,
    /// Client counts (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub clients: Vec<u32>,
    /// Seeds (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Runs at once (default: the cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write the rows as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write an SVG chart (calls and completion time vs clients).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Where the runs' journals go.
    #[arg(long, default_value = "crashcart-reports/tune")]
    pub report_dir: PathBuf,
    /// Run in real time against the scenario's own SUT (`sut.command`), each run on mocks
    /// and ports of its own; `tune.sut_env` maps the swept settings to its environment.
    /// Without it, tune runs in simulation against the reference integration.
    #[arg(long)]
    pub real_time: bool,
}

/// `crashcart tune`.
pub async fn tune(a: TuneArgs) -> Result<i32, Error> {
    let s = crate::scenario::load(&a.scenario)?;
    let mut space = s.raw.tune.clone().unwrap_or_default();
    macro_rules! over {
        ($field:ident, $flag:expr) => {
            if !$flag.is_empty() {
                space.$field = $flag;
            }
        };
    }
    over!(strategies, a.strategies);
    over!(base, a.base);
    over!(cap, a.cap);
    over!(max_attempts, a.max_attempts);
    over!(budget, a.budget);
    over!(breaker_threshold, a.breaker_threshold);
    over!(breaker_open, a.breaker_open);
    over!(clients, a.clients);
    over!(seeds, a.seeds);
    space.check()?;
    if !a.real_time && !matches!(s.sut, crate::scenario::SutKind::Reference) {
        return Err(Error::InvalidInput(format!(
            "{}: tune simulates the reference integration; for your own SUT add --real-time and map the swept settings in `tune.sut_env`",
            a.scenario.display()
        )));
    }
    let runs = space.configs().len() * space.clients.len() * space.seeds.len();
    let jobs = a.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    errln!(
        "crashcart tune: {} ({} configurations × {} client counts × {} seeds = {runs} {} runs, {jobs} at once)",
        s.name,
        space.configs().len(),
        space.clients.len(),
        space.seeds.len(),
        if a.real_time { "real-time" } else { "simulated" }
    );
    let bar = indicatif::ProgressBar::new(runs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b2 = bar.clone();
    let started = std::time::Instant::now();
    let (configs, samples) =
        crate::tune::sweep_in(&s, &space, jobs, &a.report_dir, a.real_time, move || {
            b2.inc(1)
        })
        .await?;
    bar.finish_and_clear();
    let rows = crate::tune::rows(&configs, &samples);
    out!("{}", crate::tune::table(&rows));
    if let Some(r) = crate::tune::recommend(&rows) {
        outln!(
            "\nrecommendation ({} clients): {} — {:.3}s mean completion, {:.1} calls, {:.1}% success",
            r.clients,
            r.config,
            r.completion_mean_s,
            r.calls,
            r.success * 100.0
        );
    }
    outln!(
        "{runs} {} runs in {:.1}s of wall time",
        if a.real_time {
            "real-time"
        } else {
            "simulated"
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(p) = &a.csv {
        write_file(p, &crate::tune::csv(&rows))?;
    }
    if let Some(p) = &a.svg {
        write_file(p, &crate::tune::svg(&rows))?;
    }
    Ok(exit_code::OK)
}
