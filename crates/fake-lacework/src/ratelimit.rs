//! The advisory `RateLimit-*` headers: one token bucket of 480 per hour per endpoint family.

use std::sync::Mutex;
use std::time::Instant;

use crate::lock;

/// Requests per rolling hour, as documented.
pub(crate) const LIMIT: u32 = 480;

const REFILL_PER_SEC: f64 = LIMIT as f64 / 3600.0;

/// Endpoint families with separate buckets (DOCS: each v2 functionality has its own bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Tokens = 0,
    AuditLogs = 1,
    Other = 2,
}

impl Family {
    pub fn for_path(path: &str) -> Family {
        if path.starts_with("/api/v2/access/tokens") {
            Family::Tokens
        } else if path.starts_with("/api/v2/AuditLogs") {
            Family::AuditLogs
        } else {
            Family::Other
        }
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

/// Counts requests down; never refuses one (only an injected fault answers 429).
pub(crate) struct RateLimiter {
    buckets: Mutex<[Bucket; 3]>,
}

impl RateLimiter {
    pub fn new() -> Self {
        let full = Bucket {
            level: f64::from(LIMIT),
            at: Instant::now(),
        };
        RateLimiter {
            buckets: Mutex::new([full; 3]),
        }
    }

    /// Takes one unit; returns `(remaining, reset_secs)` for the response headers. Reset is the
    /// wait for the next unit once empty, else the time until the bucket is full again.
    pub fn take(&self, family: Family) -> (u32, u64) {
        let mut buckets = lock(&self.buckets);
        let b = &mut buckets[family as usize];
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * REFILL_PER_SEC;
        b.level = (b.level + refill).min(f64::from(LIMIT));
        b.at = now;
        b.level = (b.level - 1.0).max(0.0);
        let remaining = b.level.floor() as u32;
        let missing = if remaining == 0 {
            1.0 - b.level
        } else {
            f64::from(LIMIT) - b.level
        };
        (remaining, (missing / REFILL_PER_SEC).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_per_family_to_zero() {
        let r = RateLimiter::new();
        assert_eq!(r.take(Family::AuditLogs).0, 479);
        assert_eq!(r.take(Family::AuditLogs).0, 478);
        assert_eq!(r.take(Family::Tokens).0, 479);
        for _ in 0..600 {
            r.take(Family::Other);
        }
        let (remaining, reset) = r.take(Family::Other);
        assert_eq!(remaining, 0);
        assert!((1..=8).contains(&reset), "{reset}");
    }
}
