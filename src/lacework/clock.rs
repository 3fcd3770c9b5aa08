//! The API server's clock, read from the `Date` header of its answers.
//!
//! A host whose clock runs ahead would read windows the server has not finished filling and
//! move the cursor past them. The poller therefore ends windows at the earlier of the two
//! clocks; a skew over a minute is logged and exported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{DATE, HeaderMap};
use tokio::time::Instant;

/// A skew smaller than this is the `Date` header's one-second resolution plus latency.
const TOLERANCE: Duration = Duration::from_secs(2);

/// A skew at least this large is logged.
const WARN_SKEW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Reading {
    /// The server's time at `at`, in epoch ms.
    server_ms: i64,
    at: Option<Instant>,
    /// Whole minutes of skew last logged (0 when within a minute).
    logged_minutes: i64,
}

/// The server's clock as last read. Cheap to clone; clones share the reading.
#[derive(Debug, Clone, Default)]
pub struct ServerClock {
    reading: Arc<Mutex<Reading>>,
}

impl ServerClock {
    /// Reads the `Date` header of an answer.
    pub fn observe(&self, headers: &HeaderMap) {
        let Some(server_ms) = headers
            .get(DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| chrono::DateTime::parse_from_rfc2822(text.trim()).ok())
            .map(|date| date.timestamp_millis())
        else {
            return;
        };
        self.observe_at(server_ms, crate::time::now_ms());
    }

    fn observe_at(&self, server_ms: i64, local_ms: i64) {
        let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        reading.server_ms = server_ms;
        reading.at = Some(Instant::now());
        // Positive when this host's clock is ahead of the server's.
        let skew_ms = local_ms - server_ms;
        crate::metrics::emit::clock_skew(skew_ms as f64 / 1000.0);
        let minutes = if skew_ms.unsigned_abs() >= WARN_SKEW.as_millis() as u64 {
            skew_ms / 60_000
        } else {
            0
        };
        if minutes != reading.logged_minutes {
            reading.logged_minutes = minutes;
            if minutes == 0 {
                tracing::info!(
                    skew_secs = skew_ms / 1000,
                    "This host's clock agrees with the Lacework API's again."
                );
            } else {
                tracing::warn!(
                    skew_secs = skew_ms / 1000,
                    "This host's clock differs from the Lacework API's (Date header) by over a minute; windows end at the earlier of the two. Check NTP."
                );
            }
        }
    }

    /// Now, by the earlier of this host's clock and the server's (when the host is ahead by
    /// more than the header's resolution).
    pub fn now_ms(&self, local_ms: i64) -> i64 {
        let reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = reading.at else {
            return local_ms;
        };
        let server_now = reading.server_ms + at.elapsed().as_millis() as i64;
        if local_ms - server_now > TOLERANCE.as_millis() as i64 {
            server_now
        } else {
            local_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn windows_end_by_the_earlier_clock() {
        let clock = ServerClock::default();
        assert_eq!(clock.now_ms(1_000_000), 1_000_000, "no reading yet");
        // The host runs 5 minutes ahead.
        clock.observe_at(1_000_000, 1_300_000);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clock.now_ms(1_310_000), 1_010_000);
        // Within the header's resolution the host's clock is used.
        clock.observe_at(2_000_000, 2_001_000);
        assert_eq!(clock.now_ms(2_001_000), 2_001_000);
        // A host behind the server keeps its own, earlier, clock.
        clock.observe_at(3_000_000, 2_000_000);
        assert_eq!(clock.now_ms(2_000_000), 2_000_000);
    }

    #[test]
    fn the_date_header_is_read() {
        let clock = ServerClock::default();
        let mut headers = HeaderMap::new();
        headers.insert(DATE, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        clock.observe(&headers);
        let now = crate::time::now_ms();
        let server = clock.now_ms(now);
        assert_eq!(server / 1000, 1_445_412_480, "the server's 2015 clock wins");
    }
}
