//! `exporter::Error`: why a command could not start or stopped, and whether it was the
//! configuration's fault (which `cli` maps to exit code 2) or the world's (exit code 1).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// A failure of the composition root or the daemon.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The file could not be read, or is invalid.
    #[error("invalid configuration")]
    Config(#[source] ConfigError),
    /// A secret or key file named by the configuration could not be read or is invalid.
    #[error("invalid configuration {path}")]
    Credentials {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ConfigError,
    },
    /// A classification rule does not compile.
    #[error("invalid events.rules")]
    Rules(#[source] regex::Error),
    /// `classify`'s input is not audit records.
    #[error("cannot read the records: {0}")]
    Input(String),
    /// A sink could not be built from its configuration (a credential file, a certificate).
    #[error("invalid sink configuration")]
    SinkConfig(#[source] crate::sinks::Error),
    /// `--sink` named no configured sink.
    #[error("--sink {name}: no sink has that name (configured: {known})")]
    UnknownSink {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        known: String,
    },
    /// The state database could not be opened.
    #[error("cannot open the state database")]
    State(#[source] crate::checkpoint::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] crate::lacework::Error),
    /// A sink's connectivity check failed in a way waiting will not heal.
    #[error("sink healthcheck failed")]
    SinkHealth(#[source] crate::sinks::Error),
    /// The API key could not be exchanged for a token at start.
    #[error("cannot obtain an access token")]
    Token(#[source] crate::lacework::Error),
    /// `validate --online`: the API key was refused or the API unreachable.
    #[error("the API key does not work")]
    ApiKey(#[source] crate::lacework::Error),
    /// The telemetry listener could not bind.
    #[error("cannot listen on telemetry.listen = {address}")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The live walk stopped on an error retrying will not heal.
    #[error("export stopped")]
    Export(#[source] crate::poller::Error),
    /// A replay stopped on an error; its progress is saved.
    #[error("replay stopped; `replay --resume` continues it")]
    Replay(#[source] crate::poller::Error),
    /// A sink did not flush at exit.
    #[error("closing the sinks")]
    Close(#[source] crate::sinks::Error),
}

impl Error {
    /// Whether the Lacework API refused in a way waiting cannot heal: the API key was refused
    /// (disabled, deleted, or its creator is no longer an admin) or a `nextPage` link pointed
    /// at another host. `cli` gives this its own exit code, which the shipped unit lists in
    /// `RestartPreventExitStatus=`.
    pub(crate) fn is_api_refusal(&self) -> bool {
        match self {
            Error::Token(error) => error.is_fatal(),
            Error::Export(error) | Error::Replay(error) => error.is_fatal_api_refusal(),
            _ => false,
        }
    }

    /// Whether the configuration (or a file it names) is at fault: nothing was started.
    pub(crate) fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Config(_)
                | Error::Credentials { .. }
                | Error::Rules(_)
                | Error::SinkConfig(_)
                | Error::UnknownSink { .. }
                | Error::Input(_)
        )
    }
}
