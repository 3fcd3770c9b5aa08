//! `run`, and the wiring every walking command shares: load config, build client, store,
//! normalizer and sinks into a `Poller`.

use std::path::Path;

use anyhow::Context;
use url::Url;

use crate::checkpoint::CheckpointStore;
use crate::cli::{Environment, Failure, RunArgs, shutdown_on_signals};
use crate::config::Config;
use crate::config::secrets::Credentials;
use crate::event::Normalizer;
use crate::lacework::{ClientOptions, LaceworkClient};
use crate::poller::Poller;
use crate::sinks::{BuildContext, SinkSet};

/// A validated configuration with its secrets read.
pub(crate) struct Loaded {
    pub config: Config,
    pub credentials: Credentials,
    pub sink_context: BuildContext,
}

/// Reads and validates the configuration and the secret; logs its warnings.
pub(crate) fn load(path: &Path, environment: &Environment) -> Result<Loaded, Failure> {
    let config = load_config(path)?;
    let credentials = Credentials::resolve(
        &config.lacework,
        environment.credentials_directory.as_deref(),
    )
    .map_err(|error| {
        Failure::usage(
            anyhow::Error::new(error).context(format!("invalid configuration {}", path.display())),
        )
    })?;
    let sink_context = BuildContext {
        credentials_directory: environment.credentials_directory.clone(),
    };
    Ok(Loaded {
        config,
        credentials,
        sink_context,
    })
}

/// Reads and validates the configuration without reading secrets.
pub(crate) fn load_config(path: &Path) -> Result<Config, Failure> {
    let config = Config::load(path).map_err(|error| {
        Failure::usage(anyhow::Error::new(error).context("invalid configuration"))
    })?;
    for warning in config.warnings() {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    Ok(config)
}

/// The checkpoint stream of the live walk for this API origin and scope, so that one state
/// file never mixes the cursors of two accounts.
pub(crate) fn live_stream_key(origin: &Url, sub_account: Option<&str>, org_access: bool) -> String {
    let mut key = format!("live:{}", origin.host_str().unwrap_or("unknown"));
    if let Some(port) = origin.port() {
        key.push_str(&format!(":{port}"));
    }
    if let Some(sub_account) = sub_account {
        key.push('/');
        key.push_str(&sub_account.to_ascii_lowercase());
    }
    if org_access {
        key.push_str("+org");
    }
    key
}

/// Opens the state database named by the configuration.
pub(crate) async fn open_store(config: &Config) -> Result<CheckpointStore, Failure> {
    CheckpointStore::open(&config.state.path)
        .await
        .map_err(|error| {
            Failure::runtime(anyhow::Error::new(error).context("cannot open the state database"))
        })
}

/// Builds a poller delivering to the named sinks (all when `sink_names` is empty).
pub(crate) async fn build_poller(
    loaded: &Loaded,
    store: CheckpointStore,
    sink_names: &[String],
) -> Result<Poller, Failure> {
    let config = &loaded.config;
    let selected: Vec<_> = if sink_names.is_empty() {
        config.sinks.iter().collect()
    } else {
        let mut selected = Vec::new();
        for name in sink_names {
            let sink = config
                .sinks
                .iter()
                .find(|s| s.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = config.sinks.iter().map(|s| s.name()).collect();
                    Failure::usage(anyhow::anyhow!(
                        "--sink {name}: no sink has that name (configured: {})",
                        known.join(", ")
                    ))
                })?;
            selected.push(sink);
        }
        selected
    };
    let client = LaceworkClient::new(
        &loaded.credentials,
        &ClientOptions::from_config(&config.lacework),
    )
    .map_err(|error| {
        Failure::runtime(anyhow::Error::new(error).context("cannot build the HTTP client"))
    })?;
    let default_account = loaded
        .credentials
        .sub_account
        .clone()
        .or_else(|| config.lacework.account.clone());
    let normalizer = Normalizer::new(&config.events, default_account).map_err(|error| {
        Failure::usage(anyhow::Error::new(error).context("invalid events.rules"))
    })?;
    let sinks = SinkSet::build(&selected, &loaded.sink_context)
        .await
        .map_err(|error| {
            // Building reads credential files and certificates but connects nowhere, so a failure
            // here is a configuration problem.
            Failure::usage(anyhow::Error::new(error).context("invalid sink configuration"))
        })?;
    sinks.healthcheck().await.map_err(|error| {
        Failure::runtime(anyhow::Error::new(error).context("sink healthcheck failed"))
    })?;
    Ok(Poller::new(
        client,
        normalizer,
        sinks,
        store,
        config.poll.clone(),
        config.state.retention,
    ))
}

/// `run`: follow the live stream until shutdown (or until caught up, with `--once`).
pub async fn run(path: &Path, environment: &Environment, args: &RunArgs) -> Result<(), Failure> {
    let loaded = load(path, environment)?;
    let shutdown = shutdown_on_signals();
    run_loaded(&loaded, args.once, shutdown).await
}

/// Runs the live walk for an already loaded configuration (also used by `demo`).
pub(crate) async fn run_loaded(
    loaded: &Loaded,
    once: bool,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), Failure> {
    let store = open_store(&loaded.config).await?;
    let stream = live_stream_key(
        &loaded.credentials.api_origin,
        loaded.credentials.sub_account.as_deref(),
        loaded.config.lacework.org_access,
    );
    let poller = build_poller(loaded, store, &[]).await?;
    tracing::info!(
        stream,
        api = %loaded.credentials.api_origin,
        sinks = ?poller.sinks().names(),
        state = %loaded.config.state.path.display(),
        "Exporter starting."
    );
    let result = poller.run_live(&stream, once, &shutdown).await;
    let closed = poller.sinks().close().await;
    result
        .map_err(|error| Failure::runtime(anyhow::Error::new(error).context("export stopped")))?;
    closed
        .context("closing the sinks")
        .map_err(Failure::runtime)?;
    tracing::info!(stream, "Exporter stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_separate_accounts_and_scopes() {
        let origin = Url::parse("https://acme.lacework.net").unwrap();
        assert_eq!(
            live_stream_key(&origin, None, false),
            "live:acme.lacework.net"
        );
        assert_eq!(
            live_stream_key(&origin, Some("ACME-Sub1"), false),
            "live:acme.lacework.net/acme-sub1"
        );
        assert_eq!(
            live_stream_key(&origin, None, true),
            "live:acme.lacework.net+org"
        );
        let local = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(live_stream_key(&local, None, false), "live:127.0.0.1:8080");
    }
}
