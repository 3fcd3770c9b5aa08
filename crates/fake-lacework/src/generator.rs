//! Deterministic record generator: SplitMix64, user and actor pools, and template choice.

use chrono::{DateTime, Duration, Utc};

use crate::TimeFormat;
use crate::record::{
    Draft, LIFECYCLE_TEMPLATES, OTHER_TEMPLATES, Template, key_id, resolve_format,
};
use crate::store::StoredRecord;

/// SplitMix64: tiny, fast and fully deterministic, so a seed always yields the same data
/// (no `rand` dependency whose streams could change between versions).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A value in `0..n` (`0` when `n == 0`); the multiply-shift keeps the bias negligible.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A uniformly chosen element; `slice` must not be empty.
    pub fn pick<'a, T>(&mut self, slice: &'a [T]) -> &'a T {
        &slice[self.below(slice.len() as u64) as usize]
    }
}

/// The SplitMix64 finalizer, also used to scramble seeds.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, to turn strings (accounts, query scopes) into seeds.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// What [`crate::FakeLacework::generate`] adds: `count` records spread uniformly over `[start, end)`.
#[derive(Clone, Debug)]
pub struct GenerateSpec {
    /// Seed; the same spec always yields the same records.
    pub seed: u64,
    /// Earliest creation time (inclusive).
    pub start: DateTime<Utc>,
    /// Latest creation time (exclusive).
    pub end: DateTime<Utc>,
    /// How many records to add.
    pub count: usize,
    /// Accounts to spread records over, chosen uniformly.
    pub accounts: Vec<String>,
    /// Size of the `first.last<N>@acme.com` user pool.
    pub n_users: usize,
    /// Share of records that are lifecycle events (the rest is noise).
    pub lifecycle_share: f64,
}

impl Default for GenerateSpec {
    /// 1000 records over the 24 hours before now, seed 1.
    fn default() -> Self {
        let end = Utc::now();
        GenerateSpec {
            seed: 1,
            start: end - Duration::hours(24),
            end,
            count: 1000,
            accounts: default_accounts(),
            n_users: 200,
            lifecycle_share: 0.3,
        }
    }
}

/// The primary account and two sub-accounts, as in the DOCS `xyz` / `xyz-sub1` example.
pub(crate) fn default_accounts() -> Vec<String> {
    ["ACME", "ACME-SUB1", "ACME-SUB2"]
        .map(str::to_owned)
        .to_vec()
}

const FIRST_NAMES: &[&str] = &[
    "james",
    "mary",
    "john",
    "patricia",
    "robert",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "priya",
    "wei",
    "fatima",
    "carlos",
    "yuki",
    "olga",
    "ahmed",
    "sofia",
    "liam",
    "emma",
    "noah",
    "olivia",
    "lucas",
    "mia",
    "mateo",
    "amara",
    "ana",
    "ivan",
    "nora",
    "kwame",
];

const LAST_NAMES: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "patel",
    "nguyen",
    "kim",
    "chen",
    "singh",
    "kowalski",
    "muller",
    "rossi",
    "silva",
    "tanaka",
    "ivanova",
    "okafor",
    "haddad",
    "larsen",
    "dubois",
    "novak",
    "schmidt",
    "yamamoto",
    "khan",
    "mensah",
];

/// Admin accounts that perform most changes.
const ADMINS: &[&str] = &[
    "admin@acme.com",
    "secops.lead@acme.com",
    "it.admin@acme.com",
    "cloud.security@acme.com",
    "platform.ops@acme.com",
];

/// Relative frequency of each lifecycle kind: logins dominate, as in a real tenant.
const KIND_WEIGHTS: &[(&str, u64)] = &[
    ("USER_LOGIN", 30),
    ("USER_CREATED", 12),
    ("USER_DELETED", 8),
    ("USER_ENABLED", 6),
    ("USER_DISABLED", 8),
    ("USER_ROLE_CHANGED", 10),
    ("API_KEY_CREATED", 8),
    ("API_KEY_DELETED", 6),
    ("API_KEY_ENABLED", 5),
    ("API_KEY_DISABLED", 7),
];

/// Share of records carrying an undocumented extra field.
const EXTRA_FIELD_SHARE: f64 = 0.05;

/// A stream of records with fixed pools; used by `generate` and by the trickle task.
pub(crate) struct Generator {
    rng: SplitMix64,
    accounts: Vec<String>,
    users: Vec<String>,
    time_format: TimeFormat,
    lifecycle_share: f64,
}

impl Generator {
    pub fn new(
        seed: u64,
        accounts: Vec<String>,
        n_users: usize,
        lifecycle_share: f64,
        time_format: TimeFormat,
    ) -> Self {
        // Separate streams for the pool and the records keep pools stable when the count changes.
        let mut pool_rng = SplitMix64::new(mix64(seed ^ 0x5EED_0000_0000_0001));
        let users = (1..=n_users)
            .map(|n| {
                let first = pool_rng.pick(FIRST_NAMES);
                let last = pool_rng.pick(LAST_NAMES);
                format!("{first}.{last}{n}@acme.com")
            })
            .collect();
        let accounts = if accounts.is_empty() {
            default_accounts()
        } else {
            accounts
        };
        Generator {
            rng: SplitMix64::new(mix64(seed ^ 0x5EED_0000_0000_0002)),
            accounts,
            users,
            time_format,
            lifecycle_share,
        }
    }

    fn user(&mut self) -> String {
        if self.users.is_empty() {
            return (*self.rng.pick(ADMINS)).to_owned();
        }
        let i = self.rng.below(self.users.len() as u64) as usize;
        self.users[i].clone()
    }

    /// Mostly admins act; sometimes a regular user does (a power user inviting a colleague).
    fn actor(&mut self, template: &Template) -> String {
        let logs_in = template.event_name == "User Login";
        let user_share = if logs_in { 0.75 } else { 0.15 };
        if self.rng.chance(user_share) {
            self.user()
        } else {
            (*self.rng.pick(ADMINS)).to_owned()
        }
    }

    fn template(&mut self) -> &'static Template {
        if !self.rng.chance(self.lifecycle_share) {
            return self.rng.pick(OTHER_TEMPLATES);
        }
        let total: u64 = KIND_WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.below(total);
        let kind = KIND_WEIGHTS
            .iter()
            .find(|(_, w)| {
                let hit = roll < *w;
                roll = roll.saturating_sub(*w);
                hit
            })
            .map_or("USER_LOGIN", |(k, _)| k);
        let variants: Vec<&'static Template> = LIFECYCLE_TEMPLATES
            .iter()
            .filter(|t| t.kind == Some(kind))
            .collect();
        variants[self.rng.below(variants.len() as u64) as usize]
    }

    /// The next record, created at `created_ms`; a `Seconds` rendering that would truncate
    /// below `floor_ms` falls back to millis so records stay inside the requested range.
    pub fn next_record(&mut self, created_ms: i64, floor_ms: i64) -> StoredRecord {
        let account = self.rng.pick(&self.accounts).clone();
        let template = self.template();
        let actor = self.actor(template);
        let affected = self.user();
        let key = if template.description.contains("{k}") {
            key_id(&account, &mut self.rng)
        } else {
            String::new()
        };
        let mut format = resolve_format(self.time_format, self.rng.next_u64());
        if format == TimeFormat::Seconds && created_ms - created_ms.rem_euclid(1000) < floor_ms {
            format = TimeFormat::Millis;
        }
        let mut draft = Draft::new(
            template, &account, &actor, &affected, &key, created_ms, format,
        );
        if self.rng.chance(EXTRA_FIELD_SHARE) {
            draft.source_ip = Some(format!("203.0.113.{}", 1 + self.rng.below(254)));
        }
        StoredRecord::from_draft(&draft)
    }

    /// A uniformly random time in `[start_ms, end_ms)` (just `start_ms` for an empty range).
    pub fn time_in(&mut self, start_ms: i64, end_ms: i64) -> i64 {
        let span = (end_ms - start_ms).max(1) as u64;
        start_ms + self.rng.below(span) as i64
    }
}

/// Builds `spec.count` records, deterministic for a given spec and time format.
pub(crate) fn generate(spec: &GenerateSpec, time_format: TimeFormat) -> Vec<StoredRecord> {
    let mut generator = Generator::new(
        spec.seed,
        spec.accounts.clone(),
        spec.n_users,
        spec.lifecycle_share,
        time_format,
    );
    let (start_ms, end_ms) = (spec.start.timestamp_millis(), spec.end.timestamp_millis());
    let mut out: Vec<StoredRecord> = (0..spec.count)
        .map(|_| {
            let created = generator.time_in(start_ms, end_ms);
            generator.next_record(created, start_ms)
        })
        .collect();
    // Stable, so equal timestamps keep generation order and the result stays deterministic.
    out.sort_by_key(|r| r.created_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_values() {
        // Reference output of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SplitMix64::new(7);
        assert!((0..1000).all(|_| r.below(3) < 3));
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn generate_is_deterministic_and_in_range() {
        let spec = GenerateSpec {
            seed: 9,
            count: 500,
            ..GenerateSpec::default()
        };
        let a = generate(&spec, TimeFormat::Mixed);
        let b = generate(&spec, TimeFormat::Mixed);
        assert_eq!(a.len(), 500);
        assert!(a.iter().zip(&b).all(|(x, y)| x.json == y.json));
        let (s, e) = (spec.start.timestamp_millis(), spec.end.timestamp_millis());
        assert!(a.iter().all(|r| r.created_ms >= s && r.created_ms < e));
        assert!(a.windows(2).all(|w| w[0].created_ms <= w[1].created_ms));
    }
}
