//! Sinks: destinations for normalized events, and the fan-out that delivers a batch to all.
//!
//! Delivery rule: a sink's `deliver` returns `Ok` only once every event of the batch is
//! durably handed off. `SinkSet::deliver_to` returns only when its sink has acknowledged the
//! batch, retrying a retryable error (backpressure: the poller waits), or at a fatal error.
//! The poller hands a batch to every sink at once and records each acknowledgement as it
//! comes (`poller::fanout`).

mod elasticsearch;
mod error;
pub mod file;
pub mod http;
pub mod kafka;
mod outage;
mod sentinel;
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

pub use elasticsearch::{ElasticsearchConfig, ElasticsearchSink};
pub use error::Error;
pub use file::{FileConfig, FileSink};
pub use kafka::{KafkaConfig, KafkaSink};
pub(crate) use outage::Outage;
pub use sentinel::{SentinelConfig, SentinelSink};
pub use stdout::{StdoutConfig, StdoutSink};
pub use webhook::{WebhookConfig, WebhookSink};

/// What building a sink may need from the environment.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// systemd's `$CREDENTIALS_DIRECTORY`, expanded in credential file paths.
    pub credentials_directory: Option<PathBuf>,
    /// How long delivered ids are remembered (`state.retention`): sinks that keep their own
    /// record of ids keep it as long.
    pub id_retention: Duration,
    /// Appended to an exactly-once Kafka sink's transactional id (`replay-<job>`), so a
    /// replay never fences the daemon writing through the same sink.
    pub transactional_id_suffix: Option<String>,
}

/// A destination for events. Implementations must be cancel-safe at batch granularity:
/// a dropped `deliver` future may have delivered some events, never acknowledged them.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Name from config; used in logs and by `replay --sink`.
    fn name(&self) -> &str;

    /// Delivers one batch; `Ok` only after every event is durably handed off.
    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error>;

    /// Delivers one batch of `stream`: sinks that keep their own progress per stream (the
    /// exactly-once Kafka sink) need its name; the others deliver as `deliver`.
    async fn deliver_in(&self, batch: &[LifecycleEvent], stream: &str) -> Result<(), Error> {
        let _ = stream;
        self.deliver(batch).await
    }

    /// What the checkpoint stores with this sink's latest acknowledgement, for `resume`
    /// after a restart: the file sink's file identity and length.
    fn resume_state(&self) -> Option<String> {
        None
    }

    /// Called once before the first delivery with the state stored with the last
    /// acknowledged batch (`None` when none was). A sink may cut back output written after it;
    /// a sink that keeps its own progress elsewhere returns it.
    async fn resume(&self, state: Option<&str>) -> Result<Restored, Error> {
        let _ = state;
        Ok(Restored::default())
    }

    /// A stream's cursor moved: every event before `cursor.position_ms` was delivered.
    async fn cursor_moved(&self, stream: &str, cursor: StreamCursor) -> Result<(), Error> {
        let _ = (stream, cursor);
        Ok(())
    }

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
    /// Newline-delimited JSON appended to a local file, exactly once across crashes.
    File(FileConfig),
    /// One message per event through an idempotent Kafka producer.
    Kafka(KafkaConfig),
    /// Batched, signed HTTP POSTs.
    // Boxed: config is built once, and this keeps the enum small.
    Webhook(Box<WebhookConfig>),
    /// Elasticsearch or OpenSearch `_bulk`, `create` with the event id as `_id`.
    Elasticsearch(Box<ElasticsearchConfig>),
    /// Microsoft Sentinel through the Azure Monitor Logs Ingestion API.
    Sentinel(Box<SentinelConfig>),
}

impl SinkConfig {
    /// Whether the sink writes events to standard output.
    pub fn is_stdout(&self) -> bool {
        matches!(self, SinkConfig::Stdout(_))
    }

    /// The sink's name: `name` if set, else its type.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Stdout(config) => config.name.as_deref().unwrap_or("stdout"),
            SinkConfig::File(config) => config.sink_name(),
            SinkConfig::Kafka(config) => config.sink_name(),
            SinkConfig::Webhook(config) => config.name.as_deref().unwrap_or("webhook"),
            SinkConfig::Elasticsearch(config) => config.sink_name(),
            SinkConfig::Sentinel(config) => config.sink_name(),
        }
    }

    /// Pure checks; the error's key is relative to the sink's table (`name`, `topic`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SinkConfig::Stdout(config) => config.validate(),
            SinkConfig::File(config) => config.validate(),
            SinkConfig::Kafka(config) => config.validate(),
            SinkConfig::Webhook(config) => config.validate(),
            SinkConfig::Elasticsearch(config) => config.validate(),
            SinkConfig::Sentinel(config) => config.validate(),
        }
    }

    /// Warnings about legal but risky settings.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            SinkConfig::Stdout(_) => Vec::new(),
            SinkConfig::File(config) => config.warnings(),
            SinkConfig::Kafka(config) => config.warnings(),
            SinkConfig::Webhook(config) => config.warnings(),
            SinkConfig::Elasticsearch(config) => config.warnings(),
            SinkConfig::Sentinel(config) => config.warnings(),
        }
    }

    /// Builds the runtime sink. May open connections.
    pub async fn build(&self, context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
        let name = self.name().to_string();
        match self {
            SinkConfig::Stdout(config) => Ok(Box::new(StdoutSink::new(name, config.format))),
            SinkConfig::File(config) => Ok(Box::new(FileSink::new(name, config))),
            SinkConfig::Kafka(config) => KafkaSink::build(name, config, context),
            SinkConfig::Webhook(config) => Ok(Box::new(WebhookSink::build(name, config, context)?)),
            SinkConfig::Elasticsearch(config) => ElasticsearchSink::build(name, config, context),
            SinkConfig::Sentinel(config) => SentinelSink::build(name, config, context),
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

/// A stream's cursor, as sinks that keep their own progress see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCursor {
    /// Everything before this (epoch ms) was delivered.
    pub position_ms: i64,
    /// Where the stream's reading began.
    pub origin_ms: i64,
}

/// What a sink that keeps its own progress (in Kafka) remembers of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoredStream {
    /// The stream key.
    pub stream: String,
    /// Its cursor, if one was committed.
    pub cursor: Option<StreamCursor>,
    /// Ids (with event times) of events the sink took.
    pub ids: Vec<(crate::event::RecordId, Option<i64>)>,
}

/// What `Sink::resume` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// One entry per stream the sink remembers.
    pub streams: Vec<RestoredStream>,
}

/// What happened to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The sink (or every sink) acknowledged it.
    Delivered,
    /// Shutdown came first; the batch is not acknowledged.
    Cancelled,
}

/// All sinks of a run, delivering together.
pub struct SinkSet {
    sinks: Vec<Box<dyn Sink>>,
    backoff: Backoff,
    /// Held for a whole batch: walks of several accounts share the sinks, and a sink's
    /// resume state (a file's length) must describe the batches recorded with it, so batches
    /// go one at a time.
    turn: tokio::sync::Mutex<()>,
}

impl SinkSet {
    /// Wraps built sinks. `backoff` paces retries of a failing sink.
    pub fn new(sinks: Vec<Box<dyn Sink>>, backoff: Backoff) -> SinkSet {
        SinkSet {
            sinks,
            backoff,
            turn: tokio::sync::Mutex::new(()),
        }
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

    /// Waits for the sinks' turn: one batch (with its acknowledgements recorded) at a time.
    pub async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// How many sinks there are.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// The name of sink `idx`.
    pub fn name(&self, idx: usize) -> &str {
        self.sinks[idx].name()
    }

    /// What the checkpoint stores with sink `idx`'s latest acknowledgement.
    pub fn resume_state(&self, idx: usize) -> Option<String> {
        self.sinks[idx].resume_state()
    }

    /// Hands every sink the state saved with its last acknowledged batch (by sink name),
    /// before the first delivery: a sink that can cut back what it wrote past that does so.
    /// Returns what sinks that keep their own progress remember.
    pub async fn resume(
        &self,
        states: &std::collections::HashMap<String, String>,
    ) -> Result<Vec<(usize, Restored)>, Error> {
        let mut restored = Vec::new();
        for (idx, sink) in self.sinks.iter().enumerate() {
            let found = sink
                .resume(states.get(sink.name()).map(String::as_str))
                .await?;
            if !found.streams.is_empty() {
                restored.push((idx, found));
            }
        }
        Ok(restored)
    }

    /// Tells every sink that a stream's cursor moved (a window was committed).
    pub async fn cursor_moved(&self, stream: &str, cursor: StreamCursor) -> Result<(), Error> {
        for sink in &self.sinks {
            sink.cursor_moved(stream, cursor).await?;
        }
        Ok(())
    }

    /// Delivers `batch` of `stream` to sink `idx`, retrying a retryable failure with backoff
    /// (the destination's `Retry-After` when it gave one) until the sink accepts, fails
    /// fatally, or shutdown comes; a delivery in flight at shutdown gets `SHUTDOWN_GRACE`.
    pub async fn deliver_to(
        &self,
        idx: usize,
        batch: &[LifecycleEvent],
        stream: &str,
        shutdown: &CancellationToken,
    ) -> Result<Delivery, Error> {
        if batch.is_empty() {
            return Ok(Delivery::Delivered);
        }
        let sink = &self.sinks[idx];
        let name = sink.name();
        let mut attempt = 0u32;
        loop {
            let started = std::time::Instant::now();
            // A delivery in flight at shutdown gets a grace period to finish, so a sink is not
            // cut off in the middle of a write (a half-written line, a half-sent request).
            let abandon = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            let result = tokio::select! {
                () = abandon => return Ok(Delivery::Cancelled),
                result = sink.deliver_in(batch, stream) => result,
            };
            if result.is_err() {
                crate::metrics::emit::sink_failure(name);
            }
            crate::metrics::emit::sink_up(name, result.is_ok());
            let error = match result {
                Ok(()) => {
                    crate::metrics::emit::sink_delivery(name, started.elapsed().as_secs_f64());
                    count_by_type(batch, |event_type, n| {
                        crate::metrics::emit::events_delivered(name, event_type, n)
                    });
                    if attempt > 0 {
                        tracing::info!(
                            sink = name,
                            n_events = batch.len(),
                            "Sink delivery recovered."
                        );
                    }
                    return Ok(Delivery::Delivered);
                }
                Err(error) if error.is_retryable() => error,
                Err(error) => return Err(error),
            };
            if attempt == 0 {
                tracing::warn!(sink = name, error = %error, "Sink delivery failed; holding the batch and retrying.");
            } else {
                tracing::debug!(sink = name, error = %error, "Sink delivery still failing.");
            }
            let wait = error
                .retry_after()
                .unwrap_or_else(|| self.backoff.delay(attempt));
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Delivery::Cancelled),
                () = crate::heartbeat::sleep(wait) => {}
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
    async fn a_failing_sink_is_retried_until_it_accepts() {
        let flaky = FailingSink::new("flaky", Failure::Retryable(None), 0, 3);
        let set = sink_set(vec![Box::new(flaky.clone())]);
        let batch = events(3);
        let started = Instant::now();
        let delivery = set
            .deliver_to(0, &batch, "live:test", &CancellationToken::new())
            .await;
        assert_eq!(delivery.unwrap(), Delivery::Delivered);
        assert_eq!(flaky.calls(), 4, "three failures, then the accepted call");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited <= Duration::from_secs(3),
            "three backoff waits of 0.5-1 s: {waited:?}"
        );
        assert_eq!(
            flaky.accepted().ids(),
            batch.iter().map(|e| e.id).collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_stops_the_delivery() {
        let broken = FailingSink::always("broken", Failure::Fatal);
        let set = sink_set(vec![Box::new(broken.clone())]);
        let error = set
            .deliver_to(0, &events(2), "live:test", &CancellationToken::new())
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
        let delivery = set
            .deliver_to(0, &events(1), "live:test", &shutdown)
            .await
            .unwrap();
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
        let delivery = set
            .deliver_to(0, &events(1), "live:test", &shutdown)
            .await
            .unwrap();
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
        let delivery = set
            .deliver_to(0, &events(1), "live:test", &shutdown)
            .await
            .unwrap();
        assert_eq!(delivery, Delivery::Cancelled);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_destinations_retry_after_is_the_wait() {
        let slow_down = FailingSink::new(
            "slow_down",
            Failure::Retryable(Some(Duration::from_secs(30))),
            0,
            1,
        );
        let set = sink_set(vec![Box::new(slow_down.clone())]);
        let started = Instant::now();
        let delivery = set
            .deliver_to(0, &events(1), "live:test", &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(delivery, Delivery::Delivered);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(30),
            "as long as the destination asked for, not the 1 s backoff"
        );
        assert_eq!(slow_down.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_batch_reaches_no_sink() {
        let broken = FailingSink::always("broken", Failure::Fatal);
        let set = sink_set(vec![Box::new(broken.clone())]);
        let delivery = set
            .deliver_to(0, &[], "live:test", &CancellationToken::new())
            .await;
        assert_eq!(delivery.unwrap(), Delivery::Delivered);
        assert_eq!(broken.calls(), 0);
    }
}

#[cfg(test)]
mod example_tests {
    use super::SinkConfig;

    /// Every commented `[[sinks]]` block of `config.example.toml`, uncommented once.
    fn example_blocks() -> Vec<String> {
        let example = include_str!("../../config.example.toml");
        let lines: Vec<&str> = example.lines().collect();
        let mut blocks = Vec::new();
        for (idx, line) in lines.iter().enumerate() {
            if *line != "# [[sinks]]" {
                continue;
            }
            let block: String = lines[idx..]
                .iter()
                .map_while(|line| line.strip_prefix('#'))
                .map(|line| line.strip_prefix(' ').unwrap_or(line))
                .map(|line| format!("{line}\n"))
                .collect();
            blocks.push(block);
        }
        blocks
    }

    #[derive(serde::Deserialize)]
    struct Sinks {
        sinks: Vec<SinkConfig>,
    }

    #[test]
    fn every_commented_sink_in_config_example_toml_is_valid() {
        let blocks = example_blocks();
        let mut kinds: Vec<String> = Vec::new();
        for block in &blocks {
            let parsed: Sinks = toml::from_str(block).unwrap_or_else(|e| panic!("{block}: {e}"));
            for sink in parsed.sinks {
                sink.validate().unwrap_or_else(|e| panic!("{block}: {e}"));
                assert!(sink.warnings().is_empty(), "{block}: {:?}", sink.warnings());
                kinds.push(block.lines().nth(1).unwrap_or_default().to_string());
            }
        }
        for kind in ["file", "kafka", "webhook", "elasticsearch", "sentinel"] {
            assert!(
                kinds.iter().any(|k| k.contains(&format!("\"{kind}\""))),
                "no {kind} example: {kinds:?}"
            );
        }
    }
}
