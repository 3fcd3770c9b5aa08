//! One exporter `replay` per sink: its configuration, the measured run, and what its logs say.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::fake::Api;
use crate::measure::{self, Cost};

/// The log line of a committed window (`pages=`, `n_events=` fields).
const WINDOW_LINE: &str = "Window delivered and committed.";
/// The debug log line of a token exchange.
const TOKEN_LINE: &str = "Access token obtained.";

/// What one exporter run cost and did, as measured and as logged.
pub struct Run {
    pub cost: Cost,
    /// Pages fetched, summed over the windows' `pages=` log fields.
    pub pages: u64,
    /// Token exchanges (debug log lines).
    pub tokens: u64,
    /// Events delivered, summed over the windows' `n_events=` log fields.
    pub logged_events: u64,
}

impl Run {
    /// Requests made to the fake: the pages plus the token exchanges.
    pub fn requests(&self) -> u64 {
        self.pages + self.tokens
    }
}

/// Writes the API key secret to `dir/secret` (mode 0600, as the exporter wants it) and
/// returns that path.
pub fn write_secret(dir: &Path, secret: &str) -> Result<PathBuf> {
    let secret_path = dir.join("secret");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&secret_path)?;
    std::io::Write::write_all(&mut f, secret.as_bytes())?;
    Ok(secret_path)
}

/// `s` as a TOML basic string (a JSON string is one, for the text the bench writes).
pub fn toml_string(s: &str) -> String {
    Value::from(s).to_string()
}

/// What a replay reads, and from where.
pub struct Target<'a> {
    pub api: &'a Api,
    /// `--from` and `--to`, as the exporter takes them (`40d`, `now`, RFC 3339).
    pub from: &'a str,
    pub to: &'a str,
    /// More `[lacework]` keys, one per line (or empty).
    pub lacework_extra: &'a str,
}

/// Writes the configuration for one sink (`sink_toml` is its `[[sinks]]` table) in `dir`.
fn write_config(dir: &Path, target: &Target<'_>, sink_toml: &str) -> Result<PathBuf> {
    let api = target.api;
    let secret_path = write_secret(dir, &api.secret)?;
    let config = format!(
        "[lacework]\n\
         base_url = {base}\n\
         key_id = {key}\n\
         secret_file = {secret}\n\
         org_access = true\n\
         {extra}\
         \n\
         [poll]\n\
         window = \"7d\"\n\
         \n\
         [state]\n\
         path = {state}\n\
         \n\
         [events]\n\
         include = \"all\"\n\
         \n\
         {sink_toml}",
        base = toml_string(&api.base_url),
        key = toml_string(&api.key_id),
        extra = target.lacework_extra,
        secret = toml_string(&secret_path.to_string_lossy()),
        state = toml_string(&dir.join("state.db").to_string_lossy()),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// Runs `exporter replay --from FROM --to TO` with stdout going to `stdout`.
pub fn replay(
    bin: &Path,
    dir: &Path,
    target: &Target<'_>,
    sink_toml: &str,
    stdout: Stdio,
) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    let config = write_config(dir, target, sink_toml)?;
    let log_path = dir.join("exporter.log");
    let log = File::create(&log_path)?;
    let (status, cost) = measure::run(
        Command::new(bin)
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "json"])
            .args([
                "--log-level",
                "info,lacework_audit_exporter::lacework::auth=debug",
            ])
            .args(["replay", "--from", target.from, "--to", target.to])
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("LACEWORK_AUDIT_EXPORTER_LOG")
            .env_remove("LACEWORK_AUDIT_EXPORTER_CONFIG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log),
    )?;
    let mut run = Run {
        cost,
        pages: 0,
        tokens: 0,
        logged_events: 0,
    };
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(File::open(&log_path)?).lines() {
        let line = line?;
        if let Ok(entry) = serde_json::from_str::<Value>(&line) {
            match entry["message"].as_str() {
                Some(WINDOW_LINE) => {
                    run.pages += entry["pages"].as_u64().unwrap_or(0);
                    run.logged_events += entry["n_events"].as_u64().unwrap_or(0);
                }
                Some(TOKEN_LINE) => run.tokens += 1,
                _ => {}
            }
        }
        tail.push(line);
        if tail.len() > 20 {
            tail.remove(0);
        }
    }
    if !status.success() {
        bail!(
            "the exporter failed ({status}); the end of its log ({}):\n{}",
            log_path.display(),
            tail.join("\n")
        );
    }
    Ok(run)
}

/// Counts newline-terminated lines of a file.
pub fn count_lines(path: &Path) -> Result<u64> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = std::io::Read::read(&mut file, &mut buf)?;
        if got == 0 {
            return Ok(n);
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// Counts the lines of a file sink's output: `path` and its rotated files `path.1`,
/// `path.2`, ... (logrotate's names, as the file sink rotates). Returns the lines and how
/// many files held them.
pub fn count_rotated_lines(path: &Path) -> Result<(u64, u32)> {
    let mut n_lines = count_lines(path)?;
    let mut n_files = 1;
    loop {
        let rotated = rotated_path(path, n_files);
        if !rotated.is_file() {
            return Ok((n_lines, n_files));
        }
        n_lines += count_lines(&rotated)?;
        n_files += 1;
    }
}

/// Deletes `path` and its rotated files (`path.1`, ...), whichever exist.
pub fn remove_rotated(path: &Path) {
    let _ = std::fs::remove_file(path);
    for n in 1.. {
        if std::fs::remove_file(rotated_path(path, n)).is_err() {
            return;
        }
    }
}

/// `path` with `.n` appended, the name of its `n`th rotated file.
fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}
