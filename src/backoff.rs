//! Capped exponential backoff with jitter, and reading the server's own wait hints.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// Delays for attempt 0, 1, 2, ...: `initial * 2^attempt`, capped, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), drawn from [d/2, d] so that many
    /// clients that failed together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(30)));
        let capped = exponential.min(self.max);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// The wait a server asked for with an answer of `status`. On a 429, Lacework's
/// `RateLimit-Reset` (seconds) comes first, then `Retry-After`. On any other status only
/// `Retry-After` counts: Lacework sends `RateLimit-Reset` on every answer, where it means
/// "until the quota is full again" (up to an hour), not "retry after".
pub fn server_wait(status: u16, headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if status == 429
        && let Some(seconds) = text("ratelimit-reset").and_then(|v| v.parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0)));
    }
    text("retry-after").and_then(parse_retry_after)
}

/// Parses a `Retry-After` value: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Adds a little jitter to a server-requested wait so clients do not return in lockstep.
pub fn with_small_jitter(wait: Duration) -> Duration {
    wait + Duration::from_millis(fastrand::u64(50..=250))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        for attempt in 0..40 {
            let expected = Duration::from_secs(1 << attempt.min(5)).min(Duration::from_secs(30));
            let delay = backoff.delay(attempt);
            assert!(
                delay >= expected / 2 && delay <= expected,
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn server_waits_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(server_wait(429, &headers), None);
        headers.insert("ratelimit-reset", "3600".parse().unwrap());
        assert_eq!(
            server_wait(503, &headers),
            None,
            "RateLimit-Reset is a wait only on 429"
        );
        assert_eq!(server_wait(429, &headers), Some(Duration::from_secs(3600)));
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(server_wait(503, &headers), Some(Duration::from_secs(7)));
        assert_eq!(server_wait(429, &headers), Some(Duration::from_secs(3600)));
        let in_a_minute = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc2822();
        let wait = parse_retry_after(&in_a_minute).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
