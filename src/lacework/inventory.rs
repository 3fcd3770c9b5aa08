//! The user inventory: `GET /api/v2/TeamUsers`, falling back to the legacy `TeamMembers`
//! when TeamUsers is refused (accounts not on the new RBAC model). Read leniently: no
//! official example of either list exists (see `../shared/lacework-api.md`, A2).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lacework::{Error, LaceworkClient, Priority};

/// The user list of the new RBAC model.
pub const TEAM_USERS_PATH: &str = "/api/v2/TeamUsers";
/// The legacy user list.
pub const TEAM_MEMBERS_PATH: &str = "/api/v2/TeamMembers";
/// The caller's profile: the accounts the key reaches.
pub const USER_PROFILE_PATH: &str = "/api/v2/UserProfile";

/// One user as the inventory lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryUser {
    /// `userGuid`: the key users are compared by.
    pub guid: String,
    /// What audit records name the user by: a standard user's `email` (or `userName`), a
    /// service user's `name`.
    pub name: String,
    /// `userEnabled`.
    pub enabled: bool,
    /// `userGroups[].userGroupName` (or the guid): role membership.
    pub groups: BTreeSet<String>,
    /// A service user's API keys: key id to status.
    pub api_keys: BTreeMap<String, String>,
}

impl LaceworkClient {
    /// Every user of the account: TeamUsers, or TeamMembers when TeamUsers is refused (401,
    /// 403, 404). Returns the users and the endpoint that answered.
    pub async fn user_inventory(
        &self,
        priority: Priority,
    ) -> Result<(Vec<InventoryUser>, &'static str), Error> {
        match self.get_document(TEAM_USERS_PATH, priority).await {
            Ok(body) => Ok((parse_users(&body, TEAM_USERS_PATH)?, TEAM_USERS_PATH)),
            Err(error) if is_refusal(&error) => {
                let body = self.get_document(TEAM_MEMBERS_PATH, priority).await?;
                Ok((parse_users(&body, TEAM_MEMBERS_PATH)?, TEAM_MEMBERS_PATH))
            }
            Err(error) => Err(error),
        }
    }
}

impl LaceworkClient {
    /// The accounts the key reaches (`UserProfile`, `data[].accounts[].accountName`), in the
    /// order listed.
    pub async fn profile_accounts(&self, priority: Priority) -> Result<Vec<String>, Error> {
        let body = self.get_document(USER_PROFILE_PATH, priority).await?;
        let document: Value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            endpoint: USER_PROFILE_PATH.to_string(),
            message: format!("not JSON: {e}"),
        })?;
        let profiles = match document.get("data") {
            Some(Value::Array(list)) => list.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(profiles
            .iter()
            .flat_map(|p| {
                p.get("accounts")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|a| {
                a.get("accountName")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect())
    }
}

/// Whether the endpoint is refused to this key (rights, or not on this account's model).
pub fn is_refusal(error: &Error) -> bool {
    matches!(error.status(), Some(401 | 403 | 404))
}

/// The users of a TeamUsers or TeamMembers answer (`{"data": [...]}`).
fn parse_users(body: &[u8], endpoint: &str) -> Result<Vec<InventoryUser>, Error> {
    let decode = |message: String| Error::Decode {
        endpoint: endpoint.to_string(),
        message,
    };
    let document: Value =
        serde_json::from_slice(body).map_err(|e| decode(format!("not JSON: {e}")))?;
    let Some(list) = document.get("data").and_then(Value::as_array) else {
        return Err(decode("no `data` array".into()));
    };
    Ok(list.iter().filter_map(user).collect())
}

/// One user, or `None` for an entry without a guid.
fn user(entry: &Value) -> Option<InventoryUser> {
    let text = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let guid = text("userGuid")?;
    // Audit records name a standard user by e-mail and a service user by its name.
    let service = entry.get("serviceUserId").is_some()
        || entry.get("type").and_then(Value::as_str) == Some("ServiceUser");
    let order: &[&str] = if service {
        &["name", "serviceUserId"]
    } else {
        &["email", "userName", "username", "name"]
    };
    let name = order
        .iter()
        .find_map(|key| text(key))
        .unwrap_or_else(|| guid.clone());
    let mut groups: BTreeSet<String> = entry
        .get("userGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|group| {
            ["userGroupName", "userGroupGuid"]
                .into_iter()
                .find_map(|key| group.get(key).and_then(Value::as_str))
                .map(str::to_string)
        })
        .collect();
    // The legacy list carries admin flags instead of groups.
    if let Some(props) = entry.get("props") {
        for flag in ["accountAdmin", "orgAdmin", "orgUser"] {
            if props.get(flag).is_some_and(truthy) {
                groups.insert(flag.to_string());
            }
        }
    }
    let api_keys = entry
        .get("apiKeys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|key| {
            let id = ["keyId", "accessKeyId", "id"]
                .into_iter()
                .find_map(|k| key.get(k).and_then(Value::as_str))?;
            let status = match key.get("status") {
                Some(Value::String(status)) => status.to_ascii_lowercase(),
                Some(other) if truthy(other) => "active".into(),
                Some(_) => "inactive".into(),
                None => key
                    .get("enabled")
                    .map_or("active", |e| if truthy(e) { "active" } else { "inactive" })
                    .into(),
            };
            Some((id.to_string(), status))
        })
        .collect();
    Some(InventoryUser {
        guid,
        name,
        enabled: entry.get("userEnabled").is_none_or(truthy),
        groups,
        api_keys,
    })
}

/// `1`, `true`, `"1"`, `"true"`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_users_and_team_members_are_read_leniently() {
        let team_users = br#"{"data":[
            {"userGuid":"G1","name":"Bob","email":"bob@acme.com","userEnabled":1,
             "userGroups":[{"userGroupGuid":"LACEWORK_USER_GROUP_ADMIN","userGroupName":"Admin"}]},
            {"userGuid":"G2","name":"ci","serviceUserId":"svc-ci","userEnabled":"0",
             "apiKeys":[{"keyId":"ACME_1","status":"Active"},{"keyId":"ACME_2","enabled":false}]},
            {"name":"no guid"}
        ]}"#;
        let users = parse_users(team_users, TEAM_USERS_PATH).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, "bob@acme.com");
        assert!(users[0].enabled);
        assert_eq!(users[0].groups, BTreeSet::from(["Admin".to_string()]));
        assert_eq!(
            users[1].name, "ci",
            "a service user by its name, as audit records"
        );
        assert!(!users[1].enabled);
        assert_eq!(users[1].api_keys["ACME_1"], "active");
        assert_eq!(users[1].api_keys["ACME_2"], "inactive");

        let team_members =
            br#"{"data":[{"custGuid":"C","userGuid":"G3","username":"carol@acme.com",
            "userEnabled":1,"props":{"accountAdmin":true,"orgAdmin":false,"createdTime":0}}]}"#;
        let users = parse_users(team_members, TEAM_MEMBERS_PATH).unwrap();
        assert_eq!(users[0].name, "carol@acme.com");
        assert_eq!(
            users[0].groups,
            BTreeSet::from(["accountAdmin".to_string()])
        );

        assert!(parse_users(b"{\"data\":{}}", TEAM_USERS_PATH).is_err());
        assert!(parse_users(b"<html>", TEAM_USERS_PATH).is_err());
    }
}
