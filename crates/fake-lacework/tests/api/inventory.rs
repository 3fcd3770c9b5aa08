//! The user inventory endpoints: TeamUsers, legacy TeamMembers and UserProfile, and how the
//! inventory follows (or, on purpose, does not follow) the audit log.

use std::collections::HashMap;

use chrono::Utc;
use fake_lacework::{
    BadBody, FakeConfig, FakeRecord, Fault, GenerateSpec, UserChange, UserGroup, Wording,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{Api, at};

impl Api {
    /// `GET path` with the token and, optionally, `Account-Name`.
    async fn inventory_get(&self, path: &str, account: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.get(&self.url(path));
        if let Some(account) = account {
            req = req.header("Account-Name", account);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn team_users(&self, account: Option<&str>) -> Vec<Value> {
        let (status, body) = self.inventory_get("/api/v2/TeamUsers", account).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().expect("data array").clone()
    }
}

fn by_handle(users: &[Value]) -> HashMap<String, Value> {
    users
        .iter()
        .map(|u| {
            let handle = u.get("email").unwrap_or(&u["name"]).as_str().unwrap();
            (handle.to_owned(), u.clone())
        })
        .collect()
}

#[tokio::test]
async fn inventory_endpoints_need_a_token() {
    let api = Api::default().await;
    for path in [
        "/api/v2/TeamUsers",
        "/api/v2/TeamMembers",
        "/api/v2/UserProfile",
    ] {
        let resp = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let resp = api
            .http
            .get(api.url(path))
            .bearer_auth("_not_a_token")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        // The GO SDK's bare token works too.
        let resp = api
            .http
            .get(api.url(path))
            .header("Authorization", &api.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn team_users_serve_standard_and_service_users() {
    let api = Api::default().await;
    api.fake.edit_inventory(|inv| {
        inv.add_user("ACME", "bob.smith3@acme.com", 1_000, "admin@acme.com");
        assert!(inv.set_enabled("ACME", "bob.smith3@acme.com", false));
        assert!(inv.add_to_group(
            "acme",
            "BOB.smith3@acme.com",
            UserGroup::custom("soc-analysts")
        ));
        inv.add_service_user("ACME", "ci-bot", 2_000, "admin@acme.com");
        assert!(inv.add_api_key("ACME", "ci-bot", "ACME_KEY1", true));
        assert!(inv.add_api_key("ACME", "ci-bot", "ACME_KEY2", false));
        inv.add_user("ACME-SUB1", "carol.lee4@acme.com", 3_000, "admin@acme.com");
    });
    let users = by_handle(&api.team_users(None).await);
    assert_eq!(users.len(), 3, "the caller, bob and ci-bot: {users:?}");
    let bob = &users["bob.smith3@acme.com"];
    assert_eq!(bob["type"], "StandardUser");
    assert_eq!(bob["name"], "Bob Smith");
    assert_eq!(bob["userEnabled"], 0);
    assert!(bob.get("serviceUserId").is_none() && bob.get("apiKeys").is_none());
    assert!(bob["userGuid"].as_str().unwrap().starts_with("ACME_"));
    assert_eq!(
        bob["userGroups"],
        serde_json::json!([
            {"userGroupGuid": "LACEWORK_USER_GROUP_READ_ONLY_USER", "userGroupName": "Read-only User"},
            {"userGroupGuid": UserGroup::custom("soc-analysts").guid, "userGroupName": "soc-analysts"},
        ])
    );
    let bot = &users["ci-bot"];
    assert_eq!(bot["type"], "ServiceUser");
    assert_eq!(bot["userEnabled"], 1);
    assert!(bot.get("email").is_none());
    assert!(!bot["serviceUserId"].as_str().unwrap().is_empty());
    assert_eq!(
        bot["apiKeys"],
        serde_json::json!([
            {"keyId": "ACME_KEY1", "status": "ENABLED"},
            {"keyId": "ACME_KEY2", "status": "DISABLED"},
        ])
    );
    let caller = &users["admin@acme.com"];
    assert_eq!(
        caller["userGroups"][0]["userGroupGuid"],
        "LACEWORK_USER_GROUP_ADMIN"
    );
    // Account-Name picks the account, case-insensitively; Org-Access does not widen the list.
    let sub = by_handle(&api.team_users(Some("acme-sub1")).await);
    assert!(sub.contains_key("carol.lee4@acme.com") && sub.len() == 2);
    let org = api
        .get(&api.url("/api/v2/TeamUsers"))
        .header("Org-Access", "true")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(org["data"].as_array().unwrap().len(), 3);
    assert!(api.team_users(Some("NOSUCH")).await.is_empty());
    // The trailing-slash list and a single user by GUID.
    let (status, slash) = api.inventory_get("/api/v2/TeamUsers/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(slash["data"].as_array().unwrap().len(), 3);
    let guid = bob["userGuid"].as_str().unwrap();
    let (status, one) = api
        .inventory_get(&format!("/api/v2/TeamUsers/{guid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one["data"], bob);
    let (status, _) = api.inventory_get("/api/v2/TeamUsers/NOPE", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn team_members_serve_the_legacy_shape_and_can_replace_a_refused_team_users() {
    let api = Api::default().await;
    api.fake.edit_inventory(|inv| {
        inv.add_user("ACME", "dave.kim5@acme.com", 1_000, "admin@acme.com");
        inv.add_service_user("ACME", "ci-bot", 2_000, "admin@acme.com");
    });
    api.fake.set_refuse_team_users(true);
    let (status, body) = api.inventory_get("/api/v2/TeamUsers", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["message"].as_str().unwrap().contains("TeamUsers"));
    let (status, _) = api.inventory_get("/api/v2/TeamUsers/x", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api.inventory_get("/api/v2/TeamMembers", None).await;
    assert_eq!(status, StatusCode::OK);
    let members = body["data"].as_array().unwrap();
    assert_eq!(members.len(), 2, "standard users only: {body}");
    let dave = members
        .iter()
        .find(|m| m["userName"] == "dave.kim5@acme.com")
        .unwrap();
    assert_eq!(dave["userEnabled"], 1);
    assert!(dave["custGuid"].as_str().unwrap().starts_with("ACME_"));
    let props = &dave["props"];
    assert_eq!(props["firstName"], "Dave");
    assert_eq!(props["lastName"], "Kim");
    assert_eq!(props["accountAdmin"], false);
    assert_eq!(props["createdTime"], "1970-01-01T00:00:01.000Z");
    assert_eq!(props["lastLoginTime"], 0);
    assert_eq!(props["updatedBy"], "admin@acme.com");
    let admin = members
        .iter()
        .find(|m| m["userName"] == "admin@acme.com")
        .unwrap();
    assert_eq!(admin["props"]["accountAdmin"], true);
    // The other way round: an RBAC account refuses the legacy endpoint.
    api.fake.set_refuse_team_users(false);
    api.fake.set_refuse_team_members(true);
    assert_eq!(
        api.inventory_get("/api/v2/TeamMembers", None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.inventory_get("/api/v2/TeamUsers", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn user_profile_lists_the_callers_accounts() {
    let api = Api::default().await;
    api.fake.edit_inventory(|inv| inv.add_account("ACME-SUB1"));
    let (status, body) = api.inventory_get("/api/v2/UserProfile", None).await;
    assert_eq!(status, StatusCode::OK);
    let profile = &body["data"][0];
    assert_eq!(profile["username"], "admin@acme.com");
    assert_eq!(profile["orgAccount"], true);
    assert_eq!(profile["url"], "acme.lacework.net");
    let accounts = profile["accounts"].as_array().unwrap();
    let names: Vec<&str> = accounts
        .iter()
        .map(|a| a["accountName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ACME", "ACME-SUB1"]);
    for a in accounts {
        assert_eq!(a["admin"], true);
        assert_eq!(a["userEnabled"], 1);
        assert!(!a["custGuid"].as_str().unwrap().is_empty());
        assert!(!a["userGuid"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn recorded_changes_reach_both_the_audit_log_and_the_inventory() {
    let api = Api::default().await;
    let t0 = at("2026-01-05T10");
    let fake = &api.fake;
    let create = UserChange::Create {
        user: "erin.wu6@acme.com".to_owned(),
    };
    let record = fake.record_user_change("ACME", "it.admin@acme.com", &create, t0);
    assert_eq!(record.expected_type.as_deref(), Some("USER_CREATED"));
    assert_eq!(record.expected_target.as_deref(), Some("erin.wu6@acme.com"));
    assert_eq!(
        record.json["eventDescription"],
        "User it.admin@acme.com created user erin.wu6@acme.com in ACME account"
    );
    let role = UserChange::SetRole {
        user: "erin.wu6@acme.com".to_owned(),
        role: UserGroup::admin(),
    };
    fake.record_user_change(
        "ACME",
        "it.admin@acme.com",
        &role,
        t0 + chrono::Duration::minutes(1),
    );
    let key = UserChange::CreateApiKey {
        owner: "erin.wu6@acme.com".to_owned(),
        key_id: "ACME_ERINKEY".to_owned(),
    };
    let key_record = fake.record_user_change(
        "ACME",
        "erin.wu6@acme.com",
        &key,
        t0 + chrono::Duration::minutes(2),
    );
    assert_eq!(key_record.expected_type.as_deref(), Some("API_KEY_CREATED"));
    assert_eq!(key_record.expected_target, None);
    let rows = api.rows(api.audit("2026-01-05", "2026-01-06")).await;
    assert_eq!(rows.len(), 3);
    let users = by_handle(&api.team_users(None).await);
    let erin = &users["erin.wu6@acme.com"];
    assert_eq!(erin["userGroups"][0]["userGroupName"], "Admin");
    let inventory = fake.inventory();
    let (owner, key) = inventory.api_key("ACME", "ACME_ERINKEY").unwrap();
    assert_eq!((owner.handle(), key.enabled), ("erin.wu6@acme.com", true));

    // A silent change: the inventory moves, the audit log does not.
    let before = fake.record_count();
    let disable = UserChange::Disable {
        user: "erin.wu6@acme.com".to_owned(),
    };
    assert!(fake.apply_user_change_silently("ACME", "rogue@acme.com", &disable, Utc::now()));
    fake.edit_inventory(|inv| {
        inv.add_user("ACME", "ghost.user9@acme.com", 0, "nobody");
    });
    assert_eq!(fake.record_count(), before);
    let users = by_handle(&api.team_users(None).await);
    assert_eq!(users["erin.wu6@acme.com"]["userEnabled"], 0);
    assert!(users.contains_key("ghost.user9@acme.com"));
    assert!(fake.expected_lifecycle(0, i64::MAX, None).len() == 3);
}

#[tokio::test]
async fn inserted_user_records_move_the_inventory() {
    let api = Api::default().await;
    let t = at("2026-01-05");
    let user = Some("frank.ng7@acme.com");
    api.fake.insert(FakeRecord::actor_first(
        "USER_CREATED",
        0,
        "ACME",
        "admin@acme.com",
        user,
        t,
    ));
    assert!(by_handle(&api.team_users(None).await).contains_key("frank.ng7@acme.com"));
    api.fake.insert(FakeRecord::lifecycle(
        "USER_DISABLED",
        "ACME",
        "admin@acme.com",
        user,
        t,
    ));
    assert_eq!(
        by_handle(&api.team_users(None).await)["frank.ng7@acme.com"]["userEnabled"],
        0
    );
    api.fake.insert(
        FakeRecord::actor_first("USER_DELETED", 1, "ACME", "admin@acme.com", user, t)
            .without_user_action(),
    );
    assert!(!by_handle(&api.team_users(None).await).contains_key("frank.ng7@acme.com"));
    // Look-alikes change nothing.
    let n = api.team_users(None).await.len();
    api.fake.insert(FakeRecord::look_alike(
        "User Group Created",
        "ACME",
        "admin@acme.com",
        t,
    ));
    assert_eq!(api.team_users(None).await.len(), n);
}

#[tokio::test]
async fn generated_records_and_the_inventory_agree() {
    let api = Api::default().await;
    api.fake.generate(&GenerateSpec {
        seed: 8,
        start: at("2026-01-01"),
        end: at("2026-01-02"),
        count: 3000,
        n_users: 2000,
        lifecycle_share: 0.5,
        wording: Wording::ActorFirst,
        ..GenerateSpec::default()
    });
    // Replaying the audit log decides whether each user exists and is enabled. A change to a
    // user the log has not shown is to one that existed before the window, so it exists after.
    // Users who also act (log in, create keys) are left out: the inventory adds actors too.
    let records = api.fake.records();
    let actors: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r.json["userName"].as_str().unwrap())
        .collect();
    let mut last: HashMap<(String, String), &'static str> = HashMap::new();
    for r in &records {
        let (Some(kind), Some(target)) = (r.expected_type.as_deref(), r.expected_target.clone())
        else {
            continue;
        };
        if actors.contains(target.as_str()) {
            continue;
        }
        let key = (r.account.to_ascii_uppercase(), target);
        let state = match (kind, last.get(&key).copied()) {
            ("USER_CREATED" | "USER_ENABLED", _) => "enabled",
            ("USER_DISABLED", _) => "disabled",
            ("USER_DELETED", _) => "gone",
            ("USER_ROLE_CHANGED", None | Some("gone")) => "enabled",
            ("USER_ROLE_CHANGED", Some(state)) => state,
            (other, _) => panic!("{other} names a user who never acts"),
        };
        last.insert(key, state);
    }
    assert!(last.len() > 300, "{}", last.len());
    let inventory = api.fake.inventory();
    assert_eq!(inventory.accounts(), ["ACME", "ACME-SUB1", "ACME-SUB2"]);
    let mut checked = 0;
    for ((account, user), state) in &last {
        let found = inventory.user(account, user);
        match *state {
            "gone" => assert!(found.is_none(), "{user} in {account} was deleted"),
            "enabled" => assert!(found.unwrap().enabled, "{user} in {account}"),
            _ => assert!(!found.unwrap().enabled, "{user} in {account}"),
        }
        checked += 1;
    }
    assert_eq!(checked, last.len());
    // And the endpoint serves that inventory.
    for account in inventory.accounts() {
        let served = api.team_users(Some(account)).await;
        assert_eq!(served.len(), inventory.users(account).len(), "{account}");
    }
}

#[tokio::test]
async fn inventory_faults_are_injected_and_cleared() {
    let api = Api::start(FakeConfig::default()).await;
    api.fake.fail_next_inventory(1, Fault::Status(503));
    api.fake
        .fail_next_inventory(1, Fault::BadBody(BadBody::TruncatedJson));
    let (status, _) = api.inventory_get("/api/v2/TeamUsers", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let resp = api
        .get(&api.url("/api/v2/UserProfile"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.json::<Value>().await.is_err(), "truncated");
    api.fake.fail_next_inventory(5, Fault::Status(500));
    api.fake.clear_faults();
    assert_eq!(
        api.inventory_get("/api/v2/TeamMembers", None).await.0,
        StatusCode::OK
    );
    // AuditLogs faults do not hit the inventory, nor the other way round.
    api.fake.fail_next(1, Fault::Status(500));
    assert_eq!(
        api.inventory_get("/api/v2/TeamUsers", None).await.0,
        StatusCode::OK
    );
}
