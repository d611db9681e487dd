//! Simulation mode's network: network faults applied inside the in-process transport, so a
//! whole run (mocks, fault engine, reference integration, workload) fits in one process on
//! tokio's paused clock without a socket.
//!
//! [`SimNetwork`] is the fault engine's [`NetworkFaults`] backend in simulation: it keeps the
//! network faults in force per dependency, and [`SimNetwork::carry`] applies them to one
//! exchange the way the chaos proxy applies its toxics to a connection:
//!
//! | fault | effect on one exchange |
//! |---|---|
//! | `partition` (both, upstream) | the request never arrives: the caller's timeout decides |
//! | `partition` (downstream) | the request is served, the answer never arrives |
//! | `network_timeout` | as `partition`; with `after`, a connection error after that long |
//! | `reset_peer` | a connection error (after `after`) before the request arrives |
//! | `refuse_connections` | a connection error at once |
//! | `network_latency` | the latency (± jitter) before (upstream) and/or after (downstream) |
//! | `bandwidth`, `slicer` | delay by the bytes carried at that rate / slice pace |
//! | `limit_data` | a connection error once the bytes carried pass the limit |
//! | `slow_close` | nothing (closing a connection costs an exchange nothing) |

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fault::model::{Direction, FaultKind};
use crate::fault::{DependencyName, NetworkFaults};
use crate::transport::{HttpResponse, TransportError};

/// The simulated network: the network faults in force.
#[derive(Debug)]
pub struct SimNetwork {
    faults: Mutex<Vec<(String, Option<DependencyName>, FaultKind)>>,
    counter: AtomicU64,
    rng: Mutex<ChaCha8Rng>,
}

impl SimNetwork {
    /// An empty network; `seed` draws the jitter.
    pub fn new(seed: u64) -> Self {
        Self {
            faults: Mutex::default(),
            counter: AtomicU64::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5157)),
        }
    }

    fn active(&self, dep: Option<DependencyName>) -> Vec<FaultKind> {
        let same_host = |a: DependencyName, b: DependencyName| {
            let host = |d| matches!(d, DependencyName::Llm);
            host(a) == host(b)
        };
        self.faults
            .lock()
            .iter()
            .filter(|(_, d, _)| match (d, dep) {
                (None, _) => true,
                (Some(fd), Some(rd)) => same_host(*fd, rd),
                (Some(_), None) => false,
            })
            .map(|(_, _, f)| f.clone())
            .collect()
    }

    fn jittered(&self, latency: Duration, jitter: Option<Duration>) -> Duration {
        match jitter {
            Some(j) if !j.is_zero() => {
                let offset = self
                    .rng
                    .lock()
                    .random_range(-(j.as_secs_f64())..=j.as_secs_f64());
                Duration::from_secs_f64((latency.as_secs_f64() + offset).max(0.0))
            }
            _ => latency,
        }
    }

    /// Carry one exchange to `dep` through the faults in force: `serve` is the dependency
    /// answering (it runs only if the request gets through).
    pub async fn carry(
        &self,
        dep: Option<DependencyName>,
        request_len: usize,
        serve: impl Future<Output = Result<HttpResponse, TransportError>>,
    ) -> Result<HttpResponse, TransportError> {
        let faults = self.active(dep);
        if faults.is_empty() {
            return serve.await;
        }
        let up = |d: &Direction| matches!(d, Direction::Upstream | Direction::Both);
        let down = |d: &Direction| matches!(d, Direction::Downstream | Direction::Both);
        let reset = || TransportError::Connection("connection reset by peer".into());
        let mut before = Duration::ZERO;
        let mut lose_answer = false;
        let mut down_limit: Option<u64> = None;
        let mut down_rate: Option<f64> = None;
        let mut after_delay = Duration::ZERO;
        for f in &faults {
            match f {
                FaultKind::RefuseConnections => {
                    return Err(TransportError::Connection("connection refused".into()))
                }
                FaultKind::ResetPeer { after } => {
                    tokio::time::sleep(after.unwrap_or_default()).await;
                    return Err(reset());
                }
                FaultKind::Partition { direction }
                | FaultKind::NetworkTimeout { direction, .. }
                    if up(direction) =>
                {
                    if let FaultKind::NetworkTimeout { after: Some(a), .. } = f {
                        tokio::time::sleep(*a).await;
                        return Err(reset());
                    }
                    std::future::pending::<()>().await;
                }
                FaultKind::Partition { .. } | FaultKind::NetworkTimeout { .. } => {
                    lose_answer = true
                }
                FaultKind::NetworkLatency {
                    latency,
                    jitter,
                    direction,
                } => {
                    let d = self.jittered(*latency, *jitter);
                    if up(direction) {
                        before += d;
                    }
                    if down(direction) {
                        after_delay += d;
                    }
                }
                FaultKind::Bandwidth { rate_kb, direction } => {
                    let rate = (*rate_kb as f64 * 1024.0).max(1.0);
                    if up(direction) {
                        before += Duration::from_secs_f64(request_len as f64 / rate);
                    }
                    if down(direction) {
                        down_rate = Some(rate);
                    }
                }
                FaultKind::Slicer {
                    average_size,
                    delay,
                    direction,
                    ..
                } => {
                    let slices = |len: usize| len.div_ceil((*average_size).max(1) as usize);
                    let pace = delay.unwrap_or_default();
                    if up(direction) {
                        before += pace * slices(request_len) as u32;
                    }
                    if down(direction) {
                        // Applied below once the answer's size is known.
                        down_rate =
                            Some((*average_size).max(1) as f64 / pace.as_secs_f64().max(1e-6));
                    }
                }
                FaultKind::LimitData { bytes, direction } => {
                    if up(direction) && request_len as u64 > *bytes {
                        return Err(reset());
                    }
                    if down(direction) {
                        down_limit = Some(*bytes);
                    }
                }
                _ => {}
            }
        }
        tokio::time::sleep(before).await;
        let answer = serve.await?;
        if lose_answer {
            std::future::pending::<()>().await;
        }
        let len = answer.body.len() as u64 + 200;
        if down_limit.is_some_and(|limit| len > limit) {
            return Err(reset());
        }
        let mut delay = after_delay;
        if let Some(rate) = down_rate {
            delay += Duration::from_secs_f64(len as f64 / rate);
        }
        tokio::time::sleep(delay).await;
        Ok(answer)
    }
}

impl NetworkFaults for SimNetwork {
    fn apply(
        &self,
        dependency: Option<DependencyName>,
        fault: &FaultKind,
        label: &str,
    ) -> Result<Vec<String>, String> {
        let token = format!("{label}#{}", self.counter.fetch_add(1, Ordering::Relaxed));
        self.faults
            .lock()
            .push((token.clone(), dependency, fault.clone()));
        Ok(vec![token])
    }

    fn remove(&self, applied: &[String]) {
        self.faults.lock().retain(|(t, _, _)| !applied.contains(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status: 200,
            headers: Default::default(),
            body: bytes::Bytes::from_static(b"{}"),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn faults_shape_exchanges_on_the_paused_clock() {
        let net = SimNetwork::new(1);
        let sf = Some(DependencyName::Salesforce);
        assert!(net.carry(sf, 10, async { ok() }).await.is_ok());
        let lat = net
            .apply(
                sf,
                &FaultKind::NetworkLatency {
                    latency: Duration::from_millis(100),
                    jitter: None,
                    direction: Direction::Both,
                },
                "lat",
            )
            .unwrap();
        let t = tokio::time::Instant::now();
        assert!(net.carry(sf, 10, async { ok() }).await.is_ok());
        assert_eq!(t.elapsed(), Duration::from_millis(200));
        // The LLM is another host: untouched.
        let t = tokio::time::Instant::now();
        assert!(net
            .carry(Some(DependencyName::Llm), 10, async { ok() })
            .await
            .is_ok());
        assert_eq!(t.elapsed(), Duration::ZERO);
        net.remove(&lat);
        let part = net
            .apply(
                sf,
                &FaultKind::Partition {
                    direction: Direction::Downstream,
                },
                "part",
            )
            .unwrap();
        let served = std::sync::atomic::AtomicBool::new(false);
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            net.carry(sf, 10, async {
                served.store(true, Ordering::SeqCst);
                ok()
            }),
        )
        .await;
        assert!(r.is_err(), "the answer never arrives");
        assert!(served.load(Ordering::SeqCst), "but the request was served");
        net.remove(&part);
        net.apply(None, &FaultKind::RefuseConnections, "refuse")
            .unwrap();
        assert!(matches!(
            net.carry(Some(DependencyName::Llm), 1, async { ok() })
                .await,
            Err(TransportError::Connection(_))
        ));
    }
}
