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
}

impl ScheduleHandle {
    /// True when every fault has run its course.
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }
    /// Stop now (same as dropping).
    pub fn stop(self) {}
}

impl Drop for ScheduleHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// When a spec's instances start, relative to the origin (bounded by `horizon` for endless
/// repeats).
pub fn starts(spec: &FaultSpec, horizon: Duration) -> Vec<Duration> {
    let first = spec.at.unwrap_or_default();
    match spec.repeat {
        None => vec![first],
        Some(r) if r.every.is_zero() => vec![first],
        Some(r) => {
            let mut out = vec![];
            let mut t = first;
            let mut n = 0u32;
            while t <= horizon && r.times.is_none_or(|k| n < k) {
                out.push(t);
                t += r.every;
                n += 1;
            }
            out
        }
    }
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
        let mut tasks = vec![];
        for spec in specs {
            let engine = self.clone();
            tasks.push(tokio::spawn(
                async move { play(engine, spec, origin).await },
            ));
        }
        Ok(ScheduleHandle { tasks })
    }
}

async fn play(engine: FaultEngine, spec: FaultSpec, origin: Instant) {
    let every = spec.repeat.map(|r| r.every);
    let length = spec.duration.or(every);
    for start in starts(&spec, Duration::from_secs(365 * 24 * 3600)) {
        tokio::time::sleep_until(origin + start).await;
        let Ok(guard) = engine.apply(spec.clone()) else {
            return;
        };
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
