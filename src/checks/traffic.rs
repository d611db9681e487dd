//! Checkers over what the SUT sent to its dependencies (the mocks' request records): the
//! retry SLO here, with what the others share (logical operations, fault and network
//! windows); [`super::breaker`], [`super::token`] and [`super::refusals`] hold the rest.

use std::collections::BTreeMap;

use crashcart_mocks::RequestRecord;

use super::{secs, SloResult};
use crate::fault::model::kind_names;
use crate::fault::FaultEvent;
use crate::scenario::domain::RetrySlo;
use crate::timeline::Timeline;

/// Two identical requests further apart than this are different logical operations.
pub const RETRY_WINDOW_US: u64 = 60_000_000;

pub(super) fn failed(r: &RequestRecord) -> bool {
    r.status == 0 || r.status >= 400
}

/// Non-retryable answers: malformed or invalid requests (a retry cannot succeed).
pub fn non_retryable(r: &RequestRecord) -> bool {
    matches!(r.status, 400 | 404 | 405 | 422)
        && r.error_code.as_deref() != Some("UNABLE_TO_LOCK_ROW")
}

pub(super) fn on_dependency<'a>(
    t: &'a Timeline,
    dep: Option<&'a str>,
) -> impl Iterator<Item = &'a RequestRecord> + 'a {
    t.requests().filter(move |r| {
        r.dependency.as_str() != "control" && dep.is_none_or(|d| r.dependency.as_str() == d)
    })
}

pub(super) fn describe(r: &RequestRecord) -> String {
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

/// The retry SLO's target, in words.
fn retry_target(slo: &RetrySlo) -> String {
    let mut target = vec![];
    if let Some(m) = slo.max_attempts {
        target.push(format!("≤ {m} attempts"));
    }
    if let Some(g) = slo.min_gap {
        target.push(format!("gaps ≥ {}", humantime::format_duration(g)));
    }
    if slo.exponential {
        target.push("growing gaps".into());
    }
    if slo.jitter {
        target.push("jittered".into());
    }
    if slo.honour_retry_after {
        target.push("Retry-After honoured".into());
    }
    if slo.no_retry_of_non_retryable {
        target.push("no retry of 4xx".into());
    }
    if let Some(a) = slo.max_amplification {
        target.push(format!("amplification ≤ {a}"));
    }
    target.join(", ")
}

/// The retry SLO.
pub fn retry(t: &Timeline, slo: &RetrySlo) -> SloResult {
    let dependency = slo.dependency.map(|d| d.as_str());
    let name = format!(
        "retry{}",
        dependency.map(|d| format!(" ({d})")).unwrap_or_default()
    );
    let mut res = SloResult::new(name, retry_target(slo));
    let network = network_windows(t, dependency);
    let groups = logical_operations(on_dependency(t, dependency));
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
    let mut gaps = Gaps::default();
    for g in &groups {
        judge_operation(g, slo, &network, &mut gaps, &mut res);
    }
    if slo.exponential {
        gaps.judge_growth(&mut res);
    }
    if slo.jitter {
        gaps.judge_jitter(&mut res);
    }
    if let Some(a) = slo.max_amplification {
        if amplification > a {
            res.fail(format!("amplification {amplification:.2} > {a}"));
        }
    }
    res
}

/// Retry gaps the SUT chose (those no network fault blurred): the sum and count per retry
/// index across operations, and every first retry's gap.
#[derive(Default)]
struct Gaps {
    by_index: BTreeMap<usize, (u64, u64)>,
    first: Vec<u64>,
}

impl Gaps {
    fn add(&mut self, index: usize, gap: u64) {
        if index == 0 {
            self.first.push(gap);
        }
        let e = self.by_index.entry(index).or_default();
        e.0 += gap;
        e.1 += 1;
    }

    /// Mean gaps must grow from one retry to the next. Judged only on retry indexes seen at
    /// least 5 times: with jitter, the mean of one or two gaps says nothing about growth.
    fn judge_growth(&self, res: &mut SloResult) {
        let means: Vec<(usize, f64)> = self
            .by_index
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

    /// Synchronised retries: the middle half of the first-retry gaps within 10% of their
    /// median. Jitter spreads them (full jitter: the middle half spans about the median); the
    /// interquartile range ignores the few gaps a busy machine stretches. At least 10 gaps:
    /// with 5 full-jitter gaps the middle three fall within 10% by chance 2.7% of the time
    /// (found by `crashcart explore`); with 10, about 0.01%.
    fn judge_jitter(&self, res: &mut SloResult) {
        if self.first.len() < 10 {
            return;
        }
        let mut g = self.first.clone();
        g.sort_unstable();
        let q = |p: f64| g[((g.len() - 1) as f64 * p).round() as usize] as f64;
        let (q1, med, q3) = (q(0.25), q(0.5), q(0.75));
        let spread = if med > 0.0 { (q3 - q1) / med } else { 0.0 };
        if spread < 0.1 {
            res.fail(format!(
                "first retries of {} operations are synchronised (gap {}, middle half within {:.1}%): no jitter",
                self.first.len(),
                secs(med as u64),
                spread * 100.0
            ));
        }
    }
}

/// One logical operation's attempts: how many, the gaps between them, Retry-After, and
/// retries of what cannot succeed.
fn judge_operation(
    g: &[&RequestRecord],
    slo: &RetrySlo,
    network: &[(u64, u64, String)],
    gaps: &mut Gaps,
    res: &mut SloResult,
) {
    let unseen = |r: &RequestRecord| hidden(network, r);
    if let Some(m) = slo.max_attempts {
        // The re-send with a new token after a 401 is re-authentication, not a retry.
        let reauth = g.windows(2).filter(|w| reauthenticated(w[0], w[1])).count();
        if g.len() - reauth > m as usize {
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
        // A retry with a new token after 401 is re-authentication, not backoff: no gap is
        // owed (the new token is the remedy).
        if reauthenticated(w[0], w[1]) {
            continue;
        }
        let d = gap(w[0], w[1]);
        // Gaps measured at the mock include any network delay: under a network fault they
        // say little about the SUT's backoff (a fixed delay swamps the jitter).
        if !unseen(w[0]) && !unseen(w[1]) {
            gaps.add(i, d);
        }
        if let Some(mg) = slo.min_gap {
            if d < mg.as_micros() as u64 {
                res.fail(format!(
                    "retry after {} (< {}): {}",
                    secs(d),
                    humantime::format_duration(mg),
                    describe(w[1])
                ));
            }
        }
        if slo.honour_retry_after && matches!(w[0].status, 429 | 503) {
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
        // Under a network fault the SUT may never have seen that answer: its re-send is a
        // retry of a timeout, not of the 4xx.
        if slo.no_retry_of_non_retryable && non_retryable(w[0]) && !unseen(w[0]) {
            res.fail(format!(
                "retried a non-retryable {}: {}",
                w[0].status,
                describe(w[1])
            ));
        }
    }
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
pub(super) fn network_windows(t: &Timeline, dependency: Option<&str>) -> Vec<(u64, u64, String)> {
    let faults: Vec<&FaultEvent> = t.faults().collect();
    fault_windows(&faults, dependency, kind_names::NETWORK, t.end_us())
}

/// The mock's answer to `r` may not have reached the SUT when the mock sent it (a network fault
/// held or dropped it): a request sent during the fault may arrive, and be answered, after it.
pub(super) fn hidden(network: &[(u64, u64, String)], r: &RequestRecord) -> bool {
    network
        .iter()
        .any(|(s, e, _)| r.at_us + r.latency_us >= *s && r.at_us < *e + NETWORK_SETTLE_US)
}

/// How long after a network fault a request sent during it may still arrive at the mock.
const NETWORK_SETTLE_US: u64 = 5_000_000;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checks::Verdict;
    use crate::fault::DependencyName;
    use crate::timeline::{Event, OpEvent, Phase};
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

    /// A Salesforce query, each at a path of its own (`/q/{seq}`): no two are one operation.
    pub(crate) fn sf(seq: u64, at_ms: u64, status: u16) -> RequestRecord {
        req(
            seq,
            at_ms,
            Dependency::Salesforce,
            "query",
            &format!("/q/{seq}"),
            status,
        )
    }

    /// A booking's invoke or completion, keyed as the workload keys operation `n` at seed 1.
    pub(crate) fn op(n: u64, at_ms: u64, phase: Phase, latency_ms: u64) -> Event {
        Event::Op(OpEvent {
            at_us: at_ms * 1000,
            op: n,
            name: "book".into(),
            key: crate::scenario::template::values(1, n)["key"].clone(),
            phase,
            status: Some(if phase == Phase::Ok { 201 } else { 503 }),
            latency_us: Some(latency_ms * 1000),
            error: None,
        })
    }

    pub(crate) fn fault(
        id: u64,
        at_ms: u64,
        kind: &str,
        dep: Option<DependencyName>,
        event: &str,
    ) -> Event {
        Event::Fault(FaultEvent {
            at_us: at_ms * 1000,
            id,
            fault: format!("f{id}"),
            kind: kind.into(),
            dependency: dep,
            event: event.into(),
        })
    }

    pub(crate) fn tl(reqs: Vec<RequestRecord>, more: Vec<Event>) -> Timeline {
        Timeline::merge(
            reqs.into_iter()
                .map(|r| Event::Request(Box::new(r)))
                .chain(more)
                .collect(),
        )
    }

    fn retry_slo() -> RetrySlo {
        RetrySlo {
            dependency: Some(DependencyName::Salesforce),
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
}
