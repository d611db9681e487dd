//! The availability and latency SLO: what the workload saw. The share of operations that
//! succeeded, p99 latency (an operation given up on counts with the time waited), and
//! recovery after each fault.

use super::traffic::fault_windows;
use super::{secs, SloResult};
use crate::fault::FaultEvent;
use crate::scenario::domain::AvailabilitySlo;
use crate::timeline::{OpEvent, Phase, Timeline};

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The availability and latency SLO.
pub fn availability(t: &Timeline, slo: &AvailabilitySlo) -> SloResult {
    let AvailabilitySlo {
        min_success_ratio,
        p99,
        recover_within,
    } = slo;
    let mut target = vec![];
    if let Some(r) = min_success_ratio {
        target.push(format!("success ≥ {:.1}%", r * 100.0));
    }
    if let Some(p) = p99 {
        target.push(format!("p99 ≤ {}", humantime::format_duration(*p)));
    }
    if let Some(r) = recover_within {
        target.push(format!("recovery ≤ {}", humantime::format_duration(*r)));
    }
    let mut res = SloResult::new("availability", target.join(", "));
    let done: Vec<&OpEvent> = t.ops().filter(|o| o.phase != Phase::Invoke).collect();
    if done.is_empty() {
        return res.skip("no operation completed");
    }
    let ok = done.iter().filter(|o| o.phase == Phase::Ok).count();
    let ratio = ok as f64 / done.len() as f64;
    // Unknown outcomes (timeouts) count with the time the workload waited: a lower bound of
    // their latency, so a p99 that fails with them fails for real.
    let mut lat: Vec<u64> = done.iter().filter_map(|o| o.latency_us).collect();
    lat.sort_unstable();
    let (p50, p95, p99v) = (
        quantile(&lat, 0.5),
        quantile(&lat, 0.95),
        quantile(&lat, 0.99),
    );
    res.measured = format!(
        "{ok}/{} ok ({:.1}%), p50 {} p95 {} p99 {}",
        done.len(),
        ratio * 100.0,
        secs(p50),
        secs(p95),
        secs(p99v)
    );
    if let Some(min) = min_success_ratio {
        if ratio < *min {
            let failed: Vec<&&OpEvent> = done
                .iter()
                .filter(|o| o.phase != Phase::Ok)
                .take(3)
                .collect();
            for o in failed {
                res.fail(format!(
                    "op {} {} ({}) {:?}{}",
                    o.op,
                    o.name,
                    o.key,
                    o.phase,
                    // The reason (an unmet expectation, which names the status; a
                    // timeout), else the status.
                    o.error
                        .clone()
                        .map(|e| format!(": {e}"))
                        .or(o.status.map(|s| format!(" {s}")))
                        .unwrap_or_default()
                ));
            }
            res.fail(format!(
                "success {:.1}% < {:.1}%",
                ratio * 100.0,
                min * 100.0
            ));
        }
    }
    if let Some(limit) = p99 {
        if p99v > limit.as_micros() as u64 {
            res.fail(format!(
                "p99 {} > {}",
                secs(p99v),
                humantime::format_duration(*limit)
            ));
        }
    }
    let notes = per_fault_window(t, &done, *recover_within, &mut res);
    if !notes.is_empty() {
        res.measured.push_str(&format!("; {}", notes.join(", ")));
    }
    res
}

/// Per fault window: the latency inside it (notes for the measured line), and the recovery
/// after it ends: the first success of an operation invoked after the fault.
fn per_fault_window(
    t: &Timeline,
    done: &[&OpEvent],
    recover_within: Option<std::time::Duration>,
    res: &mut SloResult,
) -> Vec<String> {
    let faults: Vec<&FaultEvent> = t.faults().collect();
    let windows = fault_windows(&faults, None, &[], t.end_us());
    // Invoke times by operation, for recovery: the first success of an op invoked after a fault.
    let invoked: std::collections::HashMap<u64, u64> = t
        .ops()
        .filter(|o| o.phase == Phase::Invoke)
        .map(|o| (o.op, o.at_us))
        .collect();
    let mut notes = vec![];
    for (start, end, label) in &windows {
        let (a, b) = (
            done.partition_point(|o| o.at_us < *start),
            done.partition_point(|o| o.at_us < *end),
        );
        let mut inside: Vec<u64> = done[a..b].iter().filter_map(|o| o.latency_us).collect();
        inside.sort_unstable();
        if !inside.is_empty() {
            notes.push(format!("{label}: p99 {}", secs(quantile(&inside, 0.99))));
        }
        if let Some(rw) = recover_within {
            if *end >= t.end_us() {
                continue;
            }
            // Recovery: the first success of an operation invoked after the fault ended.
            let after = |o: &&&OpEvent| invoked.get(&o.op).is_some_and(|i| *i >= *end);
            let first_ok = done[b..].iter().find(|o| o.phase == Phase::Ok && after(o));
            match first_ok {
                Some(o) if o.at_us - end > rw.as_micros() as u64 => res.fail(format!(
                    "{label}: recovered {} after it ended",
                    secs(o.at_us - end)
                )),
                None if done[b..].iter().any(|o| after(&o)) => {
                    res.fail(format!("{label}: no success after it ended"))
                }
                _ => {}
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::traffic::tests::op;
    use crate::checks::Verdict;
    use crate::timeline::Event;

    #[test]
    fn availability_ratio_latency_and_recovery() {
        let slo = AvailabilitySlo {
            min_success_ratio: Some(0.9),
            p99: Some(std::time::Duration::from_millis(500)),
            recover_within: Some(std::time::Duration::from_secs(2)),
        };
        let good = Timeline::merge((0..20).map(|i| op(i, i * 100, Phase::Ok, 100)).collect());
        assert_eq!(availability(&good, &slo).verdict, Verdict::Pass);
        // A hung operation the workload gave up on counts with the time it waited.
        let lenient = AvailabilitySlo {
            min_success_ratio: Some(0.5),
            p99: Some(std::time::Duration::from_millis(500)),
            recover_within: None,
        };
        let mut events: Vec<Event> = (0..20).map(|i| op(i, i * 100, Phase::Ok, 100)).collect();
        events.push(op(20, 2100, Phase::Info, 10_000));
        let r = availability(&Timeline::merge(events), &lenient);
        assert!(
            r.verdict == Verdict::Fail && r.evidence.iter().any(|e| e.contains("p99")),
            "{r:?}"
        );
        let mut events: Vec<Event> = (0..10).map(|i| op(i, i * 100, Phase::Ok, 100)).collect();
        events.extend((10..20).map(|i| op(i, i * 100, Phase::Fail, 900)));
        let r = availability(&Timeline::merge(events), &slo);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("success 50.0% < 90.0%"))
                && r.evidence.iter().any(|e| e.contains("p99")),
            "{r:?}"
        );
        // Slow recovery after a fault: the first success comes 5 s after it ended.
        let fault = |at: u64, ev: &str| {
            Event::fault(FaultEvent {
                at_us: at * 1000,
                id: 1,
                fault: "outage".into(),
                kind: "http_error".into(),
                dependency: None,
                event: ev.into(),
            })
        };
        let mut events = vec![fault(0, "activated"), fault(1000, "removed")];
        events.push(Event::op(OpEvent {
            at_us: 1_100_000,
            op: 50,
            name: "book".into(),
            key: "k".into(),
            phase: Phase::Invoke,
            status: None,
            latency_us: None,
            error: None,
            trace_id: None,
            captured: Default::default(),
            partial: false,
        }));
        events.push(op(50, 6000, Phase::Ok, 100));
        let r = availability(&Timeline::merge(events), &slo);
        assert!(
            r.evidence.iter().any(|e| e.contains("recovered 5.000s")),
            "{r:?}"
        );
        assert_eq!(
            availability(&Timeline::default(), &slo).verdict,
            Verdict::Skip
        );
    }
}
