//! The webhook sink against a real HTTP receiver on loopback: batching, order, signatures,
//! outages, throttling, refusals, crashes.

use std::collections::HashSet;
use std::time::Duration;

use fake_lacework::FakeLacework;
use serde_json::Value;

use crate::support::receiver::{Receiver, Reply};
use crate::support::*;

const SIGNING_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const TOKEN: &str = "hec-or-bearer-token-0123456789";

/// A fake with `count` records over the two days before now, an exporter whose only sink is
/// a webhook with `sink_extra` settings, and the secret files that sink may name.
async fn setup(
    count: usize,
    receiver: &Receiver,
    sink_extra: &str,
) -> (FakeLacework, Exporter, i64, i64) {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 7, count, now - 2 * DAY, now - 10 * SEC);
    let dir = tempfile::tempdir().expect("temporary directory");
    let signing = dir.path().join("signing");
    let token = dir.path().join("token");
    std::fs::write(&signing, SIGNING_SECRET).unwrap();
    std::fs::write(&token, TOKEN).unwrap();
    let sinks = format!(
        "[[sinks]]\ntype = \"webhook\"\nname = \"siem\"\nurl = \"{}\"\nretry_initial = \"100ms\"\nretry_max = \"500ms\"\ntimeout = \"5s\"\n{}\n",
        receiver.url("/lacework"),
        sink_extra
            .replace("SIGNING_FILE", &signing.display().to_string())
            .replace("TOKEN_FILE", &token.display().to_string())
    );
    let cfg = Cfg {
        sinks: Box::leak(sinks.into_boxed_str()),
        ..Cfg::default()
    };
    let exporter = Exporter::new(&fake, &cfg);
    // The secret files live as long as the exporter's directory.
    std::mem::forget(dir);
    (fake, exporter, now - 2 * DAY - HOUR, now)
}

fn expected_ids(fake: &FakeLacework, from: i64, to: i64) -> HashSet<String> {
    fake.expected_lifecycle(from, to, None)
        .iter()
        .map(record_key)
        .collect()
}

fn keys_of(events: &[Value]) -> Vec<String> {
    events.iter().map(event_key).collect()
}

fn verify_signature(request: &crate::support::receiver::Received) {
    let webhook =
        standardwebhooks::Webhook::new(SIGNING_SECRET).expect("reference library takes the secret");
    webhook
        .verify(&request.body, &request.headers)
        .unwrap_or_else(|e| panic!("signature does not verify with the reference library: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_arrive_complete_signed_and_in_time_order() {
    let receiver = Receiver::start().await;
    let (fake, exporter, from, to) = setup(3000, &receiver, "batch_max_events = 50\nsigning_secret_file = \"SIGNING_FILE\"\nheaders = { \"X-Team\" = \"soc\" }").await;
    let run = exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await;
    run.expect_code(0);
    assert!(run.stdout.is_empty(), "no stdout sink, no stdout: {run}");

    let requests = receiver.requests();
    assert!(
        requests.iter().all(|r| r.status == 200),
        "every request accepted"
    );
    let events = receiver.accepted_events();
    let keys = keys_of(&events);
    assert_eq!(
        keys.len(),
        keys.iter().collect::<HashSet<_>>().len(),
        "no event twice"
    );
    assert_eq!(
        keys.into_iter().collect::<HashSet<_>>(),
        expected_ids(&fake, from, to),
        "every lifecycle event of the range"
    );

    let mut webhook_ids = HashSet::new();
    for request in &requests {
        let batch = request.events();
        assert!(
            !batch.is_empty() && batch.len() <= 50,
            "batch of {} events",
            batch.len()
        );
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/x-ndjson")
        );
        assert_eq!(request.header("x-team").as_deref(), Some("soc"));
        verify_signature(request);
        let id = request.header("webhook-id").expect("webhook-id");
        assert!(id.starts_with("msg_") && !id.contains('.'), "{id}");
        assert_eq!(
            request.header("idempotency-key").as_deref(),
            Some(id.as_str()),
            "Idempotency-Key carries the webhook-id"
        );
        assert!(webhook_ids.insert(id), "each batch has its own webhook-id");
    }
    // Windows are delivered in order and each window's events in time order, so the whole
    // stream is ordered by time.
    let times: Vec<i64> = events
        .iter()
        .map(|e| parse_time(e["time"].as_str().unwrap()))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "events arrive in time order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_is_down_gets_everything_once_when_it_recovers() {
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(503).with_body("maintenance"));
    let (fake, exporter, _, _) = setup(400, &receiver, "batch_max_events = 25").await;
    let mut running = exporter.spawn(&["run"]);
    let probe = receiver.clone();
    running
        .wait_until(
            "several refused deliveries",
            Duration::from_secs(30),
            move |_| probe.requests().len() >= 4,
        )
        .await;
    let first_event = first_lifecycle_ms(&fake);
    let held = exporter.live_checkpoint().await;
    assert!(
        held.is_none_or(|c| c <= first_event),
        "the checkpoint may pass empty windows, never the first undelivered event"
    );
    assert!(receiver.accepted_events().is_empty());

    receiver.set_default(Reply::status(200));
    let now = now_ms();
    let expected = expected_ids(&fake, now - 3 * DAY, now);
    let probe = receiver.clone();
    let wanted = expected.len();
    running
        .wait_until(
            "every event delivered after recovery",
            Duration::from_secs(30),
            move |_| probe.accepted_events().len() >= wanted,
        )
        .await;
    let probe_exporter = &exporter;
    let mut committed = None;
    for _ in 0..50 {
        committed = probe_exporter.live_checkpoint().await;
        if committed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        committed.is_some(),
        "the checkpoint moves once the endpoint accepted"
    );
    running.signal("TERM").await;
    let finished = running.wait(Duration::from_secs(10)).await;
    finished.expect_code(0);

    let keys = keys_of(&receiver.accepted_events());
    assert_eq!(
        keys.len(),
        keys.iter().collect::<HashSet<_>>().len(),
        "each event accepted once"
    );
    assert_eq!(keys.into_iter().collect::<HashSet<_>>(), expected);
    assert!(
        finished.stderr.matches("holding the batch").count() <= 2,
        "one warning per outage, not per retry:\n{}",
        finished.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let receiver = Receiver::start().await;
    let date = (chrono::Utc::now() + chrono::Duration::seconds(6))
        .to_rfc2822()
        .replace("+0000", "GMT");
    receiver.script([
        Reply::status(429).with_header("retry-after", "2"),
        Reply::status(503).with_header("retry-after", &date),
    ]);
    let (fake, exporter, from, to) = setup(200, &receiver, "").await;
    exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await
        .expect_code(0);
    let requests = receiver.requests();
    assert!(requests.len() >= 3, "{} requests", requests.len());
    let first_gap = requests[1].at - requests[0].at;
    assert!(
        first_gap >= Duration::from_millis(1900),
        "waited {first_gap:?} after Retry-After: 2"
    );
    let second_gap = requests[2].at - requests[1].at;
    // The date was 6 s ahead when the test began and the first wait took 2 s; HTTP dates have
    // whole seconds.
    assert!(
        second_gap >= Duration::from_millis(2500),
        "waited {second_gap:?} for an HTTP-date Retry-After"
    );
    let keys: HashSet<String> = keys_of(&receiver.accepted_events()).into_iter().collect();
    assert_eq!(keys, expected_ids(&fake, from, to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_stops_delivery_with_a_clear_error_and_commits_nothing() {
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(401).with_body("{\"text\":\"Invalid token\",\"code\":4}"));
    let (fake, exporter, _, _) = setup(200, &receiver, "bearer_token_file = \"TOKEN_FILE\"").await;
    let run = exporter
        .run(&["--log-level", "debug", "run", "--once"])
        .await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("401") && run.stderr.contains("Invalid token"),
        "{run}"
    );
    assert_eq!(receiver.requests().len(), 1, "a 401 is not retried");
    assert_eq!(
        receiver.requests()[0].header("authorization").as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert!(
        !run.stderr.contains(TOKEN),
        "the token never appears in logs"
    );
    let first_event = first_lifecycle_ms(&fake);
    let held = exporter.live_checkpoint().await;
    assert!(
        held.is_none_or(|c| c <= first_event),
        "nothing undelivered committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_slow_receiver_loses_nothing() {
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_millis(300));
    let (fake, exporter, _, _) = setup(2000, &receiver, "batch_max_events = 10").await;
    let mut running = exporter.spawn(&["run", "--once"]);
    let probe = receiver.clone();
    running
        .wait_until(
            "a few batches accepted",
            Duration::from_secs(30),
            move |_| probe.accepted_events().len() >= 30,
        )
        .await;
    running.signal("KILL").await;
    let killed = running.wait(Duration::from_secs(10)).await;
    assert_eq!(killed.code, None, "ended by the signal");
    let before_restart = receiver.accepted_events().len();

    receiver.set_delay(Duration::ZERO);
    exporter.run(&["run", "--once"]).await.expect_code(0);
    let now = now_ms();
    let expected = expected_ids(&fake, now - 3 * DAY, now);
    let keys = keys_of(&receiver.accepted_events());
    let unique: HashSet<String> = keys.iter().cloned().collect();
    assert_eq!(unique, expected, "nothing lost across kill -9");
    let duplicates = keys.len() - unique.len();
    note(&format!(
        "webhook kill -9: {before_restart} events accepted before the kill, {duplicates} delivered twice after the restart"
    ));
    // The window in flight is sent again; each repeated event comes in a chunk with the same
    // webhook-id as before, so a receiver that drops repeated ids gets every event once.
    let accepted: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    let mut chunks_of_event: std::collections::HashMap<String, HashSet<String>> =
        Default::default();
    for request in &accepted {
        let webhook_id = request
            .header("webhook-id")
            .expect("webhook-id on every request");
        for event in request.events() {
            chunks_of_event
                .entry(event_key(&event))
                .or_default()
                .insert(webhook_id.clone());
        }
    }
    assert!(
        chunks_of_event.values().all(|ids| ids.len() == 1),
        "a repeated event always came in the same chunk"
    );
    let mut seen_chunks = HashSet::new();
    let deduplicated: Vec<Value> = accepted
        .iter()
        .filter(|r| seen_chunks.insert(r.header("webhook-id").unwrap()))
        .flat_map(|r| r.events())
        .collect();
    assert_eq!(
        keys_of(&deduplicated).len(),
        unique.len(),
        "dropping repeated webhook-ids leaves every event once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batches_are_split_on_413() {
    let receiver = Receiver::start().await;
    receiver.set_max_body(Some(6_000));
    let (fake, exporter, from, to) = setup(600, &receiver, "batch_max_events = 200").await;
    exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await
        .expect_code(0);
    let requests = receiver.requests();
    assert!(
        requests.iter().any(|r| r.status == 413),
        "the receiver refused a large batch"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.status == 200)
            .all(|r| r.wire_len <= 6_000)
    );
    let keys = keys_of(&receiver.accepted_events());
    assert_eq!(keys.len(), keys.iter().collect::<HashSet<_>>().len());
    assert_eq!(
        keys.into_iter().collect::<HashSet<_>>(),
        expected_ids(&fake, from, to)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_envelopes_carry_the_token_and_the_event() {
    let receiver = Receiver::start().await;
    let (fake, exporter, from, to) = setup(
        300,
        &receiver,
        "format = \"splunk_hec\"\nhec_token_file = \"TOKEN_FILE\"\nhec_index = \"security\"",
    )
    .await;
    exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await
        .expect_code(0);
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            request.header("authorization").as_deref(),
            Some(&*format!("Splunk {TOKEN}"))
        );
    }
    let envelopes = receiver.accepted_events();
    for envelope in &envelopes {
        assert_eq!(envelope["sourcetype"], "lacework:audit:lifecycle");
        assert_eq!(envelope["source"], "lacework-audit-exporter");
        assert_eq!(envelope["index"], "security");
        assert_eq!(envelope["host"], envelope["event"]["account"]);
        let time_ms = (envelope["time"].as_f64().unwrap() * 1000.0).round() as i64;
        assert_eq!(
            time_ms,
            parse_time(envelope["event"]["time"].as_str().unwrap())
        );
    }
    let events: Vec<Value> = envelopes.iter().map(|e| e["event"].clone()).collect();
    let keys: HashSet<String> = keys_of(&events).into_iter().collect();
    assert_eq!(keys, expected_ids(&fake, from, to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_json_arrays_are_signed_over_the_uncompressed_body() {
    let receiver = Receiver::start().await;
    let (fake, exporter, from, to) = setup(
        300,
        &receiver,
        "format = \"json_array\"\ncompression = \"gzip\"\nsigning_secret_file = \"SIGNING_FILE\"",
    )
    .await;
    exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await
        .expect_code(0);
    let requests = receiver.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.header("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(
            request.wire_len < request.body.len(),
            "the body was compressed"
        );
        verify_signature(request);
    }
    let keys: HashSet<String> = keys_of(&receiver.accepted_events()).into_iter().collect();
    assert_eq!(keys, expected_ids(&fake, from, to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_sent_and_secrets_stay_out_of_logs() {
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500).with_body("oops")]);
    let (_fake, exporter, from, to) = setup(
        100,
        &receiver,
        "basic = { user = \"exporter\", password_file = \"TOKEN_FILE\" }\nsigning_secret_file = \"SIGNING_FILE\"",
    )
    .await;
    let run = exporter
        .run(&[
            "--log-level",
            "trace",
            "replay",
            "--from",
            &rfc3339(from),
            "--to",
            &rfc3339(to),
        ])
        .await;
    run.expect_code(0);
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("exporter:{TOKEN}"))
    );
    assert_eq!(
        receiver.requests()[0].header("authorization").as_deref(),
        Some(&*expected)
    );
    for secret in [TOKEN, SIGNING_SECRET, "C2FVsBQIhrscChlQIMV", &expected] {
        assert!(
            !run.stderr.contains(secret),
            "{secret:?} leaked into the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_settings_are_configuration_errors() {
    let receiver = Receiver::start().await;
    for (extra, key) in [
        ("format = \"splunk_hec\"", "hec_token_file"),
        ("batch_max_bytes = \"1 parsec\"", "batch_max_bytes"),
        ("headers = { \"Authorization\" = \"x\" }", "headers"),
        ("compression = \"brotli\"", "compression"),
        ("batch_max_events = 0", "batch_max_events"),
    ] {
        let (_fake, exporter, _, _) = setup(1, &receiver, extra).await;
        let run = exporter.run(&["validate"]).await;
        run.expect_code(2);
        assert!(
            run.stderr.contains(&format!("sinks[0].{key}")),
            "{extra}: {run}"
        );
    }
    let (_fake, exporter, _, _) = setup(
        1,
        &receiver,
        "signing_secret_file = \"/nonexistent/secret\"",
    )
    .await;
    for args in [&["validate"][..], &["run", "--once"][..]] {
        let run = exporter.run(args).await;
        run.expect_code(2);
        assert!(run.stderr.contains("signing_secret_file"), "{run}");
    }
}
