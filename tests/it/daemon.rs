//! The daemon (`run`) and crashes: late records, SIGTERM, and kill -9 followed by a restart.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_lacework::{FakeRecord, Fault};
use serde_json::Value;

use crate::support::*;

/// Polls `state show` until the live checkpoint passes `after_ms`.
async fn wait_for_checkpoint_after(exporter: &Exporter, after_ms: i64, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(checkpoint) = exporter.live_checkpoint().await
            && checkpoint > after_ms
        {
            return checkpoint;
        }
        assert!(
            Instant::now() < deadline,
            "the live checkpoint did not pass {} within {timeout:?}",
            rfc3339(after_ms)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_delivers_late_records_exactly_once_and_stops_on_sigterm() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 3, 300, now - 50 * MIN, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - HOUR, now, None);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "1h",
            ..Cfg::default()
        },
    );
    let mut daemon = exporter.spawn(&["run"]);
    daemon
        .wait_until("the history's events", Duration::from_secs(20), |d| {
            d.lines_so_far() >= history.len()
        })
        .await;

    // Lands within settle: created 1 s ago, visible 1 s from now.
    let inside_settle = FakeRecord::lifecycle(
        "USER_CREATED",
        "ACME",
        "admin@acme.com",
        Some("late.inside.settle@acme.com"),
        at(now_ms() - SEC),
    );
    fake.insert_late(inside_settle.clone(), Duration::from_secs(1));
    // Lands later than settle but within overlap: created 20 s ago, visible only once the
    // cursor has passed its time.
    let created = now_ms() - 20 * SEC;
    wait_for_checkpoint_after(&exporter, created + SEC, Duration::from_secs(10)).await;
    let within_overlap = FakeRecord::lifecycle(
        "USER_DISABLED",
        "ACME",
        "admin@acme.com",
        Some("late.within.overlap@acme.com"),
        at(created),
    );
    fake.insert_late(within_overlap.clone(), Duration::ZERO);

    let late_keys = [record_key(&inside_settle), record_key(&within_overlap)];
    daemon
        .wait_until("both late records", Duration::from_secs(15), |d| {
            let counts = key_counts(&d.events_so_far());
            late_keys.iter().all(|k| counts.contains_key(k))
        })
        .await;
    // A few more polls, in which neither may come again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.signal("TERM").await;
    let sent = Instant::now();
    let done = daemon.wait(TIMEOUT).await;
    let stop_time = sent.elapsed();
    done.expect_code(0);
    assert!(
        stop_time < Duration::from_secs(5),
        "the daemon took {stop_time:?} to exit after SIGTERM"
    );
    let mut expected = history;
    expected.push(inside_settle);
    expected.push(within_overlap);
    assert_exactly_once(&done.events(), &expected, "daemon with late records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_nothing() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 4, 20_000, now - DAY, now - 10 * SEC);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    fake.fail_next(100_000, Fault::Slow(Duration::from_millis(50)));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            ..Cfg::default()
        },
    );

    let mut first = exporter.spawn(&["run", "--once"]);
    first
        .wait_until("the first events", Duration::from_secs(60), |r| {
            r.lines_so_far() > 0
        })
        .await;
    // Let the first window commit; then stop reading stdout, so the second window's batch
    // (far larger than a pipe) blocks half-written, and kill the exporter right there.
    wait_for_checkpoint_after(&exporter, 0, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.pause_stdout(true);
    wait_for_quiet_api(&fake, Duration::from_millis(700), Duration::from_secs(20)).await;
    assert!(
        !first.exited(),
        "run --once finished before it could be killed"
    );
    first.signal("KILL").await;
    let first = first.wait(TIMEOUT).await;
    assert_eq!(first.code, None, "SIGKILL ends the process: {first}");
    let first_events = first.events_allowing_cut_tail();

    let second = exporter.run(&["run", "--once"]).await;
    second.expect_code(0);
    let second_events = second.events();
    let first_ids: HashSet<String> = id_set(&first_events);
    let duplicates: Vec<&Value> = second_events
        .iter()
        .filter(|e| first_ids.contains(id_of(e)))
        .collect();
    note(&format!(
        "kill -9: the killed run printed {} events, the restart {}, {} of them again (expected {} in all)",
        first_events.len(),
        second_events.len(),
        duplicates.len(),
        expected.len()
    ));
    let mut union = first_events.clone();
    union.extend(
        second_events
            .iter()
            .filter(|e| !first_ids.contains(id_of(e)))
            .cloned(),
    );
    assert_exactly_once(&union, &expected, "killed run + restart");
    assert!(
        second_events.len() < expected.len(),
        "the restart started over although a window was committed"
    );
    assert!(
        !duplicates.is_empty(),
        "the kill was meant to land mid-batch (a batch printed in part, never acknowledged)"
    );
    // At most one batch again: at most 5,000 events, all from one window (6h + overlap).
    assert!(duplicates.len() <= 5000, "{} duplicates", duplicates.len());
    let times: Vec<i64> = duplicates
        .iter()
        .map(|e| parse_time(e["time"].as_str().unwrap_or_default()))
        .collect();
    if let (Some(min), Some(max)) = (times.iter().min(), times.iter().max()) {
        assert!(
            max - min <= 6 * HOUR + MIN,
            "duplicates span {} to {}: more than one window was re-delivered",
            rfc3339(*min),
            rfc3339(*max)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_window_commits_nothing_undelivered() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 13, 4000, now - DAY, now - 10 * SEC);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            ..Cfg::default()
        },
    );
    // The first two windows (5 and 6 pages) are slow; the rest is fast.
    fake.fail_next(12, Fault::Slow(Duration::from_millis(400)));

    let mut daemon = exporter.spawn(&["run"]);
    daemon
        .wait_until("the first window's events", Duration::from_secs(30), |r| {
            r.lines_so_far() > 0
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.signal("TERM").await;
    let sent = Instant::now();
    let first = daemon.wait(TIMEOUT).await;
    let stop_time = sent.elapsed();
    first.expect_code(0);
    assert!(
        stop_time < Duration::from_secs(5),
        "the daemon took {stop_time:?} to exit after SIGTERM during a slow window"
    );
    let first_events = first.events();
    let checkpoint = exporter
        .live_checkpoint()
        .await
        .expect("the first window was committed");
    assert!(
        checkpoint < now - HOUR,
        "the checkpoint {} moved past the unfinished window",
        rfc3339(checkpoint)
    );
    let first_keys = key_counts(&first_events);
    let undelivered: Vec<String> = expected
        .iter()
        .filter(|r| r.created_ms < checkpoint && !first_keys.contains_key(&record_key(r)))
        .map(|r| r.json.to_string())
        .collect();
    assert!(
        undelivered.is_empty(),
        "the checkpoint {} covers {} records that were never printed, e.g. {:?}",
        rfc3339(checkpoint),
        undelivered.len(),
        &undelivered[..undelivered.len().min(3)]
    );

    let second = exporter.run(&["run", "--once"]).await;
    second.expect_code(0);
    let second_events = second.events();
    let second_keys = key_counts(&second_events);
    let not_re_emitted: Vec<String> = expected
        .iter()
        .filter(|r| r.created_ms > checkpoint && r.created_ms < checkpoint + 6 * HOUR)
        .filter(|r| !second_keys.contains_key(&record_key(r)))
        .map(|r| r.json.to_string())
        .collect();
    assert!(
        not_re_emitted.is_empty(),
        "{} events of the unfinished window were not emitted by the next run, e.g. {:?}",
        not_re_emitted.len(),
        &not_re_emitted[..not_re_emitted.len().min(3)]
    );
    let first_ids = id_set(&first_events);
    let mut union = first_events.clone();
    union.extend(
        second_events
            .iter()
            .filter(|e| !first_ids.contains(id_of(e)))
            .cloned(),
    );
    assert_exactly_once(&union, &expected, "SIGTERM mid-window + run --once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_outlives_an_outage_longer_than_its_retries() {
    let fake = start_fake(200).await;
    let now = now_ms();
    // Nothing within poll.overlap before the position: this test is about the outage.
    let position = now - 21 * HOUR;
    generate(&fake, 21, 2000, now - 20 * HOUR, now - 10 * SEC);
    let cfg = Cfg {
        max_retries: 1,
        lookback: "25h",
        ..Cfg::default()
    };

    // run --once cannot finish its catch-up: exit 1, nothing committed.
    let once = Exporter::new(&fake, &cfg);
    once.run(&["state", "set", "--to", &rfc3339(position)])
        .await
        .expect_code(0);
    fake.fail_next(2, Fault::Drop);
    let failed = once.run(&["run", "--once"]).await;
    failed.expect_code(1);
    assert!(failed.events().is_empty(), "{failed}");
    assert_eq!(once.live_checkpoint().await, Some(position));

    // The daemon waits and reads the window again.
    let exporter = Exporter::new(&fake, &cfg);
    exporter
        .run(&["state", "set", "--to", &rfc3339(position)])
        .await
        .expect_code(0);
    fake.clear_requests();
    fake.fail_next(2, Fault::Drop);
    let mut daemon = exporter.spawn(&["run"]);
    daemon
        .wait_until("two failed attempts", Duration::from_secs(10), |_| {
            fake.requests().iter().filter(|r| is_audit_logs(r)).count() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !daemon.exited(),
        "the daemon gave up after a retryable failure"
    );
    assert_eq!(
        exporter.live_checkpoint().await,
        Some(position),
        "the checkpoint moved during the outage"
    );
    assert_eq!(daemon.lines_so_far(), 0, "events printed during the outage");
    let expected = fake.expected_lifecycle(position, now, None);
    daemon
        .wait_until("recovery", Duration::from_secs(20), |d| {
            d.lines_so_far() >= expected.len()
        })
        .await;
    daemon.signal("TERM").await;
    let done = daemon.wait(TIMEOUT).await;
    done.expect_code(0);
    assert_exactly_once(&done.events(), &expected, "daemon after an outage");
}

/// A caught-up daemon asks AuditLogs once per poll: each poll is one window, committed, read
/// with one request (no nextPage for a quiet tenant, no re-sweep due yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_daemon_sends_one_audit_logs_request_per_poll() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 81, 500, now - 50 * MIN, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "1h",
            ..Cfg::default()
        },
    );
    let daemon = exporter.spawn(&["run"]);
    // The catch-up reads 500 records in pages of 200; after it, every poll is alike.
    wait_for_checkpoint_after(&exporter, now - 5 * SEC, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let committed = |stderr: &str| stderr.matches("Window delivered and committed.").count();
    let windows_before = committed(&daemon.stderr_so_far());
    fake.clear_requests();
    tokio::time::sleep(Duration::from_secs(6)).await;
    daemon.signal("TERM").await;
    let done = daemon.wait(TIMEOUT).await;
    done.expect_code(0);
    let polls = committed(&done.stderr) - windows_before;
    let requests = fake.requests().iter().filter(|r| is_audit_logs(r)).count();
    assert!(polls >= 4, "about one poll a second: {polls} in 6 s");
    // A poll may be on the wire as the count starts.
    assert!(
        requests == polls || requests == polls + 1,
        "{requests} AuditLogs requests for {polls} polls:\n{}",
        tail(&done.stderr)
    );
}
