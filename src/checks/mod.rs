//! SLO checkers: pure functions of (timeline, final mock state, scenario) that return the
//! measured value, the target, a verdict and the evidence (the offending requests, operations
//! or records).
//!
//! - what the SUT did to its dependencies: [`retry`], [`breaker`] (circuit breaker),
//!   [`token`] (sessions), [`refusals`] (rate limit, schema drift), on what [`traffic`] shares
//!   (logical operations and their attribution, fault and network windows).
//! - what the workload saw and left behind: [`availability`] (success, latency, recovery),
//!   [`consistency`] (effects, rollback, orphans, double bookings, lost updates).

pub mod availability;
pub mod breaker;
pub mod consistency;
pub mod refusals;
pub mod retry;
pub mod token;
pub mod traffic;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::domain::{Operation, Slo};
use crate::timeline::Timeline;

/// A checker's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Met.
    Pass,
    /// Not met.
    Fail,
    /// Nothing to judge (no traffic of the kind the SLO is about).
    Skip,
}

/// The result of one SLO.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// The checker (`retry`, `token`, …), with its dependency when it has one.
    pub slo: String,
    /// The target, in words.
    pub target: String,
    /// What was measured, in words.
    pub measured: String,
    /// Met or not.
    pub verdict: Verdict,
    /// The offending requests, operations or records (the first few).
    pub evidence: Vec<String>,
    /// Problems found past the first [`MAX_EVIDENCE`], not listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// At most this many evidence lines per SLO.
pub const MAX_EVIDENCE: usize = 10;

impl SloResult {
    pub(crate) fn new(slo: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            slo: slo.into(),
            target: target.into(),
            measured: String::new(),
            verdict: Verdict::Pass,
            evidence: vec![],
            omitted: 0,
        }
    }
    pub(crate) fn fail(&mut self, evidence: impl Into<String>) {
        self.verdict = Verdict::Fail;
        if self.evidence.len() < MAX_EVIDENCE {
            self.evidence.push(evidence.into());
        } else {
            self.omitted += 1;
        }
    }
    /// Every problem found, listed or not.
    pub fn problems(&self) -> usize {
        self.evidence.len() + self.omitted
    }
    pub(crate) fn skip(mut self, why: impl Into<String>) -> Self {
        self.verdict = Verdict::Skip;
        self.measured = why.into();
        self
    }
}

/// The mocks' state at the end of a run, as the checkers need it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FinalState {
    /// Every record of each sObject, live and deleted (`IsDeleted`), as the REST API renders it.
    pub records: BTreeMap<String, Vec<serde_json::Value>>,
    /// When each deleted record was deleted (monotonic µs on the run's clock), by id.
    #[serde(default)]
    pub deleted_at: BTreeMap<String, u64>,
    /// The org's accepted writes, in order (for lost updates).
    #[serde(default)]
    pub writes: Vec<RecordWrite>,
    /// The SUT's username (only its blind writes can lose another user's update; every
    /// writer's when unknown).
    #[serde(default)]
    pub sut_user: Option<String>,
    /// When the state was read (monotonic µs on the run's clock): an eventual effect whose
    /// time was not up by then is not judged. Unknown (`None`): every deadline has passed.
    #[serde(default)]
    pub read_at_us: Option<u64>,
}

/// One write the org accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordWrite {
    /// Monotonic µs on the run's clock.
    pub at_us: u64,
    /// sObject.
    pub object: String,
    /// Record id.
    pub id: String,
    /// `create`, `update` or `delete`.
    pub kind: String,
    /// Fields set.
    pub fields: Vec<String>,
    /// The writer's username.
    pub user: Option<String>,
    /// True when the write carried `If-Match` or `If-Unmodified-Since`.
    pub conditional: bool,
}

/// Run every SLO of a scenario.
pub fn check_all(
    slos: &[Slo],
    operations: &[Operation],
    seed: u64,
    timeline: &Timeline,
    state: &FinalState,
) -> Vec<SloResult> {
    slos.iter()
        .map(|slo| match slo {
            Slo::Retry(s) => retry::retry(timeline, s),
            Slo::CircuitBreaker(s) => breaker::circuit_breaker(timeline, s),
            Slo::Token(s) => token::token(timeline, s),
            Slo::RateLimit(s) => refusals::rate_limit(timeline, s),
            Slo::SchemaDrift(s) => refusals::schema_drift(timeline, s),
            Slo::Availability(s) => availability::availability(timeline, s),
            Slo::Consistency(s) => consistency::consistency(timeline, state, operations, seed, s),
        })
        .collect()
}

/// Seconds with millisecond precision, for messages.
pub(crate) fn secs(us: u64) -> String {
    format!("{:.3}s", us as f64 / 1e6)
}
