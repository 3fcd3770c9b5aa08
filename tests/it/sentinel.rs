//! The Microsoft Sentinel sink against a fake Entra token endpoint and Logs Ingestion API on
//! loopback: rows and columns, token refresh on expiry and on 401, the 1 MB limit, 413
//! splits, 429 waits, and the refusals that stop a run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fake_lacework::{FakeLacework, FakeRecord};
use serde_json::Value;

use crate::support::sentinel::{self, SentinelFake};
use crate::support::*;

/// The columns every row carries, as the sink's column table declares them.
const COLUMNS: [&str; 11] = [
    "TimeGenerated",
    "EventId",
    "EventType",
    "Account",
    "Actor",
    "Target",
    "Action",
    "Description",
    "Source",
    "Schema",
    "RawRecord",
];

/// An exporter whose only sink is the fake Sentinel (with `extra` sink lines), reading a fake
/// Lacework API; `secret` is written to the client secret file.
fn exporter_for(
    fake: &FakeLacework,
    sentinel: &SentinelFake,
    extra: &str,
    secret: &str,
) -> Exporter {
    let dir = tempfile::tempdir().expect("temporary directory");
    let secret_file = dir.path().join("sentinel-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let sinks = sentinel.sink_toml(&secret_file.display().to_string(), extra);
    let cfg = Cfg {
        sinks: Box::leak(sinks.into_boxed_str()),
        ..Cfg::default()
    };
    let exporter = Exporter::new(fake, &cfg);
    // The secret file lives as long as the test.
    std::mem::forget(dir);
    exporter
}

/// A fake Lacework API with `count` generated records over the two days before now, and an
/// exporter sending to `sentinel`.
async fn setup(count: usize, sentinel: &SentinelFake, extra: &str) -> (FakeLacework, Exporter) {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 23, count, now - 2 * DAY, now - 10 * SEC);
    let exporter = exporter_for(&fake, sentinel, extra, sentinel::CLIENT_SECRET);
    (fake, exporter)
}

/// Every lifecycle record the run had to deliver.
fn expected(fake: &FakeLacework) -> Vec<FakeRecord> {
    let now = now_ms();
    fake.expected_lifecycle(now - 3 * DAY, now, None)
}

/// Fails unless `rows` hold every `records` exactly once (by raw record and by EventId), each
/// with the declared columns and the right values.
fn assert_rows_exactly_once(rows: &[Value], records: &[FakeRecord]) {
    let mut problems = Vec::new();
    let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut ids = HashSet::new();
    let mut wanted_columns: Vec<&str> = COLUMNS.to_vec();
    wanted_columns.sort_unstable();
    for row in rows {
        let mut columns: Vec<&str> = row
            .as_object()
            .expect("a row is an object")
            .keys()
            .map(String::as_str)
            .collect();
        columns.sort_unstable();
        if columns != wanted_columns {
            problems.push(format!("columns {columns:?}"));
        }
        if !ids.insert(row["EventId"].as_str().unwrap_or("").to_string()) {
            problems.push(format!("EventId {} twice", row["EventId"]));
        }
        by_key
            .entry(canon(&row["RawRecord"]))
            .or_default()
            .push(row);
    }
    for record in records {
        let Some(found) = by_key.get(&record_key(record)) else {
            problems.push(format!("missing: {}", record.json));
            continue;
        };
        if found.len() != 1 {
            problems.push(format!("{} rows for {}", found.len(), record.json));
        }
        let row = found[0];
        let checks = [
            ("TimeGenerated", Value::from(rfc3339(record.created_ms))),
            (
                "EventType",
                Value::from(record.expected_type.clone().unwrap_or_default()),
            ),
            (
                "Target",
                record
                    .expected_target
                    .as_deref()
                    .map_or(Value::Null, Value::from),
            ),
            ("Account", record.json["accountName"].clone()),
            ("Actor", record.json["userName"].clone()),
            ("Action", record.json["userAction"].clone()),
            ("Description", record.json["eventDescription"].clone()),
            ("Source", Value::from("audit")),
            ("Schema", Value::from(SCHEMA)),
        ];
        for (column, want) in checks {
            if row[column] != want {
                problems.push(format!("{column} {} instead of {want}", row[column]));
            }
        }
        let id = row["EventId"].as_str().unwrap_or("");
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            problems.push(format!("EventId {id:?}"));
        }
    }
    if rows.len() != records.len() {
        problems.push(format!("{} rows for {} records", rows.len(), records.len()));
    }
    assert!(
        problems.is_empty(),
        "{} problems, the first:\n{}",
        problems.len(),
        problems[..problems.len().min(10)].join("\n")
    );
}

/// Fails if a secret or any issued token appears in `text`.
fn assert_no_secrets(text: &str, sentinel: &SentinelFake) {
    assert!(
        !text.contains(sentinel::CLIENT_SECRET),
        "the client secret was logged"
    );
    for token in sentinel.issued_tokens() {
        assert!(!text.contains(&token), "a token was logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_as_a_row_with_the_declared_columns() {
    let sentinel = SentinelFake::start().await;
    let (fake, exporter) = setup(3000, &sentinel, "").await;
    let run = exporter
        .run(&["--log-level", "debug", "run", "--once"])
        .await;
    run.expect_code(0);
    let records = expected(&fake);
    assert!(records.len() > 500, "{} lifecycle records", records.len());
    assert_rows_exactly_once(&sentinel.rows(), &records);
    let ingestions = sentinel.ingestions();
    assert!(ingestions.iter().all(|i| i.status == 204), "{ingestions:?}");
    assert!(
        ingestions.len() >= records.len() / 500,
        "at most 500 rows per call: {} calls",
        ingestions.len()
    );
    for ingestion in &ingestions {
        assert!(ingestion.gzip, "gzip by default");
        assert!(ingestion.wire_len < ingestion.body_len);
        assert_eq!(ingestion.content_type.as_deref(), Some("application/json"));
        assert!(ingestion.n_rows <= 500);
    }
    assert_eq!(
        sentinel.token_requests(),
        1,
        "one token serves the whole run"
    );
    let times: Vec<i64> = sentinel
        .rows()
        .iter()
        .map(|row| parse_time(row["TimeGenerated"].as_str().unwrap()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "rows in time order");
    assert_no_secrets(&run.stderr, &sentinel);
    assert!(
        exporter.live_checkpoint().await.is_some(),
        "the checkpoint moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_they_expire() {
    let sentinel = SentinelFake::start().await;
    sentinel.set_expires_in(3);
    sentinel.set_delay(Duration::from_millis(200));
    let (fake, exporter) = setup(3000, &sentinel, "batch_max_events = 20").await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let ingestions = sentinel.ingestions();
    let refused: Vec<_> = ingestions.iter().filter(|i| i.status != 204).collect();
    assert!(
        refused.is_empty(),
        "no call refused (an expired token would be): {refused:?}"
    );
    let n_tokens = sentinel.token_requests();
    note(&format!(
        "sentinel: {} calls over {:?} with 3 s tokens took {n_tokens} tokens",
        ingestions.len(),
        run.elapsed
    ));
    assert!(
        ingestions.last().unwrap().at - ingestions[0].at > Duration::from_secs(6),
        "the run outlives two tokens"
    );
    assert!(
        n_tokens >= 3,
        "{n_tokens} tokens for a run of {:?}",
        run.elapsed
    );
    assert_rows_exactly_once(&sentinel.rows(), &expected(&fake));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_replaced_once_and_nothing_is_lost() {
    let sentinel = SentinelFake::start().await;
    sentinel.set_delay(Duration::from_millis(100));
    let (fake, exporter) = setup(3000, &sentinel, "batch_max_events = 20").await;
    let mut running = exporter.spawn(&["run", "--once"]);
    let probe = sentinel.clone();
    running
        .wait_until("a few calls accepted", Duration::from_secs(30), move |_| {
            probe.ingestions().len() >= 5
        })
        .await;
    sentinel.revoke_all();
    let finished = running.wait(TIMEOUT).await;
    finished.expect_code(0);
    let ingestions = sentinel.ingestions();
    let refused: Vec<_> = ingestions.iter().filter(|i| i.status != 204).collect();
    assert_eq!(refused.len(), 1, "one 401, then a new token: {refused:?}");
    assert_eq!(refused[0].status, 401);
    assert_eq!(refused[0].token_refusal, Some("revoked"));
    assert_eq!(
        sentinel.token_requests(),
        2,
        "the first token and its replacement"
    );
    assert_rows_exactly_once(&sentinel.rows(), &expected(&fake));
    assert_no_secrets(&finished.stderr, &sentinel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_with_a_new_token_stops_the_run() {
    let sentinel = SentinelFake::start().await;
    sentinel.refuse_every_token();
    let (fake, exporter) = setup(300, &sentinel, "").await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("401"), "{run}");
    assert!(run.stderr.contains("InvalidToken"), "{run}");
    assert_eq!(
        sentinel.ingestions().len(),
        2,
        "the refused token, then one new one"
    );
    assert_eq!(sentinel.token_requests(), 2);
    assert!(sentinel.rows().is_empty());
    let held = exporter.live_checkpoint().await;
    assert!(
        held.is_none_or(|c| c <= first_lifecycle_ms(&fake)),
        "nothing committed"
    );
    assert_no_secrets(&run.stderr, &sentinel);
}

/// Lifecycle records whose raw record carries `padding` bytes more than usual.
fn big_records(fake: &FakeLacework, n: usize, padding: usize) {
    let now = now_ms();
    for idx in 0..n {
        let mut record = FakeRecord::lifecycle(
            "USER_CREATED",
            "ACME",
            "admin@acme.com",
            Some(&format!("big.user{idx}@acme.com")),
            at(now - DAY + idx as i64 * MIN),
        );
        // Varying sizes, so requests end at different row counts.
        record.json["details"] = Value::from("x".repeat(padding + idx * 97));
        fake.insert(record);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_events_go_in_several_calls_under_one_megabyte() {
    let sentinel = SentinelFake::start().await;
    let fake = start_fake(500).await;
    big_records(&fake, 300, 30_000);
    let exporter = exporter_for(&fake, &sentinel, "", sentinel::CLIENT_SECRET);
    exporter.run(&["run", "--once"]).await.expect_code(0);
    let ingestions = sentinel.ingestions();
    assert!(
        ingestions.iter().all(|i| i.status == 204),
        "none refused: {:?}",
        ingestions
            .iter()
            .filter(|i| i.status != 204)
            .collect::<Vec<_>>()
    );
    assert!(
        ingestions.len() >= 9,
        "{} calls for ~10 MB",
        ingestions.len()
    );
    let largest = ingestions.iter().map(|i| i.body_len).max().unwrap();
    assert!(largest <= sentinel::MAX_BODY, "a call of {largest} bytes");
    assert!(
        largest > 900_000,
        "calls are filled: the largest is {largest} bytes"
    );
    note(&format!(
        "sentinel: 300 rows of ~30 KB in {} calls, the largest {largest} bytes",
        ingestions.len()
    ));
    assert_rows_exactly_once(&sentinel.rows(), &expected(&fake));
    let times: Vec<String> = sentinel
        .rows()
        .iter()
        .map(|row| row["TimeGenerated"].as_str().unwrap().to_string())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "order kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stricter_limit_is_met_by_splitting_on_413() {
    let sentinel = SentinelFake::start().await;
    sentinel.set_max_body(200_000);
    let fake = start_fake(500).await;
    big_records(&fake, 60, 30_000);
    let exporter = exporter_for(
        &fake,
        &sentinel,
        "compression = \"none\"",
        sentinel::CLIENT_SECRET,
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let ingestions = sentinel.ingestions();
    assert!(ingestions.iter().any(|i| i.status == 413), "{ingestions:?}");
    assert!(ingestions.iter().all(|i| !i.gzip));
    assert!(run.stderr.contains("splitting"), "{run}");
    assert_rows_exactly_once(&sentinel.rows(), &expected(&fake));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_as_retry_after_says() {
    let sentinel = SentinelFake::start().await;
    sentinel.throttle(2, 2);
    let (fake, exporter) = setup(600, &sentinel, "").await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let ingestions = sentinel.ingestions();
    assert_eq!(
        ingestions
            .iter()
            .map(|i| i.status)
            .take(3)
            .collect::<Vec<_>>(),
        vec![429, 429, 204]
    );
    for pair in ingestions[..3].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_secs(2),
            "retried after {gap:?}, Retry-After: 2"
        );
    }
    assert_eq!(ingestions.iter().filter(|i| i.status == 429).count(), 2);
    assert!(
        run.stderr.matches("holding the batch").count() <= 1,
        "one warning per outage:\n{}",
        run.stderr
    );
    assert_rows_exactly_once(&sentinel.rows(), &expected(&fake));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_on_the_dcr_stops_the_run_and_commits_nothing() {
    let sentinel = SentinelFake::start().await;
    sentinel.forbid();
    let (fake, exporter) = setup(600, &sentinel, "").await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(1);
    note(&format!(
        "sentinel 403: {}",
        run.stderr.lines().last().unwrap_or("")
    ));
    for wanted in [
        "403",
        "OperationFailed",
        "does not have access to ingest data",
        "Monitoring Metrics Publisher",
        sentinel::DCR_IMMUTABLE_ID,
    ] {
        assert!(
            run.stderr.contains(wanted),
            "stderr names {wanted:?}: {run}"
        );
    }
    assert_eq!(sentinel.ingestions().len(), 1, "a 403 is not retried");
    assert!(sentinel.rows().is_empty());
    let held = exporter.live_checkpoint().await;
    assert!(
        held.is_none_or(|c| c <= first_lifecycle_ms(&fake)),
        "the checkpoint did not pass the first undelivered event: {held:?}"
    );
    assert_no_secrets(&run.stderr, &sentinel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_refused_at_start() {
    let sentinel = SentinelFake::start().await;
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 23, 200, now - 2 * DAY, now - 10 * SEC);
    let wrong = "Qx8~the-secret-ID-not-its-value";
    let exporter = exporter_for(&fake, &sentinel, "", wrong);
    let run = exporter.run(&["run", "--once"]).await;
    assert_ne!(run.code, Some(0), "{run}");
    note(&format!(
        "sentinel invalid_client: {}",
        run.stderr.lines().last().unwrap_or("")
    ));
    for wanted in ["invalid_client", "AADSTS7000215", sentinel::CLIENT_ID] {
        assert!(
            run.stderr.contains(wanted),
            "stderr names {wanted:?}: {run}"
        );
    }
    assert!(!run.stderr.contains(wrong), "the secret was logged: {run}");
    assert_eq!(sentinel.token_requests(), 1, "a refusal is not retried");
    assert_eq!(sentinel.token_refusals(), 1);
    assert!(sentinel.ingestions().is_empty());
    assert!(exporter.live_checkpoint().await.is_none());
}
