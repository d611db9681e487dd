//! Fault responders for wiremock-rs (crate feature `wiremock`): the fault kinds crashcart
//! injects, as [`wiremock::Respond`] implementations for Rust users who already test with
//! wiremock. Seeded, so a test replays.
//!
//! ```no_run
//! # async fn demo() {
//! use crashcart::fault::{FaultKind, Trigger};
//! use crashcart::fault::wiremock::FaultResponder;
//! use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};
//!
//! let server = MockServer::start().await;
//! // Every third call answers 503 in Salesforce's error shape; the others succeed.
//! let flaky = FaultResponder::new(7, FaultKind::HttpError { status: 503, error_code: None, message: None, retry_after: None, retry_after_ms: None }, ResponseTemplate::new(200))
//!     .unwrap()
//!     .trigger(Trigger::EveryNth(3));
//! Mock::given(method("GET")).respond_with(flaky).mount(&server).await;
//! # }
//! ```
//!
//! Not expressible as a wiremock response (and refused by [`FaultResponder::new`]): network
//! faults (use the chaos proxy), connection resets, state faults and LLM stream shaping (use
//! the mocks).

use std::time::Duration;

use crashcart_mocks::llm::Flavour;
use crashcart_mocks::CannedResponse;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::fault::engine::{stream_seed, TriggerState};
use crate::fault::shape;
use crate::fault::{DependencyName, FaultKind, Trigger};

/// A canned answer as a wiremock template.
pub fn template(c: CannedResponse) -> ResponseTemplate {
    let mut t = ResponseTemplate::new(c.status.as_u16());
    for (k, v) in &c.headers {
        t = t.insert_header(k.clone(), v.clone());
    }
    if !c.body.is_empty() {
        let mime = c
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        t = t.set_body_raw(c.body.to_vec(), &mime);
    }
    t
}

/// Salesforce's 401 for an expired or revoked session.
pub fn salesforce_session_expired() -> ResponseTemplate {
    template(shape::http_error(
        Some(DependencyName::Salesforce),
        Flavour::OpenAi,
        401,
        None,
        None,
    ))
}

/// Salesforce's 403 REQUEST_LIMIT_EXCEEDED with `Sforce-Limit-Info` showing the quota spent.
pub fn salesforce_request_limit(max: u64) -> ResponseTemplate {
    template(shape::http_error(
        Some(DependencyName::Salesforce),
        Flavour::OpenAi,
        403,
        None,
        None,
    ))
    .insert_header(
        "sforce-limit-info",
        format!("api-usage={max}/{max}").as_str(),
    )
}

/// A 429 with `Retry-After` (whole seconds, rounded up), in Salesforce's shape.
pub fn rate_limited(retry_after: Duration) -> ResponseTemplate {
    template(shape::with_retry_after(
        shape::http_error(
            Some(DependencyName::Salesforce),
            Flavour::OpenAi,
            429,
            None,
            None,
        ),
        Some(retry_after),
        None,
    ))
}

/// An LLM server's overloaded answer (429 for OpenAI, 503 for the others) with `Retry-After`.
pub fn llm_overloaded(flavour: Flavour, retry_after: Duration) -> ResponseTemplate {
    let secs = retry_after.as_millis().div_ceil(1000) as u64;
    let e = crashcart_mocks::llm::LlmError::overloaded(secs, flavour);
    template(
        CannedResponse::json(e.status(flavour), &e.openai_body(flavour))
            .with_header("retry-after", &secs.to_string()),
    )
}

/// Answers with a fault when its trigger fires, with `ok` otherwise.
#[derive(Debug)]
pub struct FaultResponder {
    ok: ResponseTemplate,
    fault: FaultKind,
    dependency: Option<DependencyName>,
    flavour: Flavour,
    state: TriggerState,
    seed: u64,
}

impl FaultResponder {
    /// A responder hitting every request with `fault` (see [`FaultResponder::trigger`]).
    /// Refuses kinds a wiremock response cannot express.
    pub fn new(seed: u64, fault: FaultKind, ok: ResponseTemplate) -> Result<Self, String> {
        use FaultKind::*;
        match &fault {
            HttpError { .. }
            | EmptyResponse { .. }
            | MalformedBody
            | Latency { .. }
            | Hang
            | InvalidGrant
            | ConcurrentLongRequests
            | RowLock { .. }
            | QuotaExhausted
            | ExpireTokens { .. }
            | LlmOverloaded { .. } => {}
            other => {
                return Err(format!(
                    "{} cannot be expressed as a wiremock response",
                    other.name()
                ))
            }
        }
        let label = fault.name();
        Ok(Self {
            ok,
            fault,
            dependency: None,
            flavour: Flavour::OpenAi,
            state: TriggerState::new(Trigger::Always, stream_seed(seed, &label, 0)),
            seed,
        })
    }

    /// A flaky responder: fails with `status` (in Salesforce's shape) with probability `p`.
    pub fn flaky(seed: u64, p: f64, status: u16, ok: ResponseTemplate) -> Self {
        let fault = FaultKind::HttpError {
            status,
            error_code: None,
            message: None,
            retry_after: None,
            retry_after_ms: None,
        };
        Self::new(seed, fault, ok)
            .map(|r| r.trigger(Trigger::Probability(p)))
            .unwrap_or_else(|_| unreachable!("http_error is expressible"))
    }

    /// How often it hits.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        let label = self.fault.name();
        self.state = TriggerState::new(trigger, stream_seed(self.seed, &label, 0));
        self
    }

    /// Which dependency's error language to speak (Salesforce by default).
    pub fn dependency(mut self, dependency: DependencyName) -> Self {
        self.dependency = Some(dependency);
        self
    }

    /// The LLM server flavour, for `dependency(Llm)` errors and overload answers.
    pub fn llm_flavour(mut self, flavour: Flavour) -> Self {
        self.flavour = flavour;
        self
    }

    fn fault_template(&self) -> ResponseTemplate {
        use FaultKind::*;
        match &self.fault {
            HttpError {
                status,
                error_code,
                message,
                retry_after,
                retry_after_ms,
            } => template(shape::with_retry_after(
                shape::http_error(
                    self.dependency,
                    self.flavour,
                    *status,
                    error_code.as_deref(),
                    message.as_deref(),
                ),
                *retry_after,
                *retry_after_ms,
            )),
            EmptyResponse { status } => template(shape::empty(*status)),
            MalformedBody => template(shape::malformed_body()),
            Latency { latency } => self
                .ok
                .clone()
                .set_delay(latency.sample(&mut *self.state.rng.lock())),
            Hang => self.ok.clone().set_delay(Duration::from_secs(24 * 3600)),
            InvalidGrant => template(shape::invalid_grant()),
            ConcurrentLongRequests => template(shape::concurrent_long_requests()),
            RowLock { records } => template(shape::unable_to_lock_row(
                records
                    .first()
                    .map(String::as_str)
                    .unwrap_or("001000000000000AAA"),
            )),
            QuotaExhausted => salesforce_request_limit(15_000),
            ExpireTokens { .. } => salesforce_session_expired(),
            LlmOverloaded { retry_after } => llm_overloaded(self.flavour, *retry_after),
            _ => self.ok.clone(),
        }
    }
}

impl Respond for FaultResponder {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        if self.state.fires() {
            self.fault_template()
        } else {
            self.ok.clone()
        }
    }
}
