//! The run's journal: one JSON object per line, each event in full (a mock's whole request
//! record), written to disk as the run goes, so memory does not grow with the journal and a
//! run cut short still leaves its evidence. Lines are in the order events were recorded (a
//! request when it completed); `at_us` orders them in time, and [`read`] with
//! [`super::Timeline::merge`] does.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crashcart_mocks::RequestRecord;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{Call, Event, Interner, OpEvent, SutLine};
use crate::fault::FaultEvent;

/// One line of the journal, as written.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line<'a> {
    /// A request a mock served (or refused, or lost).
    Request(&'a RequestRecord),
    /// A fault turned on or off.
    Fault(&'a FaultEvent),
    /// A workload operation's invoke or completion.
    Op(&'a OpEvent),
    /// A line the SUT printed.
    SutLog(&'a SutLine),
    /// A run marker.
    Run {
        /// Monotonic time, microseconds.
        at_us: u64,
        /// What.
        what: &'a str,
    },
}

/// One line of the journal, as read.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OwnedLine {
    Request(Box<RequestRecord>),
    Fault(FaultEvent),
    Op(OpEvent),
    SutLog(SutLine),
    Run { at_us: u64, what: String },
}

/// Where the journal went (if it could be written) and its digest (SHA-256 of its bytes,
/// first 128 bits, hex): the same seed gives the same digest in simulation.
#[derive(Clone, Debug)]
pub struct Journal {
    /// The file, when it was written.
    pub path: Option<PathBuf>,
    /// The digest.
    pub digest: String,
}

/// Writes the journal line by line; shared by everything that records during a run.
pub struct JournalWriter {
    state: Mutex<WriterState>,
}

struct WriterState {
    out: Option<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
    hash: sha2::Sha256,
    line: Vec<u8>,
    flushed: std::time::Instant,
}

/// How often the file is flushed while lines come: a line is on disk within this long of
/// the next one written after it (and every line at the end), so a run that is killed keeps
/// its evidence.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl JournalWriter {
    /// A journal at `path` (its directory created). When the file cannot be written, lines
    /// are still digested and the journal reports no path.
    pub fn create(path: PathBuf) -> Self {
        let out = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::File::create(&path))
            .ok()
            .map(|f| std::io::BufWriter::with_capacity(64 * 1024, f));
        Self {
            state: Mutex::new(WriterState {
                out,
                path,
                hash: sha2::Sha256::new(),
                line: Vec::with_capacity(1024),
                flushed: std::time::Instant::now(),
            }),
        }
    }

    /// Append one line.
    pub fn write(&self, line: &Line<'_>) {
        let mut st = self.state.lock();
        let WriterState {
            out,
            hash,
            line: l,
            flushed,
            ..
        } = &mut *st;
        l.clear();
        if serde_json::to_writer(&mut *l, line).is_err() {
            return;
        }
        l.push(b'\n');
        hash.update(&l[..]);
        if let Some(w) = out {
            let due = flushed.elapsed() >= FLUSH_EVERY;
            if w.write_all(l)
                .and_then(|_| if due { w.flush() } else { Ok(()) })
                .is_err()
            {
                *out = None;
            } else if due {
                *flushed = std::time::Instant::now();
            }
        }
    }

    /// Flush and close; where it went and its digest. Lines written after are digested only.
    pub fn finish(&self) -> Journal {
        let mut st = self.state.lock();
        let written = st.out.take().is_some_and(|mut w| w.flush().is_ok());
        let digest = st
            .hash
            .clone()
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Journal {
            path: written.then(|| st.path.clone()),
            digest,
        }
    }
}

/// Every event of a journal file, in the order of its lines, requests in compact form; a bad
/// line is an error naming its number.
pub fn read(path: &Path) -> Result<Vec<Event>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut names = Interner::default();
    let mut events = vec![];
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: OwnedLine = serde_json::from_str(&line)
            .map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1))?;
        events.push(match parsed {
            OwnedLine::Request(r) => Event::Request(Box::new(Call::of(&r, &mut names))),
            OwnedLine::Fault(f) => Event::fault(f),
            OwnedLine::Op(o) => Event::op(o),
            OwnedLine::SutLog(l) => Event::SutLog(Box::new(l)),
            OwnedLine::Run { at_us, what } => Event::Run { at_us, what },
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Phase, Timeline};

    #[test]
    fn a_journal_written_out_of_order_reads_back_in_time_order() {
        let path =
            std::env::temp_dir().join(format!("crashcart-journal-{}.jsonl", std::process::id()));
        let w = JournalWriter::create(path.clone());
        w.write(&Line::Run {
            at_us: 5,
            what: "end",
        });
        w.write(&Line::Op(&OpEvent {
            at_us: 1,
            op: 0,
            name: "book".into(),
            key: "k".into(),
            phase: Phase::Invoke,
            status: None,
            latency_us: None,
            error: None,
            trace_id: None,
            captured: Default::default(),
            partial: false,
        }));
        w.write(&Line::SutLog(&SutLine {
            at_us: 3,
            stream: "stdout".into(),
            line: "hello".into(),
        }));
        let j = w.finish();
        assert_eq!(j.path.as_deref(), Some(path.as_path()));
        assert_eq!(j.digest.len(), 32);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with(r#"{"type":"op","at_us":1"#),
            "{text}"
        );
        let t = Timeline::read_jsonl(&path).unwrap();
        assert_eq!(
            t.events.iter().map(Event::at_us).collect::<Vec<_>>(),
            [1, 3, 5]
        );
        std::fs::write(&path, "{\"type\":\"op\"}\n").unwrap();
        assert!(Timeline::read_jsonl(&path).unwrap_err().contains("line 1"));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn an_unwritable_journal_still_has_a_digest() {
        let w = JournalWriter::create(PathBuf::from("/proc/crashcart/none.jsonl"));
        w.write(&Line::Run {
            at_us: 0,
            what: "start",
        });
        let j = w.finish();
        assert!(j.path.is_none());
        assert_eq!(j.digest.len(), 32);
    }
}
