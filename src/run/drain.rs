//! Phase 5, drain: after the workload, with every fault cleared and no new operation, the SUT
//! keeps running so that what it does in the background (compensations retried, queued
//! writes) can finish before the final state is judged. The drain ends once the mocks have
//! seen no request for `quiet` (but not before the longest eventual effect's `within`), or
//! after `max`.

use std::time::Duration;

use tokio::time::Instant;

use super::environment::Environment;
use super::recorder::Recorder;
use crate::scenario::domain::Drain;

/// How often the mocks' traffic is looked at.
const POLL: Duration = Duration::from_millis(100);

/// Requests the mocks have seen (arrived or finished): it stands still when the SUT is quiet.
fn traffic(env: &Environment) -> (u64, u64) {
    let mut seen = (0, 0);
    for h in [
        env.salesforce_handle().map(|s| s.history()),
        env.llm_handle().map(|l| l.history()),
    ]
    .into_iter()
    .flatten()
    {
        seen.0 += h.arrivals();
        seen.1 += h.completed();
    }
    seen
}

/// Wait until the SUT is quiet or the drain's time is up; say how long it took. A Ctrl-C or
/// SIGTERM ends it: the reason to abort.
pub async fn drain(env: &Environment, rec: &Recorder, d: Drain) -> Option<String> {
    if d.max.is_zero() {
        return None;
    }
    let started = Instant::now();
    let until = started + d.max.max(d.min);
    let mut last = traffic(env);
    let mut quiet_since = started;
    let quiet = loop {
        let now = Instant::now();
        if now >= until {
            break false;
        }
        if now >= quiet_since + d.quiet && now >= started + d.min {
            break true;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL.min(until - now)) => {}
            _ = super::shutdown::signal() => return Some("interrupted during the drain (Ctrl-C or SIGTERM)".into()),
        }
        let seen = traffic(env);
        if seen != last {
            (last, quiet_since) = (seen, Instant::now());
        }
    };
    rec.mark(format!(
        "drain ended after {} ({})",
        humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64)),
        if quiet {
            format!("quiet for {}", humantime::format_duration(d.quiet))
        } else {
            "time up".to_string()
        }
    ));
    None
}
