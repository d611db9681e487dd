//! A progress bar over a run's workload, on a terminal, for runs of a few seconds or more: a
//! consumer of the run's event stream.

use std::time::Duration;

use parking_lot::Mutex;

use crate::run::{EventSink, RunEvent, RunPhase};

/// Shorter runs get no bar.
const SHORTEST: Duration = Duration::from_secs(3);

/// Fills over the workload's duration, ticking on its own; cleared when cleanup starts.
#[derive(Debug, Default)]
pub struct Progress {
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Progress {
    /// A consumer that draws only when stderr is a terminal.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A bar that fills over `duration`, or none when stderr is not a terminal or the run is
/// short.
fn bar(duration: Duration) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() || duration < SHORTEST {
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
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    Some(bar)
}

impl EventSink for Progress {
    fn event(&self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted {
                duration,
                sim: false,
                ..
            } => *self.bar.lock() = bar(*duration),
            RunEvent::PhaseStarted {
                phase: RunPhase::Drive,
            } => {
                if let Some(b) = &*self.bar.lock() {
                    b.reset_elapsed();
                }
            }
            RunEvent::PhaseStarted {
                phase: RunPhase::Cleanup,
            } => {
                if let Some(b) = self.bar.lock().take() {
                    b.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}
