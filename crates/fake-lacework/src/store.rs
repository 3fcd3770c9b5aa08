//! The record store (pre-serialized, sorted by creation time) and the paging snapshots.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::generator::{SplitMix64, fnv1a, mix64};
use crate::record::{Draft, FakeRecord};

/// A record as stored: its JSON text is rendered once so pages are built by concatenation.
#[derive(Debug)]
pub(crate) struct StoredRecord {
    /// Shared with snapshots, which therefore stay valid whatever happens to the store.
    pub json: Arc<str>,
    pub created_ms: i64,
    pub visible_at_ms: i64,
    pub account: String,
    pub expected_type: Option<String>,
    pub expected_target: Option<String>,
}

impl StoredRecord {
    pub fn from_draft(draft: &Draft<'_>) -> Self {
        StoredRecord {
            json: draft.to_json_string().into(),
            created_ms: draft.created_ms,
            visible_at_ms: draft.created_ms,
            account: draft.account.to_owned(),
            expected_type: draft.expected_type(),
            expected_target: draft.expected_target(),
        }
    }

    pub fn from_fake(record: FakeRecord) -> Self {
        StoredRecord {
            json: record.json.to_string().into(),
            created_ms: record.created_ms,
            visible_at_ms: record.visible_at_ms,
            account: record.account,
            expected_type: record.expected_type,
            expected_target: record.expected_target,
        }
    }

    /// Parses the JSON back; only ground-truth queries pay for this, never the server.
    pub fn to_fake(&self) -> FakeRecord {
        FakeRecord {
            json: serde_json::from_str(&self.json).expect("stored json was rendered by us"),
            created_ms: self.created_ms,
            account: self.account.clone(),
            expected_type: self.expected_type.clone(),
            expected_target: self.expected_target.clone(),
            visible_at_ms: self.visible_at_ms,
        }
    }
}

/// Which accounts a query sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `Org-Access: true`: every account.
    All,
    /// One account, compared case-insensitively.
    Account(String),
}

impl Scope {
    pub fn matches(&self, account: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Account(want) => want.eq_ignore_ascii_case(account),
        }
    }

    fn seed(&self) -> u64 {
        match self {
            Scope::All => 0xA11,
            Scope::Account(a) => fnv1a(a.to_ascii_lowercase().as_bytes()),
        }
    }
}

/// All records, sorted by `created_ms` (stable: equal times keep insertion order).
#[derive(Default)]
pub(crate) struct Store {
    records: Vec<StoredRecord>,
}

impl Store {
    pub fn insert(&mut self, record: StoredRecord) {
        let at = self
            .records
            .partition_point(|r| r.created_ms <= record.created_ms);
        self.records.insert(at, record);
    }

    /// Adds a batch that is itself sorted; appends when it lies after everything stored.
    pub fn extend_sorted(&mut self, batch: Vec<StoredRecord>) {
        let after_all = match (self.records.last(), batch.first()) {
            (Some(last), Some(first)) => last.created_ms <= first.created_ms,
            _ => true,
        };
        self.records.extend(batch);
        if !after_all {
            // A stable sort of two sorted runs is a single merge pass.
            self.records.sort_by_key(|r| r.created_ms);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &StoredRecord> {
        self.records.iter()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Records visible at `now_ms`, created in `[start_ms, end_ms]` (both ends inclusive, like
    /// the real API) and in `scope`, in time order.
    pub fn select(&self, start_ms: i64, end_ms: i64, now_ms: i64, scope: &Scope) -> Vec<Arc<str>> {
        let lo = self.records.partition_point(|r| r.created_ms < start_ms);
        let hi = self.records.partition_point(|r| r.created_ms <= end_ms);
        if lo >= hi {
            return Vec::new();
        }
        self.records[lo..hi]
            .iter()
            .filter(|r| r.visible_at_ms <= now_ms && scope.matches(&r.account))
            .map(|r| Arc::clone(&r.json))
            .collect()
    }
}

/// Shuffles a selection in an order fixed by the query, because the API documents no order
/// and clients must not rely on time order, while tests need repeatable runs.
pub(crate) fn shuffle_for_query(items: &mut [Arc<str>], start_ms: i64, end_ms: i64, scope: &Scope) {
    let seed = mix64(start_ms as u64) ^ mix64(end_ms as u64).rotate_left(17) ^ scope.seed();
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A multi-page result frozen at the first request, so later pages never shift.
#[derive(Debug)]
pub(crate) struct Session {
    pub items: Vec<Arc<str>>,
    /// Rows the query selected before the result cap cut `items`.
    pub total_rows: usize,
    /// `tokens[i]` is the opaque path token of page `i`; page 0 has none.
    pub tokens: Vec<String>,
    /// `?startTime=..&endTime=..` (or empty) appended to every nextPage URL.
    pub query_suffix: String,
    created: Instant,
}

impl Session {
    pub fn pages(&self) -> usize {
        self.tokens.len()
    }
}

/// nextPage URLs are documented to stay valid for 24 hours.
const SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Rows held across all snapshots before the oldest are dropped (about 16 bytes per row),
/// so a long benchmark cannot grow memory without bound.
const MAX_HELD_ROWS: usize = 8_000_000;

/// Live snapshots and the page tokens that point into them.
pub(crate) struct Sessions {
    by_token: HashMap<String, (Arc<Session>, usize)>,
    live: VecDeque<Arc<Session>>,
    held_rows: usize,
    rng: SplitMix64,
}

impl Sessions {
    pub fn new(seed: u64) -> Self {
        Sessions {
            by_token: HashMap::new(),
            live: VecDeque::new(),
            held_rows: 0,
            rng: SplitMix64::new(seed),
        }
    }

    /// Freezes `items` into pages of `page_size` and mints a token for every page after the first.
    pub fn create(
        &mut self,
        items: Vec<Arc<str>>,
        total_rows: usize,
        page_size: usize,
        query_suffix: String,
    ) -> Arc<Session> {
        self.evict(items.len());
        let pages = items.len().div_ceil(page_size.max(1)).max(1);
        let mut tokens = vec![String::new()];
        tokens.extend((1..pages).map(|_| self.fresh_token()));
        let rows = items.len();
        let session = Arc::new(Session {
            items,
            total_rows,
            tokens,
            query_suffix,
            created: Instant::now(),
        });
        for (i, token) in session.tokens.iter().enumerate().skip(1) {
            self.by_token
                .insert(token.clone(), (Arc::clone(&session), i));
        }
        self.held_rows += rows;
        self.live.push_back(Arc::clone(&session));
        session
    }

    /// The snapshot and page index a token names.
    pub fn lookup(&self, token: &str) -> Option<(Arc<Session>, usize)> {
        self.by_token.get(token).map(|(s, i)| (Arc::clone(s), *i))
    }

    fn evict(&mut self, incoming: usize) {
        while let Some(oldest) = self.live.front() {
            let expired = oldest.created.elapsed() > SESSION_TTL;
            let over = self.held_rows + incoming > MAX_HELD_ROWS;
            if !expired && !over {
                break;
            }
            let oldest = self.live.pop_front().expect("front exists");
            for token in oldest.tokens.iter().skip(1) {
                self.by_token.remove(token);
            }
            self.held_rows -= oldest.items.len();
        }
    }

    /// An opaque base64-looking token; the trailing `==` mirrors the GO SDK pagination
    /// fixture, so clients that mishandle `=` in a path are caught.
    fn fresh_token(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut token: String = (0..40)
            .map(|_| char::from(*self.rng.pick(ALPHABET)))
            .collect();
        token.push_str("==");
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeRecord;
    use chrono::DateTime;

    fn rec(ms: i64, account: &str) -> StoredRecord {
        let at = DateTime::from_timestamp_millis(ms).unwrap();
        StoredRecord::from_fake(FakeRecord::other(
            "Query Created",
            account,
            "a@acme.com",
            at,
        ))
    }

    #[test]
    fn select_is_inclusive_and_filters_account() {
        let mut s = Store::default();
        for ms in [999, 1000, 1500, 2000, 2001] {
            s.insert(rec(ms, "ACME"));
        }
        s.insert(rec(1500, "OTHER"));
        let scope = Scope::Account("acme".into());
        assert_eq!(s.select(1000, 2000, i64::MAX, &scope).len(), 3);
        assert_eq!(s.select(1000, 2000, i64::MAX, &Scope::All).len(), 4);
        assert_eq!(s.select(2000, 1000, i64::MAX, &Scope::All).len(), 0);
    }

    #[test]
    fn extend_sorted_merges_out_of_order_batches() {
        let mut s = Store::default();
        s.extend_sorted(vec![rec(10, "A"), rec(30, "A")]);
        s.extend_sorted(vec![rec(20, "A"), rec(40, "A")]);
        let times: Vec<i64> = s.iter().map(|r| r.created_ms).collect();
        assert_eq!(times, [10, 20, 30, 40]);
    }

    #[test]
    fn sessions_mint_one_token_per_later_page() {
        let mut sessions = Sessions::new(1);
        let items: Vec<Arc<str>> = (0..11).map(|i| Arc::from(i.to_string())).collect();
        let s = sessions.create(items, 12, 5, String::new());
        assert_eq!(s.pages(), 3);
        let (found, page) = sessions.lookup(&s.tokens[2]).unwrap();
        assert!(Arc::ptr_eq(&found, &s));
        assert_eq!(page, 2);
        assert!(sessions.lookup("nope").is_none());
        assert!(s.tokens[1].ends_with("==") && s.tokens[1].len() == 42);
    }
}
