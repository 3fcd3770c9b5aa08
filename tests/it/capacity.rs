//! Windows that hold more records than the API returns for one query are read as shorter
//! windows, never delivered silently incomplete.

use std::collections::HashSet;

use fake_lacework::{FakeConfig, FakeLacework};

use crate::support::*;

async fn capped_fake() -> FakeLacework {
    FakeLacework::start(FakeConfig {
        page_size: 200,
        max_result_rows: 1_000,
        ..FakeConfig::default()
    })
    .await
    .expect("the fake starts")
}

fn with_cap(exporter: &Exporter) {
    let text = exporter
        .config_text()
        .replace("[poll]\n", "[poll]\nmax_result_rows = 1000\n");
    exporter.write_config(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_window_over_the_result_cap_is_split_until_complete() {
    let fake = capped_fake().await;
    let now = now_ms();
    generate(&fake, 21, 5_000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            window: "1d",
            include: "all",
            ..Cfg::default()
        },
    );
    with_cap(&exporter);
    let (from, to) = (now - DAY - HOUR, now);
    let run = exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await;
    run.expect_code(0);
    assert!(run.stderr.contains("reading shorter windows"), "{run}");
    let events = run.events();
    let ids: HashSet<&str> = events.iter().map(id_of).collect();
    assert_eq!(ids.len(), events.len(), "no event twice");
    assert_eq!(
        events.len(),
        records_in(&fake, from, to).len(),
        "every record of the range, though one query returns at most 1000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_walk_splits_capped_windows_too() {
    let fake = capped_fake().await;
    let now = now_ms();
    generate(&fake, 22, 5_000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            window: "1d",
            lookback: "2d",
            ..Cfg::default()
        },
    );
    with_cap(&exporter);
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let events = run.events();
    let keys: Vec<String> = events.iter().map(event_key).collect();
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "no event twice");
    let expected: HashSet<String> = fake
        .expected_lifecycle(now - 2 * DAY, now, None)
        .iter()
        .map(record_key)
        .collect();
    assert_eq!(keys.into_iter().collect::<HashSet<_>>(), expected);
}
