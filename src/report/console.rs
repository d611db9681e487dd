//! The console: the SLO table of a report, and [`Console`], the consumer of a run's event
//! stream that tells an operator what the run is doing (on stderr) and prints the table (on
//! stdout) when it ends.

use super::{printable as p, RunReport};
use crate::checks::Verdict;
use crate::run::{EventSink, RunEvent};

impl RunReport {
    /// A console table: SLO, target, measured, verdict, one line of evidence.
    pub fn console(&self) -> String {
        let mut out = format!(
            "\nscenario {} (seed {}) — {}\n",
            p(&self.scenario),
            self.seed,
            if let Some(a) = &self.aborted {
                format!("ABORTED: {}", p(a))
            } else if self.passed() {
                "all SLOs met".to_string()
            } else if self.slos.iter().all(|s| s.verdict != Verdict::Fail) {
                "FAILED: a fault proved nothing".to_string()
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
                s.slo,
                p(&s.measured),
                "",
                p(&s.target)
            ));
            if let Some(e) = s.evidence.first() {
                out.push_str(&format!("  {:<w$}           evidence: {}\n", "", p(e)));
                let more = s.problems() - 1;
                if more > 0 {
                    out.push_str(&format!(
                        "  {:<w$}           … and {more} more (the JSON and HTML reports list up to {})\n",
                        "",
                        crate::checks::MAX_EVIDENCE
                    ));
                }
            }
        }
        for f in &self.unfired_faults {
            out.push_str(&format!("  FAULT NOT TESTED: {}\n", p(f)));
        }
        out.push_str(&format!("  replay: {}\n", p(&self.replay)));
        if let Some(d) = &self.digest {
            out.push_str(&format!("  history digest: {d}\n"));
        }
        if let Some(j) = &self.journal {
            out.push_str(&format!("  journal: {}\n", p(j)));
        }
        out
    }
}

/// The console consumer of a run's events: the run's name, seed and phases on stderr as they
/// come, the settings an operator must give a SUT crashcart does not start, and the SLO
/// table on stdout when the run ends. Output a closed console no longer takes is dropped.
#[derive(Debug, Default)]
pub struct Console;

impl EventSink for Console {
    fn event(&self, event: &RunEvent) {
        for (stream, text) in render(event) {
            write(stream, &text);
        }
    }
}

/// The console for one of several runs at once: a line when the run starts, then what
/// [`Console`] prints, held until the run finishes and written in one piece, so runs side by
/// side never interleave.
#[derive(Debug, Default)]
pub struct GroupedConsole {
    held: parking_lot::Mutex<Vec<(Stream, String)>>,
}

impl GroupedConsole {
    /// A console for one run.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventSink for GroupedConsole {
    fn event(&self, event: &RunEvent) {
        if let RunEvent::RunStarted { scenario, .. } = event {
            errln!("crashcart run: {} started", p(scenario));
        }
        let mut held = self.held.lock();
        held.extend(render(event));
        if matches!(event, RunEvent::RunFinished(_)) {
            for (stream, text) in held.drain(..) {
                write(stream, &text);
            }
        }
    }
}

/// Which console stream a text goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// What the run is doing (stderr).
    Progress,
    /// The results (stdout).
    Results,
}

fn write(stream: Stream, text: &str) {
    match stream {
        Stream::Progress => errout!("{text}"),
        Stream::Results => out!("{text}"),
    }
}

/// What the console shows for an event.
fn render(event: &RunEvent) -> Vec<(Stream, String)> {
    let progress = |t: String| (Stream::Progress, t);
    match event {
        RunEvent::RunStarted {
            scenario,
            file,
            seed,
            ..
        } => vec![progress(format!(
            "crashcart run: {} ({})\n  seed {seed}\n",
            p(scenario),
            p(file)
        ))],
        RunEvent::PhaseStarted { phase } => vec![progress(format!("  {}\n", phase.label()))],
        RunEvent::SutSettings { settings } => {
            let mut t = "  configure the SUT with:\n".to_string();
            for (k, v) in settings {
                t.push_str(&format!("    {k}={}\n", p(v)));
            }
            vec![progress(t)]
        }
        RunEvent::RunFinished(report) => vec![(Stream::Results, report.console())],
        _ => vec![],
    }
}
