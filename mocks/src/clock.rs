//! One clock for a mock: monotonic time through tokio (so a paused test clock drives it) and a
//! wall-clock view derived from it, used for `issued_at`, `LastModifiedDate` and similar fields.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Monotonic time since the mock started, plus the wall time that corresponds to it.
///
/// Under `tokio::time::pause()` both advance only with the paused clock, so a simulated run
/// produces the same timestamps every time for the same wall origin.
#[derive(Clone, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
    wall_origin: DateTime<Utc>,
}

impl Clock {
    /// A clock starting now, with the current wall time as origin.
    pub fn new() -> Self {
        Self::with_wall_origin(Utc::now())
    }

    /// A clock starting now whose wall time begins at `wall_origin` (for reproducible runs).
    pub fn with_wall_origin(wall_origin: DateTime<Utc>) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            wall_origin,
        }
    }

    /// Monotonic time elapsed since the clock started.
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The tokio instant the clock started at.
    pub fn origin(&self) -> tokio::time::Instant {
        self.origin
    }

    /// The wall time now, as the mock sees it.
    pub fn wall(&self) -> DateTime<Utc> {
        self.wall_at(self.elapsed())
    }

    /// The wall time at a monotonic offset.
    pub fn wall_at(&self, elapsed: Duration) -> DateTime<Utc> {
        self.wall_origin + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
