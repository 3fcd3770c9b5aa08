//! The command line: configuration errors, time arguments, exit codes and `validate`.

use futures::future::join_all;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_exit_2_naming_the_key() {
    let fake = start_fake(200).await;
    let exporter = Exporter::new(&fake, &Cfg::default());
    let good = exporter.config_text();
    let missing_secret = exporter.dir.path().join("no-such-secret");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown key",
            good.replace("overlap = \"1m\"", "overlap = \"1m\"\nwindw = \"1d\""),
            vec!["poll.windw"],
        ),
        (
            "window longer than 7d",
            good.replace("window = \"6h\"", "window = \"8d\""),
            vec!["poll.window", "7d"],
        ),
        (
            "unparseable duration",
            good.replace("interval = \"1s\"", "interval = \"soon\""),
            vec!["poll.interval"],
        ),
        (
            "bare integer duration",
            good.replace("settle = \"2s\"", "settle = 120"),
            vec!["poll.settle"],
        ),
        (
            "missing secret file",
            good.replace(
                &exporter.secret_path.display().to_string(),
                &missing_secret.display().to_string(),
            ),
            vec!["lacework.secret_file"],
        ),
        (
            "no sinks",
            good.replace("[[sinks]]\ntype = \"stdout\"\n", ""),
            vec!["sinks"],
        ),
        (
            "duplicate sink names",
            format!("{good}\n[[sinks]]\ntype = \"stdout\"\n"),
            vec!["sinks[1].name", "twice"],
        ),
        (
            "invalid rule pattern",
            good.replace(
                "[[sinks]]",
                "[[events.rules]]\ntype = \"USER_CREATED\"\npattern = \"(unclosed\"\n\n[[sinks]]",
            ),
            vec!["events.rules[0].pattern"],
        ),
        (
            "lookback beyond the API's history",
            good.replace("lookback = \"3d\"", "lookback = \"93d\""),
            vec!["poll.lookback"],
        ),
        (
            "retention shorter than overlap + window",
            good.replace("[events]", "retention = \"6h\"\n\n[events]"),
            vec!["state.retention"],
        ),
        (
            "token lifetime out of range",
            good.replace("max_retries = 8", "max_retries = 8\ntoken_ttl = \"30s\""),
            vec!["lacework.token_ttl"],
        ),
        (
            "clear-text base_url off loopback",
            good.replace(&fake.base_url(), "http://10.0.0.5:8080"),
            vec!["lacework.base_url"],
        ),
        ("not TOML", format!("{good}\n[lacework\n"), vec!["config"]),
    ];
    let mut runs = Vec::new();
    for (i, (name, text, needles)) in cases.iter().enumerate() {
        let path = exporter.dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).expect("config written");
        let path = path.display().to_string();
        runs.push(async move {
            for command in [&["validate"][..], &["run", "--once"]] {
                let mut args = vec!["--config", path.as_str()];
                args.extend_from_slice(command);
                let output = run_bin(&args, &[]).await;
                assert_eq!(
                    output.code,
                    Some(2),
                    "{name} ({command:?}) should exit 2: {output}"
                );
                for needle in needles {
                    assert!(
                        output.stderr.contains(needle),
                        "{name} ({command:?}): the message should mention {needle:?}: {output}"
                    );
                }
                assert!(output.stdout.is_empty(), "{name}: stdout: {output}");
            }
        });
    }
    join_all(runs).await;
    assert!(
        fake.requests().is_empty(),
        "a bad configuration must not reach the API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_command_lines_exit_2() {
    let fake = start_fake(200).await;
    let exporter = Exporter::new(&fake, &Cfg::default());
    let now = now_ms();
    let (earlier, later) = (rfc3339(now - 2 * HOUR), rfc3339(now - HOUR));
    let future = rfc3339(now + DAY);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "a word as time",
            vec!["replay", "--from", "yesterday"],
            "yesterday",
        ),
        (
            "a time without zone",
            vec!["replay", "--from", "2026-11-01T08:00:00"],
            "zone",
        ),
        (
            "--from after --to",
            vec!["replay", "--from", &later, "--to", &earlier],
            "--from",
        ),
        (
            "an empty range",
            vec!["replay", "--from", &earlier, "--to", &earlier],
            "--from",
        ),
        ("replay without --from", vec!["replay"], "--from"),
        ("nothing to resume", vec!["replay", "--resume"], "resume"),
        (
            "state set into the future",
            vec!["state", "set", "--to", &future],
            "future",
        ),
        ("an unknown command", vec!["explode"], "explode"),
        ("an unknown flag", vec!["run", "--twice"], "--twice"),
        (
            "a broken log filter",
            vec!["--log-level", "info,[", "validate"],
            "log filter",
        ),
    ];
    // Create the state file first: concurrent first opens would race to create its schema.
    exporter.state().await;
    let runs = cases.iter().map(|(name, args, needle)| {
        let exporter = &exporter;
        async move {
            let output = exporter.run(args).await;
            assert_eq!(output.code, Some(2), "{name} should exit 2: {output}");
            assert!(
                output.stderr.contains(needle),
                "{name}: stderr should mention {needle:?}: {output}"
            );
            assert!(output.stdout.is_empty(), "{name}: stdout: {output}");
        }
    });
    join_all(runs).await;
    assert!(
        fake.requests().is_empty(),
        "usage errors must not reach the API"
    );
    assert_eq!(exporter.live_checkpoint().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_accepts_a_good_configuration_and_checks_the_key_online() {
    let fake = start_fake(200).await;
    let exporter = Exporter::new(&fake, &Cfg::default());
    let offline = exporter.run(&["validate"]).await;
    offline.expect_code(0);
    assert!(
        offline.stdout.contains(&fake.base_url()),
        "the report names the API: {offline}"
    );
    assert_eq!(fake.token_requests(), 0, "plain validate stays offline");

    let config = exporter.config_path.display().to_string();
    let from_env = run_bin(
        &["validate"],
        &[("LACEWORK_AUDIT_EXPORTER_CONFIG", &config)],
    )
    .await;
    from_env.expect_code(0);
    assert_eq!(
        from_env.stdout, offline.stdout,
        "--config from the environment"
    );

    let online = exporter
        .run(&["--log-format", "json", "validate", "--online"])
        .await;
    online.expect_code(0);
    assert_eq!(
        fake.token_requests(),
        1,
        "validate --online exchanges the key"
    );
    assert!(
        !online.stderr.is_empty(),
        "the warnings about short intervals"
    );
    for line in online.stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()),
            "--log-format json wrote a line that is not JSON: {line:?}"
        );
    }

    exporter.configure(
        &fake,
        &Cfg {
            secret: Some("_not_the_secret_00000000000000000".into()),
            ..Cfg::default()
        },
    );
    exporter.run(&["validate"]).await.expect_code(0);
    let refused = exporter.run(&["validate", "--online"]).await;
    assert!(
        matches!(refused.code, Some(code) if code != 0),
        "validate --online accepted a wrong secret: {refused}"
    );
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_arguments_accept_every_documented_form() {
    let fake = start_fake(200).await;
    let exporter = Exporter::new(&fake, &Cfg::default());
    let before = now_ms();
    exporter
        .run(&["state", "set", "--to", "36h"])
        .await
        .expect_code(0);
    let after = now_ms();
    let checkpoint = exporter.live_checkpoint().await.expect("checkpoint set");
    assert!(
        checkpoint >= before - 36 * HOUR && checkpoint <= after - 36 * HOUR,
        "36h ago resolved to {}",
        rfc3339(checkpoint)
    );

    let yesterday = at(now_ms() - DAY).format("%Y-%m-%d").to_string();
    exporter
        .run(&["state", "set", "--to", &yesterday])
        .await
        .expect_code(0);
    assert_eq!(
        exporter.live_checkpoint().await.map(rfc3339),
        Some(format!("{yesterday}T00:00:00.000Z")),
        "a date is midnight UTC"
    );

    let local = at(now_ms() - 3 * HOUR);
    let with_offset = local
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))
        .to_rfc3339();
    exporter
        .run(&["state", "set", "--to", &with_offset])
        .await
        .expect_code(0);
    assert_eq!(
        exporter.live_checkpoint().await,
        Some(local.timestamp_millis()),
        "{with_offset} is converted to UTC"
    );

    let replay = exporter
        .run(&["replay", "--from", &yesterday, "--to", "now"])
        .await;
    replay.expect_code(0);
    assert!(replay.events().is_empty(), "the fake holds no records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_database_problems_exit_1() {
    let fake = start_fake(200).await;
    let exporter = Exporter::new(&fake, &Cfg::default());
    exporter.run(&["state", "show"]).await.expect_code(0);
    // A database written by a newer exporter is refused, not misread.
    {
        let connection = rusqlite::Connection::open(&exporter.state_path).expect("open state");
        connection
            .pragma_update(None, "user_version", 99)
            .expect("set user_version");
    }
    for command in [&["run", "--once"][..], &["state", "show", "--json"]] {
        let output = exporter.run(command).await;
        output.expect_code(1);
        assert!(
            output.stderr.contains("99"),
            "{command:?}: the error names the schema version: {output}"
        );
    }
    // A state path that cannot be a database.
    std::fs::remove_file(&exporter.state_path).expect("remove state");
    std::fs::create_dir(&exporter.state_path).expect("a directory in its place");
    let output = exporter.run(&["run", "--once"]).await;
    output.expect_code(1);
    assert!(
        output
            .stderr
            .contains(&exporter.state_path.display().to_string()),
        "the error names the state file: {output}"
    );
    assert!(
        fake.requests().is_empty(),
        "the API was called without usable state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_explains_itself_with_help() {
    // (arguments, words the help must contain so it can be used without the README)
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--help"],
            vec![
                "run",
                "replay",
                "state",
                "validate",
                "demo",
                "--config",
                "LACEWORK_AUDIT_EXPORTER_CONFIG",
                "--log-level",
            ],
        ),
        (
            vec!["run", "--help"],
            vec!["--once", "checkpoint", "SIGTERM"],
        ),
        (
            vec!["replay", "--help"],
            vec![
                "--from",
                "--to",
                "--sink",
                "--resume",
                "inclusive",
                "exclusive",
                "36h",
                "RFC 3339",
            ],
        ),
        (vec!["state", "--help"], vec!["show", "reset", "set"]),
        (vec!["state", "show", "--help"], vec!["--json"]),
        (vec!["state", "set", "--help"], vec!["--to"]),
        (vec!["validate", "--help"], vec!["--online", "exit"]),
        (vec!["demo", "--help"], vec!["--once", "--records", "fake"]),
        (vec!["completions", "--help"], vec!["bash"]),
        (vec!["manpage", "--help"], vec!["man page"]),
    ];
    for (args, words) in cases {
        let help = run_bin(&args, &[]).await;
        help.expect_code(0);
        for word in words {
            assert!(
                help.stdout.contains(word),
                "`{}` does not mention {word:?}:\n{}",
                args.join(" "),
                help.stdout
            );
        }
        assert!(
            help.stderr.is_empty(),
            "help goes to stdout only: {}",
            help.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_in_the_configuration() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 41, 400, now - 20 * HOUR, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let good = exporter.config_text();
    let dir = exporter.dir.path().to_str().unwrap().to_string();
    // The file sink's path from a variable, its name from a default, the poll interval
    // required with a message.
    let text = good.replace("[[sinks]]\ntype = \"stdout\"\n", "")
        + "[[sinks]]\ntype = \"file\"\nname = \"${SINK_NAME:-from-default}\"\npath = \"${EXPORT_DIR}/events.ndjson\"\n";
    let text = text.replace(
        "interval = \"1s\"",
        "interval = \"${POLL_EVERY:?set POLL_EVERY}\"",
    );
    exporter.write_config(&text);
    let config = exporter.config_path.to_str().unwrap();

    let set = [("EXPORT_DIR", dir.as_str()), ("POLL_EVERY", "1s")];
    let run = run_bin(&["--config", config, "run", "--once"], &set).await;
    run.expect_code(0);
    let written = std::fs::read_to_string(exporter.dir.path().join("events.ndjson")).unwrap();
    assert!(written.lines().count() > 10, "{run}");
    let validated = run_bin(&["--config", config, "validate"], &set).await;
    validated.expect_code(0);
    assert!(
        validated.stdout.contains("from-default"),
        "the default named the sink: {validated}"
    );

    // Missing: exit 2 naming the variable and the key.
    let missing = run_bin(&["--config", config, "validate"], &[("POLL_EVERY", "1s")]).await;
    missing.expect_code(2);
    assert!(
        missing.stderr.contains("EXPORT_DIR") && missing.stderr.contains("sinks[0].path"),
        "{missing}"
    );
    // Required with a message.
    let required = run_bin(
        &["--config", config, "validate"],
        &[("EXPORT_DIR", dir.as_str())],
    )
    .await;
    required.expect_code(2);
    assert!(
        required.stderr.contains("poll.interval") && required.stderr.contains("set POLL_EVERY"),
        "{required}"
    );
    // A line break in a value is refused.
    let newline = run_bin(
        &["--config", config, "validate"],
        &[("EXPORT_DIR", "/tmp\n[[sinks]]"), ("POLL_EVERY", "1s")],
    )
    .await;
    newline.expect_code(2);
    assert!(
        newline.stderr.contains("EXPORT_DIR") && newline.stderr.contains("line break"),
        "{newline}"
    );
}
