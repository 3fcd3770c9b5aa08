//! The Elasticsearch sink through the binary, against the fake Elasticsearch on loopback:
//! each event lands once with its id as `_id`, rejected items are retried, a lost answer comes
//! back as 409 and counts as delivered, a mapping error stops the exporter with the item named,
//! and a run killed with SIGKILL while the index held an unacknowledged batch leaves every event
//! once after a restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fake_lacework::{FakeLacework, FakeRecord};
use serde_json::Value;

use crate::support::elasticsearch::FakeElasticsearch;
use crate::support::*;

/// The API key file's contents, as Elastic shows an "encoded" key (base64 of `id:key`).
const API_KEY: &str = "ZmFrZS1pZDpmYWtlLWFwaS1rZXktc2VjcmV0";

/// The `Authorization` value the fake wants with `API_KEY`.
const API_KEY_HEADER: &str = "ApiKey ZmFrZS1pZDpmYWtlLWFwaS1rZXktc2VjcmV0";

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// A fake Lacework with `count` records over the day before now, and an exporter whose sinks
/// are `extra_sinks` and an Elasticsearch sink at `es` with the API key and `sink_extra`.
async fn setup(
    es: &FakeElasticsearch,
    seed: u64,
    count: usize,
    sink_extra: &str,
    extra_sinks: &str,
) -> (FakeLacework, Exporter, Vec<FakeRecord>) {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, seed, count, now - DAY, now - 10 * SEC);
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_path = dir.path().join("es-api-key");
    std::fs::write(&key_path, format!("{API_KEY}\n")).unwrap();
    let sinks = format!(
        "{extra_sinks}[[sinks]]\ntype = \"elasticsearch\"\nname = \"es\"\nurl = \"{}\"\napi_key_file = \"{}\"\nretry_initial = \"50ms\"\nretry_max = \"300ms\"\ntimeout = \"5s\"\n{sink_extra}\n",
        es.url(),
        key_path.display()
    );
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            sinks: leak(sinks),
            ..Cfg::default()
        },
    );
    // The key file lives as long as the test.
    std::mem::forget(dir);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    assert!(!expected.is_empty(), "the fake holds lifecycle records");
    (fake, exporter, expected)
}

/// The ground-truth key of an ECS document: its `event.original`, the record as received.
fn doc_key(source: &Value) -> String {
    let original = source["event"]["original"]
        .as_str()
        .unwrap_or_else(|| panic!("no event.original: {source}"));
    canon(&serde_json::from_str(original).expect("event.original is the JSON record"))
}

/// Asserts that the fake index holds every expected record exactly once (across all
/// indices), each document stored under its event id. Returns the documents' ids by key.
fn assert_index_holds_each_once(
    es: &FakeElasticsearch,
    expected: &[FakeRecord],
    what: &str,
) -> HashMap<String, String> {
    let docs = es.docs();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut keys: HashMap<String, usize> = HashMap::new();
    let mut id_by_key = HashMap::new();
    for doc in &docs {
        assert_eq!(
            doc.source["event"]["id"], doc.id,
            "{what}: _id is the event id"
        );
        *ids.entry(doc.id.as_str()).or_default() += 1;
        let key = doc_key(&doc.source);
        id_by_key.insert(key.clone(), doc.id.clone());
        *keys.entry(key).or_default() += 1;
    }
    let repeated_ids: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated_ids.is_empty(),
        "{what}: ids stored in more than one index: {repeated_ids:?}"
    );
    let mut wanted: HashMap<String, usize> = HashMap::new();
    for record in expected {
        *wanted.entry(record_key(record)).or_default() += 1;
    }
    let missing = wanted
        .iter()
        .filter(|(key, n)| keys.get(*key) != Some(n))
        .count();
    let extra = keys.keys().filter(|key| !wanted.contains_key(*key)).count();
    assert!(
        missing == 0 && extra == 0 && docs.len() == expected.len(),
        "{what}: {} documents for {} expected records; {missing} missing or repeated, {extra} not expected",
        docs.len(),
        expected.len()
    );
    id_by_key
}

/// Waits until `check` holds, failing the test after `timeout`.
async fn wait_for(what: &str, timeout: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_once_as_ecs_documents_with_the_event_id_as_id() {
    let es = FakeElasticsearch::start(Some(API_KEY_HEADER)).await;
    let (_fake, exporter, expected) = setup(
        &es,
        11,
        1_500,
        "batch_max_events = 100",
        "[[sinks]]\ntype = \"stdout\"\n\n",
    )
    .await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert!(
        !run.stderr.contains(API_KEY),
        "the API key never shows: {run}"
    );
    assert!(
        run.stderr.contains("Elasticsearch cluster reachable"),
        "the start-up probe ran: {run}"
    );

    assert_index_holds_each_once(&es, &expected, "one run");
    assert_eq!(
        es.index_names(),
        ["logs-lacework.audit-default"],
        "the default data stream"
    );
    assert_eq!(es.n_conflicts(), 0);
    assert!(es.attempts().values().all(|n| *n == 1), "each sent once");

    // The documents are the ECS view of exactly the events stdout printed.
    let docs: HashMap<String, Value> = es.docs().into_iter().map(|d| (d.id, d.source)).collect();
    let events = run.events();
    assert_eq!(events.len(), docs.len());
    for event in &events {
        let doc = docs
            .get(id_of(event))
            .unwrap_or_else(|| panic!("event {} not in the index", id_of(event)));
        assert_eq!(doc["event"]["id"], event["id"]);
        assert_eq!(doc["@timestamp"], event["time"]);
        assert_eq!(doc["event"]["kind"], "event");
        assert_eq!(doc["event"]["dataset"], "lacework.audit");
        assert_eq!(
            serde_json::from_str::<Value>(doc["event"]["original"].as_str().unwrap()).unwrap(),
            event["raw"]
        );
        assert_eq!(doc["user"]["name"], event["actor"]);
    }

    let requests = es.requests();
    assert!(requests.iter().all(|r| r.status == 200));
    for request in &requests {
        assert_eq!(request.path, "/_bulk");
        assert_eq!(request.query, None);
        assert!(!request.gzip);
        assert!(
            request.n_actions >= 1 && request.n_actions <= 100,
            "{}",
            request.n_actions
        );
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/x-ndjson")
        );
    }
    note(&format!(
        "elasticsearch: {} events in {} _bulk requests, each stored once under its event id",
        docs.len(),
        requests.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_items_are_retried_and_a_lost_answer_comes_back_as_conflicts() {
    let es = FakeElasticsearch::start(Some("Basic bGFlOnMzY3JldC1wdw==")).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret-pw\n").unwrap();
    let (_fake, exporter, expected) = setup(&es, 12, 1_500, "", "").await;
    // Basic authentication instead of the key, gzip, daily indices, a 1 s timeout.
    let text = exporter.config_text();
    let text = text
        .replace(
            &text[text.find("api_key_file").unwrap()..].lines().next().unwrap().to_string(),
            &format!(
                "basic = {{ user = \"lae\", password_file = \"{}\" }}\ncompression = \"gzip\"\nindex = \"lacework-audit-%Y.%m.%d\"\nbatch_max_events = 100\npipeline = \"lacework-audit\"",
                password.display()
            ),
        )
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    exporter.write_config(&text);

    // Two whole-request failures (503, then 429 with Retry-After: 1), then 150 items answered
    // 429 across the first requests, then an answer lost to the client's timeout after the
    // index took the documents.
    es.fail_next_requests([(503, None), (429, Some("1"))]);
    es.reject_next_items(150);
    es.slow_answers(3, 1, Duration::from_millis(2_500));
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);

    assert_index_holds_each_once(&es, &expected, "after retries");
    assert!(es.n_conflicts() >= 1, "the re-sent request came back 409");
    let attempts = es.attempts();
    let n_retried = attempts.values().filter(|n| **n > 1).count();
    assert!(
        n_retried >= 100 + es.n_conflicts(),
        "rejected and timed-out items were sent again: {n_retried}"
    );
    assert!(
        attempts.values().all(|n| *n <= 3),
        "only rejected items are sent again"
    );
    for doc in es.docs() {
        let day = doc.source["@timestamp"].as_str().unwrap()[..10].replace('-', ".");
        assert_eq!(
            doc.index,
            format!("lacework-audit-{day}"),
            "the event's own day"
        );
    }
    let requests = es.requests();
    assert!(requests.iter().all(|r| r.gzip));
    assert!(
        requests
            .iter()
            .all(|r| r.query.as_deref() == Some("pipeline=lacework-audit"))
    );
    assert_eq!(requests[0].status, 503);
    assert_eq!(requests[1].status, 429);
    let waited = requests[2].at - requests[1].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After honoured: {waited:?}"
    );
    assert_eq!(requests[2].n_actions, 100);
    assert_eq!(requests[3].n_actions, 100, "all 100 items were rejected");
    assert_eq!(
        requests[4].n_actions, 50,
        "only the 50 still rejected are sent again"
    );
    // Two spells of failure (503, 429 and rejected items; then the lost answer): one WARN as
    // each starts and one INFO as each ends, not one per attempt.
    assert_eq!(
        run.stderr.matches("Elasticsearch delivery failed").count(),
        2,
        "one WARN per spell: {run}"
    );
    assert_eq!(
        run.stderr
            .matches("Elasticsearch delivery recovered")
            .count(),
        2,
        "{run}"
    );
    assert!(!run.stderr.contains("s3cret-pw"));
    note(&format!(
        "elasticsearch: {} items retried, {} answered 409 after a lost answer, {} documents",
        n_retried,
        es.n_conflicts(),
        es.docs().len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_error_is_fatal_names_the_item_and_holds_the_checkpoint() {
    let es = FakeElasticsearch::start(Some(API_KEY_HEADER)).await;
    let (_fake, exporter, expected) = setup(&es, 13, 1_500, "batch_max_events = 100", "").await;
    es.refuse_nth_create(250);
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(1);
    let refused = es.refused();
    assert!(!refused.is_empty(), "an item was refused");
    let refused_id = &refused[0].id;
    for part in [
        "document_parsing_exception",
        "failed to parse field [user.name]",
        refused_id.as_str(),
        "logs-lacework.audit-default",
    ] {
        assert!(run.stderr.contains(part), "stderr names {part}: {run}");
    }
    assert!(!run.stderr.contains(API_KEY));
    let refused_ms = parse_time(refused[0].source["@timestamp"].as_str().unwrap());
    let checkpoint = exporter.live_checkpoint().await;
    assert!(
        checkpoint.is_none_or(|at| at <= refused_ms),
        "the checkpoint {checkpoint:?} passed the refused event at {refused_ms}"
    );
    assert!(
        es.docs().iter().all(|d| d.id != *refused_id),
        "the refused event is not in the index"
    );

    // Once the mapping is fixed, a run delivers the rest; what the failed batch had written
    // comes back 409 and nothing is stored twice.
    es.stop_refusing();
    let n_before = es.docs().len();
    exporter.run(&["run", "--once"]).await.expect_code(0);
    assert_index_holds_each_once(&es, &expected, "after the mapping was fixed");
    assert!(
        es.n_conflicts() > 0,
        "the batch written in part before the failure was sent again ({n_before} documents before)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_the_index_holds_an_unacknowledged_batch_leaves_each_event_once() {
    let es = FakeElasticsearch::start(Some(API_KEY_HEADER)).await;
    let (_fake, exporter, expected) = setup(&es, 14, 3_000, "batch_max_events = 50", "").await;
    // Every answer comes 300 ms after the documents were stored: a kill almost always lands
    // while the index holds a batch the exporter has not seen acknowledged.
    es.set_answer_delay(Duration::from_millis(300));
    let mut kills = Vec::new();
    for threshold in [expected.len() / 4, expected.len() / 2] {
        let daemon = exporter.spawn(&["run"]);
        wait_for("documents in the index", Duration::from_secs(25), || {
            es.docs().len() >= threshold
        })
        .await;
        daemon.signal("KILL").await;
        let killed = daemon.wait(TIMEOUT).await;
        assert_eq!(killed.code, None, "ended by the signal: {killed}");
        kills.push((es.docs().len(), exporter.live_checkpoint().await));
    }
    let conflicts_before_restart = es.n_conflicts();
    es.set_answer_delay(Duration::ZERO);
    let last = exporter.run(&["run", "--once"]).await;
    last.expect_code(0);

    assert_index_holds_each_once(&es, &expected, "after two kill -9 and a restart");
    assert!(
        es.n_conflicts() > 0,
        "some event was re-sent after a kill and came back 409 (the kill landed after the index took a batch)"
    );
    let attempts = es.attempts();
    let n_sent_again = attempts.values().filter(|n| **n > 1).count();
    assert_eq!(
        attempts.values().map(|n| n - 1).sum::<usize>(),
        es.n_conflicts(),
        "every attempt beyond the first came back 409: none was stored twice"
    );
    assert_eq!(es.n_created(), expected.len(), "each created once");
    note(&format!(
        "elasticsearch kill -9: documents and checkpoints at the kills {kills:?}; {} events sent again ({} conflicts, {} before the last restart), {} documents, each once",
        n_sent_again,
        es.n_conflicts(),
        conflicts_before_restart,
        es.docs().len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_exporter_at_start_without_showing_the_key() {
    let es = FakeElasticsearch::start(Some("ApiKey c29tZS1vdGhlci1rZXk=")).await;
    let (_fake, exporter, _) = setup(&es, 15, 300, "", "").await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("401"), "{run}");
    assert!(run.stderr.contains("credentials"), "{run}");
    assert!(!run.stderr.contains(API_KEY), "{run}");
    assert!(es.requests().is_empty(), "nothing was sent: {run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_splits_the_request_until_the_cluster_takes_it() {
    let es = FakeElasticsearch::start(Some(API_KEY_HEADER)).await;
    let (_fake, exporter, expected) = setup(&es, 16, 1_000, "", "").await;
    // About 25 documents fit in 40 kB; windows hold about a hundred events.
    es.set_max_body(Some(40_000));
    exporter.run(&["run", "--once"]).await.expect_code(0);
    assert_index_holds_each_once(&es, &expected, "after 413 splits");
    let requests = es.requests();
    assert!(
        requests.iter().any(|r| r.status == 413),
        "some request was too large"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.status == 200)
            .all(|r| r.n_actions < 50),
        "only halves were taken"
    );
    assert_eq!(
        es.n_conflicts(),
        0,
        "a 413 stores nothing, so nothing comes back 409"
    );
}
