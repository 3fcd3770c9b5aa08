//! The user inventory behind `TeamUsers`, `TeamMembers` and `UserProfile`: who exists in which
//! account, enabled or not, in which user groups, with which API keys.
//!
//! The inventory follows the lifecycle records the fake generates or is given (a
//! `USER_CREATED` adds the user, a `USER_DELETED` removes it, ...), so a client that diffs
//! snapshots sees what the audit log says. It can also be changed with no audit record at all
//! ([`crate::FakeLacework::edit_inventory`]), which is what an independent reconciliation must
//! catch.
//!
//! What the real endpoints return is known only from clients (the API fact sheet, addendum A2);
//! the shapes here follow it, and where it is silent the fake picks and says so.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::generator::{fnv1a, mix64};
use crate::timefmt::format_millis;

/// A standard (human) user or a service user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserKind {
    /// `"type": "StandardUser"`: logs in, identified by `email`.
    Standard,
    /// `"type": "ServiceUser"`: API access only, identified by `name` and `serviceUserId`.
    Service,
}

/// A user group, which carries role membership in the new RBAC model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserGroup {
    /// `userGroupGuid`, e.g. `LACEWORK_USER_GROUP_ADMIN`.
    pub guid: String,
    /// `userGroupName`, e.g. `Admin`.
    pub name: String,
}

/// The prefix of the built-in groups' GUIDs (PY example, EVE).
const BUILT_IN_PREFIX: &str = "LACEWORK_USER_GROUP_";

impl UserGroup {
    /// The built-in Admin group.
    pub fn admin() -> UserGroup {
        UserGroup::role("ADMIN")
    }

    /// The built-in Power User group.
    pub fn power_user() -> UserGroup {
        UserGroup::role("POWER_USER")
    }

    /// The built-in Read-only User group, which new users join.
    pub fn read_only() -> UserGroup {
        UserGroup::role("READ_ONLY_USER")
    }

    /// A built-in role group by label: `ADMIN`, `POWER_USER`, `READ_ONLY_USER` (or the legacy
    /// `USER`, taken as read-only). Any other label makes a group of that GUID suffix.
    pub fn role(label: &str) -> UserGroup {
        let label = label.trim().to_ascii_uppercase();
        let (suffix, name) = match label.as_str() {
            "ADMIN" => ("ADMIN", "Admin".to_owned()),
            "POWER_USER" => ("POWER_USER", "Power User".to_owned()),
            "READ_ONLY_USER" | "USER" => ("READ_ONLY_USER", "Read-only User".to_owned()),
            other => (other, other.to_owned()),
        };
        UserGroup {
            guid: format!("{BUILT_IN_PREFIX}{suffix}"),
            name,
        }
    }

    /// A custom group; its GUID is derived from the name (the real format is unknown).
    pub fn custom(name: &str) -> UserGroup {
        UserGroup {
            guid: format!("CUSTOM_USER_GROUP_{:016X}", mix64(fnv1a(name.as_bytes()))),
            name: name.to_owned(),
        }
    }

    /// Whether this is a built-in role group (a user holds one role at a time).
    pub fn is_role(&self) -> bool {
        self.guid.starts_with(BUILT_IN_PREFIX)
    }

    /// The label of a built-in role (`ADMIN` for `LACEWORK_USER_GROUP_ADMIN`), as actor-first
    /// role changes name it; a custom group's name otherwise.
    pub fn label(&self) -> &str {
        self.guid
            .strip_prefix(BUILT_IN_PREFIX)
            .unwrap_or(&self.name)
    }

    fn same(&self, other: &UserGroup) -> bool {
        self.guid == other.guid || self.name.eq_ignore_ascii_case(&other.name)
    }
}

/// An API key a user owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// The key id, e.g. `ACME_0123...`.
    pub key_id: String,
    /// Whether the key is enabled; served as `"status": "ENABLED"` or `"DISABLED"` (the real
    /// strings are not documented).
    pub enabled: bool,
}

/// One user of one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamUser {
    /// The account the user belongs to (its upper-case display name).
    pub account: String,
    /// `userGuid`: stable while the user exists; a re-created user gets a new one.
    pub user_guid: String,
    /// Standard or service user.
    pub kind: UserKind,
    /// `name`: the display name.
    pub name: String,
    /// `email`: standard users only.
    pub email: Option<String>,
    /// `serviceUserId`: service users only (its real format is unknown).
    pub service_user_id: Option<String>,
    /// `description`: service users only.
    pub description: Option<String>,
    /// `userEnabled`, served as 1 or 0.
    pub enabled: bool,
    /// `userGroups`: the role group first, then custom groups.
    pub groups: Vec<UserGroup>,
    /// API keys the user owns. Only service users list them (`apiKeys`); a standard user's keys
    /// are ground truth the endpoints do not show.
    pub api_keys: Vec<ApiKey>,
    /// When the user was created, epoch milliseconds.
    pub created_ms: i64,
    /// The last login, epoch milliseconds (`lastLoginTime`, served as 0 when never).
    pub last_login_ms: Option<i64>,
    /// Who changed the user last (TeamMembers `props.updatedBy`).
    pub updated_by: String,
    /// When the user was changed last, epoch milliseconds.
    pub updated_ms: i64,
}

impl TeamUser {
    /// How audit records and the inventory's methods name the user: the e-mail of a standard
    /// user, the name of a service user.
    pub fn handle(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.name)
    }

    /// Whether `who` names this user: the handle, or a service user's `serviceUserId`, or the
    /// `userGuid` (case-insensitive).
    pub fn is(&self, who: &str) -> bool {
        self.handle().eq_ignore_ascii_case(who)
            || self.user_guid.eq_ignore_ascii_case(who)
            || self
                .service_user_id
                .as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(who))
    }

    /// Whether the user holds the built-in Admin role.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g.same(&UserGroup::admin()))
    }
}

/// A change to the inventory, in the terms of the audit log. [`UserInventory::apply`] makes it
/// silently; [`crate::FakeLacework::record_user_change`] also writes its audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserChange {
    /// Creates (or re-creates) a standard user with this e-mail, enabled, read-only.
    Create {
        /// The new user's e-mail.
        user: String,
    },
    /// Creates (or re-creates) a service user with this name, enabled, read-only.
    CreateServiceUser {
        /// The service user's name.
        name: String,
    },
    /// Removes the user; nothing happens if it does not exist.
    Delete {
        /// The user.
        user: String,
    },
    /// Enables the user.
    Enable {
        /// The user.
        user: String,
    },
    /// Disables the user.
    Disable {
        /// The user.
        user: String,
    },
    /// Replaces the user's built-in role group, keeping custom groups.
    SetRole {
        /// The user.
        user: String,
        /// The new role, e.g. [`UserGroup::admin`].
        role: UserGroup,
    },
    /// Adds the user to a group.
    AddToGroup {
        /// The user.
        user: String,
        /// The group.
        group: UserGroup,
    },
    /// Removes the user from a group.
    RemoveFromGroup {
        /// The user.
        user: String,
        /// The group.
        group: UserGroup,
    },
    /// A successful login: sets `lastLoginTime`.
    Login {
        /// The user who logged in.
        user: String,
    },
    /// Gives `owner` a new enabled API key.
    CreateApiKey {
        /// The key's owner.
        owner: String,
        /// The key id.
        key_id: String,
    },
    /// Deletes an API key wherever it is in the account.
    DeleteApiKey {
        /// The key id.
        key_id: String,
    },
    /// Enables an API key.
    EnableApiKey {
        /// The key id.
        key_id: String,
    },
    /// Disables an API key.
    DisableApiKey {
        /// The key id.
        key_id: String,
    },
}

/// Every account's users, plus the caller whose `UserProfile` the fake serves.
///
/// Users are named by their handle (e-mail, or a service user's name), their `userGuid` or a
/// service user's `serviceUserId`, all case-insensitively; accounts case-insensitively.
#[derive(Clone, Debug)]
pub struct UserInventory {
    accounts: Vec<String>,
    /// Users by creation sequence, so iteration is creation order.
    users: BTreeMap<u64, TeamUser>,
    /// `(account, handle)`, both lower-cased, to the user's sequence number.
    by_handle: HashMap<(String, String), u64>,
    /// `(account lower-cased, key id)` to the owner's sequence number.
    keys: HashMap<(String, String), u64>,
    caller: String,
    /// Counts creations: the next sequence number, and a re-created user's fresh `userGuid`.
    created: u64,
}

/// The e-mail of the API key's user, whose profile `UserProfile` serves.
pub(crate) const DEFAULT_CALLER: &str = "admin@acme.com";

/// The `company` of generated standard users.
const COMPANY: &str = "Acme Corp";

/// The case-insensitive index key of a user of an account.
fn slot(account: &str, handle: &str) -> (String, String) {
    (account.to_ascii_lowercase(), handle.to_ascii_lowercase())
}

/// The index key of an API key of an account (key ids compare exactly).
fn key_slot(account: &str, key_id: &str) -> (String, String) {
    (account.to_ascii_lowercase(), key_id.to_owned())
}

impl UserInventory {
    /// An inventory with one account whose only user is the caller, an enabled admin.
    pub fn new(primary_account: &str, caller: &str) -> UserInventory {
        let mut inventory = UserInventory {
            accounts: Vec::new(),
            users: BTreeMap::new(),
            by_handle: HashMap::new(),
            keys: HashMap::new(),
            caller: caller.to_owned(),
            created: 0,
        };
        inventory.add_account(primary_account);
        inventory
    }

    /// The accounts, in the order they became known.
    pub fn accounts(&self) -> &[String] {
        &self.accounts
    }

    /// The caller: the user whose API key the fake serves, listed by `UserProfile`.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// Adds an account (no-op if known), with the caller in it as an enabled admin so that
    /// `UserProfile` can list it.
    pub fn add_account(&mut self, account: &str) {
        if self.known_account(account).is_some() {
            return;
        }
        self.accounts.push(account.to_owned());
        let caller = self.caller.clone();
        self.add_user(account, &caller, 0, &caller);
        self.set_role(account, &caller, UserGroup::admin());
    }

    /// Every user of `account`, in creation order.
    pub fn users(&self, account: &str) -> Vec<&TeamUser> {
        self.users
            .values()
            .filter(|u| u.account.eq_ignore_ascii_case(account))
            .collect()
    }

    /// Every user of every account, in creation order.
    pub fn all_users(&self) -> Vec<&TeamUser> {
        self.users.values().collect()
    }

    /// The user `who` of `account`.
    pub fn user(&self, account: &str, who: &str) -> Option<&TeamUser> {
        self.find(account, who).and_then(|seq| self.users.get(&seq))
    }

    /// The sequence number of `who`: by handle through the index, else by GUID or
    /// `serviceUserId`.
    fn find(&self, account: &str, who: &str) -> Option<u64> {
        if let Some(seq) = self.by_handle.get(&slot(account, who)) {
            return Some(*seq);
        }
        // GUIDs and service user ids never hold an `@`; an e-mail the index lacks is unknown.
        if who.contains('@') {
            return None;
        }
        self.users
            .iter()
            .find(|(_, u)| u.account.eq_ignore_ascii_case(account) && u.is(who))
            .map(|(seq, _)| *seq)
    }

    fn user_mut(&mut self, account: &str, who: &str) -> Option<&mut TeamUser> {
        let seq = self.find(account, who)?;
        self.users.get_mut(&seq)
    }

    /// Adds (or re-creates, with a new `userGuid`) an enabled, read-only standard user at
    /// `at_ms`, changed `by` someone, adding the account if it is new.
    pub fn add_user(&mut self, account: &str, email: &str, at_ms: i64, by: &str) -> &TeamUser {
        self.insert(account, UserKind::Standard, email, at_ms, by)
    }

    /// Adds (or re-creates) an enabled, read-only service user named `name`.
    pub fn add_service_user(
        &mut self,
        account: &str,
        name: &str,
        at_ms: i64,
        by: &str,
    ) -> &TeamUser {
        self.insert(account, UserKind::Service, name, at_ms, by)
    }

    fn insert(
        &mut self,
        account: &str,
        kind: UserKind,
        handle: &str,
        at_ms: i64,
        by: &str,
    ) -> &mut TeamUser {
        let account = match self.known_account(account) {
            Some(known) => known,
            None => {
                self.add_account(account);
                account.to_owned()
            }
        };
        self.remove_user(&account, handle);
        self.created += 1;
        let seq = self.created;
        let seed = fnv1a(account.to_ascii_lowercase().as_bytes())
            ^ mix64(fnv1a(handle.to_ascii_lowercase().as_bytes()))
            ^ mix64(seq);
        let prefix = account_prefix(&account);
        let user_guid = format!("{prefix}_{:016X}{:016X}", mix64(seed), mix64(!seed));
        let (email, service_user_id, description, name) = match kind {
            UserKind::Standard => (Some(handle.to_owned()), None, None, display_name(handle)),
            UserKind::Service => (
                None,
                Some(format!("{:016x}{:016x}", mix64(seed ^ 1), mix64(seed ^ 2))),
                Some(format!("Service user {handle}")),
                handle.to_owned(),
            ),
        };
        self.by_handle.insert(slot(&account, handle), seq);
        self.users.entry(seq).or_insert(TeamUser {
            account,
            user_guid,
            kind,
            name,
            email,
            service_user_id,
            description,
            enabled: true,
            groups: vec![UserGroup::read_only()],
            api_keys: Vec::new(),
            created_ms: at_ms,
            last_login_ms: None,
            updated_by: by.to_owned(),
            updated_ms: at_ms,
        })
    }

    /// Removes the user and its API keys; returns whether it existed.
    pub fn remove_user(&mut self, account: &str, who: &str) -> bool {
        let Some(user) = self
            .find(account, who)
            .and_then(|seq| self.users.remove(&seq))
        else {
            return false;
        };
        self.by_handle.remove(&slot(&user.account, user.handle()));
        for key in &user.api_keys {
            self.keys.remove(&key_slot(&user.account, &key.key_id));
        }
        true
    }

    /// Enables or disables the user; returns whether it exists.
    pub fn set_enabled(&mut self, account: &str, who: &str, enabled: bool) -> bool {
        self.edit(account, who, |u| u.enabled = enabled)
    }

    /// Replaces every group of the user; returns whether it exists.
    pub fn set_groups(&mut self, account: &str, who: &str, groups: Vec<UserGroup>) -> bool {
        self.edit(account, who, |u| u.groups = groups)
    }

    /// Replaces the user's built-in role group (custom groups stay); returns whether it exists.
    pub fn set_role(&mut self, account: &str, who: &str, role: UserGroup) -> bool {
        self.edit(account, who, |u| {
            u.groups.retain(|g| !g.is_role());
            u.groups.insert(0, role);
        })
    }

    /// Adds the user to `group` (no-op if a member); returns whether the user exists.
    pub fn add_to_group(&mut self, account: &str, who: &str, group: UserGroup) -> bool {
        self.edit(account, who, |u| {
            if !u.groups.iter().any(|g| g.same(&group)) {
                u.groups.push(group);
            }
        })
    }

    /// Removes the user from `group`; returns whether the user exists.
    pub fn remove_from_group(&mut self, account: &str, who: &str, group: &UserGroup) -> bool {
        self.edit(account, who, |u| u.groups.retain(|g| !g.same(group)))
    }

    /// Sets the user's last login; returns whether it exists.
    pub fn set_last_login(&mut self, account: &str, who: &str, at_ms: i64) -> bool {
        self.edit(account, who, |u| u.last_login_ms = Some(at_ms))
    }

    /// Gives the user an API key (moving one with the same id from whoever held it); returns
    /// whether the user exists.
    pub fn add_api_key(&mut self, account: &str, who: &str, key_id: &str, enabled: bool) -> bool {
        let Some(seq) = self.find(account, who) else {
            return false;
        };
        self.remove_api_key(account, key_id);
        let user = self.users.get_mut(&seq).expect("found");
        user.api_keys.push(ApiKey {
            key_id: key_id.to_owned(),
            enabled,
        });
        self.keys.insert(key_slot(account, key_id), seq);
        true
    }

    /// Enables or disables an API key of any user of the account; returns whether it exists.
    pub fn set_api_key_enabled(&mut self, account: &str, key_id: &str, enabled: bool) -> bool {
        self.key_mut(account, key_id)
            .map(|key| key.enabled = enabled)
            .is_some()
    }

    /// Deletes an API key of any user of the account; returns whether it existed.
    pub fn remove_api_key(&mut self, account: &str, key_id: &str) -> bool {
        let Some(seq) = self.keys.remove(&key_slot(account, key_id)) else {
            return false;
        };
        let user = self.users.get_mut(&seq).expect("indexed keys have owners");
        user.api_keys.retain(|k| k.key_id != key_id);
        true
    }

    /// The API key `key_id` of the account and its owner.
    pub fn api_key(&self, account: &str, key_id: &str) -> Option<(&TeamUser, &ApiKey)> {
        let seq = self.keys.get(&key_slot(account, key_id))?;
        let user = self.users.get(seq)?;
        let key = user.api_keys.iter().find(|k| k.key_id == key_id)?;
        Some((user, key))
    }

    /// Makes `change` in `account` as `actor` did it at `at_ms`, with no audit record.
    ///
    /// The audit log only shows what happened in its window, so a change to a user (or key)
    /// the inventory does not know adds it first: it existed before. A key of unknown owner
    /// goes to `actor`. Deleting what does not exist does nothing. Returns whether the
    /// inventory changed.
    pub fn apply(&mut self, account: &str, actor: &str, change: &UserChange, at_ms: i64) -> bool {
        match change {
            UserChange::Create { user } => {
                self.add_user(account, user, at_ms, actor);
                true
            }
            UserChange::CreateServiceUser { name } => {
                self.add_service_user(account, name, at_ms, actor);
                true
            }
            UserChange::Delete { user } => self.remove_user(account, user),
            UserChange::Enable { user } => {
                self.known(account, user, at_ms, actor).enabled = true;
                true
            }
            UserChange::Disable { user } => {
                self.known(account, user, at_ms, actor).enabled = false;
                true
            }
            UserChange::SetRole { user, role } => {
                self.known(account, user, at_ms, actor);
                self.set_role(account, user, role.clone())
            }
            UserChange::AddToGroup { user, group } => {
                self.known(account, user, at_ms, actor);
                self.add_to_group(account, user, group.clone())
            }
            UserChange::RemoveFromGroup { user, group } => {
                self.known(account, user, at_ms, actor);
                self.remove_from_group(account, user, group)
            }
            UserChange::Login { user } => {
                let user = self.known(account, user, at_ms, user);
                user.last_login_ms = Some(user.last_login_ms.map_or(at_ms, |t| t.max(at_ms)));
                true
            }
            UserChange::CreateApiKey { owner, key_id } => {
                self.known(account, owner, at_ms, actor);
                self.add_api_key(account, owner, key_id, true)
            }
            UserChange::DeleteApiKey { key_id } => self.remove_api_key(account, key_id),
            UserChange::EnableApiKey { key_id } | UserChange::DisableApiKey { key_id } => {
                let enabled = matches!(change, UserChange::EnableApiKey { .. });
                if !self.set_api_key_enabled(account, key_id, enabled) {
                    self.known(account, actor, at_ms, actor);
                    self.add_api_key(account, actor, key_id, enabled);
                }
                true
            }
        }
    }

    /// The user, added first (as a standard user) if unknown; stamps who changed it and when.
    fn known(&mut self, account: &str, who: &str, at_ms: i64, by: &str) -> &mut TeamUser {
        if self.user(account, who).is_none() {
            self.add_user(account, who, at_ms, by);
        }
        let user = self.user_mut(account, who).expect("present or just added");
        user.updated_by = by.to_owned();
        user.updated_ms = user.updated_ms.max(at_ms);
        user
    }

    fn edit(&mut self, account: &str, who: &str, f: impl FnOnce(&mut TeamUser)) -> bool {
        self.user_mut(account, who).map(f).is_some()
    }

    fn key_mut(&mut self, account: &str, key_id: &str) -> Option<&mut ApiKey> {
        let seq = self.keys.get(&key_slot(account, key_id))?;
        self.users
            .get_mut(seq)?
            .api_keys
            .iter_mut()
            .find(|k| k.key_id == key_id)
    }

    /// The account as first spelled, if known.
    pub(crate) fn known_account(&self, account: &str) -> Option<String> {
        self.accounts
            .iter()
            .find(|a| a.eq_ignore_ascii_case(account))
            .cloned()
    }
}

/// The part of an account name before the first `-`, upper-cased (`ACME-SUB1` gives `ACME`).
fn account_prefix(account: &str) -> String {
    account
        .split('-')
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

/// "Jane Doe" for `jane.doe7@acme.com`.
fn display_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .split(['.', '_', '-'])
        .map(|part| part.trim_end_matches(|c: char| c.is_ascii_digit()))
        .filter(|part| !part.is_empty())
        .map(capitalize)
        .collect::<Vec<_>>()
        .join(" ")
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A deterministic `custGuid` for an account.
pub(crate) fn cust_guid(account: &str) -> String {
    let seed = fnv1a(account.to_ascii_uppercase().as_bytes());
    format!(
        "{}_{:016X}{:016X}",
        account_prefix(account),
        mix64(seed ^ 0xC057),
        mix64(seed ^ 0x6D1D)
    )
}

/// `{"userGroupGuid", "userGroupName"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireGroup<'a> {
    user_group_guid: &'a str,
    user_group_name: &'a str,
}

/// A service user's key with its `status`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireKey<'a> {
    key_id: &'a str,
    status: &'static str,
}

/// One `TeamUsers` record (addendum A2.2); absent fields are left out, not null.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireTeamUser<'a> {
    user_guid: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    company: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_user_id: Option<&'a str>,
    user_enabled: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    user_groups: Vec<WireGroup<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_keys: Option<Vec<WireKey<'a>>>,
    last_login_time: i64,
}

/// A `TeamMembers` record's `props` (addendum A2.3): times are strings, except the logins,
/// which are integers (0 when never), as GO's test of integer time fields allows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireProps<'a> {
    first_name: &'a str,
    last_name: &'a str,
    company: &'a str,
    account_admin: bool,
    created_time: String,
    jit_created: bool,
    last_login_time: i64,
    last_session_created_time: i64,
    org_admin: bool,
    org_user: bool,
    updated_by: &'a str,
    updated_time: String,
}

/// One legacy `TeamMembers` record.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireTeamMember<'a> {
    cust_guid: String,
    user_guid: &'a str,
    user_name: &'a str,
    user_enabled: u8,
    props: WireProps<'a>,
}

/// One account of a `UserProfile`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireProfileAccount<'a> {
    admin: bool,
    account_name: String,
    cust_guid: String,
    user_guid: &'a str,
    user_enabled: u8,
}

/// The `UserProfile` record (addendum A2.4).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireProfile<'a> {
    username: &'a str,
    org_account: bool,
    url: String,
    org_admin: bool,
    org_user: bool,
    accounts: Vec<WireProfileAccount<'a>>,
}

impl TeamUser {
    /// The user as `TeamUsers` serves it.
    pub fn to_team_users_json(&self) -> serde_json::Value {
        serde_json::to_value(self.wire_team_user()).expect("a user always serializes")
    }

    fn wire_team_user(&self) -> WireTeamUser<'_> {
        let standard = self.kind == UserKind::Standard;
        WireTeamUser {
            user_guid: &self.user_guid,
            name: &self.name,
            email: self.email.as_deref(),
            company: standard.then_some(COMPANY),
            description: self.description.as_deref(),
            service_user_id: self.service_user_id.as_deref(),
            user_enabled: u8::from(self.enabled),
            kind: if standard {
                "StandardUser"
            } else {
                "ServiceUser"
            },
            user_groups: self
                .groups
                .iter()
                .map(|g| WireGroup {
                    user_group_guid: &g.guid,
                    user_group_name: &g.name,
                })
                .collect(),
            api_keys: (!standard).then(|| {
                self.api_keys
                    .iter()
                    .map(|k| WireKey {
                        key_id: &k.key_id,
                        status: if k.enabled { "ENABLED" } else { "DISABLED" },
                    })
                    .collect()
            }),
            last_login_time: self.last_login_ms.unwrap_or(0),
        }
    }

    /// The user as the legacy `TeamMembers` serves it (standard users only).
    fn wire_team_member(&self) -> WireTeamMember<'_> {
        let (first_name, last_name) = self.name.split_once(' ').unwrap_or((&self.name, ""));
        WireTeamMember {
            cust_guid: cust_guid(&self.account),
            user_guid: &self.user_guid,
            user_name: self.handle(),
            user_enabled: u8::from(self.enabled),
            props: WireProps {
                first_name,
                last_name,
                company: COMPANY,
                account_admin: self.is_admin(),
                created_time: format_millis(self.created_ms),
                jit_created: false,
                last_login_time: self.last_login_ms.unwrap_or(0),
                last_session_created_time: self.last_login_ms.unwrap_or(0),
                org_admin: false,
                org_user: false,
                updated_by: &self.updated_by,
                updated_time: format_millis(self.updated_ms),
            },
        }
    }
}

impl UserInventory {
    /// `{"data":[...]}` of `TeamUsers` for `account`.
    pub(crate) fn team_users_body(&self, account: &str) -> String {
        let users: Vec<WireTeamUser<'_>> = self
            .users(account)
            .into_iter()
            .map(TeamUser::wire_team_user)
            .collect();
        data_body(&users)
    }

    /// `{"data":{...}}` of `TeamUsers/{userGuid}`, if the account has that user.
    pub(crate) fn team_user_body(&self, account: &str, guid: &str) -> Option<String> {
        let user = self
            .users(account)
            .into_iter()
            .find(|u| u.user_guid.eq_ignore_ascii_case(guid))?;
        Some(data_body(&user.wire_team_user()))
    }

    /// `{"data":[...]}` of the legacy `TeamMembers` for `account`: standard users only.
    pub(crate) fn team_members_body(&self, account: &str) -> String {
        let members: Vec<WireTeamMember<'_>> = self
            .users(account)
            .into_iter()
            .filter(|u| u.kind == UserKind::Standard)
            .map(TeamUser::wire_team_member)
            .collect();
        data_body(&members)
    }

    /// `{"data":[{...}]}` of `UserProfile`: the caller and every account, the primary first.
    pub(crate) fn user_profile_body(&self, primary_account: &str) -> String {
        let accounts = self
            .accounts
            .iter()
            .map(|account| {
                let me = self.user(account, &self.caller);
                WireProfileAccount {
                    admin: me.is_some_and(TeamUser::is_admin),
                    account_name: account.to_ascii_uppercase(),
                    cust_guid: cust_guid(account),
                    user_guid: me.map_or("", |u| u.user_guid.as_str()),
                    user_enabled: u8::from(me.is_some_and(|u| u.enabled)),
                }
            })
            .collect();
        let profile = WireProfile {
            username: &self.caller,
            org_account: true,
            url: format!("{}.lacework.net", primary_account.to_ascii_lowercase()),
            org_admin: true,
            org_user: false,
            accounts,
        };
        data_body(&[profile])
    }
}

fn data_body<T: Serialize + ?Sized>(data: &T) -> String {
    #[derive(Serialize)]
    struct Data<'a, T: ?Sized> {
        data: &'a T,
    }
    serde_json::to_string(&Data { data }).expect("inventory always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> UserInventory {
        UserInventory::new("ACME", DEFAULT_CALLER)
    }

    #[test]
    fn the_caller_is_an_admin_of_every_account() {
        let mut inv = inventory();
        inv.add_account("ACME-SUB1");
        inv.add_account("acme-sub1");
        assert_eq!(inv.accounts(), ["ACME", "ACME-SUB1"]);
        for account in ["ACME", "acme-sub1"] {
            let me = inv.user(account, "ADMIN@acme.com").unwrap();
            assert!(me.is_admin() && me.enabled);
        }
    }

    #[test]
    fn changes_follow_the_audit_log() {
        let mut inv = inventory();
        let bob = "bob.smith1@acme.com";
        let change = |user: &str| UserChange::Create {
            user: user.to_owned(),
        };
        assert!(inv.apply("ACME", "admin@acme.com", &change(bob), 10));
        let guid = inv.user("ACME", bob).unwrap().user_guid.clone();
        assert!(guid.starts_with("ACME_") && guid.len() == 37, "{guid}");
        assert_eq!(inv.user("ACME", bob).unwrap().name, "Bob Smith");
        let disable = UserChange::Disable {
            user: bob.to_owned(),
        };
        inv.apply("ACME", "admin@acme.com", &disable, 20);
        assert!(!inv.user("ACME", bob).unwrap().enabled);
        let role = UserChange::SetRole {
            user: bob.to_owned(),
            role: UserGroup::admin(),
        };
        inv.apply("ACME", "admin@acme.com", &role, 30);
        let add = UserChange::AddToGroup {
            user: bob.to_owned(),
            group: UserGroup::custom("soc-analysts"),
        };
        inv.apply("ACME", "admin@acme.com", &add, 31);
        let names: Vec<&str> = inv
            .user("ACME", bob)
            .unwrap()
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, ["Admin", "soc-analysts"]);
        inv.apply(
            "ACME",
            "admin@acme.com",
            &UserChange::Delete {
                user: bob.to_owned(),
            },
            40,
        );
        assert!(inv.user("ACME", bob).is_none());
        inv.apply("ACME", "admin@acme.com", &change(bob), 50);
        assert_ne!(inv.user("ACME", bob).unwrap().user_guid, guid, "re-created");
        // Unknown users existed before the window; deleting nobody changes nothing.
        let enable = UserChange::Enable {
            user: "old.timer9@acme.com".to_owned(),
        };
        assert!(inv.apply("ACME-SUB2", "admin@acme.com", &enable, 60));
        assert!(
            inv.user("acme-sub2", "old.timer9@acme.com")
                .unwrap()
                .enabled
        );
        assert!(inv.accounts().contains(&"ACME-SUB2".to_owned()));
        let gone = UserChange::Delete {
            user: "nobody@acme.com".to_owned(),
        };
        assert!(!inv.apply("ACME", "admin@acme.com", &gone, 70));
    }

    #[test]
    fn api_keys_belong_to_their_creator_and_change_status() {
        let mut inv = inventory();
        inv.add_service_user("ACME", "ci-bot", 0, DEFAULT_CALLER);
        let create = UserChange::CreateApiKey {
            owner: "ci-bot".to_owned(),
            key_id: "ACME_K1".to_owned(),
        };
        inv.apply("ACME", "admin@acme.com", &create, 1);
        let disable = UserChange::DisableApiKey {
            key_id: "ACME_K1".to_owned(),
        };
        inv.apply("ACME", "admin@acme.com", &disable, 2);
        let (owner, key) = inv.api_key("ACME", "ACME_K1").unwrap();
        assert_eq!(owner.name, "ci-bot");
        assert!(!key.enabled);
        let json = owner.to_team_users_json();
        assert_eq!(json["type"], "ServiceUser");
        assert_eq!(json["apiKeys"][0]["status"], "DISABLED");
        assert!(json.get("email").is_none());
        assert!(json["serviceUserId"].as_str().unwrap().len() == 32);
        // A key the inventory never saw goes to whoever acted on it.
        let enable = UserChange::EnableApiKey {
            key_id: "ACME_K2".to_owned(),
        };
        inv.apply("ACME", "ops@acme.com", &enable, 3);
        assert_eq!(
            inv.api_key("ACME", "ACME_K2").unwrap().0.handle(),
            "ops@acme.com"
        );
        assert!(inv.apply(
            "ACME",
            "x",
            &UserChange::DeleteApiKey {
                key_id: "ACME_K1".to_owned()
            },
            4
        ));
        assert!(inv.api_key("ACME", "ACME_K1").is_none());
    }

    #[test]
    fn roles_by_label() {
        assert_eq!(UserGroup::role("user"), UserGroup::read_only());
        assert_eq!(UserGroup::admin().guid, "LACEWORK_USER_GROUP_ADMIN");
        assert_eq!(UserGroup::power_user().label(), "POWER_USER");
        assert!(!UserGroup::custom("soc").is_role());
        assert_eq!(UserGroup::custom("soc").label(), "soc");
    }

    #[test]
    fn users_are_found_by_handle_guid_or_service_id_and_take_their_keys_along() {
        let mut inv = inventory();
        inv.add_user("ACME", "Gail.Ray2@acme.com", 0, DEFAULT_CALLER);
        let guid = inv
            .user("acme", "gail.ray2@ACME.com")
            .unwrap()
            .user_guid
            .clone();
        assert_eq!(
            inv.user("ACME", &guid).unwrap().handle(),
            "Gail.Ray2@acme.com"
        );
        let bot = inv.add_service_user("ACME", "ci-bot", 0, DEFAULT_CALLER);
        let service_id = bot.service_user_id.clone().unwrap();
        assert!(inv.set_enabled("ACME", &service_id, false));
        assert!(!inv.user("ACME", "ci-bot").unwrap().enabled);
        assert!(inv.add_api_key("ACME", "ci-bot", "K1", true));
        // A key given to someone else moves.
        assert!(inv.add_api_key("ACME", "gail.ray2@acme.com", "K1", false));
        assert!(inv.user("ACME", "ci-bot").unwrap().api_keys.is_empty());
        assert!(!inv.add_api_key("ACME", "nobody@acme.com", "K2", true));
        assert!(inv.remove_user("ACME", &guid));
        assert!(
            inv.api_key("ACME", "K1").is_none(),
            "keys go with their owner"
        );
        assert!(!inv.set_api_key_enabled("ACME", "K1", true));
        assert_eq!(inv.all_users().len(), 2, "the caller and ci-bot");
    }
}
