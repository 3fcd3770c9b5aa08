//! The sink's view of its brokers (up, down, refused), fed by deliveries and by librdkafka's
//! callbacks, logged once per change of state and exported as `lae_sink_up{sink}` (also set
//! by `SinkSet` after each delivery; this module adds the changes seen while a batch waits).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::sinks::kafka::classify::{Class, classify};

/// State shared between the sink and its producer's callbacks (which run on librdkafka's
/// threads, so everything here is synchronous and short).
#[derive(Debug)]
pub struct Health {
    sink: String,
    mechanism: Option<String>,
    link: Mutex<Link>,
    /// An error an operator must fix, seen by a callback (SASL failure, authorization).
    refused: Mutex<Option<String>>,
    /// librdkafka raised a fatal error: the producer must be recreated.
    producer_fatal: AtomicBool,
    /// How often librdkafka reported every broker down.
    all_brokers_down: AtomicU64,
    /// The last error text librdkafka reported, for messages.
    last_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Unknown,
    Up,
    Down,
}

impl Health {
    /// The state of sink `sink` using SASL `mechanism`, if any.
    pub fn new(sink: String, mechanism: Option<String>) -> Health {
        Health {
            sink,
            mechanism,
            link: Mutex::new(Link::Unknown),
            refused: Mutex::new(None),
            producer_fatal: AtomicBool::new(false),
            all_brokers_down: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The brokers acknowledged something: logs the recovery once.
    pub fn set_up(&self) {
        let previous = std::mem::replace(&mut *lock(&self.link), Link::Up);
        if previous == Link::Down {
            tracing::info!(sink = %self.sink, "Kafka brokers acknowledge messages again.");
        }
        if previous != Link::Up {
            crate::metrics::emit::sink_up(&self.sink, true);
        }
    }

    /// The brokers do not acknowledge: logs the outage once.
    pub fn set_down(&self, reason: &str) {
        let previous = std::mem::replace(&mut *lock(&self.link), Link::Down);
        if previous != Link::Down {
            tracing::warn!(
                sink = %self.sink,
                reason,
                "Kafka brokers are not acknowledging; holding the batch and retrying until they do."
            );
            crate::metrics::emit::sink_up(&self.sink, false);
        }
    }

    /// An error an operator must fix, if a callback saw one.
    pub fn refused(&self) -> Option<String> {
        lock(&self.refused).clone()
    }

    /// Takes the "producer must be recreated" flag.
    pub fn take_producer_fatal(&self) -> bool {
        self.producer_fatal.swap(false, Ordering::SeqCst)
    }

    /// How often every broker was reported down so far.
    pub fn all_brokers_down_count(&self) -> u64 {
        self.all_brokers_down.load(Ordering::SeqCst)
    }

    /// The last error librdkafka reported, if any.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// The configured SASL mechanism.
    pub fn mechanism(&self) -> Option<&str> {
        self.mechanism.as_deref()
    }

    /// Reads an error librdkafka reported outside any message.
    fn on_client_error(&self, code: Option<RDKafkaErrorCode>, reason: &str) {
        *lock(&self.last_error) = Some(reason.to_string());
        let Some(code) = code else {
            tracing::debug!(sink = %self.sink, error = reason, "Kafka client error.");
            return;
        };
        match classify(code, "", self.mechanism()) {
            Class::Fatal(message) => {
                tracing::debug!(sink = %self.sink, error = reason, "Kafka client refused.");
                lock(&self.refused).get_or_insert(format!("{message} ({reason})"));
            }
            Class::Recreate => {
                tracing::debug!(sink = %self.sink, error = reason, "Kafka producer hit a fatal error.");
                self.producer_fatal.store(true, Ordering::SeqCst);
            }
            Class::TimedOut | Class::Retry => {
                if code == RDKafkaErrorCode::AllBrokersDown {
                    self.all_brokers_down.fetch_add(1, Ordering::SeqCst);
                }
                tracing::debug!(sink = %self.sink, error = reason, "Kafka client error.");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The producer's librdkafka context: routes its logs to `tracing` and its errors to
/// `Health`.
pub struct KafkaContext {
    health: std::sync::Arc<Health>,
}

impl KafkaContext {
    /// A context reporting into `health`.
    pub fn new(health: std::sync::Arc<Health>) -> KafkaContext {
        KafkaContext { health }
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Outages are reported by `Health`, once per change of state; librdkafka's own lines
        // repeat on every reconnect, so they stay at DEBUG. Configuration warnings are the
        // exception: they are printed once, when the producer is created.
        let sink = self.health.sink.as_str();
        if fac == "CONFWARN" {
            tracing::warn!(
                sink,
                message = log_message,
                "librdkafka configuration warning."
            );
        } else if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::debug!(target: "librdkafka", sink, fac, message = log_message, "librdkafka warning.");
        } else {
            tracing::trace!(target: "librdkafka", sink, fac, message = log_message, "librdkafka log.");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.health
            .on_client_error(error.rdkafka_error_code(), reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_change_once_and_show_in_the_gauge() {
        let health = Health::new("health-test".into(), Some("PLAIN".into()));
        let gauge = || crate::metrics::global().value("lae_sink_up", &[("sink", "health-test")]);
        assert_eq!(gauge(), None);
        health.set_down("paused");
        health.set_down("still paused");
        assert_eq!(gauge(), Some(0.0));
        health.set_up();
        assert_eq!(gauge(), Some(1.0));
        health.on_client_error(
            Some(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert_eq!(health.all_brokers_down_count(), 1);
        assert_eq!(health.refused(), None);
        health.on_client_error(
            Some(RDKafkaErrorCode::Authentication),
            "SASL authentication error",
        );
        let refused = health.refused().unwrap();
        assert!(
            refused.contains("mechanism PLAIN") && refused.contains("SASL authentication error"),
            "{refused}"
        );
        assert!(!health.take_producer_fatal());
        health.on_client_error(
            Some(RDKafkaErrorCode::Fatal),
            "fatal idempotent producer error",
        );
        assert!(health.take_producer_fatal());
        assert!(!health.take_producer_fatal());
    }
}
