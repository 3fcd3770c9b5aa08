//! `run --once` and the operator's checkpoint commands.

use fake_lacework::FakeRecord;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_delivers_the_lookback_period_then_nothing_new() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 2, 3000, now - 2 * DAY, now - 10 * SEC);
    // Older than poll.lookback (3d): never read on a first run.
    generate(&fake, 3, 200, now - 5 * DAY, now - 4 * DAY);
    let exporter = Exporter::new(&fake, &Cfg::default());

    let started = now_ms();
    let first = exporter.run(&["run", "--once"]).await;
    let finished = now_ms();
    first.expect_code(0);
    let expected = fake.expected_lifecycle(now - 3 * DAY, now, None);
    assert_exactly_once(&first.events(), &expected, "first run --once");
    assert_time_ordered(&first.events(), "first run --once");
    assert!(first.stderr.contains("INFO"), "logs go to stderr: {first}");
    let state = exporter.state().await;
    let checkpoint = live_checkpoint(&state)
        .unwrap_or_else(|| panic!("no checkpoint after run --once: {state}"));
    assert!(
        checkpoint >= started - 2 * SEC - 50 && checkpoint <= finished - 2 * SEC + 50,
        "checkpoint {} should be now - settle (run between {} and {})",
        rfc3339(checkpoint),
        rfc3339(started),
        rfc3339(finished)
    );
    assert_eq!(
        live_entry(&state).map(|e| e["remembered_ids"].clone()),
        Some(serde_json::Value::from(expected.len())),
        "every delivered id is remembered: {state}"
    );

    let started = now_ms();
    let second = exporter.run(&["run", "--once"]).await;
    let finished = now_ms();
    second.expect_code(0);
    let again = second.events();
    assert!(
        again.is_empty(),
        "a second run --once re-emitted {} events, e.g. {}",
        again.len(),
        again[0]
    );
    let checkpoint = exporter
        .live_checkpoint()
        .await
        .expect("checkpoint after the second run");
    assert!(
        checkpoint >= started - 2 * SEC - 50 && checkpoint <= finished - 2 * SEC + 50,
        "checkpoint {} should be now - settle after the second run (between {} and {})",
        rfc3339(checkpoint),
        rfc3339(started),
        rfc3339(finished)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_set_skips_earlier_events_and_state_reset_starts_over() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 5, 2000, now - 2 * DAY, now - 10 * SEC);
    let position = now - 12 * HOUR + 345;
    // Around the new position: inside poll.overlap before it, just before, at, and after it.
    for (kind, offset, who) in [
        ("USER_CREATED", -30 * SEC, "overlap.before.position"),
        ("USER_DELETED", -1, "just.before.position"),
        ("USER_ENABLED", 0, "at.position"),
        ("USER_DISABLED", 30 * SEC, "after.position"),
    ] {
        fake.insert(FakeRecord::lifecycle(
            kind,
            "ACME",
            "admin@acme.com",
            Some(&format!("{who}@acme.com")),
            at(position + offset),
        ));
    }
    let exporter = Exporter::new(&fake, &Cfg::default());

    let set = exporter
        .run(&["state", "set", "--to", &rfc3339(position)])
        .await;
    set.expect_code(0);
    assert_eq!(
        exporter.live_checkpoint().await,
        Some(position),
        "state set --to moves the checkpoint exactly"
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(position, now, None),
        "run --once after state set --to (only events at or after the new position)",
    );

    let reset = exporter.run(&["state", "reset"]).await;
    reset.expect_code(0);
    assert_eq!(
        exporter.live_checkpoint().await,
        None,
        "state reset forgets the checkpoint"
    );
    let again = exporter.run(&["run", "--once"]).await;
    again.expect_code(0);
    assert_exactly_once(
        &again.events(),
        &fake.expected_lifecycle(now - 3 * DAY, now, None),
        "run --once after state reset (everything since lookback again)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_starts_exactly_lookback_ago() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 25, 500, now - DAY, now - 10 * SEC);
    let lookback_start = now - 3 * DAY;
    // Half a minute outside the lookback period (but within poll.overlap of its start), and
    // half a minute inside it.
    for (offset, who) in [
        (-30 * SEC, "before.lookback"),
        (30 * SEC, "inside.lookback"),
    ] {
        fake.insert(FakeRecord::lifecycle(
            "USER_CREATED",
            "ACME",
            "admin@acme.com",
            Some(&format!("{who}@acme.com")),
            at(lookback_start + offset),
        ));
    }
    let exporter = Exporter::new(&fake, &Cfg::default());
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(lookback_start, now, None),
        "first run --once (only the lookback period)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_records_are_each_delivered_once() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 26, 1000, now - DAY, now - 10 * SEC);
    // One login that the audit log holds three times (the same user, the same millisecond),
    // and an identical pair on the boundary between two windows' overlap.
    let login = FakeRecord::lifecycle(
        "USER_LOGIN",
        "ACME",
        "jane.doe@acme.com",
        None,
        at(now - 5 * HOUR + 1234),
    );
    let created = FakeRecord::lifecycle(
        "USER_CREATED",
        "ACME-SUB1",
        "admin@acme.com",
        Some("twin@acme.com"),
        at(now - 2 * HOUR),
    );
    for _ in 0..3 {
        fake.insert(login.clone());
    }
    for _ in 0..2 {
        fake.insert(created.clone());
    }
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "2d",
            window: "1h",
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    let events = run.events();
    assert_exactly_once(&events, &expected, "run --once with repeated records");
    let counts = key_counts(&events);
    assert_eq!(counts.get(&record_key(&login)), Some(&3));
    assert_eq!(counts.get(&record_key(&created)), Some(&2));

    let again = exporter.run(&["run", "--once"]).await;
    again.expect_code(0);
    assert!(again.events().is_empty(), "{again}");

    let (from, to) = (now - 6 * HOUR, now - HOUR);
    let replay = exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await;
    replay.expect_code(0);
    let replayed = replay.events();
    assert_exactly_once(
        &replayed,
        &fake.expected_lifecycle(from, to, None),
        "replay with repeated records",
    );
    let run_ids = id_set(&events);
    let foreign: Vec<&str> = replayed
        .iter()
        .map(id_of)
        .filter(|id| !run_ids.contains(*id))
        .collect();
    assert!(
        foreign.is_empty(),
        "replay gave records ids run did not: {foreign:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_created_time_is_emitted_once_with_time_null() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 28, 300, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    exporter.run(&["run", "--once"]).await.expect_code(0);

    // Served inside the next run's overlap, and again in the run after that.
    let mut timeless = FakeRecord::lifecycle(
        "USER_DELETED",
        "ACME",
        "admin@acme.com",
        Some("no.time@acme.com"),
        at(now_ms() - 20 * SEC),
    );
    timeless
        .json
        .as_object_mut()
        .expect("a record is an object")
        .remove("createdTime");
    fake.insert(timeless.clone());
    let second = exporter.run(&["run", "--once"]).await;
    second.expect_code(0);
    let events = second.events();
    assert_eq!(events.len(), 1, "{second}");
    let event = &events[0];
    assert!(shape_problems(event).is_empty(), "{event}");
    assert_eq!(event["time"], serde_json::Value::Null, "{event}");
    assert_eq!(event["type"], "USER_DELETED", "{event}");
    assert_eq!(event["target"], "no.time@acme.com", "{event}");
    assert_eq!(event["raw"], timeless.json, "{event}");

    let third = exporter.run(&["run", "--once"]).await;
    third.expect_code(0);
    assert!(
        third.events().is_empty(),
        "the record without time came again: {third}"
    );
}
