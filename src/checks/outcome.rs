//! Checkers over what the workload saw (operation outcomes and latency) and what it left
//! behind in Salesforce (consistency and rollback).

use std::collections::BTreeMap;

use serde_json::Value;

use super::traffic::fault_windows;
use super::{secs, FinalState, SloResult};
use crate::fault::FaultEvent;
use crate::scenario::domain::{AvailabilitySlo, ConsistencySlo, Operation};
use crate::scenario::template;
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
                    o.status
                        .map(|s| format!(" {s}"))
                        .or(o.error.clone().map(|e| format!(" {e}")))
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
    // Per fault window: latency inside, and recovery after.
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
    if !notes.is_empty() {
        res.measured.push_str(&format!("; {}", notes.join(", ")));
    }
    res
}

fn live<'a>(state: &'a FinalState, object: &str) -> impl Iterator<Item = &'a Value> + 'a {
    state
        .records
        .get(object)
        .into_iter()
        .flatten()
        .filter(|r| r["IsDeleted"] != Value::Bool(true))
}

fn matches(record: &Value, fields: &BTreeMap<String, String>) -> bool {
    fields
        .iter()
        .all(|(k, v)| record.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

/// The consistency and rollback SLO (end state: compensation timing is not checked yet).
pub fn consistency(
    t: &Timeline,
    state: &FinalState,
    operations: &[Operation],
    seed: u64,
    slo: &ConsistencySlo,
) -> SloResult {
    let ConsistencySlo { compensate_within } = slo;
    let mut res = SloResult::new("consistency", "ok ⇒ exactly once, fail ⇒ absent, unknown ⇒ whole or absent; no orphans, duplicates or double bookings");
    let by_name: BTreeMap<&str, &Operation> =
        operations.iter().map(|o| (o.name.as_str(), o)).collect();
    let outcomes: Vec<&OpEvent> = t.ops().filter(|o| o.phase != Phase::Invoke).collect();
    let mut checked = 0;
    for o in &outcomes {
        let Some(spec) = by_name.get(o.name.as_str()) else {
            continue;
        };
        if spec.effects.is_empty() {
            continue;
        }
        checked += 1;
        let values = template::values(seed, o.op);
        // A failed operation's records that were deleted (compensated): in time?
        if let (Phase::Fail, Some(limit)) = (o.phase, compensate_within) {
            for e in &spec.effects {
                let fields: BTreeMap<String, String> = e
                    .matches
                    .iter()
                    .map(|(k, v)| (k.clone(), template::render(v, &values)))
                    .collect();
                let deleted = state
                    .records
                    .get(&e.object)
                    .into_iter()
                    .flatten()
                    .filter(|r| r["IsDeleted"] == Value::Bool(true) && matches(r, &fields));
                for r in deleted {
                    let id = r["Id"].as_str().unwrap_or("?");
                    if let Some(at) = state.deleted_at.get(id) {
                        if at.saturating_sub(o.at_us) > limit.as_micros() as u64 {
                            res.fail(format!("op {} {} ({}) failed at {}; its {} {id} was compensated only {} later", o.op, o.name, o.key, secs(o.at_us), e.object, secs(at - o.at_us)));
                        }
                    }
                }
            }
        }
        let found: Vec<(String, usize, u32)> = spec
            .effects
            .iter()
            .map(|e| {
                let fields: BTreeMap<String, String> = e
                    .matches
                    .iter()
                    .map(|(k, v)| (k.clone(), template::render(v, &values)))
                    .collect();
                (
                    e.object.clone(),
                    live(state, &e.object)
                        .filter(|r| matches(r, &fields))
                        .count(),
                    e.count,
                )
            })
            .collect();
        for (object, n, want) in &found {
            match o.phase {
                Phase::Ok if *n != *want as usize => res.fail(format!(
                    "op {} {} ({}) succeeded but left {n} {object} (expected {want})",
                    o.op, o.name, o.key
                )),
                Phase::Fail if *n > 0 => res.fail(format!(
                    "op {} {} ({}) failed but left {n} {object}: not compensated",
                    o.op, o.name, o.key
                )),
                _ => {}
            }
        }
        if o.phase == Phase::Info {
            let whole = found.iter().all(|(_, n, want)| *n == *want as usize);
            let absent = found.iter().all(|(_, n, _)| *n == 0);
            if !whole && !absent {
                res.fail(format!(
                    "op {} {} ({}) has an unknown outcome and left a partial result: {}",
                    o.op,
                    o.name,
                    o.key,
                    found
                        .iter()
                        .map(|(ob, n, w)| format!("{n}/{w} {ob}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    // Orphans: appointments whose patient is gone.
    let contacts: std::collections::BTreeSet<&str> = live(state, "Contact")
        .filter_map(|c| c["Id"].as_str())
        .collect();
    for e in live(state, "Event") {
        if let Some(who) = e["WhoId"].as_str() {
            if who.starts_with("003") && !contacts.contains(who) {
                res.fail(format!(
                    "orphan Event {} points at missing Contact {who}",
                    e["Id"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    // Double bookings: one owner, overlapping times.
    let mut by_owner: BTreeMap<&str, Vec<(&str, &str, &str)>> = BTreeMap::new();
    for e in live(state, "Event") {
        if let (Some(owner), Some(s), Some(end)) = (
            e["OwnerId"].as_str(),
            e["StartDateTime"].as_str(),
            e["EndDateTime"].as_str(),
        ) {
            by_owner
                .entry(owner)
                .or_default()
                .push((s, end, e["Id"].as_str().unwrap_or("?")));
        }
    }
    for (owner, mut slots) in by_owner {
        slots.sort();
        for w in slots.windows(2) {
            if w[1].0 < w[0].1 {
                res.fail(format!(
                    "double booking of {owner}: {} ({}–{}) and {} ({}–{})",
                    w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
                ));
            }
        }
    }
    // Lost updates: a blind update of fields another user wrote last.
    let mut last: BTreeMap<&str, &super::RecordWrite> = BTreeMap::new();
    let mut lost = 0;
    for w in &state.writes {
        let by_sut = state.sut_user.is_none() || state.sut_user == w.user;
        if w.kind == "update" && !w.conditional && by_sut {
            if let Some(prev) = last.get(w.id.as_str()) {
                let overlap: Vec<&String> = w
                    .fields
                    .iter()
                    .filter(|f| prev.fields.contains(f))
                    .collect();
                if prev.user != w.user && !overlap.is_empty() {
                    lost += 1;
                    res.fail(format!(
                        "lost update: {} {} — {}'s edit of {} at {} was overwritten by a blind update from {} at {}",
                        w.object,
                        w.id,
                        prev.user.as_deref().unwrap_or("another user"),
                        overlap.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                        secs(prev.at_us),
                        w.user.as_deref().unwrap_or("the SUT"),
                        secs(w.at_us)
                    ));
                }
            }
        }
        last.insert(&w.id, w);
    }
    if lost > 0 {
        checked = checked.max(1);
    }
    if checked == 0 && res.evidence.is_empty() {
        return res.skip("no operation with declared effects completed");
    }
    res.measured = format!(
        "{checked} operations checked against the final state, {} problem(s)",
        res.evidence.len()
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Verdict;
    use crate::scenario::domain::Effect;
    use crate::timeline::Event;
    use serde_json::json;

    fn op(n: u64, at_ms: u64, phase: Phase, latency_ms: u64) -> Event {
        Event::Op(OpEvent {
            at_us: at_ms * 1000,
            op: n,
            name: "book".into(),
            key: template::values(1, n)["key"].clone(),
            phase,
            status: Some(if phase == Phase::Ok { 201 } else { 503 }),
            latency_us: Some(latency_ms * 1000),
            error: None,
        })
    }

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
            Event::Fault(FaultEvent {
                at_us: at * 1000,
                id: 1,
                fault: "outage".into(),
                kind: "http_error".into(),
                dependency: None,
                event: ev.into(),
            })
        };
        let mut events = vec![fault(0, "activated"), fault(1000, "removed")];
        events.push(Event::Op(OpEvent {
            at_us: 1_100_000,
            op: 50,
            name: "book".into(),
            key: "k".into(),
            phase: Phase::Invoke,
            status: None,
            latency_us: None,
            error: None,
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

    #[test]
    fn consistency_finds_leftovers_partials_orphans_and_double_bookings() {
        let ops = vec![Operation {
            name: "book".into(),
            weight: 1,
            method: http::Method::POST,
            path: "/appointments".into(),
            body: None,
            effects: vec![
                Effect {
                    object: "Event".into(),
                    matches: [("Booking_Key__c".to_string(), "{{key}}".to_string())].into(),
                    count: 1,
                },
                Effect {
                    object: "Contact".into(),
                    matches: [(
                        "Patient_External_Id__c".to_string(),
                        "{{patient.external_id}}".to_string(),
                    )]
                    .into(),
                    count: 1,
                },
            ],
        }];
        let slo = ConsistencySlo {
            compensate_within: None,
        };
        let v = |n| template::values(1, n);
        let contact = |n: u64, id: &str| json!({"Id": id, "Patient_External_Id__c": v(n)["patient.external_id"], "IsDeleted": false});
        let event = |n: u64, id: &str, who: &str, start: &str, end: &str| json!({"Id": id, "Booking_Key__c": v(n)["key"], "WhoId": who, "OwnerId": "005A", "StartDateTime": start, "EndDateTime": end, "IsDeleted": false});
        // op 0 ok and whole; op 1 failed and left nothing.
        let good_state = FinalState {
            records: [
                ("Contact".to_string(), vec![contact(0, "003A")]),
                (
                    "Event".to_string(),
                    vec![event(
                        0,
                        "00UA",
                        "003A",
                        "2027-01-01T09:00",
                        "2027-01-01T09:30",
                    )],
                ),
            ]
            .into(),
            ..Default::default()
        };
        let timeline = Timeline::merge(vec![op(0, 10, Phase::Ok, 5), op(1, 20, Phase::Fail, 5)]);
        assert_eq!(
            consistency(&timeline, &good_state, &ops, 1, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            consistency(&timeline, &good_state, &ops, 1, &slo)
        );
        // op 1 failed but its Contact stayed (no compensation); op 2 unknown and partial;
        // an orphan Event and a double booking.
        let bad_state = FinalState {
            records: [
                (
                    "Contact".to_string(),
                    vec![contact(0, "003A"), contact(1, "003B"), contact(2, "003C")],
                ),
                (
                    "Event".to_string(),
                    vec![
                        event(0, "00UA", "003A", "2027-01-01T09:00", "2027-01-01T09:30"),
                        event(9, "00UZ", "003GONE", "2027-01-01T09:15", "2027-01-01T09:45"),
                    ],
                ),
            ]
            .into(),
            ..Default::default()
        };
        let timeline = Timeline::merge(vec![
            op(0, 10, Phase::Ok, 5),
            op(1, 20, Phase::Fail, 5),
            op(2, 30, Phase::Info, 5),
        ]);
        let r = consistency(&timeline, &bad_state, &ops, 1, &slo);
        assert_eq!(r.verdict, Verdict::Fail);
        let all = r.evidence.join("\n");
        assert!(all.contains("not compensated"), "{all}");
        assert!(all.contains("partial result"), "{all}");
        assert!(all.contains("orphan Event 00UZ"), "{all}");
        assert!(all.contains("double booking of 005A"), "{all}");
    }
}

#[cfg(test)]
mod compensation_tests {
    use super::*;
    use crate::checks::Verdict;
    use crate::scenario::domain::Effect;
    use crate::timeline::Event;
    use serde_json::json;

    #[test]
    fn a_compensation_must_come_within_its_limit() {
        let ops = vec![Operation {
            name: "book".into(),
            weight: 1,
            method: http::Method::POST,
            path: "/appointments".into(),
            body: None,
            effects: vec![Effect {
                object: "Contact".into(),
                matches: [(
                    "Patient_External_Id__c".to_string(),
                    "{{patient.external_id}}".to_string(),
                )]
                .into(),
                count: 1,
            }],
        }];
        let slo = ConsistencySlo {
            compensate_within: Some(std::time::Duration::from_secs(5)),
        };
        let v = template::values(1, 0);
        let failed = Timeline::merge(vec![Event::Op(OpEvent {
            at_us: 1_000_000,
            op: 0,
            name: "book".into(),
            key: v["key"].clone(),
            phase: Phase::Fail,
            status: Some(502),
            latency_us: Some(10),
            error: None,
        })]);
        let state = |deleted_at_us: u64| {
            FinalState {
            records: [("Contact".to_string(), vec![json!({"Id": "003A", "Patient_External_Id__c": v["patient.external_id"], "IsDeleted": true})])].into(),
            deleted_at: [("003A".to_string(), deleted_at_us)].into(),
            writes: vec![],
            sut_user: None,
        }
        };
        assert_eq!(
            consistency(&failed, &state(3_000_000), &ops, 1, &slo).verdict,
            Verdict::Pass
        );
        let late = consistency(&failed, &state(9_000_000), &ops, 1, &slo);
        assert_eq!(late.verdict, Verdict::Fail);
        assert!(
            late.evidence[0].contains("compensated only 8.000s later"),
            "{late:?}"
        );
    }

    #[test]
    fn consistency_reports_a_blind_overwrite_of_another_users_edit() {
        let slo = ConsistencySlo {
            compensate_within: None,
        };
        let w = |at: u64, kind: &str, user: &str, fields: &[&str], conditional: bool| {
            crate::checks::RecordWrite {
                at_us: at,
                object: "Contact".into(),
                id: "003A".into(),
                kind: kind.into(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
                user: Some(user.into()),
                conditional,
            }
        };
        let sut = "integration@crashcart.test";
        let doc = "dr.adams@crashcart.test";
        let mut state = FinalState {
            writes: vec![
                w(1, "create", sut, &["LastName", "Phone"], false),
                w(2, "update", doc, &["Phone"], false),
                w(3, "update", sut, &["Phone", "Email"], false),
            ],
            sut_user: Some(sut.into()),
            ..FinalState::default()
        };
        let r = consistency(&Timeline::default(), &state, &[], 1, &slo);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("lost update") && r.evidence[0].contains("Phone"));
        // The same write made conditional (it was accepted, so it was based on the edit).
        state.writes[2].conditional = true;
        let r = consistency(&Timeline::default(), &state, &[], 1, &slo);
        assert_ne!(r.verdict, Verdict::Fail, "{r:?}");
        // A blind update of fields the other user did not touch is not a lost update.
        state.writes[2] = w(3, "update", sut, &["Email"], false);
        let r = consistency(&Timeline::default(), &state, &[], 1, &slo);
        assert_ne!(r.verdict, Verdict::Fail, "{r:?}");
    }
}
