//! Audit-log records: the JSON templates, the served JSON and the ground truth tests compare against.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::TimeFormat;
use crate::generator::{SplitMix64, fnv1a};
use crate::inventory::{UserChange, UserGroup};
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
    /// The user a correct extractor finds: the user acted upon (never the actor, whichever the
    /// wording), for a login the user who logged in; `None` for API-key events (the key id is
    /// in the text, but no user is acted upon) and for noise and look-alikes.
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

/// What a role-change record does to the user's groups in the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupOp {
    /// Not a membership change.
    NoChange,
    /// Sets the built-in role named in the (object-first) text, e.g. `"ADMIN"`.
    SetFixedRole(&'static str),
    /// Sets the built-in role `{g}`.
    SetRole,
    /// Adds the user to the group `{g}`.
    Add,
    /// Removes the user from the group `{g}`.
    Remove,
}

/// A record shape: `{t}` is the affected user, `{a}` the actor, `{k}` an API key id, `{c}` the
/// account name and `{g}` a role or user group.
#[derive(Debug)]
pub(crate) struct Template {
    pub kind: Option<&'static str>,
    pub user_action: &'static str,
    pub event_name: &'static str,
    pub description: &'static str,
    pub target: TargetRule,
    pub group: GroupOp,
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
        group: GroupOp::NoChange,
    }
}

/// A `USER_ROLE_CHANGED` template whose membership change the inventory follows.
const fn role(
    user_action: &'static str,
    event_name: &'static str,
    description: &'static str,
    group: GroupOp,
) -> Template {
    Template {
        kind: Some("USER_ROLE_CHANGED"),
        user_action,
        event_name,
        description,
        target: TargetRule::Affected,
        group,
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
        group: GroupOp::NoChange,
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
    role(
        "User Role Changed",
        "User",
        "Role of {t} changed from USER to ADMIN",
        GroupOp::SetFixedRole("ADMIN"),
    ),
    role(
        "User Role Changed",
        "User",
        "Role of {t} changed from ADMIN to USER",
        GroupOp::SetFixedRole("READ_ONLY_USER"),
    ),
    role(
        "User Role Changed",
        "User",
        "Role of {t} changed from USER to POWER_USER",
        GroupOp::SetFixedRole("POWER_USER"),
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

/// How generated records word lifecycle events and their look-alikes.
///
/// Lacework publishes the wording of no lifecycle record. Its one real sample (the API spec's
/// login) names the actor first, in `userName` and at the head of `eventDescription`: "User
/// info@example.com logged in to Lacework account using OAuth credentials". `ObjectFirst` is
/// the fake's original guess ("User bob@acme.com created by admin@acme.com"); `ActorFirst`
/// follows the sample ("User admin@acme.com created user bob@acme.com in ACME account").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wording {
    /// The affected object opens the sentence; `userAction` is always present.
    #[default]
    ObjectFirst,
    /// The actor opens the sentence, as in Lacework's real sample. Look-alikes (an admin
    /// creating an alert channel, a user group, an agent access token, ...) are worded the
    /// same way, and some records carry no `userAction` (see
    /// [`GenerateSpec::no_user_action_share`](crate::GenerateSpec::no_user_action_share)).
    ActorFirst,
    /// Each record is worded one way or the other with equal odds.
    Mixed,
}

impl Wording {
    /// Parses the binary's `--wording` value: `object-first`, `actor-first` or `mixed`.
    pub fn from_flag(value: &str) -> Option<Wording> {
        match value {
            "object-first" => Some(Wording::ObjectFirst),
            "actor-first" => Some(Wording::ActorFirst),
            "mixed" => Some(Wording::Mixed),
            _ => None,
        }
    }
}

/// Which of `userAction` and `eventName` a record carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Summary {
    /// `userAction` and the template's `eventName` (a category such as "User").
    #[default]
    Full,
    /// No `userAction`; `eventName` is the action ("User Created"), so it decides.
    NameOnly,
    /// No `userAction`; `eventName` is only the category, so the description decides.
    DescriptionOnly,
}

/// Actor-first lifecycle templates, worded like Lacework's real login sample; the first
/// template of a kind is its canonical wording.
pub(crate) const ACTOR_FIRST_TEMPLATES: &[Template] = &[
    lc(
        "USER_CREATED",
        "User Created",
        "User",
        "User {a} created user {t} in {c} account",
        Affected,
    ),
    lc(
        "USER_CREATED",
        "User Added",
        "User",
        "User {a} added user {t} to {c} account",
        Affected,
    ),
    lc(
        "USER_CREATED",
        "User Invited",
        "User",
        "User {a} invited user {t} to {c} account",
        Affected,
    ),
    lc(
        "USER_DELETED",
        "User Deleted",
        "User",
        "User {a} deleted user {t} from {c} account",
        Affected,
    ),
    lc(
        "USER_DELETED",
        "User Removed",
        "User",
        "User {a} removed user {t} from {c} account",
        Affected,
    ),
    lc(
        "USER_ENABLED",
        "User Enabled",
        "User",
        "User {a} enabled user {t} in {c} account",
        Affected,
    ),
    lc(
        "USER_ENABLED",
        "User Reactivated",
        "User",
        "User {a} reactivated user {t} in {c} account",
        Affected,
    ),
    lc(
        "USER_DISABLED",
        "User Disabled",
        "User",
        "User {a} disabled user {t} in {c} account",
        Affected,
    ),
    lc(
        "USER_DISABLED",
        "User Deactivated",
        "User",
        "User {a} deactivated user {t} in {c} account",
        Affected,
    ),
    role(
        "User Role Changed",
        "User",
        "User {a} changed the role of {t} to {g}",
        GroupOp::SetRole,
    ),
    role(
        "User Added to User Group",
        "User Group",
        "User {a} added user {t} to group {g}",
        GroupOp::Add,
    ),
    role(
        "User Removed from User Group",
        "User Group",
        "User {a} removed user {t} from group {g}",
        GroupOp::Remove,
    ),
    lc(
        "USER_LOGIN",
        "Login with OAuth Succeeded",
        "User Login",
        "User {a} logged in to {c} account using OAuth credentials",
        Actor,
    ),
    lc(
        "USER_LOGIN",
        "Login with SAML Succeeded",
        "User Login",
        "User {a} logged in to {c} account using SAML credentials",
        Actor,
    ),
    lc(
        "API_KEY_CREATED",
        "API Key Created",
        "API Key",
        "User {a} created API key {k} in {c} account",
        NoTarget,
    ),
    lc(
        "API_KEY_DELETED",
        "API Key Deleted",
        "API Key",
        "User {a} deleted API key {k} from {c} account",
        NoTarget,
    ),
    lc(
        "API_KEY_ENABLED",
        "API Key Enabled",
        "API Key",
        "User {a} enabled API key {k} in {c} account",
        NoTarget,
    ),
    lc(
        "API_KEY_DISABLED",
        "API Key Disabled",
        "API Key",
        "User {a} disabled API key {k} in {c} account",
        NoTarget,
    ),
];

/// A service user's creation: only [`crate::FakeLacework::record_user_change`] words it (the
/// generator's users are all standard users).
pub(crate) const SERVICE_USER_CREATED: Template = lc(
    "USER_CREATED",
    "Service User Created",
    "User",
    "User {a} created service user {t} in {c} account",
    Affected,
);

/// Actor-first look-alikes: an admin creates, deletes, enables, disables or updates something
/// that is neither a user nor an API key. Each is `AUDIT` (`expected_type: None`), however
/// much it reads like a lifecycle event.
pub(crate) const LOOK_ALIKE_TEMPLATES: &[Template] = &[
    noise(
        "Alert Channel Created",
        "Alert Channel",
        "User {a} created alert channel soc-slack in {c} account",
    ),
    noise(
        "Alert Channel Deleted",
        "Alert Channel",
        "User {a} deleted alert channel legacy-email in {c} account",
    ),
    noise(
        "Alert Rule Updated",
        "Alert Rule",
        "User {a} updated alert rule critical-only in {c} account",
    ),
    noise(
        "Alert Rule Disabled",
        "Alert Rule",
        "User {a} disabled alert rule noisy-compliance in {c} account",
    ),
    noise(
        "Report Rule Created",
        "Report Rule",
        "User {a} created report rule weekly-compliance in {c} account",
    ),
    noise(
        "Report Rule Deleted",
        "Report Rule",
        "User {a} deleted report rule daily-digest in {c} account",
    ),
    noise(
        "Resource Group Created",
        "Resource Group",
        "User {a} created resource group prod-aws in {c} account",
    ),
    noise(
        "Resource Group Deleted",
        "Resource Group",
        "User {a} deleted resource group staging-gcp in {c} account",
    ),
    noise(
        "Cloud Account Integration Created",
        "Cloud Account",
        "User {a} created cloud account integration aws-prod in {c} account",
    ),
    noise(
        "Cloud Account Integration Disabled",
        "Cloud Account",
        "User {a} disabled cloud account integration gcp-sandbox in {c} account",
    ),
    noise(
        "Container Registry Created",
        "Container Registry",
        "User {a} created container registry ecr-main in {c} account",
    ),
    noise(
        "Container Registry Deleted",
        "Container Registry",
        "User {a} deleted container registry dockerhub-old in {c} account",
    ),
    noise(
        "Agent Access Token Created",
        "Agent Access Token",
        "User {a} created agent access token k8s-prod in {c} account",
    ),
    noise(
        "Agent Access Token Disabled",
        "Agent Access Token",
        "User {a} disabled agent access token legacy-vm in {c} account",
    ),
    noise(
        "Policy Enabled",
        "Policy",
        "User {a} enabled policy lacework-global-112 in {c} account",
    ),
    noise(
        "Policy Disabled",
        "Policy",
        "User {a} disabled policy lacework-global-31 in {c} account",
    ),
    noise(
        "User Group Created",
        "User Group",
        "User {a} created user group soc-analysts in {c} account",
    ),
    noise(
        "User Group Deleted",
        "User Group",
        "User {a} deleted user group contractors in {c} account",
    ),
    noise(
        "User Group Updated",
        "User Group",
        "User {a} added user group soc-analysts to resource group prod-aws in {c} account",
    ),
    noise(
        "Custom Role Created",
        "Role",
        "User {a} created custom role auditor in {c} account",
    ),
    noise(
        "Custom Role Deleted",
        "Role",
        "User {a} deleted custom role legacy-readers in {c} account",
    ),
    noise(
        "Team Created",
        "Team",
        "User {a} created team platform-team in {c} account",
    ),
    noise(
        "Team Deleted",
        "Team",
        "User {a} deleted team old-sre in {c} account",
    ),
    noise(
        "Query Created",
        "LQL Query",
        "User {a} created query unusual-logins in {c} account",
    ),
    noise(
        "Query Deleted",
        "LQL Query",
        "User {a} deleted query scratch-query in {c} account",
    ),
    noise(
        "Login with OAuth Failed",
        "User Login",
        "User {a} failed to log in to {c} account using OAuth credentials",
    ),
    noise(
        "Logout Succeeded",
        "User Logout",
        "User {a} logged out of {c} account",
    ),
];

/// The `userAction` of every actor-first look-alike, accepted by [`FakeRecord::look_alike`].
pub const LOOK_ALIKE_ACTIONS: [&str; 27] = [
    "Alert Channel Created",
    "Alert Channel Deleted",
    "Alert Rule Updated",
    "Alert Rule Disabled",
    "Report Rule Created",
    "Report Rule Deleted",
    "Resource Group Created",
    "Resource Group Deleted",
    "Cloud Account Integration Created",
    "Cloud Account Integration Disabled",
    "Container Registry Created",
    "Container Registry Deleted",
    "Agent Access Token Created",
    "Agent Access Token Disabled",
    "Policy Enabled",
    "Policy Disabled",
    "User Group Created",
    "User Group Deleted",
    "User Group Updated",
    "Custom Role Created",
    "Custom Role Deleted",
    "Team Created",
    "Team Deleted",
    "Query Created",
    "Query Deleted",
    "Login with OAuth Failed",
    "Logout Succeeded",
];

/// Built-in roles an actor-first role change sets (`{g}`), named like the built-in user group
/// GUIDs without their `LACEWORK_USER_GROUP_` prefix.
pub(crate) const ROLES: &[&str] = &["ADMIN", "POWER_USER", "READ_ONLY_USER"];

/// Custom user groups an actor-first membership change names (`{g}`).
pub(crate) const CUSTOM_GROUPS: &[&str] =
    &["soc-analysts", "platform-admins", "auditors", "contractors"];

/// The object-first templates of one lifecycle kind, canonical wording first.
pub(crate) fn variants_of(kind: &str) -> Vec<&'static Template> {
    variants_in(LIFECYCLE_TEMPLATES, kind)
}

/// The templates of one lifecycle kind in `table`, canonical wording first.
pub(crate) fn variants_in(table: &'static [Template], kind: &str) -> Vec<&'static Template> {
    table.iter().filter(|t| t.kind == Some(kind)).collect()
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
    #[serde(skip_serializing_if = "Option::is_none")]
    user_action: Option<&'a str>,
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
    /// The role or user group `{g}` names (role changes only; empty otherwise).
    pub group: &'a str,
    /// Which of `userAction` and `eventName` the record carries.
    pub summary: Summary,
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
            group: "",
            summary: Summary::Full,
        }
    }

    fn description(&self) -> String {
        fill(
            self.template.description,
            &Slots {
                affected: self.affected,
                actor: self.actor,
                key_id: self.key_id,
                account: self.account,
                group: self.group,
            },
        )
    }

    fn wire<'b>(&'b self, description: &'b str) -> Wire<'b> {
        let (user_action, event_name) = match self.summary {
            Summary::Full => (Some(self.template.user_action), self.template.event_name),
            Summary::NameOnly => (None, self.template.user_action),
            Summary::DescriptionOnly => (None, self.template.event_name),
        };
        Wire {
            account_name: self.account,
            created_time: CreatedTime::new(self.created_ms, self.format),
            event_description: description,
            event_name,
            source_ip_address: self.source_ip.as_deref(),
            user_action,
            user_name: self.actor,
        }
    }

    /// What the record does to the user inventory, if it is a lifecycle event.
    pub fn user_change(&self) -> Option<UserChange> {
        let user = |name: &str| name.to_owned();
        let change = match self.template.kind? {
            "USER_CREATED" => UserChange::Create {
                user: user(self.affected),
            },
            "USER_DELETED" => UserChange::Delete {
                user: user(self.affected),
            },
            "USER_ENABLED" => UserChange::Enable {
                user: user(self.affected),
            },
            "USER_DISABLED" => UserChange::Disable {
                user: user(self.affected),
            },
            "USER_ROLE_CHANGED" => match self.template.group {
                GroupOp::NoChange => return None,
                GroupOp::SetFixedRole(label) => UserChange::SetRole {
                    user: user(self.affected),
                    role: UserGroup::role(label),
                },
                GroupOp::SetRole => UserChange::SetRole {
                    user: user(self.affected),
                    role: UserGroup::role(self.group),
                },
                GroupOp::Add => UserChange::AddToGroup {
                    user: user(self.affected),
                    group: UserGroup::custom(self.group),
                },
                GroupOp::Remove => UserChange::RemoveFromGroup {
                    user: user(self.affected),
                    group: UserGroup::custom(self.group),
                },
            },
            "USER_LOGIN" => UserChange::Login {
                user: user(self.actor),
            },
            "API_KEY_CREATED" => UserChange::CreateApiKey {
                owner: user(self.actor),
                key_id: user(self.key_id),
            },
            "API_KEY_DELETED" => UserChange::DeleteApiKey {
                key_id: user(self.key_id),
            },
            "API_KEY_ENABLED" => UserChange::EnableApiKey {
                key_id: user(self.key_id),
            },
            "API_KEY_DISABLED" => UserChange::DisableApiKey {
                key_id: user(self.key_id),
            },
            _ => return None,
        };
        Some(change)
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

/// The values a template's placeholders stand for.
struct Slots<'a> {
    /// `{t}`.
    affected: &'a str,
    /// `{a}`.
    actor: &'a str,
    /// `{k}`.
    key_id: &'a str,
    /// `{c}`.
    account: &'a str,
    /// `{g}`.
    group: &'a str,
}

/// Substitutes `{t}`, `{a}`, `{k}`, `{c}` and `{g}` in one pass.
fn fill(template: &str, slots: &Slots<'_>) -> String {
    let mut out = String::with_capacity(template.len() + slots.affected.len() + slots.actor.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (value, skip) = match tail.get(..3) {
            Some("{t}") => (slots.affected, 3),
            Some("{a}") => (slots.actor, 3),
            Some("{k}") => (slots.key_id, 3),
            Some("{c}") => (slots.account, 3),
            Some("{g}") => (slots.group, 3),
            _ => ("{", 1),
        };
        out.push_str(value);
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

/// Renders a lifecycle template the way the public constructors do: millisecond
/// `createdTime`; `target` names the key for API-key kinds (derived when `None`) and the
/// affected user otherwise (the actor when `None`).
pub(crate) fn render_lifecycle(
    template: &'static Template,
    account: &str,
    actor: &str,
    target: Option<&str>,
    group: &str,
    created: DateTime<Utc>,
) -> FakeRecord {
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
    let mut draft = Draft::new(
        template,
        account,
        actor,
        affected,
        key,
        created_ms,
        TimeFormat::Millis,
    );
    draft.group = group;
    draft.to_fake()
}

/// The actor-first record of `change`, made by `actor` in `account` at `created` (a login's
/// actor is the user who logs in, whoever `actor` is).
pub(crate) fn for_change(
    account: &str,
    actor: &str,
    change: &UserChange,
    created: DateTime<Utc>,
) -> FakeRecord {
    let canonical = |kind: &str| variants_in(ACTOR_FIRST_TEMPLATES, kind)[0];
    let with_group = |op: GroupOp| {
        ACTOR_FIRST_TEMPLATES
            .iter()
            .find(|t| t.group == op)
            .expect("every group operation has an actor-first template")
    };
    let render = |template, actor: &str, target: &str, group: &str| {
        render_lifecycle(template, account, actor, Some(target), group, created)
    };
    match change {
        UserChange::Create { user } => render(canonical("USER_CREATED"), actor, user, ""),
        UserChange::CreateServiceUser { name } => render(&SERVICE_USER_CREATED, actor, name, ""),
        UserChange::Delete { user } => render(canonical("USER_DELETED"), actor, user, ""),
        UserChange::Enable { user } => render(canonical("USER_ENABLED"), actor, user, ""),
        UserChange::Disable { user } => render(canonical("USER_DISABLED"), actor, user, ""),
        UserChange::SetRole { user, role } => {
            render(with_group(GroupOp::SetRole), actor, user, role.label())
        }
        UserChange::AddToGroup { user, group } => {
            render(with_group(GroupOp::Add), actor, user, &group.name)
        }
        UserChange::RemoveFromGroup { user, group } => {
            render(with_group(GroupOp::Remove), actor, user, &group.name)
        }
        UserChange::Login { user } => render(canonical("USER_LOGIN"), user, user, ""),
        UserChange::CreateApiKey { key_id, .. } => {
            render(canonical("API_KEY_CREATED"), actor, key_id, "")
        }
        UserChange::DeleteApiKey { key_id } => {
            render(canonical("API_KEY_DELETED"), actor, key_id, "")
        }
        UserChange::EnableApiKey { key_id } => {
            render(canonical("API_KEY_ENABLED"), actor, key_id, "")
        }
        UserChange::DisableApiKey { key_id } => {
            render(canonical("API_KEY_DISABLED"), actor, key_id, "")
        }
    }
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
        render_lifecycle(template, account, actor, target, "", created)
    }

    /// Builds a lifecycle record of `kind` (one of [`LIFECYCLE_KINDS`]) worded actor-first, as
    /// Lacework's one real sample is: `userName` is `actor` and the description opens with
    /// `"User <actor> ..."`, e.g. "User admin@acme.com created user bob@acme.com in ACME
    /// account". `createdTime` is in millisecond format and `userAction` is present (drop it
    /// with [`FakeRecord::without_user_action`]).
    ///
    /// `variant` picks a wording modulo [`FakeRecord::actor_first_variants`]; variant 0 is the
    /// canonical one ("User Created", "User Role Changed", "Login with OAuth Succeeded", ...).
    /// `target` works as in [`FakeRecord::lifecycle`]. A role change names the role `ADMIN`
    /// (variant 0) or the user group `soc-analysts` (the membership variants);
    /// [`crate::FakeLacework::record_user_change`] chooses them freely.
    ///
    /// # Panics
    /// If `kind` is not one of [`LIFECYCLE_KINDS`].
    pub fn actor_first(
        kind: &str,
        variant: usize,
        account: &str,
        actor: &str,
        target: Option<&str>,
        created: DateTime<Utc>,
    ) -> FakeRecord {
        let variants = variants_in(ACTOR_FIRST_TEMPLATES, kind);
        assert!(!variants.is_empty(), "unknown lifecycle kind {kind:?}");
        let template = variants[variant % variants.len()];
        let group = match template.group {
            GroupOp::SetRole => ROLES[0],
            GroupOp::Add | GroupOp::Remove => CUSTOM_GROUPS[0],
            GroupOp::NoChange | GroupOp::SetFixedRole(_) => "",
        };
        render_lifecycle(template, account, actor, target, group, created)
    }

    /// How many actor-first wordings `kind` has (0 for an unknown kind).
    pub fn actor_first_variants(kind: &str) -> usize {
        variants_in(ACTOR_FIRST_TEMPLATES, kind).len()
    }

    /// Builds an actor-first look-alike from the template whose `userAction` is `user_action`
    /// (one of [`LOOK_ALIKE_ACTIONS`]), e.g. "User admin@acme.com created alert channel
    /// soc-slack in ACME account"; `expected_type` and `expected_target` are `None`.
    ///
    /// # Panics
    /// If `user_action` is not one of [`LOOK_ALIKE_ACTIONS`].
    pub fn look_alike(
        user_action: &str,
        account: &str,
        actor: &str,
        created: DateTime<Utc>,
    ) -> FakeRecord {
        let template = LOOK_ALIKE_TEMPLATES
            .iter()
            .find(|t| t.user_action == user_action)
            .unwrap_or_else(|| panic!("unknown look-alike user action {user_action:?}"));
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

    /// Drops `userAction`, so `eventName` or `eventDescription` must decide; the expectation
    /// is unchanged (what happened does not depend on how it is summarized).
    pub fn without_user_action(mut self) -> FakeRecord {
        if let Value::Object(map) = &mut self.json {
            map.remove("userAction");
        }
        self
    }

    /// Replaces `eventName`.
    pub fn with_event_name(mut self, event_name: &str) -> FakeRecord {
        if let Value::Object(map) = &mut self.json {
            map.insert("eventName".to_owned(), Value::from(event_name));
        }
        self
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
            user_action: Some(user_action),
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
        let slots = Slots {
            affected: "T",
            actor: "A",
            key_id: "K",
            account: "C",
            group: "G",
        };
        assert_eq!(fill("{x} {t}{a}{k}{c}{g}{", &slots), "{x} TAKCG{");
    }

    #[test]
    fn actor_first_names_the_actor_first_and_the_target_later() {
        let r = FakeRecord::actor_first(
            "USER_CREATED",
            0,
            "ACME",
            "admin@acme.com",
            Some("jane.doe7@acme.com"),
            at(1_793_524_502_123),
        );
        assert_eq!(
            r.json.to_string(),
            r#"{"accountName":"ACME","createdTime":"2026-11-01T09:15:02.123Z","eventDescription":"User admin@acme.com created user jane.doe7@acme.com in ACME account","eventName":"User","userAction":"User Created","userName":"admin@acme.com"}"#
        );
        assert_eq!(r.expected_type.as_deref(), Some("USER_CREATED"));
        assert_eq!(r.expected_target.as_deref(), Some("jane.doe7@acme.com"));
        let check = |kind: &str, variant: usize, action: &str, description: &str| {
            let r = FakeRecord::actor_first(
                kind,
                variant,
                "ACME-SUB1",
                "a@acme.com",
                Some("t@acme.com"),
                at(0),
            );
            assert_eq!(r.json["userAction"], action, "{kind} {variant}");
            assert_eq!(r.json["eventDescription"], description, "{kind} {variant}");
            assert_eq!(r.json["userName"], "a@acme.com");
            assert_eq!(r.expected_type.as_deref(), Some(kind));
        };
        check(
            "USER_DELETED",
            1,
            "User Removed",
            "User a@acme.com removed user t@acme.com from ACME-SUB1 account",
        );
        check(
            "USER_ROLE_CHANGED",
            0,
            "User Role Changed",
            "User a@acme.com changed the role of t@acme.com to ADMIN",
        );
        check(
            "USER_ROLE_CHANGED",
            1,
            "User Added to User Group",
            "User a@acme.com added user t@acme.com to group soc-analysts",
        );
        check(
            "USER_LOGIN",
            0,
            "Login with OAuth Succeeded",
            "User a@acme.com logged in to ACME-SUB1 account using OAuth credentials",
        );
        check(
            "API_KEY_CREATED",
            0,
            "API Key Created",
            "User a@acme.com created API key t@acme.com in ACME-SUB1 account",
        );
    }

    #[test]
    fn every_actor_first_wording_carries_its_ground_truth() {
        for kind in LIFECYCLE_KINDS {
            let n = FakeRecord::actor_first_variants(kind);
            assert!(n >= 1, "{kind}");
            for variant in 0..n {
                let r = FakeRecord::actor_first(
                    kind,
                    variant,
                    "ACME",
                    "boss@acme.com",
                    (!kind.starts_with("API_KEY_")).then_some("t@acme.com"),
                    at(0),
                );
                let desc = r.json["eventDescription"].as_str().unwrap();
                assert!(desc.starts_with("User boss@acme.com "), "{desc}");
                assert!(!desc.contains('{'), "{desc}");
                match (kind, r.expected_target.as_deref()) {
                    ("USER_LOGIN", target) => assert_eq!(target, Some("boss@acme.com")),
                    (k, target) if k.starts_with("API_KEY_") => {
                        assert_eq!(target, None);
                        assert!(desc.contains(" API key ACME_"), "{desc}");
                    }
                    (_, target) => {
                        assert_eq!(target, Some("t@acme.com"));
                        assert!(desc.find("t@acme.com") > desc.find("boss@acme.com"));
                    }
                }
            }
        }
        assert_eq!(FakeRecord::actor_first_variants("NOPE"), 0);
    }

    #[test]
    fn look_alikes_are_actor_first_audit_records() {
        let actions: Vec<&str> = LOOK_ALIKE_TEMPLATES.iter().map(|t| t.user_action).collect();
        assert_eq!(actions, LOOK_ALIKE_ACTIONS);
        for action in LOOK_ALIKE_ACTIONS {
            let r = FakeRecord::look_alike(action, "ACME", "admin@acme.com", at(0));
            assert_eq!(r.json["userAction"], action);
            let desc = r.json["eventDescription"].as_str().unwrap();
            assert!(desc.starts_with("User admin@acme.com "), "{desc}");
            assert!(desc.contains(" account"), "{desc}");
            assert_eq!((r.expected_type, r.expected_target), (None, None));
        }
        let r = FakeRecord::look_alike("Alert Channel Created", "ACME", "admin@acme.com", at(0));
        assert_eq!(
            r.json["eventDescription"],
            "User admin@acme.com created alert channel soc-slack in ACME account"
        );
    }

    #[test]
    fn a_record_can_lose_its_user_action() {
        let r = FakeRecord::actor_first(
            "USER_DISABLED",
            0,
            "ACME",
            "a@acme.com",
            Some("t@acme.com"),
            at(0),
        )
        .without_user_action();
        assert!(r.json.get("userAction").is_none());
        assert_eq!(r.expected_type.as_deref(), Some("USER_DISABLED"));
        let r = r.with_event_name("User Disabled");
        assert_eq!(r.json["eventName"], "User Disabled");
        let mut draft = Draft::new(
            &ACTOR_FIRST_TEMPLATES[0],
            "ACME",
            "a@acme.com",
            "t@acme.com",
            "",
            0,
            TimeFormat::Millis,
        );
        draft.summary = Summary::NameOnly;
        let json: Value = serde_json::from_str(&draft.to_json_string()).unwrap();
        assert_eq!(json["eventName"], "User Created");
        assert!(json.get("userAction").is_none());
        draft.summary = Summary::DescriptionOnly;
        let json: Value = serde_json::from_str(&draft.to_json_string()).unwrap();
        assert_eq!(json["eventName"], "User");
        assert!(json.get("userAction").is_none());
    }

    #[test]
    fn changes_are_worded_with_their_role_group_or_key() {
        let check = |change: UserChange, action: &str, description: &str, target: Option<&str>| {
            let r = for_change("ACME", "admin@acme.com", &change, at(0));
            assert_eq!(r.json["userAction"], action);
            assert_eq!(r.json["eventDescription"], description);
            assert_eq!(r.expected_target.as_deref(), target);
        };
        check(
            UserChange::SetRole {
                user: "bob@acme.com".into(),
                role: UserGroup::power_user(),
            },
            "User Role Changed",
            "User admin@acme.com changed the role of bob@acme.com to POWER_USER",
            Some("bob@acme.com"),
        );
        check(
            UserChange::RemoveFromGroup {
                user: "bob@acme.com".into(),
                group: UserGroup::custom("auditors"),
            },
            "User Removed from User Group",
            "User admin@acme.com removed user bob@acme.com from group auditors",
            Some("bob@acme.com"),
        );
        check(
            UserChange::CreateServiceUser {
                name: "ci-bot".into(),
            },
            "Service User Created",
            "User admin@acme.com created service user ci-bot in ACME account",
            Some("ci-bot"),
        );
        check(
            UserChange::Login {
                user: "bob@acme.com".into(),
            },
            "Login with OAuth Succeeded",
            "User bob@acme.com logged in to ACME account using OAuth credentials",
            Some("bob@acme.com"),
        );
        check(
            UserChange::DisableApiKey {
                key_id: "ACME_K".into(),
            },
            "API Key Disabled",
            "User admin@acme.com disabled API key ACME_K in ACME account",
            None,
        );
    }

    #[test]
    fn wording_flags() {
        assert_eq!(Wording::from_flag("actor-first"), Some(Wording::ActorFirst));
        assert_eq!(
            Wording::from_flag("object-first"),
            Some(Wording::ObjectFirst)
        );
        assert_eq!(Wording::from_flag("mixed"), Some(Wording::Mixed));
        assert_eq!(Wording::from_flag("actor_first"), None);
        assert_eq!(Wording::default(), Wording::ObjectFirst);
    }
}
