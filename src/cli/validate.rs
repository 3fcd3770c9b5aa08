//! `validate`: check the configuration (and with `--online`, the key and the sinks).

use std::path::Path;

use anyhow::Context;

use crate::cli::run::load;
use crate::cli::{Environment, Failure, ValidateArgs, report};
use crate::lacework::{ClientOptions, LaceworkClient};
use crate::sinks::SinkSet;

/// Runs `validate`.
pub async fn validate(
    path: &Path,
    environment: &Environment,
    args: &ValidateArgs,
) -> Result<(), Failure> {
    let loaded = load(path, environment)?;
    let config = &loaded.config;
    let credentials = &loaded.credentials;
    let duration = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let mut text = format!("configuration OK: {}\n", path.display());
    text.push_str(&format!(
        "  api:     {} (key {})\n",
        credentials.api_origin, credentials.key_id
    ));
    if let Some(sub_account) = &credentials.sub_account {
        text.push_str(&format!("  account: {sub_account} (Account-Name)\n"));
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
    let selected: Vec<_> = config.sinks.iter().collect();
    let sink_set = SinkSet::build(&selected, &loaded.sink_context)
        .await
        .context("invalid sink configuration")
        .map_err(Failure::usage)?;
    if args.online {
        let client =
            LaceworkClient::new(credentials, &ClientOptions::from_config(&config.lacework))
                .context("cannot build the HTTP client")
                .map_err(Failure::runtime)?;
        client
            .check_credentials()
            .await
            .context("the API key does not work")
            .map_err(Failure::runtime)?;
        text.push_str("\n  online:  token exchange OK");
        sink_set
            .healthcheck()
            .await
            .context("sink healthcheck failed")
            .map_err(Failure::runtime)?;
        text.push_str(", sinks reachable");
    }
    report(&text);
    Ok(())
}
