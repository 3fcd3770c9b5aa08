//! Injected faults, token invalidation and shutdown.

use std::time::{Duration, Instant};

use fake_lacework::{BadBody, FakeConfig, Fault};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Api, at_ms, ms, new_token, noise};

fn fill(api: &Api, n: i64) {
    let base = ms("2026-01-10T08:00:00.000Z");
    for i in 0..n {
        api.fake.insert(noise("ACME", at_ms(base + i * 1000)));
    }
}

async fn small(page_size: usize, n: i64) -> Api {
    let api = Api::start(FakeConfig {
        page_size,
        ..FakeConfig::default()
    })
    .await;
    fill(&api, n);
    api
}

#[tokio::test]
async fn rate_limited_fault_answers_429_once_per_unit() {
    let api = small(100, 3).await;
    api.fake.fail_next(2, Fault::RateLimited { reset_secs: 17 });
    for _ in 0..2 {
        let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = resp.headers();
        assert_eq!(h["ratelimit-reset"], "17");
        assert_eq!(h["ratelimit-remaining"], "0");
        assert_eq!(h["ratelimit-limit"], "480");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"message": "Rate limit exceeded"})
        );
    }
    let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_ne!(resp.headers()["ratelimit-remaining"], "0");
}

#[tokio::test]
async fn status_faults_send_json_or_an_nginx_page() {
    let api = small(100, 3).await;
    api.fake.fail_next(1, Fault::Status(500));
    api.fake.fail_next(1, Fault::Status(503));
    api.fake.fail_next(1, Fault::Status(502));
    for code in [500, 503] {
        let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), code);
        assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    }
    let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains("<center><h1>502 Bad Gateway</h1></center>") && body.contains("nginx"));
    assert_eq!(
        api.audit("2026-01-10", "2026-01-11")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let statuses: Vec<u16> = api
        .fake
        .requests()
        .iter()
        .skip(1)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [500, 503, 502, 200]);
}

#[tokio::test]
async fn drop_fault_sends_headers_then_breaks_the_body() {
    let api = small(100, 3).await;
    api.fake.fail_next(1, Fault::Drop);
    let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.bytes().await.is_err(), "the body must not complete");
    let page: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
}

/// Status, content type and the whole body of the next answer, which must complete.
async fn read_whole(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let length: Option<usize> = resp
        .headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let body = resp.text().await.expect("the body completes");
    assert_eq!(length, Some(body.len()), "Content-Length matches the body");
    (status, content_type, body)
}

#[tokio::test]
async fn bad_body_faults_are_complete_200s_a_client_cannot_use() {
    let api = small(100, 3).await;
    for body in [
        BadBody::Html,
        BadBody::TruncatedJson,
        BadBody::WrongShape,
        BadBody::NotJson,
    ] {
        api.fake.fail_next(1, Fault::BadBody(body));
    }
    let mut answers = Vec::new();
    for _ in 0..4 {
        let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
        answers.push(read_whole(resp).await);
    }
    assert!(answers.iter().all(|(status, ..)| *status == StatusCode::OK));
    let (_, html_type, html) = &answers[0];
    assert_eq!(html_type, "text/html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("maintenance"));
    let (_, truncated_type, truncated) = &answers[1];
    assert_eq!(truncated_type, "application/json");
    assert!(truncated.contains(r#""data":[{"accountName""#));
    let error = serde_json::from_str::<Value>(truncated).unwrap_err();
    assert!(error.is_eof(), "cut off, not malformed: {error}");
    let (_, shape_type, shape) = &answers[2];
    assert_eq!(shape_type, "application/json");
    let shape: Value = serde_json::from_str(shape).unwrap();
    assert!(shape["data"].is_object());
    let (_, text_type, text) = &answers[3];
    assert_eq!(text_type, "text/plain");
    assert!(serde_json::from_str::<Value>(text).is_err());
    // One unit each, then normal pages again, over the same connection.
    let page: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bad_body_faults_hit_next_pages_and_the_token_endpoint() {
    let api = small(2, 5).await;
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    let url = first["paging"]["urls"]["nextPage"].as_str().unwrap();
    api.fake
        .fail_next(1, Fault::BadBody(BadBody::TruncatedJson));
    let (status, _, body) = read_whole(api.get(url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&body).unwrap_err().is_eof());
    let page: Value = api.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["paging"]["rows"], 2);

    let post = || {
        api.http
            .post(api.url("/api/v2/access/tokens"))
            .header("X-LW-UAKS", &api.fake.config().secret)
            .json(&json!({"keyId": api.fake.config().key_id}))
            .send()
    };
    api.fake
        .fail_next_tokens(1, Fault::BadBody(BadBody::TruncatedJson));
    api.fake
        .fail_next_tokens(1, Fault::BadBody(BadBody::WrongShape));
    api.fake.fail_next_tokens(1, Fault::BadBody(BadBody::Html));
    let (status, content_type, body) = read_whole(post().await.unwrap()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    assert!(body.starts_with(r#"{"expiresAt":"#));
    assert!(serde_json::from_str::<Value>(&body).unwrap_err().is_eof());
    let (_, _, body) = read_whole(post().await.unwrap()).await;
    let shape: Value = serde_json::from_str(&body).unwrap();
    assert!(shape.get("token").is_none());
    let (_, content_type, _) = read_whole(post().await.unwrap()).await;
    assert_eq!(content_type, "text/html");
    assert_eq!(post().await.unwrap().status(), StatusCode::CREATED);
}

#[tokio::test]
async fn slow_fault_delays_then_answers_normally() {
    let api = small(100, 3).await;
    api.fake
        .fail_next(1, Fault::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    let started = Instant::now();
    api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "one unit only"
    );
}

#[tokio::test]
async fn faults_hit_next_page_fetches_and_the_same_url_can_be_retried() {
    let api = small(4, 10).await;
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    let url = first["paging"]["urls"]["nextPage"]
        .as_str()
        .unwrap()
        .to_owned();
    api.fake.fail_next(1, Fault::Status(503));
    assert_eq!(
        api.get(&url).send().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let page: Value = api.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["paging"]["rows"], 4);
}

#[tokio::test]
async fn token_faults_apply_to_the_token_endpoint_only() {
    let api = small(100, 1).await;
    api.fake
        .fail_next_tokens(1, Fault::RateLimited { reset_secs: 5 });
    api.fake.fail_next_tokens(1, Fault::Status(500));
    // AuditLogs is unaffected.
    assert_eq!(
        api.audit("2026-01-10", "2026-01-11")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let post = || {
        api.http
            .post(api.url("/api/v2/access/tokens"))
            .header("X-LW-UAKS", &api.fake.config().secret)
            .json(&json!({"keyId": api.fake.config().key_id}))
            .send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["ratelimit-reset"], "5");
    assert_eq!(
        post().await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    api.fake.fail_next_tokens(1, Fault::Drop);
    let r = post().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.is_err());
    assert_eq!(post().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(api.fake.token_requests(), 5);
}

#[tokio::test]
async fn tokens_expire_after_the_given_number_of_pages() {
    let api = small(2, 10).await;
    api.fake.expire_tokens_after_pages(2);
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    let url2 = first["paging"]["urls"]["nextPage"]
        .as_str()
        .unwrap()
        .to_owned();
    let second: Value = api.get(&url2).send().await.unwrap().json().await.unwrap();
    let url3 = second["paging"]["urls"]["nextPage"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = api.get(&url3).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    // A fresh token resumes the same snapshot; the countdown does not repeat.
    let fresh = new_token(&api.http, &api.fake).await;
    for url in [&url3, &url3, &url2] {
        let resp = api.http.get(url).bearer_auth(&fresh).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(
        api.get(&url3).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn expire_all_tokens_invalidates_only_existing_tokens() {
    let api = small(100, 1).await;
    let second = new_token(&api.http, &api.fake).await;
    api.fake.expire_all_tokens();
    assert_eq!(
        api.audit("2026-01-10", "2026-01-11")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = api
        .http
        .get(api.url("/api/v2/AuditLogs"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let third = new_token(&api.http, &api.fake).await;
    let resp = api
        .http
        .get(api.url("/api/v2/AuditLogs"))
        .bearer_auth(&third)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() {
    let api = Api::default().await;
    api.fake.shutdown();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        // A fresh client, so no pooled connection survives.
        let result = crate::common::client()
            .get(api.url("/api/v2/AuditLogs"))
            .send()
            .await;
        if result.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still serving after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
