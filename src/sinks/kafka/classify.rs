//! What a librdkafka error means for the sink: stop (an operator must act), recreate the
//! producer, count a timeout, or wait and retry.

use rdkafka::error::RDKafkaErrorCode;

/// The sink's reading of an error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Retrying cannot help; the message says what to change.
    Fatal(String),
    /// The idempotent producer is unusable (fenced, lost its sequence, fatal error); a new
    /// producer can go on.
    Recreate,
    /// The message was not acknowledged within `delivery_timeout`.
    TimedOut,
    /// Anything else: wait and retry.
    Retry,
}

/// What the error means; `topic` and `mechanism` make fatal messages specific.
pub fn classify(code: RDKafkaErrorCode, topic: &str, mechanism: Option<&str>) -> Class {
    use RDKafkaErrorCode as Code;
    let mechanism = mechanism.unwrap_or("(sasl.mechanisms not set)");
    match code {
        Code::TopicAuthorizationFailed => Class::Fatal(format!(
            "not authorized to write to topic {topic}: grant the exporter's principal WRITE and DESCRIBE on it"
        )),
        Code::ClusterAuthorizationFailed => Class::Fatal(
            "not authorized on the cluster: an idempotent producer needs IDEMPOTENT_WRITE on the cluster; grant it, or set enable.idempotence = false"
                .into(),
        ),
        Code::SaslAuthenticationFailed | Code::Authentication | Code::IllegalSASLState => Class::Fatal(format!(
            "SASL authentication failed with mechanism {mechanism}: check sasl.username, password_file and sasl.mechanisms"
        )),
        Code::UnsupportedSASLMechanism => Class::Fatal(format!(
            "the brokers do not support SASL mechanism {mechanism}: set sasl.mechanisms to one they enable"
        )),
        Code::MessageSizeTooLarge | Code::InvalidMessageSize => Class::Fatal(format!(
            "an event is larger than the largest message topic {topic} or the producer accepts: raise message.max.bytes (producer) and max.message.bytes (topic)"
        )),
        Code::InvalidTopic => Class::Fatal(format!("the brokers refuse {topic} as a topic name")),
        Code::InvalidRequiredAcks => Class::Fatal("the brokers refuse the acks setting".into()),
        Code::Fatal
        | Code::OutOfOrderSequenceNumber
        | Code::UnknownProducerId
        | Code::InvalidProducerEpoch
        | Code::InvalidProducerIdMapping
        | Code::ProducerFenced
        | Code::Fenced
        | Code::Inconsistent => Class::Recreate,
        Code::MessageTimedOut | Code::RequestTimedOut | Code::TimedOutQueue => Class::TimedOut,
        _ => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: RDKafkaErrorCode, expected: &str) {
        let class = classify(code, "lacework.audit", Some("SCRAM-SHA-512"));
        let got = match &class {
            Class::Fatal(message) => format!("fatal: {message}"),
            Class::Recreate => "recreate".into(),
            Class::TimedOut => "timed out".into(),
            Class::Retry => "retry".into(),
        };
        assert!(
            got.starts_with(expected) || got.contains(expected),
            "{code:?}: {got}"
        );
    }

    #[test]
    fn classification_table() {
        check(
            RDKafkaErrorCode::TopicAuthorizationFailed,
            "topic lacework.audit",
        );
        check(
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            "IDEMPOTENT_WRITE",
        );
        check(
            RDKafkaErrorCode::SaslAuthenticationFailed,
            "mechanism SCRAM-SHA-512",
        );
        check(
            RDKafkaErrorCode::Authentication,
            "fatal: SASL authentication failed",
        );
        check(
            RDKafkaErrorCode::UnsupportedSASLMechanism,
            "do not support SASL mechanism SCRAM-SHA-512",
        );
        check(RDKafkaErrorCode::MessageSizeTooLarge, "message.max.bytes");
        check(RDKafkaErrorCode::OutOfOrderSequenceNumber, "recreate");
        check(RDKafkaErrorCode::UnknownProducerId, "recreate");
        check(RDKafkaErrorCode::ProducerFenced, "recreate");
        check(RDKafkaErrorCode::Fatal, "recreate");
        check(RDKafkaErrorCode::MessageTimedOut, "timed out");
        check(RDKafkaErrorCode::AllBrokersDown, "retry");
        check(RDKafkaErrorCode::BrokerTransportFailure, "retry");
        check(RDKafkaErrorCode::NotEnoughReplicas, "retry");
        check(RDKafkaErrorCode::UnknownTopicOrPartition, "retry");
        check(RDKafkaErrorCode::QueueFull, "retry");
    }
}
