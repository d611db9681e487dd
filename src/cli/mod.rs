//! The command line. Thin by design: parse, call a module, map the result to an exit code.

pub mod explore;
pub mod fault;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{exit_code, Error};

/// crashcart: chaos-engineering harness for Salesforce + local-LLM integrations.
#[derive(Debug, Parser)]
#[command(name = "crashcart", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mock dependencies as servers until Ctrl-C (for game days and manual testing).
    Serve(ServeArgs),
    /// Add, list or clear faults of a running `crashcart serve` (live game days).
    #[command(subcommand)]
    Fault(FaultCommand),
    /// Run scenarios: a file, or every `*.yaml` of a directory one after the other (default:
    /// the shipped scenarios in `scenarios/`, against the built-in reference integration).
    Run {
        /// Scenario file or directory.
        #[arg(default_value = "scenarios")]
        path: PathBuf,
        /// Run against the built-in reference integration with this defect (repeatable),
        /// whatever the scenario's `sut` says.
        #[arg(long = "defect", value_enum)]
        defects: Vec<crate::reference::Defect>,
        /// Simulation mode: mocks, faults, the reference integration and the workload in one
        /// process on a paused clock (no socket; virtual time runs as fast as the CPU allows).
        /// Needs the reference integration as the SUT.
        #[arg(long)]
        sim: bool,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Where journals and reports go (default: crashcart-reports).
        #[arg(long, default_value = "crashcart-reports")]
        report_dir: PathBuf,
        /// Write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the JSON report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the HTML report here (default: one per scenario in the report dir).
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Re-run a scenario's checkers on a recorded journal, without re-running the experiment.
    Check {
        /// The JSONL journal of a run.
        journal: PathBuf,
        /// The scenario it ran.
        #[arg(long)]
        scenario: PathBuf,
        /// The run's seed (as printed and recorded in its report).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run a built-in system under test.
    #[command(subcommand)]
    Sut(SutCommand),
    /// Run every scenario against the reference integration and against each of its defects,
    /// and print which SLO caught which defect.
    Matrix {
        /// Scenario directory or file.
        #[arg(default_value = "scenarios")]
        path: PathBuf,
        /// Only these defects (repeatable; default: all).
        #[arg(long = "defect", value_enum)]
        defects: Vec<crate::reference::Defect>,
        /// Runs at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Where journals go.
        #[arg(long, default_value = "crashcart-reports/matrix")]
        report_dir: PathBuf,
        /// Also write the table as Markdown here.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Run in simulation (paused clock, in-process; seconds instead of minutes).
        #[arg(long)]
        sim: bool,
    },
    /// Compare retry/backoff settings under a scenario's faults, in simulation: a ranked
    /// table, the Pareto front (time, calls, quota) and a recommendation.
    Tune(TuneArgs),
    /// Search for fault schedules that break the SLOs (simulation and the reference
    /// integration by default; `--real-time` for any SUT), shrink the first found to a
    /// minimal one, and write it as a scenario that replays it.
    Explore(crate::cli::explore::ExploreArgs),
    /// Print the JSON Schema of scenario files (for editors).
    Schema,
    /// Check scenario files without running them; every problem of every file is listed.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a scenario's resolved timeline without running it (a dry run).
    Plan {
        /// The scenario.
        file: PathBuf,
        /// The seed to resolve with (default: the scenario's, else 0).
        #[arg(long)]
        seed: Option<u64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `crashcart tune`; each list flag replaces that list of the scenario's
/// `tune:` section (or of the defaults).
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The scenario (its SUT must be the reference integration).
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
}

/// `crashcart tune`.
async fn tune(a: TuneArgs) -> Result<i32, Error> {
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
    let runs = space.configs().len() * space.clients.len() * space.seeds.len();
    let jobs = a.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    errln!(
        "crashcart tune: {} ({} configurations × {} client counts × {} seeds = {runs} runs, {jobs} at once)",
        s.name,
        space.configs().len(),
        space.clients.len(),
        space.seeds.len()
    );
    let bar = indicatif::ProgressBar::new(runs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b2 = bar.clone();
    let started = std::time::Instant::now();
    let (configs, samples) =
        crate::tune::sweep(&s, &space, jobs, &a.report_dir, move || b2.inc(1)).await?;
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
        "{runs} simulated runs in {:.1}s of wall time",
        started.elapsed().as_secs_f64()
    );
    let write = |p: &PathBuf, text: String| {
        std::fs::write(p, text).map_err(|source| Error::Io {
            context: format!("writing {}", p.display()),
            source,
        })
    };
    if let Some(p) = &a.csv {
        write(p, crate::tune::csv(&rows))?;
    }
    if let Some(p) = &a.svg {
        write(p, crate::tune::svg(&rows))?;
    }
    Ok(exit_code::OK)
}

/// `crashcart sut …`.
#[derive(Debug, Subcommand)]
pub enum SutCommand {
    /// The reference integration, configured by the SUT contract's environment variables,
    /// listening on `PORT`, until Ctrl-C or SIGTERM.
    Reference {
        /// Switch on a defect (repeatable).
        #[arg(long = "defect", value_enum)]
        defects: Vec<crate::reference::Defect>,
    },
}

/// `crashcart fault …`.
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Add faults from YAML/JSON files (`-` reads stdin): one fault or a list.
    Add {
        /// Files with fault specs.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
    /// List the faults in force.
    List {
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
    /// Remove one fault by id, or all.
    Clear {
        /// The fault's id (all when absent).
        id: Option<u64>,
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
    /// Print the fault timeline (activations, removals, flaps).
    Events {
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
}

/// Which mocks `serve` starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ServeTarget {
    /// Every mock crashcart has.
    #[default]
    All,
    /// The mock Salesforce.
    Salesforce,
    /// The mock local LLM (OpenAI-compatible and Ollama APIs).
    Llm,
}

/// Arguments of `crashcart serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which mock to serve.
    #[arg(value_enum, default_value_t = ServeTarget::All)]
    pub target: ServeTarget,
    /// Port of the mock Salesforce, or of the mock LLM with `serve llm` (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Port of the mock LLM when serving everything (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    pub llm_port: u16,
    /// Address to bind. Non-loopback addresses need --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Allow binding a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Seed for ids, tokens and every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Serve HTTPS with a self-signed certificate generated at start (written to --cert-out).
    #[arg(long)]
    pub tls: bool,
    /// With --tls: use this PEM certificate chain instead of generating one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// With --tls: the PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where to write the certificate clients must trust (default: a file in the temp dir).
    #[arg(long)]
    pub cert_out: Option<PathBuf>,
    /// Extra org schema (YAML or JSON) merged over the built-in one; repeatable.
    #[arg(long = "schema")]
    pub schemas: Vec<PathBuf>,
    /// Access-token lifetime, e.g. `2h`, `90s`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2h")]
    pub token_ttl: Duration,
    /// Daily API request quota.
    #[arg(long, default_value_t = 15_000)]
    pub daily_api_limit: u64,
    /// Also print the connection settings as shell `export` lines on stdout.
    #[arg(long)]
    pub env: bool,
    /// Which server the LLM's OpenAI-compatible API imitates: openai, vllm, llamacpp, ollama
    /// (error shapes, and 429 or 503 on overload).
    #[arg(long, default_value = "openai")]
    pub flavour: crashcart_mocks::llm::Flavour,
    /// Extra LLM model personas (YAML or JSON) merged over the built-in ones; repeatable.
    #[arg(long = "personas")]
    pub personas: Vec<PathBuf>,
    /// API key the mock LLM accepts on /v1 (default: the built-in key; "" accepts any request).
    #[arg(long)]
    pub llm_api_key: Option<String>,
    /// What the LLM history keeps of prompts: full, hashed or off.
    #[arg(long, default_value = "hashed")]
    pub capture: crashcart_mocks::llm::CapturePolicy,
    /// Serve every LLM model without delays (no TTFT, decoding or cold start).
    #[arg(long)]
    pub zero_delay: bool,
    /// Port of the Toxiproxy-compatible API and the fault control API (Toxiproxy's own port
    /// by default; 0 picks a free port).
    #[arg(long, default_value_t = crate::proxy::api::DEFAULT_API_PORT)]
    pub api_port: u16,
    /// Do not put chaos proxies in front of the mocks (no network faults, no API).
    #[arg(long)]
    pub no_proxy: bool,
}

/// `crashcart run`: each scenario in turn, a summary, the reports; the worst exit code wins
/// (aborted 3 > failed 1 > met 0).
async fn run_scenarios(
    path: &std::path::Path,
    opts: crate::run::RunOptions,
    junit: Option<PathBuf>,
    json: Option<PathBuf>,
    html: Option<PathBuf>,
) -> Result<i32, Error> {
    let scenarios = load_scenarios(path)?;
    let mut reports = vec![];
    for s in &scenarios {
        errln!("crashcart run: {} ({})", s.name, s.file.display());

        // A progress bar over the workload, on a terminal, for runs of a few seconds or more.
        let bar = if opts.sim {
            None
        } else {
            progress_bar(s.raw.duration)
        };
        let outcome = crate::run::run(s, &opts, |p| match p {
            crate::run::Progress::Seed(seed) => errln!("  seed {seed}"),
            crate::run::Progress::Phase(ph) => {
                if let Some(b) = &bar {
                    match ph.as_str() {
                        "workload" => b.reset_elapsed(),
                        "checking" => b.finish_and_clear(),
                        _ => {}
                    }
                }
                errln!("  {ph}");
            }
            crate::run::Progress::Settings(pairs) => {
                errln!("  configure the SUT with:");
                for (k, v) in pairs {
                    errln!("    {k}={v}");
                }
            }
        })
        .await?;
        let report = outcome.report;
        out!("{}", report.console());
        let page = crate::report::html::render(&report, &outcome.timeline);
        let html_path = match (&html, scenarios.len()) {
            (Some(p), 1) => p.clone(),
            _ => opts
                .report_dir
                .clone()
                .unwrap_or_default()
                .join(format!("{}-{}.html", report.scenario, report.seed)),
        };
        let parent = html_path.parent().unwrap_or(std::path::Path::new("."));
        if std::fs::create_dir_all(parent)
            .and_then(|_| std::fs::write(&html_path, page))
            .is_ok()
        {
            outln!("  html: {}", html_path.display());
        }
        reports.push(report);
    }
    if reports.len() > 1 {
        outln!(
            "
summary: {} scenarios, {} met, {} failed, {} aborted",
            reports.len(),
            reports.iter().filter(|r| r.exit_code() == 0).count(),
            reports.iter().filter(|r| r.exit_code() == 1).count(),
            reports.iter().filter(|r| r.exit_code() == 3).count()
        );
    }
    let write = |p: &PathBuf, text: String| {
        std::fs::write(p, text).map_err(|source| Error::Io {
            context: format!("writing {}", p.display()),
            source,
        })
    };
    if let Some(p) = &junit {
        write(p, crate::report::RunReport::junit(&reports))?;
    }
    let json_text = serde_json::to_string_pretty(&reports).unwrap_or_default();
    if let Some(p) = &json {
        write(p, json_text.clone())?;
    }
    let _ = std::fs::create_dir_all(opts.report_dir.clone().unwrap_or_default()).and_then(|_| {
        std::fs::write(
            opts.report_dir
                .clone()
                .unwrap_or_default()
                .join("report.json"),
            json_text,
        )
    });
    Ok(reports
        .iter()
        .map(|r| r.exit_code())
        .max_by_key(|c| match c {
            3 => 3,
            1 => 2,
            _ => 1,
        })
        .unwrap_or(0))
}

/// The scenarios of a file or a directory (`*.yaml`, `*.yml`, sorted), every one checked
/// before any runs.
fn load_scenarios(path: &std::path::Path) -> Result<Vec<crate::scenario::Scenario>, Error> {
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

/// `crashcart sut reference`: serve until Ctrl-C or SIGTERM.
async fn sut_reference(defects: crate::reference::Defects) -> Result<i32, Error> {
    let settings = crate::reference::Settings::from_lookup(|k| std::env::var(k).ok())?;
    let port = settings.port;
    let log: crate::reference::LogSink = std::sync::Arc::new(|line| errln!("reference: {line}"));
    let r = crate::reference::Reference::new(
        settings,
        crate::transport::Transport::sockets(),
        crate::reference::Policy::default(),
        defects.clone(),
        log,
    );
    let running = crate::reference::spawn(r, port).await?;
    errln!(
        "reference integration listening on http://{} (defects: {}); Ctrl-C to stop",
        running.addr,
        defects.label()
    );
    crate::run::shutdown::signal().await;
    let left = running.stop(Duration::from_secs(10)).await;
    if left > 0 {
        errln!("reference: stopped with {left} compensations unfinished");
    }
    Ok(exit_code::OK)
}

/// A bar that fills over `duration` (ticking on its own), or none when stderr is not a
/// terminal or the run is short.
fn progress_bar(duration: std::time::Duration) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || duration < std::time::Duration::from_secs(3) {
        return None;
    }
    let secs = duration.as_secs();
    let bar = indicatif::ProgressBar::new(secs);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  {elapsed_precise} [{wide_bar}] {pos}/{len}s {msg}",
        )
        .ok()?,
    );
    let b = bar.clone();
    tokio::spawn(async move {
        while !b.is_finished() {
            b.set_position(b.elapsed().as_secs().min(secs));
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    Some(bar)
}

/// `crashcart validate`: every file, every problem; exit 2 if any file has one.
fn validate(files: &[PathBuf]) -> Result<i32, Error> {
    let mut bad = 0;
    for f in files {
        match crate::scenario::load(f) {
            Ok(s) => outln!(
                "{}: ok ({}: {} faults, {} SLOs)",
                f.display(),
                s.name,
                s.raw.faults.len(),
                s.raw.slos.len()
            ),
            Err(e) => {
                bad += 1;
                errln!("{e}");
            }
        }
    }
    Ok(if bad > 0 {
        exit_code::INVALID_INPUT
    } else {
        exit_code::OK
    })
}

/// Parse the process arguments, run, and return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit_code::INVALID_INPUT
            } else {
                exit_code::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CRASHCART_LOG"))
        .with_writer(std::io::stderr)
        .try_init();
    // Simulation runs on one thread with the clock paused: virtual time jumps ahead whenever
    // every task waits, so the same seed replays the same history.
    let sim = matches!(cli.command, Command::Run { sim: true, .. });
    let built = if sim {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            errln!("crashcart: cannot start the async runtime: {e}");
            return exit_code::ABORTED;
        }
    };
    let result: Result<i32, Error> = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => crate::serve::run(args).await.map(|()| exit_code::OK),
            Command::Fault(cmd) => crate::cli::fault::run(cmd).await.map(|()| exit_code::OK),
            Command::Schema => {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&crate::scenario::json_schema())
                        .unwrap_or_default()
                );
                Ok(exit_code::OK)
            }
            Command::Validate { files } => validate(&files),
            Command::Run {
                path,
                defects,
                sim,
                seed,
                report_dir,
                junit,
                json,
                html,
            } => {
                let defects = (!defects.is_empty()).then(|| defects.into_iter().collect());
                let o = crate::run::RunOptions {
                    seed,
                    report_dir: Some(report_dir),
                    defects,
                    sim,
                    policy: None,
                };
                run_scenarios(&path, o, junit, json, html).await
            }
            Command::Tune(args) => tune(args).await,
            Command::Explore(a) => crate::cli::explore::explore(a).await,
            Command::Sut(SutCommand::Reference { defects }) => {
                sut_reference(defects.into_iter().collect()).await
            }
            Command::Matrix {
                path,
                defects,
                jobs,
                report_dir,
                markdown,
                sim,
            } => {
                let defects = if defects.is_empty() {
                    crate::reference::Defect::ALL.to_vec()
                } else {
                    defects
                };
                let scenarios = load_scenarios(&path)?;
                let m = crate::matrix::run(
                    &scenarios,
                    &defects,
                    jobs.max(1),
                    &report_dir,
                    sim,
                    |line| errln!("  {line}"),
                )
                .await?;
                out!("{}", m.table());
                if let Some(p) = markdown {
                    std::fs::write(&p, m.markdown()).map_err(|source| Error::Io {
                        context: format!("writing {}", p.display()),
                        source,
                    })?;
                }
                Ok(m.exit_code())
            }
            Command::Check {
                journal,
                scenario,
                seed,
            } => {
                let s = crate::scenario::load(&scenario)?;
                let r = crate::run::recheck(&s, &journal, seed)?;
                out!("{}", r.console());
                Ok(r.exit_code())
            }
            Command::Plan { file, seed, json } => {
                crate::scenario::load(&file).map_err(Error::from).map(|s| {
                    let seed = seed.or(s.raw.seed).unwrap_or(0);
                    let plan = crate::scenario::plan::plan(&s, seed);
                    if json {
                        outln!(
                            "{}",
                            serde_json::to_string_pretty(&plan).unwrap_or_default()
                        );
                    } else {
                        out!("{plan}");
                    }
                    exit_code::OK
                })
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("crashcart: {e}");
            e.exit_code()
        }
    }
}
