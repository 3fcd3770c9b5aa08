//! The Kafka sink: one message per event through an idempotent librdkafka producer; a batch is
//! acknowledged only when the brokers acknowledged every message of it.

mod classify;
mod config;
mod health;
mod record;
mod sink;
mod topic;
mod transactional;

pub use config::{KafkaConfig, KafkaKey};
pub use sink::KafkaSink;
pub use topic::TopicTemplate;
