//! The ranges a scenario's numbers must keep to. A scenario is a file from someone else:
//! `rate: 1e12`, `concurrency: 1000000` or `duration: 99999999999h` validate as numbers but
//! would exhaust the machine. Each value is checked against a range that makes sense for a
//! game day, and the error says the range.

use std::time::Duration;

use super::raw::{RawScenario, RawSlo};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The longest workload: a day-long game day.
pub const MAX_DURATION: Duration = DAY;
/// Operations started per second, at most.
pub const MAX_RATE: f64 = 10_000.0;
/// Clients of a closed loop, at most.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// Operations of one workload, at most.
pub const MAX_OPERATIONS: usize = 1_000;

/// A problem: key path and message.
pub type Found = (String, String);

/// At most this many steps an operation.
pub const MAX_STEPS: u64 = 64;

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `at` must lie within `lo..=hi`.
pub fn duration(at: &str, d: Duration, lo: Duration, hi: Duration, out: &mut Vec<Found>) {
    if d < lo || d > hi {
        out.push((
            at.to_string(),
            format!(
                "{} is out of range: between {} and {}",
                human(d),
                human(lo),
                human(hi)
            ),
        ));
    }
}

fn opt_duration(at: &str, d: Option<Duration>, lo: Duration, hi: Duration, out: &mut Vec<Found>) {
    if let Some(d) = d {
        duration(at, d, lo, hi, out);
    }
}

/// A count within `lo..=hi`.
pub fn count(at: &str, n: u64, lo: u64, hi: u64, out: &mut Vec<Found>) {
    if n < lo || n > hi {
        out.push((
            at.to_string(),
            format!("{n} is out of range: between {lo} and {hi}"),
        ));
    }
}

fn number(at: &str, x: f64, lo: f64, hi: f64, out: &mut Vec<Found>) {
    if !(x.is_finite() && x >= lo && x <= hi) {
        out.push((
            at.to_string(),
            format!("{x} is out of range: between {lo} and {hi}"),
        ));
    }
}

/// Every number of a scenario outside faults (the fault engine bounds those).
pub fn check(raw: &RawScenario) -> Vec<Found> {
    let mut out = vec![];
    duration("duration", raw.duration, MS, MAX_DURATION, &mut out);
    let m = &raw.mocks.salesforce;
    opt_duration(
        "mocks.salesforce.token_ttl",
        m.token_ttl,
        SEC,
        30 * DAY,
        &mut out,
    );
    if let Some(l) = m.daily_api_limit {
        count(
            "mocks.salesforce.daily_api_limit",
            l,
            1,
            1_000_000_000,
            &mut out,
        );
    }
    let s = &raw.sut;
    opt_duration("sut.ready_timeout", s.ready_timeout, MS, HOUR, &mut out);
    opt_duration("sut.grace", s.grace, Duration::ZERO, 10 * MIN, &mut out);
    let w = &raw.workload;
    if let Some(r) = w.rate {
        if r > 0.0 {
            number("workload.rate", r, 0.0, MAX_RATE, &mut out);
        }
    }
    if let Some(c) = w.concurrency {
        count(
            "workload.concurrency",
            u64::from(c),
            1,
            u64::from(MAX_CONCURRENCY),
            &mut out,
        );
    }
    if let Some(t) = w.total {
        count("workload.total", t, 1, 1_000_000_000, &mut out);
    }
    opt_duration("workload.timeout", w.timeout, MS, HOUR, &mut out);
    count(
        "workload.operations",
        w.operations.len() as u64,
        0,
        MAX_OPERATIONS as u64,
        &mut out,
    );
    for (i, op) in w.operations.iter().enumerate() {
        count(
            &format!("workload.operations[{i}].weight"),
            u64::from(op.weight),
            0,
            1_000_000,
            &mut out,
        );
        for (j, e) in op.effects.iter().enumerate() {
            count(
                &format!("workload.operations[{i}].effects[{j}].count"),
                u64::from(e.count),
                0,
                10_000,
                &mut out,
            );
            let at = format!("workload.operations[{i}].effects[{j}]");
            opt_duration(&format!("{at}.within"), e.within, MS, DAY, &mut out);
            if let Some(n) = e.max_writes {
                count(
                    &format!("{at}.max_writes"),
                    u64::from(n),
                    1,
                    1_000_000,
                    &mut out,
                );
            }
        }
        count(
            &format!("workload.operations[{i}].steps"),
            op.steps.len() as u64,
            0,
            MAX_STEPS,
            &mut out,
        );
    }
    opt_duration(
        "abort.unhealthy_for",
        raw.abort.unhealthy_for,
        MS,
        MAX_DURATION,
        &mut out,
    );
    if let Some(d) = &raw.drain {
        opt_duration("drain.quiet", d.quiet, MS, 10 * MIN, &mut out);
        opt_duration("drain.max", d.max, Duration::ZERO, HOUR, &mut out);
    }
    for (i, slo) in raw.slos.iter().enumerate() {
        slo_bounds(&format!("slos[{i}]"), slo, &mut out);
    }
    out
}

fn slo_bounds(at: &str, slo: &RawSlo, out: &mut Vec<Found>) {
    let key = |k: &str| format!("{at}.{k}");
    match slo {
        RawSlo::Retry {
            max_attempts,
            min_gap,
            max_amplification,
            backoff_floor,
            ..
        } => {
            if let Some(m) = max_attempts {
                count(&key("max_attempts"), u64::from(*m), 1, 1_000, out);
            }
            opt_duration(&key("min_gap"), *min_gap, Duration::ZERO, 10 * MIN, out);
            opt_duration(
                &key("backoff_floor"),
                *backoff_floor,
                Duration::ZERO,
                10 * MIN,
                out,
            );
            if let Some(a) = max_amplification {
                number(&key("max_amplification"), *a, 1.0, 1_000.0, out);
            }
        }
        RawSlo::CircuitBreaker {
            after_failures,
            max_calls,
            probe_gap,
            resume_within,
            ..
        } => {
            count(
                &key("after_failures"),
                u64::from(*after_failures),
                1,
                1_000_000,
                out,
            );
            count(
                &key("max_calls"),
                u64::from(*max_calls),
                0,
                1_000_000_000,
                out,
            );
            opt_duration(&key("probe_gap"), *probe_gap, Duration::ZERO, HOUR, out);
            opt_duration(
                &key("resume_within"),
                *resume_within,
                Duration::ZERO,
                HOUR,
                out,
            );
        }
        RawSlo::Token {
            refresh_within_requests,
            max_refreshes_per_expiry,
        } => {
            count(
                &key("refresh_within_requests"),
                u64::from(*refresh_within_requests),
                0,
                1_000_000,
                out,
            );
            count(
                &key("max_refreshes_per_expiry"),
                u64::from(*max_refreshes_per_expiry),
                0,
                1_000_000,
                out,
            );
        }
        RawSlo::RateLimit {
            max_rate_while_limited,
        } => number(
            &key("max_rate_while_limited"),
            *max_rate_while_limited,
            0.0,
            1e6,
            out,
        ),
        RawSlo::Consistency {
            compensate_within, ..
        } => opt_duration(
            &key("compensate_within"),
            *compensate_within,
            Duration::ZERO,
            DAY,
            out,
        ),
        RawSlo::SchemaDrift {
            max_rejected_after_drift,
        } => count(
            &key("max_rejected_after_drift"),
            u64::from(*max_rejected_after_drift),
            0,
            1_000_000,
            out,
        ),
        RawSlo::Availability {
            p99,
            recover_within,
            ..
        } => {
            opt_duration(&key("p99"), *p99, Duration::ZERO, DAY, out);
            opt_duration(
                &key("recover_within"),
                *recover_within,
                Duration::ZERO,
                DAY,
                out,
            );
        }
    }
}
