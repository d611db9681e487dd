//! Ctrl-C and SIGTERM, counted for the whole process. [`install`] registers the handlers
//! before anything starts (the CLI calls it first), so a signal in the first milliseconds is
//! caught, never taken by the default action. The first signal stops the run (and a `run DIR`
//! of several scenarios: the rest are not started); one more while cleaning up escalates (the
//! SUT's process group is killed at once instead of being given its grace).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use tokio::sync::Notify;

/// Signals received so far, and a way to wait for the next.
struct Signals {
    count: AtomicU32,
    changed: Notify,
}

fn signals() -> &'static Signals {
    static S: OnceLock<Signals> = OnceLock::new();
    S.get_or_init(|| Signals {
        count: AtomicU32::new(0),
        changed: Notify::new(),
    })
}

/// Signals that came before [`install`]: caught by [`early`]'s handler.
static EARLY: AtomicU32 = AtomicU32::new(0);

#[cfg(unix)]
extern "C" fn early_handler(_: libc::c_int) {
    EARLY.fetch_add(1, Ordering::SeqCst);
}

/// The very first thing a process does: catch Ctrl-C and SIGTERM with a plain handler that
/// only counts them, until [`install`] takes over (and counts them too), so not even the
/// first milliseconds of a run are left to the default action.
pub fn early() {
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic.
    unsafe {
        for s in [libc::SIGINT, libc::SIGTERM] {
            libc::signal(s, early_handler as *const () as libc::sighandler_t);
        }
    }
}

/// Register the Ctrl-C and SIGTERM handlers now, on the current runtime (once per process;
/// later calls do nothing). Without it, the first wait for a signal installs them.
pub fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
                // Registered here, synchronously: from now on the signal is queued for us.
                let Ok(mut stream) = signal(kind) else {
                    continue;
                };
                tokio::spawn(async move {
                    while stream.recv().await.is_some() {
                        received();
                    }
                });
            }
        }
        #[cfg(not(unix))]
        tokio::spawn(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                received();
            }
        });
        for _ in 0..EARLY.load(Ordering::SeqCst) {
            received();
        }
    });
}

fn received() {
    let s = signals();
    s.count.fetch_add(1, Ordering::SeqCst);
    s.changed.notify_waiters();
}

/// Signals received so far.
pub fn count() -> u32 {
    signals().count.load(Ordering::SeqCst)
}

/// True once a signal has been received: stop what is running and start nothing new.
pub fn requested() -> bool {
    count() > 0
}

/// Resolves once more than `seen` signals have been received.
pub async fn after(seen: u32) {
    install();
    let s = signals();
    loop {
        let changed = s.changed.notified();
        if count() > seen {
            return;
        }
        changed.await;
    }
}

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM (at once if one came already).
pub async fn signal() {
    after(0).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_hear_each_signal_and_late_waiters_hear_it_at_once() {
        let before = count();
        let waiting = tokio::spawn(after(before));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        received();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("a waiter hears the signal")
            .unwrap();
        // A wait for a signal already received resolves at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), after(before))
            .await
            .expect("at once");
        assert!(requested());
    }
}
