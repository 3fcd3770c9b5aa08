//! `lacework::Error`: what went wrong talking to the API, and whether retrying can help.

use std::time::Duration;

/// An API failure. Messages never contain the secret or the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token exchange or a call was refused for credentials (after one token refresh).
    #[error("authentication failed ({status}) at {endpoint}: {message}")]
    Auth {
        /// HTTP status.
        status: u16,
        /// Path of the endpoint.
        endpoint: String,
        /// Lacework's `message`.
        message: String,
    },
    /// A non-success status other than authentication.
    #[error("{endpoint} answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Path of the endpoint.
        endpoint: String,
        /// Lacework's `message`, or the start of the body.
        message: String,
        /// A wait the server asked for (429, 503).
        retry_after: Option<Duration>,
    },
    /// A client that cannot be built from its settings (nothing was sent).
    #[error("{message}")]
    Setup {
        /// What is wrong.
        message: String,
    },
    /// The body of a success answer was not what the API documents (an HTML page from a
    /// proxy, truncated JSON): retried like a 5xx, since such answers pass.
    #[error("cannot decode the answer of {endpoint}: {message}")]
    Decode {
        /// Path of the endpoint.
        endpoint: String,
        /// What was wrong.
        message: String,
    },
    /// Connection, timeout or truncated-body failure.
    #[error("request to {endpoint} failed: {source}")]
    Transport {
        /// Path of the endpoint.
        endpoint: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A `nextPage` URL pointing off the configured API origin; no request was sent to it.
    #[error(
        "refusing to follow nextPage {url}: {reason}; the bearer token is only ever sent to {origin}"
    )]
    UnsafeNextPage {
        /// The URL as received.
        url: String,
        /// What differs.
        reason: String,
        /// The configured origin.
        origin: String,
    },
    /// The same `nextPage` URL came back twice.
    #[error("nextPage {url} came back twice: the API is paging in a loop")]
    PagingLoop {
        /// The repeated URL.
        url: String,
    },
    /// A `nextPage` URL expired or is unknown to the server (404 while paging): the window
    /// must be read again from its first page.
    #[error("nextPage {url} is no longer valid ({message}): the window will be read again")]
    PageExpired {
        /// The URL.
        url: String,
        /// Lacework's `message`.
        message: String,
    },
}

impl Error {
    /// Whether the same request may succeed if sent again after a wait: 429, 408, 5xx other
    /// than 501, timeouts, connection failures and success answers with a bad body.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Status { status, .. } => {
                matches!(status, 408 | 429) || (*status >= 500 && *status != 501)
            }
            Error::Transport { .. } | Error::Decode { .. } => true,
            Error::Auth { .. }
            | Error::Setup { .. }
            | Error::UnsafeNextPage { .. }
            | Error::PagingLoop { .. }
            | Error::PageExpired { .. } => false,
        }
    }

    /// Whether reading the window again later may succeed (the daemon keeps running);
    /// otherwise an operator must act.
    pub fn is_retryable(&self) -> bool {
        !self.is_fatal()
    }

    /// Whether waiting cannot heal this: the key was refused (disabled, deleted, or its
    /// creator lost admin rights) or the API pointed the token at another host. The daemon
    /// stops with its own exit code so the service manager does not restart it into the same
    /// refusal.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Auth { .. } | Error::UnsafeNextPage { .. } | Error::Setup { .. }
        )
    }

    /// A wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Auth { status, .. } | Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Error {
        Error::Status {
            status: code,
            endpoint: "/api/v2/AuditLogs".into(),
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn retryability_follows_the_status() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 403, 404, 405, 409, 501] {
            assert!(!status(code).is_transient(), "{code}");
        }
        let auth = Error::Auth {
            status: 401,
            endpoint: "x".into(),
            message: String::new(),
        };
        assert!(!auth.is_retryable() && auth.is_fatal());
        let bad_body = Error::Decode {
            endpoint: "x".into(),
            message: String::new(),
        };
        assert!(bad_body.is_transient(), "an HTML page answered 200 passes");
        let expired = Error::PageExpired {
            url: "u".into(),
            message: String::new(),
        };
        assert!(!expired.is_transient() && expired.is_retryable());
    }
}
