//! The retry SLO: attempts per logical operation, the gaps between them (a floor, growth,
//! jitter), Retry-After, retries of what cannot succeed, and amplification.

use std::collections::BTreeMap;

use crate::timeline::{Call, Sym};

use super::traffic::{
    attribution_summary, describe, hidden, logical_operations, network_windows, non_retryable,
    on_dependency,
};
use super::{secs, SloResult};
use crate::scenario::domain::RetrySlo;
use crate::timeline::Timeline;

/// `b` re-sends `a` with a new token after a 401: re-authentication, not a retry (no attempt
/// counted, no backoff owed: the new token is the remedy).
fn reauthenticated(a: &Call, b: &Call) -> bool {
    a.status == 401 && a.token_digest != b.token_digest
}

/// Gap from the end of an attempt to the start of the next, microseconds.
fn gap(a: &Call, b: &Call) -> u64 {
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
    if !slo.backoff_floor.is_zero() {
        target.push(format!(
            "most gaps ≥ {}",
            humantime::format_duration(slo.backoff_floor)
        ));
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
        "{} operations ({}), {calls} calls, amplification {amplification:.2}, at most {most} attempts",
        groups.len(),
        attribution_summary(&groups)
    );
    let mut gaps = Gaps::default();
    for g in &groups {
        judge_operation(g, slo, &network, &mut gaps, &mut res);
    }
    let floor_us = slo.backoff_floor.as_micros() as u64;
    if floor_us > 0 {
        gaps.judge_floor(floor_us, &mut res);
    }
    if slo.exponential {
        gaps.judge_growth(&mut res);
    }
    if slo.jitter {
        gaps.judge_jitter(floor_us, &mut res);
    }
    if let Some(a) = slo.max_amplification {
        if amplification > a {
            res.fail(format!("amplification {amplification:.2} > {a}"));
        }
    }
    res
}

/// Retry gaps the SUT chose (those no network fault blurred): every gap, per kind of call
/// and retry index, and every first retry's gap.
#[derive(Default)]
struct Gaps {
    /// By (method, mock operation) and retry index: one schedule per kind of call (a write's
    /// retries and a compensation's rounds grow each on their own).
    by_kind: BTreeMap<(Sym, Sym), BTreeMap<usize, Vec<u64>>>,
    first: Vec<u64>,
    all: Vec<u64>,
}

/// Fewest retry gaps from which the floor is judged.
const FLOOR_SAMPLES: usize = 8;
/// Fewest first-retry gaps from which jitter is judged: with 5 full-jitter gaps the middle
/// three fall within 10% by chance 2.7% of the time (found by `crashcart explore`); with 10
/// far less.
const JITTER_SAMPLES: usize = 10;
/// Jitter spreads the middle half of first-retry gaps over at least this share of their
/// median: full jitter about 100%, equal jitter 33% (under 10% by chance about once in a
/// thousand runs of 18 retries), decorrelated 50%; a fixed delay with a few milliseconds of
/// scheduling noise stays under it.
const JITTER_SPREAD: f64 = 0.1;
/// Growth is judged on retry indexes seen at least this often.
const GROWTH_SAMPLES: usize = 5;
/// A drop of the mean gap counts when it is this many standard errors of the difference.
const GROWTH_SIGMAS: f64 = 4.0;

/// The value at quantile `p` of sorted values (nearest rank).
fn quantile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

/// Mean and its standard error.
fn mean_and_error(v: &[u64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<u64>() as f64 / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

impl Gaps {
    /// The first-retry gaps to judge for jitter: each kind of call with enough of them on
    /// its own (a write's retries and a compensation's rounds follow schedules of their own;
    /// pooled, their different medians would pass for jitter), or all of them pooled when no
    /// kind has enough.
    fn first_retries_by_schedule(&self) -> Vec<Vec<u64>> {
        let own: Vec<Vec<u64>> = self
            .by_kind
            .values()
            .filter_map(|by_index| by_index.get(&0))
            .filter(|v| v.len() >= JITTER_SAMPLES)
            .cloned()
            .collect();
        if own.is_empty() {
            vec![self.first.clone()]
        } else {
            own
        }
    }

    fn add(&mut self, retried: &Call, index: usize, gap: u64) {
        if index == 0 {
            self.first.push(gap);
        }
        let kind = (retried.method.clone(), retried.operation.clone());
        self.by_kind
            .entry(kind)
            .or_default()
            .entry(index)
            .or_default()
            .push(gap);
        self.all.push(gap);
    }

    /// Retries must wait: the upper quartile of all retry gaps at least the floor. Jittered
    /// backoff draws some short gaps (full jitter from zero), but not three in four; a client
    /// retrying at once, with a few milliseconds of scheduling noise, does.
    fn judge_floor(&self, floor_us: u64, res: &mut SloResult) {
        if self.all.len() < FLOOR_SAMPLES {
            return;
        }
        let mut g = self.all.clone();
        g.sort_unstable();
        if quantile(&g, 0.75) < floor_us as f64 {
            res.fail(format!(
                "retries do not wait: 3 in 4 of {} retry gaps are under {} (median {}): no real backoff",
                g.len(),
                secs(floor_us),
                secs(quantile(&g, 0.5) as u64)
            ));
        }
    }

    /// Mean gaps must not shrink from one retry to the next, per kind of call. A drop counts
    /// when it is over 10% and beyond chance ([`GROWTH_SIGMAS`] standard errors): capped
    /// backoff with full jitter levels off at the cap, where consecutive means differ by
    /// chance alone.
    fn judge_growth(&self, res: &mut SloResult) {
        for ((method, operation), by_index) in &self.by_kind {
            let means: Vec<(usize, f64, f64)> = by_index
                .iter()
                .filter(|(_, v)| v.len() >= GROWTH_SAMPLES)
                .map(|(i, v)| {
                    let (m, e) = mean_and_error(v);
                    (*i, m, e)
                })
                .collect();
            for w in means.windows(2) {
                let ((i, m0, e0), (j, m1, e1)) = (w[0], w[1]);
                // The larger of the two errors for both: five samples estimate a spread
                // poorly, and a lucky small one must not make chance look like a drop.
                let e = e0.max(e1);
                if m1 < m0 * 0.9 && m0 - m1 > GROWTH_SIGMAS * e * std::f64::consts::SQRT_2 {
                    res.fail(format!("mean gap before retry {} is {} but before retry {} it was {}: gaps do not grow ({method} {operation})", j + 1, secs(m1 as u64), i + 1, secs(m0 as u64)));
                }
            }
        }
    }

    /// Synchronised retries: the middle half of the first-retry gaps within
    /// [`JITTER_SPREAD`] of their median, per schedule ([`Self::first_retries_by_schedule`]).
    /// The interquartile range ignores the few gaps a busy machine stretches; retries that do
    /// not wait at all have nothing to spread.
    fn judge_jitter(&self, floor_us: u64, res: &mut SloResult) {
        if self.first.len() < JITTER_SAMPLES {
            return;
        }
        let mut all = self.first.clone();
        all.sort_unstable();
        if floor_us > 0 && quantile(&all, 0.75) < floor_us as f64 {
            res.fail(format!(
                "first retries of {} operations do not wait (median gap {}): there is no backoff to jitter",
                all.len(),
                secs(quantile(&all, 0.5) as u64)
            ));
            return;
        }
        for mut g in self.first_retries_by_schedule() {
            if g.len() < JITTER_SAMPLES {
                continue;
            }
            g.sort_unstable();
            let (q1, med, q3) = (quantile(&g, 0.25), quantile(&g, 0.5), quantile(&g, 0.75));
            let spread = if med > 0.0 { (q3 - q1) / med } else { 0.0 };
            if spread < JITTER_SPREAD {
                res.fail(format!(
                    "first retries of {} operations are synchronised (gap {}, middle half within {:.1}%): no jitter",
                    g.len(),
                    secs(med as u64),
                    spread * 100.0
                ));
            }
        }
    }
}

/// One logical operation's attempts: how many, the gaps between them, Retry-After, and
/// retries of what cannot succeed.
fn judge_operation(
    g: &[&Call],
    slo: &RetrySlo,
    network: &[(u64, u64, String)],
    gaps: &mut Gaps,
    res: &mut SloResult,
) {
    let unseen = |r: &Call| hidden(network, r);
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
            gaps.add(w[1], i, d);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::traffic::tests::{fault, req, tl};
    use crate::checks::Verdict;
    use crate::fault::DependencyName;
    use crashcart_mocks::Dependency;

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
            backoff_floor: std::time::Duration::from_millis(10),
        }
    }

    /// `n` operations, each failing `fails` times with the given gaps before succeeding.
    fn retried(n: u64, gaps_ms: &[u64], jitter_ms: u64) -> Vec<Call> {
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
        v[3].token_digest = v[2].token_digest;
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
        reqs[1].token_digest = reqs[0].token_digest;
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

    /// The retry SLO as a scenario writing only `check: retry` gets it.
    fn defaults() -> RetrySlo {
        match crate::scenario::domain::Slo::from_raw(
            &serde_saphyr::from_str("check: retry").unwrap(),
        ) {
            crate::scenario::domain::Slo::Retry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identical_calls_of_different_traces_are_different_operations() {
        // Two bookings ask the LLM the same thing; the first gets a 429 with Retry-After 1 s,
        // the second sends its own first attempt 100 ms after that answer. By request identity
        // they look like one call retried too soon; their traces say otherwise.
        let call = |seq, at, status, trace: &str| {
            let mut r = req(
                seq,
                at,
                Dependency::Llm,
                "openai.chat",
                "/v1/chat/completions",
                status,
            );
            r.trace_id = Some(trace.into());
            r
        };
        let mut first = call(0, 100, 429, "a");
        first.retry_after_ms = Some(1000);
        let reqs = vec![first, call(1, 200, 200, "b"), call(2, 1200, 200, "a")];
        let r = retry(&tl(reqs.clone(), vec![]), &defaults());
        assert!(
            !r.evidence.iter().any(|e| e.contains("Retry-After")),
            "{r:?}"
        );
        assert!(r.measured.contains("trace context 2"), "{r:?}");
        // Without the traces, the same traffic is judged as one call retried too soon.
        let bare: Vec<_> = reqs
            .into_iter()
            .map(|mut r| {
                r.trace_id = None;
                r
            })
            .collect();
        let r = retry(&tl(bare, vec![]), &defaults());
        assert!(
            r.evidence.iter().any(|e| e.contains("Retry-After")),
            "{r:?}"
        );
        assert!(r.measured.contains("request identity"), "{r:?}");
    }

    #[test]
    fn retries_without_real_delay_fail_the_defaults() {
        // Twelve calls, each failing twice, retried at once with 1–8 ms of scheduling noise.
        let noise = [1, 3, 8, 2, 5, 7, 4, 6, 2, 8, 1, 5];
        let mut reqs = vec![];
        let mut seq = 0;
        for (k, n) in noise.iter().enumerate() {
            let path = format!("/q/{k}");
            let mut at = k as u64 * 10_000;
            for (i, status) in [503, 503, 200].into_iter().enumerate() {
                reqs.push(req(seq, at, Dependency::Salesforce, "query", &path, status));
                seq += 1;
                at += 1 + n + i as u64;
            }
        }
        let r = retry(&tl(reqs.clone(), vec![]), &defaults());
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("retries do not wait"), "{r:?}");
        // Asked for jitter, the noise does not pass for it.
        let jittered = RetrySlo {
            jitter: true,
            ..defaults()
        };
        let r = retry(&tl(reqs, vec![]), &jittered);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("no backoff to jitter")),
            "{r:?}"
        );
    }

    #[test]
    fn growth_is_judged_per_kind_of_call() {
        // Writes retried after 80, 140 and 300 ms; compensation deletes, fewer of which get a
        // third try, after 500 ms and 1 s. Pooled by retry index, the deletes' long gaps
        // inflate retry 2 and make retry 3 look shorter; each kind grows on its own.
        let mut reqs = vec![];
        let mut seq = 0;
        let mut add = |k: u64, method: &str, op: &str, gaps: &[u64]| {
            let path = format!("/sobjects/Event/{method}{k}");
            let mut at = k * 20_000 + if method == "DELETE" { 10_000 } else { 0 };
            for (i, g) in gaps.iter().chain([&0]).enumerate() {
                let mut r = req(
                    seq,
                    at,
                    Dependency::Salesforce,
                    op,
                    &path,
                    if i == gaps.len() { 204 } else { 503 },
                );
                r.method = method.into();
                reqs.push(r);
                seq += 1;
                at += 1 + g;
            }
        };
        for k in 0..6 {
            add(k, "PATCH", "sobject.upsert", &[80 + k, 140 + k, 300 + k]);
            add(k, "DELETE", "sobject.delete", &[500 + k, 1000 + k]);
        }
        let slo = RetrySlo {
            exponential: true,
            ..defaults()
        };
        let r = retry(&tl(reqs, vec![]), &slo);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }

    /// A retry policy as a client might run it, and the traffic it makes at the mock.
    #[derive(Clone, Debug)]
    enum Policy {
        /// Retries at once; gaps are scheduling noise.
        NoDelay { noise_ms: u64 },
        /// Capped exponential backoff with full jitter, plus scheduling noise.
        FullJitter {
            base_ms: u64,
            cap_ms: u64,
            noise_ms: u64,
        },
    }

    fn traffic(policy: &Policy, ops: u64, attempts: usize, seed: u64) -> Vec<Call> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut out = vec![];
        let mut seq = 0;
        for k in 0..ops {
            let path = format!("/sobjects/Event/{k}");
            let mut at_us = k * 30_000_000;
            for a in 0..attempts {
                let last = a + 1 == attempts;
                let mut r = req(
                    seq,
                    0,
                    Dependency::Salesforce,
                    "sobject.update",
                    &path,
                    if last { 204 } else { 503 },
                );
                r.at_us = at_us;
                out.push(r);
                seq += 1;
                let gap_ms = match *policy {
                    Policy::NoDelay { noise_ms } => rng.random_range(0..=noise_ms) as f64,
                    Policy::FullJitter {
                        base_ms,
                        cap_ms,
                        noise_ms,
                    } => {
                        let ceiling = cap_ms.min(base_ms << a.min(20)) as f64;
                        rng.random_range(0.0..=ceiling) + rng.random_range(0..=noise_ms) as f64
                    }
                };
                at_us += 1_000 + (gap_ms * 1_000.0) as u64;
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 256,
            rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn no_real_delay_fails_and_capped_full_jitter_passes(
            no_delay in proptest::bool::ANY,
            noise_ms in 1u64..=8,
            base_ms in 50u64..=500,
            cap_factor in 1u64..=64,
            attempts in 2usize..=6,
            ops in 10u64..=40,
            seed in proptest::num::u64::ANY,
        ) {
            let policy = if no_delay {
                Policy::NoDelay { noise_ms }
            } else {
                Policy::FullJitter { base_ms, cap_ms: base_ms * cap_factor, noise_ms }
            };
            let t = tl(traffic(&policy, ops, attempts, seed), vec![]);
            let strict = RetrySlo {
                max_attempts: Some(attempts as u32),
                exponential: true,
                jitter: true,
                ..defaults()
            };
            let by_default = retry(&t, &defaults());
            let asked = retry(&t, &strict);
            if no_delay {
                proptest::prop_assert_eq!(by_default.verdict, Verdict::Fail, "{:?} {:?}", policy, by_default);
            } else {
                proptest::prop_assert_eq!(by_default.verdict, Verdict::Pass, "{:?} {:?}", policy, by_default);
                proptest::prop_assert_eq!(asked.verdict, Verdict::Pass, "{:?} {:?}", policy, asked);
            }
        }
    }

    #[test]
    fn jitter_across_kinds_with_few_retries_each_is_judged_pooled() {
        // Eleven calls of four kinds, each retried once after a jittered 20–120 ms: no kind
        // has enough first retries to be judged alone, and each alone would look
        // synchronised (one or two gaps each); pooled they are spread (found by explore: a
        // short error burst on the reference).
        let kinds = ["query", "sobject.get", "sobject.upsert", "sobject.update"];
        let mut reqs = vec![];
        for k in 0..11u64 {
            let path = format!("/k/{k}");
            let op = kinds[k as usize % kinds.len()];
            let at = k * 1_000;
            reqs.push(req(2 * k, at, Dependency::Salesforce, op, &path, 503));
            reqs.push(req(
                2 * k + 1,
                at + 1 + 20 + (k * 37) % 100,
                Dependency::Salesforce,
                op,
                &path,
                200,
            ));
        }
        let slo = RetrySlo {
            jitter: true,
            ..defaults()
        };
        let r = retry(&tl(reqs, vec![]), &slo);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }
}
