//! Generated data: determinism, time formats, record shape and ground-truth helpers.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use fake_lacework::{
    FakeConfig, FakeLacework, FakeRecord, GenerateSpec, LIFECYCLE_KINDS, TimeFormat, format_seconds,
};
use serde_json::Value;

use crate::common::{Api, at, canon, created_of, ms, sorted};

fn spec(seed: u64, count: usize) -> GenerateSpec {
    GenerateSpec {
        seed,
        start: at("2026-01-01"),
        end: at("2026-01-02"),
        count,
        ..GenerateSpec::default()
    }
}

async fn generated(format: TimeFormat, seed: u64, count: usize) -> Api {
    let api = Api::start(FakeConfig {
        time_format: format,
        ..FakeConfig::default()
    })
    .await;
    assert_eq!(api.fake.generate(&spec(seed, count)), count);
    api
}

/// Every row the org can see in the generated day, with pages followed.
async fn served(api: &Api) -> Vec<Value> {
    let first = api
        .audit("2026-01-01", "2026-01-02")
        .header("Org-Access", "true")
        .send()
        .await
        .unwrap();
    let pages = api.all_pages(first).await;
    pages
        .iter()
        .flat_map(|p| p["data"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn generate_is_deterministic_for_a_seed() {
    let a = generated(TimeFormat::Mixed, 42, 400).await;
    let b = generated(TimeFormat::Mixed, 42, 400).await;
    let c = generated(TimeFormat::Mixed, 43, 400).await;
    let (ra, rb, rc) = (a.fake.records(), b.fake.records(), c.fake.records());
    assert_eq!(ra, rb);
    assert_ne!(canon(&ra), canon(&rc));
    // Served identically too, order included.
    let (sa, sb) = (served(&a).await, served(&b).await);
    assert_eq!(sa, sb);
    assert_eq!(
        sorted(sa.iter().map(Value::to_string).collect()),
        canon(&ra)
    );
}

#[tokio::test]
async fn seconds_format_truncates_ground_truth_to_match_the_json() {
    let api = generated(TimeFormat::Seconds, 5, 300).await;
    let records = api.fake.records();
    for r in &records {
        assert_eq!(r.created_ms % 1000, 0);
        assert_eq!(r.json["createdTime"], format_seconds(r.created_ms));
        assert_eq!(r.visible_at_ms, r.created_ms);
    }
    let mut served_times: Vec<i64> = served(&api).await.iter().map(created_of).collect();
    served_times.sort();
    let truth: Vec<i64> = records.iter().map(|r| r.created_ms).collect();
    assert_eq!(served_times, truth);
}

#[tokio::test]
async fn every_format_agrees_with_ground_truth() {
    for (format, check) in [
        (TimeFormat::Millis, "millis"),
        (TimeFormat::EpochMillis, "epoch"),
        (TimeFormat::Mixed, "mixed"),
    ] {
        let api = generated(format, 11, 300).await;
        let mut kinds = HashSet::new();
        for r in api.fake.records() {
            assert_eq!(created_of(&r.json), r.created_ms, "{check}");
            kinds.insert(match &r.json["createdTime"] {
                Value::Number(_) => "epoch",
                Value::String(s) if s.len() == 24 => "millis",
                Value::String(s) if s.len() == 20 => "seconds",
                other => panic!("unexpected {other}"),
            });
        }
        match format {
            TimeFormat::Mixed => assert_eq!(kinds.len(), 3, "all three forms appear"),
            _ => assert_eq!(kinds, HashSet::from([check])),
        }
    }
}

#[tokio::test]
async fn records_keep_the_documented_shape_and_key_order() {
    let api = generated(TimeFormat::Mixed, 3, 2000).await;
    let body = api
        .audit("2026-01-01", "2026-01-02")
        .header("Org-Access", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys = [
        "accountName",
        "createdTime",
        "eventDescription",
        "eventName",
        "userAction",
        "userName",
    ];
    let data = body
        .strip_prefix("{\"data\":[{")
        .unwrap()
        .strip_suffix("}]}")
        .unwrap();
    let mut extras = 0;
    for raw in data.split("},{") {
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| raw.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "key order in {raw}"
        );
        let v: Value = serde_json::from_str(&format!("{{{raw}}}")).unwrap();
        let obj = v.as_object().unwrap();
        match obj.len() {
            6 => {}
            7 => {
                extras += 1;
                assert!(
                    obj["sourceIpAddress"]
                        .as_str()
                        .unwrap()
                        .starts_with("203.0.113.")
                );
            }
            n => panic!("{n} keys in {raw}"),
        }
    }
    assert!(
        (40..=180).contains(&extras),
        "about 5% carry an extra field: {extras}"
    );
    let records = api.fake.records();
    let lifecycle = records.iter().filter(|r| r.expected_type.is_some()).count();
    assert!(
        (500..=700).contains(&lifecycle),
        "about 30% lifecycle: {lifecycle}"
    );
    let accounts: HashSet<_> = records.iter().map(|r| r.account.as_str()).collect();
    assert_eq!(accounts, HashSet::from(["ACME", "ACME-SUB1", "ACME-SUB2"]));
    let kinds: HashSet<_> = records
        .iter()
        .filter_map(|r| r.expected_type.as_deref())
        .collect();
    assert_eq!(kinds, HashSet::from(LIFECYCLE_KINDS));
    for r in &records {
        assert_eq!(r.json["accountName"], r.account.as_str());
        let actor = r.json["userName"].as_str().unwrap();
        assert!(actor.ends_with("@acme.com"));
        let desc = r.json["eventDescription"].as_str().unwrap();
        assert!(!desc.contains('{'), "unfilled template: {desc}");
        match (r.expected_type.as_deref(), r.expected_target.as_deref()) {
            (Some("USER_LOGIN"), Some(t)) => assert_eq!(t, actor),
            (Some(k), None) => assert!(k.starts_with("API_KEY_") && desc.contains("_")),
            (Some(_), Some(t)) => {
                assert!(desc.contains(t), "{desc} names {t}");
                let local = t.strip_suffix("@acme.com").unwrap();
                let (first, last) = local.split_once('.').unwrap();
                assert!(first.bytes().all(|c| c.is_ascii_lowercase()));
                assert!(last.trim_end_matches(|c: char| c.is_ascii_digit()).len() < last.len());
            }
            (None, target) => assert_eq!(target, None),
        }
    }
}

#[tokio::test]
async fn expected_lifecycle_filters_by_time_and_account() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    let t = |s| at(s);
    fake.insert(FakeRecord::lifecycle(
        "USER_CREATED",
        "ACME",
        "admin@acme.com",
        Some("a.b1@acme.com"),
        t("2026-01-01T01"),
    ));
    fake.insert(FakeRecord::lifecycle(
        "USER_DELETED",
        "ACME-SUB1",
        "admin@acme.com",
        Some("a.b1@acme.com"),
        t("2026-01-01T02"),
    ));
    fake.insert(FakeRecord::lifecycle(
        "API_KEY_CREATED",
        "acme",
        "admin@acme.com",
        None,
        t("2026-01-01T03"),
    ));
    fake.insert(FakeRecord::other(
        "Report Rule Created",
        "ACME",
        "admin@acme.com",
        t("2026-01-01T02"),
    ));
    fake.insert_late(
        FakeRecord::lifecycle(
            "USER_LOGIN",
            "ACME",
            "c.d2@acme.com",
            None,
            t("2026-01-01T04"),
        ),
        Duration::from_secs(3600),
    );
    let types = |v: Vec<FakeRecord>| {
        v.into_iter()
            .map(|r| r.expected_type.unwrap())
            .collect::<Vec<_>>()
    };
    let (from, to) = (ms("2026-01-01T01"), ms("2026-01-01T04"));
    assert_eq!(
        types(fake.expected_lifecycle(from, to, None)),
        ["USER_CREATED", "USER_DELETED", "API_KEY_CREATED"]
    );
    assert_eq!(
        types(fake.expected_lifecycle(from, to, Some("Acme"))),
        ["USER_CREATED", "API_KEY_CREATED"]
    );
    assert_eq!(
        types(fake.expected_lifecycle(from, to + 1, Some("ACME"))).len(),
        3,
        "late records count"
    );
    assert!(
        fake.expected_lifecycle(from + 1, to, Some("acme-sub2"))
            .is_empty()
    );
    let all = fake.records();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].created_ms <= w[1].created_ms));
}

#[tokio::test]
async fn trickle_inserts_fresh_records_until_aborted() {
    let fake = FakeLacework::start(FakeConfig::default()).await.unwrap();
    let started = Utc::now().timestamp_millis();
    let handle = fake.spawn_trickle(Duration::from_millis(20), 7);
    tokio::time::sleep(Duration::from_millis(250)).await;
    handle.abort();
    let _ = handle.await;
    let n = fake.record_count();
    assert!(
        (4..=14).contains(&n),
        "{n} records in 250 ms at one per 20 ms"
    );
    for r in fake.records() {
        // Seconds rendering may truncate up to a second.
        assert!(r.created_ms >= started - 1000 && r.created_ms <= Utc::now().timestamp_millis());
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(fake.record_count(), n, "stopped after abort");
}
