//! `validate`: check the configuration (and with `--online`, the key and the sinks).

use std::path::Path;

use crate::cli::{Environment, Failure, ValidateArgs, report};
use crate::exporter::{Loaded, Parts};

/// Runs `validate`.
pub async fn validate(
    path: &Path,
    environment: &Environment,
    args: &ValidateArgs,
) -> Result<(), Failure> {
    let loaded = Loaded::load(
        path,
        environment.credentials_directory.as_deref(),
        &crate::cli::env_var,
    )?;
    let config = &loaded.config;
    let credentials = &loaded.credentials;
    let duration = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let mut text = format!("configuration OK: {}\n", path.display());
    text.push_str(&format!(
        "  api:     {} (key {})\n",
        credentials.api_origin, credentials.key_id
    ));
    if let Some(sub_account) = &credentials.sub_account
        && loaded.accounts.len() == 1
    {
        text.push_str(&format!("  account: {sub_account} (Account-Name)\n"));
    }
    if loaded.accounts.len() > 1 {
        for account in &loaded.accounts {
            text.push_str(&format!(
                "  account: {} ({}, key {}{})\n",
                account.name,
                account.credentials.api_origin,
                account.credentials.key_id,
                account
                    .credentials
                    .sub_account
                    .as_deref()
                    .map(|s| format!(", Account-Name {s}"))
                    .unwrap_or_default()
            ));
        }
    }
    if config.lacework.discover_sub_accounts {
        text.push_str("  accounts: every account the key reaches (discover_sub_accounts)\n");
    }
    if config.lacework.org_access {
        text.push_str("  scope:   organization (Org-Access: true)\n");
    }
    text.push_str(&format!(
        "  poll:    window {}, interval {}, settle {}, overlap {}, first run from {} ago\n",
        duration(config.poll.window),
        duration(config.poll.interval),
        duration(config.poll.settle),
        duration(config.poll.overlap),
        duration(config.poll.lookback)
    ));
    text.push_str(&format!("  state:   {}\n", config.state.path.display()));
    let sinks: Vec<&str> = config.sinks.iter().map(|s| s.name()).collect();
    text.push_str(&format!("  sinks:   {}", sinks.join(", ")));
    // Building reads every sink's credential files and certificates; it connects nowhere.
    let parts = Parts::build(&loaded, &[]).await?;
    if args.online {
        parts.check_online().await?;
        text.push_str("\n  online:  token exchange OK, sinks reachable");
    }
    report(&text);
    Ok(())
}
