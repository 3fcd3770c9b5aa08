//! Classification and target extraction against the fake's ground truth, over a large
//! generated history with every wording and time format.

use std::collections::BTreeMap;

use serde_json::Value;

use fake_lacework::FakeRecord;

use crate::support::*;

/// Every record the fake holds as an event (`include = "all"`), from one `run --once`.
async fn every_record_once(fake: &fake_lacework::FakeLacework) -> Vec<Value> {
    let exporter = Exporter::new(
        fake,
        &Cfg {
            include: "all",
            window: "1d",
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    run.events()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classification_matches_ground_truth_on_20000_records() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 17, 20_000, now - 2 * DAY, now - HOUR);
    let events = every_record_once(&fake).await;
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
async fn actor_first_wording_gets_the_right_type_and_target_and_look_alikes_stay_audit() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    let added = fake.generate(&fake_lacework::GenerateSpec {
        seed: 23,
        count: 20_000,
        start: at(now - 2 * DAY),
        end: at(now - HOUR),
        wording: fake_lacework::Wording::ActorFirst,
        ..fake_lacework::GenerateSpec::default()
    });
    assert_eq!(added, 20_000);
    let events = every_record_once(&fake).await;
    let by_key: BTreeMap<String, &Value> = events.iter().map(|e| (event_key(e), e)).collect();
    let mut wrong: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let (mut n_lifecycle, mut n_look_alike) = (0, 0);
    for record in fake.records() {
        let want_type = record.expected_type.as_deref().unwrap_or("AUDIT");
        let want_target = record.expected_target.clone();
        if record.expected_type.is_some() {
            n_lifecycle += 1;
        } else if fake_lacework::LOOK_ALIKE_ACTIONS
            .iter()
            .any(|a| record.json["userAction"] == *a)
        {
            n_look_alike += 1;
        }
        let Some(event) = by_key.get(&record_key(&record)) else {
            wrong
                .entry(format!("{want_type} not emitted"))
                .or_insert((0, record.json.to_string()))
                .0 += 1;
            continue;
        };
        let got_target = event["target"].as_str().map(str::to_string);
        let target_checked = record
            .expected_type
            .as_deref()
            .is_some_and(|t| !t.starts_with("API_KEY"));
        if event["type"] != want_type || (target_checked && got_target != want_target) {
            let key = format!(
                "expected {want_type} about {want_target:?}, got {} about {got_target:?}",
                event["type"]
            );
            wrong.entry(key).or_insert((0, record.json.to_string())).0 += 1;
        }
    }
    assert!(
        n_lifecycle > 1000 && n_look_alike > 100,
        "{n_lifecycle} lifecycle, {n_look_alike} look-alikes"
    );
    let report: Vec<String> = wrong
        .iter()
        .map(|(what, (n, example))| format!("{n} x {what}; e.g. {example}"))
        .collect();
    assert!(
        report.is_empty(),
        "actor-first records misread:\n{}",
        report.join("\n")
    );
    note(&format!(
        "actor-first wording: {} records, {n_lifecycle} lifecycle (type and target right), {n_look_alike} look-alikes AUDIT",
        fake.record_count()
    ));
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

/// The fake's records as an NDJSON export in `dir`.
fn export(fake: &fake_lacework::FakeLacework, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("export.ndjson");
    let text: String = fake
        .records()
        .iter()
        .map(|r| format!("{}\n", r.json))
        .collect();
    std::fs::write(&path, text).expect("export written");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_summary_counts_types_and_lists_what_no_rule_matched() {
    let fake = start_fake(5000).await;
    let now = now_ms();
    generate(&fake, 31, 3_000, now - DAY, now - HOUR);
    let dir = tempfile::tempdir().unwrap();
    let path = export(&fake, dir.path());
    let path = path.display().to_string();
    // No configuration anywhere: the built-in rules.
    let missing = dir.path().join("none.toml").display().to_string();
    let summary = run_bin(&["classify", "--summary", &path], &[]).await;
    summary.expect_code(0);
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for record in fake.records() {
        *want
            .entry(record.expected_type.clone().unwrap_or("AUDIT".into()))
            .or_insert(0) += 1;
    }
    assert!(
        summary
            .stdout
            .contains(&format!("records: {}", fake.record_count())),
        "{}",
        summary.stdout
    );
    for (event_type, count) in &want {
        let line = summary
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(event_type.as_str()))
            .unwrap_or_else(|| panic!("no line for {event_type}:\n{}", summary.stdout));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some(count.to_string().as_str()),
            "{line}"
        );
    }
    assert!(
        summary
            .stdout
            .contains("matched no rule (AUDIT), by value:")
    );

    // --json: the same counts, and every unmatched value belongs to a record expected AUDIT.
    let json = run_bin(&["classify", "--summary", "--json", &path], &[]).await;
    json.expect_code(0);
    let value: Value = serde_json::from_str(json.stdout.trim()).expect("one JSON object");
    for (event_type, count) in &want {
        assert_eq!(value["by_type"][event_type], *count as u64, "{event_type}");
    }
    let audit_values: std::collections::HashSet<String> = fake
        .records()
        .iter()
        .filter(|r| r.expected_type.is_none())
        .flat_map(|r| {
            [&r.json["userAction"], &r.json["eventName"]]
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
        })
        .collect();
    let unmatched = value["unmatched"].as_array().expect("an array");
    assert!(!unmatched.is_empty());
    for entry in unmatched {
        let value = entry["value"].as_str().unwrap();
        assert!(audit_values.contains(value), "{entry} is a lifecycle value");
    }

    // One line per record, from standard input too, and a named missing file is an error.
    let lines = run_bin(&["--config", &missing, "classify", "--json", &path], &[]).await;
    assert_eq!(
        lines.code,
        Some(2),
        "a named configuration must exist: {lines}"
    );
    let lines = run_bin(&["classify", "--json", &path], &[]).await;
    lines.expect_code(0);
    assert_eq!(lines.stdout.lines().count(), fake.record_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_reads_actor_first_wording_right_and_config_rules_first() {
    let dir = tempfile::tempdir().unwrap();
    let records = [
        (
            r#"{"userAction":"User Created","userName":"admin@acme.com","eventDescription":"User admin@acme.com created user bob@acme.com in ACME account"}"#,
            "USER_CREATED",
            "bob@acme.com",
        ),
        (
            r#"{"userName":"admin@acme.com","eventDescription":"User admin@acme.com deleted user carol@acme.com in ACME account"}"#,
            "USER_DELETED",
            "carol@acme.com",
        ),
        (
            r#"{"userAction":"Alert Channel Created","userName":"admin@acme.com","eventDescription":"User admin@acme.com created alert channel soc-slack in ACME account"}"#,
            "AUDIT",
            "-",
        ),
        (
            r#"{"userName":"admin@acme.com","eventDescription":"User admin@acme.com disabled policy lacework-global-1 in ACME account"}"#,
            "AUDIT",
            "-",
        ),
        (
            r#"{"eventName":"User Login","userAction":"Login with OAuth Succeeded","userName":"info@example.com","eventDescription":"User info@example.com logged in to Lacework account using OAuth credentials"}"#,
            "USER_LOGIN",
            "info@example.com",
        ),
        (
            r#"{"userAction":"Member Offboarded","userName":"admin@acme.com","eventDescription":"admin@acme.com offboarded dave@acme.com"}"#,
            "AUDIT",
            "-",
        ),
    ];
    let path = dir.path().join("records.json");
    let array: Vec<&str> = records.iter().map(|(r, _, _)| *r).collect();
    std::fs::write(&path, format!("[{}]", array.join(","))).unwrap();
    let path = path.display().to_string();
    let check = |stdout: &str, last: (&str, &str)| {
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), records.len(), "{stdout}");
        for (idx, ((_, want_type, want_target), line)) in records.iter().zip(&lines).enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            let (want_type, want_target) = if idx + 1 == records.len() {
                last
            } else {
                (*want_type, *want_target)
            };
            assert_eq!((fields[0], fields[1]), (want_type, want_target), "{line}");
        }
    };
    let builtin = run_bin(&["classify", &path], &[]).await;
    builtin.expect_code(0);
    check(&builtin.stdout, ("AUDIT", "-"));

    // A configuration's rules come first, with a target group.
    let fake = start_fake(100).await;
    let exporter = Exporter::new(&fake, &Cfg::default());
    let text = exporter.config_text().replace(
        "[[sinks]]",
        "[[events.rules]]\ntype = \"USER_DELETED\"\npattern = 'offboarded (?P<target>\\S+)'\nfields = [\"eventDescription\"]\n\n[[sinks]]",
    );
    exporter.write_config(&text);
    let config = exporter.config_path.display().to_string();
    let with_rules = run_bin(&["--config", &config, "classify", &path], &[]).await;
    with_rules.expect_code(0);
    check(&with_rules.stdout, ("USER_DELETED", "dave@acme.com"));
    assert!(with_rules.stdout.contains("events.rules[0]"));
}

/// `[reconcile] every` added to an exporter's configuration.
fn with_reconcile(exporter: &Exporter, every: &str) {
    let text = exporter.config_text().replace(
        "[[sinks]]",
        &format!("[reconcile]\nevery = \"{every}\"\n\n[[sinks]]"),
    );
    exporter.write_config(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_delivers_what_the_audit_log_missed_once_and_nothing_twice() {
    use fake_lacework::UserChange;

    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 41, 400, now - DAY, now - HOUR);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            ..Cfg::default()
        },
    );
    with_reconcile(&exporter, "5s");
    let account = "ACME";
    let actor = "admin@acme.com";
    for user in ["gone@acme.com", "both@acme.com"] {
        fake.apply_user_change_silently(
            account,
            actor,
            &UserChange::Create { user: user.into() },
            at(now - 2 * HOUR),
        );
    }
    // 1. The first snapshot is a baseline: nothing from reconciliation.
    let first = exporter.run(&["run", "--once"]).await;
    first.expect_code(0);
    assert!(
        first.stderr.contains("User inventory baseline taken"),
        "{}",
        tail(&first.stderr)
    );
    assert!(first.events().iter().all(|e| e["source"] == "audit"));

    // 2. A deletion the audit log never tells: exactly one USER_DELETED from reconciliation.
    fake.apply_user_change_silently(
        account,
        actor,
        &UserChange::Delete {
            user: "gone@acme.com".into(),
        },
        at(now_ms()),
    );
    // 3. A deletion the audit log tells too: exactly one event in all.
    let both = fake.record_user_change(
        account,
        actor,
        &UserChange::Delete {
            user: "both@acme.com".into(),
        },
        at(now_ms()),
    );
    assert_eq!(both.expected_target.as_deref(), Some("both@acme.com"));
    // Past the interval, and past `settle` for the audit record.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let second = exporter.run(&["run", "--once"]).await;
    second.expect_code(0);
    let third = exporter.run(&["run", "--once"]).await;
    third.expect_code(0);
    let events: Vec<Value> = second.events().into_iter().chain(third.events()).collect();
    let deleted = |target: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["type"] == "USER_DELETED" && e["target"] == target)
            .collect()
    };
    let gone = deleted("gone@acme.com");
    assert_eq!(gone.len(), 1, "{gone:?}\n{}", tail(&second.stderr));
    assert_eq!(gone[0]["source"], "reconcile");
    assert_eq!(gone[0]["account"], account);
    let both_events = deleted("both@acme.com");
    assert_eq!(
        both_events.len(),
        1,
        "one event for a change both sources saw: {both_events:?}"
    );
    assert_eq!(both_events[0]["source"], "audit");
    note(&format!(
        "reconcile: silent deletion -> 1 reconcile event; deletion in both -> 1 audit event; {} events over two runs",
        events.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_may_not_list_users_turns_reconciliation_off_with_one_warning() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 43, 100, now - DAY, now - HOUR);
    fake.set_refuse_team_users(true);
    fake.set_refuse_team_members(true);
    let exporter = Exporter::new(&fake, &Cfg::default());
    with_reconcile(&exporter, "1s");
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_eq!(
        run.stderr.matches("may not list users").count(),
        1,
        "{}",
        tail(&run.stderr)
    );
    // TeamMembers answers when TeamUsers is refused.
    fake.set_refuse_team_members(false);
    let fallback = exporter.run(&["run", "--once"]).await;
    fallback.expect_code(0);
    assert!(
        fallback.stderr.contains("/api/v2/TeamMembers"),
        "{}",
        tail(&fallback.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_record_arriving_after_reconciliation_told_the_change_is_not_delivered_again() {
    use fake_lacework::UserChange;

    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 44, 200, now - DAY, now - HOUR);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            ..Cfg::default()
        },
    );
    with_reconcile(&exporter, "5s");
    let (account, actor) = ("ACME", "admin@acme.com");
    fake.apply_user_change_silently(
        account,
        actor,
        &UserChange::Create {
            user: "late@acme.com".into(),
        },
        at(now - 2 * HOUR),
    );
    exporter.run(&["run", "--once"]).await.expect_code(0);
    // Deleted without a record: reconciliation tells it first.
    let deleted_at = now_ms();
    fake.apply_user_change_silently(
        account,
        actor,
        &UserChange::Delete {
            user: "late@acme.com".into(),
        },
        at(deleted_at),
    );
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let reconciled = exporter.run(&["run", "--once"]).await;
    reconciled.expect_code(0);
    // Then its audit record lands late, inside the overlap the next run re-reads.
    fake.insert(FakeRecord::custom(
        account,
        at(deleted_at),
        "User Deleted",
        "User",
        "User admin@acme.com deleted user late@acme.com from ACME account",
        actor,
    ));
    let after = exporter.run(&["run", "--once"]).await;
    after.expect_code(0);
    let deleted: Vec<Value> = reconciled
        .events()
        .into_iter()
        .chain(after.events())
        .filter(|e| e["type"] == "USER_DELETED" && e["target"] == "late@acme.com")
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}\n{}", tail(&after.stderr));
    assert_eq!(deleted[0]["source"], "reconcile");
}
