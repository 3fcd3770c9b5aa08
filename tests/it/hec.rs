//! The webhook sink with Splunk HEC indexer acknowledgement (`ack = true`) against a fake HEC
//! that indexes a request's events only when its ack becomes true: delayed acks hold the
//! checkpoint, a lost request is sent again and indexed once, a token without acks is a
//! clear fatal error, and `ack = false` still takes a plain 200.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fake_lacework::FakeLacework;
use serde_json::Value;

use crate::support::hec::{FakeHec, HEC_TOKEN};
use crate::support::*;

/// A fake Lacework with `count` records over the two days before now, and an exporter whose
/// only sink is a `splunk_hec` webhook to `hec` with `sink_extra` settings.
async fn setup(count: usize, hec: &FakeHec, sink_extra: &str) -> (FakeLacework, Exporter) {
    setup_with_token(count, hec, sink_extra, HEC_TOKEN).await
}

async fn setup_with_token(
    count: usize,
    hec: &FakeHec,
    sink_extra: &str,
    token: &str,
) -> (FakeLacework, Exporter) {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 11, count, now - 2 * DAY, now - 10 * SEC);
    let dir = tempfile::tempdir().expect("temporary directory");
    let token_file = dir.path().join("hec-token");
    std::fs::write(&token_file, token).unwrap();
    let sinks = format!(
        "[[sinks]]\ntype = \"webhook\"\nname = \"splunk\"\nurl = \"{}\"\nformat = \"splunk_hec\"\nhec_token_file = \"{}\"\nbatch_max_events = 50\nretry_initial = \"100ms\"\nretry_max = \"500ms\"\ntimeout = \"5s\"\n{sink_extra}\n",
        hec.url("/services/collector/event"),
        token_file.display(),
    );
    let cfg = Cfg {
        sinks: Box::leak(sinks.into_boxed_str()),
        ..Cfg::default()
    };
    let exporter = Exporter::new(&fake, &cfg);
    // The token file lives as long as the exporter's directory.
    std::mem::forget(dir);
    (fake, exporter)
}

const ACK: &str = "ack = true\nack_timeout = \"2s\"\nack_poll_interval = \"100ms\"";

fn expected_ids(fake: &FakeLacework) -> HashSet<String> {
    let now = now_ms();
    fake.expected_lifecycle(now - 3 * DAY, now, None)
        .iter()
        .map(record_key)
        .collect()
}

/// Fails unless every expected event was indexed exactly once.
fn assert_indexed_once(hec: &FakeHec, expected: &HashSet<String>) {
    let counts = key_counts(&hec.indexed_events());
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "indexed more than once: {twice:?}");
    let indexed: HashSet<String> = counts.into_keys().collect();
    assert_eq!(
        indexed.len(),
        expected.len(),
        "{} indexed, {} expected",
        indexed.len(),
        expected.len()
    );
    assert_eq!(&indexed, expected, "every lifecycle event indexed");
}

fn n_ack_polls(hec: &FakeHec) -> usize {
    hec.log()
        .iter()
        .filter(|r| r.path == "/services/collector/ack")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_acks_are_awaited_and_everything_is_indexed_once() {
    let hec = FakeHec::start().await;
    hec.set_ack_delay(Duration::from_millis(400));
    // Busy at first: the probe and the first requests are answered 503 code 9 and retried.
    hec.busy_next(3);
    let (fake, exporter) = setup(3000, &hec, &format!("{ACK}\ncompression = \"gzip\"")).await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let expected = expected_ids(&fake);
    assert!(expected.len() > 200, "{} lifecycle events", expected.len());
    assert_indexed_once(&hec, &expected);

    let log = hec.log();
    assert_eq!(
        log.iter().filter(|r| r.status == 503).count(),
        3,
        "busy answers were retried"
    );
    let channels: HashSet<_> = log.iter().map(|r| r.channel.clone()).collect();
    assert_eq!(channels.len(), 1, "one channel per process: {channels:?}");
    let channel = channels.into_iter().next().flatten().expect("a channel");
    assert_eq!(channel.len(), 36, "a GUID: {channel}");
    assert!(
        log.iter().all(|r| r.status == 200 || r.status == 503),
        "nothing refused"
    );
    // Nothing is sent again when every ack comes in time.
    assert!(
        !run.stderr.contains("within ack_timeout"),
        "no resend: {run}"
    );
    let accepted = hec.accepted();
    let events_sent: usize = accepted.iter().map(|r| r.events.len()).sum();
    assert_eq!(events_sent, expected.len(), "each event sent once");
    assert!(n_ack_polls(&hec) >= 4, "{} ack polls", n_ack_polls(&hec));
    note(&format!(
        "HEC delayed acks: {} events in {} requests, {} ack polls",
        expected.len(),
        accepted.len(),
        n_ack_polls(&hec)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_acks_are_pending_moves_no_checkpoint_and_the_restart_sends_again() {
    let hec = FakeHec::start().await;
    // Acks that will not come during this test.
    hec.set_ack_delay(Duration::from_secs(3600));
    let (fake, exporter) = setup(
        2000,
        &hec,
        "ack = true\nack_timeout = \"1h\"\nack_poll_interval = \"100ms\"",
    )
    .await;
    let mut running = exporter.spawn(&["run", "--once"]);
    let probe = hec.clone();
    running
        .wait_until(
            "a batch sent and its acks polled",
            Duration::from_secs(30),
            move |_| !probe.accepted().is_empty() && n_ack_polls(&probe) >= 5,
        )
        .await;
    let first_event = first_lifecycle_ms(&fake);
    let held = exporter.live_checkpoint().await;
    assert!(
        held.is_none_or(|c| c <= first_event),
        "the checkpoint never passes events whose acks are pending: {held:?} > {first_event}"
    );
    running.signal("KILL").await;
    let killed = running.wait(Duration::from_secs(10)).await;
    assert_eq!(killed.code, None, "ended by the signal");
    assert!(hec.indexed_events().is_empty(), "nothing indexed yet");
    let sent_before = hec.accepted();
    let held_after_kill = exporter.live_checkpoint().await;
    assert!(held_after_kill.is_none_or(|c| c <= first_event));

    hec.set_ack_delay(Duration::ZERO);
    exporter.run(&["run", "--once"]).await.expect_code(0);
    let expected = expected_ids(&fake);
    assert_indexed_once(&hec, &expected);
    // The events of the batch that waited were sent again by the restarted exporter, on its
    // own new channel.
    let resent: HashSet<String> = hec.accepted()[sent_before.len()..]
        .iter()
        .flat_map(|r| r.events.iter().map(event_key))
        .collect();
    for request in &sent_before {
        for event in &request.events {
            assert!(
                resent.contains(&event_key(event)),
                "sent again after restart"
            );
        }
    }
    assert_ne!(
        sent_before[0].channel,
        hec.accepted().last().unwrap().channel,
        "a new channel per process start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_ack_never_comes_is_sent_again_and_indexed_once() {
    let hec = FakeHec::start().await;
    hec.set_ack_delay(Duration::from_millis(200));
    // The indexer drops the first two requests: their acks never become true.
    hec.lose_next(2);
    let (fake, exporter) = setup(3000, &hec, ACK).await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let expected = expected_ids(&fake);
    assert_indexed_once(&hec, &expected);

    let accepted = hec.accepted();
    let lost: Vec<_> = accepted.iter().take(2).collect();
    assert!(lost.iter().all(|r| r.indexed_at.is_none()));
    // Each lost request's events went out again, in a later request, after ack_timeout.
    let log = hec.log();
    let event_requests: Vec<_> = log
        .iter()
        .filter(|r| r.path == "/services/collector/event")
        .collect();
    for (idx, lost) in lost.iter().enumerate() {
        let keys: Vec<String> = lost.events.iter().map(event_key).collect();
        let again = accepted
            .iter()
            .enumerate()
            .skip(2)
            .find(|(_, r)| r.events.iter().any(|e| event_key(e) == keys[0]))
            .map(|(later, _)| later)
            .expect("the lost request was sent again");
        let waited = event_requests[again].at - event_requests[idx].at;
        assert!(
            waited >= Duration::from_millis(1900),
            "sent again after {waited:?}, before ack_timeout"
        );
        let again_keys: Vec<String> = accepted[again].events.iter().map(event_key).collect();
        assert_eq!(again_keys, keys, "the same events, in the same order");
        assert!(lost.ack_id.is_some() && accepted[again].ack_id.is_some());
        assert_ne!(accepted[again].ack_id, lost.ack_id, "a new ackId");
    }
    let n_resend_warnings = run
        .stderr
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("within ack_timeout"))
        .count();
    assert_eq!(n_resend_warnings, 2, "one WARN per resend: {run}");
    let sent: HashMap<String, usize> = key_counts(
        &accepted
            .iter()
            .flat_map(|r| r.events.iter().cloned())
            .collect::<Vec<Value>>(),
    );
    assert_eq!(
        sent.values().filter(|n| **n == 2).count(),
        lost.iter().map(|r| r.events.len()).sum::<usize>(),
        "only the lost events were sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_ack_answers_acknowledge_nothing() {
    let hec = FakeHec::start().await;
    // The first request is lost, and the first ack polls are answered with a page that is
    // not an ack answer: if such a page counted as "acknowledged", the lost events would
    // never be sent again.
    hec.lose_next(1);
    hec.garble_next_acks(6);
    let (fake, exporter) = setup(1500, &hec, ACK).await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_indexed_once(&hec, &expected_ids(&fake));
    assert!(
        run.stderr.contains("cannot be read; counting none"),
        "{run}"
    );
    assert!(run.stderr.contains("within ack_timeout"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_acks_or_a_wrong_token_is_a_clear_fatal_error() {
    let hec = FakeHec::start().await;
    hec.set_ack_enabled(false);
    let (fake, exporter) = setup(300, &hec, ACK).await;
    let run = exporter.run(&["run", "--once"]).await;
    assert!(
        run.code.is_some_and(|code| code != 0),
        "non-zero exit: {run}"
    );
    assert!(
        run.stderr.contains("ACK is disabled")
            && run.stderr.contains("Indexer acknowledgement")
            && run.stderr.contains("ack = false"),
        "{run}"
    );
    assert!(hec.indexed_events().is_empty());
    let first_event = first_lifecycle_ms(&fake);
    assert!(
        exporter
            .live_checkpoint()
            .await
            .is_none_or(|c| c <= first_event)
    );

    let hec = FakeHec::start().await;
    let (_fake, exporter) = setup_with_token(300, &hec, ACK, "not-the-token").await;
    let run = exporter.run(&["run", "--once"]).await;
    assert!(run.code.is_some_and(|code| code != 0), "{run}");
    assert!(
        run.stderr.contains("403")
            && run.stderr.contains("Invalid token")
            && run.stderr.contains("hec_token_file"),
        "{run}"
    );
    assert!(!run.stderr.contains("not-the-token"), "no token in logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ack_a_plain_200_is_delivered() {
    let hec = FakeHec::start().await;
    hec.set_ack_enabled(false);
    let (fake, exporter) = setup(1000, &hec, "").await;
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_indexed_once(&hec, &expected_ids(&fake));
    assert_eq!(n_ack_polls(&hec), 0, "no ack polls without ack = true");
    assert!(
        hec.log().iter().all(|r| r.channel.is_none()),
        "no channel without ack = true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ack_a_token_that_wants_a_channel_is_explained() {
    // A token with indexer acknowledgement refuses requests without a channel (code 10).
    let hec = FakeHec::start().await;
    let (_fake, exporter) = setup(200, &hec, "").await;
    let run = exporter.run(&["run", "--once"]).await;
    assert!(run.code.is_some_and(|code| code != 0), "{run}");
    assert!(
        run.stderr.contains("Data channel is missing") && run.stderr.contains("set ack = true"),
        "{run}"
    );
}
