//! Never miss an audit record: late arrivals found by re-sweeps, one request budget shared by a
//! replay and the daemon, the window ledger's gaps, one process per state file, bad answers,
//! and refused credentials.

use std::time::Duration;

use fake_lacework::{BadBody, FakeRecord, Fault, RateLimit};

use crate::support::*;

/// A lifecycle record created `ago_ms` before now, targeting `target`.
fn created_ago(ago_ms: i64, target: &str) -> FakeRecord {
    FakeRecord::lifecycle(
        "USER_CREATED",
        "ACME",
        "admin@acme.com",
        Some(target),
        at(now_ms() - ago_ms),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_visible_an_hour_late_is_delivered_once_by_a_resweep() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 11, 200, now - 5 * HOUR, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - 6 * HOUR, now, None);
    let without_resweeps = Cfg {
        lookback: "6h",
        extra_poll: "resweep = \"0s\"\n",
        ..Cfg::default()
    };
    let exporter = Exporter::new(&fake, &without_resweeps);
    let first = exporter.run(&["run", "--once"]).await;
    first.expect_code(0);
    assert_exactly_once(&first.events(), &history, "the history");

    // Created an hour ago, visible only now: long after the cursor (and the 1 minute
    // overlap) passed its time.
    let late = created_ago(HOUR, "visible.an.hour.late@acme.com");
    fake.insert_late(late.clone(), Duration::ZERO);
    let missed = exporter.run(&["run", "--once"]).await;
    missed.expect_code(0);
    assert!(
        missed.events().is_empty(),
        "without re-sweeps the late record is missed (what this test guards against): {missed}"
    );

    // With re-sweeps: the first is scheduled one period after they are turned on.
    let with_resweeps = Cfg {
        extra_poll: "resweep = \"2h\"\nresweep_every = \"1s\"\n",
        ..without_resweeps.clone()
    };
    exporter.configure(&fake, &with_resweeps);
    exporter.run(&["run", "--once"]).await.expect_code(0);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let found = exporter.run(&["run", "--once"]).await;
    found.expect_code(0);
    assert_exactly_once(&found.events(), std::slice::from_ref(&late), "the re-sweep");
    assert!(
        found
            .stderr
            .contains("Re-sweep delivered records that became visible late"),
        "{found}"
    );
    let state = exporter.state().await;
    let resweep = &live_entry(&state).expect("a live stream")["resweep"];
    assert_eq!(resweep["late_records"], 1, "state show tells: {state}");
    assert!(resweep["finished_at"].is_string(), "{state}");

    // Later re-sweeps read the same time again and emit nothing.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = exporter.run(&["run", "--once"]).await;
    again.expect_code(0);
    assert!(again.events().is_empty(), "delivered once: {again}");
    let state = exporter.state().await;
    assert_eq!(live_entry(&state).unwrap()["resweep"]["late_records"], 0);
    let shown = exporter.run(&["state", "show"]).await;
    assert!(shown.stdout.contains("last re-sweep:"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_delivers_records_that_land_late_through_resweeps() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 12, 100, now - 2 * HOUR, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - 3 * HOUR, now, None);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "3h",
            extra_poll: "resweep = \"2h\"\nresweep_every = \"1s\"\n",
            ..Cfg::default()
        },
    );
    let mut daemon = exporter.spawn(&["run"]);
    daemon
        .wait_until("the history", Duration::from_secs(20), |d| {
            d.lines_so_far() >= history.len()
        })
        .await;
    // Created 40 minutes ago, visible in two seconds.
    let late = created_ago(40 * MIN, "lands.late@acme.com");
    fake.insert_late(late.clone(), Duration::from_secs(2));
    let key = record_key(&late);
    daemon
        .wait_until("the late record", Duration::from_secs(20), |d| {
            key_counts(&d.events_so_far()).contains_key(&key)
        })
        .await;
    // Several more re-sweeps, in which it may not come again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    daemon.signal("TERM").await;
    let finished = daemon.wait(TIMEOUT).await;
    finished.expect_code(0);
    let mut expected = history.clone();
    expected.push(late);
    assert_exactly_once(&finished.events(), &expected, "history and the late record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_beside_the_daemon_on_one_key_is_never_answered_429() {
    let fake = start_fake(50).await;
    // The server's budget: 20 requests per 4 s per endpoint family, enforced.
    fake.set_rate_limit(Some(RateLimit {
        requests: 20,
        period: Duration::from_secs(4),
    }));
    let now = now_ms();
    generate(&fake, 13, 1_500, now - 2 * DAY, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - 3 * DAY, now, None);
    let cfg = Cfg {
        lookback: "3d",
        window: "6h",
        // Each process spends at most 16 per 4 s; together they would exceed the server's
        // 20, so the RateLimit-* headers must hold them back.
        extra_lacework: "rate_limit = \"16/4s\"\n",
        ..Cfg::default()
    };
    let exporter = Exporter::new(&fake, &cfg);
    let mut daemon = exporter.spawn(&["run"]);
    let replay_state = exporter.dir.path().join("replay.db");
    let replay_state = replay_state.display().to_string();
    let from = rfc3339(now - 3 * DAY);
    let to = rfc3339(now);
    let replay = exporter
        .run(&[
            "replay",
            "--from",
            &from,
            "--to",
            &to,
            "--state",
            &replay_state,
        ])
        .await;
    replay.expect_code(0);
    daemon
        .wait_until("the history", Duration::from_secs(40), |d| {
            d.lines_so_far() >= history.len()
        })
        .await;
    daemon.signal("TERM").await;
    let daemon = daemon.wait(TIMEOUT).await;
    daemon.expect_code(0);
    let requests = fake.requests().len();
    assert_eq!(
        fake.rate_limited_answers(),
        0,
        "no request of {requests} was answered 429\ndaemon: {daemon}\nreplay: {replay}"
    );
    assert!(
        requests > 40,
        "the test spends more than the server's burst: {requests} requests"
    );
    assert_exactly_once(&daemon.events(), &history, "the daemon");
    assert_exactly_once(&replay.events(), &history, "the replay");
    assert!(
        replay.stderr.contains("throttling") || daemon.stderr.contains("throttling"),
        "pacing is logged\nreplay: {replay}"
    );
    note(&format!(
        "429 test: {requests} requests, {} events each, no 429",
        history.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_window_shows_as_a_gap_until_it_is_read() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 14, 200, now - 5 * HOUR, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - 6 * HOUR, now, None);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "6h",
            max_retries: 1,
            ..Cfg::default()
        },
    );
    fake.fail_next(50, Fault::Status(503));
    let failed = exporter.run(&["run", "--once"]).await;
    failed.expect_code(1);
    assert!(
        failed.stderr.contains("live window [") && failed.stderr.contains("not delivered"),
        "the error names the window: {failed}"
    );
    let state = exporter.state().await;
    let gaps = live_entry(&state).expect("a live stream")["gaps"]
        .as_array()
        .expect("gaps")
        .clone();
    assert_eq!(gaps.len(), 1, "{state}");
    assert_eq!(gaps[0]["status"], "failed");
    assert!(
        gaps[0]["last_error"].as_str().unwrap().contains("503"),
        "{state}"
    );
    let shown = exporter.run(&["state", "show"]).await;
    assert!(
        shown.stdout.contains("gaps:           1 window(s) failed"),
        "{shown}"
    );

    // Healed: the same window is read, the gap closes, and nothing was skipped.
    fake.clear_faults();
    let healed = exporter.run(&["run", "--once"]).await;
    healed.expect_code(0);
    assert_exactly_once(&healed.events(), &history, "after the gap");
    let state = exporter.state().await;
    let entry = live_entry(&state).unwrap();
    assert_eq!(entry["gaps"].as_array().unwrap().len(), 0, "{state}");
    let recent = entry["recent_windows"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|w| w["status"] == "done" && w["attempts"].as_i64() >= Some(2)),
        "the failed window was read again, not skipped: {state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_one_state_file_is_refused() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 15, 100, now - HOUR, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "2h",
            ..Cfg::default()
        },
    );
    let mut first = exporter.spawn(&["run"]);
    first
        .wait_until("the first window", Duration::from_secs(20), |d| {
            d.lines_so_far() > 0
        })
        .await;
    let pid = first.pid();
    for args in [
        &["run", "--once"][..],
        &["replay", "--from", "1h"][..],
        &["state", "reset"][..],
    ] {
        let second = exporter.run(args).await;
        second.expect_code(1);
        let state_path = exporter.state_path.display().to_string();
        assert!(
            second.stderr.contains(&state_path)
                && second.stderr.contains(&format!("pid {pid}"))
                && second.stderr.contains("in use by another exporter process"),
            "{args:?} names the file and the holder: {second}"
        );
    }
    // Reading the state beside the daemon still works.
    assert!(exporter.live_checkpoint().await.is_some());
    // The lock dies with the process: after kill -9 a new daemon starts.
    first.signal("KILL").await;
    first.wait(TIMEOUT).await;
    let after = exporter.run(&["run", "--once"]).await;
    after.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_200_answers_do_not_end_the_daemon() {
    let fake = start_fake(50).await;
    let now = now_ms();
    generate(&fake, 16, 300, now - 3 * HOUR, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - 4 * HOUR, now, None);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "4h",
            max_retries: 1,
            ..Cfg::default()
        },
    );
    // More bad answers than one window's retries (one retry): the window fails twice, and
    // is read again after the daemon's backoff (5 s, then 10 s).
    for body in [
        BadBody::Html,
        BadBody::TruncatedJson,
        BadBody::WrongShape,
        BadBody::NotJson,
    ] {
        fake.fail_next(1, Fault::BadBody(body));
    }
    let mut daemon = exporter.spawn(&["run"]);
    daemon
        .wait_until(
            "every event once the fake heals",
            Duration::from_secs(60),
            |d| d.lines_so_far() >= history.len(),
        )
        .await;
    daemon.signal("TERM").await;
    let finished = daemon.wait(TIMEOUT).await;
    finished.expect_code(0);
    assert_exactly_once(&finished.events(), &history, "after bad answers");
    assert!(
        finished.stderr.contains("Window not delivered")
            && finished.stderr.contains("the body begins"),
        "a WARN with an excerpt of the body: {finished}"
    );
    assert!(
        !finished.stderr.contains(&fake.config().secret),
        "never the secret: {finished}"
    );

    // `run --once` gives up after max_retries, naming the window.
    let once = Exporter::new(
        &fake,
        &Cfg {
            lookback: "4h",
            max_retries: 1,
            ..Cfg::default()
        },
    );
    fake.fail_next(10, Fault::BadBody(BadBody::Html));
    let failed = once.run(&["run", "--once"]).await;
    failed.expect_code(1);
    assert!(failed.stderr.contains("live window ["), "{failed}");
    fake.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_exit_with_code_3() {
    let fake = start_fake(100).await;
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            secret: Some("_not_the_secret_0123456789abcdef0".to_string()),
            ..Cfg::default()
        },
    );
    let refused = exporter.run(&["run"]).await;
    refused.expect_code(3);
    assert!(
        refused.stderr.contains("authentication failed (401)"),
        "{refused}"
    );
    // Once: the daemon does not hammer the token endpoint with a dead key.
    assert_eq!(fake.token_requests(), 1, "{refused}");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd/lacework-audit-exporter.service"),
    )
    .expect("the unit");
    assert!(
        unit.lines()
            .any(|line| line.trim() == "RestartPreventExitStatus=3"),
        "the shipped unit does not restart into the refusal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_end_by_the_api_servers_clock_when_this_host_runs_ahead() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 17, 400, now - 2 * HOUR, now - 10 * SEC);
    let history = fake.expected_lifecycle(now - 3 * HOUR, now, None);
    // The server's clock is 20 minutes behind this host's.
    fake.set_date_offset_ms(-20 * MIN);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "3h",
            ..Cfg::default()
        },
    );
    let behind = exporter.run(&["run", "--once"]).await;
    behind.expect_code(0);
    assert!(
        behind
            .stderr
            .contains("clock differs from the Lacework API"),
        "the skew is logged: {behind}"
    );
    let checkpoint = exporter.live_checkpoint().await.expect("a checkpoint");
    assert!(
        checkpoint <= now - 20 * MIN,
        "the checkpoint {} passed the server's now",
        rfc3339(checkpoint)
    );
    let early: Vec<_> = history
        .iter()
        .filter(|r| r.created_ms < checkpoint)
        .cloned()
        .collect();
    assert!(
        early.len() < history.len(),
        "some records lie after the server's now"
    );
    assert_exactly_once(&behind.events(), &early, "up to the server's now");

    // The clocks agree again: the rest arrives, nothing twice.
    fake.set_date_offset_ms(0);
    let agreed = exporter.run(&["run", "--once"]).await;
    agreed.expect_code(0);
    let mut all = behind.events();
    all.extend(agreed.events());
    assert_exactly_once(&all, &history, "both runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_keeps_answering_429_ends_run_once_instead_of_waiting_forever() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 18, 100, now - HOUR, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "2h",
            max_retries: 1,
            ..Cfg::default()
        },
    );
    fake.fail_next(100, Fault::RateLimited { reset_secs: 1 });
    let started = std::time::Instant::now();
    let refused = exporter.run(&["run", "--once"]).await;
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("429") && refused.stderr.contains("live window ["),
        "{refused}"
    );
    let elapsed = started.elapsed();
    // Four 429s waited out (a second each), then the request gives up.
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(30),
        "{elapsed:?}"
    );
    let audit_requests = fake.requests().iter().filter(|r| is_audit_logs(r)).count();
    assert_eq!(audit_requests, 5, "no storm: each 429 waited out");
    fake.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_dated_in_the_future_does_not_move_the_checkpoint_past_now() {
    let fake = start_fake(100).await;
    let now = now_ms();
    generate(&fake, 19, 50, now - HOUR, now - 10 * SEC);
    // Created "an hour from now" (a client clock gone wrong upstream), visible already.
    fake.insert(created_ago(-HOUR, "from.the.future@acme.com"));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "2h",
            ..Cfg::default()
        },
    );
    exporter.run(&["run", "--once"]).await.expect_code(0);
    let checkpoint = exporter.live_checkpoint().await.expect("a checkpoint");
    assert!(
        checkpoint <= now_ms(),
        "the checkpoint {} is past now",
        rfc3339(checkpoint)
    );
}
