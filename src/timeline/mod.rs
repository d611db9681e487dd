//! One timeline of a run: every mock request, fault event, workload event and SUT log line,
//! with monotonic timestamps on the run's clock. The run streams it to a JSONL journal as it
//! happens ([`journal`]) and holds what the checkers need in compact form ([`call`]); the
//! journal is read back for re-checking (`crashcart check`).
//!
//! Secrets never enter it: mock records hold digests only, and SUT log lines are scrubbed of
//! the credentials crashcart handed the SUT.

pub mod call;
pub mod journal;
pub mod redact;
pub mod trace;

pub use call::{Call, Interner, Sym, Tag};
pub use redact::scrub;

use std::collections::BTreeMap;
use std::path::Path;

use crashcart_mocks::{Dependency, RequestRecord};
use serde::{Deserialize, Serialize};

use crate::fault::FaultEvent;

/// Phase of a workload operation, as in a Jepsen history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Sent.
    Invoke,
    /// 2xx.
    Ok,
    /// 4xx/5xx: it did not happen.
    Fail,
    /// Timeout or connection error: outcome unknown.
    Info,
}

/// One event of a workload operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpEvent {
    /// Monotonic time, microseconds.
    pub at_us: u64,
    /// Operation number (unique in the run).
    pub op: u64,
    /// The operation's name in the scenario.
    pub name: String,
    /// Its unique key (`{{key}}`).
    pub key: String,
    /// Phase.
    pub phase: Phase,
    /// HTTP status, when answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time since invoke, microseconds (completions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// What went wrong: for `info`, the error; for `fail`, the first unmet expectation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The operation's W3C trace id (on its invoke): dependency calls carrying it were made
    /// for this operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What its steps captured (completions only): the ids later steps and the effects use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub captured: BTreeMap<String, String>,
    /// On a `fail`: the SUT did part of it (an earlier step succeeded, or the failing step
    /// was answered 2xx and only its expectation was unmet), so what it left is not judged
    /// as rolled back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// One event of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A request a mock served (or refused, or lost).
    Request(Box<Call>),
    /// A fault turned on or off.
    Fault(Box<FaultEvent>),
    /// A workload operation's invoke or completion.
    Op(Box<OpEvent>),
    /// A line the SUT printed.
    SutLog(Box<SutLine>),
    /// A run marker (`start`, `ready`, `workload-end`, `aborted: …`, `end`).
    Run {
        /// Monotonic time, microseconds.
        at_us: u64,
        /// What.
        what: String,
    },
}

/// A line the SUT printed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SutLine {
    /// Monotonic time, microseconds.
    pub at_us: u64,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line, secrets scrubbed.
    pub line: String,
}

impl Event {
    /// The event's time.
    pub fn at_us(&self) -> u64 {
        match self {
            Event::Request(r) => r.at_us,
            Event::Fault(f) => f.at_us,
            Event::Op(o) => o.at_us,
            Event::SutLog(l) => l.at_us,
            Event::Run { at_us, .. } => *at_us,
        }
    }

    /// A mock's record, in compact form with its text unshared.
    pub fn request(r: &RequestRecord) -> Self {
        Event::Request(Box::new(Call::from(r)))
    }

    /// A workload event.
    pub fn op(o: OpEvent) -> Self {
        Event::Op(Box::new(o))
    }

    /// A fault event.
    pub fn fault(f: FaultEvent) -> Self {
        Event::Fault(Box::new(f))
    }

    /// A SUT log line.
    pub fn sut_log(at_us: u64, stream: &str, line: String) -> Self {
        Event::SutLog(Box::new(SutLine {
            at_us,
            stream: stream.to_string(),
            line,
        }))
    }

    /// Where the event sorts among events of the same microsecond: what the runner and
    /// workload recorded first, then each mock's requests in arrival order, then faults. The
    /// order does not depend on the order events were written or read in.
    fn order(&self) -> (u64, u8, u64) {
        let rank = match self {
            Event::Request(c) => match c.dependency {
                Dependency::Llm => 2,
                _ => 1,
            },
            Event::Fault(_) => 3,
            _ => 0,
        };
        let seq = match self {
            Event::Request(c) => c.seq,
            _ => 0,
        };
        (self.at_us(), rank, seq)
    }
}

/// The timeline: events in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// Events, sorted by time (stable for equal times).
    pub events: Vec<Event>,
}

impl Timeline {
    /// Merge events from any sources into time order (stable for events of one source).
    pub fn merge(mut events: Vec<Event>) -> Self {
        events.sort_by_key(Event::order);
        Self { events }
    }

    /// Mock requests, in time order.
    pub fn requests(&self) -> impl Iterator<Item = &Call> {
        self.events.iter().filter_map(|e| match e {
            Event::Request(r) => Some(r.as_ref()),
            _ => None,
        })
    }

    /// Fault events, in time order.
    pub fn faults(&self) -> impl Iterator<Item = &FaultEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Fault(f) => Some(f.as_ref()),
            _ => None,
        })
    }

    /// Workload events, in time order.
    pub fn ops(&self) -> impl Iterator<Item = &OpEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Op(o) => Some(o.as_ref()),
            _ => None,
        })
    }

    /// The last event's time.
    pub fn end_us(&self) -> u64 {
        self.events.last().map(Event::at_us).unwrap_or(0)
    }

    /// Read a JSONL journal; a bad line is an error naming its number.
    pub fn read_jsonl(path: &Path) -> Result<Self, String> {
        journal::read(path).map(Self::merge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_redacts_credentials() {
        assert_eq!(
            scrub(
                "login with crashcart-Pa55 ok",
                &["crashcart-Pa55".into(), "x".into()]
            ),
            "login with [redacted] ok"
        );
    }
}
