//! Scope headers, where credentials go, and that the secret (or a token) never shows up in
//! any output.

use fake_lacework::{FakeLacework, Fault};

use crate::support::*;

/// Token exchanges carry the secret and no bearer token; AuditLogs requests carry
/// `Authorization: Bearer <token>` and never the secret.
fn assert_credentials_go_where_they_belong(fake: &FakeLacework) {
    let requests = fake.requests();
    let exchanges: Vec<_> = requests.iter().filter(|r| is_token_exchange(r)).collect();
    assert!(!exchanges.is_empty(), "no token exchange: {requests:#?}");
    for exchange in &exchanges {
        assert!(
            exchange.method == "POST" && exchange.uaks_present && exchange.authorization.is_none(),
            "token exchange without X-LW-UAKS or with Authorization: {exchange:?}"
        );
    }
    let audit: Vec<_> = requests.iter().filter(|r| is_audit_logs(r)).collect();
    assert!(!audit.is_empty(), "no AuditLogs request");
    for request in audit {
        let authorization = request.authorization.as_deref().unwrap_or_default();
        let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
        assert!(
            !token.is_empty() && !token.contains(' ') && !request.uaks_present,
            "AuditLogs request without a bearer token or with X-LW-UAKS: {request:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_account_is_sent_as_account_name_and_scopes_the_events() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 10, 3000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            org_access: false,
            sub_account: Some("acme-sub1"),
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 2 * DAY, now, Some("ACME-SUB1")),
        "run --once with sub_account = acme-sub1",
    );
    for request in fake.requests().iter().filter(|r| is_audit_logs(r)) {
        assert_eq!(
            (
                request.account_name.as_deref(),
                request.org_access.as_deref()
            ),
            (Some("acme-sub1"), None),
            "{request:?}"
        );
    }
    assert_credentials_go_where_they_belong(&fake);
    // A record without accountName gets the configured account.
    let mut nameless = fake_lacework::FakeRecord::lifecycle(
        "USER_ENABLED",
        "ACME-SUB1",
        "admin@acme.com",
        Some("no.account@acme.com"),
        at(now_ms() - 20 * SEC),
    );
    nameless
        .json
        .as_object_mut()
        .expect("a record is an object")
        .remove("accountName");
    fake.insert(nameless.clone());
    let next = exporter.run(&["run", "--once"]).await;
    next.expect_code(0);
    let events = next.events();
    assert_eq!(events.len(), 1, "{next}");
    assert_eq!(events[0]["raw"], nameless.json);
    assert_eq!(events[0]["account"], "acme-sub1", "{}", events[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_access_is_sent_and_reads_every_account() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 12, 3000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let events = run.events();
    assert_exactly_once(
        &events,
        &fake.expected_lifecycle(now - 2 * DAY, now, None),
        "run --once with org_access",
    );
    let accounts: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e["account"].as_str())
        .collect();
    assert_eq!(
        accounts.into_iter().collect::<Vec<_>>(),
        ["ACME", "ACME-SUB1", "ACME-SUB2"]
    );
    for request in fake.requests().iter().filter(|r| is_audit_logs(r)) {
        assert_eq!(
            (
                request.org_access.as_deref(),
                request.account_name.as_deref()
            ),
            (Some("true"), None),
            "{request:?}"
        );
    }
    assert_credentials_go_where_they_belong(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_scope_reads_the_keys_own_account() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 18, 3000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            org_access: false,
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 2 * DAY, now, Some("ACME")),
        "run --once without scope settings",
    );
    for request in fake.requests().iter().filter(|r| is_audit_logs(r)) {
        assert_eq!(
            (
                request.org_access.as_deref(),
                request.account_name.as_deref()
            ),
            (None, None),
            "{request:?}"
        );
    }
    assert_credentials_go_where_they_belong(&fake);
}

/// The bearer tokens the fake saw.
fn tokens_seen(fake: &FakeLacework) -> Vec<String> {
    let mut tokens: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.authorization.as_deref())
        .filter_map(|a| a.strip_prefix("Bearer "))
        .map(str::to_string)
        .collect();
    tokens.sort();
    tokens.dedup();
    tokens
}

fn assert_not_leaked(secrets: &[String], output: &Finished, what: &str) {
    for secret in secrets {
        assert!(
            !output.stdout.contains(secret.as_str()) && !output.stderr.contains(secret.as_str()),
            "{what}: {secret:?} appears in the output: {output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_appears_in_any_output() {
    let fake = start_fake(200).await;
    let secret = fake.config().secret.clone();
    let now = now_ms();
    generate(&fake, 19, 2000, now - DAY, now - 10 * SEC);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    let cfg = Cfg {
        lookback: "25h",
        token_ttl: Some("1m"),
        ..Cfg::default()
    };
    /// (what, log arguments, environment)
    type LogSetting<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let runs: [LogSetting; 3] = [
        ("--log-level debug", &["--log-level", "debug"], &[]),
        ("--log-level trace", &["--log-level", "trace"], &[]),
        ("RUST_LOG=trace", &[], &[("RUST_LOG", "trace")]),
    ];
    for (what, log_args, env) in runs {
        let exporter = Exporter::new(&fake, &cfg);
        // A retried token exchange, retried pages and a refresh after a 401.
        fake.fail_next_tokens(1, Fault::Drop);
        fake.fail_next(2, Fault::Drop);
        fake.expire_tokens_after_pages(2);
        let tokens_before = fake.token_requests();
        let mut args = vec!["--config", exporter.config_path.to_str().unwrap()];
        args.extend_from_slice(log_args);
        args.extend(["run", "--once"]);
        let run = run_bin(&args, env).await;
        run.expect_code(0);
        assert_exactly_once(&run.events(), &expected, what);
        assert!(
            run.stderr.contains("DEBUG"),
            "{what}: debug logs were expected on stderr: {run}"
        );
        assert!(
            fake.token_requests() >= tokens_before + 3,
            "{what}: expected a failed exchange, a first token and a refresh"
        );
        let mut secrets = vec![secret.clone()];
        secrets.extend(tokens_seen(&fake));
        assert_not_leaked(&secrets, &run, what);

        for command in [
            &["state", "show"][..],
            &["state", "show", "--json"],
            &["validate"],
            &["validate", "--online"],
            &["--log-level", "trace", "validate", "--online"],
        ] {
            let output = exporter.run(command).await;
            output.expect_code(0);
            assert_not_leaked(&secrets, &output, &command.join(" "));
        }
    }

    // A wrong secret is a secret too, and is refused without being quoted.
    let wrong = "_wrong_secret_9876543210fedcba98".to_string();
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            secret: Some(wrong.clone()),
            ..cfg.clone()
        },
    );
    let refused = exporter
        .run(&["--log-level", "trace", "validate", "--online"])
        .await;
    assert_ne!(refused.code, Some(0), "a wrong secret validated: {refused}");
    assert_not_leaked(
        &[wrong.clone(), secret.clone()],
        &refused,
        "validate --online (wrong secret)",
    );
    let run = exporter
        .run(&["--log-level", "trace", "run", "--once"])
        .await;
    // 3: a refusal restarting cannot heal (the unit's RestartPreventExitStatus=).
    run.expect_code(3);
    assert!(run.stderr.contains("401"), "the refusal is reported: {run}");
    assert_not_leaked(
        &[wrong.clone(), secret.clone()],
        &run,
        "run --once (wrong secret)",
    );
    // Bad credentials are fatal for the daemon too: it stops instead of retrying forever.
    let daemon = exporter
        .spawn(&["run"])
        .wait(std::time::Duration::from_secs(15))
        .await;
    daemon.expect_code(3);
    assert_not_leaked(&[wrong, secret], &daemon, "run (wrong secret)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_file_in_the_credentials_directory_provides_key_and_sub_account() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 27, 2000, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            org_access: false,
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let credentials = exporter.dir.path().join("credentials");
    std::fs::create_dir(&credentials).expect("credentials directory");
    let key_file = serde_json::json!({
        "keyId": fake.config().key_id,
        "secret": fake.config().secret,
        "subAccount": "acme-sub2",
    });
    std::fs::write(credentials.join("api-key.json"), key_file.to_string()).expect("key file");
    let text = exporter
        .config_text()
        .lines()
        .filter(|line| !line.starts_with("key_id") && !line.starts_with("secret_file"))
        .map(|line| {
            if line == "[lacework]" {
                "[lacework]\napi_key_file = \"$CREDENTIALS_DIRECTORY/api-key.json\"".to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    exporter.write_config(&text);
    let config = exporter.config_path.display().to_string();
    let env = [(
        "CREDENTIALS_DIRECTORY",
        credentials.to_str().expect("utf-8 path"),
    )];

    let unset = run_bin(&["--config", &config, "validate"], &[]).await;
    unset.expect_code(2);
    assert!(
        unset.stderr.contains("CREDENTIALS_DIRECTORY"),
        "an unset $CREDENTIALS_DIRECTORY is explained: {unset}"
    );
    run_bin(&["--config", &config, "validate", "--online"], &env)
        .await
        .expect_code(0);
    let run = run_bin(&["--config", &config, "run", "--once"], &env).await;
    run.expect_code(0);
    assert_exactly_once(
        &run.events(),
        &fake.expected_lifecycle(now - 2 * DAY, now, Some("ACME-SUB2")),
        "run --once with the key file's subAccount",
    );
    for request in fake.requests().iter().filter(|r| is_audit_logs(r)) {
        assert_eq!(
            request.account_name.as_deref(),
            Some("acme-sub2"),
            "{request:?}"
        );
    }
    assert_credentials_go_where_they_belong(&fake);
    let state = run_bin(&["--config", &config, "state", "show", "--json"], &env).await;
    state.expect_code(0);
    assert_not_leaked(
        &[fake.config().secret.clone()],
        &state,
        "state show with a key file",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_secret_works_is_warned_about_and_never_printed() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 32, 500, now - DAY, now - 10 * SEC);
    let secret = fake.config().secret.clone();
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            ..Cfg::default()
        },
    );
    let text = exporter.config_text().replace(
        &format!("secret_file = \"{}\"", exporter.secret_path.display()),
        &format!("secret = \"{secret}\""),
    );
    assert!(text.contains("secret = "), "{text}");
    exporter.write_config(&text);
    std::fs::remove_file(&exporter.secret_path).expect("no secret file");
    for command in [
        &["--log-level", "trace", "validate", "--online"][..],
        &["--log-level", "trace", "run", "--once"],
        &["state", "show"],
    ] {
        let output = exporter.run(command).await;
        output.expect_code(0);
        assert_not_leaked(std::slice::from_ref(&secret), &output, &command.join(" "));
        if command[0] == "--log-level" {
            assert!(
                output.stderr.contains("lacework.secret"),
                "{command:?}: an inline secret is warned about: {output}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_files_and_url_file_reach_the_endpoint_and_never_the_logs() {
    use crate::support::receiver::{Receiver, Reply};
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 23, 600, now - 20 * HOUR, now - 10 * SEC);
    let expected = fake.expected_lifecycle(now - 2 * DAY, now, None);
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A Sumo Logic-style URL whose path is the credential, and a Google SecOps-style key.
    let url_secret = "ZaVnC4dhaV3_fake_collector_token_0123456789";
    let header_secret = "secops-feed-key-5f1e0c9a7b3d";
    std::fs::write(
        dir.path().join("url"),
        receiver.url(&format!("/receiver/v1/http/{url_secret}")) + "\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("feed-key"), format!("{header_secret}\n")).unwrap();
    let sinks = format!(
        "[[sinks]]\ntype = \"webhook\"\nname = \"secops\"\nurl_file = \"{}\"\nformat = \"ocsf\"\nretry_initial = \"100ms\"\nretry_max = \"200ms\"\nheader_files = {{ \"X-Webhook-Access-Key\" = \"{}\" }}\nheaders = {{ \"X-Team\" = \"soc\" }}\n",
        dir.path().join("url").display(),
        dir.path().join("feed-key").display()
    );
    let cfg = Cfg {
        lookback: "1d",
        sinks: Box::leak(sinks.into_boxed_str()),
        ..Cfg::default()
    };
    let exporter = Exporter::new(&fake, &cfg);
    // One refusal on the way, so that the error path (which names the endpoint) is logged.
    receiver.script([Reply::status(503)]);
    let run = exporter
        .run(&["--log-level", "trace", "run", "--once"])
        .await;
    run.expect_code(0);
    assert!(run.stderr.contains("503"), "the refusal was logged: {run}");
    let requests = receiver.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    for request in &requests {
        assert_eq!(
            request.header("x-webhook-access-key").as_deref(),
            Some(header_secret)
        );
        assert_eq!(request.header("x-team").as_deref(), Some("soc"));
    }
    let uids: Vec<String> = receiver
        .accepted_events()
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        uids.len(),
        expected.len(),
        "OCSF events, one per lifecycle record"
    );
    let secrets = [url_secret.to_string(), header_secret.to_string()];
    assert_not_leaked(&secrets, &run, "run --once (url_file, header_files)");
    for command in [
        &["validate"][..],
        &["--log-level", "trace", "validate", "--online"],
    ] {
        let output = exporter.run(command).await;
        output.expect_code(0);
        assert_not_leaked(&secrets, &output, &command.join(" "));
    }
}
