//! What a run tells the world while it works: a stream of typed [`RunEvent`]s. The runner
//! emits them and never prints; reporters (the console, the progress bar, and later a job
//! summary, an OTLP exporter or a live dashboard) are [`EventSink`]s given to [`Events`].
//! Adding a consumer never touches the runner.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::checks::SloResult;
use crate::fault::FaultEvent;
use crate::report::RunReport;
use crate::timeline::OpEvent;

/// The phases of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// Mocks, chaos proxies and the fault engine start.
    Environment,
    /// The SUT is started (or reached) and waited for.
    StartSut,
    /// The workload runs while the fault schedule plays and the abort conditions are watched.
    Drive,
    /// Faults cleared, no new operations, the SUT still running until it is quiet.
    Drain,
    /// Faults are cleared, the SUT stopped, the final state read, the mocks stopped.
    Cleanup,
    /// The SLOs are checked.
    Judge,
}

impl RunPhase {
    /// The phase in a few words, for people.
    pub fn label(self) -> &'static str {
        match self {
            RunPhase::Environment => "mocks and proxies",
            RunPhase::StartSut => "starting the SUT",
            RunPhase::Drive => "workload",
            RunPhase::Drain => "drain",
            RunPhase::Cleanup => "cleanup",
            RunPhase::Judge => "checking",
        }
    }
}

/// One thing that happened in a run.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run begins: what runs, with which seed.
    RunStarted {
        /// Scenario name.
        scenario: String,
        /// Scenario file.
        file: String,
        /// The seed chosen.
        seed: u64,
        /// In simulation (paused clock, in-process).
        sim: bool,
        /// How long the workload runs.
        #[serde(with = "humantime_serde")]
        duration: Duration,
        /// What the SUT is (a command, a URL, the reference integration and its defects).
        sut: String,
    },
    /// A phase begins.
    PhaseStarted {
        /// Which.
        phase: RunPhase,
    },
    /// The dependencies are up, and where they listen.
    EnvironmentReady {
        /// `name=url` of each mock and proxy.
        listening: Vec<String>,
    },
    /// For a SUT crashcart does not start: the settings the operator must give it.
    SutSettings {
        /// Name and value, as the SUT contract names them.
        settings: Vec<(String, String)>,
    },
    /// A fault was activated, removed or flapped.
    Fault(FaultEvent),
    /// A workload operation was invoked, or completed (its `phase` tells).
    Operation(OpEvent),
    /// A line the SUT printed (secrets scrubbed).
    SutLog {
        /// Monotonic time, microseconds.
        at_us: u64,
        /// `stdout`, `stderr` or `reference`.
        stream: String,
        /// The line.
        line: String,
    },
    /// The run stops early.
    Aborted {
        /// Why.
        reason: String,
    },
    /// One SLO was judged.
    SloVerdict(SloResult),
    /// The run is over; its report.
    RunFinished(Box<RunReport>),
}

/// A consumer of run events. Called on the emitting task: do little, or hand off.
pub trait EventSink: Send + Sync {
    /// One event.
    fn event(&self, event: &RunEvent);
}

impl<F: Fn(&RunEvent) + Send + Sync> EventSink for F {
    fn event(&self, event: &RunEvent) {
        self(event)
    }
}

/// Where a run's events go: any number of sinks. Cloning shares them.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Arc<Vec<Arc<dyn EventSink>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Events({} sinks)", self.sinks.len())
    }
}

impl Events {
    /// No consumer (matrix, tune and explore runs).
    pub fn none() -> Self {
        Self::default()
    }

    /// These consumers, each hearing every event in order.
    pub fn to(sinks: Vec<Arc<dyn EventSink>>) -> Self {
        Self {
            sinks: Arc::new(sinks),
        }
    }

    /// Tell every consumer.
    pub fn emit(&self, event: RunEvent) {
        for s in self.sinks.iter() {
            s.event(&event);
        }
    }

    /// True when nobody listens (events need not be built).
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}
