//! Phase 4, drive: the workload runs while the fault schedule plays; the abort conditions and
//! Ctrl-C/SIGTERM are watched once a second. Ends when the workload does (its operations in
//! flight waited for), or at the first abort.

use std::time::Duration;

use tokio::time::Instant;

use super::environment::Environment;
use super::recorder::Recorder;
use super::start::StartedSut;
use super::step::StepContext;
use super::workload::Driver;
use crate::fault::schedule::Played;
use crate::scenario::Scenario;

/// How the drive ended.
pub struct Driven {
    /// Why it stopped early, if it did.
    pub aborted: Option<String>,
    /// Faults in force when the workload ended (before the schedule was dropped).
    pub active_at_end: usize,
    /// What each fault of the schedule did.
    pub played: Option<Played>,
}

/// The abort conditions of a scenario, checked on each tick.
struct AbortWatch<'a> {
    s: &'a Scenario,
    ready_url: Option<&'a str>,
    health: Option<reqwest::Client>,
    unhealthy_since: Option<Instant>,
}

impl AbortWatch<'_> {
    /// Why to stop now, if the SUT has been unhealthy too long or fails too often.
    async fn check(&mut self, rec: &Recorder) -> Option<String> {
        if let (Some(limit), Some(url), Some(health)) =
            (self.s.raw.abort.unhealthy_for, self.ready_url, &self.health)
        {
            let ok = matches!(health.get(url).send().await, Ok(r) if r.status().is_success());
            match (ok, self.unhealthy_since) {
                (true, _) => self.unhealthy_since = None,
                (false, None) => self.unhealthy_since = Some(Instant::now()),
                (false, Some(t)) if t.elapsed() > limit => {
                    return Some(format!(
                        "SUT unhealthy for more than {}",
                        humantime::format_duration(limit)
                    ))
                }
                _ => {}
            }
        }
        if let (Some(max), Some(r)) = (
            self.s.raw.abort.error_ratio_above,
            rec.recent_error_ratio(Duration::from_secs(10)),
        ) {
            if r > max {
                return Some(format!(
                    "error ratio {:.0}% over the last 10 s passed {:.0}%",
                    r * 100.0,
                    max * 100.0
                ));
            }
        }
        None
    }
}

/// Run the workload and the fault schedule together until the workload ends or an abort.
pub async fn drive(
    s: &Scenario,
    seed: u64,
    env: &Environment,
    sut: &StartedSut,
    rec: &Recorder,
) -> Driven {
    rec.mark("ready");
    let origin = Instant::now();
    let until = origin + s.raw.duration;
    // Checked against the engine before the SUT started, so this cannot refuse now.
    let schedule = match env.engine.schedule(s.raw.faults.clone(), origin) {
        Ok(schedule) => schedule,
        Err(e) => {
            return Driven {
                aborted: Some(format!("the fault schedule was refused: {e}")),
                active_at_end: 0,
                played: None,
            }
        }
    };
    let ctx = StepContext {
        base: sut.base.clone(),
        transport: sut.transport.clone(),
        org: env.salesforce_handle().cloned(),
        command: sut.command_env.clone(),
        recorder: rec.clone(),
    };
    let driver = Driver::new(ctx, seed, rec.clone());
    let workload = driver.run(&s.workload, until);
    tokio::pin!(workload);
    let mut watch = AbortWatch {
        s,
        ready_url: sut.ready_url.as_deref(),
        health: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok(),
        unhealthy_since: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let aborted = loop {
        tokio::select! {
            _ = &mut workload => break None,
            _ = super::shutdown::signal() => break Some("interrupted (Ctrl-C or SIGTERM)".to_string()),
            _ = tick.tick() => if let Some(why) = watch.check(rec).await { break Some(why) },
        }
    };
    // Counted before the schedule goes: dropping it aborts the tasks that hold the fault
    // guards, and an aborted task drops its guards whenever the runtime gets to it.
    let active_at_end = env.engine.active().len();
    let played = Some(schedule.played());
    drop(schedule);
    rec.mark("workload-end");
    Driven {
        aborted,
        active_at_end,
        played,
    }
}
