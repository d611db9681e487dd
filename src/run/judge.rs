//! Phases 7 and 8, judge and report: the timeline is written as the run's JSONL journal (its
//! digest identifies the run), every SLO is checked against it and the org's final state,
//! and the run's report is put together. Renderings of the report (console, JSON, JUnit,
//! HTML) are its consumers' business.

use std::path::{Path, PathBuf};

use super::event::{Events, RunEvent};
use super::prepare::Prepared;
use super::RunOptions;
use crate::checks::{check_all, FinalState, SloResult};
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::timeline::journal::Journal;
use crate::timeline::{Event, Phase, Timeline};

/// The SUT output lines a report keeps (the last ones).
const SUT_OUTPUT_KEPT: usize = 200;

/// Check every SLO of the scenario, telling each verdict.
pub fn judge(
    s: &Scenario,
    seed: u64,
    timeline: &Timeline,
    state: &FinalState,
    events: &Events,
) -> Vec<SloResult> {
    let slos = check_all(&s.slos, &s.workload.operations, seed, timeline, state);
    for r in &slos {
        events.emit(RunEvent::SloVerdict(r.clone()));
    }
    slos
}

/// Where the run's journal goes: the report directory (a temp dir when none), named after
/// the scenario and seed.
pub fn journal_path(s: &Scenario, seed: u64, opts: &RunOptions) -> PathBuf {
    let dir = opts
        .report_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("crashcart-{}", std::process::id())));
    dir.join(format!(
        "{}-{seed}.jsonl",
        crate::report::file_stem(&s.name)
    ))
}

/// Operations by phase: invoked, ok, fail, info.
fn op_counts(t: &Timeline) -> [u64; 4] {
    let mut counts = [0u64; 4];
    for o in t.ops() {
        counts[match o.phase {
            Phase::Invoke => 0,
            Phase::Ok => 1,
            Phase::Fail => 2,
            Phase::Info => 3,
        }] += 1;
    }
    counts
}

/// The SUT's last output lines, `[stream] line`.
fn sut_output(t: &Timeline) -> Vec<String> {
    let lines: Vec<String> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::SutLog(l) => Some(format!("[{}] {}", l.stream, l.line)),
            _ => None,
        })
        .collect();
    let tail = lines.len().saturating_sub(SUT_OUTPUT_KEPT);
    lines[tail..].to_vec()
}

/// The command that replays a run.
fn replay(file: &Path, seed: u64, opts: &RunOptions) -> String {
    format!(
        "crashcart run {} --seed {seed}{}{}",
        file.display(),
        if opts.sim { " --sim" } else { "" },
        opts.defects
            .iter()
            .flat_map(|d| d.iter())
            .map(|d| format!(" --defect {d}"))
            .collect::<String>()
    )
}

/// What went into a report besides the timeline.
pub struct Verdicts {
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    /// The SLO verdicts.
    pub slos: Vec<SloResult>,
    /// Faults that proved nothing.
    pub unfired: Vec<String>,
    /// The journal.
    pub journal: Journal,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
}

/// The run's report.
pub fn report(
    s: &Scenario,
    prepared: &Prepared,
    opts: &RunOptions,
    t: &Timeline,
    v: Verdicts,
) -> RunReport {
    RunReport {
        scenario: s.name.clone(),
        file: s.file.display().to_string(),
        seed: prepared.seed,
        replay: replay(&s.file, prepared.seed, opts),
        aborted: v.aborted,
        duration_s: v.duration_s,
        operations: op_counts(t),
        requests: t.requests().count() as u64,
        journal: v.journal.path.map(|p| p.display().to_string()),
        slos: v.slos,
        unfired_faults: v.unfired,
        sut_output: sut_output(t),
        digest: Some(v.journal.digest),
    }
}
