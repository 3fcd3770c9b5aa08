//! Paging: snapshots, nextPage URLs and their quirks.

use std::time::Duration;

use fake_lacework::{FakeConfig, format_millis};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Api, at_ms, canon, ms, noise, page_rows, sorted};

fn small_pages(page_size: usize) -> FakeConfig {
    FakeConfig {
        page_size,
        ..FakeConfig::default()
    }
}

/// `n` ACME records one second apart from 2026-01-10T08:00Z, plus two in another account.
fn fill(api: &Api, n: i64) {
    let base = ms("2026-01-10T08:00:00.000Z");
    for i in 0..n {
        api.fake.insert(noise("ACME", at_ms(base + i * 1000)));
    }
    api.fake.insert(noise("ACME-SUB1", at_ms(base)));
    api.fake.insert(noise("ACME-SUB1", at_ms(base + 5000)));
}

fn acme(api: &Api) -> Vec<String> {
    canon(
        &api.fake
            .records()
            .into_iter()
            .filter(|r| r.account == "ACME")
            .collect::<Vec<_>>(),
    )
}

fn next_of(page: &Value) -> Option<String> {
    page["paging"]["urls"]["nextPage"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn paging_returns_every_row_exactly_once() {
    let api = Api::start(small_pages(7)).await;
    fill(&api, 50);
    let first = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    let pages = api.all_pages(first).await;
    assert_eq!(pages.len(), 8);
    for (i, page) in pages.iter().enumerate() {
        let rows = if i == 7 { 1 } else { 7 };
        assert_eq!(page["paging"]["rows"], rows, "page {i}");
        assert_eq!(page["paging"]["totalRows"], 50, "page {i}");
        assert_eq!(page_rows(page).len(), rows);
    }
    assert_eq!(pages[7]["paging"]["urls"], json!({"nextPage": null}));
    let all = sorted(pages.iter().flat_map(page_rows).collect());
    assert_eq!(all, acme(&api), "every row once, nothing else");
    let log = api.fake.requests();
    assert_eq!(
        log.iter()
            .filter(|r| r.path.starts_with("/api/v2/AuditLogs/"))
            .count(),
        7
    );
}

#[tokio::test]
async fn a_result_of_exactly_one_page_is_not_paged() {
    let api = Api::start(small_pages(5)).await;
    fill(&api, 5);
    let page: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    assert!(page.get("paging").is_none());
    assert_eq!(page_rows(&page).len(), 5);
}

#[tokio::test]
async fn later_pages_come_from_the_snapshot_taken_at_the_first_request() {
    let api = Api::start(small_pages(5)).await;
    fill(&api, 23);
    let before = acme(&api);
    let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    let first: Value = resp.json().await.unwrap();
    // New rows inside the window arrive while the client pages.
    let base = ms("2026-01-10T12:00:00.000Z");
    for i in 0..10 {
        api.fake.insert(noise("ACME", at_ms(base + i)));
    }
    let mut rows = page_rows(&first);
    let mut next = next_of(&first);
    while let Some(url) = next {
        let page: Value = api.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["paging"]["totalRows"], 23);
        rows.extend(page_rows(&page));
        next = next_of(&page);
    }
    assert_eq!(sorted(rows), before);
    // A new query sees the new rows.
    let again = api.rows(api.audit("2026-01-10", "2026-01-11")).await;
    assert_eq!(again.len(), 33);
}

#[tokio::test]
async fn a_late_record_stays_out_of_a_snapshot_taken_before_it_was_visible() {
    let api = Api::start(small_pages(5)).await;
    fill(&api, 12);
    let late = noise("ACME", at_ms(ms("2026-01-10T09:00:00.000Z")));
    api.fake
        .insert_late(late.clone(), Duration::from_millis(300));
    let late_json = late.json.to_string();
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    assert_eq!(first["paging"]["totalRows"], 12);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Visible now, but the pages still come from the snapshot of the first request.
    let mut rows = page_rows(&first);
    let mut next = next_of(&first);
    while let Some(url) = next {
        let page: Value = api.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["paging"]["totalRows"], 12);
        rows.extend(page_rows(&page));
        next = next_of(&page);
    }
    assert_eq!(rows.len(), 12);
    assert!(!rows.contains(&late_json));
    // A new query sees it.
    let again = api.rows(api.audit("2026-01-10", "2026-01-11")).await;
    assert_eq!(again.len(), 13);
    assert!(again.contains(&late_json));
}

#[tokio::test]
async fn next_page_urls_carry_the_original_window_as_a_query() {
    let api = Api::start(small_pages(10)).await;
    fill(&api, 25);
    let (s, e) = ("2026-01-10T00:00:00.000Z", "2026-01-10T23:00:00Z");
    let first: Value = api.audit_json(s, e).await;
    let url = next_of(&first).unwrap();
    let sent_query = api.fake.requests().last().unwrap().query.clone().unwrap();
    let prefix = format!("{}/api/v2/AuditLogs/", api.fake.base_url());
    let rest = url
        .strip_prefix(&prefix)
        .expect("absolute URL on our origin");
    let (token, query) = rest.split_once('?').expect("a query after the token");
    assert!(token.len() > 20 && !token.contains('/'), "{token}");
    assert_eq!(
        query, sent_query,
        "the client's own startTime/endTime, echoed"
    );
    // The page token alone identifies the page; the query does not matter.
    let page: Value = api
        .get(&format!("{prefix}{token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["paging"]["rows"], 10);
}

#[tokio::test]
async fn the_query_is_optional_and_synthesized_when_times_were_defaulted() {
    let cfg = FakeConfig {
        next_page_query: false,
        ..small_pages(10)
    };
    let api = Api::start(cfg).await;
    fill(&api, 25);
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    assert!(!next_of(&first).unwrap().contains('?'));

    let api = Api::start(small_pages(2)).await;
    let now = chrono::Utc::now();
    for i in 0..3 {
        api.fake
            .insert(noise("ACME", now - chrono::Duration::minutes(i + 1)));
    }
    let first: Value = api
        .get(&api.url("/api/v2/AuditLogs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = next_of(&first).unwrap();
    let query = url.split_once('?').unwrap().1;
    let (start, end) = query.split_once('&').unwrap();
    let start = fake_lacework::parse_query_time(start.strip_prefix("startTime=").unwrap()).unwrap();
    let end = fake_lacework::parse_query_time(end.strip_prefix("endTime=").unwrap()).unwrap();
    assert_eq!(end - start, 24 * 3_600_000);
    assert!((end - now.timestamp_millis()).abs() < 5_000);
}

#[tokio::test]
async fn unknown_page_tokens_are_404_and_pages_need_auth() {
    let api = Api::start(small_pages(3)).await;
    fill(&api, 7);
    let resp = api
        .get(&api.url("/api/v2/AuditLogs/AbCdEf0123456789=="))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"message": "Not Found"})
    );
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    let url = next_of(&first).unwrap();
    let resp = api.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = api
        .http
        .get(&url)
        .header("Authorization", &api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "raw token works on nextPage too"
    );
}

#[tokio::test]
async fn next_page_can_point_at_a_foreign_origin() {
    let api = Api::start(small_pages(4)).await;
    fill(&api, 9);
    api.fake
        .set_foreign_next_page(Some("http://127.0.0.2:9".to_owned()));
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    let url = next_of(&first).unwrap();
    let path = url
        .strip_prefix("http://127.0.0.2:9")
        .expect("foreign origin");
    assert!(path.starts_with("/api/v2/AuditLogs/"));
    // Re-resolved against the real base (what the GO SDK does) the page still exists.
    let page: Value = api
        .get(&api.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(next_of(&page).unwrap().starts_with("http://127.0.0.2:9/"));
    api.fake.set_foreign_next_page(None);
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    assert!(next_of(&first).unwrap().starts_with(&api.fake.base_url()));
}

#[tokio::test]
async fn repeat_mode_makes_every_next_page_the_same_url() {
    let api = Api::start(small_pages(3)).await;
    fill(&api, 10);
    api.fake.set_repeat_next_page(true);
    let first: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    let url = next_of(&first).unwrap();
    let mut seen_rows = Vec::new();
    for _ in 0..5 {
        let page: Value = api.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(next_of(&page).as_deref(), Some(url.as_str()));
        seen_rows.push(page_rows(&page));
    }
    assert!(
        seen_rows.windows(2).all(|w| w[0] == w[1]),
        "the same page again and again"
    );
    api.fake.set_repeat_next_page(false);
    let pages = api
        .all_pages(api.audit("2026-01-10", "2026-01-11").send().await.unwrap())
        .await;
    assert_eq!(pages.len(), 4);
}

#[tokio::test]
async fn default_page_size_is_5000() {
    let api = Api::default().await;
    assert_eq!(api.fake.config().page_size, 5000);
    let base = ms("2026-01-10T00:00:00.000Z");
    for i in 0..5003 {
        api.fake.insert(noise("ACME", at_ms(base + i)));
    }
    let end = format_millis(base + 10_000);
    let pages = api
        .all_pages(api.audit("2026-01-10", &end).send().await.unwrap())
        .await;
    let rows: Vec<_> = pages
        .iter()
        .map(|p| p["paging"]["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [5000, 3]);
}
