//! Phase 6, clean up, whatever happened before: every fault cleared, the SUT stopped (its
//! process group, or the reference integration after its compensations' grace), the org's
//! final state read, the mocks' histories and the fault events gathered, the mocks stopped.

use crashcart_mocks::salesforce::store::{Precondition, WriteKind};
use crashcart_mocks::SalesforceHandle;

use super::environment::Environment;
use super::recorder::Recorder;
use super::start::StartedSut;
use crate::checks::{FinalState, RecordWrite};
use crate::scenario::Scenario;
use crate::timeline::Event;

/// The sObjects whose final state the checkers see.
const OBJECTS: [&str; 4] = ["Account", "Contact", "Case", "Event"];

/// What cleanup gathered for the judges.
pub struct Gathered {
    /// Every event of the run, unsorted.
    pub events: Vec<Event>,
    /// The org at the end.
    pub state: FinalState,
}

/// Clear, stop, read, gather. `active_at_end` is the count of faults the drive saw in force.
pub async fn clean_up(
    s: &Scenario,
    env: Environment,
    sut: Option<StartedSut>,
    rec: &Recorder,
    active_at_end: usize,
) -> Gathered {
    let active = active_at_end.max(env.engine.active().len());
    env.engine.clear_all();
    rec.mark(format!(
        "faults cleared ({active} were active, {} now)",
        env.engine.active().len()
    ));
    stop_sut(s, sut, rec).await;
    let mut events = rec.take();
    let mut state = FinalState::default();
    if let Some(sf) = env.salesforce_handle() {
        state = final_state(sf);
        events.extend(requests(&sf.history()));
    }
    if let Some(llm) = env.llm_handle() {
        events.extend(requests(&llm.history()));
    }
    events.extend(env.engine.events().into_iter().map(Event::Fault));
    env.shutdown().await;
    events.push(Event::Run {
        at_us: rec.now_us(),
        what: "end".into(),
    });
    Gathered { events, state }
}

/// Stop the SUT: SIGTERM to its group then SIGKILL after the grace, or the reference
/// integration with the grace for its background compensations.
async fn stop_sut(s: &Scenario, sut: Option<StartedSut>, rec: &Recorder) {
    let Some(sut) = sut else { return };
    if let Some(p) = sut.process {
        p.stop(s.grace).await;
        rec.mark("SUT stopped");
    }
    if let Some(r) = sut.reference {
        let left = r.stop(s.grace).await;
        rec.mark(format!(
            "reference integration stopped ({left} compensations still running)"
        ));
    }
}

fn requests(h: &crashcart_mocks::History) -> impl Iterator<Item = Event> {
    h.snapshot()
        .into_iter()
        .map(|r| Event::Request(Box::new(r)))
}

/// The org's records, deletions and accepted writes, as the checkers read them.
fn final_state(sf: &SalesforceHandle) -> FinalState {
    let mut state = FinalState {
        sut_user: Some(sf.connection_settings().username.clone()),
        ..FinalState::default()
    };
    for o in OBJECTS {
        state.records.insert(o.to_string(), sf.records(o));
    }
    for w in sf.writes() {
        if w.kind == WriteKind::Delete {
            state.deleted_at.insert(w.id.clone(), w.at_us);
        }
        state.writes.push(RecordWrite {
            at_us: w.at_us,
            object: w.object,
            id: w.id,
            kind: match w.kind {
                WriteKind::Create => "create",
                WriteKind::Update => "update",
                WriteKind::Delete => "delete",
            }
            .into(),
            fields: w.fields,
            user: w.user,
            conditional: w.precondition != Precondition::None,
        });
    }
    state
}
