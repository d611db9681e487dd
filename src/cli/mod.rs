//! The command line. Thin by design: clap types, one file per subcommand that parses its
//! arguments and calls the modules that do the work, and the mapping of results to exit
//! codes (`error.rs`).
//!
//! - [`run`]: `run` and `check`; [`matrix`]: `matrix`; [`tune`]: `tune`; [`explore`]:
//!   `explore`.
//! - [`serve`]: `serve`'s arguments; [`fault`]: `fault add|list|clear|events`; [`sut`]:
//!   `sut reference`.
//! - [`scenario`]: `schema`, `validate`, `plan`.

pub mod explore;
pub mod fault;
pub mod matrix;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod sut;
pub mod tune;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{exit_code, Error};

pub use fault::FaultCommand;
pub use serve::{ServeArgs, ServeTarget};
pub use sut::SutCommand;
pub use tune::TuneArgs;

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
    Run(run::RunArgs),
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
    Matrix(matrix::MatrixArgs),
    /// Compare retry/backoff settings under a scenario's faults, in simulation: a ranked
    /// table, the Pareto front (time, calls, quota) and a recommendation.
    Tune(TuneArgs),
    /// Search for fault schedules that break the SLOs (simulation and the reference
    /// integration by default; `--real-time` for any SUT), shrink the first found to a
    /// minimal one, and write it as a scenario that replays it.
    Explore(explore::ExploreArgs),
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

/// The async runtime a command needs: simulation runs on one thread with the clock paused
/// (virtual time jumps ahead whenever every task waits, so the same seed replays the same
/// history); everything else on all cores.
/// `3 faults`, `1 fault`.
pub(crate) fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    if matches!(command, Command::Run(a) if a.sim) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
}

/// Run one command to its exit code.
async fn dispatch(command: Command) -> Result<i32, Error> {
    match command {
        Command::Serve(args) => crate::serve::run(args).await.map(|()| exit_code::OK),
        Command::Fault(cmd) => fault::run(cmd).await.map(|()| exit_code::OK),
        Command::Schema => Ok(scenario::schema()),
        Command::Validate { files } => scenario::validate(&files),
        Command::Plan { file, seed, json } => scenario::plan(&file, seed, json),
        Command::Run(args) => run::run(args).await,
        Command::Check {
            journal,
            scenario,
            seed,
        } => run::check(&journal, &scenario, seed),
        Command::Matrix(args) => matrix::matrix(args).await,
        Command::Tune(args) => tune::tune(args).await,
        Command::Explore(a) => explore::explore(a).await,
        Command::Sut(SutCommand::Reference { defects }) => {
            sut::sut_reference(defects.into_iter().collect()).await
        }
    }
}

/// Parse the process arguments, run, and return the exit code.
pub fn main() -> i32 {
    // The SUT's guard (run/guard.rs) runs before anything else: no runtime, no parsing.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(crate::run::guard::SUBCOMMAND) {
        return crate::run::guard::main(&args[2..]);
    }
    crate::run::shutdown::early();
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
    let runtime = match runtime(&cli.command) {
        Ok(r) => r,
        Err(e) => {
            errln!("crashcart: cannot start the async runtime: {e}");
            return exit_code::ABORTED;
        }
    };
    // Ctrl-C and SIGTERM are caught from here on, before anything starts.
    let run = async {
        crate::run::shutdown::install();
        dispatch(cli.command).await
    };
    match runtime.block_on(run) {
        Ok(code) => code,
        Err(e) => {
            errln!("crashcart: {e}");
            e.exit_code()
        }
    }
}
