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
    /// Wall-clock now in epoch milliseconds, for lag (tests step it).
    wall_clock: fn() -> i64,
    /// Time since the process-wide heartbeat (retries and waits by design), if any.
    heartbeat: fn() -> Option<Duration>,
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
        Progress::with_clocks(now_ms, Instant::now(), crate::heartbeat::since_last)
    }
}

impl Progress {
    /// Progress reading the wall clock through `wall_clock`, with marks counted from `epoch`.
    fn with_clocks(
        wall_clock: fn() -> i64,
        epoch: Instant,
        heartbeat: fn() -> Option<Duration>,
    ) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                wall_clock,
                heartbeat,
                epoch,
                last_progress: AtomicU64::new(0),
                idle: AtomicBool::new(false),
                cursor_ms: AtomicI64::new(NO_CURSOR),
                started_ms: wall_clock(),
            }),
        }
    }

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

    /// Whether the loop is not stuck: idle by choice, progressed within `timeout`, or
    /// retrying and waiting on purpose within `timeout` (a sink or API outage held out, which
    /// a restart cannot heal). The one notion of "stuck" the watchdog and `/livez` share.
    pub fn is_alive(&self, timeout: Duration) -> bool {
        if self.inner.idle.load(Ordering::Relaxed) {
            return true;
        }
        let last = Duration::from_millis(self.inner.last_progress.load(Ordering::Relaxed));
        if self.inner.epoch.elapsed().saturating_sub(last) <= timeout {
            return true;
        }
        (self.inner.heartbeat)().is_some_and(|since| since <= timeout)
    }

    /// How far the live cursor is behind now; before the first commit, how long since start.
    pub fn lag(&self) -> Duration {
        let reference = match self.inner.cursor_ms.load(Ordering::Relaxed) {
            NO_CURSOR => self.inner.started_ms,
            cursor => cursor,
        };
        Duration::from_millis(((self.inner.wall_clock)() - reference).max(0) as u64)
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

    #[test]
    fn stuck_work_is_not_alive_but_idleness_is() {
        let progress = Progress::default();
        assert!(progress.is_alive(Duration::from_secs(1)));
        // As if the last mark was made 5 s ago.
        let stuck = Progress::with_clocks(now_ms, Instant::now() - Duration::from_secs(5), || None);
        assert!(!stuck.is_alive(Duration::from_secs(1)));
        assert!(stuck.is_alive(Duration::from_secs(10)));
        stuck.idle();
        assert!(stuck.is_alive(Duration::from_secs(1)));
        stuck.committed(now_ms() - 60_000);
        assert!(stuck.lag() >= Duration::from_secs(59));
        assert!(stuck.cursor_ms().is_some());
    }

    #[test]
    fn retrying_on_purpose_is_alive_hanging_is_not() {
        fn beat_just_now() -> Option<Duration> {
            Some(Duration::from_secs(2))
        }
        fn beat_long_ago() -> Option<Duration> {
            Some(Duration::from_secs(600))
        }
        let old_mark = Instant::now() - Duration::from_secs(900);
        let retrying = Progress::with_clocks(now_ms, old_mark, beat_just_now);
        assert!(retrying.is_alive(Duration::from_secs(300)));
        let hung = Progress::with_clocks(now_ms, old_mark, beat_long_ago);
        assert!(!hung.is_alive(Duration::from_secs(300)));
    }

    /// The wall clock of `a_wall_clock_step_changes_lag_but_not_liveness`.
    static WALL_MS: AtomicI64 = AtomicI64::new(1_793_524_502_123);

    fn stepped_wall_clock() -> i64 {
        WALL_MS.load(Ordering::SeqCst)
    }

    #[test]
    fn a_wall_clock_step_changes_lag_but_not_liveness() {
        let progress = Progress::with_clocks(stepped_wall_clock, Instant::now(), || None);
        let start = stepped_wall_clock();
        progress.committed(start);
        // NTP steps the clock an hour ahead, then two hours back: the loop just made progress,
        // so it is alive either way; only the lag, a wall-clock quantity, follows the clock.
        WALL_MS.store(start + 3_600_000, Ordering::SeqCst);
        assert!(progress.is_alive(Duration::from_secs(1)));
        assert_eq!(progress.lag().as_secs(), 3600);
        WALL_MS.store(start - 3_600_000, Ordering::SeqCst);
        assert!(progress.is_alive(Duration::from_secs(1)));
        assert_eq!(progress.lag(), Duration::ZERO);
    }
}
