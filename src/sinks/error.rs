//! `sinks::Error`: a delivery failure, and whether waiting and retrying can help.

use std::time::Duration;

/// A sink failure. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The destination is unavailable for now (down, overloaded, timing out).
    #[error("sink {sink}: {message}")]
    Unavailable {
        /// The sink's name.
        sink: String,
        /// What happened.
        message: String,
        /// A wait the destination asked for.
        retry_after: Option<Duration>,
    },
    /// Retrying will not help: an operator must act (closed stdout, refused credentials,
    /// a rejected payload).
    #[error("sink {sink}: {message}")]
    Fatal {
        /// The sink's name.
        sink: String,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// A failure retrying cannot fix, of sink `sink`.
    pub fn fatal(sink: &str, message: String) -> Error {
        Error::Fatal {
            sink: sink.to_string(),
            message,
        }
    }

    /// A failure that may heal, of sink `sink`, with no wait asked for.
    pub fn unavailable(sink: &str, message: String) -> Error {
        Error::Unavailable {
            sink: sink.to_string(),
            message,
            retry_after: None,
        }
    }

    /// Whether the same batch may be accepted later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// A wait the destination asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => *retry_after,
            Error::Fatal { .. } => None,
        }
    }
}
