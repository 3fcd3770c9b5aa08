//! Delivery progress per sink, through the binary: a sink that took a batch while another
//! still held it is not handed that batch again after `kill -9`.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::receiver::Receiver;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_does_not_repeat_what_it_took_while_a_slow_webhook_held_the_batch() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 81, 3_000, now - DAY, now - 10 * SEC);
    let receiver = Receiver::start().await;
    // The webhook takes seconds to answer: it holds every batch long after stdout took it.
    receiver.set_delay(Duration::from_secs(30));
    let file = tempfile::tempdir().expect("a temporary directory");
    let path = file.path().join("events.ndjson");
    let sinks = format!(
        "[[sinks]]\ntype = \"stdout\"\n\n[[sinks]]\ntype = \"file\"\npath = \"{}\"\n\n[[sinks]]\ntype = \"webhook\"\nname = \"siem\"\nurl = \"{}\"\nretry_initial = \"100ms\"\nretry_max = \"500ms\"\ntimeout = \"60s\"\n",
        path.display(),
        receiver.url("/lacework")
    );
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            sinks: Box::leak(sinks.into_boxed_str()),
            ..Cfg::default()
        },
    );
    let mut first = exporter.spawn(&["run"]);
    first
        .wait_until(
            "stdout took the first batch",
            Duration::from_secs(30),
            |d| d.lines_so_far() > 0,
        )
        .await;
    // Time for the acknowledgements of stdout and the file to be recorded.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.signal("KILL").await;
    let first_events = first.wait(TIMEOUT).await.events_allowing_cut_tail();
    assert!(!first_events.is_empty());
    let file_lines_before = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .count();
    assert!(file_lines_before > 0, "the file took the batch too");
    assert!(
        receiver.accepted_events().is_empty(),
        "the webhook had not answered yet"
    );

    receiver.set_delay(Duration::ZERO);
    let second = exporter.run(&["run", "--once"]).await;
    second.expect_code(0);
    let first_ids = id_set(&first_events);
    let again: Vec<String> = second
        .events()
        .iter()
        .map(|e| id_of(e).to_string())
        .filter(|id| first_ids.contains(id))
        .collect();
    assert!(
        again.is_empty(),
        "stdout got again {} of the {} events it took before the kill",
        again.len(),
        first_ids.len()
    );
    let stdout_all: Vec<serde_json::Value> = first_events
        .iter()
        .cloned()
        .chain(second.events())
        .collect();
    let webhook_ids: HashSet<String> = id_set(&receiver.accepted_events());
    assert_eq!(
        id_set(&stdout_all),
        webhook_ids,
        "stdout and the webhook hold the same events"
    );
    assert_eq!(stdout_all.len(), webhook_ids.len(), "stdout: each once");
    let file_text = std::fs::read_to_string(&path).expect("the file");
    let file_ids: Vec<String> = file_text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a whole JSON line"))
        .map(|e| id_of(&e).to_string())
        .collect();
    assert_eq!(file_ids.len(), webhook_ids.len(), "the file: each once");
    assert_eq!(
        file_ids.iter().cloned().collect::<HashSet<_>>(),
        webhook_ids
    );
    note(&format!(
        "never repeat: kill -9 while a slow webhook held the batch; stdout took {} events before, 0 again after; file {} lines, webhook {} events",
        first_ids.len(),
        file_ids.len(),
        webhook_ids.len()
    ));
}
