//! The poller: walks time in windows, reads each window's pages, delivers the events, and only
//! then moves the checkpoint.
//!
//! Invariant: a cursor (live or replay) moves to a window's end only after every event of the
//! window was acknowledged by every sink. Ids are recorded as batches are acknowledged, so a
//! window read again after a crash emits only what was not delivered before. Every window
//! walked has a ledger row; a failed one stays visible until it is read.

mod error;
mod fanout;
mod own_key;
mod reader;
mod reconcile;
mod resweep;
#[cfg(test)]
mod tests;
mod window;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::checkpoint::{
    CheckpointStore, Cursor, CursorMove, ReplayJob, ResumePoint, WindowKey, WindowKind,
};
use crate::config::PollConfig;
use crate::lacework::LaceworkClient;
use crate::normalize::Normalizer;
use crate::service::Progress;
use crate::sinks::{Delivery, SinkSet, StreamCursor};
use crate::time::{format_time_ms, now_ms};

pub(crate) use error::Error;
use reader::{Outcome, Scope, WindowReader};
use reconcile::Reconciler;
use resweep::Resweep;

/// What one step of the live walk did.
enum Step {
    /// A window of this many records was read and committed; there may be more.
    Read(usize),
    /// Nothing to read now.
    Idle,
    /// Shutdown came first.
    Cancelled,
}
use window::{Window, live_limit, next_window};

/// Records read since the last idle moment from which freeing memory back to the system is
/// worth a `malloc_trim`, which walks every arena; a page of Lacework's is 5,000.
const TRIM_AFTER_RECORDS: usize = 1_000;

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayOutcome {
    /// The whole range was delivered.
    Finished,
    /// Shutdown came first; progress is saved for `--resume`.
    Interrupted,
}

/// What a replay tells its caller after each committed window (a terminal's progress line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayStep {
    /// The replay's saved position now: the committed window's end.
    pub position_ms: i64,
    /// Events the window delivered in this run: of a window resumed at its saved link, only
    /// those after it.
    pub n_events: usize,
}

/// Windows never shrink below this when the API refuses long ones.
const MIN_SPLIT_WINDOW: Duration = Duration::from_secs(60);

/// A saved `nextPage` link is used only while younger than this: the API keeps links for 24
/// hours, and a walk needs time to finish.
const RESUME_VALIDITY: Duration = Duration::from_secs(23 * 3600);

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
    /// The account events name (for reconciled events).
    pub account: Option<String>,
    /// How often the user inventory is reconciled; zero: never.
    pub reconcile_every: Duration,
}

/// Everything a walk needs.
pub(crate) struct Poller {
    reader: WindowReader,
    sinks: Arc<SinkSet>,
    reconciler: Reconciler,
    /// The `account` label of the stream's metrics.
    account_label: String,
    client: LaceworkClient,
    store: CheckpointStore,
    poll: PollConfig,
    retention: Duration,
    progress: Progress,
}

/// What to do after a window failed.
enum Recovery {
    /// Read it again in shorter windows.
    Shorter(Duration),
    /// Read it again after this wait.
    Wait(Duration),
}

impl Poller {
    /// Assembles a poller. `retention` is how long delivered ids are remembered.
    pub(crate) fn new(parts: PollerParts, poll: PollConfig, retention: Duration) -> Poller {
        Poller {
            reader: WindowReader::new(&parts, poll.max_result_rows),
            sinks: Arc::clone(&parts.sinks),
            reconciler: Reconciler::new(parts.reconcile_every, parts.account.clone()),
            account_label: parts.account.clone().unwrap_or_default(),
            client: parts.client,
            store: parts.store,
            poll,
            retention,
            progress: parts.progress,
        }
    }

    /// Hands every sink the state saved with its last acknowledged batch, before the first
    /// delivery of a walk (the file sink cuts back what it wrote after it), and takes in what
    /// sinks that keep their own progress in Kafka remember of the `walked` streams, trusting
    /// it over this file. Called once before the walks of a round start (the file sink cuts
    /// its file back here, which must not happen while another walk writes).
    pub(crate) async fn resume_sinks(&self, walked: &[String]) -> Result<(), Error> {
        let states = self.store.sink_states().await?;
        let sole = self.sinks.len() == 1;
        for (idx, restored) in self.sinks.resume(&states).await? {
            for stream in restored
                .streams
                .into_iter()
                .filter(|s| walked.contains(&s.stream))
            {
                tracing::info!(
                    sink = self.sinks.name(idx),
                    stream = stream.stream,
                    n_ids = stream.ids.len(),
                    position = %stream.cursor.and_then(|c| format_time_ms(c.position_ms)).unwrap_or_default(),
                    "Taking the sink's own record of its progress over the state file's."
                );
                let cursor = stream.cursor.map(|c| Cursor {
                    position_ms: c.position_ms,
                    origin_ms: c.origin_ms,
                });
                self.store
                    .import_sink_progress(
                        self.sinks.name(idx),
                        sole,
                        &stream.stream,
                        cursor,
                        stream.ids,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// `now - settle` by the earlier of this host's clock and the API server's.
    fn live_limit(&self) -> i64 {
        live_limit(
            self.client.server_clock().now_ms(now_ms()),
            self.poll.settle,
        )
    }

    /// Follows the live stream: catch up from the checkpoint (or `lookback` ago) to
    /// `now - settle`, then poll every `interval`; between polls, re-sweep recent time on
    /// schedule. With `once`, returns when caught up (after a re-sweep, when one is due).
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
        // Records read since the daemon last went idle: after a catch-up, the memory its
        // pages needed goes back to the system (`memory::release_unused`); after a quiet
        // poll there is nothing worth the call.
        let mut read_since_idle = 0;
        // `--once` catches up to where "now" was when it started; chasing a moving now would
        // read ever smaller windows.
        let once_limit = once.then(|| self.live_limit());
        let min_window = if once {
            Duration::ZERO
        } else {
            self.poll.interval.min(self.poll.window)
        };
        let mut resweep = Resweep::new(&self.poll);
        // A token first: its answer's `Date` tells the server's clock before `--once` fixes
        // where it stops (a cached token costs nothing).
        self.client.check_credentials().await?;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let cursor = self.live_cursor(stream).await?;
            let limit = once_limit.unwrap_or_else(|| self.live_limit());
            let key = WindowKey {
                stream: stream.to_string(),
                kind: WindowKind::Live,
                start_ms: cursor.position_ms,
            };
            let resume = self.fresh_resume_point(&key).await?;
            let next = match resume {
                // An interrupted walk continues its own query, to its own end.
                Some(point) => Some((
                    Window {
                        start_ms: cursor.position_ms,
                        end_ms: point.end_ms,
                    },
                    Window {
                        start_ms: point.query_start_ms,
                        end_ms: point.query_end_ms,
                    },
                    Some(point),
                )),
                None => {
                    next_window(cursor.position_ms, limit, max_window, min_window).map(|window| {
                        let query = Window {
                            start_ms: (window.start_ms - self.poll.overlap.as_millis() as i64)
                                .max(cursor.origin_ms),
                            end_ms: window.end_ms,
                        };
                        (window, query, None)
                    })
                }
            };
            // Caught up, a due re-sweep reads one window at a time between live polls.
            let stepped = match next {
                Some((window, query, resume)) => self
                    .live_window(&key, cursor, window, query, resume, shutdown)
                    .await
                    .map_err(|error| (error, window, true)),
                None => resweep
                    .step(self, stream, cursor, limit, shutdown)
                    .await
                    .map_err(|(error, window)| (error, window, false)),
            };
            match stepped {
                Ok(Step::Read(records)) => {
                    failures = 0;
                    read_since_idle += records;
                }
                Ok(Step::Cancelled) => return Ok(()),
                Ok(Step::Idle) => {
                    // Caught up: the user inventory, when due.
                    if self
                        .reconciler
                        .step(&self.client, &self.sinks, &self.store, stream, shutdown)
                        .await?
                        == Delivery::Cancelled
                    {
                        return Ok(());
                    }
                    if once {
                        tracing::info!(stream, "Caught up; exiting (--once).");
                        return Ok(());
                    }
                    tracing::debug!(stream, "Caught up; waiting for the next poll.");
                    self.progress.idle();
                    if read_since_idle >= TRIM_AFTER_RECORDS {
                        crate::memory::release_unused();
                    }
                    read_since_idle = 0;
                    if sleep_or_shutdown(self.poll.interval, shutdown).await {
                        return Ok(());
                    }
                }
                Err((error, window, live)) => {
                    match self.recover(stream, window, &error, once, &mut failures, &window_backoff)
                    {
                        Some(Recovery::Shorter(shorter)) if live => max_window = shorter,
                        Some(Recovery::Shorter(shorter)) => resweep.shorten(shorter),
                        Some(Recovery::Wait(wait)) => {
                            if sleep_or_shutdown(wait, shutdown).await {
                                return Ok(());
                            }
                        }
                        None => return Err(error),
                    }
                }
            }
        }
    }

    /// Reads one live window and commits it: the ledger row done and the cursor at its end
    /// in one transaction, then old ids pruned.
    async fn live_window(
        &self,
        key: &WindowKey,
        cursor: Cursor,
        window: Window,
        query: Window,
        resume: Option<ResumePoint>,
        shutdown: &CancellationToken,
    ) -> Result<Step, Error> {
        // Working from here on: a first request that hangs must not look idle.
        self.progress.touch();
        let stats = match self
            .walk(key, window, query, Scope::Live, resume, shutdown)
            .await?
        {
            Outcome::Completed(stats) => stats,
            Outcome::Cancelled => return Ok(Step::Cancelled),
        };
        let moved = Cursor {
            position_ms: window.end_ms,
            origin_ms: cursor.origin_ms,
        };
        self.store
            .complete_window(
                key,
                (query.start_ms, query.end_ms),
                stats.counts(),
                CursorMove::Live(moved),
            )
            .await?;
        self.progress.committed(window.end_ms);
        // A sink's own copy of the cursor only saves re-reading: the ids it recorded with each
        // batch already keep a re-read from repeating anything.
        let position = StreamCursor {
            position_ms: moved.position_ms,
            origin_ms: moved.origin_ms,
        };
        if let Err(error) = self.sinks.cursor_moved(&key.stream, position).await {
            tracing::warn!(error = %error, "A sink did not record the stream's new cursor; it will with the next window.");
        }
        let pruned = self
            .store
            .prune(
                &key.stream,
                window.end_ms - self.retention.as_millis() as i64,
            )
            .await?;
        stats.log_committed(&key.stream, &self.account_label, window, pruned);
        Ok(Step::Read(stats.n_records))
    }

    /// The live cursor, or where a first run starts: where an interrupted first run began
    /// (its ledger row, so its saved link is found again), else `lookback` ago. Nothing is
    /// written: a checkpoint appears only once a window is delivered.
    async fn live_cursor(&self, stream: &str) -> Result<Cursor, Error> {
        if let Some(cursor) = self.store.cursor(stream).await? {
            return Ok(cursor);
        }
        let start = match self
            .store
            .first_unfinished_start(stream, WindowKind::Live)
            .await?
        {
            Some(start) => start,
            None => {
                let start = now_ms() - self.poll.lookback.as_millis() as i64;
                tracing::info!(
                    stream,
                    start = %format_time_ms(start).unwrap_or_default(),
                    "No checkpoint yet; starting poll.lookback ago."
                );
                start
            }
        };
        Ok(Cursor {
            position_ms: start,
            origin_ms: start,
        })
    }

    /// The saved link of an interrupted walk of this window, if it is still young enough.
    async fn fresh_resume_point(&self, key: &WindowKey) -> Result<Option<ResumePoint>, Error> {
        let Some(point) = self.store.resume_point(key).await? else {
            return Ok(None);
        };
        if now_ms() - point.saved_at_ms > RESUME_VALIDITY.as_millis() as i64 {
            tracing::info!(
                stream = key.stream,
                "The saved nextPage link is too old to resume from; reading the window from its start."
            );
            return Ok(None);
        }
        tracing::info!(
            stream = key.stream,
            window.start = %format_time_ms(key.start_ms).unwrap_or_default(),
            pages_done = point.pages,
            "Resuming an interrupted window at its saved nextPage link."
        );
        Ok(Some(point))
    }

    /// Reads one window with its ledger row: marked as being read, then failed with its
    /// error when it fails. A saved link the server no longer knows falls back to reading the
    /// window from its start (delivered ids keep that from emitting twice).
    async fn walk(
        &self,
        key: &WindowKey,
        window: Window,
        query: Window,
        scope: Scope,
        resume: Option<ResumePoint>,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Error> {
        let resuming = resume.is_some();
        let bounds = (query.start_ms, query.end_ms);
        self.store
            .begin_window(key, window.end_ms, bounds, resuming)
            .await?;
        let mut result = self.reader.read(key, query, scope, resume, shutdown).await;
        if resuming
            && let Err(Error::Lacework(crate::lacework::Error::PageExpired { .. })) = &result
        {
            tracing::info!(
                stream = key.stream,
                "The server no longer knows the saved nextPage link; reading the window from its start."
            );
            self.store
                .begin_window(key, window.end_ms, bounds, false)
                .await?;
            result = self.reader.read(key, query, scope, None, shutdown).await;
        }
        if let Err(error) = &result {
            self.store.fail_window(key, error.to_string()).await?;
        }
        result.map_err(|error| Error::in_window(key.kind, window, error))
    }

    /// Decides what to do after `window` failed: read it shorter, wait and read it again,
    /// or (`None`) stop with the error.
    fn recover(
        &self,
        stream: &str,
        window: Window,
        error: &Error,
        once: bool,
        failures: &mut u32,
        backoff: &Backoff,
    ) -> Option<Recovery> {
        if error.is_bad_window() && window.len() > MIN_SPLIT_WINDOW {
            return Some(Recovery::Shorter(shorter_window(stream, window, error)));
        }
        if !error.is_retryable() || once {
            return None;
        }
        crate::metrics::emit::window_failed(stream);
        let wait = backoff.delay(*failures);
        *failures = failures.saturating_add(1);
        tracing::warn!(
            stream,
            error = %error,
            wait_secs = wait.as_secs(),
            consecutive_failures = *failures,
            "Window not delivered; nothing committed, it will be read again."
        );
        Some(Recovery::Wait(wait))
    }

    /// Replays `[job.from_ms, job.to_ms)` from `job.position_ms`, saving progress after each
    /// window and then telling `on_window`. Never touches the live cursor.
    pub(crate) async fn replay(
        &self,
        job: &ReplayJob,
        shutdown: &CancellationToken,
        on_window: &(dyn Fn(ReplayStep) + Send + Sync),
    ) -> Result<ReplayOutcome, Error> {
        let stream = job.stream();
        let mut position = job.position_ms;
        let mut max_window = self.poll.window;
        self.resume_sinks(std::slice::from_ref(&stream)).await?;
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
            let key = WindowKey {
                stream: stream.clone(),
                kind: WindowKind::Replay,
                start_ms: window.start_ms,
            };
            // An interrupted window continues at its saved link, with its own bounds.
            let resume = self.fresh_resume_point(&key).await?;
            // A resumed window's counts start with what was delivered before the link.
            let n_events_before = resume.as_ref().map_or(0, |point| point.events as usize);
            let (window, query) = match &resume {
                Some(point) => (
                    Window {
                        start_ms: window.start_ms,
                        end_ms: point.end_ms,
                    },
                    Window {
                        start_ms: point.query_start_ms,
                        end_ms: point.query_end_ms,
                    },
                ),
                None => (window, query),
            };
            match self
                .walk(&key, window, query, Scope::Replay(window), resume, shutdown)
                .await
            {
                Ok(Outcome::Completed(stats)) => {
                    self.store
                        .complete_window(
                            &key,
                            (query.start_ms, query.end_ms),
                            stats.counts(),
                            CursorMove::Replay {
                                id: job.id.clone(),
                                position_ms: window.end_ms,
                            },
                        )
                        .await?;
                    stats.log_committed(&stream, &self.account_label, window, 0);
                    position = window.end_ms;
                    on_window(ReplayStep {
                        position_ms: position,
                        n_events: stats.n_events.saturating_sub(n_events_before),
                    });
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

/// Sleeps, or returns `true` early when shutdown is asked for. A wait by design (the next
/// poll, a failed window's backoff) beats the heartbeat: it is not a hang.
async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = crate::heartbeat::sleep(duration) => false,
    }
}
