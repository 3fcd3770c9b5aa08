//! Pure window arithmetic: which time range to read next.

use std::time::Duration;

/// A half-open time range `[start_ms, end_ms)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start_ms: i64,
    /// Exclusive end.
    pub end_ms: i64,
}

impl Window {
    /// Length of the window.
    pub fn len(&self) -> Duration {
        Duration::from_millis((self.end_ms - self.start_ms).max(0) as u64)
    }
}

/// The next window to read after `cursor_ms`, or `None` when caught up.
///
/// Never reaches past `now - settle` (late records need time to land), never longer than
/// `max_len`, and not shorter than `min_len` unless it ends exactly at `limit_ms` (the end of a
/// replay range, or a `--once` catch-up): tiny windows waste the API's request budget.
pub fn next_window(
    cursor_ms: i64,
    limit_ms: i64,
    max_len: Duration,
    min_len: Duration,
) -> Option<Window> {
    let available = limit_ms - cursor_ms;
    if available <= 0 || available < min_len.as_millis() as i64 {
        return None;
    }
    let end_ms = cursor_ms
        .saturating_add(max_len.as_millis() as i64)
        .min(limit_ms);
    Some(Window {
        start_ms: cursor_ms,
        end_ms,
    })
}

/// `now - settle`, the newest instant a live walk may read up to.
pub fn live_limit(now_ms: i64, settle: Duration) -> i64 {
    now_ms - settle.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const DAY: Duration = Duration::from_secs(86_400);
    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn windows_are_capped_by_length_and_limit() {
        let check = |cursor: i64,
                     limit: i64,
                     max: Duration,
                     min: Duration,
                     expected: Option<(i64, i64)>| {
            let got = next_window(cursor, limit, max, min).map(|w| (w.start_ms, w.end_ms));
            assert_eq!(got, expected, "cursor={cursor} limit={limit}");
        };
        check(0, 10 * DAY_MS, DAY, MIN, Some((0, DAY_MS)));
        check(
            9 * DAY_MS,
            10 * DAY_MS - 5,
            DAY,
            MIN,
            Some((9 * DAY_MS, 10 * DAY_MS - 5)),
        );
        check(0, 59_999, DAY, MIN, None);
        check(0, 60_000, DAY, MIN, Some((0, 60_000)));
        check(0, 1, DAY, Duration::ZERO, Some((0, 1)));
        check(5, 5, DAY, Duration::ZERO, None);
        check(10, 5, DAY, Duration::ZERO, None);
    }

    #[test]
    fn live_limit_subtracts_settle() {
        assert_eq!(live_limit(1_000_000, Duration::from_secs(120)), 880_000);
        let window = Window {
            start_ms: 10,
            end_ms: 20,
        };
        assert_eq!(window.len(), Duration::from_millis(10));
    }
}
