//! The workload: operations (each a sequence of steps: requests to the SUT, org actions,
//! commands) started open loop at a rate or closed loop at a concurrency, each with a unique
//! key and seeded synthetic data, recorded like a Jepsen history (invoke, then ok / fail /
//! info, with the reason and what its steps captured).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::recorder::Recorder;
use super::step::{run_step, OpIdentity, StepContext, StepEnd};
use crate::scenario::domain::{Operation, Pace, Workload};
use crate::scenario::template;
use crate::timeline::{trace, OpEvent, Phase};

/// Where the workload goes and how it records.
#[derive(Clone)]
pub struct Driver {
    /// Where steps act: the SUT, the mock org, commands.
    pub ctx: StepContext,
    /// The run's seed.
    pub seed: u64,
    /// Where operations are recorded.
    pub recorder: Recorder,
    counter: Arc<AtomicU64>,
    picker: Arc<Mutex<ChaCha8Rng>>,
}

impl Driver {
    /// A driver whose steps act through `ctx`.
    pub fn new(mut ctx: StepContext, seed: u64, recorder: Recorder) -> Self {
        ctx.base = ctx.base.trim_end_matches('/').to_string();
        Self {
            ctx,
            seed,
            recorder,
            counter: Arc::new(AtomicU64::new(0)),
            picker: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5eed))),
        }
    }

    fn now(&self) -> u64 {
        self.recorder.now_us()
    }

    fn pick<'a>(&self, ops: &'a [Operation]) -> &'a Operation {
        let total: u32 = ops.iter().map(|o| o.weight).sum();
        let mut x = self.picker.lock().random_range(0..total.max(1));
        for o in ops {
            if x < o.weight {
                return o;
            }
            x -= o.weight;
        }
        &ops[0]
    }

    /// Run one operation to its end: its steps in order, within the operation's timeout;
    /// the first step that fails ends it as `fail`, one with no answer as `info`.
    pub async fn one(&self, op: &Operation, timeout: Duration) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let values = template::values(self.seed, n);
        let key = values["key"].clone();
        let traceparent = trace::traceparent(self.seed, n);
        let identity = OpIdentity {
            key: &key,
            traceparent: &traceparent,
        };
        let invoked = self.now();
        self.recorder.op(OpEvent {
            at_us: invoked,
            op: n,
            name: op.name.clone(),
            key: key.clone(),
            phase: Phase::Invoke,
            status: None,
            latency_us: None,
            error: None,
            trace_id: Some(trace::trace_id(self.seed, n)),
            captured: Default::default(),
            partial: false,
        });
        let deadline = Instant::now() + timeout;
        let mut vars = BTreeMap::new();
        let mut end = StepEnd::Ok { status: 0 };
        let mut steps_ok = 0;
        for step in &op.steps {
            let left = deadline.saturating_duration_since(Instant::now());
            // The whole answer is read: one cut short is an unknown outcome.
            end = if left.is_zero() {
                StepEnd::Info {
                    reason: format!("{}: timeout", step.name),
                }
            } else {
                run_step(step, &self.ctx, &mut vars, &values, identity, left).await
            };
            if !matches!(end, StepEnd::Ok { .. }) {
                break;
            }
            steps_ok += 1;
        }
        // Part of it happened: an earlier step succeeded, or the SUT answered the failing
        // request 2xx and only the expectation on its answer was unmet.
        let answered_2xx = matches!(
            (&end, op.steps.get(steps_ok).map(|s| &s.action)),
            (StepEnd::Fail { status: Some(s), .. }, Some(a))
                if (200..300).contains(s) && !matches!(a, crate::scenario::step::Action::Run(_))
        );
        let partial = !matches!(end, StepEnd::Ok { .. }) && (steps_ok > 0 || answered_2xx);
        // A one-request operation's timeout reads as before: `timeout`, not `NAME: timeout`.
        let single = op.steps.len() == 1;
        let strip = |r: String| match single {
            true => r
                .strip_prefix(&format!("{}: ", op.steps[0].name))
                .map(str::to_string)
                .unwrap_or(r),
            false => r,
        };
        let (phase, status, error) = match end {
            StepEnd::Ok { status } => (Phase::Ok, Some(status), None),
            StepEnd::Fail { status, reason } => (Phase::Fail, status, Some(strip(reason))),
            StepEnd::Info { reason } => (Phase::Info, None, Some(strip(reason))),
        };
        let done = self.now();
        self.recorder.op(OpEvent {
            at_us: done,
            op: n,
            name: op.name.clone(),
            key,
            phase,
            status,
            latency_us: Some(done - invoked),
            error,
            trace_id: None,
            captured: vars,
            partial,
        });
    }

    /// Drive the workload until `until`, then wait (bounded by the timeout) for what is in
    /// flight.
    pub async fn run(&self, w: &Workload, until: Instant) {
        let timeout = w.timeout;
        let ops = Arc::new(w.operations.clone());
        let mut tasks = tokio::task::JoinSet::new();
        match w.pace {
            Pace::Open { rate } => {
                // Open loop: start operations on a fixed schedule, whatever the SUT does.
                let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
                let mut next = Instant::now();
                while next < until {
                    tokio::time::sleep_until(next).await;
                    let (d, ops) = (self.clone(), ops.clone());
                    tasks.spawn(async move {
                        let op = d.pick(&ops).clone();
                        d.one(&op, timeout).await;
                    });
                    next += period;
                    while let Some(r) = tasks.try_join_next() {
                        let _ = r;
                    }
                }
            }
            Pace::Closed { concurrency: c } => {
                // Closed loop: c workers, each starting the next operation when one ends.
                let started = Arc::new(AtomicU64::new(0));
                let total = w.total.unwrap_or(u64::MAX);
                for _ in 0..c.max(1) {
                    let (d, ops, started) = (self.clone(), ops.clone(), started.clone());
                    tasks.spawn(async move {
                        while Instant::now() < until
                            && started.fetch_add(1, Ordering::SeqCst) < total
                        {
                            let op = d.pick(&ops).clone();
                            d.one(&op, timeout).await;
                        }
                    });
                }
            }
        }
        // Every operation started before `until` ends within its timeout: wait that long after
        // `until` (closed-loop workers start theirs up to `until` too), not after now.
        let _ = tokio::time::timeout_at(
            until.max(Instant::now()) + timeout + Duration::from_secs(1),
            async { while tasks.join_next().await.is_some() {} },
        )
        .await;
    }
}
