//! Phase 6, clean up, whatever happened before: the SUT stopped (its process group, or the
//! reference integration after its compensations' grace), the org's final state read, the
//! mocks' histories and the fault events gathered (and which faults never fired), the mocks
//! stopped. Faults are cleared when the drive ends, before the drain.

use crashcart_mocks::salesforce::store::{Precondition, WriteKind};
use crashcart_mocks::SalesforceHandle;

use std::collections::BTreeSet;

use super::environment::Environment;
use super::recorder::Recorder;
use super::start::StartedSut;
use crate::checks::{FinalState, RecordWrite};
use crate::fault::schedule::{unfired, Played};
use crate::scenario::domain::Slo;
use crate::scenario::Scenario;
use crate::timeline::journal::Journal;
use crate::timeline::Event;

/// The sObjects whose final state the checkers always see (orphans, double bookings); the
/// objects the scenario's effects name join them.
const OBJECTS: [&str; 4] = ["Account", "Contact", "Case", "Event"];

/// What cleanup gathered for the judges.
pub struct Gathered {
    /// Every event of the run, unsorted.
    pub events: Vec<Event>,
    /// The org at the end.
    pub state: FinalState,
    /// The faults that proved nothing (never applied, never started, or matched no request).
    pub unfired: Vec<String>,
    /// Cleanup was cut short by a Ctrl-C or SIGTERM (the SUT killed at once).
    pub hurried: bool,
    /// The journal, closed.
    pub journal: Journal,
}

/// Clear every fault, saying how many were in force (`active_at_end`: as the drive saw them
/// before its schedule went).
pub fn clear_faults(env: &Environment, rec: &Recorder, active_at_end: usize) {
    let active = active_at_end.max(env.engine.active().len());
    env.engine.clear_all();
    rec.mark(format!(
        "faults cleared ({active} were active, {} now)",
        env.engine.active().len()
    ));
}

/// Stop, read, gather. `played`: what the fault schedule did, when it ran to its end; a
/// signal beyond the first `signals_seen` cuts the SUT's grace short.
pub async fn clean_up(
    s: &Scenario,
    env: Environment,
    sut: Option<StartedSut>,
    rec: &Recorder,
    played: Option<Played>,
    signals_seen: u32,
) -> Gathered {
    env.engine.clear_all();
    let hurried = stop_sut(s, sut, rec, signals_seen).await;
    let unfired = played
        .map(|p| unfired(&s.raw.faults, &p.specs(), &env.engine))
        .unwrap_or_default();
    let state = env
        .salesforce_handle()
        .map(|sf| final_state(sf, &objects(s), rec.now_us()))
        .unwrap_or_default();
    let mut events = rec.take();
    events.extend(env.engine.events().into_iter().map(Event::fault));
    env.shutdown().await;
    let (end, journal) = rec.finish();
    events.push(end);
    Gathered {
        events,
        state,
        unfired,
        hurried,
        journal,
    }
}

/// Stop the SUT: SIGTERM to its group then SIGKILL after the grace, or the reference
/// integration with the grace for its background compensations. Another Ctrl-C or SIGTERM
/// meanwhile cuts the grace short: the group is killed at once. True when it was.
async fn stop_sut(s: &Scenario, sut: Option<StartedSut>, rec: &Recorder, seen: u32) -> bool {
    let Some(sut) = sut else { return false };
    let mut hurried = false;
    if let Some(p) = sut.process {
        hurried = p.stop(s.grace, super::shutdown::after(seen)).await;
        rec.mark(if hurried {
            "SUT killed at once (another Ctrl-C or SIGTERM during cleanup); SUT stopped"
        } else {
            "SUT stopped"
        });
    }
    if let Some(r) = sut.reference {
        let grace = async {
            tokio::select! {
                left = r.stop(s.grace) => (left, false),
                _ = super::shutdown::after(seen) => (0, true),
            }
        };
        let (left, cut) = grace.await;
        hurried |= cut;
        rec.mark(format!(
            "reference integration stopped ({left} compensations still running)"
        ));
    }
    hurried
}

/// The sObjects to read back: those the checkers always look at, and every one the
/// scenario's effects or double-booking check name (custom objects from `schema:` included).
fn objects(s: &Scenario) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = OBJECTS.iter().map(|o| o.to_string()).collect();
    out.extend(
        s.workload
            .operations
            .iter()
            .flat_map(|o| &o.effects)
            .map(|e| e.object.clone()),
    );
    out.extend(s.slos.iter().filter_map(|slo| match slo {
        Slo::Consistency(c) => c.double_booking.as_ref().map(|d| d.object.clone()),
        _ => None,
    }));
    out
}

/// The org's records (of `objects`), deletions and accepted writes, as the checkers read
/// them.
fn final_state(sf: &SalesforceHandle, objects: &BTreeSet<String>, now_us: u64) -> FinalState {
    let mut state = FinalState {
        sut_user: Some(sf.connection_settings().username.clone()),
        read_at_us: Some(now_us),
        ..FinalState::default()
    };
    for o in objects {
        state.records.insert(o.clone(), sf.records(o));
    }
    sf.with_writes(|writes| {
        for w in writes {
            if w.kind == WriteKind::Delete {
                state.deleted_at.insert(w.id.clone(), w.at_us);
            }
            state.writes.push(RecordWrite {
                at_us: w.at_us,
                object: w.object.clone(),
                id: w.id.clone(),
                kind: match w.kind {
                    WriteKind::Create => "create",
                    WriteKind::Update => "update",
                    WriteKind::Delete => "delete",
                }
                .into(),
                fields: w.fields.clone(),
                user: w.user.clone(),
                conditional: w.precondition != Precondition::None,
            });
        }
    });
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_effects_name_are_read_back_custom_ones_included() {
        // Before, only Account, Contact, Case and Event were read: an effect on a custom
        // object of a `schema:` file always failed, whatever the SUT did.
        let dir = std::env::temp_dir().join(format!("crashcart-objects-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("extra.yaml"),
            "objects:\n  Visit_Log__c:\n    keyPrefix: a01\n    label: Visit Log\n    fields:\n      Key__c: {type: string, length: 80}\n",
        )
        .unwrap();
        let f = dir.join("s.yaml");
        std::fs::write(
            &f,
            "duration: 1s\nmocks: {salesforce: {schema: [extra.yaml]}}\nsut: {reference: true}\nworkload: {rate: 1, operations: [{name: a, path: /a, effects: [{object: Visit_Log__c, match: {Key__c: x}}]}]}\n",
        )
        .unwrap();
        let s = crate::scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let objects = objects(&s);
        assert!(
            objects.contains("Visit_Log__c") && objects.contains("Event"),
            "{objects:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
