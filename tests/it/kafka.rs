//! The Kafka sink against a Kafka-protocol broker of each test's own. librdkafka's mock
//! cluster for exact replays, keys and headers, topic templates, a frozen or downed broker,
//! kill -9 and `validate --online`; tansu for what the mock cannot do: a cluster replaced on
//! the same address, and SASL refusals.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::kafka::{Broker, Consumed, duplicate_count, free_port, sink_toml};
use crate::support::*;

/// A `&'static str` for `Cfg::sinks`.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// A topic name no other test (or earlier run on a shared broker) uses.
fn unique_topic(stem: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("lae-it.{stem}.{}.{nanos}", std::process::id())
}

fn events_of(messages: &[Consumed]) -> Vec<Value> {
    messages.iter().map(|m| m.value.clone()).collect()
}

fn text_or_null(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

/// `GET /metrics` from the exporter's telemetry listener.
async fn scrape_metrics(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("the metrics listener {addr} accepts: {e}"));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("the metrics answer within 5 s")
        .expect("metrics read");
    response
}

/// Polls `state show` until the live checkpoint passes `after_ms`; fails when `daemon` exits
/// first.
async fn wait_for_checkpoint_after(
    exporter: &Exporter,
    daemon: &mut Running,
    after_ms: i64,
    timeout: Duration,
) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(checkpoint) = exporter.live_checkpoint().await
            && checkpoint > after_ms
        {
            return checkpoint;
        }
        assert!(
            !daemon.exited(),
            "the exporter exited before the checkpoint passed {}:\n{}",
            rfc3339(after_ms),
            tail(&daemon.stderr_so_far())
        );
        assert!(
            Instant::now() < deadline,
            "the live checkpoint did not pass {} within {timeout:?}:\n{}",
            rfc3339(after_ms),
            tail(&daemon.stderr_so_far())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_puts_exactly_the_expected_events_on_the_topic_with_keys_and_headers() {
    let fake = start_fake(200).await;
    let now = now_ms();
    let (from, to) = (now - 2 * DAY, now - HOUR);
    generate(&fake, 41, 2000, from, to);
    let broker = Broker::shared_or_mock();
    let topic = unique_topic("replay");
    broker.create_topic(&topic, 3).await;
    let sinks = leak(sink_toml(
        &broker.bootstrap,
        &topic,
        "key = \"target\"\n[sinks.properties]\n\"compression.type\" = \"zstd\"\n",
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            sinks,
            ..Cfg::default()
        },
    );

    let started = Instant::now();
    let replay = exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await;
    replay.expect_code(0);
    let elapsed = started.elapsed();

    let messages = broker.read_topic(&topic).await;
    let expected = fake.expected_lifecycle(from, to, None);
    assert!(expected.len() > 400, "too few records to mean much");
    assert_exactly_once(&events_of(&messages), &expected, "kafka replay");
    note(&format!(
        "kafka replay: {} events to a 3-partition topic in {elapsed:?}",
        messages.len()
    ));

    let mut partitions_of_key: BTreeMap<String, HashSet<i32>> = BTreeMap::new();
    let mut n_null_keys = 0;
    for message in &messages {
        let event = &message.value;
        assert_eq!(
            message.key,
            text_or_null(&event["target"]),
            "key = target: {event}"
        );
        match &message.key {
            Some(key) => {
                partitions_of_key
                    .entry(key.clone())
                    .or_default()
                    .insert(message.partition);
            }
            None => n_null_keys += 1,
        }
        let want: BTreeMap<String, Option<String>> = [
            ("schema", text_or_null(&event["schema"])),
            ("type", text_or_null(&event["type"])),
            ("id", text_or_null(&event["id"])),
            ("account", text_or_null(&event["account"])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(message.headers, want, "headers of {event}");
    }
    assert!(
        n_null_keys > 0,
        "API-key events have no target, so a null key"
    );
    for (key, partitions) in &partitions_of_key {
        assert_eq!(
            partitions.len(),
            1,
            "key {key} landed on partitions {partitions:?}"
        );
    }
    let positions: HashSet<(i32, i64)> = messages.iter().map(|m| (m.partition, m.offset)).collect();
    assert_eq!(positions.len(), messages.len(), "each message read once");
    let used: HashSet<i32> = messages.iter().map(|m| m.partition).collect();
    if !broker.is_external() {
        assert_eq!(used.len(), 3, "keys spread over every partition");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_template_routes_each_event_to_the_topic_of_its_type() {
    let fake = start_fake(500).await;
    let now = now_ms();
    let (from, to) = (now - DAY, now - HOUR);
    generate(&fake, 42, 600, from, to);
    let broker = Broker::shared_or_mock();
    let prefix = unique_topic("bytype");
    let sinks = leak(sink_toml(
        &broker.bootstrap,
        &format!("{prefix}.{{type}}"),
        "key = \"id\"\n",
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            sinks,
            ..Cfg::default()
        },
    );
    exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await
        .expect_code(0);

    let topics: Vec<String> = broker
        .topics()
        .await
        .into_iter()
        .filter(|t| t.starts_with(&format!("{prefix}.")))
        .collect();
    let mut all = Vec::new();
    for topic in &topics {
        let event_type = &topic[prefix.len() + 1..];
        let messages = broker.read_topic(topic).await;
        assert!(!messages.is_empty(), "{topic} was created but is empty");
        for message in &messages {
            assert_eq!(
                message.value["type"], event_type,
                "on {topic}: {}",
                message.value
            );
            assert_eq!(message.key, text_or_null(&message.value["id"]), "key = id");
            assert_eq!(&message.topic, topic);
        }
        all.extend(messages);
    }
    let expected = fake.expected_lifecycle(from, to, None);
    for topic in &topics {
        let event_type = &topic[prefix.len() + 1..];
        let n_expected = expected
            .iter()
            .filter(|r| r.expected_type.as_deref() == Some(event_type))
            .count();
        let n_got = all.iter().filter(|m| &m.topic == topic).count();
        assert_eq!(n_got, n_expected, "events on {topic}");
    }
    let expected_types: HashSet<&str> = expected
        .iter()
        .filter_map(|r| r.expected_type.as_deref())
        .collect();
    assert_eq!(
        topics.len(),
        expected_types.len(),
        "one topic per type: {topics:?}"
    );
    assert_exactly_once(&events_of(&all), &expected, "templated topics");
}

/// How a test takes the brokers away from the exporter for a while.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// Frozen: connections stay open and nothing is answered (a hung broker, a stopped VM).
    Paused,
    /// Down: connections are closed and new ones refused (a crashed or restarting broker).
    Down,
}

impl Outage {
    fn begin(self, broker: &Broker) {
        match self {
            Outage::Paused => broker.pause(),
            Outage::Down => broker.down(),
        }
    }

    fn end(self, broker: &Broker) {
        match self {
            Outage::Paused => broker.resume(),
            Outage::Down => broker.up(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_broker_holds_the_checkpoint_then_everything_arrives() {
    outage_holds_the_checkpoint_then_everything_arrives(Outage::Paused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downed_broker_holds_the_checkpoint_then_everything_arrives() {
    outage_holds_the_checkpoint_then_everything_arrives(Outage::Down).await;
}

/// The daemon delivers its history, the brokers go away for 10 s while new records come, then
/// return: the checkpoint never passes an undelivered record meanwhile, the outage is one WARN
/// and `lae_sink_up 0`, each recovery one INFO, and every event lands exactly once.
async fn outage_holds_the_checkpoint_then_everything_arrives(outage: Outage) {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 43, 200, now - 50 * MIN, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - HOUR, now, None);
    let broker = Broker::mock();
    let topic = unique_topic("paused");
    broker.create_topic(&topic, 3).await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let sinks = leak(format!(
        "{}\n[telemetry]\nlisten = \"{metrics_addr}\"\n",
        sink_toml(&broker.bootstrap, &topic, "stall_timeout = \"1s\"\n")
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "1h",
            sinks,
            ..Cfg::default()
        },
    );
    let mut daemon = exporter.spawn(&["run"]);
    broker
        .wait_for_messages(&topic, history.len(), Duration::from_secs(30))
        .await;
    wait_for_checkpoint_after(
        &exporter,
        &mut daemon,
        now - 10 * SEC,
        Duration::from_secs(15),
    )
    .await;

    outage.begin(&broker);
    let paused_at = now_ms();
    // New records during the outage, all later than the checkpoint (which trails `now` by
    // `settle`): the daemon reads them and cannot deliver them.
    let first_new = paused_at + 200;
    generate(&fake, 44, 40, first_new, paused_at + 1500);
    // The earliest event among them: a window ending before it holds none of them, and its
    // commit during the outage is right (an empty batch needs no broker).
    let first_event = fake
        .expected_lifecycle(first_new, paused_at + 1500, None)
        .iter()
        .map(|record| record.created_ms)
        .min()
        .expect("some of 40 new records are lifecycle events");
    let mut checkpoints = Vec::new();
    let pause = Instant::now();
    while pause.elapsed() < Duration::from_secs(10) {
        assert!(
            !daemon.exited(),
            "the daemon exited during the outage ({outage:?}):\n{}",
            daemon.stderr_so_far()
        );
        if let Some(checkpoint) = exporter.live_checkpoint().await {
            checkpoints.push(checkpoint);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stalled_logs = daemon.stderr_so_far();
    let metrics_paused = scrape_metrics(&metrics_addr).await;
    outage.end(&broker);

    let expected = fake.expected_lifecycle(now - HOUR, now_ms() + SEC, None);
    broker
        .wait_for_messages(&topic, expected.len(), Duration::from_secs(30))
        .await;
    let metrics_resumed = scrape_metrics(&metrics_addr).await;
    daemon.signal("TERM").await;
    let done = daemon.wait(TIMEOUT).await;
    done.expect_code(0);

    assert!(
        metrics_paused.contains("lae_sink_up{sink=\"bus\"} 0\n"),
        "lae_sink_up is 0 during the outage ({outage:?}):\n{metrics_paused}"
    );
    assert!(
        metrics_resumed.contains("lae_sink_up{sink=\"bus\"} 1\n"),
        "lae_sink_up is 1 again:\n{metrics_resumed}"
    );

    let late: Vec<&i64> = checkpoints.iter().filter(|c| **c > first_event).collect();
    assert!(
        late.is_empty(),
        "the checkpoint moved past undelivered records ({}) during the outage ({outage:?}): {:?}",
        rfc3339(first_event),
        late.iter().map(|c| rfc3339(**c)).collect::<Vec<_>>()
    );
    let distinct: HashSet<&i64> = checkpoints.iter().collect();
    assert!(
        stalled_logs
            .matches("Kafka brokers are not acknowledging")
            .count()
            == 1,
        "one WARN for the outage, not one per message or retry:\n{}",
        tail(&stalled_logs)
    );
    // librdkafka reconnects to each broker on its own backoff (up to 10 s), so a partition
    // whose leader is reached last can stall a second time right after the first recovery:
    // that is a second WARN and INFO pair, not a repeated message.
    let stalls = done
        .stderr
        .matches("Kafka brokers are not acknowledging")
        .count();
    let recoveries = done
        .stderr
        .matches("Kafka brokers acknowledge messages again")
        .count();
    assert!(
        recoveries >= 1 && recoveries == stalls,
        "one INFO for each recovery, as many as WARNs ({stalls}):\n{}",
        tail(&done.stderr)
    );
    let last_stall = done.stderr.rfind("Kafka brokers are not acknowledging");
    let last_recovery = done
        .stderr
        .rfind("Kafka brokers acknowledge messages again");
    assert!(
        last_recovery > last_stall,
        "the log ends recovered:\n{}",
        tail(&done.stderr)
    );
    let messages = broker.read_topic(&topic).await;
    let n_duplicates = duplicate_count(&messages);
    note(&format!(
        "kafka {outage:?} 10 s: {} events, {n_duplicates} duplicate ids, {} distinct checkpoint values during the outage",
        messages.len(),
        distinct.len()
    ));
    assert_exactly_once(
        &events_of(&messages),
        &expected,
        &format!("after the outage ({outage:?})"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_nothing() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 45, 6000, now - DAY, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - 2 * DAY, now, None);
    fake.fail_next(
        100_000,
        fake_lacework::Fault::Slow(Duration::from_millis(20)),
    );
    let broker = Broker::mock();
    let topic = unique_topic("kill9");
    broker.create_topic(&topic, 3).await;
    let sinks = leak(sink_toml(
        &broker.bootstrap,
        &topic,
        "stall_timeout = \"1s\"\n",
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            window: "2h",
            sinks,
            ..Cfg::default()
        },
    );

    // 1. Killed while it walks the history, wherever it happens to be.
    let mut first = exporter.spawn(&["run"]);
    // Messages first: `state show` must not race the exporter creating the state database.
    broker
        .wait_for_messages(&topic, 1, Duration::from_secs(30))
        .await;
    wait_for_checkpoint_after(&exporter, &mut first, 0, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.signal("KILL").await;
    let killed = first.wait(TIMEOUT).await;
    assert_eq!(killed.code, None, "killed by a signal: {killed}");
    let n_first = broker.read_topic(&topic).await.len();
    assert!(
        n_first < history.len(),
        "the kill came too late to test anything ({n_first} of {} delivered)",
        history.len()
    );

    // 2. Killed while a batch waits for a paused broker: its messages reached the broker's
    // socket but were never acknowledged, so the restart sends them again.
    let mut second = exporter.spawn(&["run"]);
    broker
        .wait_for_messages(&topic, history.len(), Duration::from_secs(60))
        .await;
    wait_for_checkpoint_after(
        &exporter,
        &mut second,
        now - 10 * SEC,
        Duration::from_secs(30),
    )
    .await;
    broker.pause();
    let paused_at = now_ms();
    generate(&fake, 48, 40, paused_at + 200, paused_at + 1500);
    second
        .wait_until(
            "a batch stalled on the paused broker",
            Duration::from_secs(15),
            |d| {
                d.stderr_so_far()
                    .contains("Kafka brokers are not acknowledging")
            },
        )
        .await;
    second.signal("KILL").await;
    second.wait(TIMEOUT).await;
    broker.resume();

    exporter.run(&["run", "--once"]).await.expect_code(0);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now_ms() + SEC, None);
    let messages = broker.read_topic(&topic).await;
    let counts = key_counts(&events_of(&messages));
    let missing: Vec<String> = expected
        .iter()
        .map(record_key)
        .filter(|key| !counts.contains_key(key))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "lost after kill -9 and restart: {missing:?}"
    );
    let ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m.value["id"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        expected.len(),
        "no event outside the expected set"
    );
    note(&format!(
        "kafka kill -9: {} expected events, {} messages on the topic, {} duplicate ids (first kill after {n_first} messages, second kill with {} events in flight to a paused broker)",
        expected.len(),
        messages.len(),
        duplicate_count(&messages),
        expected.len() - history.len()
    ));
}

/// On tansu: the new, empty cluster must answer on the old address, and librdkafka's mock
/// cluster picks its own ports (the Rust API takes none) and cannot forget its log or its
/// idempotent producers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_cluster_gets_a_new_producer_and_delivery_resumes() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 46, 100, now - 30 * MIN, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - HOUR, now, None);
    let mut broker = Broker::start().await;
    let topic = unique_topic("replaced");
    broker.create_topic(&topic, 3).await;
    let sinks = leak(sink_toml(
        &broker.bootstrap,
        &topic,
        "delivery_timeout = \"2s\"\nstall_timeout = \"1s\"\nrecreate_after_timeouts = 2\n",
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "1h",
            sinks,
            ..Cfg::default()
        },
    );
    let daemon = exporter.spawn(&["run"]);
    broker
        .wait_for_messages(&topic, history.len(), Duration::from_secs(30))
        .await;

    broker.replace_with_empty().await;
    broker.create_topic(&topic, 3).await;
    let replaced_at = now_ms();
    generate(&fake, 47, 30, replaced_at - 3 * SEC, replaced_at);
    let fresh = fake.expected_lifecycle(replaced_at - 3 * SEC, replaced_at + SEC, None);
    let started = Instant::now();
    broker
        .wait_for_messages(&topic, fresh.len(), Duration::from_secs(40))
        .await;
    let recovery = started.elapsed();
    daemon.signal("TERM").await;
    let done = daemon.wait(TIMEOUT).await;
    done.expect_code(0);
    assert!(
        done.stderr.contains("Recreated the Kafka producer"),
        "the producer was recreated:\n{}",
        tail(&done.stderr)
    );
    let messages = broker.read_topic(&topic).await;
    let counts = key_counts(&events_of(&messages));
    for record in &fresh {
        assert!(
            counts.contains_key(&record_key(record)),
            "missing on the new cluster: {}",
            record.json
        );
    }
    note(&format!(
        "kafka replaced cluster: delivery resumed {recovery:?} after the replacement"
    ));
}

/// `run --once` against a broker that requires SASL, logging in as `exporter` with `password`
/// over `mechanism`.
async fn run_against_authenticating_broker(
    mechanism: &str,
    password: &str,
    extra: &str,
) -> Finished {
    let fake = start_fake(200).await;
    let broker = Broker::start_with(&["--authentication"]).await;
    let topic = unique_topic("sasl");
    let dir = tempfile::tempdir().expect("temporary directory");
    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, format!("{password}\n")).expect("password written");
    let sinks = leak(sink_toml(
        &broker.bootstrap,
        &topic,
        &format!(
            "password_file = \"{}\"\n{extra}[sinks.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"{mechanism}\"\n\"sasl.username\" = \"exporter\"\n",
            password_file.display()
        ),
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            sinks,
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    assert_eq!(
        run.code,
        Some(1),
        "a refused login stops the exporter: {run}"
    );
    assert!(
        !run.stderr.contains(password),
        "the password never shows: {run}"
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "refused in {:?}",
        run.elapsed
    );
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_refusal_is_fatal_and_names_the_mechanism() {
    let run = run_against_authenticating_broker("SCRAM-SHA-512", "not-the-password", "").await;
    assert!(
        run.stderr
            .contains("SASL authentication failed with mechanism SCRAM-SHA-512"),
        "the error names the mechanism: {run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_sasl_mechanism_is_fatal_and_names_it() {
    let run = run_against_authenticating_broker(
        "PLAIN",
        "whatever-password",
        "healthcheck_timeout = \"3s\"\n",
    )
    .await;
    assert!(
        run.stderr.contains("with mechanism PLAIN")
            && run.stderr.contains("PLAIN mechanism handshake failed"),
        "the error names the mechanism: {run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_checks_the_broker_and_fails_fast_when_unreachable() {
    let fake = start_fake(200).await;
    let broker = Broker::shared_or_mock();
    let topic = unique_topic("validate");
    broker.create_topic(&topic, 1).await;
    for topic in [topic.clone(), format!("{topic}.{{account}}.{{type}}")] {
        let sinks = leak(sink_toml(&broker.bootstrap, &topic, ""));
        let exporter = Exporter::new(
            &fake,
            &Cfg {
                sinks,
                ..Cfg::default()
            },
        );
        let validated = exporter.run(&["validate", "--online"]).await;
        validated.expect_code(0);
        assert!(validated.stdout.contains("sinks reachable"), "{validated}");
    }

    let nowhere = format!("127.0.0.1:{}", free_port());
    let sinks = leak(sink_toml(
        &nowhere,
        &topic,
        "healthcheck_timeout = \"2s\"\n",
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            sinks,
            ..Cfg::default()
        },
    );
    let validated = exporter.run(&["validate", "--online"]).await;
    assert_eq!(
        validated.code,
        Some(1),
        "an unreachable broker fails validation: {validated}"
    );
    assert!(
        validated
            .stderr
            .contains(&format!("brokers {nowhere} did not answer within 2s")),
        "the error names the brokers: {validated}"
    );
    assert!(
        validated.elapsed < Duration::from_secs(8),
        "took {:?}",
        validated.elapsed
    );

    let sinks = leak(sink_toml(
        &broker.bootstrap,
        &topic,
        "[sinks.properties]\n\"no.such.property\" = 1\n",
    ));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            sinks,
            ..Cfg::default()
        },
    );
    let validated = exporter.run(&["validate"]).await;
    assert_eq!(
        validated.code,
        Some(2),
        "librdkafka refuses unknown properties: {validated}"
    );
    assert!(validated.stderr.contains("no.such.property"), "{validated}");
}
