//! A replay's progress line on a terminal: windows done of total, events delivered, events per
//! second and the time left, drawn below the logs (`telemetry::StatusLine`) at most four
//! times a second, and replaced by a summary at the end.
//!
//! Only a person at a terminal sees it: never in logs, under systemd, in JSON logs, or when
//! events go to the same terminal (`shows_progress`).

use std::future::Future;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::exporter::{ReplayOutcome, ReplayStep};
use crate::telemetry::{LogFormat, StatusLine};

/// What decides whether the progress line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conditions {
    /// Standard error is a terminal.
    pub stderr_is_terminal: bool,
    /// `$JOURNAL_STREAM` is set: standard error goes to the journal.
    pub under_journald: bool,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `replay --no-progress`.
    pub no_progress: bool,
    /// Standard output is a terminal and a stdout sink writes events there: they would tear
    /// the line.
    pub events_on_terminal: bool,
}

/// Whether the progress line is drawn: only for a person at a terminal reading text logs.
pub(crate) fn shows_progress(conditions: &Conditions) -> bool {
    conditions.stderr_is_terminal
        && !conditions.under_journald
        && conditions.log_format == LogFormat::Text
        && !conditions.no_progress
        && !conditions.events_on_terminal
}

/// How often the line is drawn again.
const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// The progress of one replay run, drawn while the walk runs.
pub(crate) struct ReplayProgress {
    status_line: StatusLine,
    started: Instant,
    range: Range,
    /// Where the walk is and what it delivered, updated by `record`.
    tally: Mutex<Tally>,
}

/// What does not change during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    /// The replay's range, FROM inclusive, TO exclusive.
    from_ms: i64,
    to_ms: i64,
    /// `poll.window`: the length of the replay's windows.
    window_ms: i64,
    /// Where this run started (later than `from_ms` when resumed).
    start_ms: i64,
}

/// What changes during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    /// The replay's saved position.
    position_ms: i64,
    /// Events delivered by this run.
    n_events: u64,
}

impl ReplayProgress {
    /// The progress of a replay of `[from_ms, to_ms)` in windows of `window`, starting (or
    /// resuming) at `position_ms`, drawn in `status_line`.
    pub(crate) fn new(
        status_line: StatusLine,
        (from_ms, to_ms): (i64, i64),
        window: Duration,
        position_ms: i64,
    ) -> ReplayProgress {
        ReplayProgress {
            status_line,
            started: Instant::now(),
            range: Range {
                from_ms,
                to_ms,
                window_ms: (window.as_millis() as i64).max(1),
                start_ms: position_ms,
            },
            tally: Mutex::new(Tally {
                position_ms,
                n_events: 0,
            }),
        }
    }

    /// Takes in a committed window.
    pub(crate) fn record(&self, step: ReplayStep) {
        let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        tally.position_ms = step.position_ms;
        tally.n_events += step.n_events as u64;
    }

    /// Runs `walk`, drawing the line now and every `REDRAW_EVERY` until it is done. Drawing
    /// happens in this task, between the walk's steps, so no draw can outlive the walk.
    pub(crate) async fn drive<F: Future>(&self, walk: F) -> F::Output {
        let mut walk = pin!(walk);
        let mut redraw = tokio::time::interval(REDRAW_EVERY);
        redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                output = &mut walk => return output,
                _ = redraw.tick() => self.status_line.draw(&self.line()),
            }
        }
    }

    /// Replaces the line by a summary of how the walk ended (none after an error: its log
    /// line says it).
    pub(crate) fn finish(&self, outcome: Option<ReplayOutcome>) {
        let summary = outcome
            .map(|outcome| summary(self.range, self.tally(), outcome, self.started.elapsed()));
        self.status_line.finish(summary.as_deref());
    }

    fn tally(&self) -> Tally {
        *self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn line(&self) -> String {
        line(self.range, self.tally(), self.started.elapsed())
    }
}

impl Drop for ReplayProgress {
    /// A walk that panicked or was dropped leaves no half line behind.
    fn drop(&mut self) {
        self.status_line.finish(None);
    }
}

/// The line while the walk runs: `replay: windows 3/10, 1234 events, 56.7 events/s, ETA 1m20s`.
fn line(range: Range, tally: Tally, elapsed: Duration) -> String {
    let (done, total) = windows(range, tally.position_ms);
    let eta =
        eta(range, tally.position_ms, elapsed).map_or_else(|| "--".to_string(), show_duration);
    format!(
        "replay: windows {done}/{total}, {} events, {} events/s, ETA {eta}",
        tally.n_events,
        show_rate(tally.n_events, elapsed)
    )
}

/// The line that stays: `replay: windows 10/10, 1234 events in 3m05s (6.7 events/s)`.
fn summary(range: Range, tally: Tally, outcome: ReplayOutcome, elapsed: Duration) -> String {
    let (done, total) = windows(range, tally.position_ms);
    let ended = match outcome {
        ReplayOutcome::Finished => "replay",
        ReplayOutcome::Interrupted => "replay interrupted",
    };
    format!(
        "{ended}: windows {done}/{total}, {} events in {} ({} events/s)",
        tally.n_events,
        show_duration(elapsed),
        show_rate(tally.n_events, elapsed)
    )
}

/// Windows done of total: the range cut into windows of `poll.window` from its start, and
/// those wholly behind the position (all of them once it reached the end; windows read
/// shorter after a refusal count when the whole window is behind).
fn windows(range: Range, position_ms: i64) -> (i64, i64) {
    let span = (range.to_ms - range.from_ms).max(0);
    // Both are positive: `(span + window - 1) / window` is the ceiling.
    let total = (span + range.window_ms - 1) / range.window_ms;
    let done = if position_ms >= range.to_ms {
        total
    } else {
        ((position_ms - range.from_ms).max(0) / range.window_ms).min(total)
    };
    (done, total)
}

/// The time left at this run's pace: the time taken so far times the part of the range left
/// over the part this run walked (whole windows and the part of one read shorter). Unknown
/// until this run committed a window.
fn eta(range: Range, position_ms: i64, elapsed: Duration) -> Option<Duration> {
    let walked = position_ms - range.start_ms;
    let left = (range.to_ms - position_ms).max(0);
    if walked <= 0 {
        return None;
    }
    Some(elapsed.mul_f64(left as f64 / walked as f64))
}

/// Events per second, with one decimal below 100.
fn show_rate(n_events: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        n_events as f64 / secs
    } else {
        0.0
    };
    if rate < 100.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

/// A duration in its two largest units: `42s`, `3m05s`, `1h02m`, `2d03h`.
fn show_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, mins, secs) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d{hours:02}h")
    } else if hours > 0 {
        format!("{hours}h{mins:02}m")
    } else if mins > 0 {
        format!("{mins}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// Ten hours in windows of one hour, started at its beginning.
    fn ten_hours() -> Range {
        Range {
            from_ms: 0,
            to_ms: 10 * HOUR,
            window_ms: HOUR,
            start_ms: 0,
        }
    }

    #[test]
    fn windows_count_whole_windows_behind_the_position() {
        fn check(range: Range, position_ms: i64, expected: (i64, i64)) {
            assert_eq!(windows(range, position_ms), expected, "at {position_ms}");
        }
        let range = ten_hours();
        check(range, 0, (0, 10));
        check(range, HOUR - 1, (0, 10));
        check(range, 3 * HOUR, (3, 10));
        // Half a window read shorter after a refusal is not a window done.
        check(range, 3 * HOUR + HOUR / 2, (3, 10));
        check(range, 10 * HOUR, (10, 10));
        // A range that is no multiple of the window: the last window is shorter, and
        // reaching the end is all of them.
        let ragged = Range {
            to_ms: 9 * HOUR + 1,
            ..range
        };
        check(ragged, 9 * HOUR, (9, 10));
        check(ragged, 9 * HOUR + 1, (10, 10));
        // One window longer than the range.
        let short = Range {
            window_ms: 24 * HOUR,
            ..range
        };
        check(short, 0, (0, 1));
        check(short, 10 * HOUR, (1, 1));
    }

    #[test]
    fn eta_is_the_time_left_at_this_runs_pace() {
        fn check(range: Range, position_ms: i64, elapsed_secs: u64, expected: Option<u64>) {
            let eta = eta(range, position_ms, Duration::from_secs(elapsed_secs));
            assert_eq!(eta.map(|d| d.as_secs()), expected, "at {position_ms}");
        }
        let range = ten_hours();
        // Nothing walked yet: unknown.
        check(range, 0, 5, None);
        // 2 of 10 windows in 60 s: 8 more take 240 s.
        check(range, 2 * HOUR, 60, Some(240));
        check(range, 5 * HOUR, 60, Some(60));
        check(range, 10 * HOUR, 60, Some(0));
        // Resumed at 6h: only this run's walk sets the pace (2 windows in 20 s, 2 left).
        let resumed = Range {
            start_ms: 6 * HOUR,
            ..range
        };
        check(resumed, 6 * HOUR, 20, None);
        check(resumed, 8 * HOUR, 20, Some(20));
    }

    #[test]
    fn rates_and_durations_read_short() {
        fn check_rate(n_events: u64, elapsed_ms: u64, expected: &str) {
            assert_eq!(
                show_rate(n_events, Duration::from_millis(elapsed_ms)),
                expected
            );
        }
        check_rate(0, 0, "0.0");
        check_rate(10, 0, "0.0");
        check_rate(15, 2_000, "7.5");
        check_rate(1_000, 4_000, "250");
        check_rate(99_999, 1_000, "99999");

        fn check_duration(secs: u64, expected: &str) {
            assert_eq!(show_duration(Duration::from_secs(secs)), expected);
        }
        check_duration(0, "0s");
        check_duration(42, "42s");
        check_duration(185, "3m05s");
        check_duration(3_720, "1h02m");
        check_duration(2 * 86_400 + 3 * 3_600 + 59, "2d03h");
    }

    #[test]
    fn the_line_shows_windows_events_rate_and_eta() {
        let range = ten_hours();
        let start = Tally {
            position_ms: 0,
            n_events: 0,
        };
        assert_eq!(
            line(range, start, Duration::ZERO),
            "replay: windows 0/10, 0 events, 0.0 events/s, ETA --"
        );
        let midway = Tally {
            position_ms: 4 * HOUR,
            n_events: 1_234,
        };
        assert_eq!(
            line(range, midway, Duration::from_secs(80)),
            "replay: windows 4/10, 1234 events, 15.4 events/s, ETA 2m00s"
        );
        let done = Tally {
            position_ms: 10 * HOUR,
            n_events: 1_234,
        };
        assert_eq!(
            summary(
                range,
                done,
                ReplayOutcome::Finished,
                Duration::from_secs(185)
            ),
            "replay: windows 10/10, 1234 events in 3m05s (6.7 events/s)"
        );
        assert_eq!(
            summary(
                range,
                midway,
                ReplayOutcome::Interrupted,
                Duration::from_secs(80)
            ),
            "replay interrupted: windows 4/10, 1234 events in 1m20s (15.4 events/s)"
        );
    }

    #[test]
    fn the_line_is_only_for_a_person_at_a_terminal_reading_text_logs() {
        let at_terminal = Conditions {
            stderr_is_terminal: true,
            under_journald: false,
            log_format: LogFormat::Text,
            no_progress: false,
            events_on_terminal: false,
        };
        fn check(conditions: Conditions, expected: bool) {
            assert_eq!(shows_progress(&conditions), expected, "{conditions:?}");
        }
        check(at_terminal, true);
        check(
            Conditions {
                stderr_is_terminal: false,
                ..at_terminal
            },
            false,
        );
        check(
            Conditions {
                under_journald: true,
                ..at_terminal
            },
            false,
        );
        check(
            Conditions {
                log_format: LogFormat::Json,
                ..at_terminal
            },
            false,
        );
        check(
            Conditions {
                no_progress: true,
                ..at_terminal
            },
            false,
        );
        check(
            Conditions {
                events_on_terminal: true,
                ..at_terminal
            },
            false,
        );
    }
}
