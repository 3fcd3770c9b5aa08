//! `run`: the daemon, fed from the environment. Signals become the shutdown token and the
//! stream of reloaded configurations; systemd's variables become the notifier.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::cli::{Environment, Failure, RunArgs, env_var, shutdown_on_signals};
use crate::exporter::{Daemon, Loaded};
use crate::service::Notifier;

/// `run`: follow the live stream until shutdown (or until caught up, with `--once`). SIGHUP
/// re-reads the configuration; the daemon switches to it after the current window.
pub async fn run(path: &Path, environment: &Environment, args: &RunArgs) -> Result<(), Failure> {
    let credentials_directory = environment.credentials_directory.as_deref();
    let loaded = Loaded::load(path, credentials_directory, &env_var)?;
    let shutdown = shutdown_on_signals();
    let notifier = Arc::new(Notifier::from_env(
        environment.notify_socket.clone(),
        environment.watchdog_usec.clone(),
        environment.watchdog_pid.clone(),
    ));
    let reloads = reload_on_hangup(path, environment)?;
    Daemon { once: args.once }
        .run(loaded, shutdown, reloads, notifier)
        .await?;
    Ok(())
}

/// A channel of configurations re-read on each SIGHUP. An invalid file is refused here, with
/// an error naming the problem, and the daemon keeps the configuration it has.
fn reload_on_hangup(
    path: &Path,
    environment: &Environment,
) -> Result<mpsc::Receiver<Loaded>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())
        .context("cannot install the SIGHUP handler")
        .map_err(Failure::runtime)?;
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let path = path.to_path_buf();
    let credentials_directory = environment.credentials_directory.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading the configuration.");
            match Loaded::load(&path, credentials_directory.as_deref(), &env_var) {
                Ok(loaded) => {
                    if reload_tx.send(loaded).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::error!(
                    "The new configuration is invalid; keeping the previous one: {:#}",
                    anyhow::Error::new(error)
                ),
            }
        }
    });
    Ok(reload_rx)
}
