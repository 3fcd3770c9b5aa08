//! Late-arrival re-sweeps: every `poll.resweep_every`, the time in `[now - poll.resweep,
//! cursor)` is read again, one window at a time between live polls, and only ids never
//! delivered are emitted. Lacework does not publish its ingestion delay; what a re-sweep
//! finds measures it (`lae_late_record_delay_seconds`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Cursor, CursorMove, WindowKey, WindowKind};
use crate::config::PollConfig;
use crate::poller::reader::{Outcome, Scope};
use crate::poller::window::{Window, next_window};
use crate::poller::{Error, Poller, Step};
use crate::time::{format_time_ms, now_ms};

/// The re-sweep in progress.
struct Run {
    to_ms: i64,
    position_ms: i64,
    windows: i64,
    late: i64,
}

/// The re-sweep schedule of one stream.
pub(crate) struct Resweep {
    span: Duration,
    every: Duration,
    max_window: Duration,
    /// When the last re-sweep began (epoch ms); read from the store on first use, so the
    /// schedule survives restarts.
    last_started_ms: Option<i64>,
    run: Option<Run>,
}

impl Resweep {
    pub(crate) fn new(poll: &PollConfig) -> Resweep {
        Resweep {
            span: poll.resweep,
            every: poll.resweep_every,
            max_window: poll.window,
            last_started_ms: None,
            run: None,
        }
    }

    /// Reads shorter windows after the API refused one.
    pub(crate) fn shorten(&mut self, max_window: Duration) {
        self.max_window = max_window;
    }

    /// Does the next piece of re-sweep work, if one is due or under way.
    pub(crate) async fn step(
        &mut self,
        poller: &Poller,
        stream: &str,
        cursor: Cursor,
        limit_ms: i64,
        shutdown: &CancellationToken,
    ) -> Result<Step, (Error, Window)> {
        if self.span.is_zero() {
            return Ok(Step::Idle);
        }
        let now = now_ms();
        let no_window = Window {
            start_ms: cursor.position_ms,
            end_ms: cursor.position_ms,
        };
        let store_error = |error: crate::checkpoint::Error| (Error::from(error), no_window);
        if self.run.is_none() {
            let last_started = match self.last_started_ms {
                Some(at) => at,
                None => {
                    let at = match poller.store.resweep(stream).await.map_err(store_error)? {
                        Some(state) => state.started_at_ms,
                        None => {
                            // The first run has just read this time; the first re-sweep
                            // comes one period later.
                            poller
                                .store
                                .start_resweep(stream, cursor.position_ms, cursor.position_ms)
                                .await
                                .map_err(store_error)?;
                            poller
                                .store
                                .finish_resweep(stream, 0, 0)
                                .await
                                .map_err(store_error)?;
                            now
                        }
                    };
                    self.last_started_ms = Some(at);
                    at
                }
            };
            if now - last_started < self.every.as_millis() as i64 {
                return Ok(Step::Idle);
            }
            // Never before where the stream began, never past what the live walk read.
            let from_ms = (limit_ms.min(now) - self.span.as_millis() as i64).max(cursor.origin_ms);
            let to_ms = cursor.position_ms;
            poller
                .store
                .start_resweep(stream, from_ms.min(to_ms), to_ms)
                .await
                .map_err(store_error)?;
            self.last_started_ms = Some(now);
            tracing::debug!(
                stream,
                from = %format_time_ms(from_ms).unwrap_or_default(),
                to = %format_time_ms(to_ms).unwrap_or_default(),
                "Re-sweep started."
            );
            self.run = Some(Run {
                to_ms,
                position_ms: from_ms,
                windows: 0,
                late: 0,
            });
        }
        let run = self.run.as_mut().expect("a run is under way");
        let Some(window) = next_window(run.position_ms, run.to_ms, self.max_window, Duration::ZERO)
        else {
            let run = self.run.take().expect("a run is under way");
            poller
                .store
                .finish_resweep(stream, run.windows, run.late)
                .await
                .map_err(store_error)?;
            crate::metrics::emit::resweep_finished(stream);
            if run.late > 0 {
                tracing::info!(
                    stream,
                    late_records = run.late,
                    windows = run.windows,
                    "Re-sweep delivered records that became visible late; see lae_late_record_delay_seconds to tune poll.settle, poll.overlap and poll.resweep."
                );
            } else {
                tracing::debug!(
                    stream,
                    windows = run.windows,
                    "Re-sweep found nothing late."
                );
            }
            return Ok(Step::Idle);
        };
        let key = WindowKey {
            stream: stream.to_string(),
            kind: WindowKind::Resweep,
            start_ms: window.start_ms,
        };
        poller.progress.touch();
        match poller
            .walk(&key, window, window, Scope::Resweep, None, shutdown)
            .await
        {
            Ok(Outcome::Completed(stats)) => {
                poller
                    .store
                    .complete_window(
                        &key,
                        (window.start_ms, window.end_ms),
                        stats.counts(),
                        CursorMove::None,
                    )
                    .await
                    .map_err(|error| (Error::from(error), window))?;
                run.position_ms = window.end_ms;
                run.windows += 1;
                run.late += stats.n_late as i64;
                Ok(Step::Read(stats.n_records))
            }
            Ok(Outcome::Cancelled) => Ok(Step::Cancelled),
            Err(error) => Err((error, window)),
        }
    }
}
