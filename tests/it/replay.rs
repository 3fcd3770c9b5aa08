//! `replay`: exactness over an unaligned range, independence from the live checkpoint, and
//! resuming an interrupted replay.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_lacework::{FakeRecord, Fault, LIFECYCLE_KINDS};
use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_an_unaligned_range_emits_each_record_exactly_once() {
    let fake = start_fake(200).await;
    let now = now_ms();
    let (start, end) = (now - 2 * DAY - HOUR, now - HOUR);
    generate(&fake, 11, 5000, start, end);
    let from = start + 7 * HOUR + 13 * MIN + 27 * SEC + 123;
    let to = end - 5 * HOUR - 2 * MIN - 1877;
    // Records on every edge: the range's bounds and the 6h windows' bounds inside it.
    let edges = [
        from - 1,
        from,
        from + 1,
        from + 6 * HOUR - 1,
        from + 6 * HOUR,
        from + 12 * HOUR,
        to - 1,
        to,
        to + 1,
    ];
    for (i, ms) in edges.iter().enumerate() {
        fake.insert(FakeRecord::lifecycle(
            LIFECYCLE_KINDS[i % 5],
            "ACME",
            "edge.admin@acme.com",
            Some(&format!("edge.user{i}@acme.com")),
            at(*ms),
        ));
    }

    let exporter = Exporter::new(&fake, &Cfg::default());
    let replay = exporter
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await;
    replay.expect_code(0);
    let expected = fake.expected_lifecycle(from, to, None);
    assert!(expected.len() > 1000, "too few records to mean much");
    let lifecycle_ids = assert_exactly_once(&replay.events(), &expected, "replay (lifecycle)");
    assert_time_ordered(&replay.events(), "replay");

    let all = Exporter::new(
        &fake,
        &Cfg {
            include: "all",
            ..Cfg::default()
        },
    );
    let replay_all = all
        .run(&["replay", "--from", &rfc3339(from), "--to", &rfc3339(to)])
        .await;
    replay_all.expect_code(0);
    let every = records_in(&fake, from, to);
    let events = replay_all.events();
    assert_eq!(
        events.len(),
        every.len(),
        "include = \"all\" emits one event per record in the range"
    );
    let all_ids = assert_exactly_once(&events, &every, "replay (include = all)");
    let n_audit = events.iter().filter(|e| e["type"] == "AUDIT").count();
    assert_eq!(
        n_audit,
        every.len() - expected.len(),
        "every non-lifecycle record is AUDIT"
    );
    for (key, id) in &lifecycle_ids {
        assert_eq!(
            all_ids.get(key),
            Some(id),
            "the same record gets the same id in both replays: {key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_leaves_the_live_checkpoint_alone_and_re_emits_delivered_ids() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 14, 3000, now - 2 * DAY, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let run_ids = assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 3 * DAY, now, None),
        "run --once",
    );
    let before = exporter.state().await;
    let live_before = live_entry(&before)
        .cloned()
        .unwrap_or_else(|| panic!("no live stream after run --once: {before}"));

    let (from, to) = (now - 30 * HOUR - 17 * MIN, now - 3 * HOUR);
    let (from_text, to_text) = (rfc3339(from), rfc3339(to));
    let replay = exporter
        .run(&["replay", "--from", &from_text, "--to", &to_text])
        .await;
    replay.expect_code(0);
    let replay_ids = assert_exactly_once(
        &replay.events(),
        &fake.expected_lifecycle(from, to, None),
        "replay after run",
    );
    for (key, id) in &replay_ids {
        assert_eq!(
            run_ids.get(key),
            Some(id),
            "replay re-emits the id run delivered: {key}"
        );
    }
    let after = exporter.state().await;
    let live_after = live_entry(&after)
        .cloned()
        .unwrap_or_else(|| panic!("the live stream vanished after replay: {after}"));
    for field in ["checkpoint", "updated_at", "remembered_ids"] {
        assert_eq!(
            live_after[field], live_before[field],
            "replay changed the live stream's {field}: before {live_before}, after {live_after}"
        );
    }
    assert_eq!(
        after["replays"].as_array().map(Vec::len),
        Some(0),
        "a finished replay leaves no job behind: {after}"
    );

    let named = exporter
        .run(&[
            "replay", "--from", &from_text, "--to", &to_text, "--sink", "stdout",
        ])
        .await;
    named.expect_code(0);
    assert_eq!(
        id_set(&named.events()),
        id_set(&replay.events()),
        "--sink stdout delivers the same events"
    );

    let unknown = exporter
        .run(&[
            "replay", "--from", &from_text, "--to", &to_text, "--sink", "nope",
        ])
        .await;
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("nope"),
        "the error names the unknown sink: {unknown}"
    );
    assert!(unknown.stdout.is_empty(), "nothing delivered: {unknown}");
    assert_eq!(
        live_checkpoint(&exporter.state().await),
        live_checkpoint(&before)
    );
}

/// Runs a replay until it has printed its first window, then stops it with SIGTERM.
async fn interrupted(exporter: &Exporter, args: &[&str]) -> Finished {
    let mut replay = exporter.spawn(args);
    replay
        .wait_until("a window's events", Duration::from_secs(30), |r| {
            r.lines_so_far() > 0
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    replay.signal("TERM").await;
    let sent = Instant::now();
    let stopped = replay.wait(TIMEOUT).await;
    let stop_time = sent.elapsed();
    stopped.expect_code(0);
    assert!(
        stop_time < Duration::from_secs(5),
        "replay took {stop_time:?} to stop after SIGTERM"
    );
    stopped
}

/// The saved position of the one unfinished replay.
async fn saved_position(exporter: &Exporter, from: i64, to: i64) -> i64 {
    let state = exporter.state().await;
    let jobs = state["replays"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "the interrupted replay is saved: {state}");
    let position = parse_time(jobs[0]["position"].as_str().unwrap_or_default());
    assert!(
        position > from && position < to,
        "saved position {} should lie inside the range: {state}",
        rfc3339(position)
    );
    assert_eq!(
        live_checkpoint(&state),
        None,
        "replay must not create a live checkpoint"
    );
    position
}

/// Fails unless every event lies at or after `position`.
fn assert_starts_at(events: &[Value], position: i64, what: &str) {
    let early = events
        .iter()
        .filter(|e| parse_time(e["time"].as_str().unwrap_or_default()) < position)
        .count();
    assert!(
        early == 0,
        "{what} emitted {early} events before its saved position {}",
        rfc3339(position)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_replay_resumes_where_it_stopped() {
    let fake = start_fake(200).await;
    let now = now_ms();
    let (from, to) = (now - 25 * HOUR, now - HOUR);
    generate(&fake, 15, 4000, from, to);
    let expected = fake.expected_lifecycle(from, to, None);
    let exporter = Exporter::new(&fake, &Cfg::default());
    fake.fail_next(100_000, Fault::Slow(Duration::from_millis(200)));
    let (from_text, to_text) = (rfc3339(from), rfc3339(to));

    let first = interrupted(
        &exporter,
        &["replay", "--from", &from_text, "--to", &to_text],
    )
    .await;
    let first_position = saved_position(&exporter, from, to).await;
    // Resuming the same range, named again, and interrupting once more.
    let second = interrupted(
        &exporter,
        &["replay", "--from", &from_text, "--to", &to_text, "--resume"],
    )
    .await;
    let second_position = saved_position(&exporter, from, to).await;
    assert!(
        second_position > first_position,
        "the second replay made no progress"
    );
    assert_starts_at(
        &second.events(),
        first_position,
        "replay --from --to --resume",
    );
    // The most recent unfinished replay, to its end.
    let third = exporter.run(&["replay", "--resume"]).await;
    third.expect_code(0);
    assert_starts_at(&third.events(), second_position, "replay --resume");

    let mut union: Vec<Value> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for run in [&first, &second, &third] {
        let events = run.events();
        assert!(
            events.len() < expected.len(),
            "a replay emitted the whole range: {run}"
        );
        for event in events {
            if seen.insert(id_of(&event).to_string()) {
                union.push(event);
            }
        }
    }
    assert_exactly_once(&union, &expected, "replay interrupted twice, then resumed");
    let state = exporter.state().await;
    assert_eq!(
        state["replays"].as_array().map(Vec::len),
        Some(0),
        "the finished replay is forgotten: {state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_gets_each_event_and_replay_sink_picks_one() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 31, 1500, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            sinks: "[[sinks]]\ntype = \"stdout\"\nname = \"first\"\n\n[[sinks]]\ntype = \"stdout\"\nname = \"second\"\n",
            ..Cfg::default()
        },
    );
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let events = run.events();
    let counts = key_counts(&events);
    let wrong: Vec<_> = expected
        .iter()
        .filter(|r| counts.get(&record_key(r)) != Some(&2))
        .collect();
    assert!(
        events.len() == 2 * expected.len() && wrong.is_empty(),
        "two stdout sinks should print each of {} events twice: got {} lines, {} records not twice",
        expected.len(),
        events.len(),
        wrong.len()
    );
    let (from, to) = (now - 20 * HOUR, now - 2 * HOUR);
    let replay = exporter
        .run(&[
            "replay",
            "--from",
            &rfc3339(from),
            "--to",
            &rfc3339(to),
            "--sink",
            "second",
        ])
        .await;
    replay.expect_code(0);
    assert_exactly_once(
        &replay.events(),
        &fake.expected_lifecycle(from, to, None),
        "replay --sink second",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_line_is_drawn_on_a_terminal_and_nowhere_else() {
    let fake = start_fake(200).await;
    let now = now_ms();
    let (from, to) = (now - 25 * HOUR, now - HOUR);
    generate(&fake, 17, 3000, from, to);
    let expected = fake.expected_lifecycle(from, to, None);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let (from_text, to_text) = (rfc3339(from), rfc3339(to));
    let args = ["replay", "--from", &from_text, "--to", &to_text];
    // Slow pages, so the line is drawn again between windows and log lines.
    fake.fail_next(100_000, Fault::Slow(Duration::from_millis(40)));
    let events_file = exporter.dir.path().join("events.jsonl");

    let shown = exporter.run_in_terminal(&args, &[], &events_file).await;
    shown.expect_code(0);
    let events = std::fs::read_to_string(&events_file).expect("events file");
    assert_eq!(
        events.lines().count(),
        expected.len(),
        "every event reaches standard output: {shown}"
    );
    assert!(
        shown.stdout.contains("replay: windows 0/4, 0 events") && shown.stdout.contains("ETA"),
        "a terminal shows the progress line (24h in windows of 6h): {shown}"
    );
    let rows = terminal_rows(&shown.stdout);
    let rows: Vec<&str> = rows
        .iter()
        .map(|r| r.trim_end())
        .filter(|r| !r.is_empty())
        .collect();
    // Each log line stands alone on its row: the progress line was erased before it and
    // drawn again below it, so what stays is the logs and the summary.
    for row in &rows {
        let is_log = row.starts_with("20") && (row.contains(" INFO ") || row.contains(" WARN "));
        assert!(
            is_log || row.starts_with("replay: windows 4/4, "),
            "a row that is neither a log line nor the summary: {row:?}\nrows: {rows:#?}"
        );
    }
    let summary = format!("replay: windows 4/4, {} events in ", expected.len());
    assert!(
        rows.iter().any(|row| row.starts_with(&summary)),
        "the summary stays: {rows:#?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.contains("Window delivered and committed."))
            .count()
            >= 4,
        "each window's log line: {rows:#?}"
    );

    // No line without a terminal, under systemd, with JSON logs, or with --no-progress.
    let piped = exporter.run(&args).await;
    piped.expect_code(0);
    let mut no_progress = args.to_vec();
    no_progress.push("--no-progress");
    let quiet = [
        ("piped", piped),
        (
            "JOURNAL_STREAM",
            exporter
                .run_in_terminal(&args, &[("JOURNAL_STREAM", "8:1234")], &events_file)
                .await,
        ),
        (
            "--log-format json",
            exporter
                .run_in_terminal(
                    &[&["--log-format", "json"], &args[..]].concat(),
                    &[],
                    &events_file,
                )
                .await,
        ),
        (
            "--no-progress",
            exporter
                .run_in_terminal(&no_progress, &[], &events_file)
                .await,
        ),
    ];
    for (what, run) in &quiet {
        run.expect_code(0);
        let logs = format!("{}{}", run.stdout, run.stderr);
        assert!(
            !logs.contains("replay: windows") && !logs.contains("ETA") && !logs.contains('\x1b'),
            "{what}: no progress line: {run}"
        );
        assert!(logs.contains("Replay finished."), "{what}: the logs: {run}");
    }
}
