//! `poller::Error`: why a window could not be read and delivered, and whether reading it again
//! later can help.

/// A poller failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A window could not be read and delivered; nothing of it past what was acknowledged
    /// is committed.
    #[error("{kind} window [{start}, {end}) not delivered")]
    Window {
        /// `live`, `resweep` or `replay`.
        kind: &'static str,
        /// Its start (RFC 3339).
        start: String,
        /// Its end.
        end: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
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
    /// `error`, naming the window it happened in.
    pub(crate) fn in_window(
        kind: crate::checkpoint::WindowKind,
        window: crate::poller::window::Window,
        error: Error,
    ) -> Error {
        if matches!(error, Error::Window { .. }) {
            return error;
        }
        let time = |ms| crate::time::format_time_ms(ms).unwrap_or_else(|| ms.to_string());
        Error::Window {
            kind: kind.as_str(),
            start: time(window.start_ms),
            end: time(window.end_ms),
            source: Box::new(error),
        }
    }

    /// The error inside any window context.
    fn cause(&self) -> &Error {
        match self {
            Error::Window { source, .. } => source.cause(),
            other => other,
        }
    }

    /// Whether waiting cannot heal this: the API key was refused or the API pointed the
    /// token at another host.
    pub fn is_fatal_api_refusal(&self) -> bool {
        matches!(self.cause(), Error::Lacework(error) if error.is_fatal())
    }

    /// Whether reading the window again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self.cause() {
            Error::Window { .. } => unreachable!("cause() unwraps windows"),
            Error::Lacework(error) => error.is_retryable(),
            Error::Sink(error) => error.is_retryable(),
            Error::Checkpoint(_) | Error::ResultCapped { .. } => false,
        }
    }

    /// Whether the API refused the window itself (400), so a shorter one may work.
    pub(crate) fn is_bad_window(&self) -> bool {
        let cause = self.cause();
        matches!(cause, Error::Lacework(error) if error.status() == Some(400))
            || matches!(cause, Error::ResultCapped { .. })
    }
}
