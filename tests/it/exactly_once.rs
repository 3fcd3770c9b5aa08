//! Exactly-once Kafka (`exactly_once = true`) against tansu behind the read_committed
//! correction proxy (`kafka-txn-proxy`; tansu's Fetch answers carry no aborted
//! transactions, so without the proxy a `read_committed` consumer is handed aborted records).
//! What is judged is what a real `read_committed` consumer sees.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::kafka::{Broker, Consumed, duplicate_count, sink_toml};
use crate::support::*;

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn ids_of(messages: &[Consumed]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m.value["id"].as_str().map(str::to_string))
        .collect()
}

/// An exactly-once sink on `topic` with its own state topic; `properties` are more
/// librdkafka properties (`, "name" = value` each).
fn exactly_once_sink(broker: &Broker, topic: &str, extra: &str, properties: &str) -> &'static str {
    leak(sink_toml(
        &broker.bootstrap,
        topic,
        &format!(
            "exactly_once = true\nstate_topic = \"{topic}.state\"\nstall_timeout = \"1s\"\ndelivery_timeout = \"5s\"\nproperties = {{ \"transaction.timeout.ms\" = 5000{properties} }}\n{extra}"
        ),
    ))
}

/// Asserts that read_committed shows every expected event exactly once.
fn assert_exactly_once(messages: &[Consumed], expected: &[String]) {
    let ids = ids_of(messages);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        duplicate_count(messages),
        0,
        "read_committed sees no event twice"
    );
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !distinct.contains(id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(ids.len(), expected.len(), "nothing but the expected events");
}

/// The ids of every lifecycle event the fake holds, as a `run --once` of an exporter of its
/// own (lookback 25h) prints them on stdout.
async fn expected_ids(fake: &fake_lacework::FakeLacework, include: &'static str) -> Vec<String> {
    let reference = Exporter::new(
        fake,
        &Cfg {
            lookback: "25h",
            include,
            ..Cfg::default()
        },
    );
    let finished = reference.run(&["run", "--once"]).await;
    finished.expect_code(0);
    finished
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_with_only_exactly_once_kafka_needs_no_state_file() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 61, 3_000, now - DAY, now - 10 * SEC);
    let broker = Broker::start_transactional().await;
    let topic = format!("lae-eos.nostate.{}", std::process::id());
    broker.create_topic(&topic, 3).await;
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            window: "4h",
            sinks: exactly_once_sink(&broker, &topic, "", ""),
            ..Cfg::default()
        },
    );
    exporter.run(&["run", "--once"]).await.expect_code(0);
    let expected = expected_ids(&fake, "lifecycle").await;
    assert!(expected.len() > 500, "{} events", expected.len());
    assert_exactly_once(&broker.read_topic_committed(&topic).await, &expected);

    // The container is rescheduled on another host: no state file, new records meanwhile.
    std::fs::remove_file(&exporter.state_path).expect("the state file existed");
    generate(&fake, 62, 200, now_ms() - 5 * SEC, now_ms() - 3 * SEC);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = exporter.run(&["run", "--once"]).await;
    second.expect_code(0);
    assert!(
        second
            .stderr
            .contains("Taking the sink's own record of its progress"),
        "the position came from the state topic:\n{}",
        tail(&second.stderr)
    );
    let expected = expected_ids(&fake, "lifecycle").await;
    assert_exactly_once(&broker.read_topic_committed(&topic).await, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_process_with_the_same_transactional_id_fences_the_older() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 63, 400, now - DAY, now - 10 * SEC);
    let broker = Broker::start_transactional().await;
    let topic = format!("lae-eos.fence.{}", std::process::id());
    broker.create_topic(&topic, 1).await;
    let sinks = exactly_once_sink(
        &broker,
        &topic,
        "transactional_id = \"lae-fence-test\"\n",
        "",
    );
    let cfg = Cfg {
        lookback: "25h",
        window: "1h",
        sinks,
        ..Cfg::default()
    };
    let older_exporter = Exporter::new(&fake, &cfg);
    let mut older = older_exporter.spawn(&["run"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker.read_topic_committed(&topic).await.is_empty() {
        assert!(
            Instant::now() < deadline && !older.exited(),
            "nothing committed by the first process:\n{}",
            tail(&older.stderr_so_far())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Another host starts the same deployment (its own state file, the same transactional id).
    let newer_exporter = Exporter::new(&fake, &cfg);
    let mut newer = newer_exporter.spawn(&["run"]);
    // New records keep both walking, so the older one tries to write again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !older.exited() && Instant::now() < deadline {
        let t = now_ms();
        generate(&fake, 64, 5, t - 3 * SEC, t - 2 * SEC);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ended = older.wait(TIMEOUT).await;
    assert_eq!(ended.code, Some(1), "the fenced process exits 1: {ended}");
    assert!(
        ended.stderr.contains("fenced"),
        "the message says why:\n{}",
        tail(&ended.stderr)
    );
    assert!(!newer.exited(), "the newer process goes on");
    newer.signal("TERM").await;
    newer.wait(TIMEOUT).await.expect_code(0);
    let messages = broker.read_topic_committed(&topic).await;
    assert_eq!(
        duplicate_count(&messages),
        0,
        "read_committed sees nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_in_the_middle_of_a_transaction_is_aborted_and_sent_again_once() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 65, 1_000, now - DAY, now - 60 * SEC);
    let broker = Broker::start_transactional().await;
    let topic = format!("lae-eos.kill.{}", std::process::id());
    broker.create_topic(&topic, 2).await;
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            window: "2h",
            include: "all",
            // One message per produce request: a transaction of 3,000 events stays open for
            // a second or so, long enough for a kill to land inside it.
            sinks: exactly_once_sink(&broker, &topic, "", ", \"batch.num.messages\" = 1"),
            ..Cfg::default()
        },
    );
    exporter.run(&["run", "--once"]).await.expect_code(0);
    // Killed while a transaction is open: new records keep the daemon producing, the broker
    // freezes (the commit cannot come), the process is killed. Until one of those kills lands
    // inside a transaction whose records reached the log, and at most 20 times (on a loaded
    // machine the daemon takes longer to start producing, and early kills land before).
    let mut kills = 0;
    let mut open_left = false;
    while !open_left && kills < 20 {
        let t = now_ms();
        generate(&fake, 66 + kills, 3_000, t - 50 * SEC, t - 3 * SEC);
        let running = exporter.spawn(&["run"]);
        tokio::time::sleep(Duration::from_millis(200 + 150 * (kills % 10))).await;
        broker.pause();
        tokio::time::sleep(Duration::from_millis(300)).await;
        running.signal("KILL").await;
        running.wait(TIMEOUT).await;
        broker.resume();
        kills += 1;
        let uncommitted = broker.read_topic_uncommitted(&topic).await.len();
        let committed = broker.read_topic_committed(&topic).await.len();
        open_left = uncommitted > committed;
    }
    assert!(open_left, "no kill in {kills} landed inside a transaction");
    exporter.run(&["run", "--once"]).await.expect_code(0);
    let expected = expected_ids(&fake, "all").await;
    let committed = broker.read_topic_committed(&topic).await;
    assert_exactly_once(&committed, &expected);
    let everything = broker.read_topic_uncommitted(&topic).await;
    assert!(
        duplicate_count(&everything) > 0,
        "the aborted transaction's records are in the log (read_uncommitted sees them)"
    );
    note(&format!(
        "exactly-once kafka, kill inside a transaction ({kills} kills): {} events; read_committed {} messages, 0 duplicates; read_uncommitted {} messages, {} duplicates (the aborted transaction and its re-send)",
        expected.len(),
        committed.len(),
        everything.len(),
        duplicate_count(&everything)
    ));
}
