//! The resilience mechanisms of the reference integration, one small piece each:
//!
//! - [`Policy`]: the numbers (timeouts, backoff, attempts, budget, breaker).
//! - [`backoff`]: capped exponential backoff with full jitter (floored at 10 ms).
//! - [`RetryBudget`]: retries may be at most a share of first attempts (plus a small floor).
//! - [`Breaker`]: a circuit breaker per dependency (closed → open → half-open, one probe).
//! - [`Dependency::call`]: one logical call, with the breaker, timeouts, retries that honour
//!   `Retry-After`, and a classification of the answer.
//!
//! Every defect that breaks one of these is a branch here, named after the defect.

use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::defect::{Defect, Defects};
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};

/// The resilience settings.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Timeout of one Salesforce call.
    pub salesforce_timeout: Duration,
    /// Timeout of one LLM call.
    pub llm_timeout: Duration,
    /// First backoff step.
    pub base: Duration,
    /// Largest backoff.
    pub cap: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Retries may be at most this share of first attempts...
    pub budget_ratio: f64,
    /// ...plus this many.
    pub budget_floor: u32,
    /// Consecutive failures that open the breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_open_for: Duration,
    /// Deadline of one workload operation (retries stop before it).
    pub operation_deadline: Duration,
    /// How waits between attempts are drawn.
    pub strategy: Strategy,
    /// Whether the retry budget applies.
    pub budget: bool,
}

/// A backoff strategy (the names of the AWS Architecture Blog's study, "Exponential Backoff
/// And Jitter").
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Strategy {
    /// Retry at once.
    None,
    /// Always `base`.
    Constant,
    /// `min(cap, base × 2^n)`, no jitter.
    Exponential,
    /// Uniform in `[0, min(cap, base × 2^n)]`.
    FullJitter,
    /// Half the exponential step plus uniform in the other half.
    EqualJitter,
    /// `min(cap, uniform(base, previous × 3))`.
    Decorrelated,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 6] = [
        Strategy::None,
        Strategy::Constant,
        Strategy::Exponential,
        Strategy::FullJitter,
        Strategy::EqualJitter,
        Strategy::Decorrelated,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Constant => "constant",
            Strategy::Exponential => "exponential",
            Strategy::FullJitter => "full-jitter",
            Strategy::EqualJitter => "equal-jitter",
            Strategy::Decorrelated => "decorrelated",
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            salesforce_timeout: Duration::from_millis(1500),
            llm_timeout: Duration::from_secs(3),
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: 4,
            budget_ratio: 0.5,
            budget_floor: 20,
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(1),
            operation_deadline: Duration::from_secs(8),
            strategy: Strategy::FullJitter,
            budget: true,
        }
    }
}

/// The wait before retry number `retry` (0 for the first retry); `previous` is the last wait
/// (decorrelated jitter grows from it).
pub fn backoff(
    policy: &Policy,
    retry: u32,
    previous: Duration,
    defects: &Defects,
    rng: &mut ChaCha8Rng,
) -> Duration {
    let strategy = if defects.has(Defect::NoBackoff) {
        Strategy::None
    } else if defects.has(Defect::NoJitter) {
        Strategy::Exponential
    } else {
        policy.strategy
    };
    let ceiling = policy
        .base
        .saturating_mul(1u32 << retry.min(16))
        .min(policy.cap);
    let uniform = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| {
        Duration::from_secs_f64(if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        })
    };
    match strategy {
        Strategy::None => Duration::ZERO,
        Strategy::Constant => policy.base,
        Strategy::Exponential => ceiling,
        // Floored at 10 ms (or the base, if smaller) so a retry never lands on the heels of
        // the failure.
        Strategy::FullJitter => {
            uniform(rng, 0.0, ceiling.as_secs_f64()).max(Duration::from_millis(10).min(policy.base))
        }
        Strategy::EqualJitter => {
            let half = ceiling.as_secs_f64() / 2.0;
            uniform(rng, half, ceiling.as_secs_f64())
        }
        Strategy::Decorrelated => {
            let hi = (previous.max(policy.base).as_secs_f64() * 3.0).min(policy.cap.as_secs_f64());
            uniform(rng, policy.base.as_secs_f64(), hi).min(policy.cap)
        }
    }
}

/// A retry budget: retries stay within `ratio × first attempts + floor`.
#[derive(Debug, Default)]
pub struct RetryBudget {
    counts: Mutex<(u64, u64)>,
}

impl RetryBudget {
    /// Count a first attempt.
    pub fn first(&self) {
        self.counts.lock().0 += 1;
    }

    /// May one more retry go? Counts it when so.
    pub fn withdraw(&self, policy: &Policy) -> bool {
        let mut c = self.counts.lock();
        let allowed = (c.0 as f64 * policy.budget_ratio) as u64 + policy.budget_floor as u64;
        if c.1 < allowed {
            c.1 += 1;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// A circuit breaker: `threshold` consecutive failures open it for `open_for`; then one probe
/// goes through (half-open); its success closes it, its failure opens it again.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<BreakerState>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }
}

impl Breaker {
    /// May a call go now?
    pub fn allow(&self) -> bool {
        let mut s = self.state.lock();
        match *s {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if Instant::now() >= until => {
                *s = BreakerState::HalfOpen;
                true
            }
            _ => false,
        }
    }

    /// The dependency answered.
    pub fn success(&self) {
        *self.state.lock() = BreakerState::Closed { failures: 0 };
    }

    /// The dependency failed.
    pub fn failure(&self, policy: &Policy) {
        let mut s = self.state.lock();
        *s = match *s {
            BreakerState::Closed { failures } if failures + 1 < policy.breaker_threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            BreakerState::Open { until } => BreakerState::Open { until },
            _ => BreakerState::Open {
                until: Instant::now() + policy.breaker_open_for,
            },
        };
    }

    /// Open now for `d` (the org's quota is spent).
    pub fn trip(&self, d: Duration) {
        *self.state.lock() = BreakerState::Open {
            until: Instant::now() + d,
        };
    }

    /// Hold every call for `d` (the dependency said when to come back: `Retry-After`),
    /// without shortening an opening already longer.
    pub fn pause(&self, d: Duration) {
        let mut s = self.state.lock();
        let until = Instant::now() + d;
        *s = match *s {
            BreakerState::Open { until: u } if u > until => BreakerState::Open { until: u },
            _ => BreakerState::Open { until },
        };
    }

    /// True while open or half-open.
    pub fn is_open(&self) -> bool {
        !matches!(*self.state.lock(), BreakerState::Closed { .. })
    }
}

/// How an answer is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Success, or an answer the caller handles (4xx): the dependency is healthy.
    Done,
    /// The session is dead (401): the caller gets a new token.
    Unauthorized,
    /// The org's API quota is spent: pause the dependency, do not retry.
    Limited,
    /// Worth another attempt (429, 5xx, UNABLE_TO_LOCK_ROW, no answer).
    Transient,
}

/// Classify a Salesforce or LLM answer.
pub fn classify(r: &HttpResponse) -> Class {
    match r.status {
        401 => Class::Unauthorized,
        403 if error_code(r).as_deref() == Some("REQUEST_LIMIT_EXCEEDED") => Class::Limited,
        400 if error_code(r).as_deref() == Some("UNABLE_TO_LOCK_ROW") => Class::Transient,
        408 | 425 | 429 | 500..=599 => Class::Transient,
        _ => Class::Done,
    }
}

/// The first `errorCode` of a Salesforce error body.
pub fn error_code(r: &HttpResponse) -> Option<String> {
    let v = r.json();
    v.get(0)
        .and_then(|e| e.get("errorCode"))
        .and_then(|c| c.as_str())
        .map(str::to_string)
}

/// `Retry-After` in seconds (or `retry-after-ms`).
fn retry_after(r: &HttpResponse) -> Option<Duration> {
    if let Some(ms) = r
        .header("retry-after-ms")
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    r.header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(Duration::from_secs_f64)
}

tokio::task_local! {
    /// The W3C `traceparent` of the request being served, handed on to every dependency call
    /// made for it (as OpenTelemetry's HTTP instrumentation does).
    static TRACEPARENT: String;
}

/// Run `f` with `traceparent` handed on to the dependency calls it makes.
pub async fn with_traceparent<F: std::future::Future>(
    traceparent: Option<String>,
    f: F,
) -> F::Output {
    match traceparent {
        Some(t) => TRACEPARENT.scope(t, f).await,
        None => f.await,
    }
}

/// The `traceparent` handed on here, if any (for work spawned to outlive the request).
pub fn current_traceparent() -> Option<String> {
    TRACEPARENT.try_with(Clone::clone).ok()
}

tokio::task_local! {
    /// Attempts per call inside [`single_attempt`].
    static ATTEMPTS: u32;
}

/// Run `f` with every [`Dependency::call`] inside it making one attempt only. For retry
/// loops of their own, such as compensation: a loop of retrying calls would multiply the
/// attempts (4 rounds of 4 attempts are 16 requests at a dependency that is down).
pub async fn single_attempt<F: std::future::Future>(f: F) -> F::Output {
    ATTEMPTS.scope(1, f).await
}

/// Why a call gave up without an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The breaker is open: failing fast.
    #[error("{0}: circuit open")]
    Open(&'static str),
    /// No answer after the retries allowed.
    #[error("{0}: {1}")]
    Transport(&'static str, TransportError),
    /// A retry the caller withdrew before it was sent (what it would send is now known to be
    /// refused): the outcome is that of the attempts before it.
    #[error("{0}: retry not sent: {1}")]
    Withdrawn(&'static str, String),
}

/// One dependency as the integration sees it: transport, timeout, breaker, budget.
#[derive(Debug)]
pub struct Dependency {
    /// `salesforce` or `llm`.
    pub name: &'static str,
    /// The transport.
    pub transport: Transport,
    /// Its breaker.
    pub breaker: Breaker,
    budget: RetryBudget,
    timeout: Duration,
    policy: Policy,
    defects: Defects,
    rng: Mutex<ChaCha8Rng>,
}

impl Dependency {
    /// A dependency reached through `transport`.
    pub fn new(
        name: &'static str,
        transport: Transport,
        timeout: Duration,
        policy: Policy,
        defects: Defects,
        rng: ChaCha8Rng,
    ) -> Self {
        Self {
            name,
            transport,
            breaker: Breaker::default(),
            budget: RetryBudget::default(),
            timeout,
            policy,
            defects,
            rng: Mutex::new(rng),
        }
    }

    /// One logical call: attempts through the breaker, retried with backoff while the answer
    /// is transient, the budget allows and `deadline` is not passed. Returns the last answer
    /// (whatever its status) or why there was none.
    pub async fn call(
        &self,
        req: &HttpRequest,
        deadline: Instant,
    ) -> Result<HttpResponse, CallError> {
        self.call_with(|_| Ok(req.clone()), deadline).await
    }

    /// As [`Self::call`], with the request built afresh for every attempt (so a retry carries
    /// the session current at that moment, not the one of the first attempt). `build` gets the
    /// retry's number (0: the first attempt) and may withdraw a retry with the reason.
    pub async fn call_with(
        &self,
        build: impl Fn(u32) -> Result<HttpRequest, String>,
        deadline: Instant,
    ) -> Result<HttpResponse, CallError> {
        let no_breaker = self.defects.has(Defect::NoBreaker);
        let unbounded = self.defects.has(Defect::UnboundedRetries);
        let timeout = (!self.defects.has(Defect::NoTimeout)).then_some(self.timeout);
        let scoped = ATTEMPTS.try_with(|a| *a).ok();
        // One key for the logical call, on each of its attempts (`Idempotency-Key`): the
        // server, and crashcart's checkers, can tell a retry from another caller's identical
        // request.
        let key = format!("{:016x}", self.random());
        self.budget.first();
        let mut retry = 0u32;
        let mut previous = Duration::ZERO;
        loop {
            if !no_breaker && !self.breaker.allow() {
                return Err(CallError::Open(self.name));
            }
            // No attempt outlives the operation's deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CallError::Transport(self.name, TransportError::Timeout));
            }
            let timeout = timeout.map(|t| t.min(left));
            let mut req = build(retry).map_err(|why| CallError::Withdrawn(self.name, why))?;
            if let Some(t) = current_traceparent() {
                req = req.header("traceparent", &t);
            }
            let answer = self
                .transport
                .send(req.header("idempotency-key", &key), timeout)
                .await;
            let (class, wait_at_least) = match &answer {
                Ok(r) => {
                    let mut c = classify(r);
                    if c == Class::Done
                        && (400..500).contains(&r.status)
                        && self.defects.has(Defect::RetryNonRetryable)
                        && !matches!(r.status, 404 | 409 | 412)
                    {
                        c = Class::Transient;
                    }
                    let ra = (!self.defects.has(Defect::IgnoreRetryAfter))
                        .then(|| retry_after(r))
                        .flatten();
                    (c, ra)
                }
                Err(_) => (Class::Transient, None),
            };
            match class {
                Class::Done | Class::Unauthorized => {
                    self.breaker.success();
                    return answer.map_err(|e| CallError::Transport(self.name, e));
                }
                Class::Limited => {
                    if !no_breaker {
                        self.breaker.trip(self.policy.breaker_open_for * 2);
                        return answer.map_err(|e| CallError::Transport(self.name, e));
                    }
                }
                Class::Transient => {
                    let lock_row = matches!(&answer, Ok(r) if r.status == 400);
                    if lock_row {
                        self.breaker.success();
                    } else {
                        self.breaker.failure(&self.policy);
                    }
                    // `Retry-After` speaks to every caller, not only this one: the dependency
                    // is held until then (a single probe follows), so other callers do not
                    // keep the server busy refusing them.
                    if let (Some(ra), false) = (wait_at_least, no_breaker) {
                        self.breaker.pause(ra);
                    }
                }
            }
            retry += 1;
            let out_of_attempts = scoped.is_some_and(|a| retry >= a)
                || (!unbounded && retry >= self.policy.max_attempts);
            let budget_spent =
                !unbounded && self.policy.budget && !self.budget.withdraw(&self.policy);
            if out_of_attempts || budget_spent {
                return answer.map_err(|e| CallError::Transport(self.name, e));
            }
            let mut wait = backoff(
                &self.policy,
                retry - 1,
                previous,
                &self.defects,
                &mut self.rng.lock(),
            );
            previous = wait;
            if let Some(ra) = wait_at_least {
                wait = wait.max(ra);
            }
            if Instant::now() + wait >= deadline {
                return answer.map_err(|e| CallError::Transport(self.name, e));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The wait before retry `retry` by the policy (for retry loops outside [`Self::call`],
    /// such as a conditional write retried on 412).
    pub fn backoff(&self, retry: u32, previous: Duration) -> Duration {
        backoff(
            &self.policy,
            retry,
            previous,
            &self.defects,
            &mut self.rng.lock(),
        )
    }

    /// A fresh random number from the integration's seeded generator.
    pub fn random(&self) -> u64 {
        self.rng.lock().random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_to_the_cap_with_full_jitter_and_the_defects_break_it() {
        let p = Policy::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let none = Defects::none();
        let z = Duration::ZERO;
        let waits: Vec<Duration> = (0..200)
            .map(|_| backoff(&p, 2, z, &none, &mut rng))
            .collect();
        assert!(waits
            .iter()
            .all(|w| *w >= Duration::from_millis(10) && *w <= p.base * 4));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 150, "jittered");
        assert!(backoff(&p, 30, z, &none, &mut rng) <= p.cap);
        let nj: Defects = [Defect::NoJitter].into_iter().collect();
        assert_eq!(backoff(&p, 2, z, &nj, &mut rng), p.base * 4);
        let nb: Defects = [Defect::NoBackoff].into_iter().collect();
        assert_eq!(backoff(&p, 2, z, &nb, &mut rng), Duration::ZERO);
        // The other strategies stay in their ranges.
        let with = |strategy| Policy {
            strategy,
            ..Policy::default()
        };
        assert_eq!(
            backoff(&with(Strategy::Constant), 5, z, &none, &mut rng),
            p.base
        );
        for _ in 0..100 {
            let e = backoff(&with(Strategy::EqualJitter), 2, z, &none, &mut rng);
            assert!(e >= p.base * 2 && e <= p.base * 4, "{e:?}");
            let d = backoff(
                &with(Strategy::Decorrelated),
                2,
                p.base * 5,
                &none,
                &mut rng,
            );
            assert!(d >= p.base && d <= p.base * 15, "{d:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_after_the_threshold_and_lets_one_probe_through() {
        let p = Policy::default();
        let b = Breaker::default();
        for _ in 0..p.breaker_threshold - 1 {
            b.failure(&p);
            assert!(b.allow());
        }
        b.failure(&p);
        assert!(!b.allow(), "open");
        tokio::time::advance(p.breaker_open_for).await;
        assert!(b.allow(), "the probe");
        assert!(!b.allow(), "only one probe at a time");
        b.failure(&p);
        assert!(!b.allow(), "a failed probe opens it again");
        tokio::time::advance(p.breaker_open_for).await;
        assert!(b.allow());
        b.success();
        assert!(b.allow() && b.allow() && !b.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_every_caller_and_never_shortens_an_opening() {
        let b = Breaker::default();
        b.pause(Duration::from_secs(1));
        assert!(!b.allow(), "held for the Retry-After");
        tokio::time::advance(Duration::from_millis(500)).await;
        b.pause(Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(!b.allow(), "a shorter Retry-After did not shorten the hold");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(b.allow(), "then one probe");
    }

    #[test]
    fn the_budget_limits_retries_to_a_share_of_first_attempts() {
        let p = Policy {
            budget_ratio: 0.5,
            budget_floor: 1,
            ..Policy::default()
        };
        let b = RetryBudget::default();
        for _ in 0..4 {
            b.first();
        }
        let granted = (0..10).filter(|_| b.withdraw(&p)).count();
        assert_eq!(granted, 3);
    }
}
