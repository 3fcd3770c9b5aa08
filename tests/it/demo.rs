//! `demo`: the real poller against the embedded fake.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fake_lacework::GenerateSpec;
use serde_json::Value;

use crate::support::*;

/// What a lifecycle event says apart from its time: the demo's records are deterministic for
/// a seed except for their times, which follow the clock.
fn content(event_type: &str, raw: &Value) -> String {
    format!(
        "{event_type} | {} | {} | {} | {}",
        raw["accountName"], raw["userName"], raw["userAction"], raw["eventDescription"]
    )
}

/// The lifecycle content of the demo's history for `seed` and `records`, by our own fake.
async fn demo_history(seed: u64, records: usize) -> HashMap<String, usize> {
    let reference = start_fake(5000).await;
    reference.generate(&GenerateSpec {
        seed,
        count: records,
        wording: fake_lacework::Wording::Mixed,
        ..GenerateSpec::default()
    });
    let mut counts = HashMap::new();
    for record in reference.records() {
        if let Some(kind) = &record.expected_type {
            *counts.entry(content(kind, &record.json)).or_default() += 1;
        }
    }
    counts
}

/// Asserts `events` are the history's lifecycle events, allowing for a couple created in the
/// last seconds (inside the demo's settle) or trickled in after it.
fn assert_history(events: &[Value], history: &HashMap<String, usize>, extra_allowed: usize) {
    for event in events {
        let problems = shape_problems(event);
        assert!(problems.is_empty(), "{problems:?}: {event}");
        assert_ne!(event["type"], "AUDIT", "lifecycle only: {event}");
    }
    let mut got: HashMap<String, usize> = HashMap::new();
    for event in events {
        let kind = event["type"].as_str().unwrap_or_default();
        *got.entry(content(kind, &event["raw"])).or_default() += 1;
    }
    let expected_total: usize = history.values().sum();
    let missing: usize = history
        .iter()
        .map(|(k, n)| n.saturating_sub(got.get(k).copied().unwrap_or(0)))
        .sum();
    let extra: usize = got
        .iter()
        .map(|(k, n)| n.saturating_sub(history.get(k).copied().unwrap_or(0)))
        .sum();
    assert!(
        missing <= 2 && extra <= extra_allowed,
        "{} events for a history of {expected_total} lifecycle records: {missing} missing, {extra} unexpected",
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_once_prints_the_generated_history_as_v1_events() {
    let history = demo_history(7, 500).await;
    let demo = run_bin(&["demo", "--once", "--records", "500", "--seed", "7"], &[]).await;
    demo.expect_code(0);
    let events = demo.events();
    assert!(events.len() > 100, "{demo}");
    assert_history(&events, &history, 0);

    let all = run_bin(
        &["demo", "--once", "--records", "500", "--seed", "7", "--all"],
        &[],
    )
    .await;
    all.expect_code(0);
    let events = all.events();
    assert!(
        (498..=500).contains(&events.len()),
        "demo --all prints every record: {} of 500",
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keeps_its_state_where_told() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state = dir.path().join("demo.db").display().to_string();
    let first = run_bin(
        &["demo", "--once", "--records", "300", "--state", &state],
        &[],
    )
    .await;
    first.expect_code(0);
    assert!(first.events().len() > 50, "{first}");
    assert!(
        std::path::Path::new(&state).exists(),
        "no state file at {state}"
    );
    let second = run_bin(
        &["demo", "--once", "--records", "300", "--state", &state],
        &[],
    )
    .await;
    second.expect_code(0);
    second.events();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_follows_until_sigint() {
    let history = demo_history(9, 300).await;
    let mut demo = spawn(
        &["demo", "--records", "300", "--seed", "9"].map(String::from),
        &[],
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!demo.exited(), "demo exited on its own");
    demo.signal("INT").await;
    let sent = Instant::now();
    let done = demo.wait(TIMEOUT).await;
    done.expect_code(0);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "demo took {:?} to stop after SIGINT",
        sent.elapsed()
    );
    // New records trickle in every 2 s; one or two of them may have been read.
    assert_history(&done.events(), &history, 3);
}
