//! Audit-log records: the JSON templates, the served JSON and the ground truth tests compare against.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::TimeFormat;
use crate::generator::{SplitMix64, fnv1a};
use crate::timefmt::{format_millis, format_seconds};

/// One audit-log record: what the fake serves plus what the exporter is expected to make of it.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeRecord {
    /// The record exactly as served (the server serializes this value once, at insert).
    pub json: Value,
    /// Ground-truth creation time in epoch milliseconds; agrees exactly with `createdTime`.
    pub created_ms: i64,
    /// The `accountName` the record belongs to.
    pub account: String,
    /// The lifecycle type a correct classifier assigns (e.g. `USER_CREATED`), `None` for noise.
    pub expected_type: Option<String>,
    /// The affected user a correct extractor finds; `None` for API-key events and noise.
    pub expected_target: Option<String>,
    /// Epoch milliseconds from which the server returns the record (late arrivals).
    pub visible_at_ms: i64,
}

/// Which value fills `expected_target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetRule {
    /// The affected user `{t}`.
    Affected,
    /// The actor `{a}` (logins: the actor is the one logging in).
    Actor,
    /// No user is affected: API-key events and non-lifecycle noise.
    NoTarget,
}

/// A record shape: `{t}` is the affected user, `{a}` the actor and `{k}` an API key id.
#[derive(Debug)]
pub(crate) struct Template {
    pub kind: Option<&'static str>,
    pub user_action: &'static str,
    pub event_name: &'static str,
    pub description: &'static str,
    pub target: TargetRule,
}

const fn lc(
    kind: &'static str,
    user_action: &'static str,
    event_name: &'static str,
    description: &'static str,
    target: TargetRule,
) -> Template {
    Template {
        kind: Some(kind),
        user_action,
        event_name,
        description,
        target,
    }
}

const fn noise(
    user_action: &'static str,
    event_name: &'static str,
    description: &'static str,
) -> Template {
    Template {
        kind: None,
        user_action,
        event_name,
        description,
        target: TargetRule::NoTarget,
    }
}

use TargetRule::{Actor, Affected, NoTarget};

/// Lifecycle templates; the first template of a kind is its canonical wording.
pub(crate) const LIFECYCLE_TEMPLATES: &[Template] = &[
    lc(
        "USER_CREATED",
        "User Created",
        "User",
        "User {t} created by {a}",
        Affected,
    ),
    lc(
        "USER_CREATED",
        "User Added",
        "User",
        "Added user {t}",
        Affected,
    ),
    lc(
        "USER_DELETED",
        "User Deleted",
        "User",
        "User {t} deleted",
        Affected,
    ),
    lc(
        "USER_DELETED",
        "User Removed",
        "User",
        "Removed user {t}",
        Affected,
    ),
    lc(
        "USER_ENABLED",
        "User Enabled",
        "User",
        "User {t} enabled by {a}",
        Affected,
    ),
    lc(
        "USER_DISABLED",
        "User Disabled",
        "User",
        "User {t} disabled by {a}",
        Affected,
    ),
    lc(
        "USER_DISABLED",
        "User Deactivated",
        "User",
        "User {t} deactivated",
        Affected,
    ),
    lc(
        "USER_ROLE_CHANGED",
        "User Role Changed",
        "User",
        "Role of {t} changed from USER to ADMIN",
        Affected,
    ),
    lc(
        "USER_ROLE_CHANGED",
        "User Role Changed",
        "User",
        "Role of {t} changed from ADMIN to USER",
        Affected,
    ),
    lc(
        "USER_ROLE_CHANGED",
        "User Role Changed",
        "User",
        "Role of {t} changed from USER to POWER_USER",
        Affected,
    ),
    lc(
        "USER_LOGIN",
        "Login with OAuth Succeeded",
        "User Login",
        "User {a} logged in",
        Actor,
    ),
    lc(
        "API_KEY_CREATED",
        "API Key Created",
        "API Key",
        "API key {k} created by {a}",
        NoTarget,
    ),
    lc(
        "API_KEY_DELETED",
        "API Key Deleted",
        "API Key",
        "API key {k} deleted by {a}",
        NoTarget,
    ),
    lc(
        "API_KEY_ENABLED",
        "API Key Enabled",
        "API Key",
        "API key {k} enabled by {a}",
        NoTarget,
    ),
    lc(
        "API_KEY_DISABLED",
        "API Key Disabled",
        "API Key",
        "API key {k} disabled by {a}",
        NoTarget,
    ),
];

/// Non-lifecycle records, several worded to trip a naive "created/deleted/login" matcher.
pub(crate) const OTHER_TEMPLATES: &[Template] = &[
    noise(
        "Alert Channel Created",
        "Alert Channel",
        "Alert channel 'soc-slack' created by {a}",
    ),
    noise(
        "Report Rule Updated",
        "Report Rule",
        "Report rule 'weekly' updated by {a}",
    ),
    noise(
        "Report Rule Created",
        "Report Rule",
        "Report rule 'daily' created by user {a}",
    ),
    noise(
        "Resource Group Deleted",
        "Resource Group",
        "Resource group 'prod' deleted by user {a}",
    ),
    noise(
        "Login with OAuth Failed",
        "User Login",
        "User {a} failed to log in",
    ),
    noise(
        "Agent Token Created",
        "Agent Token",
        "Agent access token 'k8s' created by {a}",
    ),
    noise(
        "Integration Deleted",
        "Cloud Account",
        "Cloud account integration 'aws-prod' deleted by {a}",
    ),
    noise(
        "Alert Rule Modified",
        "Alert Rule",
        "Alert rule 'crit' modified by {a}",
    ),
    noise("Query Created", "LQL Query", "Query 'q1' created by {a}"),
    noise(
        "Policy Disabled",
        "Policy",
        "Policy 'lacework-global-1' disabled by {a}",
    ),
];

/// Every lifecycle `expected_type` the fake produces.
pub const LIFECYCLE_KINDS: [&str; 10] = [
    "USER_CREATED",
    "USER_DELETED",
    "USER_ENABLED",
    "USER_DISABLED",
    "USER_ROLE_CHANGED",
    "USER_LOGIN",
    "API_KEY_CREATED",
    "API_KEY_DELETED",
    "API_KEY_ENABLED",
    "API_KEY_DISABLED",
];

/// The `userAction` of every non-lifecycle template, accepted by [`FakeRecord::other`].
pub const OTHER_ACTIONS: [&str; 10] = [
    "Alert Channel Created",
    "Report Rule Updated",
    "Report Rule Created",
    "Resource Group Deleted",
    "Login with OAuth Failed",
    "Agent Token Created",
    "Integration Deleted",
    "Alert Rule Modified",
    "Query Created",
    "Policy Disabled",
];

/// The templates of one lifecycle kind, canonical wording first.
pub(crate) fn variants_of(kind: &str) -> Vec<&'static Template> {
    LIFECYCLE_TEMPLATES
        .iter()
        .filter(|t| t.kind == Some(kind))
        .collect()
}

/// Picks a concrete format for `Mixed` from a random or hashed value: mostly millis,
/// because that is what other v2 timestamps use, but every form shows up often.
pub(crate) fn resolve_format(format: TimeFormat, pick: u64) -> TimeFormat {
    match format {
        TimeFormat::Mixed => match pick % 8 {
            0..=3 => TimeFormat::Millis,
            4 | 5 => TimeFormat::Seconds,
            _ => TimeFormat::EpochMillis,
        },
        other => other,
    }
}

/// `createdTime` as either of its wire types; untagged so it serializes as the bare value.
#[derive(Serialize)]
#[serde(untagged)]
enum CreatedTime {
    Text(String),
    Millis(i64),
}

impl CreatedTime {
    /// `created_ms` must already be truncated when `format` is `Seconds`.
    fn new(created_ms: i64, format: TimeFormat) -> Self {
        match format {
            TimeFormat::Seconds => CreatedTime::Text(format_seconds(created_ms)),
            TimeFormat::EpochMillis => CreatedTime::Millis(created_ms),
            TimeFormat::Millis | TimeFormat::Mixed => CreatedTime::Text(format_millis(created_ms)),
        }
    }
}

/// The wire shape; field order is the documented (alphabetical) order, so a `Value`
/// round trip keeps it whether or not serde_json's `preserve_order` is on.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    account_name: &'a str,
    created_time: CreatedTime,
    event_description: &'a str,
    event_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip_address: Option<&'a str>,
    user_action: &'a str,
    user_name: &'a str,
}

/// Everything needed to render one record; the generator and the public constructors share it.
pub(crate) struct Draft<'a> {
    pub template: &'static Template,
    pub account: &'a str,
    pub actor: &'a str,
    pub affected: &'a str,
    pub key_id: &'a str,
    pub created_ms: i64,
    /// A concrete format (never `Mixed`); `created_ms` is truncated for `Seconds` by [`Draft::new`].
    pub format: TimeFormat,
    /// The occasional undocumented field, since the API may add fields at any time.
    pub source_ip: Option<String>,
}

impl<'a> Draft<'a> {
    pub fn new(
        template: &'static Template,
        account: &'a str,
        actor: &'a str,
        affected: &'a str,
        key_id: &'a str,
        created_ms: i64,
        format: TimeFormat,
    ) -> Self {
        let created_ms = settle_created(created_ms, format);
        Draft {
            template,
            account,
            actor,
            affected,
            key_id,
            created_ms,
            format,
            source_ip: None,
        }
    }

    fn description(&self) -> String {
        fill(
            self.template.description,
            self.affected,
            self.actor,
            self.key_id,
        )
    }

    fn wire<'b>(&'b self, description: &'b str) -> Wire<'b> {
        Wire {
            account_name: self.account,
            created_time: CreatedTime::new(self.created_ms, self.format),
            event_description: description,
            event_name: self.template.event_name,
            source_ip_address: self.source_ip.as_deref(),
            user_action: self.template.user_action,
            user_name: self.actor,
        }
    }

    /// The record's JSON text, without building a `Value` (the generator's hot path).
    pub fn to_json_string(&self) -> String {
        let description = self.description();
        serde_json::to_string(&self.wire(&description)).expect("a record always serializes")
    }

    pub fn expected_type(&self) -> Option<String> {
        self.template.kind.map(str::to_owned)
    }

    pub fn expected_target(&self) -> Option<String> {
        match self.template.target {
            TargetRule::Affected => Some(self.affected.to_owned()),
            TargetRule::Actor => Some(self.actor.to_owned()),
            TargetRule::NoTarget => None,
        }
    }

    pub fn to_fake(&self) -> FakeRecord {
        let description = self.description();
        FakeRecord {
            json: serde_json::to_value(self.wire(&description))
                .expect("a record always serializes"),
            created_ms: self.created_ms,
            account: self.account.to_owned(),
            expected_type: self.expected_type(),
            expected_target: self.expected_target(),
            visible_at_ms: self.created_ms,
        }
    }
}

/// Truncates to a whole second for `Seconds`, so ground truth equals what the JSON says.
pub(crate) fn settle_created(created_ms: i64, format: TimeFormat) -> i64 {
    match format {
        TimeFormat::Seconds => created_ms - created_ms.rem_euclid(1000),
        _ => created_ms,
    }
}

/// Substitutes `{t}`, `{a}` and `{k}` in one pass.
fn fill(template: &str, t: &str, a: &str, k: &str) -> String {
    let mut out = String::with_capacity(template.len() + t.len() + a.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (value, skip) = match tail.get(..3) {
            Some("{t}") => (t, 3),
            Some("{a}") => (a, 3),
            Some("{k}") => (k, 3),
            _ => ("{", 1),
        };
        out.push_str(value);
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

/// A Lacework-style API key id: `<ACCOUNT>_` plus 48 upper-case hex digits.
pub(crate) fn key_id(account: &str, rng: &mut SplitMix64) -> String {
    let prefix = account.split('-').next().unwrap_or(account);
    format!(
        "{}_{:016X}{:016X}{:016X}",
        prefix.to_ascii_uppercase(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64()
    )
}

impl FakeRecord {
    /// Builds a lifecycle record of `kind` (one of [`LIFECYCLE_KINDS`]) in its canonical wording,
    /// with `createdTime` in millisecond format.
    ///
    /// `target` is the affected user for `USER_*` kinds (the actor when `None`), the key id for
    /// `API_KEY_*` kinds (derived deterministically when `None`) and ignored for `USER_LOGIN`,
    /// where the actor is the one logging in.
    ///
    /// # Panics
    /// If `kind` is not one of [`LIFECYCLE_KINDS`]; this is a test helper.
    pub fn lifecycle(
        kind: &str,
        account: &str,
        actor: &str,
        target: Option<&str>,
        created: DateTime<Utc>,
    ) -> FakeRecord {
        Self::lifecycle_variant(kind, 0, account, actor, target, created)
    }

    /// Like [`FakeRecord::lifecycle`] but picks wording `variant` (modulo the number of
    /// wordings), e.g. `USER_CREATED` variant 1 is "User Added" / "Added user {t}".
    ///
    /// # Panics
    /// If `kind` is not one of [`LIFECYCLE_KINDS`].
    pub fn lifecycle_variant(
        kind: &str,
        variant: usize,
        account: &str,
        actor: &str,
        target: Option<&str>,
        created: DateTime<Utc>,
    ) -> FakeRecord {
        let variants = variants_of(kind);
        assert!(!variants.is_empty(), "unknown lifecycle kind {kind:?}");
        let template = variants[variant % variants.len()];
        let created_ms = created.timestamp_millis();
        let derived_key;
        let (affected, key) = if template.description.contains("{k}") {
            // API-key events: `target` names the key; derive a stable one when absent.
            let key = match target {
                Some(k) => k,
                None => {
                    let seed = fnv1a(actor.as_bytes()) ^ created_ms as u64;
                    derived_key = key_id(account, &mut SplitMix64::new(seed));
                    &derived_key
                }
            };
            (actor, key)
        } else {
            (target.unwrap_or(actor), "")
        };
        Draft::new(
            template,
            account,
            actor,
            affected,
            key,
            created_ms,
            TimeFormat::Millis,
        )
        .to_fake()
    }

    /// Builds a non-lifecycle record from the template whose `userAction` is `user_action`
    /// (one of [`OTHER_ACTIONS`]); `expected_type` is `None`.
    ///
    /// # Panics
    /// If `user_action` is not one of [`OTHER_ACTIONS`].
    pub fn other(
        user_action: &str,
        account: &str,
        actor: &str,
        created: DateTime<Utc>,
    ) -> FakeRecord {
        let template = OTHER_TEMPLATES
            .iter()
            .find(|t| t.user_action == user_action)
            .unwrap_or_else(|| panic!("unknown non-lifecycle user action {user_action:?}"));
        Draft::new(
            template,
            account,
            actor,
            "",
            "",
            created.timestamp_millis(),
            TimeFormat::Millis,
        )
        .to_fake()
    }

    /// Builds an arbitrary record from the six documented fields, with no expectation attached
    /// (add one with [`FakeRecord::with_expected`]).
    pub fn custom(
        account: &str,
        created: DateTime<Utc>,
        user_action: &str,
        event_name: &str,
        event_description: &str,
        user_name: &str,
    ) -> FakeRecord {
        let created_ms = created.timestamp_millis();
        let wire = Wire {
            account_name: account,
            created_time: CreatedTime::new(created_ms, TimeFormat::Millis),
            event_description,
            event_name,
            source_ip_address: None,
            user_action,
            user_name,
        };
        FakeRecord {
            json: serde_json::to_value(wire).expect("a record always serializes"),
            created_ms,
            account: account.to_owned(),
            expected_type: None,
            expected_target: None,
            visible_at_ms: created_ms,
        }
    }

    /// Re-renders `createdTime` in `format`; `Seconds` truncates `created_ms` (and a
    /// `visible_at_ms` equal to it) so the two still agree. `Mixed` picks by a hash of the time.
    pub fn with_time_format(mut self, format: TimeFormat) -> FakeRecord {
        let format = resolve_format(format, SplitMix64::new(self.created_ms as u64).next_u64());
        let settled = settle_created(self.created_ms, format);
        if self.visible_at_ms == self.created_ms {
            self.visible_at_ms = settled;
        }
        self.created_ms = settled;
        if let Value::Object(map) = &mut self.json {
            let created = serde_json::to_value(CreatedTime::new(settled, format))
                .expect("a timestamp always serializes");
            map.insert("createdTime".to_owned(), created);
        }
        self
    }

    /// Adds an undocumented field, as the API may add fields at any time.
    pub fn with_extra_field(mut self, key: &str, value: Value) -> FakeRecord {
        if let Value::Object(map) = &mut self.json {
            map.insert(key.to_owned(), value);
        }
        self
    }

    /// Replaces the expectation attached to the record.
    pub fn with_expected(
        mut self,
        expected_type: Option<&str>,
        expected_target: Option<&str>,
    ) -> FakeRecord {
        self.expected_type = expected_type.map(str::to_owned);
        self.expected_target = expected_target.map(str::to_owned);
        self
    }

    /// `created_ms` as a UTC datetime.
    pub fn created(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.created_ms).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn lifecycle_fills_templates_and_expectations() {
        let r = FakeRecord::lifecycle(
            "USER_CREATED",
            "ACME",
            "admin@acme.com",
            Some("jane.doe7@acme.com"),
            at(1_793_524_502_123),
        );
        assert_eq!(
            r.json.to_string(),
            r#"{"accountName":"ACME","createdTime":"2026-11-01T09:15:02.123Z","eventDescription":"User jane.doe7@acme.com created by admin@acme.com","eventName":"User","userAction":"User Created","userName":"admin@acme.com"}"#
        );
        assert_eq!(r.expected_type.as_deref(), Some("USER_CREATED"));
        assert_eq!(r.expected_target.as_deref(), Some("jane.doe7@acme.com"));
        assert_eq!(r.visible_at_ms, r.created_ms);
    }

    #[test]
    fn login_targets_the_actor_and_api_keys_target_nobody() {
        let login = FakeRecord::lifecycle("USER_LOGIN", "ACME", "bob@acme.com", None, at(0));
        assert_eq!(login.expected_target.as_deref(), Some("bob@acme.com"));
        assert_eq!(
            login.json["eventDescription"],
            "User bob@acme.com logged in"
        );
        let key = FakeRecord::lifecycle("API_KEY_DELETED", "ACME-SUB1", "a@acme.com", None, at(5));
        assert_eq!(key.expected_target, None);
        let desc = key.json["eventDescription"].as_str().unwrap();
        assert!(desc.starts_with("API key ACME_") && desc.ends_with(" deleted by a@acme.com"));
        assert_eq!(desc.len(), "API key ACME_ deleted by a@acme.com".len() + 48);
    }

    #[test]
    fn variants_and_other_records() {
        let r = FakeRecord::lifecycle_variant(
            "USER_DISABLED",
            1,
            "ACME",
            "a@acme.com",
            Some("t@acme.com"),
            at(0),
        );
        assert_eq!(r.json["userAction"], "User Deactivated");
        assert_eq!(r.json["eventDescription"], "User t@acme.com deactivated");
        for action in OTHER_ACTIONS {
            let o = FakeRecord::other(action, "ACME", "a@acme.com", at(0));
            assert_eq!(o.json["userAction"], action);
            assert_eq!(o.expected_type, None);
        }
        for kind in LIFECYCLE_KINDS {
            assert!(!variants_of(kind).is_empty(), "{kind}");
        }
    }

    #[test]
    fn seconds_format_truncates_ground_truth() {
        let r = FakeRecord::lifecycle(
            "USER_LOGIN",
            "ACME",
            "a@acme.com",
            None,
            at(1_793_524_502_123),
        )
        .with_time_format(TimeFormat::Seconds);
        assert_eq!(r.created_ms, 1_793_524_502_000);
        assert_eq!(r.visible_at_ms, 1_793_524_502_000);
        assert_eq!(r.json["createdTime"], "2026-11-01T09:15:02Z");
        let e = r.with_time_format(TimeFormat::EpochMillis);
        assert_eq!(e.json["createdTime"], 1_793_524_502_000_i64);
    }

    #[test]
    fn fill_leaves_unknown_braces() {
        assert_eq!(fill("{x} {t}{a}{k}{", "T", "A", "K"), "{x} TAK{");
    }
}
