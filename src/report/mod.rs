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
    /// A scenario that was never started (the run was interrupted before it).
    pub fn not_run(s: &crate::scenario::Scenario) -> Self {
        Self {
            scenario: s.name.clone(),
            file: s.file.display().to_string(),
            seed: s.raw.seed.unwrap_or(0),
            replay: format!("crashcart run {}", s.file.display()),
            aborted: Some("not run: the run was interrupted (Ctrl-C or SIGTERM) before it".into()),
            duration_s: 0.0,
            operations: [0; 4],
            requests: 0,
            journal: None,
            slos: vec![],
            unfired_faults: vec![],
            sut_output: vec![],
            digest: None,
        }
    }

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

/// A scenario's (or row's) name made safe as a file name in a report directory: letters,
/// digits, `-`, `_` and `.` kept, anything else `-`; never empty, never starting with a dot,
/// at most 80 bytes. A name from a scenario file is someone else's text: `../../etc`, an
/// absolute path or 5,000 characters must still land inside the report directory.
pub fn file_stem(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    while s.starts_with('.') {
        s.replace_range(..1, "-");
    }
    if s.is_empty() {
        s.push_str("scenario");
    }
    s
}

/// Text from a scenario or a SUT made safe for a terminal: control characters (escape
/// sequences, carriage returns, newlines that would forge a line of the report) shown as
/// `\u{..}` escapes.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_file_names_inside_the_report_dir() {
        assert_eq!(file_stem("token-expiry"), "token-expiry");
        assert_eq!(file_stem("/etc/passwd"), "-etc-passwd");
        assert_eq!(file_stem("../../.."), "-.-..-..");
        assert_eq!(file_stem(""), "scenario");
        assert_eq!(file_stem(&"x".repeat(5000)).len(), 80);
        assert_eq!(file_stem("bäd name"), "b-d-name");
        for evil in ["/abs", "../up", "..", ".", "a/../../b", "\\share\\x"] {
            let p = std::path::Path::new("reports").join(file_stem(evil));
            assert_eq!(p.parent(), Some(std::path::Path::new("reports")), "{evil}");
        }
    }

    #[test]
    fn control_characters_never_reach_the_terminal_raw() {
        assert_eq!(printable("plain"), "plain");
        let p = printable("evil\x1b[2J\nall SLOs met");
        assert!(!p.chars().any(char::is_control), "{p}");
        assert!(p.contains("\\u{1b}") && p.contains("\\u{a}"), "{p}");
    }
}
