//! JUnit XML for CI: one testsuite per scenario run, one testcase per SLO (its evidence the
//! failure message), an aborted run as an erroring `run` testcase. The Ant/Jenkins shape
//! that CI tools read.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::RunReport;
use crate::checks::Verdict;

impl RunReport {
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
            if !r.unfired_faults.is_empty() {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(match r.unfired_faults.len() {
                    1 => "1 fault proved nothing".to_string(),
                    n => format!("{n} faults proved nothing"),
                });
                status.set_description(r.unfired_faults.join("\n"));
                let mut case = TestCase::new("faults fired", status);
                case.set_classname(r.scenario.as_str());
                suite.add_test_case(case);
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
