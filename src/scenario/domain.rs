//! The checked scenario's domain types: what [`super::validate`] makes of the raw serde
//! types once every problem is ruled out. Defaults are applied here, once, so the runner and
//! the checkers read plain values and never a raw option.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fault::DependencyName;

pub use super::raw::OnFailure;
use super::raw::{RawDoubleBooking, RawDrain, RawEffect, RawOperation, RawSlo, RawWorkload};
use super::step::Step;

/// The per-operation timeout when a workload gives none.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How operations are started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Open loop: this many operations started per second, whatever the SUT does.
    Open {
        /// Operations per second.
        rate: f64,
    },
    /// Closed loop: this many operations in flight at once.
    Closed {
        /// Clients.
        concurrency: u32,
    },
}

/// The traffic sent to the SUT.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Open or closed loop.
    pub pace: Pace,
    /// At most this many operations in all (closed loop).
    pub total: Option<u64>,
    /// Past it an operation is `info` (outcome unknown).
    pub timeout: Duration,
    /// The operations, picked by weight.
    pub operations: Vec<Operation>,
}

/// One kind of workload operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// Its name in reports.
    pub name: String,
    /// Relative weight when picking.
    pub weight: u32,
    /// Its steps, in order (one request for a one-request operation).
    pub steps: Vec<Step>,
    /// What a successful operation leaves in Salesforce.
    pub effects: Vec<Effect>,
}

/// A record an operation is expected to leave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effect {
    /// The sObject.
    pub object: String,
    /// Fields that identify the record (templates).
    pub matches: BTreeMap<String, String>,
    /// How many such records a successful operation leaves.
    pub count: u32,
    /// What a failed operation leaves of it.
    pub on_failure: OnFailure,
    /// An eventual effect: the SUT writes it within this long after the operation succeeded.
    pub within: Option<Duration>,
    /// With `within`: the fields the SUT's write sets (empty: any write to the record).
    pub written: Vec<String>,
    /// At most this many writes by the SUT to the record after the operation.
    pub max_writes: Option<u32>,
}

/// A checked SLO, defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Slo {
    /// Retries toward a dependency.
    Retry(RetrySlo),
    /// A circuit breaker in front of a dependency.
    CircuitBreaker(BreakerSlo),
    /// Token handling.
    Token(TokenSlo),
    /// Behaviour under rate limits.
    RateLimit(RateLimitSlo),
    /// Consistency of the records the workload leaves.
    Consistency(ConsistencySlo),
    /// Refused requests after a schema drift.
    SchemaDrift(SchemaDriftSlo),
    /// Success and latency of the workload.
    Availability(AvailabilitySlo),
}

/// The retry SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySlo {
    /// Which dependency (every one when absent).
    pub dependency: Option<DependencyName>,
    /// Attempts per logical operation at most.
    pub max_attempts: Option<u32>,
    /// Smallest gap between attempts.
    pub min_gap: Option<Duration>,
    /// Gaps must grow.
    pub exponential: bool,
    /// Retry gaps across operations must not be synchronised.
    pub jitter: bool,
    /// The next attempt after a 429/503 with Retry-After waits at least that long.
    pub honour_retry_after: bool,
    /// No retry after a non-retryable error.
    pub no_retry_of_non_retryable: bool,
    /// All calls ÷ first attempts at most.
    pub max_amplification: Option<f64>,
    /// Retries must wait: three in four gaps before a retry at least this long (zero: not
    /// judged).
    pub backoff_floor: Duration,
}

/// The backoff floor of the retry SLO when a scenario names none: a retry sooner than this is
/// no backoff at all, while jittered backoff from 50 ms keeps most gaps above it.
pub const DEFAULT_BACKOFF_FLOOR: Duration = Duration::from_millis(10);

/// The circuit-breaker SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerSlo {
    /// Which dependency.
    pub dependency: DependencyName,
    /// After this many failures in an outage...
    pub after_failures: u32,
    /// ...at most this many more calls while it lasts.
    pub max_calls: u32,
    /// Half-open probes at least this far apart.
    pub probe_gap: Option<Duration>,
    /// Normal traffic within this long after the outage ends.
    pub resume_within: Option<Duration>,
}

/// The token SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSlo {
    /// After INVALID_SESSION_ID, a new token within this many requests.
    pub refresh_within_requests: u32,
    /// Token requests per expiry event at most.
    pub max_refreshes_per_expiry: u32,
}

/// The rate-limit SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitSlo {
    /// Requests per second at most while limited.
    pub max_rate_while_limited: f64,
}

/// The consistency SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsistencySlo {
    /// A failed operation must be compensated within this long.
    pub compensate_within: Option<Duration>,
    /// Double bookings of this resource (none judged when absent).
    pub double_booking: Option<DoubleBooking>,
}

/// Two live records of `object` with the same `resource` and overlapping `start`–`end`.
#[derive(Clone, Debug, PartialEq)]
pub struct DoubleBooking {
    /// The sObject.
    pub object: String,
    /// The field naming what cannot be booked twice at once.
    pub resource: String,
    /// The start field.
    pub start: String,
    /// The end field.
    pub end: String,
}

impl DoubleBooking {
    fn from_raw(raw: &RawDoubleBooking) -> Self {
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
        Self {
            object: or(&raw.object, "Event"),
            resource: raw.resource.clone(),
            start: or(&raw.start, "StartDateTime"),
            end: or(&raw.end, "EndDateTime"),
        }
    }
}

/// The drain after the workload: it ends once the mocks have seen no request for `quiet`,
/// or after `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drain {
    /// Silence that ends it.
    pub quiet: Duration,
    /// Longest drain (zero: none).
    pub max: Duration,
    /// Shortest drain, silence or not: the longest time an eventual effect is given
    /// (`within`), so the last operation's effect has its time before the state is read.
    pub min: Duration,
}

/// The drain when a scenario says nothing: up to 10 s, ended by 1 s of silence.
pub const DEFAULT_DRAIN: Drain = Drain {
    quiet: Duration::from_secs(1),
    max: Duration::from_secs(10),
    min: Duration::ZERO,
};

impl Drain {
    /// The drain a scenario asks for, defaults applied.
    pub fn from_raw(raw: Option<&RawDrain>) -> Self {
        let Some(r) = raw else { return DEFAULT_DRAIN };
        Self {
            quiet: r.quiet.unwrap_or(DEFAULT_DRAIN.quiet),
            max: r.max.unwrap_or(DEFAULT_DRAIN.max),
            min: Duration::ZERO,
        }
    }

    /// This drain, lasting at least `min` (and so at most no less).
    pub fn at_least(self, min: Duration) -> Self {
        Self {
            max: self.max.max(min),
            min,
            ..self
        }
    }
}

/// The schema-drift SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaDriftSlo {
    /// Rejected writes after the first, per drift, at most.
    pub max_rejected_after_drift: u32,
}

/// The availability and latency SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct AvailabilitySlo {
    /// Share of operations that succeed, at least.
    pub min_success_ratio: Option<f64>,
    /// p99 latency at most.
    pub p99: Option<Duration>,
    /// Back to the success ratio within this long after each fault ends.
    pub recover_within: Option<Duration>,
}

/// The dependency names a scenario may write, with the domain value of each.
pub const DEPENDENCIES: [(&str, DependencyName); 3] = [
    ("salesforce", DependencyName::Salesforce),
    ("salesforce-auth", DependencyName::SalesforceAuth),
    ("llm", DependencyName::Llm),
];

/// The dependency a scenario names, if it is one.
pub fn dependency(name: &str) -> Option<DependencyName> {
    DEPENDENCIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
}

impl Slo {
    /// The domain value of a raw SLO that validation accepted (an unknown dependency name,
    /// which validation refuses, falls back to Salesforce).
    pub fn from_raw(raw: &RawSlo) -> Self {
        let dep = |d: &str| dependency(d).unwrap_or(DependencyName::Salesforce);
        match raw.clone() {
            RawSlo::Retry {
                dependency,
                max_attempts,
                min_gap,
                exponential,
                jitter,
                honour_retry_after,
                no_retry_of_non_retryable,
                max_amplification,
                backoff_floor,
            } => Slo::Retry(RetrySlo {
                dependency: dependency.as_deref().map(dep),
                max_attempts,
                min_gap,
                exponential,
                jitter,
                honour_retry_after,
                no_retry_of_non_retryable,
                max_amplification,
                backoff_floor: backoff_floor.unwrap_or(DEFAULT_BACKOFF_FLOOR),
            }),
            RawSlo::CircuitBreaker {
                dependency,
                after_failures,
                max_calls,
                probe_gap,
                resume_within,
            } => Slo::CircuitBreaker(BreakerSlo {
                dependency: dep(&dependency),
                after_failures,
                max_calls,
                probe_gap,
                resume_within,
            }),
            RawSlo::Token {
                refresh_within_requests,
                max_refreshes_per_expiry,
            } => Slo::Token(TokenSlo {
                refresh_within_requests,
                max_refreshes_per_expiry,
            }),
            RawSlo::RateLimit {
                max_rate_while_limited,
            } => Slo::RateLimit(RateLimitSlo {
                max_rate_while_limited,
            }),
            RawSlo::Consistency {
                compensate_within,
                double_booking,
            } => Slo::Consistency(ConsistencySlo {
                compensate_within,
                double_booking: double_booking.as_ref().map(DoubleBooking::from_raw),
            }),
            RawSlo::SchemaDrift {
                max_rejected_after_drift,
            } => Slo::SchemaDrift(SchemaDriftSlo {
                max_rejected_after_drift,
            }),
            RawSlo::Availability {
                min_success_ratio,
                p99,
                recover_within,
            } => Slo::Availability(AvailabilitySlo {
                min_success_ratio,
                p99,
                recover_within,
            }),
        }
    }

    /// True for the SLO that needs the mocks' final state (not in a journal).
    pub fn needs_final_state(&self) -> bool {
        matches!(self, Slo::Consistency(_))
    }
}

impl Workload {
    /// The domain value of a raw workload that validation accepted.
    pub fn from_raw(raw: &RawWorkload) -> Self {
        let pace = match (raw.rate, raw.concurrency) {
            (Some(rate), _) => Pace::Open { rate },
            (None, c) => Pace::Closed {
                concurrency: c.unwrap_or(1),
            },
        };
        Self {
            pace,
            total: raw.total,
            timeout: raw.timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT),
            operations: raw.operations.iter().map(Operation::from_raw).collect(),
        }
    }
}

impl Operation {
    /// The domain value of a raw operation that validation accepted.
    pub fn from_raw(raw: &RawOperation) -> Self {
        Self {
            name: raw.name.clone(),
            weight: raw.weight,
            steps: super::step::steps_of(raw),
            effects: raw.effects.iter().map(Effect::from_raw).collect(),
        }
    }
}

impl Effect {
    /// The domain value of a raw effect.
    pub fn from_raw(raw: &RawEffect) -> Self {
        Self {
            object: raw.object.clone(),
            matches: raw.matches.clone(),
            count: raw.count,
            on_failure: raw.on_failure,
            within: raw.within,
            written: raw.written.clone(),
            max_writes: raw.max_writes,
        }
    }
}
