//! Token exchange and bearer authentication.

use std::time::Duration;

use fake_lacework::{FakeConfig, FakeLacework, parse_query_time};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Api, new_token};

async fn post_token(fake: &FakeLacework, secret: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = crate::common::client().post(format!("{}/api/v2/access/tokens", fake.base_url()));
    if let Some(s) = secret {
        req = req.header("X-LW-UAKS", s);
    }
    let resp = req.json(&body).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn good_body(fake: &FakeLacework) -> Value {
    json!({"keyId": fake.config().key_id, "expiryTime": 3600})
}

#[tokio::test]
async fn issues_201_with_millisecond_expiry_and_opaque_token() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    let secret = fake.config().secret.clone();
    let before = chrono::Utc::now().timestamp_millis();
    let (status, body) = post_token(&fake, Some(&secret), good_body(&fake)).await;
    assert_eq!(status, StatusCode::CREATED);
    let obj = body.as_object().unwrap();
    assert_eq!(
        obj.len(),
        2,
        "flat object with exactly expiresAt and token: {body}"
    );
    let expires = body["expiresAt"].as_str().unwrap();
    assert_eq!(expires.len(), 24, "yyyy-MM-ddTHH:mm:ss.SSSZ: {expires}");
    let expires_ms = parse_query_time(expires).unwrap();
    assert!((expires_ms - before - 3_600_000).abs() < 5_000, "{expires}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 33);
    assert!(token.starts_with('_') && token[1..].bytes().all(|c| c.is_ascii_hexdigit()));
    // expiryTime is optional and defaults to an hour.
    let (status, body) =
        post_token(&fake, Some(&secret), json!({"keyId": fake.config().key_id})).await;
    assert_eq!(status, StatusCode::CREATED);
    let expires_ms = parse_query_time(body["expiresAt"].as_str().unwrap()).unwrap();
    assert!((expires_ms - before - 3_600_000).abs() < 5_000);
}

#[tokio::test]
async fn rejects_a_missing_or_wrong_secret() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    for secret in [None, Some("wrong"), Some("")] {
        let (status, body) = post_token(&fake, secret, good_body(&fake)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{secret:?}");
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn rejects_a_wrong_or_missing_key_id() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    let secret = fake.config().secret.clone();
    let (status, _) = post_token(
        &fake,
        Some(&secret),
        json!({"keyId": "ACME_OTHER", "expiryTime": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = post_token(&fake, Some(&secret), json!({"expiryTime": 60})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Access Key is null.");
}

#[tokio::test]
async fn rejects_unknown_body_keys() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    let secret = fake.config().secret.clone();
    let body = json!({"keyId": fake.config().key_id, "expiryTime": 60, "scope": "all"});
    let (status, body) = post_token(&fake, Some(&secret), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"message": "key scope is unrecognized"}));
}

#[tokio::test]
async fn validates_the_expiry_range() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    let secret = fake.config().secret.clone();
    let key = fake.config().key_id.clone();
    for bad in [
        json!(0),
        json!(-5),
        json!(86_401),
        json!("3600"),
        json!(1.5),
        json!(null),
    ] {
        let (status, body) = post_token(
            &fake,
            Some(&secret),
            json!({"keyId": key, "expiryTime": bad}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body, json!({"message": "expiryTime out of range"}));
    }
    for good in [1, 86_400] {
        let (status, _) = post_token(
            &fake,
            Some(&secret),
            json!({"keyId": key, "expiryTime": good}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{good}");
    }
}

#[tokio::test]
async fn tokens_expire_on_the_wall_clock() {
    let api = Api::default().await;
    let (status, body) = post_token(
        &api.fake,
        Some(&api.fake.config().secret),
        json!({"keyId": api.fake.config().key_id, "expiryTime": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let short = body["token"].as_str().unwrap().to_owned();
    let req = || {
        api.http
            .get(api.url("/api/v2/AuditLogs"))
            .bearer_auth(&short)
    };
    assert_eq!(req().send().await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let resp = req().send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    // The long-lived token is unaffected.
    let ok = api.get(&api.url("/api/v2/AuditLogs")).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn accepts_bearer_and_raw_tokens_and_rejects_the_rest() {
    let api = Api::default().await;
    let url = api.url("/api/v2/AuditLogs");
    let with_auth = |value: String| api.http.get(&url).header("Authorization", value).send();
    for ok in [
        format!("Bearer {}", api.token),
        format!("bearer {}", api.token),
        api.token.clone(),
    ] {
        assert_eq!(
            with_auth(ok.clone()).await.unwrap().status(),
            StatusCode::OK,
            "{ok}"
        );
    }
    for bad in [
        "Bearer _0123456789abcdef0123456789abcdef".to_owned(),
        "Bearer ".to_owned(),
        "garbage".to_owned(),
    ] {
        let resp = with_auth(bad.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    }
    let missing = api.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    // The raw header value is logged as sent.
    let logged: Vec<_> = api
        .fake
        .requests()
        .into_iter()
        .filter_map(|r| r.authorization)
        .collect();
    assert!(logged.contains(&api.token));
    assert!(logged.contains(&format!("Bearer {}", api.token)));
}

#[tokio::test]
async fn counts_token_requests_and_logs_uaks_presence_not_value() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    let http = crate::common::client();
    new_token(&http, &fake).await;
    post_token(&fake, None, good_body(&fake)).await;
    assert_eq!(fake.token_requests(), 2);
    let log = fake.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("POST", "/api/v2/access/tokens")
    );
    assert_eq!((log[0].status, log[0].uaks_present), (201, true));
    assert_eq!((log[1].status, log[1].uaks_present), (401, false));
    assert!(!format!("{log:?}").contains(&fake.config().secret));
}
