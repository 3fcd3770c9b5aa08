//! Whether the poll loop is making progress, for the watchdog and `/healthz`.
//!
//! The poller marks progress when a page arrives or a window is committed, and says when it
//! is idle by choice (caught up, waiting for the next poll). A loop that is working but has
//! not progressed for a while is stuck: a hung request, or a sink that will not accept.
//!
//! Liveness is measured on the monotonic clock: an NTP step of the wall clock (larger than the
//! watchdog timeout) must not make a healthy exporter look stuck, nor a stuck one look alive.
//! Lag is wall-clock by nature (a cursor is a wall-clock time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::time::now_ms;

/// Shared progress marks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The monotonic reference the progress marks count from.
    epoch: Instant,
    /// Milliseconds after `epoch` of the last progress mark.
    last_progress: AtomicU64,
    idle: AtomicBool,
    cursor_ms: AtomicI64,
    started_ms: i64,
}

/// No cursor committed yet.
const NO_CURSOR: i64 = i64::MIN;

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                last_progress: AtomicU64::new(0),
                idle: AtomicBool::new(false),
                cursor_ms: AtomicI64::new(NO_CURSOR),
                started_ms: now_ms(),
            }),
        }
    }
}

impl Progress {
    /// Something moved (a page arrived, a batch was delivered).
    pub fn touch(&self) {
        self.inner.idle.store(false, Ordering::Relaxed);
        self.mark();
    }

    /// The live cursor moved to `cursor_ms`.
    pub fn committed(&self, cursor_ms: i64) {
        self.inner.cursor_ms.store(cursor_ms, Ordering::Relaxed);
        self.touch();
    }

    /// The loop is caught up and waits for the next poll.
    pub fn idle(&self) {
        self.inner.idle.store(true, Ordering::Relaxed);
        self.mark();
    }

    /// Whether the loop is idle by choice or progressed within `timeout`.
    pub fn is_alive(&self, timeout: Duration) -> bool {
        if self.inner.idle.load(Ordering::Relaxed) {
            return true;
        }
        let last = Duration::from_millis(self.inner.last_progress.load(Ordering::Relaxed));
        self.inner.epoch.elapsed().saturating_sub(last) <= timeout
    }

    /// How far the live cursor is behind now; before the first commit, how long since start.
    pub fn lag(&self) -> Duration {
        let reference = match self.inner.cursor_ms.load(Ordering::Relaxed) {
            NO_CURSOR => self.inner.started_ms,
            cursor => cursor,
        };
        Duration::from_millis((now_ms() - reference).max(0) as u64)
    }

    /// The live cursor, once one was committed in this process.
    pub fn cursor_ms(&self) -> Option<i64> {
        match self.inner.cursor_ms.load(Ordering::Relaxed) {
            NO_CURSOR => None,
            cursor => Some(cursor),
        }
    }

    fn mark(&self) {
        let since_epoch = self.inner.epoch.elapsed().as_millis() as u64;
        self.inner
            .last_progress
            .store(since_epoch, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Progress whose monotonic epoch lies `ago` in the past, as if the process had run that
    /// long, with its last mark at the epoch.
    fn progress_started(ago: Duration) -> Progress {
        let progress = Progress::default();
        let inner = Inner {
            epoch: Instant::now() - ago,
            last_progress: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            cursor_ms: AtomicI64::new(NO_CURSOR),
            started_ms: progress.inner.started_ms,
        };
        Progress {
            inner: Arc::new(inner),
        }
    }

    #[test]
    fn stuck_work_is_not_alive_but_idleness_is() {
        let progress = Progress::default();
        assert!(progress.is_alive(Duration::from_secs(1)));
        let stuck = progress_started(Duration::from_secs(5));
        assert!(!stuck.is_alive(Duration::from_secs(1)));
        assert!(stuck.is_alive(Duration::from_secs(10)));
        stuck.idle();
        assert!(stuck.is_alive(Duration::from_secs(1)));
        stuck.committed(now_ms() - 60_000);
        assert!(stuck.lag() >= Duration::from_secs(59));
        assert!(stuck.cursor_ms().is_some());
    }

    #[test]
    fn a_wall_clock_step_does_not_change_liveness() {
        // A fresh mark is alive whatever the wall clock says: liveness reads no wall time.
        // Before, a mark was a wall-clock millisecond, and `now - mark` after an NTP step back
        // of an hour was negative (alive forever), forward of an hour was a stall.
        let progress = progress_started(Duration::from_secs(3600));
        progress.touch();
        assert!(progress.is_alive(Duration::from_millis(500)));
        assert_eq!(
            progress.inner.last_progress.load(Ordering::Relaxed) / 1000,
            3600,
            "marks count monotonic time since the epoch"
        );
    }
}
