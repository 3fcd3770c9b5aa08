//! Whether the poll loop is making progress, for the watchdog and `/healthz`.
//!
//! The poller marks progress when a page arrives or a window is committed, and says when it
//! is idle by choice (caught up, waiting for the next poll). A loop that is working but has
//! not progressed for a while is stuck: a hung request, or a sink that will not accept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Shared progress marks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    last_progress_ms: AtomicI64,
    idle: AtomicBool,
    cursor_ms: AtomicI64,
    started_ms: i64,
}

/// No cursor committed yet.
const NO_CURSOR: i64 = i64::MIN;

impl Default for Progress {
    fn default() -> Progress {
        let now = crate::checkpoint::now_ms();
        Progress {
            inner: Arc::new(Inner {
                last_progress_ms: AtomicI64::new(now),
                idle: AtomicBool::new(false),
                cursor_ms: AtomicI64::new(NO_CURSOR),
                started_ms: now,
            }),
        }
    }
}

impl Progress {
    /// Something moved (a page arrived, a batch was delivered).
    pub fn touch(&self) {
        self.inner.idle.store(false, Ordering::Relaxed);
        self.inner
            .last_progress_ms
            .store(crate::checkpoint::now_ms(), Ordering::Relaxed);
    }

    /// The live cursor moved to `cursor_ms`.
    pub fn committed(&self, cursor_ms: i64) {
        self.inner.cursor_ms.store(cursor_ms, Ordering::Relaxed);
        self.touch();
    }

    /// The loop is caught up and waits for the next poll.
    pub fn idle(&self) {
        self.inner.idle.store(true, Ordering::Relaxed);
        self.inner
            .last_progress_ms
            .store(crate::checkpoint::now_ms(), Ordering::Relaxed);
    }

    /// Whether the loop is idle by choice or progressed within `timeout`.
    pub fn is_alive(&self, timeout: Duration) -> bool {
        if self.inner.idle.load(Ordering::Relaxed) {
            return true;
        }
        let since =
            crate::checkpoint::now_ms() - self.inner.last_progress_ms.load(Ordering::Relaxed);
        since <= timeout.as_millis() as i64
    }

    /// How far the live cursor is behind now; before the first commit, how long since start.
    pub fn lag(&self) -> Duration {
        let now = crate::checkpoint::now_ms();
        let reference = match self.inner.cursor_ms.load(Ordering::Relaxed) {
            NO_CURSOR => self.inner.started_ms,
            cursor => cursor,
        };
        Duration::from_millis((now - reference).max(0) as u64)
    }

    /// The live cursor, once one was committed in this process.
    pub fn cursor_ms(&self) -> Option<i64> {
        match self.inner.cursor_ms.load(Ordering::Relaxed) {
            NO_CURSOR => None,
            cursor => Some(cursor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_work_is_not_alive_but_idleness_is() {
        let progress = Progress::default();
        assert!(progress.is_alive(Duration::from_secs(1)));
        progress
            .inner
            .last_progress_ms
            .store(crate::checkpoint::now_ms() - 5_000, Ordering::Relaxed);
        assert!(!progress.is_alive(Duration::from_secs(1)));
        progress.idle();
        assert!(progress.is_alive(Duration::from_secs(1)));
        progress.committed(crate::checkpoint::now_ms() - 60_000);
        assert!(progress.lag() >= Duration::from_secs(59));
        assert!(progress.cursor_ms().is_some());
    }
}
