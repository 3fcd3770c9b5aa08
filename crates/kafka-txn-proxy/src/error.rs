//! What can end a proxied connection or a log read.

use std::io;

use crate::batch::BatchError;

/// Why the proxy could not pass a request or correct a response. Every one closes the client's
/// connection: a client that reconnects and asks again is better off than one handed a fetch
/// answer the proxy could not make right.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a socket failed, or the upstream broker went away.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// A Kafka message did not decode or encode (kafka-protocol's error, flattened).
    #[error("kafka message {what}: {message}")]
    Codec { what: &'static str, message: String },
    /// A records blob in a fetch answer is not made of v2 record batches.
    #[error("records: {0}")]
    Batch(#[from] BatchError),
    /// The upstream broker answered the proxy's own request with an error code.
    #[error("upstream {what} answered error code {code}")]
    Upstream { what: &'static str, code: i16 },
    /// A Fetch answer names a topic id that the upstream broker's metadata does not know.
    #[error("topic id {0} is unknown to the upstream broker")]
    UnknownTopicId(uuid::Uuid),
    /// The upstream broker's fetch answers stay empty below its high watermark, however long
    /// the proxy lets it look.
    #[error(
        "upstream fetch of {topic}/{partition} at offset {offset} brought nothing below the high watermark {high_watermark}, even with max_wait_ms {waited:?}"
    )]
    UpstreamBehind {
        topic: String,
        partition: i32,
        offset: i64,
        high_watermark: i64,
        waited: std::time::Duration,
    },
    /// The upstream broker did not answer the proxy's own request in time.
    #[error("upstream {0} timed out")]
    Timeout(&'static str),
}

impl Error {
    /// Wraps a kafka-protocol error, which is an `anyhow::Error`.
    pub fn codec(what: &'static str, error: impl std::fmt::Display) -> Error {
        Error::Codec {
            what,
            message: format!("{error:#}"),
        }
    }
}
