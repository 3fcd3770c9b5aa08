//! The exporter as a daemon (`run`) child of the bench, its JSON log read line by line by a
//! thread, so a bench can tell when it caught up and count what it logged (`requests.rs`,
//! `idle.rs`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::measure::Guard;

/// The exporter's debug line once the live walk has nothing left to read: one per poll.
pub const CAUGHT_UP_LINE: &str = "Caught up; waiting for the next poll.";
/// The info line of each committed window (`pages=` field).
pub const WINDOW_LINE: &str = "Window delivered and committed.";
/// The debug line of a re-sweep's start.
pub const RESWEEP_LINE: &str = "Re-sweep started.";
/// The debug line of a token exchange.
pub const TOKEN_LINE: &str = "Access token obtained.";

/// A temporary directory for one bench (`lae-bench-{name}-…`) holding a copy of the exporter
/// from `bins`, so a rebuild in target/release during the run cannot swap the binary.
pub fn snapshot_exporter(name: &str, bins: &Path) -> Result<(tempfile::TempDir, PathBuf)> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("lae-bench-{name}-"))
        .tempdir()?;
    let exporter_bin = tmp.path().join("lacework-audit-exporter");
    std::fs::copy(bins.join("lacework-audit-exporter"), &exporter_bin)
        .context("copying lacework-audit-exporter")?;
    Ok((tmp, exporter_bin))
}

/// Prints each distinct WARN or ERROR the exporter logged, once, in the order first logged.
pub fn print_warnings(lines: &[LogLine]) {
    let mut warnings: Vec<String> = Vec::new();
    for line in lines
        .iter()
        .filter(|l| l.level == "WARN" || l.level == "ERROR")
    {
        let text = format!("{} {}", line.level, line.message);
        if !warnings.contains(&text) {
            warnings.push(text);
        }
    }
    for warning in &warnings {
        println!("exporter logged: {warning}");
    }
}

/// Starts `bin --config CONFIG run` with the poller and token exchanges at debug level (the
/// lines above), stdout discarded and the log kept in `dir/exporter.log`. The guard stops it.
pub fn spawn_run(bin: &Path, config: &Path, dir: &Path) -> Result<(Guard, ExporterLog)> {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json"])
        .args([
            "--log-level",
            "info,lacework_audit_exporter::poller=debug,lacework_audit_exporter::lacework::auth=debug",
        ])
        .arg("run")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LACEWORK_AUDIT_EXPORTER_LOG")
        .env_remove("LACEWORK_AUDIT_EXPORTER_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stderr = child.stderr.take().context("exporter stderr")?;
    let guard = Guard::new(child, Duration::from_secs(5));
    let log = ExporterLog::start(stderr, &dir.join("exporter.log"))?;
    Ok((guard, log))
}

/// One line of the exporter's JSON log that the bench cares about.
pub struct LogLine {
    pub at: Instant,
    pub level: String,
    pub message: String,
    /// The `stream` field (the account's stream), if any.
    pub stream: String,
    pub pages: u64,
}

/// The exporter's stderr, read by a thread: every line goes to a file, parsed lines are kept.
pub struct ExporterLog {
    lines: Arc<Mutex<Vec<LogLine>>>,
    path: PathBuf,
}

impl ExporterLog {
    fn start(stderr: std::process::ChildStderr, path: &Path) -> Result<ExporterLog> {
        let mut file = File::create(path)?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let _ = writeln!(file, "{line}");
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
                    let parsed = LogLine {
                        at,
                        level: text("level"),
                        message: text("message"),
                        stream: text("stream"),
                        pages: entry["pages"].as_u64().unwrap_or(0),
                    };
                    kept.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(parsed);
                }
            }
        });
        Ok(ExporterLog {
            lines,
            path: path.to_owned(),
        })
    }

    /// When the exporter first logged `message`.
    pub fn first(&self, message: &str) -> Option<Instant> {
        self.lock()
            .iter()
            .find(|l| l.message == message)
            .map(|l| l.at)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LogLine>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When `n` distinct streams had logged `message`, if they have.
    pub fn nth_stream(&self, message: &str, n: usize) -> Option<Instant> {
        let mut streams: Vec<&str> = Vec::new();
        let lines = self.lock();
        for line in lines.iter().filter(|l| l.message == message) {
            if !streams.contains(&line.stream.as_str()) {
                streams.push(&line.stream);
                if streams.len() >= n {
                    return Some(line.at);
                }
            }
        }
        None
    }

    /// How many distinct streams have logged `message`.
    pub fn streams(&self, message: &str) -> usize {
        let mut streams: Vec<String> = Vec::new();
        for line in self.lock().iter().filter(|l| l.message == message) {
            if !streams.contains(&line.stream) {
                streams.push(line.stream.clone());
            }
        }
        streams.len()
    }

    /// The last lines of the raw log, for error messages.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}
