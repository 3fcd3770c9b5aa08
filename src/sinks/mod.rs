//! Sinks: destinations for normalized events, and the fan-out that delivers a batch to all.
//!
//! Delivery rule: a sink's `deliver` returns `Ok` only once every event of the batch is
//! durably handed off. `SinkSet::deliver_all` returns only when every sink has acknowledged
//! the batch, retrying the sinks that failed with a retryable error (backpressure: the poller
//! waits), or stops at the first fatal error. The poller commits only after it returns `Ok`.

mod error;
pub mod kafka;
mod stdout;
#[cfg(test)]
pub(crate) mod testing;
pub mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::ConfigError;
use crate::event::LifecycleEvent;

pub use error::Error;
pub use kafka::{KafkaConfig, KafkaSink};
pub use stdout::{StdoutConfig, StdoutSink};
pub use webhook::{WebhookConfig, WebhookSink};

/// What building a sink may need from the environment.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// systemd's `$CREDENTIALS_DIRECTORY`, expanded in credential file paths.
    pub credentials_directory: Option<PathBuf>,
}

/// A destination for events. Implementations must be cancel-safe at batch granularity:
/// a dropped `deliver` future may have delivered some events, never acknowledged them.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Name from config; used in logs and by `replay --sink`.
    fn name(&self) -> &str;

    /// Delivers one batch; `Ok` only after every event is durably handed off.
    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error>;

    /// Startup probe of connectivity and credentials. Most sinks have nothing to check.
    async fn healthcheck(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Flushes whatever is buffered, before the process exits.
    async fn close(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// The closed set of sink kinds, selected by `type = "..."` in `[[sinks]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Newline-delimited JSON on standard output.
    Stdout(StdoutConfig),
    /// One message per event through an idempotent Kafka producer.
    Kafka(KafkaConfig),
    /// Batched, signed HTTP POSTs.
    // Boxed: config is built once, and this keeps the enum small.
    Webhook(Box<WebhookConfig>),
}

impl SinkConfig {
    /// The sink's name: `name` if set, else its type.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Stdout(config) => config.name.as_deref().unwrap_or("stdout"),
            SinkConfig::Kafka(config) => config.sink_name(),
            SinkConfig::Webhook(config) => config.name.as_deref().unwrap_or("webhook"),
        }
    }

    /// Pure checks; the error's key is relative to the sink's table (`name`, `topic`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SinkConfig::Stdout(config) => config.validate(),
            SinkConfig::Kafka(config) => config.validate(),
            SinkConfig::Webhook(config) => config.validate(),
        }
    }

    /// Warnings about legal but risky settings.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            SinkConfig::Stdout(_) => Vec::new(),
            SinkConfig::Kafka(config) => config.warnings(),
            SinkConfig::Webhook(config) => config.warnings(),
        }
    }

    /// Builds the runtime sink. May open connections.
    pub async fn build(&self, context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
        let name = self.name().to_string();
        match self {
            SinkConfig::Stdout(_) => Ok(Box::new(StdoutSink::new(name))),
            SinkConfig::Kafka(config) => Ok(Box::new(KafkaSink::build(name, config, context)?)),
            SinkConfig::Webhook(config) => Ok(Box::new(WebhookSink::build(name, config, context)?)),
        }
    }
}

/// Calls `emit` once per event type present in `batch`, with its count.
fn count_by_type(batch: &[LifecycleEvent], mut emit: impl FnMut(&str, u64)) {
    let mut counts = std::collections::BTreeMap::new();
    for event in batch {
        *counts.entry(event.event_type.as_str()).or_insert(0u64) += 1;
    }
    for (event_type, n) in counts {
        emit(event_type, n);
    }
}

/// How long a delivery in flight may still take once shutdown was asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What happened to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every sink acknowledged it.
    Delivered,
    /// Shutdown came first; the batch is not acknowledged.
    Cancelled,
}

/// All sinks of a run, delivering together.
pub struct SinkSet {
    sinks: Vec<Box<dyn Sink>>,
    backoff: Backoff,
}

impl SinkSet {
    /// Wraps built sinks. `backoff` paces retries of a failing sink.
    pub fn new(sinks: Vec<Box<dyn Sink>>, backoff: Backoff) -> SinkSet {
        SinkSet { sinks, backoff }
    }

    /// Builds every configured sink.
    pub async fn build(configs: &[&SinkConfig], context: &BuildContext) -> Result<SinkSet, Error> {
        let mut sinks = Vec::with_capacity(configs.len());
        for config in configs {
            sinks.push(config.build(context).await?);
        }
        Ok(SinkSet::new(
            sinks,
            Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        ))
    }

    /// Names of the sinks, in order.
    pub fn names(&self) -> Vec<&str> {
        self.sinks.iter().map(|s| s.name()).collect()
    }

    /// Runs every sink's healthcheck.
    pub async fn healthcheck(&self) -> Result<(), Error> {
        for sink in &self.sinks {
            sink.healthcheck().await?;
        }
        Ok(())
    }

    /// Closes (flushes) every sink, reporting the first failure.
    pub async fn close(&self) -> Result<(), Error> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(error) = sink.close().await {
                tracing::error!(sink = sink.name(), error = %error, "Sink did not close cleanly.");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Delivers `batch` to every sink; see the module docs for the rule.
    pub async fn deliver_all(
        &self,
        batch: &[LifecycleEvent],
        shutdown: &CancellationToken,
    ) -> Result<Delivery, Error> {
        if batch.is_empty() {
            return Ok(Delivery::Delivered);
        }
        let mut pending: Vec<usize> = (0..self.sinks.len()).collect();
        let mut attempt = 0u32;
        let mut was_failing = false;
        loop {
            let deliveries = pending.iter().map(|&idx| async move {
                let started = std::time::Instant::now();
                let result = self.sinks[idx].deliver(batch).await;
                (result, started.elapsed())
            });
            // A delivery in flight at shutdown gets a grace period to finish, so a sink is not
            // cut off in the middle of a write (a half-written line, a half-sent request).
            let abandon = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            let results = tokio::select! {
                () = abandon => return Ok(Delivery::Cancelled),
                results = futures::future::join_all(deliveries) => results,
            };
            let mut still_pending = Vec::new();
            let mut wait = None::<Duration>;
            for (&idx, (result, elapsed)) in pending.iter().zip(results) {
                let name = self.sinks[idx].name();
                if result.is_err() {
                    crate::metrics::emit::sink_failure(name);
                }
                crate::metrics::emit::sink_up(name, result.is_ok());
                match result {
                    Ok(()) => {
                        crate::metrics::emit::sink_delivery(name, elapsed.as_secs_f64());
                        count_by_type(batch, |event_type, n| {
                            crate::metrics::emit::events_delivered(name, event_type, n)
                        });
                    }
                    Err(error) if error.is_retryable() => {
                        if !was_failing {
                            tracing::warn!(sink = self.sinks[idx].name(), error = %error, "Sink delivery failed; holding the batch and retrying.");
                        } else {
                            tracing::debug!(sink = self.sinks[idx].name(), error = %error, "Sink delivery still failing.");
                        }
                        let asked = error
                            .retry_after()
                            .unwrap_or_else(|| self.backoff.delay(attempt));
                        wait = Some(wait.map_or(asked, |w| w.max(asked)));
                        still_pending.push(idx);
                    }
                    Err(error) => return Err(error),
                }
            }
            if still_pending.is_empty() {
                if was_failing {
                    tracing::info!(n_events = batch.len(), "Sink delivery recovered.");
                }
                return Ok(Delivery::Delivered);
            }
            was_failing = true;
            pending = still_pending;
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Delivery::Cancelled),
                () = tokio::time::sleep(wait.unwrap_or_default()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::sinks::testing::{FailingSink, Failure, MemorySink, events};

    /// Retries of a failing sink 1 s apart, so that waits are easy to read off paused time.
    fn sink_set(sinks: Vec<Box<dyn Sink>>) -> SinkSet {
        SinkSet::new(
            sinks,
            Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_sink_is_retried_until_it_accepts_and_only_it() {
        let healthy = MemorySink::new("healthy");
        let flaky = FailingSink::new("flaky", Failure::Retryable(None), 0, 3);
        let set = sink_set(vec![Box::new(healthy.clone()), Box::new(flaky.clone())]);
        let batch = events(3);
        let delivery = set.deliver_all(&batch, &CancellationToken::new()).await;
        assert_eq!(delivery.unwrap(), Delivery::Delivered);
        assert_eq!(flaky.calls(), 4, "three failures, then the accepted call");
        assert_eq!(flaky.accepted().batches().len(), 1);
        assert_eq!(
            healthy.batches().len(),
            1,
            "the sink that accepted is not handed the batch again while another retries"
        );
        assert_eq!(
            healthy.ids(),
            batch.iter().map(|e| e.id).collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_stops_the_delivery() {
        let broken = FailingSink::always("broken", Failure::Fatal);
        let set = sink_set(vec![Box::new(broken.clone())]);
        let error = set
            .deliver_all(&events(2), &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("broken"), "{error}");
        assert_eq!(broken.calls(), 1, "a fatal error is not retried");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_a_delivery_in_flight_a_grace_period() {
        // Finishing within the grace period: the batch counts as delivered.
        let quick = MemorySink::slow("quick", SHUTDOWN_GRACE - Duration::from_secs(1));
        let set = sink_set(vec![Box::new(quick.clone())]);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let delivery = set.deliver_all(&events(1), &shutdown).await.unwrap();
        assert_eq!(delivery, Delivery::Delivered);
        assert_eq!(quick.batches().len(), 1);

        // Not finishing: abandoned when the grace period ends, not acknowledged.
        let stuck = MemorySink::slow("stuck", Duration::from_secs(3600));
        let set = sink_set(vec![Box::new(stuck.clone())]);
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            cancel.cancel();
        });
        let delivery = set.deliver_all(&events(1), &shutdown).await.unwrap();
        assert_eq!(delivery, Delivery::Cancelled);
        assert_eq!(started.elapsed(), Duration::from_secs(10) + SHUTDOWN_GRACE);
        assert!(stuck.batches().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_while_waiting_to_retry_cancels_at_once() {
        let down = FailingSink::always("down", Failure::Retryable(Some(Duration::from_secs(60))));
        let set = sink_set(vec![Box::new(down.clone())]);
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            cancel.cancel();
        });
        let started = Instant::now();
        let delivery = set.deliver_all(&events(1), &shutdown).await.unwrap();
        assert_eq!(delivery, Delivery::Cancelled);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_largest_retry_after_wins() {
        let short = FailingSink::new(
            "short",
            Failure::Retryable(Some(Duration::from_secs(5))),
            0,
            1,
        );
        let long = FailingSink::new(
            "long",
            Failure::Retryable(Some(Duration::from_secs(30))),
            0,
            1,
        );
        let set = sink_set(vec![Box::new(short.clone()), Box::new(long.clone())]);
        let started = Instant::now();
        let delivery = set
            .deliver_all(&events(1), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(delivery, Delivery::Delivered);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(30),
            "one wait, as long as the longest a destination asked for"
        );
        assert_eq!((short.calls(), long.calls()), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_batch_reaches_no_sink() {
        let broken = FailingSink::always("broken", Failure::Fatal);
        let set = sink_set(vec![Box::new(broken.clone())]);
        let delivery = set.deliver_all(&[], &CancellationToken::new()).await;
        assert_eq!(delivery.unwrap(), Delivery::Delivered);
        assert_eq!(broken.calls(), 0);
    }
}
