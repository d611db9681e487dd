//! Playing a fault schedule on the run's clock (tokio time, so a paused clock runs it too).
//!
//! Each [`FaultSpec`] becomes a task: wait until `at`, apply, flap if asked, wait `for`,
//! remove; again every `repeat.every` when repeating (an instance lasts `for`, or until the
//! next one when `for` is absent). Dropping the [`ScheduleHandle`] stops every task, and the
//! guards they hold remove their faults.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::engine::{FaultEngine, FaultError};
use super::model::FaultSpec;

/// The running schedule. Dropping it removes every fault it applied.
#[derive(Debug)]
pub struct ScheduleHandle {
    tasks: Vec<JoinHandle<()>>,
    played: Played,
}

/// What each spec of a schedule did: the engine ids of its instances, or why it could not be
/// applied. Shared with the tasks that play it, and kept after the schedule is dropped.
#[derive(Clone, Debug, Default)]
pub struct Played {
    specs: std::sync::Arc<parking_lot::Mutex<Vec<SpecPlayed>>>,
}

/// One spec's instances.
#[derive(Clone, Debug, Default)]
pub struct SpecPlayed {
    /// The engine's tag of its instances (their hits add up under it).
    pub tag: u64,
    /// Instances applied.
    pub applied: u64,
    /// Why an instance could not be applied, if one could not.
    pub refused: Option<String>,
}

impl Played {
    /// Each spec's instances, in schedule order.
    pub fn specs(&self) -> Vec<SpecPlayed> {
        self.specs.lock().clone()
    }

    fn applied(&self, spec: usize) {
        self.specs.lock()[spec].applied += 1;
    }

    fn tag(&self, spec: usize) -> u64 {
        self.specs.lock()[spec].tag
    }

    fn refused(&self, spec: usize, why: String) {
        self.specs.lock()[spec].refused = Some(why);
    }
}

impl ScheduleHandle {
    /// True when every fault has run its course.
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }
    /// Stop now (same as dropping).
    pub fn stop(self) {}
    /// What each spec did so far (kept after the schedule is dropped).
    pub fn played(&self) -> Played {
        self.played.clone()
    }
}

impl Drop for ScheduleHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// When a spec's instances start, relative to the origin, up to `horizon` (an iterator: how
/// often a fault repeats costs no memory).
pub fn starts(spec: &FaultSpec, horizon: Duration) -> impl Iterator<Item = Duration> {
    let first = spec.at.unwrap_or_default();
    let (every, times) = match spec.repeat {
        Some(r) if !r.every.is_zero() => (Some(r.every), r.times.map(u64::from)),
        _ => (None, Some(1)),
    };
    (0u64..)
        .take_while(move |n| times.is_none_or(|k| *n < k))
        .map(move |n| first + every.unwrap_or_default() * (n.min(u64::from(u32::MAX)) as u32))
        .take_while(move |t| *t <= horizon || every.is_none())
}

impl FaultEngine {
    /// Play `specs` from `origin`. Every spec is checked first; a bad one refuses the whole
    /// schedule (nothing is applied).
    pub fn schedule(
        &self,
        specs: Vec<FaultSpec>,
        origin: Instant,
    ) -> Result<ScheduleHandle, FaultError> {
        for s in &specs {
            self.check(s)?;
        }
        let played = Played::default();
        *played.specs.lock() = specs
            .iter()
            .map(|_| SpecPlayed {
                tag: self.new_tag(),
                ..SpecPlayed::default()
            })
            .collect();
        let mut tasks = vec![];
        for (i, spec) in specs.into_iter().enumerate() {
            let (engine, played) = (self.clone(), played.clone());
            tasks.push(tokio::spawn(async move {
                play(engine, spec, origin, i, played).await
            }));
        }
        Ok(ScheduleHandle { tasks, played })
    }
}

async fn play(engine: FaultEngine, spec: FaultSpec, origin: Instant, index: usize, played: Played) {
    let every = spec.repeat.map(|r| r.every);
    let length = spec.duration.or(every);
    for start in starts(&spec, Duration::from_secs(365 * 24 * 3600)) {
        tokio::time::sleep_until(origin + start).await;
        let guard = match engine.apply_tagged(spec.clone(), Some(played.tag(index))) {
            Ok(g) => g,
            Err(e) => return played.refused(index, e.to_string()),
        };
        played.applied(index);
        let end = length.map(|l| origin + start + l);
        match spec.flap {
            Some(flap) if !(flap.on.is_zero() && flap.off.is_zero()) => loop {
                let off_at = Instant::now() + flap.on;
                if end.is_some_and(|e| off_at >= e) {
                    break;
                }
                tokio::time::sleep_until(off_at).await;
                engine.set_enabled(guard.id(), false);
                let on_at = off_at + flap.off;
                if end.is_some_and(|e| on_at >= e) {
                    break;
                }
                tokio::time::sleep_until(on_at).await;
                engine.set_enabled(guard.id(), true);
            },
            _ => {}
        }
        match end {
            Some(e) => tokio::time::sleep_until(e).await,
            None => std::future::pending::<()>().await,
        }
        drop(guard);
    }
}

/// The faults of a schedule that proved nothing: refused when applied (a drift on a field an
/// earlier drift removed), never started, or (for faults that act per request) hitting no
/// request at all, unless the spec says it may legitimately not fire. In words, one line
/// each.
pub fn unfired(specs: &[FaultSpec], played: &[SpecPlayed], engine: &FaultEngine) -> Vec<String> {
    let mut out = vec![];
    for (spec, p) in specs.iter().zip(played) {
        let (label, kind) = (spec.label(), spec.fault.name());
        if spec.may_not_fire {
            continue;
        }
        if let Some(why) = &p.refused {
            out.push(format!(
                "fault {label} ({kind}) could not be applied: {why}"
            ));
            continue;
        }
        if p.applied == 0 {
            out.push(format!("fault {label} ({kind}) never started"));
            continue;
        }
        let per_request =
            super::family::of(&spec.fault).needs(&spec.fault) == super::family::Need::Any;
        let (hits, matched) = engine.hits(p.tag);
        if per_request && hits == 0 {
            let why = if matched == 0 {
                "its target matched no request".to_string()
            } else {
                format!("its trigger drew none of the {matched} requests its target matched")
            };
            out.push(format!(
                "fault {label} ({kind}) hit no request{}: {why}, so it proved nothing (say `may_not_fire: true` if that can be right)",
                describe_target(&spec.target)
            ));
        }
    }
    out
}

/// A target in words (` on dependency salesforce, sobject Evnet`), empty for none.
fn describe_target(t: &super::model::Target) -> String {
    let parts: Vec<String> = [
        ("dependency", t.dependency.map(|d| d.as_str().to_string())),
        ("route", t.route.clone()),
        ("method", t.method.clone()),
        ("operation", t.operation.clone()),
        ("sobject", t.sobject.clone()),
        ("client_id", t.client_id.clone()),
        ("model", t.model.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" on {}", parts.join(", "))
    }
}
