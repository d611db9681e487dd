//! The resolved timeline of a scenario, without running it (`crashcart plan`): when each
//! fault instance starts and ends (repeats and flaps unrolled), the workload, the SLOs.

use std::time::Duration;

use super::raw::RawSlo;
use super::validate::{Scenario, SutKind};
use crate::fault::schedule::starts;

/// One line of the plan.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PlanEvent {
    /// Offset from the start of the run, milliseconds.
    pub at_ms: u64,
    /// What happens.
    pub what: String,
}

/// The resolved timeline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// Scenario name.
    pub name: String,
    /// The seed (the given one, or the one a run would print).
    pub seed: u64,
    /// Workload length, milliseconds.
    pub duration_ms: u64,
    /// The longest the run can last once the SUT is ready: the workload, its operations in
    /// flight waited for, the drain, the SUT's grace to stop. Milliseconds.
    pub longest_ms: u64,
    /// Operations expected (open loop), or the concurrency (closed loop).
    pub workload: String,
    /// Events in time order.
    pub events: Vec<PlanEvent>,
}

/// Instances of a repeated fault (and flaps of one instance) a plan lists; the rest are
/// counted.
const MAX_INSTANCES: usize = 100;

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A fault's instances (the first [`MAX_INSTANCES`]) and their flaps (as many again, over
/// all instances), with a line saying how many there are when not all are listed.
fn fault_events(f: &crate::fault::FaultSpec, end: Duration, events: &mut Vec<PlanEvent>) {
    let label = f.label();
    let length = f.duration.or(f.repeat.map(|r| r.every));
    let all = starts(f, end).count();
    if all > MAX_INSTANCES {
        events.push(PlanEvent {
            at_ms: ms(f.at.unwrap_or_default()),
            what: format!("fault {label} starts {all} times; the first {MAX_INSTANCES} are listed"),
        });
    }
    let mut flaps_listed = 0;
    for start in starts(f, end).take(MAX_INSTANCES) {
        let stop = length.map(|l| (start + l).min(end)).unwrap_or(end);
        events.push(PlanEvent {
            at_ms: ms(start),
            what: format!("fault {label} on ({})", f.fault.name()),
        });
        if let Some(flap) = f.flap {
            let mut t = start + flap.on;
            let mut on = true;
            while t < stop {
                if flaps_listed >= MAX_INSTANCES {
                    if flaps_listed == MAX_INSTANCES {
                        flaps_listed += 1;
                        events.push(PlanEvent {
                            at_ms: ms(t),
                            what: format!("fault {label}: further flaps are not listed"),
                        });
                    }
                    break;
                }
                flaps_listed += 1;
                on = !on;
                events.push(PlanEvent {
                    at_ms: ms(t),
                    what: format!("fault {label} flaps {}", if on { "on" } else { "off" }),
                });
                t += if on { flap.on } else { flap.off };
            }
        }
        events.push(PlanEvent {
            at_ms: ms(stop),
            what: format!("fault {label} off"),
        });
    }
}

/// Resolve a scenario's timeline with `seed`.
pub fn plan(s: &Scenario, seed: u64) -> Plan {
    let raw = &s.raw;
    let end = raw.duration;
    let mut events = vec![];
    let sut = match &s.sut {
        SutKind::Command { .. } => format!(
            "start the SUT, wait for readiness (up to {})",
            humantime::format_duration(s.ready_timeout)
        ),
        SutKind::Url(u) => format!("reach the running SUT at {u}"),
        SutKind::Reference => "start the reference integration".to_string(),
        SutKind::Batch { .. } => {
            "no process to start: the workload's run steps are the SUT".to_string()
        }
    };
    events.push(PlanEvent {
        at_ms: 0,
        what: sut,
    });
    let ops: Vec<String> = raw
        .workload
        .operations
        .iter()
        .map(|o| {
            let steps: Vec<String> = super::step::steps_of(o)
                .iter()
                .map(|s| s.describe())
                .collect();
            let eventual: Vec<String> = o
                .effects
                .iter()
                .filter_map(|e| {
                    e.within.map(|t| {
                        format!(
                            "; then {} written by the SUT within {}",
                            e.object,
                            humantime::format_duration(t)
                        )
                    })
                })
                .collect();
            format!(
                "{} {} (weight {}){}",
                o.name,
                steps.join(" → "),
                o.weight,
                eventual.concat()
            )
        })
        .collect();
    let workload = match (raw.workload.rate, raw.workload.concurrency) {
        (Some(r), _) => format!(
            "open loop at {r}/s: about {} operations",
            (r * end.as_secs_f64()).round() as u64
        ),
        (_, Some(c)) => match raw.workload.total {
            Some(t) => format!(
                "closed loop at concurrency {c}, {t} operations in all (ends when they are done)"
            ),
            None => format!("closed loop at concurrency {c}"),
        },
        _ => "none".into(),
    };
    events.push(PlanEvent {
        at_ms: 0,
        what: format!(
            "workload starts: {workload}; operations: {}",
            ops.join("; ")
        ),
    });
    for f in &raw.faults {
        fault_events(f, end, &mut events);
    }
    let timeout = s.workload.timeout;
    let in_flight = end + timeout + Duration::from_secs(1);
    events.push(PlanEvent {
        at_ms: ms(end),
        what: format!(
            "workload stops starting operations; those in flight are waited for, up to {}",
            humantime::format_duration(timeout + Duration::from_secs(1))
        ),
    });
    let drain = if s.drain.max.is_zero() {
        "no drain".to_string()
    } else {
        format!(
            "drain: the SUT runs on with no fault and no new operation until the mocks see no request for {}, at most {}",
            humantime::format_duration(s.drain.quiet),
            humantime::format_duration(s.drain.max)
        )
    };
    events.push(PlanEvent {
        at_ms: ms(end),
        what: format!(
            "once they are done (by {} at the latest): faults cleared; {drain}",
            humantime::format_duration(in_flight)
        ),
    });
    let stop = in_flight + s.drain.max;
    events.push(PlanEvent {
        at_ms: ms(stop),
        what: format!(
            "at the latest: the SUT stopped (SIGTERM, SIGKILL after {}); final state read; SLOs checked",
            humantime::format_duration(s.grace)
        ),
    });
    let longest = stop + s.grace;
    let checked_at = ms(stop);
    for slo in &raw.slos {
        let name = serde_json::to_value(slo)
            .ok()
            .and_then(|v| v.get("check").and_then(|c| c.as_str()).map(str::to_string))
            .unwrap_or_default();
        let extra = match slo {
            RawSlo::CircuitBreaker { dependency, .. } => format!(" ({dependency})"),
            _ => String::new(),
        };
        events.push(PlanEvent {
            at_ms: checked_at,
            what: format!("check SLO {name}{extra}"),
        });
    }
    events.sort_by_key(|e| e.at_ms);
    Plan {
        name: s.name.clone(),
        seed,
        duration_ms: ms(end),
        longest_ms: ms(longest),
        workload,
        events,
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "scenario {} (seed {}, {} of workload; at most {} once the SUT is ready)",
            self.name,
            self.seed,
            humantime::format_duration(Duration::from_millis(self.duration_ms)),
            humantime::format_duration(Duration::from_millis(self.longest_ms))
        )?;
        for e in &self.events {
            writeln!(
                f,
                "  {:>10}  {}",
                humantime::format_duration(Duration::from_millis(e.at_ms)).to_string(),
                e.what
            )?;
        }
        Ok(())
    }
}
