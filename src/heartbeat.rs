//! A process-wide sign of life: the last moment the work loop did something, including
//! waiting by design (a retry's backoff, a sink outage held out, the request governor). The
//! watchdog and `/livez` read it through `service::Progress`: a loop that retries is alive,
//! only one that hangs is stuck. Ground floor: imports nothing of ours.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Milliseconds after `epoch()` of the last beat, plus one (0: never).
static LAST: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The loop is working (or waiting on purpose) right now.
pub fn beat() {
    let since = epoch().elapsed().as_millis() as u64;
    LAST.store(since + 1, Ordering::Relaxed);
}

/// How long since the last beat, on the monotonic clock; `None` before the first.
pub fn since_last() -> Option<Duration> {
    match LAST.load(Ordering::Relaxed) {
        0 => None,
        last => Some(
            epoch()
                .elapsed()
                .saturating_sub(Duration::from_millis(last - 1)),
        ),
    }
}

/// Sleeps `duration`, beating at least every few seconds: a wait by design (a retry's
/// backoff, a rate limit) is a sign of life, however long it is.
pub async fn sleep(duration: Duration) {
    const SLICE: Duration = Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        beat();
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep((deadline - now).min(SLICE)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_keeps_beating() {
        let waited = tokio::spawn(sleep(Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_secs(31)).await;
        let since = since_last().expect("beaten");
        assert!(since <= Duration::from_secs(6), "{since:?}");
        waited.await.unwrap();
    }
}
