//! Deterministic record generator: SplitMix64, user and actor pools, and template choice.

use chrono::{DateTime, Duration, Utc};

use crate::TimeFormat;
use crate::inventory::UserChange;
use crate::record::{
    ACTOR_FIRST_TEMPLATES, CUSTOM_GROUPS, Draft, GroupOp, LIFECYCLE_TEMPLATES,
    LOOK_ALIKE_TEMPLATES, OTHER_TEMPLATES, ROLES, Summary, Template, Wording, key_id,
    resolve_format,
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
    /// How records are worded; the default keeps the original object-first wording.
    pub wording: Wording,
    /// Share of actor-first records (lifecycle and look-alike) without `userAction`: half of
    /// them carry the action as `eventName` ("User Created"), half only the category ("User"),
    /// so the description must decide. Object-first records always carry `userAction`.
    pub no_user_action_share: f64,
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
            wording: Wording::ObjectFirst,
            no_user_action_share: DEFAULT_NO_USER_ACTION_SHARE,
        }
    }
}

/// The default [`GenerateSpec::no_user_action_share`].
pub(crate) const DEFAULT_NO_USER_ACTION_SHARE: f64 = 0.2;

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

/// A generated record and what it does to the user inventory.
pub(crate) struct Generated {
    pub record: StoredRecord,
    /// `(account, actor, change)` of a lifecycle record the inventory follows.
    pub change: Option<(String, String, UserChange)>,
}

/// A stream of records with fixed pools; used by `generate` and by the trickle task.
pub(crate) struct Generator {
    rng: SplitMix64,
    accounts: Vec<String>,
    users: Vec<String>,
    time_format: TimeFormat,
    lifecycle_share: f64,
    wording: Wording,
    no_user_action_share: f64,
}

impl Generator {
    /// A generator for `spec`'s pools and shares (its count and time range are the caller's).
    pub fn for_spec(spec: &GenerateSpec, time_format: TimeFormat) -> Self {
        let mut generator = Generator::new(
            spec.seed,
            spec.accounts.clone(),
            spec.n_users,
            spec.lifecycle_share,
            time_format,
        );
        generator.wording = spec.wording;
        generator.no_user_action_share = spec.no_user_action_share;
        generator
    }

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
            wording: Wording::ObjectFirst,
            no_user_action_share: DEFAULT_NO_USER_ACTION_SHARE,
        }
    }

    /// Words the following records `wording`.
    pub fn with_wording(mut self, wording: Wording) -> Self {
        self.wording = wording;
        self
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

    /// A user other than `actor`, so an actor-first sentence never names the actor twice.
    fn user_other_than(&mut self, actor: &str) -> String {
        for _ in 0..8 {
            let user = self.user();
            if user != actor {
                return user;
            }
        }
        // A pool of one (or of admins only, all equal to the actor): step aside.
        let i = ADMINS.iter().position(|a| *a == actor).map_or(0, |i| i + 1);
        ADMINS[i % ADMINS.len()].to_owned()
    }

    /// The template of the next record and whether it is worded actor-first. Object-first
    /// draws exactly what the generator drew before wordings existed, so a seed still yields
    /// the same object-first records.
    fn template(&mut self) -> (&'static Template, bool) {
        let actor_first = match self.wording {
            Wording::ObjectFirst => false,
            Wording::ActorFirst => true,
            Wording::Mixed => self.rng.chance(0.5),
        };
        let template = if actor_first {
            self.template_in(ACTOR_FIRST_TEMPLATES, LOOK_ALIKE_TEMPLATES)
        } else {
            self.template_in(LIFECYCLE_TEMPLATES, OTHER_TEMPLATES)
        };
        (template, actor_first)
    }

    fn template_in(
        &mut self,
        lifecycle: &'static [Template],
        others: &'static [Template],
    ) -> &'static Template {
        if !self.rng.chance(self.lifecycle_share) {
            return self.rng.pick(others);
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
        let variants: Vec<&'static Template> =
            lifecycle.iter().filter(|t| t.kind == Some(kind)).collect();
        variants[self.rng.below(variants.len() as u64) as usize]
    }

    /// The next record, created at `created_ms`; a `Seconds` rendering that would truncate
    /// below `floor_ms` falls back to millis so records stay inside the requested range.
    pub fn next_record(&mut self, created_ms: i64, floor_ms: i64) -> Generated {
        let account = self.rng.pick(&self.accounts).clone();
        let (template, actor_first) = self.template();
        let actor = self.actor(template);
        let mut affected = self.user();
        let key = if template.description.contains("{k}") {
            key_id(&account, &mut self.rng)
        } else {
            String::new()
        };
        let mut group = "";
        let mut summary = Summary::Full;
        if actor_first {
            if affected == actor {
                affected = self.user_other_than(&actor);
            }
            group = match template.group {
                GroupOp::SetRole => *self.rng.pick(ROLES),
                GroupOp::Add | GroupOp::Remove => *self.rng.pick(CUSTOM_GROUPS),
                GroupOp::NoChange | GroupOp::SetFixedRole(_) => "",
            };
            if self.rng.chance(self.no_user_action_share) {
                summary = if self.rng.chance(0.5) {
                    Summary::NameOnly
                } else {
                    Summary::DescriptionOnly
                };
            }
        }
        let mut format = resolve_format(self.time_format, self.rng.next_u64());
        if format == TimeFormat::Seconds && created_ms - created_ms.rem_euclid(1000) < floor_ms {
            format = TimeFormat::Millis;
        }
        let mut draft = Draft::new(
            template, &account, &actor, &affected, &key, created_ms, format,
        );
        draft.group = group;
        draft.summary = summary;
        if self.rng.chance(EXTRA_FIELD_SHARE) {
            draft.source_ip = Some(format!("203.0.113.{}", 1 + self.rng.below(254)));
        }
        Generated {
            record: StoredRecord::from_draft(&draft),
            change: draft
                .user_change()
                .map(|change| (account.clone(), actor.clone(), change)),
        }
    }

    /// A uniformly random time in `[start_ms, end_ms)` (just `start_ms` for an empty range).
    pub fn time_in(&mut self, start_ms: i64, end_ms: i64) -> i64 {
        let span = (end_ms - start_ms).max(1) as u64;
        start_ms + self.rng.below(span) as i64
    }
}

/// A generated batch: the records sorted by time, and the inventory changes of the lifecycle
/// ones in the same order.
pub(crate) struct Batch {
    pub records: Vec<StoredRecord>,
    /// `(created_ms, account, actor, change)`.
    pub changes: Vec<(i64, String, String, UserChange)>,
}

/// Builds `spec.count` records, deterministic for a given spec and time format.
pub(crate) fn generate(spec: &GenerateSpec, time_format: TimeFormat) -> Batch {
    let mut generator = Generator::for_spec(spec, time_format);
    let (start_ms, end_ms) = (spec.start.timestamp_millis(), spec.end.timestamp_millis());
    let mut records = Vec::with_capacity(spec.count);
    let mut changes = Vec::new();
    for _ in 0..spec.count {
        let created = generator.time_in(start_ms, end_ms);
        let generated = generator.next_record(created, start_ms);
        if let Some((account, actor, change)) = generated.change {
            changes.push((generated.record.created_ms, account, actor, change));
        }
        records.push(generated.record);
    }
    // Stable, so equal timestamps keep generation order and the result stays deterministic.
    records.sort_by_key(|r| r.created_ms);
    changes.sort_by_key(|c| c.0);
    Batch { records, changes }
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
        let a = generate(&spec, TimeFormat::Mixed).records;
        let b = generate(&spec, TimeFormat::Mixed).records;
        assert_eq!(a.len(), 500);
        assert!(a.iter().zip(&b).all(|(x, y)| x.json == y.json));
        let (s, e) = (spec.start.timestamp_millis(), spec.end.timestamp_millis());
        assert!(a.iter().all(|r| r.created_ms >= s && r.created_ms < e));
        assert!(a.windows(2).all(|w| w[0].created_ms <= w[1].created_ms));
    }

    fn spec(wording: Wording, count: usize) -> GenerateSpec {
        GenerateSpec {
            seed: 5,
            start: DateTime::from_timestamp_millis(1_767_225_600_000).unwrap(),
            end: DateTime::from_timestamp_millis(1_767_312_000_000).unwrap(),
            count,
            wording,
            ..GenerateSpec::default()
        }
    }

    fn parsed(batch: &Batch) -> Vec<serde_json::Value> {
        batch
            .records
            .iter()
            .map(|r| serde_json::from_str(&r.json).unwrap())
            .collect()
    }

    #[test]
    fn object_first_output_is_pinned() {
        // The default wording must keep yielding what it did before wordings existed.
        let batch = generate(&spec(Wording::ObjectFirst, 300), TimeFormat::Mixed);
        let digest = batch
            .records
            .iter()
            .fold(0u64, |h, r| mix64(h ^ fnv1a(r.json.as_bytes())));
        assert_eq!(digest, PINNED_OBJECT_FIRST_DIGEST);
    }

    const PINNED_OBJECT_FIRST_DIGEST: u64 = 2_239_752_459_425_322_906;

    #[test]
    fn actor_first_records_name_the_actor_first_and_carry_ground_truth() {
        let batch = generate(&spec(Wording::ActorFirst, 4000), TimeFormat::Millis);
        let mut kinds = std::collections::HashSet::new();
        let mut look_alikes = std::collections::HashSet::new();
        let (mut no_action, mut name_decides) = (0, 0);
        for (r, json) in batch.records.iter().zip(parsed(&batch)) {
            let actor = json["userName"].as_str().unwrap();
            let desc = json["eventDescription"].as_str().unwrap();
            assert!(desc.starts_with(&format!("User {actor} ")), "{desc}");
            assert!(!desc.contains('{'), "{desc}");
            let action = json.get("userAction").and_then(|a| a.as_str());
            let event_name = json["eventName"].as_str().unwrap();
            if action.is_none() {
                no_action += 1;
                let is_action = ACTOR_FIRST_TEMPLATES
                    .iter()
                    .chain(LOOK_ALIKE_TEMPLATES)
                    .any(|t| t.user_action == event_name && t.event_name != event_name);
                name_decides += usize::from(is_action);
            }
            match (r.expected_type.as_deref(), r.expected_target.as_deref()) {
                (None, target) => {
                    assert_eq!(target, None);
                    let summary = action.unwrap_or(event_name);
                    let known = LOOK_ALIKE_TEMPLATES
                        .iter()
                        .any(|t| t.user_action == summary || t.event_name == summary);
                    assert!(known, "{summary}");
                    look_alikes.insert(desc.to_owned());
                }
                (Some("USER_LOGIN"), Some(target)) => assert_eq!(target, actor),
                (Some(kind), None) => {
                    assert!(kind.starts_with("API_KEY_"), "{kind}");
                    assert!(desc.contains(" API key "), "{desc}");
                }
                (Some(kind), Some(target)) => {
                    assert_ne!(target, actor, "{desc}");
                    assert!(
                        desc.contains(&format!(" {target} ")),
                        "{desc} names {target} ({kind})"
                    );
                }
            }
            if let Some(kind) = r.expected_type.as_deref() {
                kinds.insert(kind.to_owned());
            }
        }
        assert_eq!(kinds.len(), crate::LIFECYCLE_KINDS.len(), "{kinds:?}");
        assert!(
            look_alikes.len() > 100,
            "look-alikes vary by account and actor"
        );
        // 20% of 4000 without userAction, half of them with the action as eventName.
        assert!((650..=950).contains(&no_action), "{no_action}");
        assert!((250..=550).contains(&name_decides), "{name_decides}");
        // Every actor-first lifecycle record tells the inventory what it changed.
        let n_lifecycle = batch
            .records
            .iter()
            .filter(|r| r.expected_type.is_some())
            .count();
        assert_eq!(batch.changes.len(), n_lifecycle);
    }

    #[test]
    fn mixed_wording_uses_both() {
        let batch = generate(&spec(Wording::Mixed, 1000), TimeFormat::Millis);
        let jsons = parsed(&batch);
        let actor_first = jsons
            .iter()
            .filter(|j| {
                let desc = j["eventDescription"].as_str().unwrap();
                desc.starts_with(&format!("User {} ", j["userName"].as_str().unwrap()))
                    && !desc.contains(" by ")
                    && !desc.ends_with(" logged in")
            })
            .count();
        assert!((350..=650).contains(&actor_first), "{actor_first}");
    }
}
