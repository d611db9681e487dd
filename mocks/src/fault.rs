//! The fault hook: the one place where a fault engine steers a mock.
//!
//! For every request the mock builds a [`RequestInfo`], asks its [`FaultHook`] for a
//! [`Verdict`], and obeys: pass through, wait first, answer with a canned response, hold the
//! connection without answering, or reset it. The mocks know nothing of scenarios; the harness's
//! fault engine implements [`FaultHook`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::history::Dependency;

/// What the mock knows about a request when it asks for a verdict.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    /// Arrival sequence number (same as in the history).
    pub seq: u64,
    /// Which dependency is being called.
    pub dependency: Dependency,
    /// HTTP method.
    pub method: &'a Method,
    /// Path without query.
    pub path: &'a str,
    /// Request headers (including Authorization: hooks must not log them).
    pub headers: &'a HeaderMap,
    /// Operation name, as in the history (`sobject.get`, `query`, `oauth.token`, ...).
    pub operation: &'a str,
    /// sObject addressed, if any.
    pub sobject: Option<&'a str>,
    /// Record id or external id addressed, if any.
    pub record: Option<&'a str>,
    /// Connected-app client id of the caller's token (or of the token request), if known.
    pub client_id: Option<&'a str>,
    /// Username of the caller's token, if known.
    pub user: Option<&'a str>,
    /// Model name, for LLM requests.
    pub model: Option<&'a str>,
}

/// A response a fault hook wants sent instead of the real one.
#[derive(Clone, Debug)]
pub struct CannedResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers (Content-Type included, if wanted).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Send the head and the body, then reset the connection instead of ending the body cleanly
    /// (a "connection reset mid-body").
    pub reset_after_body: bool,
}

impl CannedResponse {
    /// A JSON response with the given status.
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        Self {
            status,
            headers,
            body: Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
            reset_after_body: false,
        }
    }

    /// Add a header (silently ignored if the name or value is not valid HTTP).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            self.headers.insert(n, v);
        }
        self
    }
}

/// What to do with the request once any delay has passed.
#[derive(Clone, Debug, Default)]
pub enum Action {
    /// Serve it normally.
    #[default]
    Pass,
    /// Answer with this instead (the real handler never runs).
    Respond(CannedResponse),
    /// Never answer: hold the connection open until the client gives up or the mock stops.
    Drop,
    /// Reset the connection (TCP RST) without answering.
    Reset,
    /// Serve it (the write lands), then reset the connection instead of answering: the
    /// client never learns the outcome. Honoured by the mock Salesforce; the mock LLM serves
    /// such requests normally.
    Lose,
}

/// A fault hook's decision about one request.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Wait this long (on the tokio clock) before acting.
    pub delay: Option<Duration>,
    /// Then do this.
    pub action: Action,
    /// A label for the history (e.g. the fault's name); defaults to the action's kind.
    pub label: Option<String>,
    /// How an LLM generation that passes is shaped (ignored by other mocks).
    pub llm: Option<LlmShaping>,
}

/// Faults inside an LLM generation: slower first token, slower tokens, a stream that breaks.
///
/// Applies when the verdict's action is [`Action::Pass`]; the mock LLM honours it in its
/// streaming and non-streaming answers alike.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LlmShaping {
    /// Added to the model's time to first token.
    pub extra_ttft: Duration,
    /// Added before every generated token (piece).
    pub extra_inter_token: Duration,
    /// After this many content pieces, end the generation with an error: a mid-stream error
    /// event/line when streaming (HTTP status stays 200), a 500 in the server's shape otherwise.
    pub error_after_tokens: Option<(u32, String)>,
    /// After this many content pieces, send half of the next frame and reset the connection.
    pub cut_after_tokens: Option<u32>,
    /// After this many content pieces, stop sending and hold the connection open.
    pub stall_after_tokens: Option<u32>,
    /// The answer's text drifts from what was asked (JSON wrapped, keys missing or renamed).
    pub drift: Option<TextDrift>,
    /// The answer stops after this many tokens with `finish_reason: "length"`.
    pub max_tokens: Option<u32>,
}

/// How an LLM's text answer drifts from the requested shape.
#[derive(Clone, Debug, PartialEq)]
pub enum TextDrift {
    /// Prose before and after the JSON.
    WrapInProse,
    /// The JSON inside a Markdown code fence.
    CodeFence,
    /// A top-level key of the JSON object is missing.
    DropKey(String),
    /// A top-level key of the JSON object is renamed.
    RenameKey {
        /// The key asked for.
        from: String,
        /// The key sent.
        to: String,
    },
}

impl TextDrift {
    /// Apply the drift to an answer's text.
    pub fn apply(&self, text: &str) -> String {
        match self {
            Self::WrapInProse => format!(
                "Sure! Here is the information you asked for:\n{text}\nLet me know if you need anything else."
            ),
            Self::CodeFence => format!("```json\n{text}\n```"),
            Self::DropKey(key) => Self::edit_object(text, |m| {
                m.shift_remove(key);
            }),
            Self::RenameKey { from, to } => Self::edit_object(text, |m| {
                if let Some(v) = m.shift_remove(from) {
                    m.insert(to.clone(), v);
                }
            }),
        }
    }

    fn edit_object(
        text: &str,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> String {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(mut m)) => {
                edit(&mut m);
                serde_json::Value::Object(m).to_string()
            }
            _ => text.to_string(),
        }
    }
}

impl LlmShaping {
    /// True when the shaping changes nothing.
    pub fn is_noop(&self) -> bool {
        *self == Self::default()
    }
}

impl Verdict {
    /// Serve normally.
    pub fn pass() -> Self {
        Self::default()
    }
    /// Wait, then serve normally.
    pub fn delay(d: Duration) -> Self {
        Self {
            delay: Some(d),
            ..Self::default()
        }
    }
    /// Answer with a canned response.
    pub fn respond(r: CannedResponse) -> Self {
        Self {
            action: Action::Respond(r),
            ..Self::default()
        }
    }
    /// Hold the connection and never answer.
    pub fn drop_request() -> Self {
        Self {
            action: Action::Drop,
            ..Self::default()
        }
    }
    /// Reset the connection.
    pub fn reset() -> Self {
        Self {
            action: Action::Reset,
            ..Self::default()
        }
    }
    /// Attach a label naming the fault, for the history.
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    /// Serve, but shape the LLM generation.
    pub fn shape_llm(shaping: LlmShaping) -> Self {
        Self {
            llm: Some(shaping),
            ..Self::default()
        }
    }
    /// True if this verdict changes nothing.
    pub fn is_pass(&self) -> bool {
        self.delay.is_none()
            && matches!(self.action, Action::Pass)
            && self.llm.as_ref().is_none_or(LlmShaping::is_noop)
    }
    /// The label recorded in the history, if the verdict intervened.
    pub fn history_label(&self) -> Option<String> {
        if self.is_pass() {
            return None;
        }
        if let Some(l) = &self.label {
            return Some(l.clone());
        }
        Some(
            match (&self.action, self.delay) {
                (Action::Pass, Some(_)) => "delay",
                (Action::Pass, None) => "llm-shaping",
                (Action::Respond(_), _) => "respond",
                (Action::Drop, _) => "drop",
                (Action::Reset, _) => "reset",
                (Action::Lose, _) => "lose",
            }
            .to_string(),
        )
    }
}

/// Decides the fate of each request. Implemented by the harness's fault engine.
pub trait FaultHook: Send + Sync + 'static {
    /// Called once per request, before the mock handles it.
    fn verdict(&self, request: &RequestInfo<'_>) -> Verdict;
}

impl std::fmt::Debug for dyn FaultHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultHook")
    }
}

/// The hook that never intervenes.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl FaultHook for NoFaults {
    fn verdict(&self, _request: &RequestInfo<'_>) -> Verdict {
        Verdict::pass()
    }
}

impl<F> FaultHook for F
where
    F: Fn(&RequestInfo<'_>) -> Verdict + Send + Sync + 'static,
{
    fn verdict(&self, request: &RequestInfo<'_>) -> Verdict {
        self(request)
    }
}

/// A swappable hook shared between a mock and its controller.
#[derive(Clone)]
pub struct HookSlot(Arc<parking_lot::RwLock<Arc<dyn FaultHook>>>);

impl Default for HookSlot {
    fn default() -> Self {
        Self(Arc::new(parking_lot::RwLock::new(Arc::new(NoFaults))))
    }
}

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSlot")
    }
}

impl HookSlot {
    /// Install a hook (replacing the previous one).
    pub fn set(&self, hook: Arc<dyn FaultHook>) {
        *self.0.write() = hook;
    }
    /// Go back to [`NoFaults`].
    pub fn clear(&self) {
        self.set(Arc::new(NoFaults));
    }
    /// Ask the current hook.
    pub fn verdict(&self, request: &RequestInfo<'_>) -> Verdict {
        let hook = self.0.read().clone();
        hook.verdict(request)
    }
}
