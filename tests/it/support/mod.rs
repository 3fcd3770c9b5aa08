//! The harness: a fake Lacework API with generated history, configuration files in temporary
//! directories, the exporter binary run as a child process (always under a timeout), and the
//! checks that compare what it printed with the fake's ground truth.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fake_lacework::{FakeConfig, FakeLacework, FakeRecord, GenerateSpec, format_millis};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The exporter binary Cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_lacework-audit-exporter");

/// The longest any single exporter invocation may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The event schema tag.
pub const SCHEMA: &str = "lacework-audit-exporter/v1";

/// Milliseconds in a second, minute, hour and day.
pub const SEC: i64 = 1000;
pub const MIN: i64 = 60 * SEC;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;

/// Environment variables the exporter reads; removed from every child so the developer's
/// shell cannot change what a test sees.
const SCRUBBED_ENV: &[&str] = &[
    "RUST_LOG",
    "LACEWORK_AUDIT_EXPORTER_CONFIG",
    "LACEWORK_AUDIT_EXPORTER_LOG",
    "JOURNAL_STREAM",
    "CREDENTIALS_DIRECTORY",
];

/// Wall-clock now in epoch milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Epoch milliseconds as a UTC datetime.
pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("time in range")
}

/// `2026-11-01T09:15:02.123Z`, the exporter's event time format (and a valid CLI time).
pub fn rfc3339(ms: i64) -> String {
    format_millis(ms)
}

/// Parses an RFC 3339 time into epoch milliseconds.
pub fn parse_time(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .timestamp_millis()
}

/// Prints a figure worth reading in the test log (`--nocapture`).
#[expect(
    clippy::print_stderr,
    reason = "figures the suite reports to its reader"
)]
pub fn note(text: &str) {
    eprintln!("[it] {text}");
}

/// Starts a fake with the given page size and the default key.
pub async fn start_fake(page_size: usize) -> FakeLacework {
    FakeLacework::start(FakeConfig {
        page_size,
        ..FakeConfig::default()
    })
    .await
    .expect("the fake Lacework API starts")
}

/// Adds `count` deterministic records created in `[start_ms, end_ms)` over the three default
/// accounts.
pub fn generate(fake: &FakeLacework, seed: u64, count: usize, start_ms: i64, end_ms: i64) {
    let added = fake.generate(&GenerateSpec {
        seed,
        count,
        start: at(start_ms),
        end: at(end_ms),
        ..GenerateSpec::default()
    });
    assert_eq!(added, count);
}

/// When the earliest lifecycle record the fake holds was created: a checkpoint at or before it
/// has not passed anything undelivered.
pub fn first_lifecycle_ms(fake: &FakeLacework) -> i64 {
    fake.records()
        .iter()
        .filter(|r| r.expected_type.is_some())
        .map(|r| r.created_ms)
        .min()
        .expect("the fake holds lifecycle records")
}

/// Every record (lifecycle or not) created in `[from_ms, to_ms)`.
pub fn records_in(fake: &FakeLacework, from_ms: i64, to_ms: i64) -> Vec<FakeRecord> {
    fake.records()
        .into_iter()
        .filter(|r| r.created_ms >= from_ms && r.created_ms < to_ms)
        .collect()
}

/// Settings of the configuration file a test writes; `Cfg::default()` is the brief's template
/// with organization access on (every account's records).
#[derive(Clone, Debug)]
pub struct Cfg {
    pub org_access: bool,
    pub sub_account: Option<&'static str>,
    pub token_ttl: Option<&'static str>,
    pub retry_initial: &'static str,
    pub retry_max: &'static str,
    pub max_retries: u32,
    pub request_timeout: &'static str,
    pub interval: &'static str,
    pub window: &'static str,
    pub settle: &'static str,
    pub lookback: &'static str,
    pub overlap: &'static str,
    pub include: &'static str,
    /// The `[[sinks]]` tables, verbatim.
    pub sinks: &'static str,
    /// The secret written to the secret file; `None` means the fake's own (the right one).
    pub secret: Option<String>,
    /// More `[lacework]` lines, verbatim (e.g. `rate_limit = "16/4s"`).
    pub extra_lacework: &'static str,
    /// More `[poll]` lines, verbatim (e.g. `resweep = "2h"`).
    pub extra_poll: &'static str,
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg {
            org_access: true,
            sub_account: None,
            token_ttl: None,
            retry_initial: "100ms",
            retry_max: "1s",
            max_retries: 8,
            request_timeout: "5s",
            interval: "1s",
            window: "6h",
            settle: "2s",
            lookback: "3d",
            overlap: "1m",
            include: "lifecycle",
            sinks: "[[sinks]]\ntype = \"stdout\"\n",
            secret: None,
            extra_lacework: "",
            extra_poll: "",
        }
    }
}

impl Cfg {
    /// The TOML text for a fake at `base_url`.
    pub fn render(&self, fake: &FakeLacework, secret_file: &str, state_path: &str) -> String {
        let mut lacework = format!(
            "[lacework]\nbase_url = \"{}\"\nkey_id = \"{}\"\nsecret_file = \"{secret_file}\"\n",
            fake.base_url(),
            fake.config().key_id
        );
        if self.org_access {
            lacework.push_str("org_access = true\n");
        }
        if let Some(sub_account) = self.sub_account {
            lacework.push_str(&format!("sub_account = \"{sub_account}\"\n"));
        }
        if let Some(ttl) = self.token_ttl {
            lacework.push_str(&format!("token_ttl = \"{ttl}\"\n"));
        }
        lacework.push_str(&format!(
            "retry_initial = \"{}\"\nretry_max = \"{}\"\nmax_retries = {}\nrequest_timeout = \"{}\"\n",
            self.retry_initial, self.retry_max, self.max_retries, self.request_timeout
        ));
        lacework.push_str(self.extra_lacework);
        format!(
            "{lacework}\n[poll]\ninterval = \"{}\"\nwindow = \"{}\"\nsettle = \"{}\"\nlookback = \"{}\"\noverlap = \"{}\"\n{}\n[state]\npath = \"{state_path}\"\n\n[events]\ninclude = \"{}\"\n\n{}",
            self.interval,
            self.window,
            self.settle,
            self.lookback,
            self.overlap,
            self.extra_poll,
            self.include,
            self.sinks
        )
    }
}

/// One exporter installation: a temporary directory with its configuration, secret file and
/// state database.
pub struct Exporter {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub secret_path: PathBuf,
    pub state_path: PathBuf,
}

impl Exporter {
    /// Writes the configuration for `fake`.
    pub fn new(fake: &FakeLacework, cfg: &Cfg) -> Exporter {
        let dir = tempfile::tempdir().expect("temporary directory");
        let exporter = Exporter {
            config_path: dir.path().join("config.toml"),
            secret_path: dir.path().join("secret"),
            state_path: dir.path().join("state.db"),
            dir,
        };
        exporter.configure(fake, cfg);
        exporter
    }

    /// Rewrites configuration and secret file (the state database stays).
    pub fn configure(&self, fake: &FakeLacework, cfg: &Cfg) {
        let secret = cfg
            .secret
            .clone()
            .unwrap_or_else(|| fake.config().secret.clone());
        std::fs::write(&self.secret_path, format!("{secret}\n")).expect("secret written");
        let text = cfg.render(
            fake,
            &self.secret_path.display().to_string(),
            &self.state_path.display().to_string(),
        );
        self.write_config(&text);
    }

    /// Replaces the configuration file with `text`.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("config written");
    }

    /// The configuration text as written.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.config_path).expect("config readable")
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            "--config".to_string(),
            self.config_path.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// Runs the exporter with `--config` and `args` to completion.
    pub async fn run(&self, args: &[&str]) -> Finished {
        spawn(&self.args(args), &[]).wait(TIMEOUT).await
    }

    /// Starts the exporter with `--config` and `args` in the background.
    pub fn spawn(&self, args: &[&str]) -> Running {
        spawn(&self.args(args), &[])
    }

    /// Runs the exporter with `--config` and `args` to completion under a pseudo-terminal
    /// (util-linux `script`), standard output redirected to `stdout_file`. The `Finished`'s
    /// `stdout` is what the terminal showed: the exporter's standard error, with the
    /// terminal's `\r\n` line ends.
    pub async fn run_in_terminal(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdout_file: &std::path::Path,
    ) -> Finished {
        let mut line = format!("exec {}", shell_quote(BIN));
        for arg in self.args(args) {
            line.push(' ');
            line.push_str(&shell_quote(&arg));
        }
        line.push_str(&format!(
            " > {}",
            shell_quote(&stdout_file.display().to_string())
        ));
        let mut command = Command::new("script");
        command
            .args(["-qfec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let started = Instant::now();
        let output = tokio::time::timeout(TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("`script -c {line}` did not exit within {TIMEOUT:?}"))
            .expect("script(1) from util-linux runs");
        Finished {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
            args: vec!["script".into(), "-qfec".into(), line],
        }
    }

    /// `state show --json`, parsed.
    pub async fn state(&self) -> Value {
        let shown = self.run(&["state", "show", "--json"]).await;
        shown.expect_code(0);
        serde_json::from_str(&shown.stdout)
            .unwrap_or_else(|e| panic!("state show --json printed no JSON ({e}): {shown}"))
    }

    /// The live stream's checkpoint (epoch ms), if it has one.
    pub async fn live_checkpoint(&self) -> Option<i64> {
        live_checkpoint(&self.state().await)
    }
}

/// `text` as one single-quoted word for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The rows a terminal shows after `output`: `\r` returns to the row's start, `ESC [ K`
/// erases to its end, and other text overwrites from the cursor on.
pub fn terminal_rows(output: &str) -> Vec<String> {
    output
        .split('\n')
        .map(|raw| {
            let mut row: Vec<char> = Vec::new();
            let mut column = 0;
            let mut chars = raw.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\r' => column = 0,
                    '\x1b' => {
                        // Only `ESC [ K` is expected; any other sequence is kept visible.
                        let sequence: String = chars.clone().take(2).collect();
                        if sequence == "[K" {
                            chars.nth(1);
                            row.truncate(column);
                        } else {
                            row.push('^');
                            column = row.len();
                        }
                    }
                    _ => {
                        if column < row.len() {
                            row[column] = c;
                        } else {
                            row.push(c);
                        }
                        column += 1;
                    }
                }
            }
            row.into_iter().collect()
        })
        .collect()
}

/// The entry of `state show --json` for this configuration's live stream.
pub fn live_entry(state: &Value) -> Option<&Value> {
    let live = state["live_stream"]
        .as_str()
        .unwrap_or_else(|| panic!("state show --json has no live_stream: {state}"));
    state["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("state show --json has no streams array: {state}"))
        .iter()
        .find(|s| s["stream"] == live)
}

/// Whether `state show --json` shows no live checkpoint and no remembered ids (the ledger may
/// list the window that was being read).
pub fn nothing_committed(state: &Value) -> bool {
    live_entry(state).is_none_or(|entry| {
        entry["checkpoint"].is_null() && entry["remembered_ids"].as_u64() == Some(0)
    })
}

/// The live checkpoint in `state show --json`, if any.
pub fn live_checkpoint(state: &Value) -> Option<i64> {
    live_entry(state)
        .and_then(|entry| entry["checkpoint"].as_str())
        .map(parse_time)
}

/// Runs the exporter with exactly `args` (no `--config` added) and extra environment.
pub async fn run_bin(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    spawn(&args, env).wait(TIMEOUT).await
}

/// Starts the binary with piped output that is collected in the background.
pub fn spawn(args: &[String], env: &[(&str, &str)]) -> Running {
    spawn_with(args, env, false)
}

/// Starts the binary with the read end of its stdout closed: a consumer that went away.
pub fn spawn_with_closed_stdout(args: &[String]) -> Running {
    spawn_with(args, &[], true)
}

fn spawn_with(args: &[String], env: &[(&str, &str)], close_stdout: bool) -> Running {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the exporter binary starts");
    let pid = child.id().expect("a running child has a pid");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let stdout_paused = Arc::new(AtomicBool::new(false));
    let mut readers = vec![pump(
        child.stderr.take().expect("stderr piped"),
        Arc::clone(&stderr),
        Arc::new(AtomicBool::new(false)),
    )];
    let child_stdout = child.stdout.take().expect("stdout piped");
    if close_stdout {
        drop(child_stdout);
    } else {
        readers.push(pump(
            child_stdout,
            Arc::clone(&stdout),
            Arc::clone(&stdout_paused),
        ));
    }
    Running {
        child,
        pid,
        stdout,
        stderr,
        stdout_paused,
        readers,
        started: Instant::now(),
        args: args.to_vec(),
    }
}

/// Copies `source` into `into` until EOF; while `paused` is set nothing is read, so the
/// writer blocks once the pipe is full (a slow consumer).
fn pump(
    mut source: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    paused: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            if paused.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            match source.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buffer[..n]),
            }
        }
    })
}

fn text_of(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// A running exporter.
pub struct Running {
    child: Child,
    pid: u32,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout_paused: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
    args: Vec<String>,
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops (or resumes) reading stdout: the exporter's writes block once the pipe is full.
    pub fn pause_stdout(&self, paused: bool) {
        self.stdout_paused.store(paused, Ordering::SeqCst);
    }

    /// Events on complete stdout lines so far.
    pub fn events_so_far(&self) -> Vec<Value> {
        let text = text_of(&self.stdout);
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        parse_lines(complete, false, &self.args)
    }

    /// How many complete lines stdout has so far.
    pub fn lines_so_far(&self) -> usize {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }

    /// Standard error so far.
    pub fn stderr_so_far(&self) -> String {
        text_of(&self.stderr)
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with kill(1).
    pub async fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .await
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    /// Polls `condition` every 20 ms until it holds; fails the test on timeout or when the
    /// process exits first.
    pub async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Running) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self) {
                return;
            }
            if self.exited() {
                // Output may still be in the pipe; look once more before giving up.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if condition(self) {
                    return;
                }
                panic!(
                    "the exporter exited before {what}; args {:?}\nstderr:\n{}",
                    self.args,
                    tail(&self.stderr_so_far())
                );
            }
            if Instant::now() > deadline {
                let _ = self.child.start_kill();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; args {:?}\nstderr:\n{}",
                    self.args,
                    tail(&self.stderr_so_far())
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit, killing it and failing the test after `timeout`.
    pub async fn wait(mut self, timeout: Duration) -> Finished {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the exporter"),
            Err(_) => {
                self.pause_stdout(false);
                let _ = self.child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
                panic!(
                    "the exporter did not exit within {timeout:?}; killed it. args {:?}\nstderr:\n{}",
                    self.args,
                    tail(&self.stderr_so_far())
                );
            }
        };
        // What a paused reader left in the pipe is still output of the run.
        self.pause_stdout(false);
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        Finished {
            code: status.code(),
            stdout: text_of(&self.stdout),
            stderr: text_of(&self.stderr),
            elapsed: self.started.elapsed(),
            args: self.args.clone(),
        }
    }
}

/// The last 60 lines of a log, for failure messages.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A finished exporter run.
pub struct Finished {
    /// Exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub args: Vec<String>,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "args {:?}, exit {:?} after {:?}\nstdout ({} bytes):\n{}\nstderr:\n{}",
            self.args,
            self.code,
            self.elapsed,
            self.stdout.len(),
            tail(&self.stdout.chars().take(4000).collect::<String>()),
            tail(&self.stderr)
        )
    }
}

impl Finished {
    /// Fails the test unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Finished {
        assert_eq!(self.code, Some(code), "unexpected exit code: {self}");
        self
    }

    /// Every stdout line as an event; fails when any line is not one.
    pub fn events(&self) -> Vec<Value> {
        parse_lines(&self.stdout, false, &self.args)
    }

    /// Like `events`, but a killed process may have cut its last line short.
    pub fn events_allowing_cut_tail(&self) -> Vec<Value> {
        parse_lines(&self.stdout, true, &self.args)
    }
}

fn parse_lines(text: &str, allow_cut_tail: bool, args: &[String]) -> Vec<Value> {
    let lines: Vec<&str> = text.lines().collect();
    let mut events = Vec::with_capacity(lines.len());
    for (idx, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(event) if event.is_object() && event["schema"] == SCHEMA => events.push(event),
            _ if allow_cut_tail && idx + 1 == lines.len() && !text.ends_with('\n') => {}
            _ => panic!(
                "stdout line {} of {args:?} is not an event: {:?}",
                idx + 1,
                line.chars().take(300).collect::<String>()
            ),
        }
    }
    events
}

/// A canonical text of a JSON value (object keys sorted), for comparing records as keys.
pub fn canon(value: &Value) -> String {
    // serde_json's map may keep insertion order; write the text by hand in key order.
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(key.as_str()).to_string());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// The key an event is matched to ground truth by: its `raw` record.
pub fn event_key(event: &Value) -> String {
    canon(&event["raw"])
}

/// The key of a ground-truth record.
pub fn record_key(record: &FakeRecord) -> String {
    canon(&record.json)
}

/// The event's id.
pub fn id_of(event: &Value) -> &str {
    event["id"].as_str().unwrap_or("")
}

/// Fields every event has, in the v1 schema.
const EVENT_FIELDS: [&str; 11] = [
    "schema",
    "id",
    "type",
    "time",
    "account",
    "actor",
    "target",
    "action",
    "description",
    "source",
    "raw",
];

/// Problems with one event's shape (schema, id, fields copied from `raw`).
pub fn shape_problems(event: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = event.as_object() else {
        return vec![format!("not an object: {event}")];
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut wanted = EVENT_FIELDS.to_vec();
    wanted.sort_unstable();
    if keys != wanted {
        problems.push(format!("fields {keys:?}, expected {wanted:?}"));
    }
    if event["schema"] != SCHEMA {
        problems.push(format!("schema {}", event["schema"]));
    }
    if event["source"] != "audit" {
        problems.push(format!("source {}, expected \"audit\"", event["source"]));
    }
    let id = id_of(event);
    if id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        problems.push(format!(
            "id {:?} is not 32 lowercase hex digits",
            event["id"]
        ));
    }
    let raw = &event["raw"];
    for (field, source) in [
        ("account", "accountName"),
        ("actor", "userName"),
        ("action", "userAction"),
        ("description", "eventDescription"),
    ] {
        if !raw[source].is_null() && event[field] != raw[source] {
            problems.push(format!(
                "{field} {} differs from raw.{source} {}",
                event[field], raw[source]
            ));
        }
    }
    problems
}

/// Asserts that `events` hold every `expected` record exactly once and nothing else, each
/// with the ground truth's type (AUDIT for records without a lifecycle type), target (for
/// lifecycle records), time and raw record. Returns the id of each record key.
pub fn assert_exactly_once(
    events: &[Value],
    expected: &[FakeRecord],
    what: &str,
) -> HashMap<String, String> {
    let mut problems: Vec<String> = Vec::new();
    for event in events {
        for problem in shape_problems(event) {
            problems.push(format!("bad event ({problem}): {event}"));
        }
    }
    let mut seen_ids: HashMap<&str, usize> = HashMap::new();
    for event in events {
        *seen_ids.entry(id_of(event)).or_default() += 1;
    }
    let duplicate_ids: Vec<(&&str, &usize)> = seen_ids.iter().filter(|(_, n)| **n > 1).collect();
    for (id, n) in duplicate_ids.iter().take(5) {
        problems.push(format!("id {id} emitted {n} times"));
    }
    let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
    for event in events {
        by_key.entry(event_key(event)).or_default().push(event);
    }
    let mut wanted: HashMap<String, Vec<&FakeRecord>> = HashMap::new();
    for record in expected {
        wanted.entry(record_key(record)).or_default().push(record);
    }
    let mut n_missing = 0usize;
    let mut n_extra = 0usize;
    let mut n_mismatched = 0usize;
    let mut ids = HashMap::new();
    for (key, records) in &wanted {
        let got = by_key.get(key).map_or(&[][..], Vec::as_slice);
        if got.len() < records.len() {
            n_missing += records.len() - got.len();
            if n_missing <= 5 {
                problems.push(format!(
                    "missing ({} of {} emitted): {key}",
                    got.len(),
                    records.len()
                ));
            }
        } else if got.len() > records.len() {
            n_extra += got.len() - records.len();
            if n_extra <= 5 {
                problems.push(format!(
                    "emitted {} times, expected {}: {key}",
                    got.len(),
                    records.len()
                ));
            }
        }
        let record = records[0];
        for event in got {
            let mismatch = record_mismatch(event, record);
            if let Some(mismatch) = mismatch {
                n_mismatched += 1;
                if n_mismatched <= 10 {
                    problems.push(format!("{mismatch}; record {key}"));
                }
            }
        }
        if let Some(event) = got.first() {
            ids.insert(key.clone(), id_of(event).to_string());
        }
    }
    for (key, got) in &by_key {
        if !wanted.contains_key(key) {
            n_extra += got.len();
            if n_extra <= 10 {
                problems.push(format!(
                    "unexpected event (not in the expected set) type {}: {key}",
                    got[0]["type"]
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} events for {} expected records; {n_missing} missing, {n_extra} extra or repeated, {} duplicate ids, {n_mismatched} with wrong fields. First problems:\n{}",
        events.len(),
        expected.len(),
        duplicate_ids.len(),
        problems.join("\n")
    );
    ids
}

/// How an event differs from its ground-truth record, if it does.
pub fn record_mismatch(event: &Value, record: &FakeRecord) -> Option<String> {
    let want_type = record.expected_type.as_deref().unwrap_or("AUDIT");
    let mut out = Vec::new();
    if event["type"] != want_type {
        out.push(format!("type {} instead of {want_type}", event["type"]));
    }
    if record.expected_type.is_some() {
        let want_target = record
            .expected_target
            .as_deref()
            .map_or(Value::Null, Value::from);
        if event["target"] != want_target {
            out.push(format!(
                "target {} instead of {want_target}",
                event["target"]
            ));
        }
    }
    let want_time = rfc3339(record.created_ms);
    if event["time"] != want_time.as_str() {
        out.push(format!("time {} instead of {want_time}", event["time"]));
    }
    if event["raw"] != record.json {
        out.push(format!("raw {} instead of {}", event["raw"], record.json));
    }
    (!out.is_empty()).then(|| out.join(", "))
}

/// The set of record keys in `events`, with how often each occurs.
pub fn key_counts(events: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events {
        *counts.entry(event_key(event)).or_default() += 1;
    }
    counts
}

/// The ids in `events`.
pub fn id_set(events: &[Value]) -> HashSet<String> {
    events.iter().map(|e| id_of(e).to_string()).collect()
}

/// Records when each request reached the fake (sampled every 5 ms), since the fake's request
/// log has no timestamps.
pub struct RequestClock {
    times: Arc<Mutex<Vec<Instant>>>,
    task: JoinHandle<()>,
}

impl RequestClock {
    /// Starts sampling `fake.requests()`.
    pub fn start(fake: &FakeLacework) -> RequestClock {
        let times = Arc::new(Mutex::new(Vec::new()));
        let fake = fake.clone();
        let sampled = Arc::clone(&times);
        let task = tokio::spawn(async move {
            loop {
                let n = fake.requests().len();
                {
                    let mut times = sampled.lock().unwrap_or_else(|p| p.into_inner());
                    let now = Instant::now();
                    while times.len() < n {
                        times.push(now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        RequestClock { times, task }
    }

    /// Arrival time of request `index` of `fake.requests()`.
    pub fn time_of(&self, index: usize) -> Instant {
        self.times.lock().unwrap_or_else(|p| p.into_inner())[index]
    }
}

impl Drop for RequestClock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a logged request went to the AuditLogs endpoint (first page or nextPage).
pub fn is_audit_logs(request: &fake_lacework::RequestLog) -> bool {
    request.path.starts_with("/api/v2/AuditLogs")
}

/// Whether a logged request was a token exchange.
pub fn is_token_exchange(request: &fake_lacework::RequestLog) -> bool {
    request.path == "/api/v2/access/tokens"
}

/// Fails the test unless event times never decrease (batches are sorted and walked in order).
pub fn assert_time_ordered(events: &[Value], what: &str) {
    let times: Vec<&str> = events.iter().filter_map(|e| e["time"].as_str()).collect();
    if let Some(i) = (1..times.len()).find(|&i| parse_time(times[i]) < parse_time(times[i - 1])) {
        panic!(
            "{what}: event {i} at {} comes after an event at {}",
            times[i],
            times[i - 1]
        );
    }
}

/// Waits until the exporter has stopped sending AuditLogs requests for `quiet` (it is blocked,
/// e.g. on a full stdout pipe).
pub async fn wait_for_quiet_api(fake: &FakeLacework, quiet: Duration, timeout: Duration) {
    let n_audit = || fake.requests().iter().filter(|r| is_audit_logs(r)).count();
    let deadline = Instant::now() + timeout;
    let (mut seen, mut since) = (n_audit(), Instant::now());
    while since.elapsed() < quiet {
        assert!(
            Instant::now() < deadline,
            "the exporter kept sending requests for {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = n_audit();
        if n != seen {
            (seen, since) = (n, Instant::now());
        }
    }
}

pub mod elasticsearch;
pub mod hec;
pub mod kafka;
pub mod receiver;
pub mod sentinel;
