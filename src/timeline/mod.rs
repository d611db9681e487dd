//! One timeline of a run: every mock request, fault event, workload event and SUT log line,
//! with monotonic timestamps on the run's clock, written as a JSONL journal and read back
//! for re-checking (`crashcart check`).
//!
//! Secrets never enter it: mock records hold digests only, and SUT log lines are scrubbed of
//! the credentials crashcart handed the SUT.

pub mod redact;
pub mod trace;

pub use redact::scrub;

use std::io::{BufRead, Write};
use std::path::Path;

use crashcart_mocks::RequestRecord;
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
    /// What went wrong, for `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The operation's W3C trace id (on its invoke): dependency calls carrying it were made
    /// for this operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A request a mock served (or refused, or lost).
    Request(Box<RequestRecord>),
    /// A fault turned on or off.
    Fault(FaultEvent),
    /// A workload operation's invoke or completion.
    Op(OpEvent),
    /// A line the SUT printed.
    SutLog {
        /// Monotonic time, microseconds.
        at_us: u64,
        /// `stdout` or `stderr`.
        stream: String,
        /// The line, secrets scrubbed.
        line: String,
    },
    /// A run marker (`start`, `ready`, `workload-end`, `aborted: …`, `end`).
    Run {
        /// Monotonic time, microseconds.
        at_us: u64,
        /// What.
        what: String,
    },
}

impl Event {
    /// The event's time.
    pub fn at_us(&self) -> u64 {
        match self {
            Event::Request(r) => r.at_us,
            Event::Fault(f) => f.at_us,
            Event::Op(o) => o.at_us,
            Event::SutLog { at_us, .. } | Event::Run { at_us, .. } => *at_us,
        }
    }
}

/// The timeline: events in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// Events, sorted by time (stable for equal times).
    pub events: Vec<Event>,
}

impl Timeline {
    /// Merge events from any sources into time order.
    pub fn merge(mut events: Vec<Event>) -> Self {
        events.sort_by_key(Event::at_us);
        Self { events }
    }

    /// Mock requests, in time order.
    pub fn requests(&self) -> impl Iterator<Item = &RequestRecord> {
        self.events.iter().filter_map(|e| match e {
            Event::Request(r) => Some(r.as_ref()),
            _ => None,
        })
    }

    /// Fault events, in time order.
    pub fn faults(&self) -> impl Iterator<Item = &FaultEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Fault(f) => Some(f),
            _ => None,
        })
    }

    /// Workload events, in time order.
    pub fn ops(&self) -> impl Iterator<Item = &OpEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Op(o) => Some(o),
            _ => None,
        })
    }

    /// The last event's time.
    pub fn end_us(&self) -> u64 {
        self.events.last().map(Event::at_us).unwrap_or(0)
    }

    /// Write as JSONL.
    pub fn write_jsonl(&self, out: impl Write) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(out);
        for e in &self.events {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Read a JSONL journal; a bad line is an error naming its number.
    pub fn read_jsonl(path: &Path) -> Result<Self, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut events = vec![];
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            events.push(
                serde_json::from_str(&line)
                    .map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1))?,
            );
        }
        Ok(Self::merge(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_in_time_order() {
        let t = Timeline::merge(vec![
            Event::Run {
                at_us: 5,
                what: "end".into(),
            },
            Event::Op(OpEvent {
                at_us: 1,
                op: 0,
                name: "book".into(),
                key: "k".into(),
                phase: Phase::Invoke,
                status: None,
                latency_us: None,
                error: None,
                trace_id: None,
            }),
            Event::SutLog {
                at_us: 3,
                stream: "stdout".into(),
                line: "hello".into(),
            },
        ]);
        assert_eq!(
            t.events.iter().map(Event::at_us).collect::<Vec<_>>(),
            [1, 3, 5]
        );
        let path =
            std::env::temp_dir().join(format!("crashcart-journal-{}.jsonl", std::process::id()));
        t.write_jsonl(std::fs::File::create(&path).unwrap())
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .next()
                .unwrap()
                .starts_with(r#"{"type":"op","at_us":1"#),
            "{text}"
        );
        assert_eq!(Timeline::read_jsonl(&path).unwrap(), t);
        std::fs::write(&path, "{\"type\":\"op\"}\n").unwrap();
        assert!(Timeline::read_jsonl(&path).unwrap_err().contains("line 1"));
        let _ = std::fs::remove_file(path);
    }

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
