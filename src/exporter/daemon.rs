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
use crate::exporter::loaded::LoadedAccount;
use crate::exporter::{Error, Loaded, Parts, open_store_exclusive};
use crate::lacework::{LaceworkClient, Priority};
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
                stuck_after: loaded.config.telemetry.stuck_after,
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
    /// caught up: one walk per account, concurrently, over the same sinks.
    async fn round(
        &self,
        loaded: &Loaded,
        shutdown: CancellationToken,
        notifier: &Notifier,
        progress: &Progress,
    ) -> Result<(), Error> {
        let store = open_store_exclusive(&loaded.config).await?;
        let parts = Parts::build(loaded, &[]).await?;
        parts.check_sinks_at_start().await?;
        if !wait_for_api(&parts.client, self.once, &shutdown, notifier).await? {
            return Ok(());
        }
        let accounts = accounts_to_poll(loaded, &parts).await;
        let mut walks = Vec::with_capacity(accounts.len());
        for account in &accounts {
            let poller = parts.account_poller(
                account,
                &loaded.config.events,
                store.clone(),
                progress.clone(),
            )?;
            walks.push((account.name.clone(), account.live_stream(), poller));
        }
        let streams: Vec<String> = walks.iter().map(|(_, stream, _)| stream.clone()).collect();
        tracing::info!(
            streams = ?streams,
            api = %loaded.credentials.api_origin,
            sinks = ?parts.sinks.names(),
            state = %loaded.config.state.path.display(),
            "Exporter starting."
        );
        let resumed = walks[0].2.resume_sinks(&streams).await;
        if let Err(error) = resumed {
            let _ = parts.sinks.close().await;
            return Err(Error::Export(error));
        }
        notifier.ready();
        notifier.status(&format!("Exporting {}", streams.join(", ")));
        let result = if walks.len() == 1 {
            let (_, stream, poller) = &walks[0];
            poller.run_live(stream, self.once, &shutdown).await
        } else {
            let results = futures::future::join_all(walks.iter().map(|(name, stream, poller)| {
                walk_account(name, stream, poller, self.once, &shutdown)
            }))
            .await;
            results
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
                .map(drop)
        };
        let closed = parts.sinks.close().await;
        result.map_err(Error::Export)?;
        closed.map_err(Error::Close)?;
        tracing::info!(streams = ?streams, "Exporter stopped.");
        Ok(())
    }
}

/// The accounts of a round: those configured, or with `discover_sub_accounts` every account
/// the key's profile lists (each through `Account-Name`) in place of the top-level entry,
/// beside the `[[lacework.accounts]]` entries.
async fn accounts_to_poll(loaded: &Loaded, parts: &Parts) -> Vec<LoadedAccount> {
    let mut accounts = loaded.accounts.clone();
    if !loaded.config.lacework.discover_sub_accounts {
        return accounts;
    }
    let discovered = match parts.client.profile_accounts(Priority::Live).await {
        Ok(names) => names,
        Err(error) => {
            tracing::warn!(error = %error, "Cannot list the key's accounts (UserProfile); polling the configured ones.");
            return accounts;
        }
    };
    let base = accounts[0].clone();
    let covered = |accounts: &[LoadedAccount], name: &str| {
        accounts.iter().any(|a| {
            a.credentials
                .sub_account
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(name))
        })
    };
    let mut found = Vec::new();
    for name in discovered {
        if covered(&accounts[1..], &name) || covered(&found, &name) {
            continue;
        }
        let mut account = base.clone();
        account.name = name.to_ascii_lowercase();
        account.credentials.sub_account = Some(name.to_ascii_lowercase());
        account.lacework.sub_account = Some(name.to_ascii_lowercase());
        account.lacework.org_access = false;
        found.push(account);
    }
    if !found.is_empty() {
        tracing::info!(accounts = ?found.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), "Discovered the key's accounts.");
        accounts.splice(0..1, found);
    }
    accounts
}

/// One account's walk among several: a failure (a tenant down, its key refused) is logged and
/// the walk started again after a pause, without stopping the other accounts. With `once`,
/// the failure is returned (after the others finish).
async fn walk_account(
    name: &str,
    stream: &str,
    poller: &crate::poller::Poller,
    once: bool,
    shutdown: &CancellationToken,
) -> Result<(), crate::poller::Error> {
    loop {
        match poller.run_live(stream, once, shutdown).await {
            Ok(()) => return Ok(()),
            Err(error) if once => {
                tracing::error!(account = name, stream, error = %error, "Account failed; the other accounts go on.");
                return Err(error);
            }
            Err(error) => {
                tracing::error!(account = name, stream, error = %error, "Account failed; the other accounts go on, this one starts again in a minute.");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = crate::heartbeat::sleep(ACCOUNT_RETRY) => {}
                }
            }
        }
    }
}

/// The pause before a failed account's walk starts again.
const ACCOUNT_RETRY: Duration = Duration::from_secs(60);

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
                    () = crate::heartbeat::sleep(wait) => {}
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

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    use super::*;
    use crate::config::Config;

    /// A configuration against `base_url` with a stdout sink and a state file in `dir`.
    fn loaded(dir: &std::path::Path, base_url: &str, secret: &str) -> Loaded {
        let secret_file = dir.join("secret");
        std::fs::write(&secret_file, secret).unwrap();
        let text = format!(
            r#"
[lacework]
base_url = "{base_url}"
key_id = "{key_id}"
secret_file = "{secret_file}"

[state]
path = "{state}"

[[sinks]]
type = "stdout"
"#,
            key_id = fake_lacework::FakeConfig::default().key_id,
            secret_file = secret_file.display(),
            state = dir.join("state.db").display(),
        );
        Loaded::resolve(Config::parse(&text).unwrap(), None).unwrap()
    }

    /// A notifier whose messages arrive on the returned socket.
    fn notifier(dir: &std::path::Path) -> (Arc<Notifier>, UnixDatagram) {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        let notifier = Notifier::from_env(Some(path.into_os_string()), None, None);
        (Arc::new(notifier), socket)
    }

    fn messages(socket: &UnixDatagram) -> Vec<String> {
        let mut buffer = [0u8; 512];
        let mut messages = Vec::new();
        while let Ok(n) = socket.recv(&mut buffer) {
            messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
        messages
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_while_waiting_for_the_api_stops_cleanly_without_ready() {
        let dir = tempfile::tempdir().unwrap();
        // A loopback port nobody listens on: the token exchange fails with a connect error,
        // which a daemon waits out.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let (notifier, socket) = notifier(dir.path());
        let shutdown = CancellationToken::new();
        let (_reload_tx, reloads) = mpsc::channel(1);
        let daemon = tokio::spawn(Daemon { once: false }.run(
            loaded(dir.path(), &base_url, "secret"),
            shutdown.clone(),
            reloads,
            Arc::clone(&notifier),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(5), daemon)
            .await
            .expect("the daemon stops within the timeout")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        let messages = messages(&socket);
        assert!(!messages.iter().any(|m| m == "READY=1"), "{messages:?}");
        assert_eq!(messages.last().map(String::as_str), Some("STOPPING=1"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_credentials_stop_the_daemon_and_are_not_a_configuration_error() {
        let fake = fake_lacework::FakeLacework::start(fake_lacework::FakeConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (notifier, socket) = notifier(dir.path());
        let (_reload_tx, reloads) = mpsc::channel(1);
        let result = Daemon { once: false }
            .run(
                loaded(dir.path(), &fake.base_url(), "_not_the_secret"),
                CancellationToken::new(),
                reloads,
                notifier,
            )
            .await;
        let error = result.expect_err("a refused key stops the daemon");
        assert!(matches!(error, Error::Token(_)), "{error:?}");
        assert!(!error.is_config(), "exit code 1, not 2");
        assert_eq!(
            messages(&socket).last().map(String::as_str),
            Some("STOPPING=1")
        );
        fake.shutdown();
    }
}
