//! The fault model: every fault crashcart can inject, as serde types a scenario names.
//!
//! A [`FaultSpec`] says *what* ([`FaultKind`]), *where* ([`Target`]), *how often*
//! ([`Trigger`]) and *when* (`at`, `for`, `repeat`, `flap`). Durations are written the
//! humantime way (`250ms`, `2s`, `1m 30s`).
//!
//! ```yaml
//! - name: sf-writes-unavailable
//!   at: 30s
//!   for: 20s
//!   target: {dependency: salesforce, route: "/services/data/*/sobjects/Event*", method: POST}
//!   trigger: {probability: 0.5}
//!   fault: {kind: http_error, status: 503, retry_after: 2s}
//! - fault: {kind: latency, latency: {distribution: lognormal, median: 120ms, sigma: 0.6}}
//!   target: {dependency: llm}
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The dependency a fault aims at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DependencyName {
    /// Salesforce's data APIs.
    Salesforce,
    /// Salesforce's login endpoints (OAuth, SOAP login).
    SalesforceAuth,
    /// The LLM (both APIs).
    Llm,
}

impl DependencyName {
    /// Its name, as scenarios and the mocks' records write it.
    pub fn as_str(self) -> &'static str {
        self.as_mock().as_str()
    }

    /// The mock's own name for it.
    pub fn as_mock(self) -> crashcart_mocks::Dependency {
        match self {
            Self::Salesforce => crashcart_mocks::Dependency::Salesforce,
            Self::SalesforceAuth => crashcart_mocks::Dependency::SalesforceAuth,
            Self::Llm => crashcart_mocks::Dependency::Llm,
        }
    }
}

/// Which requests a fault applies to. Every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<DependencyName>,
    /// A glob over the request path (`*` matches any run of characters, `/` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The mock's operation name (`sobject.create`, `query`, `oauth.token`, `openai.chat`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The sObject addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sobject: Option<String>,
    /// The connected app's client id of the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The LLM model named in the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// How often a matching request is hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Every matching request.
    #[default]
    Always,
    /// Each matching request with this probability (drawn from the run's seed).
    Probability(f64),
    /// Every Nth matching request (the Nth, 2Nth, …).
    EveryNth(u64),
    /// The first N matching requests after the fault becomes active.
    FirstN(u64),
}

/// A random duration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always the same.
    Fixed {
        /// The delay.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        value: Duration,
    },
    /// Uniform between `min` and `max`.
    Uniform {
        /// Lower bound.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        min: Duration,
        /// Upper bound.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        max: Duration,
    },
    /// Normal, truncated at zero.
    Normal {
        /// Mean.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        mean: Duration,
        /// Standard deviation.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        std_dev: Duration,
    },
    /// Log-normal with this median; `sigma` is the shape (0.5 is a moderate tail).
    Lognormal {
        /// Median.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        median: Duration,
        /// Shape.
        sigma: f64,
    },
    /// Pareto with scale `min` and shape `alpha` (smaller alpha, heavier tail).
    Pareto {
        /// Scale: the smallest value.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        min: Duration,
        /// Shape.
        alpha: f64,
    },
}

/// How an LLM's JSON answer drifts from what the client asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputDrift {
    /// "Here is the JSON you asked for: {…} Let me know…"
    WrapInProse,
    /// ```` ```json\n{…}\n``` ````
    CodeFence,
    /// A top-level key is missing.
    DropKey {
        /// The key.
        key: String,
    },
    /// A top-level key is renamed.
    RenameKey {
        /// The key asked for.
        from: String,
        /// The key sent.
        to: String,
    },
}

/// Which direction of a TCP connection a network fault affects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client → dependency.
    Upstream,
    /// Dependency → client.
    #[default]
    Downstream,
    /// Both.
    Both,
}

/// Every fault crashcart knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    // ---- tokens (Salesforce) ----
    /// Expire access tokens now: all, or those of a client id or user, or a share of them.
    ExpireTokens {
        /// Only this connected app's.
        #[serde(default)]
        client_id: Option<String>,
        /// Only this user's.
        #[serde(default)]
        username: Option<String>,
        /// Only this share (0–1) of the matching ones.
        #[serde(default)]
        share: Option<f64>,
    },
    /// Tokens issued from now on live this long (restored when the fault ends).
    TokenTtl {
        /// The lifetime.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        ttl: Duration,
    },
    /// Revoke refresh tokens (and their sessions).
    RevokeRefreshTokens {
        /// Only this connected app's.
        #[serde(default)]
        client_id: Option<String>,
        /// Only this user's.
        #[serde(default)]
        username: Option<String>,
    },
    /// The token endpoint answers `400 invalid_grant` ("authentication failure").
    InvalidGrant,

    // ---- latency ----
    /// Delay matching requests before they are served.
    Latency {
        /// How long.
        latency: Latency,
    },
    /// Slow LLM generation: time to first token and the delay between tokens, separately.
    LlmTiming {
        /// Added to the time to first token.
        #[serde(default)]
        ttft: Option<Latency>,
        /// Added before every token.
        #[serde(default)]
        inter_token: Option<Latency>,
    },

    // ---- HTTP errors ----
    /// Answer with this status, in the dependency's own error shape.
    HttpError {
        /// Status code.
        status: u16,
        /// The service's error code (`SERVER_UNAVAILABLE`, `rate_limit_exceeded`, …); a
        /// default for the status when absent.
        #[serde(default)]
        error_code: Option<String>,
        /// The message; a default for the status when absent.
        #[serde(default)]
        message: Option<String>,
        /// Send `Retry-After` (whole seconds, rounded up).
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        retry_after: Option<Duration>,
        /// Send `Retry-After-Ms`.
        #[serde(default)]
        retry_after_ms: Option<u64>,
    },
    /// Answer with this status and an empty body.
    EmptyResponse {
        /// Status code.
        status: u16,
    },
    /// Answer 200 with a body that is not valid JSON.
    MalformedBody,
    /// Send the head and half a body, then reset the connection.
    ResetMidBody,
    /// Reset the connection without answering.
    ConnectionReset,
    /// Hold the request and never answer (the client's timeout decides).
    Hang,
    /// Serve the request (a write lands), then reset the connection instead of answering:
    /// the client cannot know the outcome (Salesforce only).
    LostResponse,

    // ---- governor limits ----
    /// The org's daily API quota is spent: 403 REQUEST_LIMIT_EXCEEDED, and
    /// `Sforce-Limit-Info` shows it (usage restored when the fault ends).
    QuotaExhausted,
    /// Too many concurrent long-running requests: 403 REQUEST_LIMIT_EXCEEDED
    /// (`ConcurrentPerOrgLongTxn Limit exceeded.`).
    ConcurrentLongRequests,
    /// Writes to these records fail with UNABLE_TO_LOCK_ROW (all writes when empty).
    RowLock {
        /// Record ids or external ids.
        #[serde(default)]
        records: Vec<String>,
    },
    /// Another user edits a record just before the SUT's update of it lands (a clinician's
    /// edit racing the integration's read-modify-write). A conditional update then answers 412;
    /// a blind one overwrites the edit, which the consistency SLO reports as a lost update.
    /// Each record is edited once while the fault lasts.
    ConcurrentEdit {
        /// sObject whose updates race an edit.
        object: String,
        /// Fields and values the other user writes.
        fields: BTreeMap<String, serde_json::Value>,
        /// The other user (default: `dr.adams@crashcart.test`).
        #[serde(default)]
        user: Option<String>,
    },
    /// The LLM serves fewer generations at once, with a shorter queue (restored after).
    LlmSlots {
        /// The model (all when absent).
        #[serde(default)]
        model: Option<String>,
        /// Slots.
        slots: usize,
        /// Queue depth.
        #[serde(default)]
        queue_depth: Option<usize>,
    },
    /// The LLM's queue is full: 429 or 503 (by server flavour) with `Retry-After`.
    LlmOverloaded {
        /// The `Retry-After`.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        retry_after: Duration,
    },
    /// Bulk API 2.0 jobs stay `InProgress` while the fault lasts (a stuck job); they go on
    /// when it ends.
    BulkJobStuck,
    /// Every `every`-th record of a Bulk API 2.0 ingest job fails with UNABLE_TO_LOCK_ROW.
    BulkRecordsFail {
        /// Which records fail: every n-th (default 10).
        #[serde(default = "default_bulk_every")]
        every: u64,
    },
    /// The org's daily allowance of Bulk API records is spent: jobs closed while the fault
    /// lasts fail with `ExceededQuota`.
    BulkLimitSpent,

    // ---- change events (the Streaming API) ----
    /// Every Streaming API subscriber is dropped when the fault starts: its next request is
    /// told to handshake again, and it must resubscribe from the last replay id it saw (or
    /// lose what changed in between).
    SubscriberDisconnect,
    /// Change events are lost while the fault lasts: subscribers see a gap in replay ids.
    EventsDropped,
    /// Every change event so far goes past retention when the fault starts: a subscriber
    /// replaying from one of them is refused and must resync (query what changed).
    ReplayExpired,
    /// The hourly allowance of published platform events is spent: each publish while the
    /// fault lasts fails with `LIMIT_EXCEEDED`.
    PublishLimitSpent,

    // ---- schema drift ----
    /// A field is renamed (its values move with it).
    FieldRenamed {
        /// sObject.
        object: String,
        /// Field.
        field: String,
        /// New name.
        to: String,
    },
    /// A field is removed.
    FieldRemoved {
        /// sObject.
        object: String,
        /// Field.
        field: String,
    },
    /// A field's type changes (`string`, `double`, `boolean`, `date`, `picklist`, …).
    FieldTypeChanged {
        /// sObject.
        object: String,
        /// Field.
        field: String,
        /// The new type, as describe names it.
        to: String,
    },
    /// A new required text field appears.
    RequiredFieldAdded {
        /// sObject.
        object: String,
        /// Field.
        field: String,
    },
    /// A restricted picklist loses a value.
    PicklistValueWithdrawn {
        /// sObject.
        object: String,
        /// Field.
        field: String,
        /// The value.
        value: String,
    },
    /// API versions below this one answer 410 UNSUPPORTED_API_VERSION.
    ApiVersionRetired {
        /// The lowest version still served.
        below: u32,
    },
    /// The LLM's JSON answers drift.
    LlmOutputDrift {
        /// How.
        drift: OutputDrift,
    },
    /// LLM answers stop after this many tokens with `finish_reason: "length"`.
    LlmTruncate {
        /// Tokens.
        max_tokens: u32,
    },
    /// LLM streams are cut mid-token after this many pieces (connection reset).
    LlmStreamCut {
        /// Pieces sent first.
        after_tokens: u32,
    },
    /// LLM streams end with an error event/line after this many pieces.
    LlmStreamError {
        /// Pieces sent first.
        after_tokens: u32,
        /// The error message.
        message: String,
    },

    // ---- network (the chaos proxy) ----
    /// Accept and never answer: data stops flowing in the given direction.
    Partition {
        /// Which way.
        #[serde(default = "both")]
        direction: Direction,
    },
    /// Reset connections (after `after`, counted from the connection's start).
    ResetPeer {
        /// Delay before the reset.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        after: Option<Duration>,
    },
    /// Refuse new connections (the proxy stops listening) and close open ones.
    RefuseConnections,
    /// Network latency on every chunk, with jitter.
    NetworkLatency {
        /// Latency.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        latency: Duration,
        /// Jitter (uniform ±).
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        jitter: Option<Duration>,
        /// Which way.
        #[serde(default)]
        direction: Direction,
    },
    /// Bandwidth limit.
    Bandwidth {
        /// KB per second.
        rate_kb: u32,
        /// Which way.
        #[serde(default)]
        direction: Direction,
    },
    /// Data arrives in small slices with delays between them.
    Slicer {
        /// Average slice size in bytes.
        average_size: u32,
        /// Variation in bytes.
        #[serde(default)]
        size_variation: u32,
        /// Delay between slices.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        delay: Option<Duration>,
        /// Which way.
        #[serde(default)]
        direction: Direction,
    },
    /// Connections close slowly.
    SlowClose {
        /// Delay before close.
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        delay: Duration,
    },
    /// Data stops; the connection closes after `after` (never when absent).
    NetworkTimeout {
        /// When to close.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        after: Option<Duration>,
        /// Which way.
        #[serde(default)]
        direction: Direction,
    },
    /// The connection closes after this many bytes.
    LimitData {
        /// Bytes.
        bytes: u64,
        /// Which way.
        #[serde(default)]
        direction: Direction,
    },
}

fn both() -> Direction {
    Direction::Both
}

fn default_bulk_every() -> u64 {
    10
}

/// The families of fault kinds (see [`super::family`], where each family's behaviour lives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyName {
    /// Sessions and tokens.
    Tokens,
    /// Slow answers.
    Latency,
    /// Error answers and broken exchanges.
    HttpErrors,
    /// Governor limits, contention and overload.
    Governor,
    /// Change events: Streaming API subscribers dropped, events lost, replay ids expired.
    ChangeEvents,
    /// Salesforce schema drift.
    SchemaDrift,
    /// LLM output drift.
    LlmDrift,
    /// Network faults, between the SUT and a mock.
    Network,
}

impl FaultKind {
    /// The kind's family (a plain table: a new kind adds its line here).
    pub fn family(&self) -> FamilyName {
        use FamilyName as F;
        match self {
            Self::ExpireTokens { .. }
            | Self::TokenTtl { .. }
            | Self::RevokeRefreshTokens { .. }
            | Self::InvalidGrant => F::Tokens,
            Self::Latency { .. } | Self::LlmTiming { .. } => F::Latency,
            Self::HttpError { .. }
            | Self::EmptyResponse { .. }
            | Self::MalformedBody
            | Self::ResetMidBody
            | Self::ConnectionReset
            | Self::Hang
            | Self::LostResponse => F::HttpErrors,
            Self::QuotaExhausted
            | Self::ConcurrentLongRequests
            | Self::RowLock { .. }
            | Self::ConcurrentEdit { .. }
            | Self::LlmSlots { .. }
            | Self::LlmOverloaded { .. }
            | Self::BulkJobStuck
            | Self::BulkRecordsFail { .. }
            | Self::BulkLimitSpent => F::Governor,
            Self::SubscriberDisconnect
            | Self::EventsDropped
            | Self::ReplayExpired
            | Self::PublishLimitSpent => F::ChangeEvents,
            Self::FieldRenamed { .. }
            | Self::FieldRemoved { .. }
            | Self::FieldTypeChanged { .. }
            | Self::RequiredFieldAdded { .. }
            | Self::PicklistValueWithdrawn { .. }
            | Self::ApiVersionRetired { .. } => F::SchemaDrift,
            Self::LlmOutputDrift { .. }
            | Self::LlmTruncate { .. }
            | Self::LlmStreamCut { .. }
            | Self::LlmStreamError { .. } => F::LlmDrift,
            Self::Partition { .. }
            | Self::ResetPeer { .. }
            | Self::RefuseConnections
            | Self::NetworkLatency { .. }
            | Self::Bandwidth { .. }
            | Self::Slicer { .. }
            | Self::SlowClose { .. }
            | Self::NetworkTimeout { .. }
            | Self::LimitData { .. } => F::Network,
        }
    }

    /// The kind's name, as scenarios write it.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_else(|| "fault".into())
    }

    /// True for faults that live in the chaos proxy (TCP), not in a mock.
    pub fn is_network(&self) -> bool {
        self.family() == FamilyName::Network
    }
}

/// Turn a fault on and off on a period while it is active.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flap {
    /// On for this long.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub on: Duration,
    /// Then off for this long.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub off: Duration,
}

/// Apply the fault again and again.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// Period between starts.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub every: Duration,
    /// How many times in all (forever while the run lasts when absent).
    #[serde(default)]
    pub times: Option<u32>,
}

/// One fault of a scenario: what, where, how often, when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// A name for reports and the history (default: the kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What.
    pub fault: FaultKind,
    /// Where.
    #[serde(default)]
    pub target: Target,
    /// How often.
    #[serde(default)]
    pub trigger: Trigger,
    /// When it starts, from the start of the run.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub at: Option<Duration>,
    /// How long it lasts (until the end of the run when absent).
    #[serde(default, rename = "for", with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub duration: Option<Duration>,
    /// Start it again periodically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Repeat>,
    /// Turn it on and off while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap: Option<Flap>,
    /// It may legitimately hit no request (a fault on a path the SUT only takes sometimes), or
    /// be refused when applied (a drift on a field another drift removed); otherwise a run
    /// where it never fired fails, since its SLOs proved nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub may_not_fire: bool,
}

impl FaultSpec {
    /// A fault that is active now, everywhere it applies, for every request.
    pub fn now(fault: FaultKind) -> Self {
        Self {
            name: None,
            fault,
            target: Target::default(),
            trigger: Trigger::Always,
            at: None,
            duration: None,
            repeat: None,
            flap: None,
            may_not_fire: false,
        }
    }
    /// Aim it.
    pub fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }
    /// Set how often it hits.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }
    /// Name it.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The name used in the history and reports.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.fault.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trip_with_humantime_durations() {
        let yaml = r#"
- name: sf-writes-unavailable
  at: 30s
  for: 20s
  target: {dependency: salesforce, route: "/services/data/*/sobjects/Event*", method: POST}
  trigger: {probability: 0.5}
  fault: {kind: http_error, status: 503, retry_after: 2s}
- fault: {kind: latency, latency: {distribution: lognormal, median: 120ms, sigma: 0.6}}
  target: {dependency: llm}
- fault: {kind: partition}
  target: {dependency: salesforce}
  flap: {on: 2s, off: 3s}
- fault: {kind: llm_output_drift, drift: {type: rename_key, from: summary, to: summary_text}}
"#;
        let specs: Vec<FaultSpec> = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(specs.len(), 4);
        assert_eq!(specs[0].at, Some(Duration::from_secs(30)));
        assert_eq!(specs[0].duration, Some(Duration::from_secs(20)));
        assert_eq!(specs[0].trigger, Trigger::Probability(0.5));
        assert!(
            matches!(specs[0].fault, FaultKind::HttpError { status: 503, retry_after: Some(d), .. } if d == Duration::from_secs(2))
        );
        assert_eq!(specs[1].fault.name(), "latency");
        assert_eq!(
            specs[2].fault,
            FaultKind::Partition {
                direction: Direction::Both
            }
        );
        assert!(specs[2].fault.is_network());
        assert_eq!(specs[3].label(), "llm_output_drift");
        let back: Vec<FaultSpec> =
            serde_json::from_value(serde_json::to_value(&specs).unwrap()).unwrap();
        assert_eq!(back, specs);
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        let e = serde_saphyr::from_str::<FaultSpec>("fault: {kind: meteor_strike}").unwrap_err();
        assert!(e.to_string().contains("meteor_strike"), "{e}");
        let e = serde_saphyr::from_str::<FaultSpec>(
            "fault: {kind: http_error, status: 500, colour: red}",
        )
        .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}

/// The `kind` names of the fault engine by family (what scenarios write in `fault: {kind: …}`).
pub mod kind_names {
    /// Sessions and tokens.
    pub const TOKENS: &[&str] = &[
        "expire_tokens",
        "token_ttl",
        "revoke_refresh_tokens",
        "invalid_grant",
    ];
    /// Slow answers.
    pub const LATENCY: &[&str] = &["latency", "llm_timing"];
    /// Error answers and broken exchanges, in the mocks.
    pub const HTTP: &[&str] = &[
        "http_error",
        "empty_response",
        "malformed_body",
        "reset_mid_body",
        "connection_reset",
        "hang",
        "lost_response",
    ];
    /// Governor limits, contention and overload.
    pub const GOVERNOR: &[&str] = &[
        "quota_exhausted",
        "concurrent_long_requests",
        "row_lock",
        "concurrent_edit",
        "llm_slots",
        "llm_overloaded",
        "bulk_job_stuck",
        "bulk_records_fail",
        "bulk_limit_spent",
    ];
    /// Change events (the Streaming API).
    pub const CHANGE_EVENTS: &[&str] =
        &["subscriber_disconnect", "events_dropped", "replay_expired"];
    /// Salesforce schema drift.
    pub const SCHEMA_DRIFT: &[&str] = &[
        "field_renamed",
        "field_removed",
        "field_type_changed",
        "required_field_added",
        "picklist_value_withdrawn",
        "api_version_retired",
    ];
    /// LLM output drift.
    pub const LLM_DRIFT: &[&str] = &[
        "llm_output_drift",
        "llm_truncate",
        "llm_stream_cut",
        "llm_stream_error",
    ];
    /// Network faults (the chaos proxy, or the simulated network): between the SUT and a mock.
    pub const NETWORK: &[&str] = &[
        "partition",
        "reset_peer",
        "refuse_connections",
        "network_latency",
        "bandwidth",
        "slicer",
        "slow_close",
        "network_timeout",
        "limit_data",
    ];
    /// Every family.
    pub const FAMILIES: [&[&str]; 8] = [
        TOKENS,
        LATENCY,
        HTTP,
        GOVERNOR,
        CHANGE_EVENTS,
        SCHEMA_DRIFT,
        LLM_DRIFT,
        NETWORK,
    ];

    /// Every kind name.
    pub fn all() -> impl Iterator<Item = &'static str> {
        FAMILIES.into_iter().flatten().copied()
    }
}
