//! The report of a run, and its renderings for people and CI. Every report records the seed
//! and the command that replays the run.
//!
//! - [`console`]: the console table, and the console consumer of the run's event stream.
//! - [`progress`]: a progress bar over the workload, another consumer of the stream.
//! - [`json`]: the JSON report of several runs.
//! - [`junit`]: JUnit XML (a scenario is a testsuite, an SLO a testcase).
//! - [`html`]: a self-contained HTML page with an SVG timeline.
//!
//! The runner builds a [`RunReport`]; everything here reads it (or the event stream), and
//! nothing here is called from inside the runner.

pub mod console;
pub mod html;
pub mod json;
pub mod junit;
pub mod progress;

use serde::{Deserialize, Serialize};

use crate::checks::{SloResult, Verdict};

/// The outcome of one scenario run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub file: String,
    /// The seed.
    pub seed: u64,
    /// The command that replays the run.
    pub replay: String,
    /// Why the run was aborted, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Workload operations: invoked, ok, fail, info.
    pub operations: [u64; 4],
    /// Mock requests recorded.
    pub requests: u64,
    /// The journal file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// The SLO verdicts.
    pub slos: Vec<SloResult>,
    /// Faults that proved nothing: never applied, never started, or matching no request. A
    /// run with any fails: its SLOs were not tested under them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unfired_faults: Vec<String>,
    /// The SUT's last output lines (stdout and stderr).
    #[serde(default)]
    pub sut_output: Vec<String>,
    /// SHA-256 (first 128 bits) of the journal: in simulation the same seed gives the same
    /// digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl RunReport {
    /// True when no SLO failed and the run was not aborted.
    pub fn passed(&self) -> bool {
        self.aborted.is_none()
            && self.unfired_faults.is_empty()
            && self.slos.iter().all(|s| s.verdict != Verdict::Fail)
    }

    /// The process exit code: 0 met, 1 an SLO failed, 3 aborted.
    pub fn exit_code(&self) -> i32 {
        if self.aborted.is_some() {
            crate::exit_code::ABORTED
        } else if self.passed() {
            crate::exit_code::OK
        } else {
            crate::exit_code::SLO_FAILED
        }
    }
}

/// Write a rendering to `path`, naming the file in the error.
pub fn write_file(path: &std::path::Path, text: &str) -> Result<(), crate::error::Error> {
    std::fs::write(path, text).map_err(|source| crate::error::Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })
}
