//! `run`, and the wiring every walking command shares: load config, build client, store,
//! normalizer and sinks into a `Poller`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::checkpoint::CheckpointStore;
use crate::cli::{Environment, Failure, RunArgs, shutdown_on_signals};
use crate::config::Config;
use crate::config::secrets::Credentials;
use crate::event::Normalizer;
use crate::lacework::{ClientOptions, LaceworkClient};
use crate::poller::Poller;
use crate::service::{HealthPolicy, Notifier, Progress, serve_telemetry};
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
    match sinks.healthcheck().await {
        Ok(()) => {}
        // A destination that is down at start is an outage like any other: deliveries wait for
        // it. Refused credentials or a missing topic will not heal by waiting.
        Err(error) if error.is_retryable() => tracing::warn!(
            error = %error,
            "A sink is unreachable at startup; deliveries will wait for it."
        ),
        Err(error) => {
            return Err(Failure::runtime(
                anyhow::Error::new(error).context("sink healthcheck failed"),
            ));
        }
    }
    Ok(Poller::new(
        client,
        normalizer,
        sinks,
        store,
        config.poll.clone(),
        config.state.effective_retention(&config.poll),
    ))
}

/// What the live walk reports to a service manager and the telemetry listener.
pub(crate) struct Lifecycle {
    pub notifier: Arc<Notifier>,
    pub progress: Progress,
}

impl Lifecycle {
    /// No service manager, no listener (the demo).
    pub(crate) fn detached() -> Lifecycle {
        Lifecycle {
            notifier: Arc::new(Notifier::disabled()),
            progress: Progress::default(),
        }
    }
}

/// `run`: follow the live stream until shutdown (or until caught up, with `--once`). SIGHUP
/// re-reads the configuration after the current window, keeping the checkpoint.
pub async fn run(path: &Path, environment: &Environment, args: &RunArgs) -> Result<(), Failure> {
    let mut loaded = load(path, environment)?;
    let shutdown = shutdown_on_signals();
    let lifecycle = Lifecycle {
        notifier: Arc::new(Notifier::from_env(
            environment.notify_socket.clone(),
            environment.watchdog_usec.clone(),
            environment.watchdog_pid.clone(),
        )),
        progress: Progress::default(),
    };
    if let Some(listen) = loaded.config.telemetry.listen {
        let policy = HealthPolicy {
            max_lag: loaded.config.telemetry.health_max_lag,
        };
        serve_telemetry(listen, lifecycle.progress.clone(), policy, shutdown.clone())
            .await
            .map_err(|error| {
                Failure::runtime(
                    anyhow::Error::new(error)
                        .context(format!("cannot listen on telemetry.listen = {listen}")),
                )
            })?;
    }
    spawn_watchdog(&lifecycle, shutdown.clone());
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")
        .map_err(Failure::runtime)?;
    loop {
        let round = shutdown.child_token();
        let finished = {
            let walk = run_loaded(&loaded, args.once, round.clone(), &lifecycle);
            tokio::pin!(walk);
            let outcome = tokio::select! {
                result = &mut walk => Some(result),
                _ = hangup.recv() => None,
            };
            if outcome.is_none() {
                lifecycle.notifier.reloading();
                tracing::info!("SIGHUP: re-reading the configuration after the current window.");
                round.cancel();
                walk.await?;
            }
            outcome
        };
        if let Some(result) = finished {
            lifecycle.notifier.stopping();
            return result;
        }
        match load(path, environment) {
            Ok(reloaded) => {
                if reloaded.config.telemetry.listen != loaded.config.telemetry.listen {
                    tracing::warn!(
                        "telemetry.listen changed; the listener keeps its address until a restart."
                    );
                }
                loaded = reloaded;
                tracing::info!("Configuration reloaded.");
            }
            Err(failure) => tracing::error!(
                "The new configuration is invalid; keeping the previous one: {:#}",
                failure.error
            ),
        }
        if shutdown.is_cancelled() {
            lifecycle.notifier.stopping();
            return Ok(());
        }
    }
}

/// Runs the live walk for an already loaded configuration (also used by `demo`). Sends
/// READY=1 once the state database, the sinks and the first access token are good.
pub(crate) async fn run_loaded(
    loaded: &Loaded,
    once: bool,
    shutdown: CancellationToken,
    lifecycle: &Lifecycle,
) -> Result<(), Failure> {
    let store = open_store(&loaded.config).await?;
    let stream = live_stream_key(
        &loaded.credentials.api_origin,
        loaded.credentials.sub_account.as_deref(),
        loaded.config.lacework.org_access,
    );
    let poller = build_poller(loaded, store, &[])
        .await?
        .with_progress(lifecycle.progress.clone());
    tracing::info!(
        stream,
        api = %loaded.credentials.api_origin,
        sinks = ?poller.sinks().names(),
        state = %loaded.config.state.path.display(),
        "Exporter starting."
    );
    if !wait_for_api(&poller, once, &shutdown, &lifecycle.notifier).await? {
        return Ok(());
    }
    lifecycle.notifier.ready();
    lifecycle.notifier.status(&format!("Exporting {stream}"));
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

/// Obtains the first token. A daemon keeps trying through transient failures (Lacework
/// down at boot); bad credentials stop it. Returns `false` when shutdown came first.
async fn wait_for_api(
    poller: &crate::poller::Poller,
    once: bool,
    shutdown: &CancellationToken,
    notifier: &Notifier,
) -> Result<bool, Failure> {
    let backoff = crate::backoff::Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(120),
    };
    let mut attempt = 0;
    loop {
        let checked = tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            checked = poller.check_api() => checked,
        };
        match checked {
            Ok(()) => return Ok(true),
            Err(error) if error.is_retryable() && !once => {
                let wait = backoff.delay(attempt);
                attempt += 1;
                notifier.status(&format!("Waiting for the Lacework API: {error}"));
                tracing::warn!(error = %error, wait_secs = wait.as_secs(), "Cannot obtain an access token yet; retrying.");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(false),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(error) => {
                return Err(Failure::runtime(
                    anyhow::Error::new(error).context("cannot obtain an access token"),
                ));
            }
        }
    }
}

/// Sends WATCHDOG=1 every half timeout while the poll loop makes progress, and stops when
/// it does not, so that systemd restarts a hung exporter.
fn spawn_watchdog(lifecycle: &Lifecycle, shutdown: CancellationToken) {
    let Some(timeout) = lifecycle.notifier.watchdog_timeout() else {
        return;
    };
    let notifier = Arc::clone(&lifecycle.notifier);
    let progress = lifecycle.progress.clone();
    tokio::spawn(async move {
        let mut stalled = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(timeout / 2) => {}
            }
            if progress.is_alive(timeout) {
                if stalled {
                    tracing::info!("The poll loop progresses again; watchdog keep-alives resume.");
                }
                stalled = false;
                notifier.watchdog();
            } else if !stalled {
                stalled = true;
                tracing::warn!(
                    timeout_secs = timeout.as_secs(),
                    "No progress within the watchdog timeout; withholding keep-alives so the service manager restarts the exporter."
                );
            }
        }
    });
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
