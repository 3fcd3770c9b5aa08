//! The request governor: one per API key in a process, through which every request with that
//! key passes (live polls, re-sweeps, replays, token exchanges).
//!
//! It paces requests with a local token bucket (`[lacework] rate_limit`), reads the server's
//! `RateLimit-*` headers so that other processes on the same key count too, keeps a reserve so
//! `RateLimit-Remaining` never reaches zero, serves the live poll before re-sweeps and
//! re-sweeps before replays, and makes every request on the key wait out a 429.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backoff::server_wait;
use crate::config::RateBudget;

/// Who is asking; a lower priority waits while a higher one waits, and keeps a larger share of
/// the budget in reserve for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// The live poll (and token exchanges, which everyone needs).
    Live = 0,
    /// Re-reading recent time for late records.
    Resweep = 1,
    /// Operator replays and backfills.
    Replay = 2,
}

impl Priority {
    const ALL: [Priority; 3] = [Priority::Live, Priority::Resweep, Priority::Replay];

    /// Share of a budget this priority leaves untouched for higher ones.
    fn reserve_share(self) -> f64 {
        match self {
            Priority::Live => 0.0,
            Priority::Resweep => 0.05,
            Priority::Replay => 0.10,
        }
    }

    /// The least the server's `RateLimit-Remaining` may be left at after a request: never
    /// zero, so another process on the key (an operator's replay beside the daemon) is not
    /// answered 429 either.
    fn server_floor(self, limit: f64) -> f64 {
        (limit * self.reserve_share())
            .ceil()
            .max(1.0 + self as u8 as f64)
    }

    fn label(self) -> &'static str {
        match self {
            Priority::Live => "live",
            Priority::Resweep => "resweep",
            Priority::Replay => "replay",
        }
    }
}

/// Lacework refills its buckets over a rolling hour; used when an answer does not tell.
const SERVER_PERIOD: Duration = Duration::from_secs(3600);

/// How long a 429 without any wait hint holds everyone back.
const DEFAULT_429_WAIT: Duration = Duration::from_secs(60);

/// What the server's last answer on one endpoint said about its budget.
#[derive(Debug, Clone, Copy)]
struct ServerView {
    limit: f64,
    remaining: f64,
    /// Requests per second the server's bucket refills at, as inferred from the answer.
    refill_per_sec: f64,
    seen_at: Instant,
    /// Requests sent on this endpoint since that answer.
    sent_since: u32,
}

impl ServerView {
    fn estimate(&self, now: Instant) -> f64 {
        let refilled = now.duration_since(self.seen_at).as_secs_f64() * self.refill_per_sec;
        (self.remaining + refilled).min(self.limit) - f64::from(self.sent_since)
    }
}

struct State {
    budget: RateBudget,
    level: f64,
    refilled_at: Instant,
    server: HashMap<&'static str, ServerView>,
    blocked_until: Option<Instant>,
    waiting: [u32; 3],
    throttled: bool,
}

impl State {
    fn refill(&mut self, now: Instant) {
        let rate = f64::from(self.budget.requests) / self.budget.period.as_secs_f64();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.level = (self.level + elapsed * rate).min(f64::from(self.budget.requests));
        self.refilled_at = now;
    }

    /// `Ok` when a request of `priority` on `endpoint` may go now, else how long to wait
    /// before asking again (at least a millisecond: a float rounding to a zero wait would
    /// spin without letting time pass).
    fn ready(&self, priority: Priority, endpoint: &str, now: Instant) -> Result<(), Duration> {
        self.ready_or_wait(priority, endpoint, now)
            .map_err(|wait| wait.max(Duration::from_millis(1)))
    }

    fn ready_or_wait(
        &self,
        priority: Priority,
        endpoint: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until.filter(|until| *until > now) {
            return Err(until - now);
        }
        if Priority::ALL[..priority as usize]
            .iter()
            .any(|higher| self.waiting[*higher as usize] > 0)
        {
            // Woken when the higher one goes; the timeout is only a safety net.
            return Err(Duration::from_secs(1));
        }
        let capacity = f64::from(self.budget.requests);
        let rate = capacity / self.budget.period.as_secs_f64();
        // A hair below a whole request is a whole request: refills are computed in floats.
        let needed = 1.0 + (capacity * priority.reserve_share()).floor() - 1e-9;
        if self.level < needed {
            return Err(Duration::from_secs_f64((needed - self.level) / rate));
        }
        if let Some(view) = self.server.get(endpoint) {
            let floor = priority.server_floor(view.limit);
            let estimate = view.estimate(now);
            if estimate - 1.0 < floor {
                let missing = floor + 1.0 - estimate;
                return Err(Duration::from_secs_f64(
                    (missing / view.refill_per_sec).clamp(0.05, 3600.0),
                ));
            }
        }
        Ok(())
    }

    fn take(&mut self, endpoint: &str) {
        self.level -= 1.0;
        if let Some(view) = self.server.get_mut(endpoint) {
            view.sent_since += 1;
        }
    }

    /// The budget left as this process sees it: its own bucket, or the server's count when
    /// that is lower.
    fn remaining(&self, endpoint: &str, now: Instant) -> f64 {
        let own = self.level.floor();
        match self.server.get(endpoint) {
            Some(view) => own.min(view.estimate(now).floor()).max(0.0),
            None => own.max(0.0),
        }
    }
}

/// Paces every request made with one API key.
pub struct Governor {
    state: Mutex<State>,
    changed: Notify,
}

/// Governors by API key (origin and key id), so every client built in one process with the
/// same key shares one, across configuration reloads too.
static GOVERNORS: LazyLock<Mutex<HashMap<String, Arc<Governor>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Governor {
    /// A governor with a full budget.
    pub fn new(budget: RateBudget) -> Governor {
        Governor {
            state: Mutex::new(State {
                budget,
                level: f64::from(budget.requests),
                refilled_at: Instant::now(),
                server: HashMap::new(),
                blocked_until: None,
                waiting: [0; 3],
                throttled: false,
            }),
            changed: Notify::new(),
        }
    }

    /// The process's governor for this key, created on first use. A changed budget (after a
    /// reload) applies from now on.
    pub fn for_key(key: &str, budget: RateBudget) -> Arc<Governor> {
        let mut governors = lock(&GOVERNORS);
        let governor = governors
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(Governor::new(budget)));
        {
            let mut state = lock(&governor.state);
            if state.budget != budget {
                state.refill(Instant::now());
                state.level = state.level.min(f64::from(budget.requests));
                state.budget = budget;
            }
        }
        Arc::clone(governor)
    }

    /// Waits until a request of `priority` to `endpoint` may be sent, and counts it.
    /// Cancel-safe: dropping the future gives up the place in line.
    pub async fn acquire(&self, priority: Priority, endpoint: &'static str) {
        let mut line: Option<InLine<'_>> = None;
        let mut waited = Duration::ZERO;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change in between still wakes us.
            notified.as_mut().enable();
            let wait = {
                let mut state = lock(&self.state);
                let now = Instant::now();
                state.refill(now);
                match state.ready(priority, endpoint, now) {
                    Ok(()) => {
                        state.take(endpoint);
                        let remaining = state.remaining(endpoint, now);
                        let ended = state.throttled && waited.is_zero();
                        if ended {
                            state.throttled = false;
                        }
                        drop(state);
                        crate::metrics::emit::api_budget_remaining(remaining);
                        if ended {
                            tracing::info!(
                                remaining,
                                "Request budget available again; throttling ended."
                            );
                        }
                        break;
                    }
                    Err(wait) => {
                        let started = !state.throttled;
                        state.throttled = true;
                        if line.is_none() {
                            state.waiting[priority as usize] += 1;
                        }
                        drop(state);
                        if line.is_none() {
                            line = Some(InLine {
                                governor: self,
                                priority,
                            });
                        }
                        if started {
                            tracing::info!(
                                priority = priority.label(),
                                wait_ms = wait.as_millis() as u64,
                                "Request budget nearly spent; throttling requests to the Lacework API."
                            );
                        }
                        wait
                    }
                }
            };
            let began = Instant::now();
            tokio::select! {
                () = crate::heartbeat::sleep(wait) => {}
                () = &mut notified => {}
            }
            let slept = began.elapsed();
            waited += slept;
            crate::metrics::emit::api_throttled(priority.label(), slept.as_secs_f64());
        }
        drop(line);
    }

    /// Reads an answer's `RateLimit-*` headers; a 429 makes every request on the key wait
    /// out `RateLimit-Reset` (or `Retry-After`).
    pub fn observe(&self, endpoint: &'static str, status: u16, headers: &HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<f64>().ok())
                .filter(|value| value.is_finite() && *value >= 0.0)
        };
        let remaining = number("ratelimit-remaining");
        if let Some(remaining) = remaining {
            crate::metrics::emit::api_ratelimit_remaining(endpoint, remaining);
        }
        let now = Instant::now();
        let mut state = lock(&self.state);
        if let (Some(limit), Some(remaining)) = (number("ratelimit-limit"), remaining)
            && limit >= 1.0
        {
            let previous = state.server.get(endpoint).map(|view| view.refill_per_sec);
            let refill_per_sec = match number("ratelimit-reset").filter(|reset| *reset > 0.0) {
                // Not limited, RateLimit-Reset is the time until the bucket is full again:
                // that tells how fast it refills.
                Some(reset) if status != 429 && remaining >= 1.0 && remaining < limit => {
                    (limit - remaining) / reset
                }
                // Limited (or about to be), it is the wait for the next request: keep what
                // an earlier answer told, else at least one request per reset.
                Some(reset) => previous.unwrap_or(1.0 / reset),
                None => previous.unwrap_or(limit / SERVER_PERIOD.as_secs_f64()),
            }
            .clamp(limit / SERVER_PERIOD.as_secs_f64() / 24.0, limit);
            state.server.insert(
                endpoint,
                ServerView {
                    limit,
                    remaining: remaining.min(limit),
                    refill_per_sec,
                    seen_at: now,
                    sent_since: 0,
                },
            );
        }
        if status == 429 {
            // At least a second, so a "0" can never make a 429 storm.
            let wait = server_wait(status, headers)
                .unwrap_or(DEFAULT_429_WAIT)
                .max(Duration::from_secs(1));
            let until = now + wait;
            state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
            if !state.throttled {
                state.throttled = true;
                tracing::info!(
                    endpoint,
                    wait_secs = wait.as_secs(),
                    "Lacework answered 429; every request with this API key waits it out."
                );
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

/// A place in line; leaving it (by going or by being dropped) wakes the others.
struct InLine<'a> {
    governor: &'a Governor,
    priority: Priority,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        lock(&self.governor.state).waiting[self.priority as usize] -= 1;
        self.governor.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(requests: u32, secs: u64) -> RateBudget {
        RateBudget {
            requests,
            period: Duration::from_secs(secs),
        }
    }

    fn headers(limit: u32, remaining: u32, reset: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-limit", limit.into());
        headers.insert("ratelimit-remaining", remaining.into());
        headers.insert("ratelimit-reset", reset.into());
        headers
    }

    #[tokio::test(start_paused = true)]
    async fn the_local_budget_paces_requests() {
        let governor = Governor::new(budget(10, 100));
        let started = Instant::now();
        for _ in 0..10 {
            governor.acquire(Priority::Live, "/x").await;
        }
        assert!(
            started.elapsed() < Duration::from_millis(10),
            "a full bucket"
        );
        governor.acquire(Priority::Live, "/x").await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(11),
            "one request per 10 s once empty: {elapsed:?}"
        );
        // The wait is exported (the registry is the process's, so other tests add to it).
        let waited = crate::metrics::global()
            .value(
                "lae_api_throttle_wait_seconds_total",
                &[("priority", "live")],
            )
            .unwrap_or(0.0);
        assert!(waited >= 9.9, "{waited}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_replay_leaves_a_reserve_for_the_live_poll() {
        let governor = Arc::new(Governor::new(budget(20, 200)));
        // A replay spends down to its 10% reserve (2 of 20) and then waits...
        for _ in 0..18 {
            governor.acquire(Priority::Replay, "/x").await;
        }
        let replay = {
            let governor = Arc::clone(&governor);
            tokio::spawn(async move { governor.acquire(Priority::Replay, "/x").await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!replay.is_finished(), "the replay waits at its reserve");
        // ...while the live poll still goes at once.
        let started = Instant::now();
        governor.acquire(Priority::Live, "/x").await;
        governor.acquire(Priority::Live, "/x").await;
        assert!(started.elapsed() < Duration::from_millis(10));
        replay.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_live_poll_goes_before_a_waiting_replay() {
        let governor = Arc::new(Governor::new(budget(1, 10)));
        governor.acquire(Priority::Live, "/x").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let spawn = |priority: Priority, delay_ms: u64| {
            let governor = Arc::clone(&governor);
            let order = Arc::clone(&order);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                governor.acquire(priority, "/x").await;
                lock(&order).push(priority);
            })
        };
        let replay = spawn(Priority::Replay, 0);
        let live = spawn(Priority::Live, 5);
        live.await.unwrap();
        replay.await.unwrap();
        assert_eq!(*lock(&order), [Priority::Live, Priority::Replay]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_server_count_is_never_spent_to_zero() {
        let governor = Governor::new(budget(1000, 3600));
        // Another process spent the key's budget: 2 of 100 left, refilling 1 per second.
        governor.observe("/x", 200, &headers(100, 2, 98));
        let started = Instant::now();
        governor.acquire(Priority::Live, "/x").await;
        assert!(started.elapsed() < Duration::from_millis(10), "leaves 1");
        governor.acquire(Priority::Live, "/x").await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(2),
            "waits for the server's bucket to refill: {elapsed:?}"
        );
        // A replay keeps 10% of the server's limit (10 of 100).
        governor.observe("/x", 200, &headers(100, 10, 90));
        let started = Instant::now();
        governor.acquire(Priority::Replay, "/x").await;
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_429_requests_resume_at_the_rate_the_server_told() {
        let governor = Governor::new(budget(1000, 3600));
        // 10 of 20 left, full again in 10 s: one request per second.
        governor.observe("/x", 200, &headers(20, 10, 10));
        // Another process spent the rest: the next answers say 0 left, then 429 for 2 s.
        governor.observe("/x", 200, &headers(20, 0, 1));
        governor.observe("/x", 429, &headers(20, 0, 2));
        let started = Instant::now();
        governor.acquire(Priority::Live, "/x").await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(3),
            "waits out the 429, then for 2 requests at 1 per second from the 429: {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_everyone_back() {
        let governor = Governor::new(budget(1000, 3600));
        let mut answer = headers(480, 0, 7);
        answer.insert("retry-after", "1".parse().unwrap());
        governor.observe("/x", 429, &answer);
        let started = Instant::now();
        governor.acquire(Priority::Live, "/other").await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(7) && elapsed < Duration::from_secs(8),
            "RateLimit-Reset comes first on a 429: {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_leaves_the_line() {
        let governor = Arc::new(Governor::new(budget(1, 10)));
        governor.acquire(Priority::Live, "/x").await;
        let waiting = {
            let governor = Arc::clone(&governor);
            tokio::spawn(async move { governor.acquire(Priority::Live, "/x").await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(lock(&governor.state).waiting, [0, 0, 0]);
        tokio::time::timeout(
            Duration::from_secs(11),
            governor.acquire(Priority::Replay, "/x"),
        )
        .await
        .expect("a replay is not held back by a live waiter that left");
    }
}
