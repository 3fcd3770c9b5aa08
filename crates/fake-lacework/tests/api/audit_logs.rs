//! AuditLogs queries: time parsing, inclusive bounds, scope headers, shapes and headers.

use std::time::Duration;

use chrono::Utc;
use fake_lacework::{EmptyVariant, FakeConfig, FakeRecord, format_millis};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Api, at, at_ms, canon, ms, noise, page_rows, sorted};

#[tokio::test]
async fn bounds_are_inclusive_at_both_ends() {
    let api = Api::default().await;
    let (s, e) = (
        ms("2026-01-10T00:00:00.000Z"),
        ms("2026-01-10T06:00:00.000Z"),
    );
    for t in [s - 1, s, s + 1, e - 1, e, e + 1] {
        api.fake.insert(noise("ACME", at_ms(t)));
    }
    let rows = api
        .rows(api.audit(&format_millis(s), &format_millis(e)))
        .await;
    let want: Vec<_> = api
        .fake
        .records()
        .into_iter()
        .filter(|r| (s..=e).contains(&r.created_ms))
        .collect();
    assert_eq!(want.len(), 4);
    assert_eq!(rows, canon(&want));
    // A zero-length window still returns the record exactly at that instant.
    let rows = api
        .rows(api.audit(&format_millis(e), &format_millis(e)))
        .await;
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn accepts_each_documented_time_format() {
    let api = Api::default().await;
    api.fake
        .insert(noise("ACME", at("2026-01-10T08:00:00.000Z")));
    api.fake
        .insert(noise("ACME", at("2026-01-10T09:30:00.000Z")));
    for (start, end, n) in [
        ("2026-01-10", "2026-01-11", 2),
        ("2026-01-10T08", "2026-01-10T08", 1),
        ("2026-01-10T08", "2026-01-10T09", 1),
        ("2026-01-10T08:00:00Z", "2026-01-10T09:30:00Z", 2),
        ("2026-01-10T08:00:00.001Z", "2026-01-10T09:30:00.000Z", 1),
    ] {
        let resp = api.audit(start, end).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{start} {end}");
        let page: Value = resp.json().await.unwrap();
        assert_eq!(page_rows(&page).len(), n, "{start} {end}");
    }
}

#[tokio::test]
async fn rejects_bad_dates_and_reversed_windows() {
    let api = Api::default().await;
    for bad in [
        "2026-01-10T08:00:00+00:00",
        "yesterday",
        "1767945600000",
        "2026-02-30",
    ] {
        let resp = api.audit(bad, "2026-03-01").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"message": "Invalid Date"})
        );
    }
    let resp = api.audit("2026-01-11", "2026-01-10").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
}

#[tokio::test]
async fn missing_times_default_to_the_last_day_ending_now() {
    let api = Api::default().await;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    for h in [1, 3, 25] {
        api.fake.insert(noise("ACME", now - hour * h));
    }
    let url = api.url("/api/v2/AuditLogs");
    let count = |req: reqwest::RequestBuilder| async {
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        page_rows(&page).len()
    };
    assert_eq!(count(api.get(&url)).await, 2, "no params: the last 24 h");
    let two_days_ago = format_millis((now - hour * 48).timestamp_millis());
    assert_eq!(
        count(api.get(&url).query(&[("startTime", &two_days_ago)])).await,
        3
    );
    let two_hours_ago = format_millis((now - hour * 2).timestamp_millis());
    assert_eq!(
        count(api.get(&url).query(&[("endTime", &two_hours_ago)])).await,
        1
    );
    assert_eq!(
        count(api.get(&url).query(&[("startTime", ""), ("endTime", "")])).await,
        2
    );
}

#[tokio::test]
async fn max_window_rejects_wide_queries_and_changes_at_runtime() {
    let cfg = FakeConfig {
        max_window: Some(Duration::from_secs(7 * 86_400)),
        ..FakeConfig::default()
    };
    let api = Api::start(cfg).await;
    assert_eq!(
        api.audit("2026-01-01", "2026-01-08")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let resp = api
        .audit("2026-01-01", "2026-01-08T00:00:00.001Z")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
    api.fake.set_max_window(Some(Duration::from_secs(3600)));
    assert_eq!(
        api.audit("2026-01-01T00", "2026-01-01T02")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    api.fake.set_max_window(None);
    assert_eq!(
        api.audit("2025-01-01", "2026-01-01")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn account_headers_select_the_scope() {
    let api = Api::default().await;
    let t = "2026-01-10T08:00:00.000Z";
    for account in ["ACME", "ACME", "ACME-SUB1", "ACME-SUB2", "acme-sub2"] {
        api.fake.insert(noise(account, at(t)));
    }
    let of = |pred: &dyn Fn(&str) -> bool| {
        canon(
            &api.fake
                .records()
                .into_iter()
                .filter(|r| pred(&r.account))
                .collect::<Vec<_>>(),
        )
    };
    let (s, e) = ("2026-01-10", "2026-01-11");
    assert_eq!(
        api.rows(api.audit(s, e)).await,
        of(&|a| a == "ACME"),
        "primary by default"
    );
    let sub2 = api
        .rows(api.audit(s, e).header("Account-Name", "Acme-Sub2"))
        .await;
    assert_eq!(sub2, of(&|a| a.eq_ignore_ascii_case("ACME-SUB2")));
    assert_eq!(sub2.len(), 2);
    let org = api
        .rows(
            api.audit(s, e)
                .header("Org-Access", "TRUE")
                .header("Account-Name", "ACME-SUB1"),
        )
        .await;
    assert_eq!(org, of(&|_| true), "Org-Access wins over Account-Name");
    let not_org = api
        .rows(
            api.audit(s, e)
                .header("Org-Access", "false")
                .header("Account-Name", "acme-sub1"),
        )
        .await;
    assert_eq!(not_org, of(&|a| a == "ACME-SUB1"));
    let log = api.fake.requests();
    let last = log.last().unwrap();
    assert_eq!(last.org_access.as_deref(), Some("false"));
    assert_eq!(last.account_name.as_deref(), Some("acme-sub1"));
}

#[tokio::test]
async fn a_single_page_has_no_paging_key_and_serves_records_exactly() {
    let api = Api::default().await;
    for i in 0..40 {
        api.fake.insert(noise(
            "ACME",
            at_ms(ms("2026-01-10T08:00:00.000Z") + i * 1000),
        ));
    }
    let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let page: Value = resp.json().await.unwrap();
    assert_eq!(
        page.as_object().unwrap().len(),
        1,
        "only `data`: {}",
        &page.to_string()[..60]
    );
    assert_eq!(sorted(page_rows(&page)), canon(&api.fake.records()));
}

#[tokio::test]
async fn rows_come_shuffled_in_a_repeatable_order() {
    let api = Api::default().await;
    for i in 0..40 {
        api.fake.insert(noise(
            "ACME",
            at_ms(ms("2026-01-10T08:00:00.000Z") + i * 1000),
        ));
    }
    let order = || async {
        let page: Value = api.audit_json("2026-01-10", "2026-01-11").await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(crate::common::created_of)
            .collect::<Vec<_>>()
    };
    let first = order().await;
    assert_eq!(first.len(), 40);
    assert!(first.windows(2).any(|w| w[0] > w[1]), "not in time order");
    assert_eq!(first, order().await, "same query, same order");
}

#[tokio::test]
async fn late_records_appear_only_after_their_delay() {
    let api = Api::default().await;
    let created = Utc::now() - chrono::Duration::hours(1);
    let late = FakeRecord::lifecycle(
        "USER_DELETED",
        "ACME",
        "admin@acme.com",
        Some("x.y1@acme.com"),
        created,
    );
    api.fake
        .insert_late(late.clone(), Duration::from_millis(400));
    let window = |api: &Api| {
        let s = format_millis(created.timestamp_millis() - 1000);
        let e = format_millis(created.timestamp_millis() + 1000);
        api.audit(&s, &e)
    };
    assert!(api.rows(window(&api)).await.is_empty());
    // Ground truth knows about it from the start.
    let expected = api.fake.expected_lifecycle(i64::MIN, i64::MAX, None);
    assert_eq!(expected.len(), 1);
    assert_eq!(expected[0].json, late.json);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.rows(window(&api)).await, vec![late.json.to_string()]);
}

#[tokio::test]
async fn rate_limit_headers_count_down_on_every_response() {
    let api = Api::default().await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
        let h = resp.headers();
        assert_eq!(h["ratelimit-limit"], "480");
        assert!(
            h["ratelimit-reset"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
        remaining.push(
            h["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(remaining, [479, 478, 477]);
    // Errors carry them too.
    let resp = api
        .http
        .get(api.url("/api/v2/AuditLogs"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["ratelimit-remaining"], "476");
}

#[tokio::test]
async fn every_empty_variant_is_served_as_configured() {
    let api = Api::default().await;
    let cases = [
        (EmptyVariant::EmptyData, StatusCode::OK, r#"{"data":[]}"#),
        (EmptyVariant::NoContent, StatusCode::NO_CONTENT, ""),
        (EmptyVariant::EmptyBody, StatusCode::OK, ""),
        (EmptyVariant::Null, StatusCode::OK, "null"),
        (
            EmptyVariant::NotFound,
            StatusCode::NOT_FOUND,
            r#"{"message":"Not Found"}"#,
        ),
    ];
    for (variant, status, body) in cases {
        api.fake.set_empty_variant(variant);
        let resp = api.audit("2026-01-10", "2026-01-11").send().await.unwrap();
        assert_eq!(resp.status(), status, "{variant:?}");
        assert_eq!(resp.text().await.unwrap(), body, "{variant:?}");
    }
    // The variant only applies when nothing matches.
    api.fake.insert(noise("ACME", at("2026-01-10T01")));
    let page: Value = api.audit_json("2026-01-10", "2026-01-11").await;
    assert_eq!(page_rows(&page).len(), 1);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let api = Api::default().await;
    let resp = api.get(&api.url("/api/v2/auditlogs")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"message": "Unrecognized url"})
    );
    let resp = api
        .http
        .delete(api.url("/api/v2/AuditLogs"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
}
