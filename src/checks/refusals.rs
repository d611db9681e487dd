//! What the SUT does once the org refuses: the rate-limit SLO (pace while limited) and the
//! schema-drift SLO (refused requests resent after a drift).

use crate::timeline::Call;

use super::traffic::{describe, fault_windows, hidden, network_windows, on_dependency};
use super::{SloResult, Verdict};
use crate::fault::model::kind_names;
use crate::fault::FaultEvent;
use crate::scenario::domain::{RateLimitSlo, SchemaDriftSlo};
use crate::timeline::Timeline;

fn is_limit(r: &Call) -> bool {
    r.status == 429
        || (r.status == 403 && r.error_code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED"))
        || (r.status == 503 && r.retry_after_ms.is_some())
}

/// The rate-limit SLO.
pub fn rate_limit(t: &Timeline, slo: &RateLimitSlo) -> SloResult {
    let RateLimitSlo {
        max_rate_while_limited,
    } = slo;
    let mut res = SloResult::new(
        "rate_limit",
        format!("≤ {max_rate_while_limited} requests/s while limited"),
    );
    let mut worst = 0.0f64;
    let mut periods = 0;
    for dep in ["salesforce", "llm"] {
        let reqs: Vec<&Call> = on_dependency(t, Some(dep)).collect();
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
pub fn schema_drift(t: &Timeline, slo: &SchemaDriftSlo) -> SloResult {
    let SchemaDriftSlo {
        max_rejected_after_drift,
    } = slo;
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
    let all: Vec<&Call> = t.requests().collect();
    let network = network_windows(t, None);
    let mut worst = 0;
    for (start, end, label, codes) in windows {
        let (a, b) = (
            all.partition_point(|r| r.at_us < start),
            all.partition_point(|r| r.at_us < end),
        );
        let rejected: Vec<&Call> = all[a..b]
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
    use crate::checks::traffic::tests::{fault, sf, tl};
    use crate::fault::DependencyName;

    #[test]
    fn rate_limit_and_schema_drift() {
        let slo = RateLimitSlo {
            max_rate_while_limited: 2.0,
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

        let slo = SchemaDriftSlo {
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
