//! The poller: walks time in windows, reads each window's pages, delivers the events, and only
//! then moves the checkpoint.
//!
//! Invariant: a cursor (live or replay) moves to a window's end only after every event of the
//! window was acknowledged by every sink. Ids are recorded as batches are acknowledged, so a
//! window read again after a crash emits only what was not delivered before.

mod error;
mod reader;
#[cfg(test)]
mod tests;
mod window;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::checkpoint::{CheckpointStore, Cursor, ReplayJob};
use crate::config::PollConfig;
use crate::lacework::LaceworkClient;
use crate::normalize::Normalizer;
use crate::service::Progress;
use crate::sinks::SinkSet;
use crate::time::{format_time_ms, now_ms};

pub(crate) use error::Error;
use reader::{Outcome, Scope, WindowReader};
use window::{Window, live_limit, next_window};

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayOutcome {
    /// The whole range was delivered.
    Finished,
    /// Shutdown came first; progress is saved for `--resume`.
    Interrupted,
}

/// Windows never shrink below this when the API refuses long ones.
const MIN_SPLIT_WINDOW: Duration = Duration::from_secs(60);

/// What a poller is built from. The caller keeps its own handles (the client and the sinks
/// are shared) for what it does before and after a walk: the first token, closing the sinks.
pub(crate) struct PollerParts {
    /// Reads the API.
    pub client: LaceworkClient,
    /// Turns pages into events.
    pub normalizer: Arc<Normalizer>,
    /// Where events go.
    pub sinks: Arc<SinkSet>,
    /// Cursors and delivered ids.
    pub store: CheckpointStore,
    /// Marks for the watchdog and `/healthz`.
    pub progress: Progress,
}

/// Everything a walk needs.
pub(crate) struct Poller {
    reader: WindowReader,
    store: CheckpointStore,
    poll: PollConfig,
    retention: Duration,
    progress: Progress,
}

impl Poller {
    /// Assembles a poller. `retention` is how long delivered ids are remembered.
    pub(crate) fn new(parts: PollerParts, poll: PollConfig, retention: Duration) -> Poller {
        Poller {
            reader: WindowReader::new(&parts, poll.max_result_rows),
            store: parts.store,
            poll,
            retention,
            progress: parts.progress,
        }
    }

    /// Follows the live stream: catch up from the checkpoint (or `lookback` ago) to
    /// `now - settle`, then poll every `interval`. With `once`, returns when caught up.
    pub(crate) async fn run_live(
        &self,
        stream: &str,
        once: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let window_backoff = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
        };
        let mut max_window = self.poll.window;
        let mut failures = 0u32;
        // `--once` catches up to where "now" was when it started; chasing a moving now would
        // read ever smaller windows.
        let once_limit = once.then(|| live_limit(now_ms(), self.poll.settle));
        let min_window = if once {
            Duration::ZERO
        } else {
            self.poll.interval.min(self.poll.window)
        };
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let cursor = match self.store.cursor(stream).await? {
                Some(cursor) => cursor,
                None => {
                    let start = now_ms() - self.poll.lookback.as_millis() as i64;
                    tracing::info!(
                        stream,
                        start = %format_time_ms(start).unwrap_or_default(),
                        "No checkpoint yet; starting poll.lookback ago."
                    );
                    Cursor {
                        position_ms: start,
                        origin_ms: start,
                    }
                }
            };
            let limit = once_limit.unwrap_or_else(|| live_limit(now_ms(), self.poll.settle));
            let Some(window) = next_window(cursor.position_ms, limit, max_window, min_window)
            else {
                if once {
                    tracing::info!(stream, "Caught up; exiting (--once).");
                    return Ok(());
                }
                tracing::debug!(stream, "Caught up; waiting for the next poll.");
                self.progress.idle();
                if sleep_or_shutdown(self.poll.interval, shutdown).await {
                    return Ok(());
                }
                continue;
            };
            let query = Window {
                start_ms: (window.start_ms - self.poll.overlap.as_millis() as i64)
                    .max(cursor.origin_ms),
                end_ms: window.end_ms,
            };
            // Working from here on: a first request that hangs must not look idle.
            self.progress.touch();
            match self.reader.read(stream, query, Scope::Live, shutdown).await {
                Ok(Outcome::Completed(stats)) => {
                    self.store
                        .advance(
                            stream,
                            Cursor {
                                position_ms: window.end_ms,
                                origin_ms: cursor.origin_ms,
                            },
                        )
                        .await?;
                    self.progress.committed(window.end_ms);
                    let pruned = self
                        .store
                        .prune(stream, window.end_ms - self.retention.as_millis() as i64)
                        .await?;
                    stats.log_committed(stream, window, pruned);
                    failures = 0;
                }
                Ok(Outcome::Cancelled) => return Ok(()),
                Err(error) if error.is_bad_window() && window.len() > MIN_SPLIT_WINDOW => {
                    max_window = shorter_window(stream, window, &error);
                }
                Err(error) if error.is_retryable() && !once => {
                    crate::metrics::emit::window_failed(stream);
                    let wait = window_backoff.delay(failures);
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        stream,
                        error = %error,
                        wait_secs = wait.as_secs(),
                        consecutive_failures = failures,
                        "Window not delivered; nothing committed, it will be read again."
                    );
                    if sleep_or_shutdown(wait, shutdown).await {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Replays `[job.from_ms, job.to_ms)` from `job.position_ms`, saving progress after each
    /// window. Never touches the live cursor.
    pub(crate) async fn replay(
        &self,
        job: &ReplayJob,
        shutdown: &CancellationToken,
    ) -> Result<ReplayOutcome, Error> {
        let stream = job.stream();
        let mut position = job.position_ms;
        let mut max_window = self.poll.window;
        while position < job.to_ms {
            if shutdown.is_cancelled() {
                return Ok(ReplayOutcome::Interrupted);
            }
            let window = next_window(position, job.to_ms, max_window, Duration::ZERO)
                .expect("position is before the end");
            // One millisecond earlier in case the API's startTime is exclusive; records are
            // then kept only if they fall inside the window, so each belongs to exactly one.
            let query = Window {
                start_ms: window.start_ms - 1,
                end_ms: window.end_ms,
            };
            match self
                .reader
                .read(&stream, query, Scope::Replay(window), shutdown)
                .await
            {
                Ok(Outcome::Completed(stats)) => {
                    self.store.advance_replay(job, window.end_ms).await?;
                    stats.log_committed(&stream, window, 0);
                    position = window.end_ms;
                }
                Ok(Outcome::Cancelled) => return Ok(ReplayOutcome::Interrupted),
                Err(error) if error.is_bad_window() && window.len() > MIN_SPLIT_WINDOW => {
                    max_window = shorter_window(&stream, window, &error);
                }
                Err(error) => return Err(error),
            }
        }
        self.store.finish_replay(job).await?;
        Ok(ReplayOutcome::Finished)
    }
}

/// The window length to use after `window` was refused (400) or held more rows than one query
/// returns: half of it, never below `MIN_SPLIT_WINDOW`. Nothing of the window was committed,
/// so it is read again, shorter.
fn shorter_window(stream: &str, window: Window, error: &Error) -> Duration {
    let shorter = (window.len() / 2).max(MIN_SPLIT_WINDOW);
    tracing::warn!(
        stream,
        error = %error,
        window_secs = shorter.as_secs(),
        "The window cannot be read in one query; reading shorter windows."
    );
    shorter
}

/// Sleeps, or returns `true` early when shutdown is asked for.
async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
