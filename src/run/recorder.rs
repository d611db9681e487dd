//! The run's recorder: everything that happens during a run, stamped on the run's clock,
//! written to the journal as it happens and told to the event stream; what the checkers need
//! is kept in memory, in compact form. It hears the runner, the workload and the SUT's output
//! directly, and the mocks through their histories' sinks ([`Recorder::listen`]). Fault
//! events join the timeline at cleanup, from the engine.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crashcart_mocks::{Clock, History, RequestRecord};
use parking_lot::Mutex;

use super::event::{Events, RunEvent};
use crate::timeline::journal::{Journal, JournalWriter, Line};
use crate::timeline::{Call, Event, Interner, OpEvent, Phase, SutLine};

/// The SUT's output lines kept in memory (all of them are in the journal).
const SUT_LINES_KEPT: usize = 1000;

/// Requests each mock keeps for its own `/__crashcart/history` during a run (the recorder
/// has them all).
const MOCK_WINDOW: usize = 10_000;

/// Shared by every part of a run that records. Cloning shares it.
#[derive(Clone)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Event>>>,
    sut_lines: Arc<Mutex<VecDeque<Event>>>,
    calls: Arc<Mutex<Calls>>,
    journal: Arc<JournalWriter>,
    clock: Clock,
    events: Events,
}

/// Each mock's calls, in completion order, and the text they share.
#[derive(Default)]
struct Calls {
    names: Interner,
    by_mock: Vec<Vec<Event>>,
}

impl Recorder {
    /// A recorder on the run's clock, writing `journal` and telling `events`.
    pub fn new(clock: Clock, events: Events, journal: JournalWriter) -> Self {
        Self {
            log: Arc::default(),
            sut_lines: Arc::default(),
            calls: Arc::default(),
            journal: Arc::new(journal),
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

    /// Record every request `history` completes from now on; the mock itself keeps only its
    /// most recent ones.
    pub fn listen(&self, history: &History) {
        let slot = {
            let mut calls = self.calls.lock();
            calls.by_mock.push(vec![]);
            calls.by_mock.len() - 1
        };
        let (calls, journal) = (self.calls.clone(), self.journal.clone());
        history.set_sink(Arc::new(move |r: &RequestRecord| {
            journal.write(&Line::Request(r));
            let mut calls = calls.lock();
            // A request that completes after the timeline was taken (a long poll the SUT
            // left open while the mocks went down) is in the journal only.
            if calls.by_mock.get(slot).is_none() {
                return;
            }
            let call = Call::of(r, &mut calls.names);
            calls.by_mock[slot].push(Event::Request(Box::new(call)));
        }));
        history.set_capacity(MOCK_WINDOW);
    }

    /// A run marker (`start`, `ready`, `workload-end`, `aborted: …`).
    pub fn mark(&self, what: impl Into<String>) {
        let at_us = self.now_us();
        let what = what.into();
        self.journal.write(&Line::Run { at_us, what: &what });
        self.log.lock().push(Event::Run { at_us, what });
    }

    /// A fault event (from the engine's listener).
    pub fn fault(&self, f: &crate::fault::FaultEvent) {
        self.journal.write(&Line::Fault(f));
    }

    /// A workload operation's invoke or completion.
    pub fn op(&self, o: OpEvent) {
        if !self.events.is_empty() {
            self.events.emit(RunEvent::Operation(o.clone()));
        }
        self.journal.write(&Line::Op(&o));
        self.log.lock().push(Event::op(o));
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
        let l = SutLine {
            at_us,
            stream: stream.to_string(),
            line,
        };
        self.journal.write(&Line::SutLog(&l));
        let mut kept = self.sut_lines.lock();
        if kept.len() == SUT_LINES_KEPT {
            kept.pop_front();
        }
        kept.push_back(Event::SutLog(Box::new(l)));
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

    /// Everything recorded so far, taken out: the runner's and workload's events in the
    /// order recorded, the SUT's last lines, then each mock's requests in arrival order.
    pub fn take(&self) -> Vec<Event> {
        let mut out = std::mem::take(&mut *self.log.lock());
        out.extend(self.sut_lines.lock().drain(..));
        for mut calls in std::mem::take(&mut self.calls.lock().by_mock) {
            calls.sort_by_key(|e| match e {
                Event::Request(c) => c.seq,
                _ => 0,
            });
            out.append(&mut calls);
        }
        out
    }

    /// The end marker written and the journal closed.
    pub fn finish(&self) -> (Event, Journal) {
        let at_us = self.now_us();
        self.journal.write(&Line::Run { at_us, what: "end" });
        let end = Event::Run {
            at_us,
            what: "end".into(),
        };
        (end, self.journal.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_completing_after_the_timeline_was_taken_goes_to_the_journal_only() {
        let dir = std::env::temp_dir().join(format!("crashcart-rec-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let rec = Recorder::new(
            Clock::new(),
            Events::none(),
            JournalWriter::create(dir.join("late.jsonl")),
        );
        let history = History::new();
        rec.listen(&history);
        let record = || -> RequestRecord {
            serde_json::from_str(r#"{"seq": 1, "dependency": "salesforce", "at_us": 0, "latency_us": 0, "method": "POST", "path": "/cometd/59.0", "operation": "streaming.connect", "status": 200, "body_len": 0}"#).expect("a record")
        };
        history.push(record());
        assert_eq!(rec.take().len(), 1);
        // A long poll the SUT left open ends as the mocks go down: no panic, nothing kept.
        history.push(record());
        assert!(rec.take().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
