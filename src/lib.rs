//! crashcart: a chaos-engineering harness for Salesforce + local-LLM integrations.
//!
//! Module map:
//! - [`cli`]: the command line (thin: parses arguments, calls the modules below, maps exit codes).
//! - [`fault`]: the fault model, the engine that applies faults to mocks and network, the schedule.
//! - [`proxy`]: the TCP chaos proxy with Toxiproxy's HTTP API, and the engine's network backends.
//! - [`control`]: the live fault control API of `crashcart serve`; [`fault_cli`]: `crashcart fault`.
//! - [`scenario`]: scenario files: model, validation, templates and data, the dry-run plan.
//! - [`record`]: the one timeline of a run (mock requests, faults, workload, SUT logs) as JSONL.
//! - [`checks`]: the SLO checkers, pure functions of timeline, final state and scenario.
//! - [`environment`]: mocks, proxies and fault engine stood up together (serve and run).
//! - [`runner`]: `crashcart run`, one scenario end to end; [`sut`]: the SUT process; [`workload`]: the traffic.
//! - [`reference`]: the built-in reference integration (a correct SUT) and its switchable defects.
//! - [`matrix`]: `crashcart matrix`, every scenario against the reference and each defect.
//! - [`transport`]: the HTTP transport seam (real sockets, or in-process routers).
//! - [`sim`]: simulation mode's network (network faults inside the in-process transport).
//! - [`tune`]: `crashcart tune`, backoff settings swept in simulation, ranked, Pareto front.
//! - [`explore`]: proptest-generated fault schedules, shrunk to a minimal failing one; [`explore_cli`]: `crashcart explore`.
//! - [`report`]: console, JSON and JUnit reports; [`html`]: the HTML report with its SVG timeline.
//! - [`serve`]: `crashcart serve`, the mocks as standalone servers for game days and manual work.
//! - `wiremock_faults` (feature `wiremock`): the fault kinds as wiremock-rs responders.
//! - [`shutdown`]: Ctrl-C / SIGTERM handling shared by long-running commands.
//! - [`error`]: harness errors and the documented exit codes.
//!
//! The mocks themselves live in the `crashcart-mocks` crate (`mocks/`).

#![warn(missing_docs)]

// Console output for the commands. `print!` and `eprint!` panic when the stream is closed
// (`crashcart run … | head`); a closed console is not a reason to stop a run that has
// faults to clear and reports to write, so these write and ignore the error.
macro_rules! out {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stdout(), $($t)*); }};
}
macro_rules! outln {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stdout(), $($t)*); }};
}
macro_rules! errout {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stderr(), $($t)*); }};
}
macro_rules! errln {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stderr(), $($t)*); }};
}

pub mod checks;
pub mod cli;
pub mod control;
pub mod environment;
pub mod error;
pub mod explore;
pub mod explore_cli;
pub mod fault;
pub mod fault_cli;
pub mod html;
pub mod matrix;
pub mod proxy;
pub mod record;
pub mod reference;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod serve;
pub mod shutdown;
pub mod sim;
pub mod sut;
pub mod transport;
pub mod tune;
#[cfg(feature = "wiremock")]
pub mod wiremock_faults;
pub mod workload;

pub use error::{exit_code, Error};
