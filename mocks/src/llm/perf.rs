//! The performance model of one served model: a small GPU server under load.
//!
//! - A fixed number of generation **slots**; requests beyond them wait in a bounded **queue**
//!   (FIFO, tokio's fair semaphore). Past the queue the request is refused at once (429/503).
//! - **Time to first token** = `base_ttft_ms` + prompt tokens / `prefill_tokens_per_second`,
//!   counted from the moment a slot is granted; the queue wait comes before it, so TTFT as the
//!   client sees it grows with queue position and prompt length.
//! - **Inter-token delay** = tokens / (`tokens_per_second` / (1 + `contention` × (active − 1))):
//!   streams slow each other down, re-evaluated at every token.
//! - **Cold start**: when the model was never used or idle longer than `keep_alive_s`, the
//!   first request loads it (`cold_start_ms`); requests arriving meanwhile wait for the load.
//!
//! Every wait is a `tokio::time::sleep`, so the model runs unchanged on a paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::persona::PerfProfile;

/// The live state of one model.
#[derive(Debug)]
pub struct ModelRuntime {
    perf: Mutex<PerfProfile>,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    active: AtomicUsize,
    last_used: Mutex<Option<Instant>>,
    /// The last request's own `keep_alive` (Ollama), over the profile's.
    keep_alive: Mutex<Option<Duration>>,
    loading: tokio::sync::Mutex<()>,
}

/// Admission was refused: the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// `Retry-After` to send, in seconds.
    pub retry_after_s: u64,
}

/// A granted slot; releasing it (drop) frees the slot and marks the model as used now.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    runtime: Arc<ModelRuntime>,
    /// How long the request waited in the queue.
    pub queue_wait: Duration,
    /// Requests ahead of this one when it arrived (0 when a slot was free).
    pub queue_position: usize,
    /// Model load time paid by this request (cold start), zero when warm.
    pub load: Duration,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.runtime.active.fetch_sub(1, Ordering::SeqCst);
        *self.runtime.last_used.lock() = Some(Instant::now());
    }
}

struct WaitingGuard<'a>(&'a AtomicUsize);
impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A snapshot of a model's load, for the control API and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Load {
    /// Generations running.
    pub active: usize,
    /// Requests waiting for a slot.
    pub waiting: usize,
    /// Slots in total.
    pub slots: usize,
}

fn secs(tokens: f64, per_second: f64) -> Duration {
    if per_second <= 0.0 || tokens <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(tokens / per_second)
    }
}

impl ModelRuntime {
    /// A runtime for a profile; the model starts unloaded.
    pub fn new(perf: PerfProfile) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(perf.slots)),
            perf: Mutex::new(perf),
            waiting: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            last_used: Mutex::new(None),
            keep_alive: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// The current profile.
    pub fn perf(&self) -> PerfProfile {
        self.perf.lock().clone()
    }

    /// Current load.
    pub fn load(&self) -> Load {
        Load {
            active: self.active.load(Ordering::SeqCst),
            waiting: self.waiting.load(Ordering::SeqCst),
            slots: self.perf.lock().slots,
        }
    }

    /// How long the model stays loaded from now: while it generates, and for `keep_alive`
    /// after its last use (Ollama's `/api/ps`); `None` when it is not loaded.
    pub fn loaded_for(&self) -> Option<Duration> {
        let keep_alive = self.keep_alive();
        if self.active.load(Ordering::SeqCst) > 0 {
            return Some(keep_alive);
        }
        let used = (*self.last_used.lock())?;
        keep_alive
            .checked_sub(used.elapsed())
            .filter(|left| !left.is_zero())
    }

    /// How long the model stays loaded after its last use: the last request's own
    /// `keep_alive`, or the profile's.
    pub fn keep_alive(&self) -> Duration {
        (*self.keep_alive.lock()).unwrap_or_else(|| self.perf.lock().keep_alive())
    }

    /// The `keep_alive` a request asked for (`None`: the server's default), which holds
    /// after it until the next request.
    pub fn keep_alive_next(&self, keep_alive: Option<Duration>) {
        *self.keep_alive.lock() = keep_alive;
    }

    /// Change the number of slots (a governor fault: "slots shrunk"). Running generations
    /// finish; new ones see the new number.
    pub fn set_slots(&self, slots: usize) {
        let slots = slots.max(1);
        let old = std::mem::replace(&mut self.perf.lock().slots, slots);
        if slots > old {
            self.slots.add_permits(slots - old);
        } else {
            let sem = self.slots.clone();
            let take = (old - slots) as u32;
            // Retire permits as they come free; forget them so they never return.
            tokio::spawn(async move {
                if let Ok(p) = sem.acquire_many_owned(take).await {
                    p.forget();
                }
            });
        }
    }

    /// Change the queue depth.
    pub fn set_queue_depth(&self, depth: usize) {
        self.perf.lock().queue_depth = depth;
    }

    /// Wait for a slot, or refuse at once when the queue is full. Pays the cold start if due.
    pub async fn admit(self: &Arc<Self>) -> Result<Slot, QueueFull> {
        let arrived = Instant::now();
        let (depth, retry_after_s) = {
            let p = self.perf.lock();
            (p.queue_depth, p.retry_after_s)
        };
        let (permit, position) = match self.slots.clone().try_acquire_owned() {
            Ok(p) => (p, 0),
            Err(_) => {
                let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
                let _guard = WaitingGuard(&self.waiting);
                if ahead >= depth {
                    return Err(QueueFull { retry_after_s });
                }
                match self.slots.clone().acquire_owned().await {
                    Ok(p) => (p, ahead + 1),
                    Err(_) => return Err(QueueFull { retry_after_s }),
                }
            }
        };
        self.active.fetch_add(1, Ordering::SeqCst);
        let queue_wait = arrived.elapsed();
        let mut slot = Slot {
            _permit: permit,
            runtime: self.clone(),
            queue_wait,
            queue_position: position,
            load: Duration::ZERO,
        };
        let cold = Duration::from_millis(self.perf.lock().cold_start_ms);
        let keep_alive = self.keep_alive();
        if !cold.is_zero() {
            let _loading = self.loading.lock().await;
            let due = match *self.last_used.lock() {
                None => true,
                Some(t) => t.elapsed() > keep_alive,
            };
            if due {
                let started = Instant::now();
                tokio::time::sleep(cold).await;
                slot.load = started.elapsed();
            }
            *self.last_used.lock() = Some(Instant::now());
        }
        Ok(slot)
    }

    /// Time to first token for a prompt, once a slot is held.
    pub fn ttft(&self, prompt_tokens: u32) -> Duration {
        let p = self.perf.lock();
        Duration::from_millis(p.base_ttft_ms)
            + secs(prompt_tokens as f64, p.prefill_tokens_per_second)
    }

    /// Time to decode `tokens` now, given how many streams are running.
    pub fn decode(&self, tokens: u32) -> Duration {
        let p = self.perf.lock();
        let active = self.active.load(Ordering::SeqCst).max(1) as f64;
        let speed = p.tokens_per_second / (1.0 + p.contention * (active - 1.0));
        secs(tokens as f64, speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::persona::PersonaSet;

    fn profile(slots: usize, depth: usize) -> PerfProfile {
        let mut p = PersonaSet::builtin().default_model().perf.clone();
        p.slots = slots;
        p.queue_depth = depth;
        p.cold_start_ms = 0;
        p
    }

    #[tokio::test(start_paused = true)]
    async fn queue_then_refuse_past_its_depth() {
        let rt = ModelRuntime::new(profile(1, 1));
        let first = rt.admit().await.unwrap();
        let rt2 = rt.clone();
        let queued = tokio::spawn(async move { rt2.admit().await.map(|s| s.queue_position) });
        tokio::task::yield_now().await;
        assert_eq!(
            rt.load(),
            Load {
                active: 1,
                waiting: 1,
                slots: 1
            }
        );
        let refused = rt.admit().await.unwrap_err();
        assert_eq!(refused.retry_after_s, 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert_eq!(queued.await.unwrap(), Ok(1));
    }

    #[test]
    fn decoding_slows_with_concurrency_and_ttft_grows_with_the_prompt() {
        let rt = ModelRuntime::new(profile(4, 4));
        let alone = rt.decode(45);
        assert_eq!(alone, Duration::from_secs(1));
        rt.active.store(3, Ordering::SeqCst);
        assert!(rt.decode(45) > alone);
        assert!(rt.ttft(5000) > rt.ttft(10));
    }

    #[tokio::test(start_paused = true)]
    async fn cold_start_after_idle() {
        let mut p = profile(2, 2);
        p.cold_start_ms = 2000;
        p.keep_alive_s = 60;
        let rt = ModelRuntime::new(p);
        assert_eq!(rt.admit().await.unwrap().load, Duration::from_secs(2));
        assert_eq!(rt.admit().await.unwrap().load, Duration::ZERO);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(rt.admit().await.unwrap().load, Duration::from_secs(2));
    }
}
