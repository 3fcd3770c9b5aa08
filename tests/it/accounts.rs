//! Several accounts in one process: an org key with two sub-accounts (`Account-Name`) and a
//! separate tenant, each with its own cursor; one failing account does not stop the others.

use std::collections::BTreeMap;

use fake_lacework::{FakeConfig, FakeLacework, FakeRecord};
use serde_json::Value;

use crate::support::*;

/// Lifecycle events by account.
fn by_account(events: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts
            .entry(event["account"].as_str().unwrap_or("(none)").to_string())
            .or_insert(0) += 1;
    }
    counts
}

/// The separate tenant: its own fake, primary account OTHER, a few user creations.
async fn other_tenant(now: i64) -> (FakeLacework, usize) {
    let fake = FakeLacework::start(FakeConfig {
        primary_account: "OTHER".into(),
        page_size: 500,
        ..FakeConfig::default()
    })
    .await
    .expect("the second fake starts");
    for n in 0..25 {
        fake.insert(FakeRecord::custom(
            "OTHER",
            at(now - HOUR + n * 60_000),
            "User Created",
            "User",
            &format!("User admin@other.com created user u{n}@other.com in OTHER account"),
            "admin@other.com",
        ));
    }
    (fake, 25)
}

/// An exporter of `fake`'s ACME-SUB1 and ACME-SUB2 (one org key, `Account-Name`) and of the
/// separate `tenant`, whose secret is read from `tenant_secret`.
fn three_accounts(
    fake: &FakeLacework,
    tenant: &FakeLacework,
    tenant_secret: &std::path::Path,
) -> Exporter {
    let extra = accounts_config(fake, tenant, &tenant_secret.display().to_string());
    Exporter::new(
        fake,
        &Cfg {
            org_access: false,
            lookback: "25h",
            extra_lacework: Box::leak(extra.into_boxed_str()),
            ..Cfg::default()
        },
    )
}

fn accounts_config(fake: &FakeLacework, tenant: &FakeLacework, tenant_secret: &str) -> String {
    format!(
        "\n[[lacework.accounts]]\nsub_account = \"ACME-SUB1\"\n\n[[lacework.accounts]]\nsub_account = \"ACME-SUB2\"\n\n[[lacework.accounts]]\nname = \"other\"\nbase_url = \"{}\"\nkey_id = \"{}\"\nsecret_file = \"{tenant_secret}\"\n",
        tenant.base_url(),
        fake.config().key_id
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accounts_arrive_with_their_account_and_their_own_cursors() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 51, 3_000, now - DAY, now - HOUR);
    let (tenant, n_tenant) = other_tenant(now).await;
    let dir = tempfile::tempdir().unwrap();
    let tenant_secret = dir.path().join("tenant-secret");
    std::fs::write(&tenant_secret, &tenant.config().secret).unwrap();
    let exporter = three_accounts(&fake, &tenant, &tenant_secret);
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    let events = run.events();
    let counts = by_account(&events);
    for account in ["ACME-SUB1", "ACME-SUB2"] {
        let want = fake
            .expected_lifecycle(now - 2 * DAY, now, Some(account))
            .len();
        assert!(want > 0);
        assert_eq!(counts.get(account), Some(&want), "{account}: {counts:?}");
    }
    assert_eq!(counts.get("OTHER"), Some(&n_tenant), "{counts:?}");
    assert_eq!(
        counts.get("ACME"),
        None,
        "only the accounts configured: {counts:?}"
    );
    assert_exactly_once_by_id(&events);

    // Three live streams, each with its own cursor.
    let state = exporter.state().await;
    let cursors: Vec<&Value> = state["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stream"].as_str().is_some_and(|k| k.starts_with("live:")))
        .collect();
    assert_eq!(cursors.len(), 3, "{state}");
    assert!(
        cursors.iter().all(|s| !s["checkpoint"].is_null()),
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_account_does_not_stop_the_others() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 52, 1_000, now - DAY, now - HOUR);
    let (tenant, _) = other_tenant(now).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-secret");
    std::fs::write(&wrong, "_not_the_tenant_secret_").unwrap();
    let exporter = three_accounts(&fake, &tenant, &wrong);
    let run = exporter.run(&["run", "--once"]).await;
    assert_ne!(run.code, Some(0), "the refused account is reported: {run}");
    assert!(
        run.stderr
            .contains("Account failed; the other accounts go on"),
        "{}",
        tail(&run.stderr)
    );
    let counts = by_account(&run.events());
    for account in ["ACME-SUB1", "ACME-SUB2"] {
        let want = fake
            .expected_lifecycle(now - 2 * DAY, now, Some(account))
            .len();
        assert_eq!(counts.get(account), Some(&want), "{account}: {counts:?}");
    }
    assert_eq!(counts.get("OTHER"), None);
}

/// No id twice.
fn assert_exactly_once_by_id(events: &[Value]) {
    let ids = id_set(events);
    assert_eq!(ids.len(), events.len(), "an event twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_sub_accounts_polls_every_account_the_key_reaches() {
    let fake = start_fake(500).await;
    let now = now_ms();
    generate(&fake, 53, 1_500, now - DAY, now - HOUR);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            org_access: false,
            lookback: "25h",
            extra_lacework: "discover_sub_accounts = true\n",
            ..Cfg::default()
        },
    );
    let run = exporter.run(&["run", "--once"]).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains("Discovered the key's accounts"),
        "{}",
        tail(&run.stderr)
    );
    let counts = by_account(&run.events());
    let accounts: Vec<String> = fake.inventory().accounts().to_vec();
    assert!(accounts.len() >= 3, "{accounts:?}");
    for account in &accounts {
        let want = fake
            .expected_lifecycle(now - 2 * DAY, now, Some(account))
            .len();
        assert_eq!(
            counts.get(account.as_str()).copied().unwrap_or(0),
            want,
            "{account}: {counts:?}"
        );
    }
    assert_exactly_once_by_id(&run.events());
}
