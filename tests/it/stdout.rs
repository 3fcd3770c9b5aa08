//! The stdout sink's consumer: one that goes away, and one that stops reading while the
//! exporter is asked to shut down.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_stops_the_run_without_moving_the_checkpoint() {
    let fake = start_fake(200).await;
    let now = now_ms();
    // Nothing within poll.overlap before the position: this test is about stdout.
    let position = now - 21 * HOUR;
    generate(&fake, 22, 2000, now - 20 * HOUR, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    exporter
        .run(&["state", "set", "--to", &rfc3339(position)])
        .await
        .expect_code(0);
    let args: Vec<String> = [
        "--config",
        exporter.config_path.to_str().expect("utf-8 path"),
        "run",
        "--once",
    ]
    .map(String::from)
    .to_vec();
    let closed = spawn_with_closed_stdout(&args).wait(TIMEOUT).await;
    closed.expect_code(1);
    assert!(
        closed.stderr.contains("standard output"),
        "the error names stdout: {closed}"
    );
    assert_eq!(
        exporter.live_checkpoint().await,
        Some(position),
        "events nobody read were committed"
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(position, now, None),
        "run --once after the failed one",
    );
}

/// A daemon whose first batch is stuck in a full stdout pipe.
async fn blocked_daemon(fake: &fake_lacework::FakeLacework, exporter: &Exporter) -> Running {
    let daemon = exporter.spawn(&["run"]);
    daemon.pause_stdout(true);
    wait_for_quiet_api(fake, Duration::from_millis(700), Duration::from_secs(20)).await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_delivery_stuck_exits_0_and_commits_nothing() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 23, 10_000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            window: "1d",
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let mut daemon = blocked_daemon(&fake, &exporter).await;
    assert!(!daemon.exited());
    daemon.signal("TERM").await;
    let sent = Instant::now();
    let stopped = daemon.wait(TIMEOUT).await;
    let stop_time = sent.elapsed();
    stopped.expect_code(0);
    assert!(
        stop_time < Duration::from_secs(5),
        "stopping took {stop_time:?} (grace for a stuck delivery is 3 s)"
    );
    let state = exporter.state().await;
    assert!(
        nothing_committed(&state),
        "an unacknowledged batch left a checkpoint or remembered ids: {state}"
    );
    let partial = stopped.events_allowing_cut_tail();
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    assert_exactly_once(
        &run.events(),
        &expected,
        "run --once after the stuck delivery",
    );
    assert!(partial.len() < expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_with_130() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 24, 10_000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            window: "1d",
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let mut daemon = blocked_daemon(&fake, &exporter).await;
    daemon.signal("TERM").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !daemon.exited(),
        "the first signal should leave the stuck delivery its grace period"
    );
    daemon.signal("INT").await;
    let sent = Instant::now();
    let stopped = daemon.wait(TIMEOUT).await;
    assert_eq!(stopped.code, Some(130), "{stopped}");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "the second signal took {:?}",
        sent.elapsed()
    );
    let state = exporter.state().await;
    assert!(nothing_committed(&state), "{state}");
}
