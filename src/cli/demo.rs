//! `demo`: the real exporter against the embedded fake Lacework API, events on stdout.
//!
//! The only module that names the fake; it is compiled with the `demo` feature (on by default).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc;

use crate::cli::{Failure, shutdown_on_signals};
use crate::config::Config;
use crate::exporter::{Daemon, Loaded};
use crate::service::Notifier;

/// `demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Records of generated history over the last 24 hours.
    #[arg(long, default_value_t = 2_000)]
    pub records: usize,
    /// Seed of the generator: the same seed gives the same history.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How often a new record arrives after the history.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub trickle: Duration,
    /// Catch up on the history, then exit instead of following new records.
    #[arg(long)]
    pub once: bool,
    /// Also emit the non-lifecycle records, with type AUDIT.
    #[arg(long)]
    pub all: bool,
    /// Keep the state database at this path instead of a temporary directory.
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// Runs `demo`.
pub async fn demo(args: &DemoArgs) -> Result<(), Failure> {
    let fake_config = fake_lacework::FakeConfig::default();
    let fake = fake_lacework::FakeLacework::start(fake_config.clone())
        .await
        .context("cannot start the embedded fake Lacework API")
        .map_err(Failure::runtime)?;
    // Worded both ways: actor-first as Lacework's own sample, and object-first.
    let spec = fake_lacework::GenerateSpec {
        seed: args.seed,
        count: args.records,
        wording: fake_lacework::Wording::Mixed,
        ..fake_lacework::GenerateSpec::default()
    };
    let generated = fake.generate(&spec);
    let trickle = (!args.once).then(|| {
        fake.spawn_trickle_worded(
            args.trickle,
            args.seed.wrapping_add(1),
            fake_lacework::Wording::Mixed,
        )
    });

    let temp = tempfile::tempdir()
        .context("cannot create a temporary directory")
        .map_err(Failure::runtime)?;
    let secret_file = temp.path().join("secret");
    std::fs::write(&secret_file, &fake_config.secret)
        .context("cannot write the demo secret")
        .map_err(Failure::runtime)?;
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| temp.path().join("state.db"));
    let text = format!(
        r#"
[lacework]
base_url = "{base_url}"
key_id = "{key_id}"
secret_file = "{secret_file}"
org_access = true

[poll]
interval = "{interval}"
window = "1d"
settle = "3s"
lookback = "25h"
overlap = "1m"

[state]
path = "{state_path}"

[events]
include = "{include}"

[[sinks]]
type = "stdout"
"#,
        base_url = fake.base_url(),
        key_id = fake_config.key_id,
        secret_file = secret_file.display(),
        interval = humantime::format_duration(args.trickle.max(Duration::from_secs(1))),
        state_path = state_path.display(),
        include = if args.all { "all" } else { "lifecycle" },
    );
    let config = Config::parse(&text)
        .context("demo configuration")
        .map_err(Failure::runtime)?;
    let loaded = Loaded::resolve(config, None)
        .context("demo credentials")
        .map_err(Failure::runtime)?;
    tracing::info!(
        api = %fake.base_url(),
        records = generated,
        "Demo: embedded fake Lacework API is serving a day of generated audit history; events follow on stdout (Ctrl-C stops)."
    );
    // No service manager and no reloads: the sender is dropped at once.
    let (_, no_reloads) = mpsc::channel(1);
    let result = Daemon { once: args.once }
        .run(
            loaded,
            shutdown_on_signals(),
            no_reloads,
            Arc::new(Notifier::disabled()),
        )
        .await;
    if let Some(trickle) = trickle {
        trickle.abort();
    }
    fake.shutdown();
    Ok(result?)
}
