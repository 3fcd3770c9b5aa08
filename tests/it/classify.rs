//! Classification and target extraction against the fake's ground truth, over a large
//! generated history with every wording and time format.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classification_matches_ground_truth_on_20000_records() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 17, 20_000, now - 2 * DAY, now - HOUR);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            include: "all",
            window: "1d",
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let events = run.events();
    let records = fake.records();
    let mut by_key: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for event in &events {
        by_key.entry(event_key(event)).or_default().push(event);
    }
    // (expected, emitted, userAction) -> (count, an example record)
    let mut mismatches: BTreeMap<(String, String, String), (usize, String)> = BTreeMap::new();
    for record in &records {
        let want = record.expected_type.as_deref().unwrap_or("AUDIT");
        let got = by_key
            .get(&record_key(record))
            .and_then(|events| events.first())
            .map_or("(not emitted)".to_string(), |e| {
                e["type"].as_str().unwrap_or("(no type)").to_string()
            });
        if got != want {
            let action = record.json["userAction"].as_str().unwrap_or("").to_string();
            let entry = mismatches
                .entry((want.to_string(), got, action))
                .or_insert((0, record.json.to_string()));
            entry.0 += 1;
        }
    }
    let report: Vec<String> = mismatches
        .iter()
        .map(|((want, got, action), (n, example))| {
            format!("{n} x {action:?}: expected {want}, emitted {got}; e.g. {example}")
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} of {} records misclassified:\n{}",
        mismatches.values().map(|(n, _)| n).sum::<usize>(),
        records.len(),
        report.join("\n")
    );
    // Then everything else about each event: once, target, time, raw.
    assert_exactly_once(&events, &records, "run --once with include = all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_rules_come_before_the_built_in_ones() {
    use fake_lacework::FakeRecord;

    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 29, 1000, now - DAY, now - HOUR);
    let onboarded = FakeRecord::custom(
        "ACME",
        at(now - 2 * HOUR),
        "Member Onboarded",
        "Team Member",
        "Member newbie@acme.com onboarded by admin@acme.com",
        "admin@acme.com",
    );
    fake.insert(onboarded.clone());
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            include: "all",
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let text = exporter.config_text().replace(
        "[[sinks]]",
        concat!(
            "[[events.rules]]\ntype = \"USER_CREATED\"\npattern = \"^member onboarded$\"\n",
            "fields = [\"userAction\"]\n\n",
            "[[events.rules]]\ntype = \"USER_ROLE_CHANGED\"\npattern = \"^User Created$\"\n",
            "fields = [\"userAction\"]\n\n[[sinks]]"
        ),
    );
    exporter.write_config(&text);
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let events = run.events();
    let by_key = key_counts(&events);
    assert_eq!(by_key.get(&record_key(&onboarded)), Some(&1));
    let mut wrong = Vec::new();
    for event in &events {
        let raw = &event["raw"];
        let want = if raw == &onboarded.json {
            Some("USER_CREATED")
        } else if raw["userAction"] == "User Created" {
            Some("USER_ROLE_CHANGED")
        } else {
            None
        };
        if let Some(want) = want
            && event["type"] != want
        {
            wrong.push(format!("expected {want}, got {}: {raw}", event["type"]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} events ignore the configured rules:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    assert!(
        events
            .iter()
            .any(|e| e["raw"]["userAction"] == "User Created"),
        "the history should hold \"User Created\" records"
    );
    assert_eq!(events.len(), fake.record_count(), "include = all");
}
