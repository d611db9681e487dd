//! The request history every mock keeps: one [`RequestRecord`] per request, in arrival order.
//!
//! Records never hold secrets: tokens and Authorization headers appear only as short digests,
//! bodies only as a digest and a length. Observers can subscribe to records as they complete
//! (the harness recorder merges them into its single timeline).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

/// Which dependency (and which face of it) served a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dependency {
    /// Salesforce data APIs (`/services/data/...`).
    Salesforce,
    /// Salesforce authentication (`/services/oauth2/...`, SOAP login).
    SalesforceAuth,
    /// The mock LLM (OpenAI-compatible and Ollama APIs).
    Llm,
    /// The mock's own control namespace (`/__crashcart/...`).
    Control,
}

impl Dependency {
    /// The name used in scenarios and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Salesforce => "salesforce",
            Dependency::SalesforceAuth => "salesforce-auth",
            Dependency::Llm => "llm",
            Dependency::Control => "control",
        }
    }
}

/// One request as the mock saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival order, from 0.
    pub seq: u64,
    /// Which dependency served it.
    pub dependency: Dependency,
    /// Monotonic arrival time since the mock started, in microseconds.
    pub at_us: u64,
    /// Time from arrival to the end of the response head (or the verdict), in microseconds.
    pub latency_us: u64,
    /// HTTP method.
    pub method: String,
    /// Request path, without the query string.
    pub path: String,
    /// A short name of the operation (`sobject.create`, `query`, `oauth.token`, ...).
    pub operation: String,
    /// The sObject the request addressed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sobject: Option<String>,
    /// The record id or external id the request addressed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// HTTP status sent (0 when the connection was dropped or reset without a response).
    pub status: u16,
    /// The service's error code, when the response was an error (`INVALID_SESSION_ID`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Connected-app client id of the caller's token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Username of the caller's token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A short digest of the bearer token used, never the token itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_digest: Option<String>,
    /// A short digest of the request body (absent for an empty body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_digest: Option<String>,
    /// A short digest of the query string (absent when there is none): two SOQL queries on
    /// one path are different requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_digest: Option<String>,
    /// Request body length in bytes.
    pub body_len: u64,
    /// The fault verdict applied, if the fault hook intervened (`delay`, `respond`, `drop`, `reset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The client's `Idempotency-Key`, when sent: one per logical operation, the same on its
    /// retries (so identical requests of different callers are told apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// openai-python's `x-stainless-retry-count`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// The W3C Trace Context trace id of the request (`traceparent`), when it carried a valid
    /// one: SUTs that propagate it tie each dependency call to the operation that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// `Retry-After` sent to the client, in milliseconds, when the response carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// What an LLM request asked for and got (absent for other dependencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<Box<LlmExchange>>,
}

/// The LLM-specific part of a request record: model, tokens, timing of the answer, prompt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmExchange {
    /// The model the request named.
    pub model: String,
    /// True when the answer was streamed (SSE or NDJSON).
    pub streamed: bool,
    /// Time spent waiting for a generation slot, in microseconds.
    pub queue_wait_us: u64,
    /// Monotonic time of the first body byte sent, in microseconds since the mock started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_us: Option<u64>,
    /// Monotonic time of the last body byte sent, in microseconds since the mock started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_byte_us: Option<u64>,
    /// Prompt tokens (the mock's documented approximation).
    pub prompt_tokens: u32,
    /// Completion tokens sent.
    pub completion_tokens: u32,
    /// `finish_reason` / `done_reason` of the first choice, when generation ended normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The prompt, as the capture policy allows: the text, a digest (`sha256:…`), or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

impl RequestRecord {
    /// Arrival time as a [`Duration`].
    pub fn at(&self) -> Duration {
        Duration::from_micros(self.at_us)
    }
}

/// Pushes its record to the history when finished, or, if dropped first (the client went away
/// mid-request or mid-stream), with status 0 and error code `CLIENT_CLOSED`.
pub(crate) struct PendingRecord {
    pub(crate) history: Arc<History>,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) arrived: Duration,
    pub(crate) record: Option<RequestRecord>,
}

impl PendingRecord {
    /// Stamp the latency and push the record.
    pub(crate) fn finish(&mut self) {
        if let Some(mut rec) = self.record.take() {
            rec.latency_us = (self.clock.elapsed().saturating_sub(self.arrived)).as_micros() as u64;
            self.history.push(rec);
        }
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        if let Some(rec) = self.record.as_mut() {
            rec.status = 0;
            rec.error_code
                .get_or_insert_with(|| "CLIENT_CLOSED".to_string());
        }
        self.finish();
    }
}

/// A short, stable, non-reversible digest of secret or bulky bytes (first 12 bytes of SHA-256, hex).
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(24);
    for b in &hash[..12] {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Called with every record as it completes, in the order records are pushed, none lost
/// (unlike [`History::subscribe`]): the harness streams them to its journal.
pub type RecordSink = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

/// The shared request history of one mock: the most recent records, up to a capacity (all
/// of them by default), plus a sink that sees every one.
pub struct History {
    records: Mutex<std::collections::VecDeque<RequestRecord>>,
    capacity: std::sync::atomic::AtomicUsize,
    next_seq: std::sync::atomic::AtomicU64,
    completed: std::sync::atomic::AtomicU64,
    sink: parking_lot::RwLock<Option<RecordSink>>,
    live: broadcast::Sender<RequestRecord>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("held", &self.len())
            .field("completed", &self.completed())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history that keeps every record.
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(4096);
        Self {
            records: Mutex::new(std::collections::VecDeque::new()),
            capacity: std::sync::atomic::AtomicUsize::new(usize::MAX),
            next_seq: std::sync::atomic::AtomicU64::new(0),
            completed: std::sync::atomic::AtomicU64::new(0),
            sink: parking_lot::RwLock::new(None),
            live,
        }
    }

    /// A new shared history.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }

    /// Keep only the most recent `records` from now on (the oldest are forgotten first), so
    /// memory stays bounded however long the mock serves.
    pub fn set_capacity(&self, records: usize) {
        self.capacity
            .store(records, std::sync::atomic::Ordering::Relaxed);
        let mut held = self.records.lock();
        while held.len() > records {
            held.pop_front();
        }
    }

    /// Records kept at most (`usize::MAX`: all).
    pub fn capacity(&self) -> usize {
        self.capacity.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hand every record from now on to `sink` as it completes.
    pub fn set_sink(&self, sink: RecordSink) {
        *self.sink.write() = Some(sink);
    }

    /// Reserve the next sequence number (done at arrival, so seq follows arrival order).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Append a completed record: to the sink, live subscribers and the window.
    pub fn push(&self, record: RequestRecord) {
        if let Some(sink) = self.sink.read().as_ref() {
            sink(&record);
        }
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(record.clone());
        }
        self.completed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let capacity = self.capacity();
        if capacity == 0 {
            return;
        }
        let mut held = self.records.lock();
        if held.len() >= capacity {
            held.pop_front();
        }
        held.push_back(record);
    }

    /// A copy of every record held, ordered by sequence number.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.since(0)
    }

    /// Records held with `seq >= from`, ordered by sequence number.
    pub fn since(&self, from: u64) -> Vec<RequestRecord> {
        self.page(from, usize::MAX)
    }

    /// At most `limit` of the records held with `seq >= from`, the lowest sequence numbers
    /// first: tooling pages through a long history with `from` = last seq + 1.
    pub fn page(&self, from: u64, limit: usize) -> Vec<RequestRecord> {
        let mut out: Vec<_> = self
            .records
            .lock()
            .iter()
            .filter(|r| r.seq >= from)
            .cloned()
            .collect();
        out.sort_by_key(|r| r.seq);
        out.truncate(limit);
        out
    }

    /// The page `GET /__crashcart/history?since=N&limit=M` answers: records held from `since`
    /// (default 0), at most `limit` (default and most [`History::PAGE`]).
    pub fn page_for_query(&self, query: Option<&str>) -> Vec<RequestRecord> {
        let value = |key: &str| {
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let limit = value("limit").map_or(Self::PAGE, |l| (l as usize).min(Self::PAGE));
        self.page(value("since").unwrap_or(0), limit)
    }

    /// Records one history request answers at most.
    pub const PAGE: usize = 10_000;

    /// Requests that arrived so far (completed or not).
    pub fn arrivals(&self) -> u64 {
        self.next_seq.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests completed so far, held or not.
    pub fn completed(&self) -> u64 {
        self.completed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.lock().len()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget every record held (sequence numbers keep counting).
    pub fn clear(&self) {
        self.records.lock().clear();
    }

    /// Receive records as they complete. Slow receivers lose the oldest (see tokio broadcast).
    pub fn subscribe(&self) -> broadcast::Receiver<RequestRecord> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> RequestRecord {
        RequestRecord {
            seq,
            dependency: Dependency::Salesforce,
            at_us: seq,
            latency_us: 0,
            method: "GET".into(),
            path: "/".into(),
            operation: "query".into(),
            sobject: None,
            record: None,
            status: 200,
            error_code: None,
            client_id: None,
            user: None,
            token_digest: None,
            body_digest: None,
            query_digest: None,
            body_len: 0,
            fault: None,
            idempotency_key: None,
            retry_count: None,
            trace_id: None,
            retry_after_ms: None,
            llm: None,
        }
    }

    #[test]
    fn a_bounded_history_keeps_the_newest_and_its_sink_sees_all() {
        let h = History::new();
        h.set_capacity(3);
        let seen = Arc::new(Mutex::new(vec![]));
        let s = seen.clone();
        h.set_sink(Arc::new(move |r: &RequestRecord| s.lock().push(r.seq)));
        for i in 0..10 {
            h.push(rec(i));
        }
        assert_eq!(*seen.lock(), (0..10).collect::<Vec<_>>());
        assert_eq!(h.completed(), 10);
        assert_eq!(
            h.snapshot().iter().map(|r| r.seq).collect::<Vec<_>>(),
            [7, 8, 9]
        );
        assert_eq!(
            h.page(8, 5).iter().map(|r| r.seq).collect::<Vec<_>>(),
            [8, 9]
        );
        assert_eq!(h.page(0, 1).len(), 1);
        h.set_capacity(0);
        h.push(rec(10));
        assert!(h.is_empty());
        assert_eq!(h.completed(), 11);
    }
}
