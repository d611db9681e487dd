//! The scenario file as written: serde types for YAML, with a JSON Schema for editors
//! (`crashcart schema`). [`super::validate`] turns them into checked domain types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fault::FaultSpec;

/// A game-day scenario.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// A short name, used for reports (default: the file name).
    #[serde(default)]
    pub name: Option<String>,
    /// What the scenario proves, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of every random choice (fault draws, data, mocks); random and printed when absent.
    #[serde(default)]
    pub seed: Option<u64>,
    /// How long the workload runs.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duration: Duration,
    /// The mocks' configuration.
    #[serde(default)]
    pub mocks: RawMocks,
    /// The system under test.
    pub sut: RawSut,
    /// The traffic sent to the SUT.
    pub workload: RawWorkload,
    /// The fault schedule.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// The SLOs checked at the end.
    #[serde(default)]
    pub slos: Vec<RawSlo>,
    /// When to stop early.
    #[serde(default)]
    pub abort: RawAbort,
    /// After the workload: a fault-free period with the SUT still running and no new
    /// operations, for its background work (compensations, queued writes) to finish before
    /// the final state is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<RawDrain>,
    /// The sweep space of `crashcart tune` (command-line flags override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<crate::tune::Space>,
    /// What `crashcart explore` may inject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore: Option<crate::explore::Budget>,
}

/// The mocks' configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMocks {
    /// The mock Salesforce.
    #[serde(default)]
    pub salesforce: RawSalesforce,
    /// The mock LLM.
    #[serde(default)]
    pub llm: RawLlm,
    /// Where network faults go (default: crashcart's own proxies in front of the mocks).
    #[serde(default)]
    pub network: RawNetwork,
}

/// Network faults on an external Toxiproxy server instead of crashcart's own proxies (a game
/// day spanning several hosts). Its proxies must exist and front the dependencies; the SUT
/// must be configured to go through them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// The Toxiproxy API, `host:port`.
    #[serde(default)]
    pub toxiproxy: Option<String>,
    /// Name of its proxy in front of Salesforce (default `salesforce`).
    #[serde(default)]
    pub salesforce_proxy: Option<String>,
    /// Name of its proxy in front of the LLM (default `llm`).
    #[serde(default)]
    pub llm_proxy: Option<String>,
    /// Permit a non-loopback Toxiproxy address.
    #[serde(default)]
    pub allow_remote: bool,
}

/// The mock Salesforce's configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSalesforce {
    /// Extra org schema files (relative to the scenario), merged over the built-in one.
    #[serde(default)]
    pub schema: Vec<PathBuf>,
    /// Daily API request quota.
    #[serde(default)]
    pub daily_api_limit: Option<u64>,
    /// Access-token lifetime.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub token_ttl: Option<Duration>,
    /// Serve HTTPS (self-signed; the SUT gets `SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE`).
    #[serde(default)]
    pub tls: bool,
}

/// The mock LLM's configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLlm {
    /// Server flavour of the OpenAI-compatible API: openai, vllm, llamacpp, ollama.
    #[serde(default)]
    pub flavour: Option<String>,
    /// Extra persona files (relative to the scenario).
    #[serde(default)]
    pub personas: Vec<PathBuf>,
    /// Serve only these models (the first is `LLM_MODEL`).
    #[serde(default)]
    pub models: Vec<String>,
    /// No delays at all.
    #[serde(default)]
    pub zero_delay: bool,
    /// Prompt capture: full, hashed, off.
    #[serde(default)]
    pub capture: Option<String>,
}

/// The system under test: a command crashcart starts, or a URL of a running system.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSut {
    /// Command and arguments (a string runs through `sh -c`).
    #[serde(default)]
    pub command: Option<Command>,
    /// Working directory of the command (relative to the scenario).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Readiness URL: answers 2xx when the SUT is ready (`${PORT}` is replaced).
    #[serde(default)]
    pub ready: Option<String>,
    /// Readiness by a log line instead of a URL (a worker with no HTTP port): a regular
    /// expression the SUT's stdout or stderr matches once it is ready.
    #[serde(default)]
    pub ready_log: Option<String>,
    /// Readiness by a command instead of a URL: run (with the SUT contract's environment)
    /// every 200 ms until it exits 0.
    #[serde(default)]
    pub ready_command: Option<Command>,
    /// No long-running process: the SUT is what the workload's `run` steps start (a batch
    /// job, a cron task), in `cwd` with the contract's environment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    /// How long to wait for readiness.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub ready_timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL at the end.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub grace: Option<Duration>,
    /// Base URL of an already running SUT (instead of `command`).
    #[serde(default)]
    pub url: Option<String>,
    /// Run the built-in reference integration instead of a command.
    #[serde(default)]
    pub reference: bool,
    /// Permit a `url` or `ready` that is not on this machine (a game day against staging);
    /// refused otherwise, so a scenario from elsewhere cannot point crashcart's workload at a
    /// host of its choosing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_remote: bool,
}

/// A command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    /// Run through `sh -c`.
    Shell(String),
    /// Program and arguments.
    Argv(Vec<String>),
}

/// The traffic sent to the SUT.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    /// Open loop: operations started per second, whatever the SUT does.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Closed loop: operations in flight at once.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Stop after this many operations in all (with `concurrency: N` and `total: N`, each
    /// client does one operation and the run ends when they are done).
    #[serde(default)]
    pub total: Option<u64>,
    /// Per-operation timeout (an operation past it is `info`: outcome unknown).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// The operations, picked by weight.
    pub operations: Vec<RawOperation>,
}

/// One kind of operation of the workload.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    /// Its name in reports.
    pub name: String,
    /// Relative weight when picking.
    #[serde(default = "one")]
    pub weight: u32,
    /// HTTP method (a one-request operation; `steps` for more).
    #[serde(default = "post")]
    pub method: String,
    /// Path on the SUT; templates like `{{key}}` and `{{patient.external_id}}` are filled.
    /// Give `path` (one request) or `steps`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// JSON body, templated the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// What the one request must answer (default: a 2xx status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<RawExpect>,
    /// The operation as a sequence of steps, run in order; the first that fails or whose
    /// expectation is unmet ends the operation as `fail`, a timeout as `info`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RawStep>,
    /// What a successful operation leaves in Salesforce (for the consistency SLO).
    #[serde(default)]
    pub effects: Vec<RawEffect>,
}

/// One step of an operation: a request to the SUT (`path`), an action on the mock org as
/// one of its users (`org`), or a command (`run`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Its name in reasons and reports (default `step N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// HTTP method of a request to the SUT (default POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path on the SUT, templated (captures of earlier steps included: `{{booking_id}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// JSON body of the request, templated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Extra request headers, values templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// An action on the mock org as one of its users (a clinician creating a Case): how a
    /// polling or event-driven SUT is driven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<RawOrgAction>,
    /// A command to run (a batch job's `--once`), with the SUT contract's environment; exit
    /// status 0 is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Command>,
    /// What the step must answer (default: a 2xx status, exit status 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<RawExpect>,
    /// Values taken from the answer into variables for later steps and the effects:
    /// `{booking_id: /id}` (a JSON pointer) or `{etag: {header: ETag}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, RawCapture>,
}

/// Where a captured value comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawCapture {
    /// A JSON pointer into the answer's body (`/id`, `/records/0/Id`).
    Pointer(String),
    /// A pointer or a header, spelled out.
    From(RawCaptureFrom),
}

/// A capture spelled out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCaptureFrom {
    /// A JSON pointer into the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// A response header (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// An action on the mock org, as one of its users. The answer is the REST API's: `{"id":
/// …, "success": true, "errors": []}` for a create, so `capture: {case_id: /id}` works.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOrgAction {
    /// The org user acting (default `dr.adams@crashcart.test`, a physician).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Create a record of this sObject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<String>,
    /// Update a record of this sObject (`id` names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// Delete a record of this sObject (`id` names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<String>,
    /// The record's id, templated (`{{case_id}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Field values, string values templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// What a step must answer: the first unmet expectation fails the operation, with the
/// reason in its history and the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// Accepted statuses (default any 2xx; for a command, exit statuses, default 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<u16>,
    /// Checks on the JSON body, by JSON pointer: `{"/status": {equals: booked}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body: BTreeMap<String, RawValueCheck>,
    /// Checks on response headers, by name (any case).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, RawValueCheck>,
}

/// A check on one value; give one or more.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawValueCheck {
    /// Equal to this JSON value (templated when a string; a header compares as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// Present (`true`) or absent (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// A string matching this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
}

fn one() -> u32 {
    1
}

fn post() -> String {
    "POST".into()
}

/// What a failed operation leaves of one effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Nothing: a failed operation is rolled back (compensated).
    #[default]
    Absent,
    /// Still there: kept whatever the outcome (an audit record, a consent).
    Kept,
    /// Either: not judged after a failure (the patient record a failed booking rightly
    /// leaves, or never reached).
    Either,
}

/// A record an operation is expected to leave.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEffect {
    /// The sObject.
    pub object: String,
    /// Fields that identify the record, templated (`{Booking_Key__c: "{{key}}"}`).
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// How many such records a successful operation leaves.
    #[serde(default = "one")]
    pub count: u32,
    /// What a failed operation leaves of it (default `absent`: rolled back).
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_failure: OnFailure,
    /// An eventual effect: the SUT writes it within this long after the operation succeeded
    /// (a summary a poller writes back), judged from the org's write log; its time is
    /// reported.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub within: Option<Duration>,
    /// With `within`: the fields the SUT's write must set (default: any write to the record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written: Vec<String>,
    /// At most this many writes by the SUT to the record after the operation (`1`: exactly
    /// once, not re-done on every poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writes: Option<u32>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Double bookings the consistency SLO looks for: two live records of `object` with the same
/// `resource` whose `start`–`end` overlap.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDoubleBooking {
    /// The sObject (default `Event`).
    #[serde(default)]
    pub object: Option<String>,
    /// The field naming what cannot be booked twice at once (`OwnerId`, a practitioner
    /// lookup, a room).
    pub resource: String,
    /// The start field (default `StartDateTime`).
    #[serde(default)]
    pub start: Option<String>,
    /// The end field (default `EndDateTime`).
    #[serde(default)]
    pub end: Option<String>,
}

/// The drain after the workload.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDrain {
    /// It ends once the mocks have seen no request for this long (default 1s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub quiet: Option<Duration>,
    /// At most this long (default 10s; `0s`: no drain).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max: Option<Duration>,
}

/// One SLO: the checker's name and its thresholds.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "check", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSlo {
    /// Retries toward a dependency.
    Retry {
        /// Which dependency (default: every one).
        #[serde(default)]
        dependency: Option<String>,
        /// Attempts per logical operation at most.
        #[serde(default)]
        max_attempts: Option<u32>,
        /// Smallest gap between attempts.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        min_gap: Option<Duration>,
        /// Gaps must grow from one attempt to the next.
        #[serde(default)]
        exponential: bool,
        /// Retry gaps across operations must not be synchronised.
        #[serde(default)]
        jitter: bool,
        /// After a 429/503 with Retry-After, the next attempt waits at least that long.
        #[serde(default = "yes")]
        honour_retry_after: bool,
        /// No retry after a non-retryable error (400s, MALFORMED_QUERY, INVALID_FIELD).
        #[serde(default = "yes")]
        no_retry_of_non_retryable: bool,
        /// All calls ÷ first attempts at most.
        #[serde(default)]
        max_amplification: Option<f64>,
        /// Retries must wait: three in four gaps before a retry at least this long (default
        /// 10ms; `0s` turns it off). Full jitter draws some gaps near zero, but not most.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        backoff_floor: Option<Duration>,
    },
    /// A circuit breaker in front of a dependency.
    CircuitBreaker {
        /// Which dependency.
        dependency: String,
        /// After this many failures in an outage...
        #[serde(default = "five")]
        after_failures: u32,
        /// ...at most this many more calls while it lasts.
        max_calls: u32,
        /// Half-open probes at least this far apart.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        probe_gap: Option<Duration>,
        /// Normal traffic within this long after the outage ends.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        resume_within: Option<Duration>,
    },
    /// Token handling.
    Token {
        /// After INVALID_SESSION_ID, a new token within this many requests.
        #[serde(default = "five")]
        refresh_within_requests: u32,
        /// Token requests per expiry event at most.
        #[serde(default = "five")]
        max_refreshes_per_expiry: u32,
    },
    /// Behaviour under rate limits.
    RateLimit {
        /// After a limit answer, requests per second at most until it lifts.
        max_rate_while_limited: f64,
    },
    /// Consistency of the records the workload leaves.
    Consistency {
        /// A failed operation must be compensated within this long.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        compensate_within: Option<Duration>,
        /// Look for double bookings of this resource (none judged when absent).
        #[serde(default)]
        double_booking: Option<RawDoubleBooking>,
    },
    /// The SUT stops sending fields the org rejects after a drift.
    SchemaDrift {
        /// Rejected writes after the first, per drift, at most.
        #[serde(default = "five")]
        max_rejected_after_drift: u32,
    },
    /// Success and latency of the workload.
    Availability {
        /// Share of operations that succeed, at least.
        #[serde(default)]
        min_success_ratio: Option<f64>,
        /// p99 latency at most.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        p99: Option<Duration>,
        /// Back to the success ratio within this long after each fault ends.
        #[serde(default, with = "humantime_serde")]
        #[schemars(with = "Option<String>")]
        recover_within: Option<Duration>,
    },
}

fn yes() -> bool {
    true
}

fn five() -> u32 {
    5
}

/// When to stop a run early.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAbort {
    /// Abort when the SUT's readiness URL fails for this long.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub unhealthy_for: Option<Duration>,
    /// Abort when the share of failed operations (over the last 10 s) passes this.
    #[serde(default)]
    pub error_ratio_above: Option<f64>,
}
