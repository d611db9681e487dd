//! crashcart: a chaos-engineering harness for Salesforce + local-LLM integrations.
//!
//! Module map (each concept of the house is one folder):
//! - [`scenario`]: scenario files: raw serde types, validation into checked domain types,
//!   templates and synthetic data, the dry-run plan.
//! - [`fault`]: the fault model, the engine that applies faults to mocks and network, the
//!   schedule; `fault::wiremock` (feature `wiremock`): the kinds as wiremock-rs responders.
//! - [`proxy`]: the TCP chaos proxy with Toxiproxy's HTTP API, and the engine's network backends.
//! - [`transport`]: the HTTP seam (real sockets, or in-process routers) and simulation's network.
//! - [`run`]: `crashcart run`, one scenario end to end: environment, SUT, workload, signals.
//! - [`timeline`]: the one timeline of a run (mock requests, faults, workload, SUT logs) as JSONL.
//! - [`checks`]: the SLO checkers, pure functions of timeline, final state and the SLOs.
//! - [`report`]: the run report and its renderings (console, JSON, JUnit, HTML).
//! - [`reference`](mod@reference): the built-in reference integration (a correct SUT) and its switchable defects.
//! - [`matrix`]: every scenario against the reference and each defect.
//! - [`tune`]: backoff settings swept in simulation, ranked, Pareto front.
//! - [`explore`]: proptest-generated fault schedules, shrunk to a minimal failing one.
//! - [`serve`]: `crashcart serve`, the mocks as standalone servers, and the live fault API.
//! - [`cli`]: the command line (thin: parses arguments, calls the modules above, maps exit codes).
//! - [`error`]: harness errors and the documented exit codes.
//!
//! The mocks themselves live in the `crashcart-mocks` crate (`mocks/`).

#![warn(missing_docs)]

// Console output for the commands. `print!` and `eprint!` panic when the stream is closed
// (`crashcart run … | head`); a closed console is not a reason to stop a run that has
// faults to clear and reports to write, so these write and ignore the error. Whatever they
// print passes `terminal_safe`: text from scenario files and SUTs never reaches a terminal
// as escape sequences.
macro_rules! out {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stdout(), "{}", $crate::terminal_safe(&format!($($t)*))); }};
}
macro_rules! outln {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stdout(), "{}", $crate::terminal_safe(&format!($($t)*))); }};
}
macro_rules! errout {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stderr(), "{}", $crate::terminal_safe(&format!($($t)*))); }};
}
macro_rules! errln {
    ($($t:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stderr(), "{}", $crate::terminal_safe(&format!($($t)*))); }};
}

/// Console text with every control character but newline and tab shown as an escape
/// (`\u{1b}`), so nothing printed can move the cursor, clear the screen or retitle a terminal.
#[doc(hidden)]
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| match c {
                '\n' | '\t' => c.to_string(),
                c if c.is_control() => c.escape_unicode().to_string(),
                c => c.to_string(),
            })
            .collect(),
    )
}

pub mod checks;
pub mod cli;
pub mod error;
pub mod explore;
pub mod fault;
pub mod matrix;
pub mod proxy;
pub mod reference;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod timeline;
pub mod transport;
pub mod tune;

pub use error::{exit_code, Error};
