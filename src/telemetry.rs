//! Logging setup: structured logs on standard error, never on standard output.
//!
//! Under journald (`$JOURNAL_STREAM` set) lines carry no timestamp (the journal adds its own)
//! and start with a syslog priority prefix such as `<4>`, which journald turns into the
//! entry's priority, so `journalctl -p warning` works.
//!
//! A `StatusLine` (a replay's progress on a terminal) stays below the logs: log lines and the
//! status line share one lock, so each log line first erases the status line, is written
//! whole, and the status line is drawn again under it. Whether to draw one at all is `cli`'s
//! decision; nothing here looks at the terminal.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; under journald without timestamps and with priority prefixes.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Erases the terminal line the cursor is on: back to its start, then clear to its end.
const ERASE_LINE: &str = "\r\x1b[K";

/// One line kept at the bottom of standard error, below the log lines (a replay's progress).
/// Clones share the line. While nothing is drawn, log lines are written as they are.
#[derive(Debug, Clone, Default)]
pub struct StatusLine {
    /// The line on screen now, if any, behind the lock that log lines take too.
    shown: Arc<Mutex<Option<String>>>,
}

impl StatusLine {
    /// Draws `line` in place of the one shown (no newline: the next draw overwrites it).
    pub fn draw(&self, line: &str) {
        let mut shown = self.lock();
        write_stderr(&format!("{ERASE_LINE}{line}"));
        *shown = Some(line.to_string());
    }

    /// Erases the line; `last`, when given, is written in its place and stays (with a
    /// newline), like a log line.
    pub fn finish(&self, last: Option<&str>) {
        let mut shown = self.lock();
        let mut text = String::new();
        if shown.take().is_some() {
            text.push_str(ERASE_LINE);
        }
        if let Some(last) = last {
            text.push_str(last);
            text.push('\n');
        }
        write_stderr(&text);
    }

    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        self.shown.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes to standard error, ignoring failure: there is nowhere left to report it.
fn write_stderr(text: &str) {
    if !text.is_empty() {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// The log writer: standard error, with the status line erased before each log line and
/// drawn again after it.
struct LogWriter {
    status_line: StatusLine,
}

/// One log line being written, holding the status line's lock until it is drawn again.
struct LogLine<'a> {
    shown: MutexGuard<'a, Option<String>>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> LogLine<'a> {
        let shown = self.status_line.lock();
        if shown.is_some() {
            write_stderr(ERASE_LINE);
        }
        LogLine { shown }
    }
}

impl Write for LogLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Drop for LogLine<'_> {
    fn drop(&mut self) {
        if let Some(line) = self.shown.as_deref() {
            write_stderr(line);
        }
    }
}

/// Installs the global subscriber. `filter` is an `EnvFilter` directive such as `info` or
/// `lacework_audit_exporter=debug`; log lines keep clear of `status_line`.
pub fn init(
    filter: &str,
    format: LogFormat,
    under_journald: bool,
    status_line: &StatusLine,
) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| format!("invalid log filter {filter:?}: {error}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter {
            status_line: status_line.clone(),
        })
        .with_target(false)
        .with_ansi(false);
    let result = match (format, under_journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder
            .event_format(SyslogPriority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_target(false)
                    .with_level(false),
            ))
            .try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    result.map_err(|error| format!("cannot install the logger: {error}"))
}

/// Prefixes each line with its syslog priority: `<3>` error, `<4>` warning, `<6>` info,
/// `<7>` debug and trace.
struct SyslogPriority<F>(F);

fn priority(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

impl<S, N, F> FormatEvent<S, N> for SyslogPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(priority(*event.metadata().level()))?;
        self.0.format_event(context, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(Level::ERROR), "<3>");
        assert_eq!(priority(Level::WARN), "<4>");
        assert_eq!(priority(Level::INFO), "<6>");
        assert_eq!(priority(Level::TRACE), "<7>");
    }
}
