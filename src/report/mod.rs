//! Reports of a run, for people and CI: a console table, JSON, and JUnit XML (a scenario is a
//! testsuite, an SLO a testcase, its evidence the failure message). Every report records the
//! seed and the command that replays the run.

pub mod html;

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
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
        self.aborted.is_none() && self.slos.iter().all(|s| s.verdict != Verdict::Fail)
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

    /// A console table: SLO, target, measured, verdict, one line of evidence.
    pub fn console(&self) -> String {
        let mut out = format!(
            "\nscenario {} (seed {}) — {}\n",
            self.scenario,
            self.seed,
            if let Some(a) = &self.aborted {
                format!("ABORTED: {a}")
            } else if self.passed() {
                "all SLOs met".to_string()
            } else {
                "SLO FAILED".to_string()
            }
        );
        let [inv, ok, fail, info] = self.operations;
        out.push_str(&format!("  workload: {inv} operations, {ok} ok, {fail} fail, {info} unknown; {} mock requests\n", self.requests));
        let w = self
            .slos
            .iter()
            .map(|s| s.slo.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&format!(
            "  {:<w$}  {:<7}  {}\n",
            "SLO", "verdict", "measured / target"
        ));
        for s in &self.slos {
            let v = match s.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "skip",
            };
            out.push_str(&format!(
                "  {:<w$}  {v:<7}  {}\n  {:<w$}           target: {}\n",
                s.slo, s.measured, "", s.target
            ));
            if let Some(e) = s.evidence.first() {
                out.push_str(&format!("  {:<w$}           evidence: {e}\n", ""));
            }
        }
        out.push_str(&format!("  replay: {}\n", self.replay));
        if let Some(d) = &self.digest {
            out.push_str(&format!("  history digest: {d}\n"));
        }
        if let Some(j) = &self.journal {
            out.push_str(&format!("  journal: {j}\n"));
        }
        out
    }

    /// JUnit XML for several runs: one testsuite each.
    pub fn junit(reports: &[RunReport]) -> String {
        let mut report = Report::new("crashcart");
        for r in reports {
            let mut suite = TestSuite::new(r.scenario.as_str());
            suite.set_time(Duration::from_secs_f64(r.duration_s));
            suite.set_system_out(format!(
                "seed {}\nreplay: {}\n{}",
                r.seed,
                r.replay,
                r.sut_output.join("\n")
            ));
            if let Some(a) = &r.aborted {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(format!("aborted: {a}"));
                suite.add_test_case(TestCase::new("run", status));
            }
            for s in &r.slos {
                let status = match s.verdict {
                    Verdict::Pass => TestCaseStatus::success(),
                    Verdict::Skip => {
                        let mut st = TestCaseStatus::skipped();
                        st.set_message(s.measured.as_str());
                        st
                    }
                    Verdict::Fail => {
                        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        st.set_message(format!("{} (target: {})", s.measured, s.target));
                        st.set_description(s.evidence.join("\n"));
                        st
                    }
                };
                let mut case = TestCase::new(s.slo.as_str(), status);
                case.set_classname(r.scenario.as_str());
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report.to_string().unwrap_or_default()
    }
}
