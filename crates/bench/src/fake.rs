//! The fake Lacework API as a child process, and the query windows every row walks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::DateTime;

use crate::measure::Guard;

/// Records per page, as the real API.
pub const PAGE_SIZE: usize = 5000;
/// Seed of the generated records: every run serves the same data.
pub const SEED: u64 = 42;
/// Longest query window, as the exporter's `[poll] window = "7d"`.
pub const WINDOW_MS: i64 = 7 * 24 * 3_600_000;

/// Where clients reach the API and with which key: the fake itself, or a proxy in front of it.
#[derive(Debug, Clone)]
pub struct Api {
    pub base_url: String,
    pub key_id: String,
    pub secret: String,
}

/// A running fake and what clients need to talk to it.
pub struct Fake {
    /// The fake's own address and key.
    pub api: Api,
    /// How long generating the records took (until the fake printed its address).
    pub startup: Duration,
    _guard: Guard,
}

/// Starts `fake-lacework` with `records` records over the `days` days before now. With
/// `public_origin`, its nextPage links name that origin (a proxy's) instead of its own.
pub fn start(bin: &Path, records: usize, days: u32, public_origin: Option<&str>) -> Result<Fake> {
    let started = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(["--port", "0", "--records", &records.to_string()])
        .args(["--seed", &SEED.to_string(), "--days", &days.to_string()])
        .args(["--page-size", &PAGE_SIZE.to_string()]);
    if let Some(origin) = public_origin {
        cmd.args(["--public-origin", origin]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut guard = Guard::new(child, Duration::from_secs(5));
    let stdout = guard
        .child_mut()
        .stdout
        .take()
        .context("fake-lacework stdout")?;
    // The three lines come once the records exist and the port is bound: that is readiness.
    let mut lines = BufReader::new(stdout).lines();
    let mut next = |what: &str| -> Result<String> {
        match lines.next() {
            Some(line) => Ok(line?.trim().to_owned()),
            None => bail!("fake-lacework exited before printing its {what}"),
        }
    };
    let base_url = next("base URL")?;
    let key_id = next("key id")?;
    let secret = next("secret")?;
    if guard.exited() {
        bail!("fake-lacework exited right after starting");
    }
    Ok(Fake {
        api: Api {
            base_url,
            key_id,
            secret,
        },
        startup: started.elapsed(),
        _guard: guard,
    })
}

/// `yyyy-MM-ddTHH:mm:ss.SSSZ`, a query time format the API accepts.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `[from, to)` cut into windows of at most `window` ms, as inclusive `(startTime, endTime)`
/// query bounds (the API's bounds are inclusive, so each ends 1 ms before the next begins).
pub fn windows(from_ms: i64, to_ms: i64, window_ms: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = from_ms;
    while start < to_ms {
        let end = (start + window_ms).min(to_ms);
        out.push((format_ms(start), format_ms(end - 1)));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_tile_the_range() {
        let w = windows(0, 2 * WINDOW_MS + 5, WINDOW_MS);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].0, "1970-01-01T00:00:00.000Z");
        assert_eq!(w[0].1, "1970-01-07T23:59:59.999Z");
        assert_eq!(w[1].0, "1970-01-08T00:00:00.000Z");
        assert_eq!(w[2].1, "1970-01-15T00:00:00.004Z");
    }
}
