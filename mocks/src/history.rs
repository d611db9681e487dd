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

/// The shared, append-only request history of one mock.
#[derive(Debug)]
pub struct History {
    records: Mutex<Vec<RequestRecord>>,
    next_seq: std::sync::atomic::AtomicU64,
    live: broadcast::Sender<RequestRecord>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(4096);
        Self {
            records: Mutex::new(Vec::new()),
            next_seq: std::sync::atomic::AtomicU64::new(0),
            live,
        }
    }

    /// A new shared history.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }

    /// Reserve the next sequence number (done at arrival, so seq follows arrival order).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Append a completed record and notify live subscribers.
    pub fn push(&self, record: RequestRecord) {
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(record.clone());
        }
        self.records.lock().push(record);
    }

    /// A copy of every record so far, ordered by sequence number.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        let mut out = self.records.lock().clone();
        out.sort_by_key(|r| r.seq);
        out
    }

    /// Records with `seq >= from`, ordered by sequence number.
    pub fn since(&self, from: u64) -> Vec<RequestRecord> {
        let mut out: Vec<_> = self
            .records
            .lock()
            .iter()
            .filter(|r| r.seq >= from)
            .cloned()
            .collect();
        out.sort_by_key(|r| r.seq);
        out
    }

    /// Requests that arrived so far (completed or not).
    pub fn arrivals(&self) -> u64 {
        self.next_seq.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of completed records.
    pub fn len(&self) -> usize {
        self.records.lock().len()
    }

    /// True when no request has completed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget every record (sequence numbers keep counting).
    pub fn clear(&self) {
        self.records.lock().clear();
    }

    /// Receive records as they complete. Slow receivers lose the oldest (see tokio broadcast).
    pub fn subscribe(&self) -> broadcast::Receiver<RequestRecord> {
        self.live.subscribe()
    }
}
