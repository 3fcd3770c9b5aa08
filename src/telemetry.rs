//! Logging setup: structured logs on standard error, never on standard output.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; timestamps left out under journald, which adds its own.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber. `filter` is an `EnvFilter` directive such as `info` or
/// `lacework_audit_exporter=debug`; `under_journald` drops timestamps and colours.
pub fn init(filter: &str, format: LogFormat, under_journald: bool) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| format!("invalid log filter {filter:?}: {error}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match (format, under_journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.with_ansi(false).try_init(),
    };
    result.map_err(|error| format!("cannot install the logger: {error}"))
}
