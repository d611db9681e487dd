//! Checkers over what the SUT sent to its dependencies (the mocks' request records).

use std::collections::BTreeMap;

use crashcart_mocks::RequestRecord;

use super::{secs, SloResult, Verdict};
use crate::fault::model::kind_names;
use crate::fault::FaultEvent;
use crate::record::Timeline;
use crate::scenario::raw::RawSlo;

/// Two identical requests further apart than this are different logical operations.
pub const RETRY_WINDOW_US: u64 = 60_000_000;

fn failed(r: &RequestRecord) -> bool {
    r.status == 0 || r.status >= 400
}

/// Non-retryable answers: malformed or invalid requests (a retry cannot succeed).
pub fn non_retryable(r: &RequestRecord) -> bool {
    matches!(r.status, 400 | 404 | 405 | 422)
        && r.error_code.as_deref() != Some("UNABLE_TO_LOCK_ROW")
}

fn on_dependency<'a>(
    t: &'a Timeline,
    dep: Option<&'a str>,
) -> impl Iterator<Item = &'a RequestRecord> + 'a {
    t.requests().filter(move |r| {
        r.dependency.as_str() != "control" && dep.is_none_or(|d| r.dependency.as_str() == d)
    })
}

fn describe(r: &RequestRecord) -> String {
    format!(
        "#{} {} {} at {} → {}{}",
        r.seq,
        r.method,
        r.path,
        secs(r.at_us),
        r.status,
        r.error_code
            .as_deref()
            .map(|c| format!(" {c}"))
            .unwrap_or_default()
    )
}

/// Logical operations: identical requests (method, path, query, body and `Idempotency-Key`, when
/// the client sends one) retried after a failure within [`RETRY_WINDOW_US`] belong to one
/// operation. A request sent before the failed
/// answer went out cannot be its retry: it is another caller's identical request (two
/// lookups of one practitioner, say). For an attempt without an answer (status 0), that is
/// when the mock saw the connection end: a reset, or the client giving up (`CLIENT_CLOSED`).
pub fn logical_operations<'a>(
    requests: impl Iterator<Item = &'a RequestRecord>,
) -> Vec<Vec<&'a RequestRecord>> {
    type Key = (String, String, String, String, String);
    let mut open: BTreeMap<Key, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<&RequestRecord>> = vec![];
    for r in requests {
        let key = (
            r.method.clone(),
            r.path.clone(),
            r.query_digest.clone().unwrap_or_default(),
            r.body_digest.clone().unwrap_or_default(),
            r.idempotency_key.clone().unwrap_or_default(),
        );
        let joins = open.get(&key).and_then(|&g| {
            let last = groups[g].last()?;
            let answered_before = r.at_us >= last.at_us + last.latency_us;
            (failed(last)
                && answered_before
                && r.at_us.saturating_sub(last.at_us) <= RETRY_WINDOW_US)
                .then_some(g)
        });
        match joins {
            Some(g) => groups[g].push(r),
            None => {
                groups.push(vec![r]);
                open.insert(key, groups.len() - 1);
            }
        }
    }
    groups
}

/// `b` re-sends `a` with a new token after a 401: re-authentication, not a retry (no attempt
/// counted, no backoff owed: the new token is the remedy).
fn reauthenticated(a: &RequestRecord, b: &RequestRecord) -> bool {
    a.status == 401 && a.token_digest != b.token_digest
}

/// Gap from the end of an attempt to the start of the next, microseconds.
fn gap(a: &RequestRecord, b: &RequestRecord) -> u64 {
    b.at_us.saturating_sub(a.at_us + a.latency_us)
}

/// The retry SLO.
pub fn retry(t: &Timeline, slo: &RawSlo) -> SloResult {
    let RawSlo::Retry {
        dependency,
        max_attempts,
        min_gap,
        exponential,
        jitter,
        honour_retry_after,
        no_retry_of_non_retryable,
        max_amplification,
    } = slo
    else {
        unreachable!("dispatched by kind")
    };
    let name = format!(
        "retry{}",
        dependency
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    let mut target = vec![];
    if let Some(m) = max_attempts {
        target.push(format!("≤ {m} attempts"));
    }
    if let Some(g) = min_gap {
        target.push(format!("gaps ≥ {}", humantime::format_duration(*g)));
    }
    if *exponential {
        target.push("growing gaps".into());
    }
    if *jitter {
        target.push("jittered".into());
    }
    if *honour_retry_after {
        target.push("Retry-After honoured".into());
    }
    if *no_retry_of_non_retryable {
        target.push("no retry of 4xx".into());
    }
    if let Some(a) = max_amplification {
        target.push(format!("amplification ≤ {a}"));
    }
    let mut res = SloResult::new(name, target.join(", "));
    let network = network_windows(t, dependency.as_deref());
    let unseen = |r: &RequestRecord| hidden(&network, r);
    let groups = logical_operations(on_dependency(t, dependency.as_deref()));
    let calls: usize = groups.iter().map(Vec::len).sum();
    if calls == 0 {
        return res.skip("no calls to the dependency");
    }
    let amplification = calls as f64 / groups.len() as f64;
    let most = groups.iter().map(Vec::len).max().unwrap_or(0);
    res.measured = format!(
        "{} operations, {calls} calls, amplification {amplification:.2}, at most {most} attempts",
        groups.len()
    );
    // Mean gap per retry index, across operations (robust to jitter), and first-retry gaps.
    let mut by_index: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    let mut first_gaps = vec![];
    for g in &groups {
        if let Some(m) = max_attempts {
            // The re-send with a new token after a 401 is re-authentication, not a retry.
            let reauth = g.windows(2).filter(|w| reauthenticated(w[0], w[1])).count();
            if g.len() - reauth > *m as usize {
                res.fail(format!(
                    "{} attempts at {} {} (first {})",
                    g.len() - reauth,
                    g[0].method,
                    g[0].path,
                    describe(g[0])
                ));
            }
        }
        for (i, w) in g.windows(2).enumerate() {
            // A retry with a new token after 401 is re-authentication, not backoff: no gap
            // is owed (the new token is the remedy).
            if reauthenticated(w[0], w[1]) {
                continue;
            }
            let d = gap(w[0], w[1]);
            // Gaps measured at the mock include any network delay: under a network fault
            // they say little about the SUT's backoff (a fixed delay swamps the jitter).
            if !unseen(w[0]) && !unseen(w[1]) {
                if i == 0 {
                    first_gaps.push(d);
                }
                let e = by_index.entry(i).or_default();
                e.0 += d;
                e.1 += 1;
            }
            if let Some(mg) = min_gap {
                if d < mg.as_micros() as u64 {
                    res.fail(format!(
                        "retry after {} (< {}): {}",
                        secs(d),
                        humantime::format_duration(*mg),
                        describe(w[1])
                    ));
                }
            }
            if *honour_retry_after && matches!(w[0].status, 429 | 503) {
                if let Some(ra) = w[0].retry_after_ms {
                    let need = ra * 1000;
                    if d + 5_000 < need * 98 / 100 {
                        res.fail(format!(
                            "retried {} after Retry-After {}ms: {}",
                            secs(d),
                            ra,
                            describe(w[1])
                        ));
                    }
                }
            }
            // Under a network fault the SUT may never have seen that answer: its re-send is
            // a retry of a timeout, not of the 4xx.
            if *no_retry_of_non_retryable && non_retryable(w[0]) && !unseen(w[0]) {
                res.fail(format!(
                    "retried a non-retryable {}: {}",
                    w[0].status,
                    describe(w[1])
                ));
            }
        }
    }
    if *exponential {
        // Judged only on retry indexes seen at least 5 times: with jitter, the mean of one or
        // two gaps says nothing about growth.
        let means: Vec<(usize, f64)> = by_index
            .iter()
            .filter(|(_, (_, n))| *n >= 5)
            .map(|(i, (sum, n))| (*i, *sum as f64 / *n as f64))
            .collect();
        for w in means.windows(2) {
            if w[1].1 < w[0].1 * 0.9 {
                res.fail(format!("mean gap before retry {} is {} but before retry {} it was {}: gaps do not grow", w[1].0 + 1, secs(w[1].1 as u64), w[0].0 + 1, secs(w[0].1 as u64)));
            }
        }
    }
    if *jitter && first_gaps.len() >= 10 {
        // Synchronised retries: the middle half of the first-retry gaps within 10% of their
        // median. Jitter spreads them (full jitter: the middle half spans about the median);
        // the interquartile range ignores the few gaps a busy machine stretches. At least 10
        // gaps: with 5 full-jitter gaps the middle three fall within 10% by chance 2.7% of
        // the time (found by `crashcart explore`); with 10, about 0.01%.
        let mut g = first_gaps.clone();
        g.sort_unstable();
        let q = |p: f64| g[((g.len() - 1) as f64 * p).round() as usize] as f64;
        let (q1, med, q3) = (q(0.25), q(0.5), q(0.75));
        let spread = if med > 0.0 { (q3 - q1) / med } else { 0.0 };
        if spread < 0.1 {
            res.fail(format!(
                "first retries of {} operations are synchronised (gap {}, middle half within {:.1}%): no jitter",
                first_gaps.len(),
                secs(med as u64),
                spread * 100.0
            ));
        }
    }
    if let Some(a) = max_amplification {
        if amplification > *a {
            res.fail(format!("amplification {amplification:.2} > {a}"));
        }
    }
    res
}

/// Windows `[start, end)` during which a fault of one of `kinds` (or any kind when empty) was
/// active on `dependency` (or on every dependency); a fault that never ended lasts to `end`.
pub fn fault_windows(
    faults: &[&FaultEvent],
    dependency: Option<&str>,
    kinds: &[&str],
    end: u64,
) -> Vec<(u64, u64, String)> {
    let mut open: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    let mut out = vec![];
    for f in faults {
        let dep_ok = match (f.dependency, dependency) {
            (None, _) | (_, None) => true,
            (Some(fd), Some(d)) => {
                fd.as_mock().as_str() == d
                    || (d == "salesforce" && fd.as_mock().as_str() == "salesforce-auth")
            }
        };
        if !dep_ok || !(kinds.is_empty() || kinds.contains(&f.kind.as_str())) {
            continue;
        }
        match f.event.as_str() {
            "activated" | "flap-on" => {
                open.insert(f.id, (f.at_us, f.fault.clone()));
            }
            "removed" | "flap-off" => {
                if let Some((s, l)) = open.remove(&f.id) {
                    out.push((s, f.at_us, l));
                }
            }
            _ => {}
        }
    }
    out.extend(open.into_values().map(|(s, l)| (s, end, l)));
    out.sort();
    out
}

/// Faults whose failures a mock sees (network faults stop requests before they arrive).
/// Windows of network faults on `dependency` (all dependencies when `None`).
fn network_windows(t: &Timeline, dependency: Option<&str>) -> Vec<(u64, u64, String)> {
    let faults: Vec<&FaultEvent> = t.faults().collect();
    fault_windows(&faults, dependency, kind_names::NETWORK, t.end_us())
}

/// The mock's answer to `r` may not have reached the SUT when the mock sent it (a network fault
/// held or dropped it): a request sent during the fault may arrive, and be answered, after it.
fn hidden(network: &[(u64, u64, String)], r: &RequestRecord) -> bool {
    network
        .iter()
        .any(|(s, e, _)| r.at_us + r.latency_us >= *s && r.at_us < *e + NETWORK_SETTLE_US)
}

/// How long after a network fault a request sent during it may still arrive at the mock.
const NETWORK_SETTLE_US: u64 = 5_000_000;

const OUTAGE_KINDS: [&str; 6] = [
    "http_error",
    "connection_reset",
    "hang",
    "empty_response",
    "llm_overloaded",
    "reset_mid_body",
];

/// The circuit-breaker SLO.
pub fn circuit_breaker(t: &Timeline, slo: &RawSlo) -> SloResult {
    let RawSlo::CircuitBreaker {
        dependency,
        after_failures,
        max_calls,
        probe_gap,
        resume_within,
    } = slo
    else {
        unreachable!("dispatched by kind")
    };
    let mut res = SloResult::new(
        format!("circuit_breaker ({dependency})"),
        format!(
            "after {after_failures} failures ≤ {max_calls} calls per outage{}{}",
            probe_gap
                .map(|g| format!(", probes ≥ {} apart", humantime::format_duration(g)))
                .unwrap_or_default(),
            resume_within
                .map(|g| format!(", traffic resumes within {}", humantime::format_duration(g)))
                .unwrap_or_default()
        ),
    );
    let faults: Vec<&FaultEvent> = t.faults().collect();
    let windows = fault_windows(&faults, Some(dependency), &OUTAGE_KINDS, t.end_us());
    if windows.is_empty() {
        let network = fault_windows(&faults, Some(dependency), &[], t.end_us()).len();
        return res.skip(if network > 0 {
            "only network faults on this dependency: their calls never reach the mock (not checked yet)".to_string()
        } else {
            "no outage of the dependency".to_string()
        });
    }
    let reqs: Vec<&RequestRecord> = on_dependency(t, Some(dependency)).collect();
    let mut worst = 0usize;
    for (start, end, label) in &windows {
        let (a, b) = (
            reqs.partition_point(|r| r.at_us < *start),
            reqs.partition_point(|r| r.at_us < *end),
        );
        let inside: Vec<&&RequestRecord> = reqs[a..b].iter().collect();
        // Calls made while the last `after_failures` outcomes the SUT had seen were all
        // failures: a breaker should have been open then. An outcome is seen when its answer
        // went out (a hung call: when the client gave up), not when the call arrived; calls
        // already in flight could not know. A success shows the dependency answering (a
        // partial outage, or a probe that closed the breaker) and starts the count again.
        let mut moments: Vec<(u64, u64, bool, &RequestRecord)> = inside
            .iter()
            .flat_map(|r| {
                [
                    (r.at_us, r.seq, false, **r),
                    (r.at_us + r.latency_us, r.seq, true, **r),
                ]
            })
            .collect();
        moments.sort_by_key(|(at, seq, seen, _)| (*at, *seq, *seen));
        let mut failures = 0u32;
        let mut after = vec![];
        for (_, _, seen, r) in moments {
            if !seen {
                if failures >= *after_failures {
                    after.push(r);
                }
            } else if failed(r) {
                failures += 1;
            } else {
                failures = 0;
            }
        }
        worst = worst.max(after.len());
        if after.len() > *max_calls as usize {
            res.fail(format!(
                "{label} ({}–{}): {} calls after {after_failures} failures (first {})",
                secs(*start),
                secs(*end),
                after.len(),
                describe(after[0])
            ));
        }
        if let Some(pg) = probe_gap {
            for w in after.windows(2) {
                if w[1].at_us - w[0].at_us < pg.as_micros() as u64 {
                    res.fail(format!(
                        "{label}: probes {} apart: {}",
                        secs(w[1].at_us - w[0].at_us),
                        describe(w[1])
                    ));
                    break;
                }
            }
        }
        if let Some(rw) = resume_within {
            if *end < t.end_us() {
                let back = reqs[b..].iter().find(|r| (200..300).contains(&r.status));
                match back {
                    Some(r) if r.at_us - end > rw.as_micros() as u64 => res.fail(format!(
                        "{label}: traffic resumed {} after the outage",
                        secs(r.at_us - end)
                    )),
                    None if reqs
                        .last()
                        .is_some_and(|r| r.at_us >= *end + rw.as_micros() as u64) =>
                    {
                        res.fail(format!("{label}: no successful call after the outage"))
                    }
                    _ => {}
                }
            }
        }
    }
    res.measured = format!(
        "{} outage(s), at most {worst} calls after the breaker should open",
        windows.len()
    );
    res
}

fn is_auth_success(r: &RequestRecord) -> bool {
    matches!(r.operation.as_str(), "oauth.token" | "soap.login") && r.status == 200
}

/// The pause after a refused login beyond which the next login is a retry, not part of a
/// storm (a workload's callers logging in one after another come far closer).
const REFUSED_LOGIN_PAUSE_US: u64 = 250_000;

/// The token SLO.
pub fn token(t: &Timeline, slo: &RawSlo) -> SloResult {
    let RawSlo::Token {
        refresh_within_requests,
        max_refreshes_per_expiry,
    } = slo
    else {
        unreachable!("dispatched by kind")
    };
    let mut res = SloResult::new("token", format!("new token within {refresh_within_requests} requests of INVALID_SESSION_ID, ≤ {max_refreshes_per_expiry} token requests per expiry, no reuse of a dead token"));
    let reqs: Vec<&RequestRecord> = t
        .requests()
        .filter(|r| r.dependency.as_str().starts_with("salesforce"))
        .collect();
    let expiries: Vec<&FaultEvent> = t
        .faults()
        .filter(|f| {
            f.event == "activated"
                && matches!(f.kind.as_str(), "expire_tokens" | "revoke_refresh_tokens")
        })
        .collect();
    let invalid: Vec<usize> = reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code.as_deref() == Some("INVALID_SESSION_ID"))
        .map(|(i, _)| i)
        .collect();
    if invalid.is_empty() && expiries.is_empty() {
        return res.skip("no session expired");
    }
    let mut worst_delay = 0usize;
    let mut dead: Vec<(String, u64)> = vec![];
    // A token answer a network fault may have held or cut may never have reached the SUT.
    let network = network_windows(t, Some("salesforce"));
    for &i in &invalid {
        let r = reqs[i];
        // Recovered when a new token is obtained, or when the next call already carries one
        // (another caller renewed it while this one was in flight: single flight at work).
        let renewed = |x: &&RequestRecord| {
            is_auth_success(x)
                || (x.dependency.as_str() == "salesforce"
                    && x.token_digest.is_some()
                    && x.token_digest != r.token_digest
                    && x.status < 400)
        };
        match reqs[i + 1..].iter().position(renewed) {
            Some(p) => {
                // Requests sent once the 401 was out: those in flight already could not know.
                let told = r.at_us + r.latency_us;
                // Nor those a network fault may have held: sent earlier than they arrived.
                let data_between = reqs[i + 1..i + 1 + p]
                    .iter()
                    .filter(|x| x.dependency.as_str() == "salesforce" && x.at_us >= told)
                    .filter(|x| !hidden(&network, x))
                    .count();
                worst_delay = worst_delay.max(data_between);
                if data_between > *refresh_within_requests as usize {
                    res.fail(format!(
                        "{data_between} requests before a new token after {}",
                        describe(r)
                    ));
                }
                // The dead token is judged from when the SUT surely had another: a token
                // answer it surely got, or a call carrying a new token.
                let surely =
                    |x: &&RequestRecord| renewed(x) && !(is_auth_success(x) && hidden(&network, x));
                if let (Some(d), Some(q)) =
                    (&r.token_digest, reqs[i + 1..].iter().copied().find(surely))
                {
                    dead.push((d.clone(), q.at_us));
                }
            }
            None => {
                if reqs[i + 1..]
                    .iter()
                    .any(|x| x.dependency.as_str() == "salesforce")
                {
                    res.fail(format!("never obtained a new token after {}", describe(r)));
                }
            }
        }
    }
    // One pass: a request carrying a token after the moment it was replaced.
    let mut replaced: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    for (digest, since) in &dead {
        let e = replaced.entry(digest.as_str()).or_insert(*since);
        *e = (*e).min(*since);
    }
    for r in &reqs {
        let Some(d) = r.token_digest.as_deref() else {
            continue;
        };
        // A request a network fault may have held was sent earlier than it arrived: maybe
        // before the new token.
        if hidden(&network, r) {
            continue;
        }
        if replaced.get(d).is_some_and(|since| r.at_us > *since) {
            res.fail(format!(
                "a dead token was used again after a new one was obtained: {}",
                describe(r)
            ));
            replaced.remove(d);
        }
    }
    let mut worst_refreshes = 0usize;
    // A token request whose answer a network fault may have held or cut got the SUT no token:
    // asking again is a retry, not a storm.
    for (k, e) in expiries.iter().enumerate() {
        let until = expiries
            .get(k + 1)
            .map(|n| n.at_us)
            .unwrap_or(u64::MAX)
            .min(e.at_us + 60_000_000);
        let (a, b) = (
            reqs.partition_point(|r| r.at_us < e.at_us),
            reqs.partition_point(|r| r.at_us < until),
        );
        let logins: Vec<&&RequestRecord> = reqs[a..b]
            .iter()
            .filter(|r| matches!(r.operation.as_str(), "oauth.token" | "soap.login"))
            .collect();
        // A login the token endpoint refused, tried again after a pause, is backing off, not
        // storming: a long refusal outlasts any fixed count (found by explore).
        let n = logins
            .iter()
            .enumerate()
            .filter(|(j, r)| {
                let refused_before = *j > 0 && (400..500).contains(&logins[j - 1].status);
                let paused = *j > 0 && r.at_us >= logins[j - 1].at_us + REFUSED_LOGIN_PAUSE_US;
                !(refused_before && paused)
            })
            .filter(|(_, r)| !hidden(&network, r))
            .count();
        worst_refreshes = worst_refreshes.max(n);
        if n > *max_refreshes_per_expiry as usize {
            res.fail(format!(
                "{n} token requests after the expiry at {} ({}): a refresh storm",
                secs(e.at_us),
                e.fault
            ));
        }
    }
    res.measured = format!("{} INVALID_SESSION_ID, at most {worst_delay} requests before a new token, at most {worst_refreshes} token requests per expiry", invalid.len());
    res
}

fn is_limit(r: &RequestRecord) -> bool {
    r.status == 429
        || (r.status == 403 && r.error_code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED"))
        || (r.status == 503 && r.retry_after_ms.is_some())
}

/// The rate-limit SLO.
pub fn rate_limit(t: &Timeline, slo: &RawSlo) -> SloResult {
    let RawSlo::RateLimit {
        max_rate_while_limited,
    } = slo
    else {
        unreachable!("dispatched by kind")
    };
    let mut res = SloResult::new(
        "rate_limit",
        format!("≤ {max_rate_while_limited} requests/s while limited"),
    );
    let mut worst = 0.0f64;
    let mut periods = 0;
    for dep in ["salesforce", "llm"] {
        let reqs: Vec<&RequestRecord> = on_dependency(t, Some(dep)).collect();
        let network = network_windows(t, Some(dep));
        let mut i = 0;
        while i < reqs.len() {
            // A limit answer a network fault may have held tells nothing of when the SUT
            // learnt of the limit: the period starts at one it surely saw.
            if !is_limit(reqs[i]) || hidden(&network, reqs[i]) {
                i += 1;
                continue;
            }
            // The SUT learns of the limit when the answer goes out: requests already sent
            // (held by a slow network, say) could not know. Limited until a request sent
            // since then gets any other answer (a 404 or a validation error shows the limit
            // gone as well as a success does).
            let start = reqs[i].at_us + reqs[i].latency_us;
            let from = reqs.partition_point(|r| r.at_us < start).max(i + 1);
            let end_idx = reqs[from..]
                .iter()
                .position(|r| r.status != 0 && !is_limit(r))
                .map(|p| from + p)
                .unwrap_or(reqs.len());
            let end = reqs
                .get(end_idx)
                .map(|r| r.at_us)
                .unwrap_or(t.end_us().max(start));
            let count = 1 + end_idx - from;
            let secs_limited = ((end - start) as f64 / 1e6).max(1.0);
            let rate = count as f64 / secs_limited;
            periods += 1;
            worst = worst.max(rate);
            if rate > *max_rate_while_limited {
                res.fail(format!("{dep}: {count} requests in {secs_limited:.1}s while limited ({rate:.1}/s), from {}", describe(reqs[i])));
            }
            i = end_idx.max(i + 1);
        }
    }
    if periods == 0 {
        return res.skip("never rate limited");
    }
    res.measured = format!("{periods} limited period(s), at most {worst:.1} requests/s");
    res
}

/// The refusals a drift of this kind causes. A window is judged by its own kind's refusals
/// only: a retired API version's 410s inside a renamed field's window are not the SUT
/// resending the renamed field (found by explore).
fn rejected_by(kind: &str) -> &'static [&'static str] {
    match kind {
        "required_field_added" => &["REQUIRED_FIELD_MISSING"],
        "picklist_value_withdrawn" => &["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"],
        "api_version_retired" => &["UNSUPPORTED_API_VERSION"],
        // field_renamed, field_removed, field_type_changed
        _ => &["INVALID_FIELD", "INVALID_TYPE"],
    }
}

/// The schema-drift SLO.
pub fn schema_drift(t: &Timeline, slo: &RawSlo) -> SloResult {
    let RawSlo::SchemaDrift {
        max_rejected_after_drift,
    } = slo
    else {
        unreachable!("dispatched by kind")
    };
    let mut res = SloResult::new(
        "schema_drift",
        format!("≤ {max_rejected_after_drift} rejected requests after the first, per drift"),
    );
    let faults: Vec<&FaultEvent> = t.faults().collect();
    let windows: Vec<(u64, u64, String, &[&str])> = kind_names::SCHEMA_DRIFT
        .iter()
        .flat_map(|kind| {
            fault_windows(&faults, None, &[kind], t.end_us())
                .into_iter()
                .map(|(s, e, l)| (s, e, l, rejected_by(kind)))
        })
        .collect();
    if windows.is_empty() {
        return res.skip("no schema drift");
    }
    let all: Vec<&RequestRecord> = t.requests().collect();
    let network = network_windows(t, None);
    let mut worst = 0;
    for (start, end, label, codes) in windows {
        let (a, b) = (
            all.partition_point(|r| r.at_us < start),
            all.partition_point(|r| r.at_us < end),
        );
        let rejected: Vec<&RequestRecord> = all[a..b]
            .iter()
            .copied()
            .filter(|r| r.error_code.as_deref().is_some_and(|c| codes.contains(&c)))
            .collect();
        // After the first rejection the SUT surely saw went out (not one a network fault may
        // have held): requests already sent could not know.
        let after_first = rejected
            .iter()
            .position(|r| !hidden(&network, r))
            .map(|k| {
                let told = rejected[k].at_us + rejected[k].latency_us;
                rejected[k + 1..].iter().filter(|r| r.at_us >= told).count()
            })
            .unwrap_or(0);
        worst = worst.max(after_first);
        if after_first > *max_rejected_after_drift as usize {
            res.fail(format!("{label}: {after_first} rejected requests sent after the first rejection (the SUT kept sending what the org refuses), last {}", describe(rejected[rejected.len() - 1])));
        }
    }
    res.measured = format!("at most {worst} rejected requests after the first");
    if res.verdict == Verdict::Pass && worst == 0 {
        res.measured.push_str(" (failed fast or adapted)");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::DependencyName;
    use crate::record::Event;
    use crashcart_mocks::Dependency;

    pub(crate) fn req(
        seq: u64,
        at_ms: u64,
        dep: Dependency,
        op: &str,
        path: &str,
        status: u16,
    ) -> RequestRecord {
        RequestRecord {
            seq,
            dependency: dep,
            at_us: at_ms * 1000,
            latency_us: 1000,
            method: "POST".into(),
            path: path.into(),
            operation: op.into(),
            sobject: None,
            record: None,
            status,
            error_code: None,
            client_id: None,
            user: None,
            token_digest: Some("tok-a".into()),
            body_digest: Some("body".into()),
            query_digest: None,
            idempotency_key: None,
            body_len: 10,
            fault: None,
            retry_count: None,
            retry_after_ms: None,
            llm: None,
        }
    }

    fn fault(id: u64, at_ms: u64, kind: &str, dep: Option<DependencyName>, event: &str) -> Event {
        Event::Fault(FaultEvent {
            at_us: at_ms * 1000,
            id,
            fault: format!("f{id}"),
            kind: kind.into(),
            dependency: dep,
            event: event.into(),
        })
    }

    fn tl(reqs: Vec<RequestRecord>, more: Vec<Event>) -> Timeline {
        Timeline::merge(
            reqs.into_iter()
                .map(|r| Event::Request(Box::new(r)))
                .chain(more)
                .collect(),
        )
    }

    fn retry_slo() -> RawSlo {
        RawSlo::Retry {
            dependency: Some("salesforce".into()),
            max_attempts: Some(3),
            min_gap: Some(std::time::Duration::from_millis(50)),
            exponential: true,
            jitter: true,
            honour_retry_after: true,
            no_retry_of_non_retryable: true,
            max_amplification: Some(3.5),
        }
    }

    /// `n` operations, each failing `fails` times with the given gaps before succeeding.
    fn retried(n: u64, gaps_ms: &[u64], jitter_ms: u64) -> Vec<RequestRecord> {
        let mut out = vec![];
        let mut seq = 0;
        for k in 0..n {
            let mut at = k * 10_000;
            let path = format!("/services/data/v59.0/sobjects/Contact/{k}");
            for (i, g) in gaps_ms.iter().enumerate() {
                out.push(req(
                    seq,
                    at,
                    Dependency::Salesforce,
                    "sobject.update",
                    &path,
                    503,
                ));
                seq += 1;
                at += 1 + g + if i == 0 { k * jitter_ms } else { 0 };
            }
            out.push(req(
                seq,
                at,
                Dependency::Salesforce,
                "sobject.update",
                &path,
                204,
            ));
            seq += 1;
        }
        out
    }

    #[test]
    fn a_4xx_hidden_by_a_network_fault_may_be_retried() {
        let v = || {
            let mut v = retried(1, &[100], 0);
            v[0].status = 404;
            v
        };
        let r = retry(&tl(v(), vec![]), &retry_slo());
        assert!(
            r.evidence.iter().any(|e| e.contains("non-retryable 404")),
            "{r:?}"
        );
        // The answer went out during network latency: the SUT saw a timeout, not the 404.
        let slow = |event: &str, at| {
            fault(
                1,
                at,
                "network_latency",
                Some(DependencyName::Salesforce),
                event,
            )
        };
        let r = retry(
            &tl(v(), vec![slow("activated", 0), slow("removed", 5)]),
            &retry_slo(),
        );
        assert!(
            !r.evidence.iter().any(|e| e.contains("non-retryable")),
            "{r:?}"
        );
    }

    #[test]
    fn a_resend_after_reauthentication_is_not_an_attempt() {
        // Two failures, a 401, the re-send with a new token: three attempts, within 3.
        let mut v = retried(1, &[100, 300, 500], 0);
        v[2].status = 401;
        v[3].token_digest = Some("tok-b".into());
        let r = retry(&tl(v.clone(), vec![]), &retry_slo());
        assert!(!r.evidence.iter().any(|e| e.contains("attempts")), "{r:?}");
        // With the old token it is a fourth attempt.
        v[3].token_digest = v[2].token_digest.clone();
        let r = retry(&tl(v, vec![]), &retry_slo());
        assert!(r.evidence.iter().any(|e| e.contains("4 attempts")), "{r:?}");
    }

    #[test]
    fn a_concurrent_identical_request_is_not_a_retry() {
        // Caller A's query gets a slow 401; caller B sends the same query meanwhile: two
        // operations of one attempt each, no retry without a gap. Sent after the 401 went
        // out, the same request is a retry, and an immediate one.
        let mut a = req(0, 100, Dependency::Salesforce, "query", "/query", 401);
        a.latency_us = 900_000;
        let b = req(1, 200, Dependency::Salesforce, "query", "/query", 401);
        let groups = logical_operations([&a, &b].into_iter());
        assert_eq!(groups.len(), 2);
        let r = retry(&tl(vec![a.clone(), b], vec![]), &retry_slo());
        assert!(
            !r.evidence.iter().any(|e| e.contains("retry after")),
            "{r:?}"
        );
        let c = req(1, 1000, Dependency::Salesforce, "query", "/query", 401);
        let groups = logical_operations([&a, &c].into_iter());
        assert_eq!(groups.len(), 1);
        let r = retry(&tl(vec![a, c], vec![]), &retry_slo());
        assert!(
            r.evidence.iter().any(|e| e.contains("retry after")),
            "{r:?}"
        );
    }

    #[test]
    fn retry_passes_on_backoff_with_jitter_and_fails_on_each_defect() {
        let good = tl(retried(10, &[100, 300], 13), vec![]);
        let r = retry(&good, &retry_slo());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // No backoff: immediate retries.
        let r = retry(&tl(retried(5, &[0, 0], 0), vec![]), &retry_slo());
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.evidence.iter().any(|e| e.contains("< 50ms")), "{r:?}");
        // No jitter: everyone retries in lock step.
        let r = retry(&tl(retried(10, &[100, 300], 0), vec![]), &retry_slo());
        assert!(r.evidence.iter().any(|e| e.contains("no jitter")), "{r:?}");
        // Nine first retries are too few to tell lock step from chance.
        let r = retry(&tl(retried(9, &[100, 300], 0), vec![]), &retry_slo());
        assert!(!r.evidence.iter().any(|e| e.contains("no jitter")), "{r:?}");
        // Shrinking gaps, too many attempts.
        let r = retry(&tl(retried(5, &[300, 100, 100], 7), vec![]), &retry_slo());
        assert!(
            r.evidence.iter().any(|e| e.contains("do not grow")),
            "{r:?}"
        );
        assert!(r.evidence.iter().any(|e| e.contains("4 attempts")), "{r:?}");
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("amplification 4.00 > 3.5")),
            "{r:?}"
        );
        // Retry-After ignored.
        let mut reqs = retried(1, &[100], 0);
        reqs[0].status = 429;
        reqs[0].retry_after_ms = Some(2000);
        let r = retry(&tl(reqs, vec![]), &retry_slo());
        assert!(
            r.evidence.iter().any(|e| e.contains("Retry-After 2000ms")),
            "{r:?}"
        );
        // A 400 retried.
        let mut reqs = retried(1, &[100], 0);
        reqs[0].status = 400;
        reqs[0].error_code = Some("INVALID_FIELD".into());
        let r = retry(&tl(reqs, vec![]), &retry_slo());
        assert!(
            r.evidence.iter().any(|e| e.contains("non-retryable 400")),
            "{r:?}"
        );
        // A 401 followed at once by the same request with a new token is re-authentication,
        // not a retry owed a backoff (found by `crashcart explore`); with the same token it is.
        let mut reqs = retried(1, &[0], 0);
        reqs[0].status = 401;
        reqs[1].token_digest = Some("tok-b".into());
        assert_eq!(
            retry(&tl(reqs.clone(), vec![]), &retry_slo()).verdict,
            Verdict::Pass
        );
        reqs[1].token_digest = reqs[0].token_digest.clone();
        assert_eq!(
            retry(&tl(reqs, vec![]), &retry_slo()).verdict,
            Verdict::Fail
        );
        // No traffic: nothing to judge.
        assert_eq!(
            retry(&tl(vec![], vec![]), &retry_slo()).verdict,
            Verdict::Skip
        );
    }

    #[test]
    fn token_catches_no_refresh_storms_and_reuse() {
        let slo = RawSlo::Token {
            refresh_within_requests: 2,
            max_refreshes_per_expiry: 2,
        };
        let sf = |s, at, st| {
            req(
                s,
                at,
                Dependency::Salesforce,
                "query",
                "/services/data/v59.0/query",
                st,
            )
        };
        let auth = |s, at| {
            req(
                s,
                at,
                Dependency::SalesforceAuth,
                "oauth.token",
                "/services/oauth2/token",
                200,
            )
        };
        let expired = |s, at| {
            let mut r = sf(s, at, 401);
            r.error_code = Some("INVALID_SESSION_ID".into());
            r
        };
        let expiry = fault(1, 50, "expire_tokens", None, "activated");
        // Good: one 401, one refresh, new token used.
        let mut after = sf(3, 120, 200);
        after.token_digest = Some("tok-b".into());
        let good = tl(
            vec![sf(0, 10, 200), expired(1, 100), auth(2, 110), after],
            vec![expiry.clone()],
        );
        assert_eq!(
            token(&good, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            token(&good, &slo)
        );
        // Also good: another caller had renewed the token while this call was in flight, and
        // the retry carries the new one (no token request after the 401; found by explore).
        let mut renewed = sf(3, 120, 200);
        renewed.token_digest = Some("tok-b".into());
        let early = tl(
            vec![auth(0, 90), expired(1, 100), renewed],
            vec![expiry.clone()],
        );
        assert_eq!(
            token(&early, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            token(&early, &slo)
        );
        // Also good: a slow 401 (answered 50 ms after it arrived); the three requests sent
        // before it went out could not know the session was dead. Sent after, they count.
        let mut slow = expired(1, 100);
        slow.latency_us = 50_000;
        let mut renewed = sf(6, 160, 200);
        renewed.token_digest = Some("tok-b".into());
        let in_flight = |at: [u64; 3]| {
            tl(
                vec![
                    slow.clone(),
                    sf(2, at[0], 200),
                    sf(3, at[1], 200),
                    sf(4, at[2], 200),
                    auth(5, 155),
                    renewed.clone(),
                ],
                vec![expiry.clone()],
            )
        };
        assert_eq!(
            token(&in_flight([110, 120, 130]), &slo).verdict,
            Verdict::Pass
        );
        assert_eq!(
            token(&in_flight([150, 151, 152]), &slo).verdict,
            Verdict::Fail
        );
        // Unless a network fault may have held them: sent before they arrived, maybe before
        // the 401 went out (found by explore with network latency and a slicer).
        let held = tl(
            vec![
                slow.clone(),
                sf(2, 150, 200),
                sf(3, 151, 200),
                sf(4, 152, 200),
                auth(5, 155),
                renewed.clone(),
            ],
            vec![
                expiry.clone(),
                fault(
                    7,
                    90,
                    "network_latency",
                    Some(DependencyName::Salesforce),
                    "activated",
                ),
            ],
        );
        assert_eq!(
            token(&held, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            token(&held, &slo)
        );
        // No refresh: it keeps failing.
        let bad = tl(
            vec![expired(1, 100), expired(2, 110), expired(3, 120)],
            vec![expiry.clone()],
        );
        let r = token(&bad, &slo);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("never obtained a new token")),
            "{r:?}"
        );
        // Refused logins: tried again at the workload's pace, a storm; backing off, not.
        let refused = |s, at| {
            req(
                s,
                at,
                Dependency::SalesforceAuth,
                "oauth.token",
                "/services/oauth2/token",
                400,
            )
        };
        let logins = |gap: u64| {
            let mut v = vec![expired(1, 100)];
            v.extend((0..4).map(|i| refused(2 + i, 101 + i * gap)));
            v.push(auth(6, 101 + 4 * gap));
            tl(v, vec![expiry.clone()])
        };
        let r = token(&logins(100), &slo);
        assert!(
            r.evidence.iter().any(|e| e.contains("refresh storm")),
            "{r:?}"
        );
        let r = token(&logins(500), &slo);
        assert!(
            !r.evidence.iter().any(|e| e.contains("refresh storm")),
            "{r:?}"
        );
        // A storm: five token requests for one expiry; and the dead token used again.
        let mut reqs = vec![expired(1, 100)];
        for i in 0..5 {
            reqs.push(auth(2 + i, 101 + i));
        }
        reqs.push(sf(9, 200, 401));
        let r = token(&tl(reqs.clone(), vec![expiry.clone()]), &slo);
        assert!(
            r.evidence.iter().any(|e| e.contains("refresh storm")),
            "{r:?}"
        );
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("dead token was used again")),
            "{r:?}"
        );
        // The same token requests while a network fault cut Salesforce's answers: retries of
        // a login whose token never arrived, not a storm (found by explore with limit_data).
        let cut = fault(
            2,
            90,
            "limit_data",
            Some(DependencyName::Salesforce),
            "activated",
        );
        let r = token(&tl(reqs.clone(), vec![expiry.clone(), cut.clone()]), &slo);
        assert!(
            !r.evidence.iter().any(|e| e.contains("refresh storm")),
            "{r:?}"
        );
        // Nor is the dead token sent again while every new token's answer may have been cut,
        // or a request with it held by the network until after the new token, "used after a
        // new one was obtained" (both found by explore).
        let reuse = vec![expired(1, 100), auth(2, 110), expired(3, 150)];
        let r = token(&tl(reuse.clone(), vec![expiry.clone()]), &slo);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("dead token was used again")),
            "{r:?}"
        );
        let r = token(&tl(reuse, vec![expiry.clone(), cut]), &slo);
        assert!(
            !r.evidence
                .iter()
                .any(|e| e.contains("dead token was used again")),
            "{r:?}"
        );
        let mut renewed = sf(3, 120, 200);
        renewed.token_digest = Some("tok-b".into());
        let held = vec![expired(1, 100), auth(2, 110), renewed, sf(4, 150, 401)];
        let slow = fault(
            3,
            90,
            "network_latency",
            Some(DependencyName::Salesforce),
            "activated",
        );
        let r = token(&tl(held.clone(), vec![expiry.clone()]), &slo);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("dead token was used again")),
            "{r:?}"
        );
        let r = token(&tl(held, vec![expiry.clone(), slow]), &slo);
        assert!(
            !r.evidence
                .iter()
                .any(|e| e.contains("dead token was used again")),
            "{r:?}"
        );
        assert_eq!(
            token(&tl(vec![sf(0, 1, 200)], vec![]), &slo).verdict,
            Verdict::Skip
        );
    }

    #[test]
    fn circuit_breaker_counts_calls_during_an_outage() {
        let slo = RawSlo::CircuitBreaker {
            dependency: "salesforce".into(),
            after_failures: 3,
            max_calls: 2,
            probe_gap: None,
            resume_within: Some(std::time::Duration::from_secs(2)),
        };
        let sf = |s, at, st| {
            req(
                s,
                at,
                Dependency::Salesforce,
                "query",
                &format!("/q/{s}"),
                st,
            )
        };
        let outage = vec![
            fault(
                1,
                1000,
                "http_error",
                Some(DependencyName::Salesforce),
                "activated",
            ),
            fault(
                1,
                5000,
                "http_error",
                Some(DependencyName::Salesforce),
                "removed",
            ),
        ];
        // Breaker opens after 3 failures: one probe, then traffic resumes.
        let good = tl(
            vec![
                sf(0, 1100, 503),
                sf(1, 1200, 503),
                sf(2, 1300, 503),
                sf(3, 3000, 503),
                sf(4, 5500, 200),
            ],
            outage.clone(),
        );
        assert_eq!(
            circuit_breaker(&good, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            circuit_breaker(&good, &slo)
        );
        // No breaker: it hammers the dependency.
        let hammer: Vec<_> = (0..40)
            .map(|i| sf(i, 1000 + i * 100, 503))
            .chain([sf(99, 5100, 200)])
            .collect();
        let r = circuit_breaker(&tl(hammer, outage.clone()), &slo);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.evidence[0].contains("calls after 3 failures"), "{r:?}");
        // Hung calls, given up on after 2 s: the ten sent in the first second could not
        // know of a failure yet. Two more after the failures were seen are allowed; three
        // are not.
        let hung = |extra: u64| {
            let mut v: Vec<_> = (0..10)
                .map(|i| {
                    let mut r = sf(i, 1000 + i * 100, 0);
                    r.latency_us = 2_000_000;
                    r
                })
                .collect();
            v.extend((0..extra).map(|k| sf(20 + k, 3500 + k * 100, 503)));
            v.push(sf(99, 5500, 200));
            tl(v, outage.clone())
        };
        assert_eq!(circuit_breaker(&hung(2), &slo).verdict, Verdict::Pass);
        assert_eq!(circuit_breaker(&hung(3), &slo).verdict, Verdict::Fail);
        // A fault that never ended lasts to the end of the timeline.
        let endless = tl(
            (0..10).map(|i| sf(i, 1000 + i * 100, 503)).collect(),
            vec![outage[0].clone()],
        );
        assert_eq!(circuit_breaker(&endless, &slo).verdict, Verdict::Fail);
        assert_eq!(
            circuit_breaker(&tl(vec![sf(0, 1, 200)], vec![]), &slo).verdict,
            Verdict::Skip
        );
    }

    #[test]
    fn rate_limit_and_schema_drift() {
        let slo = RawSlo::RateLimit {
            max_rate_while_limited: 2.0,
        };
        let sf = |s, at, st| {
            req(
                s,
                at,
                Dependency::Salesforce,
                "query",
                &format!("/q/{s}"),
                st,
            )
        };
        let calm = tl(
            vec![sf(0, 0, 429), sf(1, 1000, 429), sf(2, 2500, 200)],
            vec![],
        );
        assert_eq!(rate_limit(&calm, &slo).verdict, Verdict::Pass);
        let storm: Vec<_> = (0..20)
            .map(|i| sf(i, i * 50, 429))
            .chain([sf(50, 2000, 200)])
            .collect();
        assert_eq!(rate_limit(&tl(storm, vec![]), &slo).verdict, Verdict::Fail);
        assert_eq!(
            rate_limit(&tl(vec![sf(0, 0, 200)], vec![]), &slo).verdict,
            Verdict::Skip
        );
        // Ten requests held by a slow network, all refused when they arrive; the SUT learns
        // of the limit only when the first refusal goes out (at 1 s), and after that it
        // sends once a second (calm) or keeps going (a storm).
        let held = |after: &[u64]| {
            let mut v: Vec<_> = (0..10)
                .map(|i| {
                    let mut r = sf(i, i * 50, 429);
                    r.latency_us = 1_000_000 - i * 50_000;
                    r
                })
                .collect();
            v.extend(
                after
                    .iter()
                    .enumerate()
                    .map(|(k, at)| sf(20 + k as u64, *at, 429)),
            );
            v.push(sf(99, 3500, 200));
            tl(v, vec![])
        };
        assert_eq!(
            rate_limit(&held(&[2000, 3000]), &slo).verdict,
            Verdict::Pass
        );
        assert_eq!(
            rate_limit(&held(&[1100, 1200, 1300, 1400, 1500, 1600]), &slo).verdict,
            Verdict::Fail
        );

        let slo = RawSlo::SchemaDrift {
            max_rejected_after_drift: 1,
        };
        let drift = vec![fault(
            1,
            100,
            "field_removed",
            Some(DependencyName::Salesforce),
            "activated",
        )];
        let rejected = |s, at| {
            let mut r = sf(s, at, 400);
            r.error_code = Some("INVALID_FIELD".into());
            r
        };
        let adapts = tl(vec![rejected(0, 200), sf(1, 300, 201)], drift.clone());
        assert_eq!(schema_drift(&adapts, &slo).verdict, Verdict::Pass);
        let stubborn = tl(
            (0..6).map(|i| rejected(i, 200 + i * 10)).collect(),
            drift.clone(),
        );
        assert_eq!(schema_drift(&stubborn, &slo).verdict, Verdict::Fail);
        // The same six, answered slowly: the first rejection went out after all were sent.
        let in_flight = tl(
            (0..6)
                .map(|i| {
                    let mut r = rejected(i, 200 + i * 10);
                    r.latency_us = 100_000;
                    r
                })
                .collect(),
            drift.clone(),
        );
        assert_eq!(schema_drift(&in_flight, &slo).verdict, Verdict::Pass);
        // A retired API version's refusals inside the removed field's window are another
        // drift's, judged in that drift's own window (found by explore).
        let retired = |s, at| {
            let mut r = sf(s, at, 410);
            r.error_code = Some("UNSUPPORTED_API_VERSION".into());
            r
        };
        let mut v = vec![rejected(0, 200), sf(1, 300, 201)];
        v.extend((2..7).map(|i| retired(i, 400 + i * 10)));
        assert_eq!(
            schema_drift(&tl(v.clone(), drift.clone()), &slo).verdict,
            Verdict::Pass
        );
        let mut both = drift;
        both.push(fault(
            2,
            400,
            "api_version_retired",
            Some(DependencyName::Salesforce),
            "activated",
        ));
        let r = schema_drift(&tl(v, both), &slo);
        assert!(r.evidence.iter().any(|e| e.contains("f2")), "{r:?}");
    }
}
