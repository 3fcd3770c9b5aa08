//! The enforced rate-limit budget: 429 once a family's bucket is empty, headers on every answer.

use std::time::Duration;

use fake_lacework::{FakeConfig, Fault, RateLimit};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::common::{Api, at_ms, ms, noise};

/// `n` ACME records one second apart inside the 2026-01-10 window.
async fn api_with(page_size: usize, n: i64) -> Api {
    let api = Api::start(FakeConfig {
        page_size,
        ..FakeConfig::default()
    })
    .await;
    let base = ms("2026-01-10T08:00:00.000Z");
    for i in 0..n {
        api.fake.insert(noise("ACME", at_ms(base + i * 1000)));
    }
    api
}

/// A budget that does not refill noticeably while a test runs.
fn per_minute(requests: u32) -> Option<RateLimit> {
    Some(RateLimit {
        requests,
        period: Duration::from_secs(60),
    })
}

fn header(resp: &Response, name: &str) -> u64 {
    resp.headers()[name].to_str().unwrap().parse().unwrap()
}

async fn query(api: &Api) -> Response {
    api.audit("2026-01-10", "2026-01-11").send().await.unwrap()
}

async fn post_token(api: &Api) -> Response {
    api.http
        .post(api.url("/api/v2/access/tokens"))
        .header("X-LW-UAKS", &api.fake.config().secret)
        .json(&json!({"keyId": api.fake.config().key_id}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_empty_bucket_answers_429_with_the_three_headers() {
    let api = api_with(100, 3).await;
    api.fake.set_rate_limit(per_minute(3));
    for left in [2, 1, 0] {
        let resp = query(&api).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "ratelimit-limit"), 3);
        assert_eq!(header(&resp, "ratelimit-remaining"), left);
        assert!(header(&resp, "ratelimit-reset") >= 1);
    }
    let resp = query(&api).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&resp, "ratelimit-limit"), 3);
    assert_eq!(header(&resp, "ratelimit-remaining"), 0);
    // One unit takes 20 s to come back.
    let reset = header(&resp, "ratelimit-reset");
    assert!((1..=20).contains(&reset), "{reset}");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"message": "Rate limit exceeded"})
    );
    assert_eq!(api.fake.rate_limited_answers(), 1);
    let last = api.fake.requests().pop().unwrap();
    assert_eq!(
        (last.path.as_str(), last.status),
        ("/api/v2/AuditLogs", 429)
    );
}

#[tokio::test]
async fn first_pages_and_next_pages_share_a_bucket_and_tokens_have_their_own() {
    let api = api_with(2, 10).await;
    api.fake.set_rate_limit(per_minute(3));
    let first: Value = query(&api).await.json().await.unwrap();
    let url2 = first["paging"]["urls"]["nextPage"].as_str().unwrap();
    let second: Value = api.get(url2).send().await.unwrap().json().await.unwrap();
    let url3 = second["paging"]["urls"]["nextPage"].as_str().unwrap();
    assert_eq!(api.get(url3).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        api.get(url3).send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(query(&api).await.status(), StatusCode::TOO_MANY_REQUESTS);
    for left in [2, 1, 0] {
        let resp = post_token(&api).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(header(&resp, "ratelimit-remaining"), left);
    }
    assert_eq!(
        post_token(&api).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The refused token request arrived, so it is counted, but no token was issued for it.
    assert_eq!(api.fake.token_requests(), 5);
    assert_eq!(api.fake.rate_limited_answers(), 3);
}

#[tokio::test]
async fn a_refused_request_reaches_no_handler_and_takes_no_fault() {
    let api = api_with(100, 3).await;
    api.fake.set_rate_limit(per_minute(1));
    assert_eq!(query(&api).await.status(), StatusCode::OK);
    assert_eq!(post_token(&api).await.status(), StatusCode::CREATED);
    api.fake.fail_next(1, Fault::Status(503));
    api.fake.fail_next_tokens(1, Fault::Status(500));
    api.fake.expire_tokens_after_pages(1);
    assert_eq!(
        post_token(&api).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..3 {
        assert_eq!(query(&api).await.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // A new budget starts full; the queued faults and the page countdown are all still there.
    api.fake.set_rate_limit(per_minute(10));
    assert_eq!(query(&api).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        post_token(&api).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(query(&api).await.status(), StatusCode::OK);
    assert_eq!(query(&api).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_bucket_refills_continuously_and_refusals_cost_nothing() {
    let api = api_with(100, 3).await;
    // 2.5 requests a second: a burst of 5, then one more every 400 ms.
    api.fake.set_rate_limit(Some(RateLimit {
        requests: 5,
        period: Duration::from_secs(2),
    }));
    let mut n_ok = 0;
    let refused = loop {
        let resp = query(&api).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            break resp;
        }
        assert_eq!(resp.status(), StatusCode::OK);
        n_ok += 1;
        assert!(n_ok <= 20, "the budget never refused");
    };
    assert!(n_ok >= 5, "a full bucket allows a burst of 5, got {n_ok}");
    assert_eq!(header(&refused, "ratelimit-reset"), 1);
    // Hammering while empty does not push the next allowed request further out.
    for _ in 0..5 {
        let _ = query(&api).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resp = query(&api).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "ratelimit-limit"), 5);
    assert!(api.fake.rate_limited_answers() >= 1);
}

#[tokio::test]
async fn injected_429s_are_not_budget_answers_and_none_keeps_the_advisory_headers() {
    let api = api_with(100, 3).await;
    api.fake.set_rate_limit(per_minute(2));
    api.fake.fail_next(1, Fault::RateLimited { reset_secs: 9 });
    let resp = query(&api).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // The fault's own wait, and the limit of the budget in force.
    assert_eq!(header(&resp, "ratelimit-reset"), 9);
    assert_eq!(header(&resp, "ratelimit-limit"), 2);
    assert_eq!(api.fake.rate_limited_answers(), 0);
    assert_eq!(query(&api).await.status(), StatusCode::OK);
    assert_eq!(query(&api).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // Back to advisory: full again, 480 per hour, and never a refusal.
    api.fake.set_rate_limit(None);
    for i in 0..10 {
        let resp = query(&api).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "ratelimit-limit"), 480);
        assert_eq!(header(&resp, "ratelimit-remaining"), 479 - i);
    }
    assert_eq!(api.fake.rate_limited_answers(), 1);
}
