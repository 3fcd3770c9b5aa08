//! A faithful fake of the Lacework (FortiCNAPP) API v2 token and AuditLogs endpoints on loopback.
//!
//! [`FakeLacework`] is a real HTTP server (axum on `127.0.0.1`) that behaves like the API as
//! described in the project's API fact sheet, quirks included: raw or `Bearer` tokens, inclusive
//! time bounds, shuffled rows, snapshot paging with `?startTime=..&endTime=..` echoed onto
//! nextPage URLs, several shapes of "empty", and mixed `createdTime` formats. Tests drive it
//! through its ground truth ([`FakeLacework::records`], [`FakeLacework::expected_lifecycle`]),
//! fault switches ([`FakeLacework::fail_next`] and friends) and the request log.
//!
//! Two kinds of trouble can be switched on at runtime:
//! - Injected faults ([`Fault`]) hit the next request(s) of an endpoint whatever they ask:
//!   429, 5xx, a dropped connection, a slow answer, or a 200 whose body is unusable
//!   ([`BadBody`]: HTML, truncated JSON, the wrong shape, plain text).
//! - An enforced rate-limit budget ([`FakeLacework::set_rate_limit`]) answers 429 once a
//!   client outruns it, as the real API does, so tests can check that a client paces itself
//!   ([`FakeLacework::rate_limited_answers`] counts those 429s). Without it the
//!   `RateLimit-*` headers are advisory and nothing is refused.
//!
//! Records can also arrive late ([`FakeLacework::insert_late`]): a query sees them only once
//! they are visible, and a paged result keeps the rows of the moment its first page was served.
//!
//! Records are worded object-first by default; [`Wording::ActorFirst`] follows Lacework's one
//! real sample, which names the actor first, and adds actor-first look-alikes.
//!
//! Beside the audit log the fake holds a user inventory ([`UserInventory`]) served by
//! `GET /api/v2/TeamUsers`, the legacy `GET /api/v2/TeamMembers` and `GET /api/v2/UserProfile`.
//! It follows the lifecycle records the fake is given, and can also change with no audit
//! record ([`FakeLacework::edit_inventory`]), as a reconciliation must notice.

mod auth;
mod faults;
mod generator;
mod inventory;
mod page;
mod ratelimit;
mod record;
mod server;
mod store;
mod timefmt;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub use faults::{BadBody, Fault};
pub use generator::{GenerateSpec, SplitMix64};
pub use inventory::{ApiKey, TeamUser, UserChange, UserGroup, UserInventory, UserKind};
pub use ratelimit::RateLimit;
pub use record::{FakeRecord, LIFECYCLE_KINDS, LOOK_ALIKE_ACTIONS, OTHER_ACTIONS, Wording};
pub use server::query_value;
pub use timefmt::{format_millis, format_seconds, parse_query_time};

use auth::Tokens;
use faults::FaultQueue;
use generator::{Generator, default_accounts};
use ratelimit::RateLimiter;
use store::{Sessions, Store, StoredRecord};

/// How generated records render `createdTime` (the sources disagree, so the fake serves all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// A deterministic per-record mix of the three forms below.
    #[default]
    Mixed,
    /// `"2026-11-01T09:15:02.123Z"`.
    Millis,
    /// `"2026-11-01T09:15:02Z"`; `created_ms` is truncated to the second to match.
    Seconds,
    /// The integer `1793524502123`, as the schema endpoint claims.
    EpochMillis,
}

/// Server settings fixed at start (see the `set_*` methods for runtime switches).
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// The API key id clients must send as `keyId`.
    pub key_id: String,
    /// The API key secret clients must send as `X-LW-UAKS`.
    pub secret: String,
    /// Rows per page (the real API uses 5000).
    pub page_size: usize,
    /// The account served when neither `Account-Name` nor `Org-Access: true` is sent.
    pub primary_account: String,
    /// If set, a query spanning more than this gets 400.
    pub max_window: Option<Duration>,
    /// Append `?startTime=..&endTime=..` to nextPage URLs after the path token (the GO quirk).
    pub next_page_query: bool,
    /// How generated records render `createdTime`.
    pub time_format: TimeFormat,
    /// The most rows one query returns across all its pages (the real API: 500,000). A larger
    /// selection is cut to this many, and `paging.totalRows` still tells the full count.
    pub max_result_rows: usize,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            key_id: "ACME_1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF12".to_owned(),
            secret: "_fake_secret_0123456789abcdef0123".to_owned(),
            page_size: 5000,
            primary_account: "ACME".to_owned(),
            max_window: None,
            next_page_query: true,
            time_format: TimeFormat::Mixed,
            max_result_rows: 500_000,
        }
    }
}

/// How a query with no matching rows is answered; every form has been seen from Lacework.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmptyVariant {
    /// 200 `{"data":[]}`.
    #[default]
    EmptyData,
    /// 204 with no body.
    NoContent,
    /// 200 with a zero-length body.
    EmptyBody,
    /// 200 with the body `null`.
    Null,
    /// 404 `{"message":"Not Found"}`.
    NotFound,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLog {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path without the query, e.g. `/api/v2/AuditLogs`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The status sent (0 while the request is still in flight).
    pub status: u16,
    /// The `Account-Name` header.
    pub account_name: Option<String>,
    /// The `Org-Access` header.
    pub org_access: Option<String>,
    /// The raw `Authorization` header value.
    pub authorization: Option<String>,
    /// Whether `X-LW-UAKS` was sent (its value is a secret and is never recorded).
    pub uaks_present: bool,
}

/// Shared state behind the handlers and the public handle.
pub(crate) struct Inner {
    cfg: FakeConfig,
    addr: SocketAddr,
    base_url: String,
    max_window: Mutex<Option<Duration>>,
    store: RwLock<Store>,
    sessions: Mutex<Sessions>,
    tokens: Mutex<Tokens>,
    audit_faults: FaultQueue,
    token_faults: FaultQueue,
    inventory_faults: FaultQueue,
    inventory: Mutex<UserInventory>,
    refuse_team_users: AtomicBool,
    refuse_team_members: AtomicBool,
    expire_after_pages: Mutex<Option<usize>>,
    empty_variant: Mutex<EmptyVariant>,
    foreign_origin: Mutex<Option<String>>,
    repeat_next_page: AtomicBool,
    date_offset_ms: std::sync::atomic::AtomicI64,
    requests: Mutex<Vec<RequestLog>>,
    token_requests: AtomicUsize,
    rate: RateLimiter,
    shutdown: watch::Sender<bool>,
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not wedge the server.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn store_read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn store_write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn inventory(&self) -> MutexGuard<'_, UserInventory> {
        lock(&self.inventory)
    }

    /// Counts a successful AuditLogs page toward a pending `expire_tokens_after_pages`.
    fn note_page_served(&self) {
        let mut pending = lock(&self.expire_after_pages);
        let Some(left) = pending.as_mut() else {
            return;
        };
        *left = left.saturating_sub(1);
        if *left == 0 {
            *pending = None;
            drop(pending);
            lock(&self.tokens).revoke_all();
        }
    }
}

/// A running fake Lacework API; cheap to clone, all clones share one server.
#[derive(Clone)]
pub struct FakeLacework {
    inner: Arc<Inner>,
}

impl FakeLacework {
    /// Starts on `127.0.0.1` with an ephemeral port. Must be called inside a tokio runtime.
    pub async fn start(cfg: FakeConfig) -> std::io::Result<FakeLacework> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).await
    }

    /// Starts on `addr` and serves in a background tokio task.
    pub async fn start_on(addr: SocketAddr, cfg: FakeConfig) -> std::io::Result<FakeLacework> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, mut stop) = watch::channel(false);
        // Tokens and page tokens only need to be unguessable-looking, not repeatable.
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(addr.port());
        let inventory = UserInventory::new(&cfg.primary_account, inventory::DEFAULT_CALLER);
        let inner = Arc::new(Inner {
            max_window: Mutex::new(cfg.max_window),
            cfg,
            addr,
            base_url: format!("http://{addr}"),
            store: RwLock::new(Store::default()),
            sessions: Mutex::new(Sessions::new(generator::mix64(salt))),
            tokens: Mutex::new(Tokens::new(generator::mix64(!salt))),
            audit_faults: FaultQueue::default(),
            token_faults: FaultQueue::default(),
            inventory_faults: FaultQueue::default(),
            inventory: Mutex::new(inventory),
            refuse_team_users: AtomicBool::new(false),
            refuse_team_members: AtomicBool::new(false),
            expire_after_pages: Mutex::new(None),
            empty_variant: Mutex::new(EmptyVariant::default()),
            foreign_origin: Mutex::new(None),
            repeat_next_page: AtomicBool::new(false),
            date_offset_ms: std::sync::atomic::AtomicI64::new(0),
            requests: Mutex::new(Vec::new()),
            token_requests: AtomicUsize::new(0),
            rate: RateLimiter::new(),
            shutdown,
        });
        let app = server::router(Arc::clone(&inner));
        tokio::spawn(async move {
            let signal = async move {
                // A dropped sender also ends serving; either way we are done.
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!(error = %e, "fake lacework server stopped with an error");
            }
        });
        Ok(FakeLacework { inner })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The configuration the server started with (`max_window` may have changed since).
    pub fn config(&self) -> &FakeConfig {
        &self.inner.cfg
    }

    /// Stops accepting connections; requests in flight may finish.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Adds `spec.count` generated records (deterministic for a spec and the configured
    /// time format), all already visible; returns how many were added.
    ///
    /// The user inventory follows the lifecycle records in time order (see
    /// [`UserInventory::apply`]); API keys belong to the actor who created them.
    pub fn generate(&self, spec: &GenerateSpec) -> usize {
        // Rendering happens outside the lock so a big batch does not stall requests.
        let batch = generator::generate(spec, self.inner.cfg.time_format);
        let added = batch.records.len();
        self.inner.store_write().extend_sorted(batch.records);
        let mut inventory = self.inner.inventory();
        for account in &spec.accounts {
            inventory.add_account(account);
        }
        for (at_ms, account, actor, change) in &batch.changes {
            inventory.apply(account, actor, change, *at_ms);
        }
        added
    }

    /// Adds one record; it is served once `record.visible_at_ms` has passed.
    ///
    /// A user lifecycle record with an `expected_target` also changes the user inventory:
    /// `USER_CREATED` adds the target, `USER_DELETED` removes it, `USER_ENABLED` and
    /// `USER_DISABLED` set its flag and `USER_LOGIN` its last login. Role changes and API-key
    /// records do not say enough to follow; [`FakeLacework::record_user_change`] does.
    pub fn insert(&self, record: FakeRecord) {
        if let Some(change) = derived_change(&record) {
            let actor = record.json["userName"].as_str().unwrap_or_default();
            self.inner
                .inventory()
                .apply(&record.account, actor, &change, record.created_ms);
        }
        self.inner
            .store_write()
            .insert(StoredRecord::from_fake(record));
    }

    /// Adds a record (normally created in the past) that only appears after `visible_after`,
    /// like an event that reaches the audit log late.
    pub fn insert_late(&self, mut record: FakeRecord, visible_after: Duration) {
        let delay = i64::try_from(visible_after.as_millis()).unwrap_or(i64::MAX / 2);
        record.visible_at_ms = timefmt::now_ms().saturating_add(delay);
        self.insert(record);
    }

    /// Ground truth: every record (visible or not), sorted by `created_ms`.
    pub fn records(&self) -> Vec<FakeRecord> {
        self.inner
            .store_read()
            .iter()
            .map(StoredRecord::to_fake)
            .collect()
    }

    /// How many records are stored (visible or not).
    pub fn record_count(&self) -> usize {
        self.inner.store_read().len()
    }

    /// Lifecycle records created in `[from_ms, to_ms)`, optionally of one account
    /// (case-insensitive), visible or not, sorted by `created_ms`.
    pub fn expected_lifecycle(
        &self,
        from_ms: i64,
        to_ms: i64,
        account: Option<&str>,
    ) -> Vec<FakeRecord> {
        self.inner
            .store_read()
            .iter()
            .filter(|r| r.expected_type.is_some())
            .filter(|r| r.created_ms >= from_ms && r.created_ms < to_ms)
            .filter(|r| account.is_none_or(|a| a.eq_ignore_ascii_case(&r.account)))
            .map(StoredRecord::to_fake)
            .collect()
    }

    /// For the demo: every `every`, inserts one record created now (about 70% lifecycle),
    /// worded object-first. Abort the handle to stop it.
    pub fn spawn_trickle(&self, every: Duration, seed: u64) -> tokio::task::JoinHandle<()> {
        self.spawn_trickle_worded(every, seed, Wording::ObjectFirst)
    }

    /// [`FakeLacework::spawn_trickle`] with the records worded `wording`; the user inventory
    /// follows them.
    pub fn spawn_trickle_worded(
        &self,
        every: Duration,
        seed: u64,
        wording: Wording,
    ) -> tokio::task::JoinHandle<()> {
        let fake = self.clone();
        let mut generator = Generator::new(
            seed,
            default_accounts(),
            200,
            0.7,
            self.inner.cfg.time_format,
        )
        .with_wording(wording);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick fires at once; skip it so records arrive one period apart.
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = timefmt::now_ms();
                let generated = generator.next_record(now, i64::MIN);
                if let Some((account, actor, change)) = &generated.change {
                    fake.inner.inventory().apply(account, actor, change, now);
                }
                fake.inner.store_write().insert(generated.record);
            }
        })
    }

    /// The next `n` AuditLogs requests (first pages and nextPage fetches) get `fault`.
    /// Calls queue up: faults are consumed in the order they were added.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.inner.audit_faults.push(n, fault);
    }

    /// Drops every fault still queued, on every endpoint: the API heals.
    pub fn clear_faults(&self) {
        self.inner.audit_faults.clear();
        self.inner.token_faults.clear();
        self.inner.inventory_faults.clear();
    }

    /// The next `n` token requests get `fault`.
    pub fn fail_next_tokens(&self, n: usize, fault: Fault) {
        self.inner.token_faults.push(n, fault);
    }

    /// After `n` more successful AuditLogs page responses, every token issued so far turns
    /// invalid (401); tokens issued later work. `n == 0` invalidates them at once.
    pub fn expire_tokens_after_pages(&self, n: usize) {
        if n == 0 {
            *lock(&self.inner.expire_after_pages) = None;
            self.expire_all_tokens();
        } else {
            *lock(&self.inner.expire_after_pages) = Some(n);
        }
    }

    /// Invalidates every token issued so far.
    pub fn expire_all_tokens(&self) {
        lock(&self.inner.tokens).revoke_all();
    }

    /// Chooses how an empty result is answered.
    pub fn set_empty_variant(&self, v: EmptyVariant) {
        *lock(&self.inner.empty_variant) = v;
    }

    /// `Some(origin)` makes nextPage URLs point at that origin (e.g. `http://127.0.0.2:9`)
    /// instead of this server, to test that clients refuse to send tokens elsewhere.
    pub fn set_foreign_next_page(&self, origin: Option<String>) {
        *lock(&self.inner.foreign_origin) = origin;
    }

    /// When on, every nextPage URL of a result is the same (page 2's), a server loop bug.
    pub fn set_repeat_next_page(&self, on: bool) {
        self.inner.repeat_next_page.store(on, Ordering::SeqCst);
    }

    /// Shifts the server's clock as its `Date` header tells it by `offset_ms` (negative: the
    /// server is behind, as when the client's clock runs ahead). Record visibility keeps the
    /// real clock.
    pub fn set_date_offset_ms(&self, offset_ms: i64) {
        self.inner.date_offset_ms.store(offset_ms, Ordering::SeqCst);
    }

    /// Changes the maximum query window at runtime.
    pub fn set_max_window(&self, d: Option<Duration>) {
        *lock(&self.inner.max_window) = d;
    }

    /// `Some(limit)` enforces a budget: each endpoint family (tokens; AuditLogs first pages and
    /// nextPage fetches together; everything else) gets a bucket of `limit.requests` refilled
    /// continuously over `limit.period`. A request that finds its bucket empty is answered 429
    /// `{"message":"Rate limit exceeded"}` with `RateLimit-Remaining: 0` and `RateLimit-Reset`
    /// set to the whole seconds (at least 1) until a request is allowed again. It reaches no
    /// handler (no token, no page, no fault consumed), costs no budget and is logged with
    /// status 429. `None` goes back to advisory 480 per hour, which never refuses.
    ///
    /// Every change starts all buckets full.
    ///
    /// # Panics
    ///
    /// If `limit.requests` is 0 or `limit.period` is zero.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        if let Some(limit) = limit {
            assert!(
                limit.requests > 0 && !limit.period.is_zero(),
                "a rate limit needs at least one request per non-zero period: {limit:?}"
            );
        }
        self.inner.rate.set(limit);
    }

    /// How many 429s the enforced budget answered (injected `Fault::RateLimited` not counted).
    pub fn rate_limited_answers(&self) -> usize {
        self.inner.rate.refused()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.inner.requests).clone()
    }

    /// Forgets the request log (not the token count).
    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    /// How many `POST /api/v2/access/tokens` requests arrived, failed and refused ones included.
    pub fn token_requests(&self) -> usize {
        self.inner.token_requests.load(Ordering::SeqCst)
    }

    /// Ground truth: the users of `account` (case-insensitive), as `TeamUsers` serves them.
    pub fn team_users(&self, account: &str) -> Vec<TeamUser> {
        self.inner
            .inventory()
            .users(account)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Ground truth: a copy of the whole user inventory.
    pub fn inventory(&self) -> UserInventory {
        self.inner.inventory().clone()
    }

    /// Changes the user inventory with **no audit record**, to simulate what the audit log
    /// misses (a change made outside it, or a record that never arrives). Returns what `f`
    /// returns.
    pub fn edit_inventory<R>(&self, f: impl FnOnce(&mut UserInventory) -> R) -> R {
        f(&mut self.inner.inventory())
    }

    /// Makes `change` in `account` silently: [`UserInventory::apply`] with no audit record.
    pub fn apply_user_change_silently(
        &self,
        account: &str,
        actor: &str,
        change: &UserChange,
        at: DateTime<Utc>,
    ) -> bool {
        self.inner
            .inventory()
            .apply(account, actor, change, at.timestamp_millis())
    }

    /// Makes `change` in `account` and writes its audit record, worded actor-first in its
    /// canonical wording with a millisecond `createdTime`, created (and visible) at `created`.
    /// Returns the record, whose `expected_type` and `expected_target` are the ground truth:
    /// the user acted upon (a login's actor is the user who logs in, and the record names
    /// them whoever `actor` is); `None` for API-key changes.
    pub fn record_user_change(
        &self,
        account: &str,
        actor: &str,
        change: &UserChange,
        created: DateTime<Utc>,
    ) -> FakeRecord {
        let record = record::for_change(account, actor, change, created);
        let actor = match change {
            UserChange::Login { user } => user.as_str(),
            _ => actor,
        };
        self.inner
            .inventory()
            .apply(account, actor, change, record.created_ms);
        self.inner
            .store_write()
            .insert(StoredRecord::from_fake(record.clone()));
        record
    }

    /// When on, `GET /api/v2/TeamUsers` answers 403, as on an account still on the legacy
    /// access model, so a client must fall back to `TeamMembers`.
    pub fn set_refuse_team_users(&self, on: bool) {
        self.inner.refuse_team_users.store(on, Ordering::SeqCst);
    }

    /// When on, `GET /api/v2/TeamMembers` answers 403, as on an account migrated to the new
    /// RBAC model (where the real API disables it).
    pub fn set_refuse_team_members(&self, on: bool) {
        self.inner.refuse_team_members.store(on, Ordering::SeqCst);
    }

    /// The next `n` requests to the inventory endpoints (`TeamUsers`, `TeamMembers`,
    /// `UserProfile`) get `fault`; queued like [`FakeLacework::fail_next`].
    pub fn fail_next_inventory(&self, n: usize, fault: Fault) {
        self.inner.inventory_faults.push(n, fault);
    }
}

/// The inventory change a plain record implies: only user kinds that name their target.
fn derived_change(record: &FakeRecord) -> Option<UserChange> {
    let user = record.expected_target.clone()?;
    Some(match record.expected_type.as_deref()? {
        "USER_CREATED" => UserChange::Create { user },
        "USER_DELETED" => UserChange::Delete { user },
        "USER_ENABLED" => UserChange::Enable { user },
        "USER_DISABLED" => UserChange::Disable { user },
        "USER_LOGIN" => UserChange::Login { user },
        _ => return None,
    })
}
