//! The workload: HTTP operations sent to the SUT, open loop at a rate or closed loop at a
//! concurrency, each with a unique key and seeded synthetic data, recorded like a Jepsen
//! history (invoke, then ok / fail / info).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::recorder::Recorder;
use crate::scenario::domain::{Operation, Pace, Workload};
use crate::scenario::template;
use crate::timeline::{trace, OpEvent, Phase};
use crate::transport::{HttpRequest, Transport, TransportError};

/// Where the workload goes and how it records.
#[derive(Clone)]
pub struct Driver {
    /// Base URL of the SUT (no trailing slash).
    pub base: String,
    /// The run's seed.
    pub seed: u64,
    /// Where operations are recorded.
    pub recorder: Recorder,
    /// How requests reach the SUT (sockets, or in-process in simulation).
    pub transport: Transport,
    counter: Arc<AtomicU64>,
    picker: Arc<Mutex<ChaCha8Rng>>,
}

impl Driver {
    /// A driver for a SUT at `base`.
    pub fn new(base: &str, seed: u64, recorder: Recorder, transport: Transport) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            seed,
            recorder,
            transport,
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

    /// Run one operation to its end.
    pub async fn one(&self, op: &Operation, timeout: Duration) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let values = template::values(self.seed, n);
        let key = values["key"].clone();
        let path = template::render(&op.path, &values);
        let mut req = HttpRequest::new(op.method.clone(), format!("{}{path}", self.base))
            .header("x-crashcart-op", key.as_str())
            .header("traceparent", &trace::traceparent(self.seed, n));
        if let Some(b) = &op.body {
            req = req.json(&template::render_json(b, &values));
        }
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
        });
        // The whole body is read: an answer cut short is an unknown outcome.
        let (phase, status, error) = match self.transport.send(req, Some(timeout)).await {
            Ok(r) if (200..300).contains(&r.status) => (Phase::Ok, Some(r.status), None),
            Ok(r) => (Phase::Fail, Some(r.status), None),
            Err(TransportError::Timeout) => (Phase::Info, None, Some("timeout".into())),
            Err(e) => (Phase::Info, None, Some(e.to_string())),
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
        let _ = tokio::time::timeout(timeout + Duration::from_secs(1), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }
}
