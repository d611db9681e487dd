//! The run's recorder: what the runner, the workload and the SUT's output add to the
//! timeline (run markers, operations, log lines), each stamped on the run's clock and told to
//! the event stream as it happens. The mocks' requests and the fault events join the timeline
//! at cleanup, from the mocks' histories and the engine.

use std::sync::Arc;
use std::time::Duration;

use crashcart_mocks::Clock;
use parking_lot::Mutex;

use super::event::{Events, RunEvent};
use crate::timeline::{Event, OpEvent, Phase};

/// Shared by every part of a run that records. Cloning shares it.
#[derive(Clone)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Event>>>,
    clock: Clock,
    events: Events,
}

impl Recorder {
    /// A recorder on the run's clock, telling `events`.
    pub fn new(clock: Clock, events: Events) -> Self {
        Self {
            log: Arc::default(),
            clock,
            events,
        }
    }

    /// Now on the run's clock, microseconds.
    pub fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// The run's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The run's event stream.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// A run marker (`start`, `ready`, `workload-end`, `aborted: …`).
    pub fn mark(&self, what: impl Into<String>) {
        let at_us = self.now_us();
        self.log.lock().push(Event::Run {
            at_us,
            what: what.into(),
        });
    }

    /// A workload operation's invoke or completion.
    pub fn op(&self, o: OpEvent) {
        if !self.events.is_empty() {
            self.events.emit(RunEvent::Operation(o.clone()));
        }
        self.log.lock().push(Event::Op(o));
    }

    /// A line the SUT printed (already scrubbed of secrets).
    pub fn sut_log(&self, stream: &str, line: String) {
        let at_us = self.now_us();
        if !self.events.is_empty() {
            self.events.emit(RunEvent::SutLog {
                at_us,
                stream: stream.to_string(),
                line: line.clone(),
            });
        }
        self.log.lock().push(Event::SutLog {
            at_us,
            stream: stream.to_string(),
            line,
        });
    }

    /// Share of completed operations that failed over the last `window` (at least five
    /// completions, else `None`).
    pub fn recent_error_ratio(&self, window: Duration) -> Option<f64> {
        let since = self.now_us().saturating_sub(window.as_micros() as u64);
        let log = self.log.lock();
        let (mut done, mut bad) = (0u32, 0u32);
        for e in log.iter().rev() {
            if let Event::Op(o) = e {
                if o.at_us < since {
                    break;
                }
                if o.phase != Phase::Invoke {
                    done += 1;
                    if o.phase != Phase::Ok {
                        bad += 1;
                    }
                }
            }
        }
        (done >= 5).then(|| bad as f64 / done as f64)
    }

    /// Everything recorded so far, taken out.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.log.lock())
    }
}
