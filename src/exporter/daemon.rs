//! `Daemon`: the live walk as a service. READY once the state, the sinks and the first token
//! are good; keep-alives only while the loop progresses; a new configuration taken after the
//! current window; STOPPING at the end.
//!
//! Shutdown, reloads and the notifier are handed in (the shape of mini-redis's
//! `server::run(listener, shutdown)`): `cli` turns signals and the environment into them, and
//! tests drive the daemon in-process.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::exporter::{Error, Loaded, Parts, open_store};
use crate::lacework::LaceworkClient;
use crate::service::{HealthPolicy, Notifier, Progress, serve_telemetry};

/// The live walk as a long-running service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Daemon {
    /// Catch up to now, then return, instead of polling forever (`run --once`).
    pub once: bool,
}

impl Daemon {
    /// Follows the live stream of `loaded` until `shutdown` (or, with `once`, until caught
    /// up). Each configuration received on `reloads` (already validated) replaces the
    /// current one after the window in progress; the checkpoint keeps the position.
    pub(crate) async fn run(
        self,
        mut loaded: Loaded,
        shutdown: CancellationToken,
        mut reloads: mpsc::Receiver<Loaded>,
        notifier: Arc<Notifier>,
    ) -> Result<(), Error> {
        let progress = Progress::default();
        if let Some(address) = loaded.config.telemetry.listen {
            let policy = HealthPolicy {
                max_lag: loaded.config.telemetry.health_max_lag,
            };
            serve_telemetry(address, progress.clone(), policy, shutdown.clone())
                .await
                .map_err(|source| Error::Listen { address, source })?;
        }
        spawn_watchdog(&notifier, &progress, shutdown.clone());
        loop {
            let round = shutdown.child_token();
            let reloaded = {
                let walk = self.round(&loaded, round.clone(), &notifier, &progress);
                tokio::pin!(walk);
                let reloaded = tokio::select! {
                    result = &mut walk => {
                        notifier.stopping();
                        return result;
                    }
                    Some(reloaded) = reloads.recv() => reloaded,
                };
                notifier.reloading();
                tracing::info!("New configuration read; switching to it after the current window.");
                round.cancel();
                walk.await?;
                reloaded
            };
            if reloaded.config.telemetry.listen != loaded.config.telemetry.listen {
                tracing::warn!(
                    "telemetry.listen changed; the listener keeps its address until a restart."
                );
            }
            loaded = reloaded;
            tracing::info!("Configuration reloaded.");
            if shutdown.is_cancelled() {
                notifier.stopping();
                return Ok(());
            }
        }
    }

    /// One round of the live walk with one configuration, until `shutdown` or (with `once`)
    /// caught up.
    async fn round(
        &self,
        loaded: &Loaded,
        shutdown: CancellationToken,
        notifier: &Notifier,
        progress: &Progress,
    ) -> Result<(), Error> {
        let store = open_store(&loaded.config).await?;
        let stream = loaded.live_stream();
        let parts = Parts::build(loaded, &[]).await?;
        parts.check_sinks_at_start().await?;
        tracing::info!(
            stream,
            api = %loaded.credentials.api_origin,
            sinks = ?parts.sinks.names(),
            state = %loaded.config.state.path.display(),
            "Exporter starting."
        );
        if !wait_for_api(&parts.client, self.once, &shutdown, notifier).await? {
            return Ok(());
        }
        notifier.ready();
        notifier.status(&format!("Exporting {stream}"));
        let poller = parts.poller(loaded, store, progress.clone());
        let result = poller.run_live(&stream, self.once, &shutdown).await;
        let closed = parts.sinks.close().await;
        result.map_err(Error::Export)?;
        closed.map_err(Error::Close)?;
        tracing::info!(stream, "Exporter stopped.");
        Ok(())
    }
}

/// Obtains the first token. A daemon keeps trying through transient failures (Lacework
/// down at boot); bad credentials stop it. Returns `false` when shutdown came first.
async fn wait_for_api(
    client: &LaceworkClient,
    once: bool,
    shutdown: &CancellationToken,
    notifier: &Notifier,
) -> Result<bool, Error> {
    let backoff = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(120),
    };
    let mut attempt = 0;
    loop {
        let checked = tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            checked = client.check_credentials() => checked,
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
            Err(error) => return Err(Error::Token(error)),
        }
    }
}

/// Sends WATCHDOG=1 every half timeout while the poll loop makes progress, and stops when
/// it does not, so that systemd restarts a hung exporter.
fn spawn_watchdog(notifier: &Arc<Notifier>, progress: &Progress, shutdown: CancellationToken) {
    let Some(timeout) = notifier.watchdog_timeout() else {
        return;
    };
    let notifier = Arc::clone(notifier);
    let progress = progress.clone();
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
