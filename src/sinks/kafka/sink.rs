//! `KafkaSink`: an idempotent librdkafka producer; a batch is acknowledged only when every
//! message of it has a successful delivery report.
//!
//! Delivery rule: every event is enqueued (a full queue means waiting for acknowledgements,
//! never an error), then the sink waits for every delivery report. All succeeded: `Ok`.
//! Authorization or SASL refusals: `Error::Fatal`, naming the topic or the mechanism.
//! Anything else: `Error::Unavailable`, so `SinkSet` holds the batch and retries it with
//! backoff while the checkpoint stays put. Events of a failed batch that the brokers did
//! acknowledge are remembered and not sent again when the same batch is retried.
//!
//! Recovery: after a fatal librdkafka error (fenced or out-of-sequence idempotent producer,
//! unknown producer id) or `recreate_after_timeouts` timed-out batches in a row, the producer
//! is replaced by a new one, which reconnects and gets a new producer id. That is what a
//! cluster replaced under the sink needs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::secrets::read_secret;
use crate::event::{LifecycleEvent, RecordId};
use crate::formats::EventFormat;
use crate::sinks::kafka::classify::{Class, classify};
use crate::sinks::kafka::health::{Health, KafkaContext};
use crate::sinks::kafka::record::Message;
use crate::sinks::kafka::transactional::TransactionalKafkaSink;
use crate::sinks::kafka::{KafkaConfig, KafkaKey, TopicTemplate};
use crate::sinks::{BuildContext, Error, Sink};

/// A Kafka sink, built from its configuration.
pub struct KafkaSink {
    name: String,
    brokers: String,
    topic: TopicTemplate,
    key: KafkaKey,
    format: EventFormat,
    /// Kept to create a new producer; holds the SASL password (its `Debug` redacts it).
    client_config: ClientConfig,
    health: Arc<Health>,
    producer: Mutex<FutureProducer<KafkaContext>>,
    /// Ids of the current batch the brokers already acknowledged, while it is retried.
    acknowledged: Mutex<HashSet<RecordId>>,
    consecutive_timeouts: AtomicU32,
    delivery_timeout: Duration,
    stall_timeout: Duration,
    recreate_after_timeouts: u32,
    healthcheck_timeout: Duration,
    flush_timeout: Duration,
}

/// How often a waiting batch looks at the brokers' state.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

impl KafkaSink {
    /// Reads the password file and creates the producer: transactional with `exactly_once`.
    /// librdkafka connects in the background; nothing here waits for the network.
    pub fn build(
        name: String,
        config: &KafkaConfig,
        context: &BuildContext,
    ) -> Result<Box<dyn Sink>, Error> {
        let mut client_config = client_config(&name, config, context)?;
        if config.exactly_once {
            let mut transactional_id = config.transactional_id();
            if let Some(suffix) = &context.transactional_id_suffix {
                transactional_id = format!("{transactional_id}-{suffix}");
            }
            client_config.set("transactional.id", &transactional_id);
            return Ok(Box::new(TransactionalKafkaSink::build(
                name,
                config,
                client_config,
                transactional_id,
                context.id_retention,
            )?));
        }
        Ok(Box::new(KafkaSink::with_client_config(
            name,
            config,
            client_config,
        )?))
    }

    fn with_client_config(
        name: String,
        config: &KafkaConfig,
        client_config: ClientConfig,
    ) -> Result<KafkaSink, Error> {
        let (topic, health, producer) = producer_parts(&name, config, &client_config)?;
        Ok(KafkaSink {
            name,
            brokers: config.brokers.trim().to_string(),
            topic,
            key: config.key,
            format: config.format,
            client_config,
            health,
            producer: Mutex::new(producer),
            acknowledged: Mutex::new(HashSet::new()),
            consecutive_timeouts: AtomicU32::new(0),
            delivery_timeout: config.delivery_timeout,
            stall_timeout: config.stall_timeout,
            recreate_after_timeouts: config.recreate_after_timeouts,
            healthcheck_timeout: config.healthcheck_timeout,
            flush_timeout: config.flush_timeout,
        })
    }

    fn producer(&self) -> FutureProducer<KafkaContext> {
        self.producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fatal(&self, message: String) -> Error {
        Error::fatal(&self.name, message)
    }

    fn unavailable(&self, message: String) -> Error {
        Error::unavailable(&self.name, message)
    }

    /// Replaces the producer. The old one is dropped on the blocking pool: dropping purges
    /// its queue and joins its polling thread.
    fn recreate_producer(&self, reason: &str) -> Result<(), Error> {
        let producer = create_producer(&self.client_config, &self.health)
            .map_err(|m| self.fatal(format!("cannot create a new producer: {m}")))?;
        let old = std::mem::replace(
            &mut *self.producer.lock().unwrap_or_else(|p| p.into_inner()),
            producer,
        );
        tokio::task::spawn_blocking(move || drop(old));
        self.health.take_producer_fatal();
        self.consecutive_timeouts.store(0, Ordering::SeqCst);
        crate::metrics::emit::kafka_producer_recreated(&self.name);
        tracing::warn!(sink = %self.name, reason, "Recreated the Kafka producer.");
        Ok(())
    }

    /// Fails fast on a refusal a callback saw; marks the sink down when no delivery report
    /// came for `stall_timeout` (since `progress`, the batch's start or its last report).
    fn watch(&self, progress: Instant, brokers_down_before: u64) -> Result<(), Error> {
        // Waiting on the brokers (down or slow) is a sign of life, not a hang.
        crate::heartbeat::beat();
        if let Some(refused) = self.health.refused() {
            return Err(self.fatal(refused));
        }
        if progress.elapsed() >= self.stall_timeout {
            let last_error = self
                .health
                .last_error()
                .map(|error| format!("; last broker error: {error}"))
                .unwrap_or_default();
            let reason = format!(
                "no acknowledgement for {}{last_error}",
                humantime::format_duration(self.stall_timeout)
            );
            self.health.set_down(&reason);
        } else if self.health.all_brokers_down_count() > brokers_down_before {
            let reason = self
                .health
                .last_error()
                .unwrap_or_else(|| "all brokers are down".into());
            self.health.set_down(&reason);
        }
        Ok(())
    }

    /// Enqueues and awaits `messages`; returns how the batch went.
    async fn send_all(
        &self,
        events: &[&LifecycleEvent],
        messages: &[Message],
    ) -> Result<Outcome, Error> {
        let producer = self.producer();
        let mut progress = Instant::now();
        let brokers_down_before = self.health.all_brokers_down_count();
        let mut outcome = Outcome::default();
        let mut pending = FuturesUnordered::new();
        for (idx, message) in messages.iter().enumerate() {
            let mut record = FutureRecord::to(&message.topic)
                .payload(&message.value)
                .headers(message.owned_headers());
            if let Some(key) = &message.key {
                record = record.key(key);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(async move { (idx, delivery.await) });
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        // Backpressure: wait for acknowledgements to make room in the queue.
                        record = returned;
                        tokio::select! {
                            Some((done, result)) = pending.next() => {
                                progress = Instant::now();
                                outcome.record(self, events[done], &messages[done].topic, result);
                            }
                            () = tokio::time::sleep(WATCH_INTERVAL) => self.watch(progress, brokers_down_before)?,
                        }
                    }
                    Err((error, _)) => {
                        outcome.record_error(self, &message.topic, &error);
                        break;
                    }
                }
            }
        }
        let mut watch = tokio::time::interval(WATCH_INTERVAL);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pending.is_empty() {
            tokio::select! {
                Some((idx, result)) = pending.next() => {
                    progress = Instant::now();
                    outcome.record(self, events[idx], &messages[idx].topic, result);
                }
                _ = watch.tick() => self.watch(progress, brokers_down_before)?,
            }
        }
        Ok(outcome)
    }
}

/// What both Kafka sinks start from: the topic template, the health record and the
/// producer (connecting nowhere yet).
pub(crate) fn producer_parts(
    name: &str,
    config: &KafkaConfig,
    client_config: &ClientConfig,
) -> Result<(TopicTemplate, Arc<Health>, FutureProducer<KafkaContext>), Error> {
    let topic = TopicTemplate::parse(&config.topic)
        .map_err(|m| Error::fatal(name, format!("topic: {m}")))?;
    let health = Arc::new(Health::new(name.to_string(), config.sasl_mechanism()));
    let producer = create_producer(client_config, &health)
        .map_err(|m| Error::fatal(name, format!("properties: {m}")))?;
    Ok((topic, health, producer))
}

/// librdkafka's configuration for the sink, with the password read from its file.
fn client_config(
    name: &str,
    config: &KafkaConfig,
    context: &BuildContext,
) -> Result<ClientConfig, Error> {
    let fatal = |message: String| Error::Fatal {
        sink: name.to_string(),
        message,
    };
    let mut client_config = ClientConfig::new();
    for (property, value) in config.librdkafka_properties() {
        client_config.set(property, value);
    }
    if let Some(path) = &config.password_file {
        let password = read_secret(path, context.credentials_directory.as_deref())
            .map_err(|m| fatal(format!("password_file: {m}")))?;
        client_config.set("sasl.password", password.expose());
    }
    client_config.set_log_level(RDKafkaLogLevel::Info);
    Ok(client_config)
}

/// Creates a producer reporting into `health`; the error is librdkafka's own message (which
/// names a bad property, never a value).
fn create_producer(
    client_config: &ClientConfig,
    health: &Arc<Health>,
) -> Result<FutureProducer<KafkaContext>, String> {
    client_config
        .create_with_context(KafkaContext::new(Arc::clone(health)))
        .map_err(|error| match error {
            KafkaError::ClientCreation(message) => message,
            other => other.to_string(),
        })
}

/// What became of the messages of one attempt.
#[derive(Default)]
struct Outcome {
    n_acknowledged: usize,
    n_failed: usize,
    fatal: Option<String>,
    recreate: Option<String>,
    timed_out: Option<String>,
    retry: Option<String>,
}

impl Outcome {
    fn record(
        &mut self,
        sink: &KafkaSink,
        event: &LifecycleEvent,
        topic: &str,
        result: Result<
            rdkafka::producer::future_producer::OwnedDeliveryResult,
            futures::channel::oneshot::Canceled,
        >,
    ) {
        match result {
            Ok(Ok(_)) => {
                self.n_acknowledged += 1;
                sink.acknowledged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(event.id);
            }
            Ok(Err((error, _))) => self.record_error(sink, topic, &error),
            Err(_) => {
                self.n_failed += 1;
                self.retry
                    .get_or_insert_with(|| "the producer was closed".into());
            }
        }
    }

    fn record_error(&mut self, sink: &KafkaSink, topic: &str, error: &KafkaError) {
        self.n_failed += 1;
        let Some(code) = error.rdkafka_error_code() else {
            self.retry.get_or_insert_with(|| error.to_string());
            return;
        };
        match classify(code, topic, sink.health.mechanism()) {
            Class::Fatal(message) => {
                self.fatal.get_or_insert(message);
            }
            Class::Recreate => {
                let fatal = sink.producer().client().fatal_error();
                let detail = fatal.map_or_else(
                    || error.to_string(),
                    |(code, text)| format!("{code:?}: {text}"),
                );
                self.recreate.get_or_insert(detail);
            }
            Class::TimedOut => {
                self.timed_out.get_or_insert_with(|| error.to_string());
            }
            Class::Retry => {
                self.retry
                    .get_or_insert_with(|| format!("{topic}: {error}"));
            }
        }
    }
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        if let Some(refused) = self.health.refused() {
            return Err(self.fatal(refused));
        }
        if self.health.take_producer_fatal() {
            self.recreate_producer("librdkafka raised a fatal error")?;
        }
        let events: Vec<&LifecycleEvent> = {
            let acknowledged = self.acknowledged.lock().unwrap_or_else(|p| p.into_inner());
            batch
                .iter()
                .filter(|event| !acknowledged.contains(&event.id))
                .collect()
        };
        let messages: Vec<Message> = events
            .iter()
            .map(|e| Message::encode(e, &self.topic, self.key, self.format))
            .collect();
        tracing::trace!(sink = %self.name, n_events = messages.len(), n_skipped = batch.len() - events.len(), "Producing a batch.");
        let outcome = self.send_all(&events, &messages).await?;
        crate::metrics::emit::kafka_messages_acknowledged(
            &self.name,
            outcome.n_acknowledged as u64,
        );
        if let Some(message) = outcome.fatal {
            return Err(self.fatal(message));
        }
        if outcome.n_failed == 0 {
            self.acknowledged
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            self.consecutive_timeouts.store(0, Ordering::SeqCst);
            self.health.set_up();
            return Ok(());
        }
        let summary = format!(
            "{} of {} messages not acknowledged",
            outcome.n_failed,
            messages.len()
        );
        if let Some(detail) = outcome.recreate {
            self.health.set_down(&detail);
            self.recreate_producer(&detail)?;
            return Err(self.unavailable(format!("{summary}: {detail}; producer recreated")));
        }
        if let Some(detail) = outcome.timed_out {
            let n_timeouts = self.consecutive_timeouts.fetch_add(1, Ordering::SeqCst) + 1;
            let reason = format!(
                "{summary} within {} ({detail})",
                humantime::format_duration(self.delivery_timeout)
            );
            self.health.set_down(&reason);
            if n_timeouts >= self.recreate_after_timeouts {
                self.recreate_producer(&format!("{n_timeouts} batches in a row timed out"))?;
            }
            return Err(self.unavailable(reason));
        }
        let detail = outcome.retry.unwrap_or_default();
        self.health.set_down(&detail);
        Err(self.unavailable(format!("{summary}: {detail}")))
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        let producer = self.producer();
        let health = Arc::clone(&self.health);
        let topic = self.topic.fixed().map(str::to_string);
        let timeout = self.healthcheck_timeout;
        let probe = tokio::task::spawn_blocking(move || {
            probe(&producer, &health, topic.as_deref(), timeout)
        })
        .await
        .map_err(|error| self.unavailable(format!("healthcheck task failed: {error}")))?;
        match probe {
            Probe::Ok => {
                self.health.set_up();
                Ok(())
            }
            Probe::Refused(message) => Err(self.fatal(message)),
            Probe::Unreachable(error) => {
                let last = self
                    .health
                    .last_error()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                let reason = format!(
                    "brokers {} did not answer within {}: {error}{last}",
                    self.brokers,
                    humantime::format_duration(timeout)
                );
                self.health.set_down(&reason);
                Err(self.unavailable(reason))
            }
            Probe::TopicError(message) => Err(self.unavailable(message)),
        }
    }

    async fn close(&self) -> Result<(), Error> {
        let producer = self.producer();
        let timeout = self.flush_timeout;
        let (flushed, n_left) = tokio::task::spawn_blocking(move || {
            let flushed = producer.flush(timeout);
            (flushed, producer.in_flight_count())
        })
        .await
        .map_err(|error| self.unavailable(format!("flush task failed: {error}")))?;
        match flushed {
            Ok(()) => Ok(()),
            Err(error) => Err(self.unavailable(format!(
                "{n_left} messages not acknowledged within flush_timeout {} ({error}); they were not acknowledged to the poller either, so they are read again on the next start",
                humantime::format_duration(timeout)
            ))),
        }
    }
}

/// The result of a metadata probe.
enum Probe {
    Ok,
    Refused(String),
    Unreachable(String),
    TopicError(String),
}

/// Asks the brokers for metadata (of `topic`, if fixed: librdkafka's producer asks the cluster
/// to create a missing topic when the cluster allows it), in one-second steps so a refusal
/// seen by a callback ends the wait early. Blocking: run it on the blocking pool.
fn probe(
    producer: &FutureProducer<KafkaContext>,
    health: &Health,
    topic: Option<&str>,
    timeout: Duration,
) -> Probe {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(refused) = health.refused() {
            return Probe::Refused(refused);
        }
        let step = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        let metadata = match producer.client().fetch_metadata(topic, step) {
            Ok(metadata) => metadata,
            Err(error) => {
                if Instant::now() >= deadline {
                    return match health.refused() {
                        Some(refused) => Probe::Refused(refused),
                        None => Probe::Unreachable(error.to_string()),
                    };
                }
                continue;
            }
        };
        if metadata.brokers().is_empty() {
            return Probe::Unreachable("the cluster lists no brokers".into());
        }
        let Some(topic) = topic else {
            return Probe::Ok;
        };
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Probe::TopicError(format!("the brokers did not describe topic {topic}"));
        };
        return match found.error().map(RDKafkaErrorCode::from) {
            None | Some(RDKafkaErrorCode::LeaderNotAvailable) => Probe::Ok,
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                Probe::Refused(format!(
                    "topic {topic} does not exist and the cluster does not create topics on demand: create it"
                ))
            }
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => Probe::Refused(format!(
                "not authorized to describe topic {topic}: grant the exporter's principal WRITE and DESCRIBE on it"
            )),
            Some(code) => Probe::TopicError(format!("topic {topic}: {code}")),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::testing::events;
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    fn sink(name: &str, brokers: &str, extra: &str) -> Arc<KafkaSink> {
        let text = format!(
            "name = \"{name}\"\nbrokers = \"{brokers}\"\ntopic = \"lifecycle\"\nstall_timeout = \"200ms\"\n{extra}"
        );
        let config: KafkaConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        config.validate().unwrap();
        let context = BuildContext::default();
        let client_config = client_config(name, &config, &context).unwrap();
        Arc::new(KafkaSink::with_client_config(name.into(), &config, client_config).unwrap())
    }

    fn metric(name: &str, sink: &str) -> Option<f64> {
        crate::metrics::global().value(name, &[("sink", sink)])
    }

    fn mock_cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
        let cluster = MockCluster::new(1).expect("a mock cluster");
        cluster
            .create_topic("lifecycle", 3, 1)
            .expect("topic created");
        cluster
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_backpressure_and_the_batch_is_acknowledged() {
        let cluster = mock_cluster();
        let sink = sink(
            "mock-queue",
            &cluster.bootstrap_servers(),
            "[properties]\n\"queue.buffering.max.messages\" = 10\n",
        );
        sink.healthcheck().await.unwrap();
        sink.deliver(&events(300)).await.unwrap();
        assert_eq!(
            metric("lae_kafka_messages_acknowledged_total", "mock-queue"),
            Some(300.0)
        );
        assert_eq!(metric("lae_sink_up", "mock-queue"), Some(1.0));
        sink.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn topic_authorization_failure_is_fatal_and_names_the_topic() {
        let cluster = mock_cluster();
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 20],
        );
        let sink = sink("mock-authz", &cluster.bootstrap_servers(), "");
        let error = sink.deliver(&events(3)).await.unwrap_err();
        assert!(!error.is_retryable(), "{error}");
        assert!(
            error
                .to_string()
                .contains("not authorized to write to topic lifecycle"),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_down_broker_holds_the_batch_then_it_is_acknowledged() {
        let cluster = mock_cluster();
        let sink = sink("mock-down", &cluster.bootstrap_servers(), "");
        sink.deliver(&events(5)).await.unwrap();
        cluster.broker_down(1).unwrap();
        let delivery = tokio::spawn({
            let sink = Arc::clone(&sink);
            async move { sink.deliver(&events(20)).await }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!delivery.is_finished(), "the batch waits for the broker");
        assert_eq!(metric("lae_sink_up", "mock-down"), Some(0.0));
        cluster.broker_up(1).unwrap();
        let delivered = tokio::time::timeout(Duration::from_secs(30), delivery).await;
        delivered
            .expect("delivered after the broker came back")
            .unwrap()
            .unwrap();
        assert_eq!(metric("lae_sink_up", "mock-down"), Some(1.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_flushes_within_flush_timeout_and_reports_what_was_left() {
        let cluster = mock_cluster();
        let sink = sink(
            "mock-close",
            &cluster.bootstrap_servers(),
            "flush_timeout = \"1s\"\n",
        );
        sink.deliver(&events(2)).await.unwrap();
        cluster.broker_down(1).unwrap();
        // A delivery abandoned at shutdown leaves its messages in the producer queue.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(300), sink.deliver(&events(10))).await;
        assert!(
            abandoned.is_err(),
            "the broker is down, so the batch cannot be acknowledged"
        );
        let started = Instant::now();
        let error = sink.close().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "close took {:?}",
            started.elapsed()
        );
        assert!(
            error
                .to_string()
                .contains("10 messages not acknowledged within flush_timeout 1s"),
            "{error}"
        );
        cluster.broker_up(1).unwrap();
        // Once the broker is back the queue drains; the producer may still be in its
        // reconnect backoff, so give it a few flush periods.
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Err(error) = sink.close().await {
            assert!(
                Instant::now() < deadline,
                "the queue never drained: {error}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeated_timeouts_recreate_the_producer() {
        let cluster = mock_cluster();
        let sink = sink(
            "mock-timeouts",
            &cluster.bootstrap_servers(),
            "delivery_timeout = \"1s\"\nrecreate_after_timeouts = 2\n",
        );
        cluster.broker_down(1).unwrap();
        for attempt in 1..=2 {
            let error = sink.deliver(&events(4)).await.unwrap_err();
            assert!(error.is_retryable(), "attempt {attempt}: {error}");
            assert!(
                error.to_string().contains("within 1s"),
                "attempt {attempt}: {error}"
            );
        }
        assert_eq!(
            metric("lae_kafka_producers_recreated_total", "mock-timeouts"),
            Some(1.0)
        );
        cluster.broker_up(1).unwrap();
        // The new producer may still be in its reconnect backoff: retry as `SinkSet` does.
        let mut attempts = 0;
        while let Err(error) = sink.deliver(&events(4)).await {
            attempts += 1;
            assert!(
                attempts < 15,
                "still failing after the broker came back: {error}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fenced_idempotent_producer_is_recreated() {
        let cluster = mock_cluster();
        let sink = sink("mock-fenced", &cluster.bootstrap_servers(), "");
        sink.deliver(&events(2)).await.unwrap();
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
        );
        let error = sink.deliver(&events(2)).await.unwrap_err().to_string();
        assert!(
            error.contains("OutOfOrderSequenceNumber") && error.contains("producer recreated"),
            "{error}"
        );
        assert_eq!(
            metric("lae_kafka_producers_recreated_total", "mock-fenced"),
            Some(1.0)
        );
        sink.deliver(&events(2)).await.unwrap();
        // The message acknowledged before the failure was not sent again.
        assert_eq!(
            metric("lae_kafka_messages_acknowledged_total", "mock-fenced"),
            Some(4.0)
        );
    }
}
