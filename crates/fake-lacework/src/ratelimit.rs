//! The rate-limit budget: one token bucket per endpoint family, advisory unless enforced.
//!
//! By default every answer carries `RateLimit-*` headers counted down from a bucket of 480 per
//! hour, and nothing is refused (a 429 then only comes from an injected `Fault::RateLimited`).
//! [`crate::FakeLacework::set_rate_limit`] enforces a budget instead: a request that finds its
//! bucket empty is answered 429 before any handler runs, as the real API does.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::lock;

/// A budget of `requests` per `period` for each endpoint family, refilled continuously (the
/// real API's rolling-hour token bucket), so a full bucket also allows a burst of `requests`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per `period`; the bucket holds this many. Must be at least 1.
    pub requests: u32,
    /// How long an empty bucket takes to refill completely. Must not be zero.
    pub period: Duration,
}

impl RateLimit {
    /// The documented Lacework budget: 480 requests per rolling hour.
    pub const LACEWORK: RateLimit = RateLimit {
        requests: 480,
        period: Duration::from_secs(3600),
    };
}

/// Endpoint families with separate buckets (DOCS: each v2 functionality has its own bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Tokens = 0,
    /// First pages and nextPage fetches share this one.
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

/// What the budget says about one request, and the values of its three headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// False only when an enforced budget is exhausted: the request gets 429.
    pub allowed: bool,
    /// `RateLimit-Limit`.
    pub limit: u32,
    /// `RateLimit-Remaining`.
    pub remaining: u32,
    /// `RateLimit-Reset`: on a refusal the wait until one request is allowed (at least 1 s);
    /// otherwise the wait for the next unit if this request took the last one, else the time
    /// until the bucket is full again.
    pub reset_secs: u64,
}

/// The buckets of all families under one budget.
pub(crate) struct RateLimiter {
    budget: Mutex<Budget>,
    refused: AtomicUsize,
}

impl RateLimiter {
    /// Advisory 480 per hour, buckets full.
    pub fn new() -> Self {
        RateLimiter {
            budget: Mutex::new(Budget::new(None, Instant::now())),
            refused: AtomicUsize::new(0),
        }
    }

    /// Enforces `limit` (or goes back to advisory with `None`); every bucket starts full.
    pub fn set(&self, limit: Option<RateLimit>) {
        *lock(&self.budget) = Budget::new(limit, Instant::now());
    }

    /// Takes one unit from `family`'s bucket, unless the request is refused.
    pub fn take(&self, family: Family) -> Verdict {
        let verdict = lock(&self.budget).take(family, Instant::now());
        if !verdict.allowed {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        verdict
    }

    /// How many requests an enforced budget refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

struct Budget {
    limit: RateLimit,
    enforced: bool,
    buckets: [Bucket; 3],
}

impl Budget {
    fn new(enforced: Option<RateLimit>, now: Instant) -> Self {
        let limit = enforced.unwrap_or(RateLimit::LACEWORK);
        let full = Bucket {
            level: f64::from(limit.requests),
            at: now,
        };
        Budget {
            limit,
            enforced: enforced.is_some(),
            buckets: [full; 3],
        }
    }

    fn take(&mut self, family: Family, now: Instant) -> Verdict {
        let capacity = f64::from(self.limit.requests);
        let per_sec = capacity / self.limit.period.as_secs_f64();
        // Refill arithmetic in floats can land a hair above a whole second; that is not a
        // reason to tell the client to wait one more.
        let secs_for = |units: f64| (units / per_sec - 1e-6).ceil() as u64;
        let bucket = &mut self.buckets[family as usize];
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * per_sec;
        bucket.level = (bucket.level + refill).min(capacity);
        bucket.at = now;
        if self.enforced && bucket.level < 1.0 {
            // A refusal costs nothing, so a client that waits as told is served on time.
            return Verdict {
                allowed: false,
                limit: self.limit.requests,
                remaining: 0,
                reset_secs: secs_for(1.0 - bucket.level).max(1),
            };
        }
        // Advisory mode never refuses, so the level bottoms out at zero.
        bucket.level = (bucket.level - 1.0).max(0.0);
        let remaining = bucket.level.floor() as u32;
        let missing = if remaining == 0 {
            1.0 - bucket.level
        } else {
            capacity - bucket.level
        };
        Verdict {
            allowed: true,
            limit: self.limit.requests,
            remaining,
            reset_secs: secs_for(missing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remaining(v: Verdict) -> (bool, u32) {
        (v.allowed, v.remaining)
    }

    #[test]
    fn advisory_counts_down_per_family_to_zero_and_never_refuses() {
        let r = RateLimiter::new();
        assert_eq!(r.take(Family::AuditLogs).remaining, 479);
        assert_eq!(r.take(Family::AuditLogs).remaining, 478);
        assert_eq!(r.take(Family::Tokens).remaining, 479);
        for _ in 0..600 {
            assert!(r.take(Family::Other).allowed);
        }
        let v = r.take(Family::Other);
        assert_eq!((v.limit, v.remaining), (480, 0));
        assert!((1..=8).contains(&v.reset_secs), "{}", v.reset_secs);
        assert_eq!(r.refused(), 0);
    }

    #[test]
    fn enforced_budget_refuses_when_empty_and_refills_continuously() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let limit = RateLimit {
            requests: 2,
            period: Duration::from_secs(10),
        };
        let mut b = Budget::new(Some(limit), t0);
        // Full: 2 units; reset is the time to full (5 s per unit) or to the next unit.
        let v = b.take(Family::AuditLogs, t0);
        assert_eq!(
            (v.allowed, v.limit, v.remaining, v.reset_secs),
            (true, 2, 1, 5)
        );
        let v = b.take(Family::AuditLogs, t0);
        assert_eq!((v.allowed, v.remaining, v.reset_secs), (true, 0, 5));
        // Empty: refused, told the wait for one unit, and refusals do not deepen the debt.
        for ms in [0, 1000, 2000] {
            let v = b.take(Family::AuditLogs, at(ms));
            assert_eq!((v.allowed, v.remaining), (false, 0));
            assert_eq!(v.reset_secs, 5 - ms / 1000);
        }
        // Other families keep their own buckets.
        assert_eq!(remaining(b.take(Family::Tokens, at(2000))), (true, 1));
        // One unit is back after 5 s, not later.
        assert!(b.take(Family::AuditLogs, at(5001)).allowed);
        assert!(!b.take(Family::AuditLogs, at(5001)).allowed);
        // Half a second short of the next unit is a wait of one whole second.
        let v = b.take(Family::AuditLogs, at(9501));
        assert_eq!((v.allowed, v.reset_secs), (false, 1));
        // A long pause fills the bucket only up to its size.
        assert_eq!(remaining(b.take(Family::AuditLogs, at(60_000))), (true, 1));
    }

    #[test]
    fn changing_the_limit_refills_every_bucket() {
        let r = RateLimiter::new();
        r.set(Some(RateLimit {
            requests: 1,
            period: Duration::from_secs(3600),
        }));
        assert!(r.take(Family::AuditLogs).allowed);
        assert!(!r.take(Family::AuditLogs).allowed);
        assert_eq!(r.refused(), 1);
        r.set(Some(RateLimit {
            requests: 3,
            period: Duration::from_secs(3600),
        }));
        assert_eq!(remaining(r.take(Family::AuditLogs)), (true, 2));
        r.set(None);
        assert_eq!(remaining(r.take(Family::AuditLogs)), (true, 479));
    }
}
