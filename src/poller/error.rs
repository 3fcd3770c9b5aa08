//! `poller::Error`: why a window could not be read and delivered, and whether reading it again
//! later can help.

/// A poller failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to Lacework failed.
    #[error(transparent)]
    Lacework(#[from] crate::lacework::Error),
    /// A sink refused the events.
    #[error(transparent)]
    Sink(#[from] crate::sinks::Error),
    /// The checkpoint store failed.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::Error),
    /// The window holds more records than the API returns for one query (500,000): reading it
    /// would silently miss some, so it must be read as shorter windows.
    #[error("the window holds {rows} records, more than the {cap} the API returns for one query")]
    ResultCapped {
        /// Rows the API reported (or counted).
        rows: u64,
        /// The cap.
        cap: u64,
    },
}

impl Error {
    /// Whether reading the window again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Lacework(error) => error.is_retryable(),
            Error::Sink(error) => error.is_retryable(),
            Error::Checkpoint(_) | Error::ResultCapped { .. } => false,
        }
    }

    /// Whether the API refused the window itself (400), so a shorter one may work.
    pub(crate) fn is_bad_window(&self) -> bool {
        matches!(self, Error::Lacework(error) if error.status() == Some(400))
            || matches!(self, Error::ResultCapped { .. })
    }
}
