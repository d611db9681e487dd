//! The consistency and rollback SLO: what the workload left behind in Salesforce. Each
//! operation's declared effects against the org's final state (exactly once, absent, whole
//! or absent), compensations in time, and what no single operation owns: orphans, double
//! bookings, lost updates.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{secs, FinalState, RecordWrite, SloResult};
use crate::scenario::domain::{ConsistencySlo, DoubleBooking, Effect, OnFailure, Operation};
use crate::scenario::template::{self, Lookup};
use crate::timeline::{OpEvent, Phase, Timeline};

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

/// The consistency and rollback SLO: each operation's declared effects against the org's
/// final state, then what no single operation owns (orphans, double bookings, lost updates).
pub fn consistency(
    t: &Timeline,
    state: &FinalState,
    operations: &[Operation],
    seed: u64,
    slo: &ConsistencySlo,
) -> SloResult {
    let mut res = SloResult::new("consistency", "ok ⇒ exactly once (eventual effects in their time, at most their writes), fail ⇒ absent, unknown ⇒ whole or absent; no orphans, duplicates or double bookings");
    let by_name: BTreeMap<&str, &Operation> =
        operations.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut checked = 0;
    let mut times = EventualTimes::default();
    // The SUT's writes by record, indexed once for the eventual effects (if any).
    let by_record = std::cell::OnceCell::new();
    for o in t.ops().filter(|o| o.phase != Phase::Invoke) {
        let Some(spec) = by_name.get(o.name.as_str()) else {
            continue;
        };
        if spec.effects.is_empty() {
            continue;
        }
        checked += 1;
        let values = template::values(seed, o.op);
        let values = (&values, &o.captured);
        if let (Phase::Fail, Some(limit), false) = (o.phase, slo.compensate_within, o.partial) {
            compensation_times(o, spec, &values, state, limit, &mut res);
        }
        effects_left(o, spec, &values, state, &mut res);
        if o.phase == Phase::Ok {
            let writes = by_record.get_or_init(|| sut_writes_by_record(state));
            eventual(o, spec, &values, state, writes, &mut times, &mut res);
        }
    }
    orphans(state, &mut res);
    if let Some(db) = &slo.double_booking {
        double_bookings(state, db, &mut res);
    }
    if lost_updates(state, &mut res) > 0 {
        checked = checked.max(1);
    }
    if checked == 0 && res.evidence.is_empty() {
        return res.skip("no operation with declared effects completed");
    }
    res.measured = format!(
        "{checked} operations checked against the final state, {} problem(s){}",
        res.problems(),
        times.summary()
    );
    res
}

/// How long eventual effects took, and how many could not be judged.
#[derive(Default)]
struct EventualTimes {
    /// Time from each operation's end to its effect, µs (met in time or not).
    took: Vec<u64>,
    /// Effects not seen whose time was not up when the state was read.
    unjudged: usize,
}

impl EventualTimes {
    fn summary(&self) -> String {
        let mut out = String::new();
        if !self.took.is_empty() {
            let mut t = self.took.clone();
            t.sort_unstable();
            out = format!(
                "; eventual effects written after p50 {}, max {} ({} seen)",
                secs(t[t.len() / 2]),
                secs(t[t.len() - 1]),
                t.len()
            );
        }
        if self.unjudged > 0 {
            out.push_str(&format!(
                "; {} eventual effect(s) not judged: the run ended before their time was up",
                self.unjudged
            ));
        }
        out
    }
}

/// A write the SUT made (every writer's when the SUT's user is unknown).
fn by_sut(state: &FinalState, w: &RecordWrite) -> bool {
    state.sut_user.is_none() || state.sut_user == w.user
}

/// The SUT's accepted writes, by record id, in order.
fn sut_writes_by_record(state: &FinalState) -> BTreeMap<&str, Vec<&RecordWrite>> {
    let mut out: BTreeMap<&str, Vec<&RecordWrite>> = BTreeMap::new();
    for w in state.writes.iter().filter(|w| by_sut(state, w)) {
        out.entry(w.id.as_str()).or_default().push(w);
    }
    out
}

/// Eventual effects of a successful operation: the SUT's write to each matching record
/// within the effect's time (each `written` field set by one of its writes), and at most
/// `max_writes` writes by the SUT to it from the operation's start on.
fn eventual(
    o: &OpEvent,
    spec: &Operation,
    values: &impl Lookup,
    state: &FinalState,
    sut_writes: &BTreeMap<&str, Vec<&RecordWrite>>,
    times: &mut EventualTimes,
    res: &mut SloResult,
) {
    let invoked = o.at_us.saturating_sub(o.latency_us.unwrap_or(0));
    let head = format!("op {} {} ({})", o.op, o.name, o.key);
    for e in spec
        .effects
        .iter()
        .filter(|e| e.within.is_some() || e.max_writes.is_some())
    {
        let fields = rendered(e, values);
        let ids: Vec<&str> = live(state, &e.object)
            .filter(|r| matches(r, &fields))
            .filter_map(|r| r["Id"].as_str())
            .collect();
        for id in ids {
            let writes: Vec<&RecordWrite> = sut_writes
                .get(id)
                .into_iter()
                .flatten()
                .copied()
                .filter(|w| w.at_us >= invoked)
                .collect();
            if let Some(max) = e.max_writes {
                if writes.len() > max as usize {
                    res.fail(format!(
                        "{head}: the SUT wrote {} {id} {} times (at most {max}), from {} to {}",
                        e.object,
                        writes.len(),
                        secs(writes[0].at_us),
                        secs(writes[writes.len() - 1].at_us)
                    ));
                }
            }
            let Some(within) = e.within else { continue };
            let limit = within.as_micros() as u64;
            let first = |f: Option<&String>| {
                writes
                    .iter()
                    .find(|w| f.is_none_or(|f| w.fields.contains(f)))
                    .map(|w| w.at_us)
            };
            let at: Option<u64> = if e.written.is_empty() {
                first(None)
            } else {
                e.written
                    .iter()
                    .map(|f| first(Some(f)))
                    .collect::<Option<Vec<u64>>>()
                    .map(|v| v.into_iter().max().unwrap_or(0))
            };
            let what = if e.written.is_empty() {
                format!("{} {id}", e.object)
            } else {
                format!("{}.{} of {id}", e.object, e.written.join(", "))
            };
            match at {
                Some(at) => {
                    let took = at.saturating_sub(o.at_us);
                    times.took.push(took);
                    if took > limit {
                        res.fail(format!(
                            "{head}: {what} written by the SUT only {} after the operation (within {})",
                            secs(took),
                            secs(limit)
                        ));
                    }
                }
                None if state.read_at_us.is_some_and(|r| r < o.at_us + limit) => {
                    times.unjudged += 1
                }
                None => res.fail(format!(
                    "{head}: {what} never written by the SUT (within {}; the state was read {} after the operation)",
                    secs(limit),
                    state
                        .read_at_us
                        .map(|r| secs(r.saturating_sub(o.at_us)))
                        .unwrap_or_else(|| "long".into())
                )),
            }
        }
    }
}

/// An effect's identifying fields, filled for one operation.
fn rendered(e: &Effect, values: &impl Lookup) -> BTreeMap<String, String> {
    e.matches
        .iter()
        .map(|(k, v)| (k.clone(), template::render(v, values)))
        .collect()
}

/// A failed operation's records that were deleted (compensated): in time?
fn compensation_times(
    o: &OpEvent,
    spec: &Operation,
    values: &impl Lookup,
    state: &FinalState,
    limit: std::time::Duration,
    res: &mut SloResult,
) {
    for e in spec
        .effects
        .iter()
        .filter(|e| e.on_failure == OnFailure::Absent)
    {
        let fields = rendered(e, values);
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
                    res.fail(format!(
                        "op {} {} ({}) failed at {}; its {} {id} was compensated only {} later",
                        o.op,
                        o.name,
                        o.key,
                        secs(o.at_us),
                        e.object,
                        secs(at - o.at_us)
                    ));
                }
            }
        }
    }
}

/// What an operation left: exactly its effects if it succeeded; if it failed, none of those
/// rolled back and all of those kept; if its outcome is unknown, all or none of those rolled
/// back, and all of those kept. Effects that may go either way are judged on success only.
fn effects_left(
    o: &OpEvent,
    spec: &Operation,
    values: &impl Lookup,
    state: &FinalState,
    res: &mut SloResult,
) {
    let found: Vec<(&Effect, usize)> = spec
        .effects
        .iter()
        .map(|e| {
            let fields = rendered(e, values);
            (
                e,
                live(state, &e.object)
                    .filter(|r| matches(r, &fields))
                    .count(),
            )
        })
        .collect();
    let head = format!("op {} {} ({})", o.op, o.name, o.key);
    for (e, n) in &found {
        // Named by the fields that identify it, so two effects on one sObject read apart.
        let object = &format!(
            "{} by {}",
            e.object,
            e.matches.keys().cloned().collect::<Vec<_>>().join("+")
        );
        let want = e.count as usize;
        // What an operation the SUT did part of leaves of its own effects is not judged
        // (a booking whose reschedule then failed stays booked); what it keeps, still is.
        let on_failure = match e.on_failure {
            OnFailure::Absent if o.partial => OnFailure::Either,
            other => other,
        };
        match (o.phase, on_failure) {
            (Phase::Ok, _) if *n != want => res.fail(format!(
                "{head} succeeded but left {n} {object} (expected {want})"
            )),
            (Phase::Fail, OnFailure::Absent) if *n > 0 => {
                res.fail(format!("{head} failed but left {n} {object}: not compensated"))
            }
            (Phase::Fail | Phase::Info, OnFailure::Kept) if *n != want => res.fail(format!(
                "{head} did not succeed and left {n} {object}, which it keeps whatever the outcome (expected {want})"
            )),
            _ => {}
        }
    }
    if o.phase == Phase::Info && !o.partial {
        let atomic: Vec<&(&Effect, usize)> = found
            .iter()
            .filter(|(e, _)| e.on_failure == OnFailure::Absent)
            .collect();
        let whole = atomic.iter().all(|(e, n)| *n == e.count as usize);
        let absent = atomic.iter().all(|(_, n)| *n == 0);
        if !whole && !absent {
            res.fail(format!(
                "{head} has an unknown outcome and left a partial result: {}",
                atomic
                    .iter()
                    .map(|(e, n)| format!("{n}/{} {}", e.count, e.object))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
}

/// Appointments whose patient is gone.
fn orphans(state: &FinalState, res: &mut SloResult) {
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
}

/// Two live records of one resource whose times overlap.
fn double_bookings(state: &FinalState, db: &DoubleBooking, res: &mut SloResult) {
    let mut by_resource: BTreeMap<&str, Vec<(&str, &str, &str)>> = BTreeMap::new();
    for e in live(state, &db.object) {
        if let (Some(who), Some(s), Some(end)) = (
            e[&db.resource].as_str(),
            e[&db.start].as_str(),
            e[&db.end].as_str(),
        ) {
            by_resource
                .entry(who)
                .or_default()
                .push((s, end, e["Id"].as_str().unwrap_or("?")));
        }
    }
    for (who, mut slots) in by_resource {
        slots.sort();
        for w in slots.windows(2) {
            if w[1].0 < w[0].1 {
                res.fail(format!(
                    "double booking of {who}: {} ({}–{}) and {} ({}–{})",
                    w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
                ));
            }
        }
    }
}

/// A blind update by the SUT of fields another user wrote last; how many.
fn lost_updates(state: &FinalState, res: &mut SloResult) -> usize {
    let mut last: BTreeMap<&str, &RecordWrite> = BTreeMap::new();
    let mut lost = 0;
    for w in &state.writes {
        if w.kind == "update" && !w.conditional && by_sut(state, w) {
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
    lost
}

/// Double bookings of a practitioner, as the shipped scenarios declare them.
#[cfg(test)]
fn owner() -> DoubleBooking {
    DoubleBooking {
        object: "Event".into(),
        resource: "OwnerId".into(),
        start: "StartDateTime".into(),
        end: "EndDateTime".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::traffic::tests::op;
    use crate::checks::Verdict;
    use serde_json::json;

    #[test]
    fn consistency_finds_leftovers_partials_orphans_and_double_bookings() {
        let ops = vec![Operation {
            name: "book".into(),
            weight: 1,
            steps: vec![],
            effects: vec![
                Effect {
                    object: "Event".into(),
                    matches: [("Booking_Key__c".to_string(), "{{key}}".to_string())].into(),
                    count: 1,
                    on_failure: OnFailure::Absent,
                    ..Effect::default()
                },
                Effect {
                    object: "Contact".into(),
                    matches: [(
                        "Patient_External_Id__c".to_string(),
                        "{{patient.external_id}}".to_string(),
                    )]
                    .into(),
                    count: 1,
                    on_failure: OnFailure::Absent,
                    ..Effect::default()
                },
            ],
        }];
        let slo = ConsistencySlo {
            compensate_within: None,
            double_booking: Some(owner()),
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
            steps: vec![],
            effects: vec![Effect {
                object: "Contact".into(),
                matches: [(
                    "Patient_External_Id__c".to_string(),
                    "{{patient.external_id}}".to_string(),
                )]
                .into(),
                count: 1,
                on_failure: OnFailure::Absent,
                ..Effect::default()
            }],
        }];
        let slo = ConsistencySlo {
            compensate_within: Some(std::time::Duration::from_secs(5)),
            double_booking: Some(owner()),
        };
        let v = template::values(1, 0);
        let failed = Timeline::merge(vec![Event::op(OpEvent {
            at_us: 1_000_000,
            op: 0,
            name: "book".into(),
            key: v["key"].clone(),
            phase: Phase::Fail,
            status: Some(502),
            latency_us: Some(10),
            error: None,
            trace_id: None,
            captured: Default::default(),
            partial: false,
        })]);
        let state = |deleted_at_us: u64| {
            FinalState {
            records: [("Contact".to_string(), vec![json!({"Id": "003A", "Patient_External_Id__c": v["patient.external_id"], "IsDeleted": true})])].into(),
            deleted_at: [("003A".to_string(), deleted_at_us)].into(),
            writes: vec![],
            sut_user: None,
            read_at_us: None,
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
            double_booking: Some(owner()),
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

#[cfg(test)]
mod declared_tests {
    use super::*;
    use crate::checks::traffic::tests::op;
    use crate::checks::Verdict;
    use serde_json::json;

    fn booking(on_failure: OnFailure) -> Vec<Operation> {
        let effect = |object: &str, field: &str, value: &str, on_failure| Effect {
            object: object.into(),
            matches: [(field.to_string(), value.to_string())].into(),
            count: 1,
            on_failure,
            ..Effect::default()
        };
        vec![Operation {
            name: "book".into(),
            weight: 1,
            steps: vec![],
            effects: vec![
                effect("Event", "Booking_Key__c", "{{key}}", OnFailure::Absent),
                effect(
                    "Contact",
                    "Patient_External_Id__c",
                    "{{patient.external_id}}",
                    on_failure,
                ),
            ],
        }]
    }

    fn patient_of(n: u64) -> Value {
        json!({"Id": "003A", "Patient_External_Id__c": template::values(1, n)["patient.external_id"], "IsDeleted": false})
    }

    #[test]
    fn a_kept_effect_and_one_that_may_go_either_way() {
        let slo = ConsistencySlo {
            compensate_within: None,
            double_booking: None,
        };
        let failed = Timeline::merge(vec![op(0, 10, Phase::Fail, 5)]);
        let with_patient = FinalState {
            records: [("Contact".to_string(), vec![patient_of(0)])].into(),
            ..FinalState::default()
        };
        let judge = |on_failure, state: &FinalState| {
            consistency(&failed, state, &booking(on_failure), 1, &slo)
        };
        // By default a failed booking must leave nothing: its patient record is a leftover.
        let r = judge(OnFailure::Absent, &with_patient);
        assert!(
            r.evidence.iter().any(|e| e.contains("not compensated")),
            "{r:?}"
        );
        // Declared as either, the patient record a failed booking leaves is fine, and so is none.
        assert_eq!(
            judge(OnFailure::Either, &with_patient).verdict,
            Verdict::Pass
        );
        assert_eq!(
            judge(OnFailure::Either, &FinalState::default()).verdict,
            Verdict::Pass
        );
        // Declared as kept, it must be there whatever the outcome.
        assert_eq!(judge(OnFailure::Kept, &with_patient).verdict, Verdict::Pass);
        let r = judge(OnFailure::Kept, &FinalState::default());
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("keeps whatever the outcome")),
            "{r:?}"
        );
    }

    #[test]
    fn double_bookings_are_judged_for_the_declared_resource_only() {
        // The SUT owns every appointment itself; two overlap, for different practitioners.
        let event = |id: &str, practitioner: &str| json!({"Id": id, "OwnerId": "005SUT", "Practitioner__c": practitioner, "StartDateTime": "2027-01-04T08:00:00.000+0000", "EndDateTime": "2027-01-04T08:30:00.000+0000", "IsDeleted": false});
        let state = FinalState {
            records: [(
                "Event".to_string(),
                vec![event("00UA", "005X"), event("00UB", "005Y")],
            )]
            .into(),
            ..FinalState::default()
        };
        let judge = |resource: Option<&str>| {
            let slo = ConsistencySlo {
                compensate_within: None,
                double_booking: resource.map(|r| DoubleBooking {
                    resource: r.into(),
                    ..owner()
                }),
            };
            consistency(&Timeline::default(), &state, &[], 1, &slo)
        };
        // Nothing declared: nothing judged (a skip, for nothing else was checked).
        assert_eq!(judge(None).verdict, Verdict::Skip);
        // By owner they overlap, by practitioner they do not.
        let r = judge(Some("OwnerId"));
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("double booking of 005SUT")),
            "{r:?}"
        );
        assert_ne!(judge(Some("Practitioner__c")).verdict, Verdict::Fail);
    }
}

#[cfg(test)]
mod eventual_tests {
    use super::*;
    use crate::checks::Verdict;
    use crate::timeline::Event;
    use serde_json::json;
    use std::time::Duration;

    const SUT: &str = "integration@crashcart.test";
    const CLINICIAN: &str = "dr.okafor@crashcart.test";

    /// A clinician opens Case 500A (op 0, ended at 1 s); the SUT must summarise it within
    /// 5 s, once.
    fn ops() -> Vec<Operation> {
        vec![Operation {
            name: "open-case".into(),
            weight: 1,
            steps: vec![],
            effects: vec![Effect {
                object: "Case".into(),
                matches: [("Id".to_string(), "{{case_id}}".to_string())].into(),
                count: 1,
                within: Some(Duration::from_secs(5)),
                written: vec!["AI_Summary__c".into()],
                max_writes: Some(1),
                ..Effect::default()
            }],
        }]
    }

    fn opened() -> Timeline {
        Timeline::merge(vec![Event::op(OpEvent {
            at_us: 1_000_000,
            op: 0,
            name: "open-case".into(),
            key: template::values(1, 0)["key"].clone(),
            phase: Phase::Ok,
            status: Some(201),
            latency_us: Some(1_000),
            error: None,
            trace_id: None,
            captured: [("case_id".to_string(), "500A".to_string())].into(),
            partial: false,
        })])
    }

    fn write(at_us: u64, user: &str, fields: &[&str]) -> RecordWrite {
        RecordWrite {
            at_us,
            object: "Case".into(),
            id: "500A".into(),
            kind: "update".into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            user: Some(user.into()),
            conditional: false,
        }
    }

    fn judged(writes: Vec<RecordWrite>, read_at_us: u64) -> SloResult {
        let state = FinalState {
            records: [(
                "Case".to_string(),
                vec![json!({"Id": "500A", "IsDeleted": false})],
            )]
            .into(),
            writes: [
                vec![RecordWrite {
                    kind: "create".into(),
                    ..write(999_000, CLINICIAN, &["Subject"])
                }],
                writes,
            ]
            .concat(),
            sut_user: Some(SUT.into()),
            read_at_us: Some(read_at_us),
            ..FinalState::default()
        };
        let slo = ConsistencySlo {
            compensate_within: None,
            double_booking: None,
        };
        consistency(&opened(), &state, &ops(), 1, &slo)
    }

    #[test]
    fn a_summary_written_once_in_time_passes_and_its_time_is_reported() {
        let r = judged(vec![write(3_500_000, SUT, &["AI_Summary__c"])], 20_000_000);
        assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.evidence);
        assert!(r.measured.contains("p50 2.500s"), "{}", r.measured);
    }

    #[test]
    fn late_never_and_repeated_summaries_fail_each_for_its_reason() {
        let late = judged(vec![write(7_000_000, SUT, &["AI_Summary__c"])], 20_000_000);
        assert_eq!(late.verdict, Verdict::Fail);
        assert!(
            late.evidence[0].contains("only 6.000s after"),
            "{:?}",
            late.evidence
        );

        // The clinician's own edit of the field is not the SUT's write.
        let never = judged(
            vec![write(2_000_000, CLINICIAN, &["AI_Summary__c"])],
            20_000_000,
        );
        assert_eq!(never.verdict, Verdict::Fail);
        assert!(
            never.evidence[0].contains("never written by the SUT"),
            "{:?}",
            never.evidence
        );

        let polls = (0..4)
            .map(|i| write(2_000_000 + i * 500_000, SUT, &["AI_Summary__c"]))
            .collect();
        let again = judged(polls, 20_000_000);
        assert_eq!(again.verdict, Verdict::Fail);
        assert!(
            again.evidence[0].contains("4 times (at most 1)"),
            "{:?}",
            again.evidence
        );

        // Another field written in time is not the summary.
        let other = judged(vec![write(2_000_000, SUT, &["Status"])], 20_000_000);
        assert_eq!(other.verdict, Verdict::Fail);
    }

    #[test]
    fn an_effect_whose_time_was_not_up_when_the_state_was_read_is_not_judged() {
        let r = judged(vec![], 4_000_000);
        assert_eq!(r.verdict, Verdict::Pass);
        assert!(
            r.measured.contains("1 eventual effect(s) not judged"),
            "{}",
            r.measured
        );
    }
}

#[cfg(test)]
mod partial_tests {
    use super::*;
    use crate::checks::Verdict;
    use crate::timeline::Event;
    use serde_json::json;

    #[test]
    fn a_failure_after_part_of_an_operation_happened_is_not_judged_as_rolled_back() {
        let ops = vec![Operation {
            name: "book-then-reschedule".into(),
            weight: 1,
            steps: vec![],
            effects: vec![Effect {
                object: "Event".into(),
                matches: [("Booking_Key__c".to_string(), "{{key}}".to_string())].into(),
                count: 1,
                ..Effect::default()
            }],
        }];
        let key = template::values(1, 0)["key"].clone();
        let failed = |partial| {
            Timeline::merge(vec![Event::op(OpEvent {
                at_us: 1_000_000,
                op: 0,
                name: "book-then-reschedule".into(),
                key: key.clone(),
                phase: Phase::Fail,
                status: Some(409),
                latency_us: Some(10),
                error: Some("reschedule: status 409, expected 2xx".into()),
                trace_id: None,
                captured: Default::default(),
                partial,
            })])
        };
        let state = FinalState {
            records: [(
                "Event".to_string(),
                vec![json!({"Id": "00UA", "Booking_Key__c": key, "IsDeleted": false})],
            )]
            .into(),
            ..FinalState::default()
        };
        let slo = ConsistencySlo {
            compensate_within: None,
            double_booking: None,
        };
        let whole = consistency(&failed(false), &state, &ops, 1, &slo);
        assert_eq!(
            whole.verdict,
            Verdict::Fail,
            "a failed booking left its Event"
        );
        assert!(whole.evidence[0].contains("not compensated"));
        let part = consistency(&failed(true), &state, &ops, 1, &slo);
        assert_eq!(part.verdict, Verdict::Pass, "{:?}", part.evidence);
    }
}
