//! What the checkers of the SUT's traffic to its dependencies share: logical operations (the
//! attempts of one call, told apart by the evidence the traffic carries), and the windows of
//! faults and network faults. [`super::retry`], [`super::breaker`], [`super::token`] and
//! [`super::refusals`] judge with them.

use std::collections::{BTreeMap, HashMap};

use crate::timeline::{Call, Sym, Tag};

use super::secs;
use crate::fault::model::kind_names;
use crate::fault::FaultEvent;
use crate::timeline::Timeline;

/// Two identical requests further apart than this are different logical operations.
pub const RETRY_WINDOW_US: u64 = 60_000_000;

pub(super) fn failed(r: &Call) -> bool {
    r.status == 0 || r.status >= 400
}

/// Non-retryable answers: malformed or invalid requests (a retry cannot succeed).
pub fn non_retryable(r: &Call) -> bool {
    matches!(r.status, 400 | 404 | 405 | 422)
        && r.error_code.as_deref() != Some("UNABLE_TO_LOCK_ROW")
}

pub(super) fn on_dependency<'a>(
    t: &'a Timeline,
    dep: Option<&'a str>,
) -> impl Iterator<Item = &'a Call> + 'a {
    t.requests().filter(move |r| {
        r.dependency.as_str() != "control" && dep.is_none_or(|d| r.dependency.as_str() == d)
    })
}

pub(super) fn describe(r: &Call) -> String {
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

/// How the calls of a logical operation were told apart from other operations' calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attribution {
    /// The W3C trace id the SUT propagated from the workload's operation.
    Trace,
    /// The client's own retry counter (`x-stainless-retry-count`: openai-python, openai-node).
    RetryCount,
    /// The client's `Idempotency-Key`.
    IdempotencyKey,
    /// No evidence in the traffic: identical requests after a failure, within the window.
    RequestIdentity,
}

impl Attribution {
    /// In words, for reports.
    pub fn label(self) -> &'static str {
        match self {
            Attribution::Trace => "trace context",
            Attribution::RetryCount => "x-stainless-retry-count",
            Attribution::IdempotencyKey => "Idempotency-Key",
            Attribution::RequestIdentity => "request identity",
        }
    }

    /// The strongest evidence a request carries.
    fn of(r: &Call) -> Self {
        if r.trace_id.is_some() {
            Attribution::Trace
        } else if r.retry_count.is_some() {
            Attribution::RetryCount
        } else if r.idempotency_key.is_some() {
            Attribution::IdempotencyKey
        } else {
            Attribution::RequestIdentity
        }
    }
}

/// How many logical operations each kind of evidence told apart, in words: `trace context
/// 12, request identity 3`.
pub fn attribution_summary(groups: &[Vec<&Call>]) -> String {
    let mut by: BTreeMap<Attribution, usize> = BTreeMap::new();
    for g in groups {
        *by.entry(Attribution::of(g[0])).or_default() += 1;
    }
    by.iter()
        .map(|(a, n)| format!("{} {n}", a.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Logical operations: the attempts of one call, retried after failures.
///
/// Evidence the traffic carries comes first. Requests of different traces (the workload's
/// operations, propagated by the SUT) or with different `Idempotency-Key`s are never one
/// operation; a request whose client counts its retries (`x-stainless-retry-count`) above 0
/// joins its operation's latest attempt. Otherwise (a count of 0 included: the application
/// may retry around the client),
/// identical requests (method, path, query, body) retried after a failure within
/// [`RETRY_WINDOW_US`] belong to one operation, and a request sent before the failed answer
/// went out cannot be its retry: it is another caller's identical request. For an attempt
/// without an answer (status 0), that is when the mock saw the connection end: a reset, or
/// the client giving up (`CLIENT_CLOSED`). A successful write to a record (PUT, PATCH,
/// DELETE) ends every operation open on its path.
pub fn logical_operations<'a>(requests: impl Iterator<Item = &'a Call>) -> Vec<Vec<&'a Call>> {
    // Open operations by path, then by the rest of the request's identity.
    type Rest = (Sym, Option<Tag>, Option<Tag>, Option<Tag>, Option<Tag>);
    let mut open: HashMap<&str, HashMap<Rest, usize>> = HashMap::new();
    let mut groups: Vec<Vec<&Call>> = vec![];
    for r in requests {
        let rest = (
            r.method.clone(),
            r.query_digest,
            r.body_digest,
            r.idempotency_key,
            r.trace_id,
        );
        let same = open
            .get(r.path.as_str())
            .and_then(|m| m.get(&rest))
            .copied();
        let joins = match r.retry_count {
            // The client says it retries its last attempt. A count of 0 says less: the
            // application may retry in a loop of its own around a client that does not
            // (found by the Python zoo integration), so it is judged like no evidence.
            Some(n) if n > 0 => same,
            _ => same.filter(|&g| {
                let last = groups[g][groups[g].len() - 1];
                let answered_before = r.at_us >= last.at_us + last.latency_us;
                failed(last)
                    && answered_before
                    && r.at_us.saturating_sub(last.at_us) <= RETRY_WINDOW_US
            }),
        };
        match joins {
            Some(g) => groups[g].push(r),
            None => {
                groups.push(vec![r]);
                open.entry(r.path.as_str())
                    .or_default()
                    .insert(rest, groups.len() - 1);
            }
        }
        // A write that changed the resource ends what was open on it: reading it again after
        // creating it is a new read, not a retry of the read that found nothing.
        if is_mutation(r) && !failed(r) {
            open.remove(r.path.as_str());
        }
    }
    groups
}

/// A request that changes the record its path names (a POST creates a new one elsewhere).
fn is_mutation(r: &Call) -> bool {
    matches!(r.method.as_str(), "PUT" | "PATCH" | "DELETE")
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
pub(super) fn hidden(network: &[(u64, u64, String)], r: &Call) -> bool {
    network
        .iter()
        .any(|(s, e, _)| r.at_us + r.latency_us >= *s && r.at_us < *e + NETWORK_SETTLE_US)
}

/// How long after a network fault a request sent during it may still arrive at the mock.
const NETWORK_SETTLE_US: u64 = 5_000_000;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
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
    ) -> Call {
        Call::from(&crashcart_mocks::RequestRecord {
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
            trace_id: None,
            retry_after_ms: None,
            llm: None,
        })
    }

    /// A Salesforce query, each at a path of its own (`/q/{seq}`): no two are one operation.
    pub(crate) fn sf(seq: u64, at_ms: u64, status: u16) -> Call {
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
        Event::op(OpEvent {
            at_us: at_ms * 1000,
            op: n,
            name: "book".into(),
            key: crate::scenario::template::values(1, n)["key"].clone(),
            phase,
            status: Some(if phase == Phase::Ok { 201 } else { 503 }),
            latency_us: Some(latency_ms * 1000),
            error: None,
            trace_id: None,
            captured: Default::default(),
            partial: false,
        })
    }

    pub(crate) fn fault(
        id: u64,
        at_ms: u64,
        kind: &str,
        dep: Option<DependencyName>,
        event: &str,
    ) -> Event {
        Event::fault(FaultEvent {
            at_us: at_ms * 1000,
            id,
            fault: format!("f{id}"),
            kind: kind.into(),
            dependency: dep,
            event: event.into(),
        })
    }

    pub(crate) fn tl(reqs: Vec<Call>, more: Vec<Event>) -> Timeline {
        Timeline::merge(
            reqs.into_iter()
                .map(|r| Event::Request(Box::new(r)))
                .chain(more)
                .collect(),
        )
    }

    #[test]
    fn evidence_in_the_traffic_tells_operations_apart() {
        let q = |seq, at, status| req(seq, at, Dependency::Llm, "openai.chat", "/v1/chat", status);
        let counted = |seq, at, status, n| {
            let mut r = q(seq, at, status);
            r.retry_count = Some(n);
            r
        };
        // The client says it retries: joined, even sent before the failure's answer went out.
        let mut a = counted(0, 0, 500, 0);
        a.latency_us = 100_000;
        let b = counted(1, 50, 200, 1);
        let groups = logical_operations([&a, &b].into_iter());
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(attribution_summary(&groups), "x-stainless-retry-count 1");
        // By request identity alone, a request sent before the answer is another caller's.
        let (x, y) = (q(0, 0, 500), q(1, 50, 200));
        let mut x = x;
        x.latency_us = 100_000;
        assert_eq!(logical_operations([&x, &y].into_iter()).len(), 2);
        // A count of 0 after a failure may be the application's own retry around a client
        // that does not retry: identical and after the answer, it joins (the Python zoo's
        // ignore-retry-after was missed when every 0 started an operation).
        let (c, d) = (counted(0, 0, 429, 0), counted(1, 100, 200, 0));
        assert_eq!(logical_operations([&c, &d].into_iter()).len(), 1);
        // Different traces are different operations, whatever else they share.
        let traced = |mut r: Call, t: &str| {
            r.trace_id = Some(t.into());
            r
        };
        let (e, f) = (traced(q(0, 0, 500), "t1"), traced(q(1, 100, 200), "t2"));
        assert_eq!(logical_operations([&e, &f].into_iter()).len(), 2);
    }

    #[test]
    fn a_read_after_the_write_it_waited_for_is_not_a_retry() {
        // Read a patient (404), create it, read it again: the second read is not a retry of
        // the 404 (found by the Python zoo integration). A failed write changes nothing.
        let path = "/services/data/v59.0/sobjects/Contact/Patient_External_Id__c/P-1";
        let call = |seq, at, method: &str, status| {
            let mut r = req(seq, at, Dependency::Salesforce, "sobject.get", path, status);
            r.method = method.into();
            r
        };
        let (read, write, reread) = (
            call(0, 0, "GET", 404),
            call(1, 5, "PATCH", 201),
            call(2, 10, "GET", 200),
        );
        assert_eq!(
            logical_operations([&read, &write, &reread].into_iter()).len(),
            3
        );
        let refused = call(1, 5, "PATCH", 503);
        let groups = logical_operations([&read, &refused, &reread].into_iter());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 2);
    }
}
