//! The circuit-breaker SLO: calls a dependency got while it was down.

use crate::timeline::Call;

use super::traffic::{describe, failed, fault_windows, on_dependency};
use super::{secs, SloResult};
use crate::fault::FaultEvent;
use crate::scenario::domain::BreakerSlo;
use crate::timeline::Timeline;

const OUTAGE_KINDS: [&str; 6] = [
    "http_error",
    "connection_reset",
    "hang",
    "empty_response",
    "llm_overloaded",
    "reset_mid_body",
];

/// The circuit-breaker SLO.
pub fn circuit_breaker(t: &Timeline, slo: &BreakerSlo) -> SloResult {
    let BreakerSlo {
        dependency,
        after_failures,
        max_calls,
        probe_gap,
        resume_within,
    } = slo;
    let dependency = dependency.as_str();
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
    let reqs: Vec<&Call> = on_dependency(t, Some(dependency)).collect();
    let mut worst = 0usize;
    for (start, end, label) in &windows {
        let (a, b) = (
            reqs.partition_point(|r| r.at_us < *start),
            reqs.partition_point(|r| r.at_us < *end),
        );
        let inside: Vec<&&Call> = reqs[a..b].iter().collect();
        // Calls made while the last `after_failures` outcomes the SUT had seen were all
        // failures: a breaker should have been open then. An outcome is seen when its answer
        // went out (a hung call: when the client gave up), not when the call arrived; calls
        // already in flight could not know. A success shows the dependency answering (a
        // partial outage, or a probe that closed the breaker) and starts the count again.
        let mut moments: Vec<(u64, u64, bool, &Call)> = inside
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::traffic::tests::{fault, sf, tl};
    use crate::checks::Verdict;
    use crate::fault::DependencyName;

    #[test]
    fn circuit_breaker_counts_calls_during_an_outage() {
        let slo = BreakerSlo {
            dependency: DependencyName::Salesforce,
            after_failures: 3,
            max_calls: 2,
            probe_gap: None,
            resume_within: Some(std::time::Duration::from_secs(2)),
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
}
