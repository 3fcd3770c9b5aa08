//! Running as a systemd service: the unit's exposure score, the sd_notify protocol (READY,
//! WATCHDOG tied to progress, RELOADING, STOPPING), SIGHUP reload, metrics, health, log formats.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use fake_lacework::Fault;

use crate::support::receiver::{Receiver, Reply};
use crate::support::*;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/systemd/lacework-audit-exporter.service"
);

#[tokio::test]
async fn the_unit_scores_1_5_or_lower_and_has_the_promised_settings() {
    let output = tokio::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", UNIT])
        .output()
        .await
        .expect("systemd-analyze runs (scripts/test.sh installs systemd when it is missing)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall score in:\n{text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    note(&format!("systemd-analyze security exposure: {score}"));
    assert!(score <= 1.5, "exposure {score} is above 1.5:\n{text}");

    let unit = std::fs::read_to_string(UNIT).unwrap();
    for setting in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/bin/lacework-audit-exporter --config /etc/lacework-audit-exporter/config.toml validate",
        "ExecReload=",
        "Restart=on-failure",
        "StateDirectory=lacework-audit-exporter",
        "LoadCredential=secret:",
        "DynamicUser=yes",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(setting)),
            "the unit lacks {setting}"
        );
    }
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
            .unwrap();
    assert!(example.contains("secret_file = \"$CREDENTIALS_DIRECTORY/secret\""));
    assert!(example.contains("path = \"/var/lib/lacework-audit-exporter/state.db\""));
}

/// `systemd-analyze security` of a unit file: the overall exposure score.
async fn exposure(unit: &std::path::Path) -> f64 {
    let output = tokio::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .await
        .expect("systemd-analyze runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|line| line.split(':').nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in:\n{text}"))
}

#[tokio::test]
async fn the_templated_unit_is_the_unit_per_instance_with_the_same_hardening() {
    let template_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/lacework-audit-exporter@.service"
    );
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let template = std::fs::read_to_string(template_path).unwrap();
    let settings = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    // Per instance: these settings name %i; every other line is the unit's, in order.
    const PER_INSTANCE: &[&str] = &[
        "Description=",
        "ExecStartPre=",
        "ExecStart=",
        "LoadCredential=",
        "StateDirectory=",
        "LogsDirectory=",
        "WorkingDirectory=",
        "SyslogIdentifier=",
    ];
    let (unit_settings, template_settings) = (settings(&unit), settings(&template));
    assert_eq!(unit_settings.len(), template_settings.len());
    for (single, instance) in unit_settings.iter().zip(&template_settings) {
        if PER_INSTANCE.iter().any(|p| single.starts_with(p)) {
            let key = single.split('=').next().unwrap();
            assert!(
                instance.starts_with(&format!("{key}=")) && instance.contains("%i"),
                "{instance:?} must be {key}= per instance"
            );
        } else {
            assert_eq!(single, instance, "the template drifted from the unit");
        }
    }
    assert!(template.contains("--config /etc/lacework-audit-exporter/%i.toml run"));
    assert!(template.contains("StateDirectory=lacework-audit-exporter/%i"));
    // An instance scores as the unit does.
    let dir = tempfile::tempdir().unwrap();
    let instance = dir.path().join("lacework-audit-exporter@soc.service");
    std::fs::write(&instance, &template).unwrap();
    let (single, per_instance) = (
        exposure(std::path::Path::new(UNIT)).await,
        exposure(&instance).await,
    );
    note(&format!(
        "systemd-analyze security: unit {single}, template instance {per_instance}"
    ));
    assert_eq!(single, per_instance);
}

/// Plays systemd's side of the notify socket./// Plays systemd's side of the notify socket.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: String,
    socket: UnixDatagram,
    /// Received but not yet looked at by `wait_for`.
    pending: std::sync::Mutex<std::collections::VecDeque<String>>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            path: path.display().to_string(),
            _dir: dir,
            socket,
            pending: Default::default(),
        }
    }

    /// Messages received within `within`.
    async fn collect(&self, within: Duration) -> Vec<(Instant, String)> {
        let socket = self.socket.try_clone().unwrap();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + within;
            let mut messages = Vec::new();
            let mut buffer = [0u8; 4096];
            while Instant::now() < deadline {
                if let Ok(n) = socket.recv(&mut buffer) {
                    messages.push((
                        Instant::now(),
                        String::from_utf8_lossy(&buffer[..n]).into_owned(),
                    ));
                }
            }
            messages
        })
        .await
        .unwrap()
    }

    /// Waits for a message starting with `prefix`; returns it and everything before it.
    async fn wait_for(&self, prefix: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let mut pending = std::mem::take(&mut *self.pending.lock().unwrap());
            while let Some(message) = pending.pop_front() {
                let done = message.starts_with(prefix);
                seen.push(message);
                if done {
                    *self.pending.lock().unwrap() = pending;
                    return seen;
                }
            }
            if Instant::now() > deadline {
                panic!("no {prefix} within {timeout:?}; got {seen:?}");
            }
            let fresh = self.collect(Duration::from_millis(200)).await;
            self.pending
                .lock()
                .unwrap()
                .extend(fresh.into_iter().map(|(_, m)| m));
        }
    }
}

fn notify_env<'a>(socket: &'a NotifySocket, watchdog_usec: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("NOTIFY_SOCKET", socket.path.as_str()),
        ("WATCHDOG_USEC", watchdog_usec),
    ]
}

fn spawn_with_env(exporter: &Exporter, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut all = vec![
        "--config".to_string(),
        exporter.config_path.display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    spawn(&all, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_then_watchdog_while_progressing_then_silence_when_a_request_hangs() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 3, 300, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            request_timeout: "30s",
            ..Cfg::default()
        },
    );
    let socket = NotifySocket::bind();
    let running = spawn_with_env(&exporter, &["run"], &notify_env(&socket, "1000000"));
    let before_ready = socket.wait_for("READY=1", Duration::from_secs(20)).await;
    assert!(
        fake.token_requests() >= 1,
        "READY=1 only after the first token"
    );
    assert!(
        !before_ready.iter().any(|m| m == "WATCHDOG=1"),
        "no keep-alive before READY: {before_ready:?}"
    );

    let healthy = socket.collect(Duration::from_millis(2500)).await;
    let keepalives = healthy.iter().filter(|(_, m)| m == "WATCHDOG=1").count();
    assert!(
        keepalives >= 3,
        "keep-alives every half timeout while progressing: {healthy:?}"
    );

    // Every further request hangs for 30 s: the loop stops progressing.
    fake.fail_next(1000, Fault::Slow(Duration::from_secs(30)));
    let _ = socket.collect(Duration::from_secs(3)).await;
    let stalled = socket.collect(Duration::from_secs(3)).await;
    assert!(
        !stalled.iter().any(|(_, m)| m == "WATCHDOG=1"),
        "keep-alives stop while a request hangs: {stalled:?}"
    );
    assert!(
        running.stderr_so_far().contains("withholding keep-alives"),
        "{}",
        running.stderr_so_far()
    );

    running.signal("TERM").await;
    let stopping = socket.wait_for("STOPPING=1", Duration::from_secs(10)).await;
    assert!(stopping.last().is_some_and(|m| m == "STOPPING=1"));
    let finished = running.wait(Duration::from_secs(10)).await;
    finished.expect_code(0);
}

/// The watchdog's notion of stuck is `/livez`'s: a sink outage being retried is alive (a
/// restart cannot bring the SIEM back), a hung request is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_keeps_alive_through_a_retried_outage_and_stops_on_a_hang() {
    let receiver = Receiver::start().await;
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 4, 300, now - DAY, now - 10 * SEC);
    let sinks = format!(
        "[[sinks]]\ntype = \"webhook\"\nurl = \"{}\"\nretry_initial = \"100ms\"\nretry_max = \"300ms\"\n",
        receiver.url("/x")
    );
    receiver.set_default(Reply::status(503));
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            request_timeout: "30s",
            sinks: Box::leak(sinks.into_boxed_str()),
            ..Cfg::default()
        },
    );
    let socket = NotifySocket::bind();
    let running = spawn_with_env(&exporter, &["run"], &notify_env(&socket, "1000000"));
    socket.wait_for("READY=1", Duration::from_secs(20)).await;
    let _ = socket.collect(Duration::from_secs(2)).await;
    let refused = socket.collect(Duration::from_secs(2)).await;
    assert!(
        refused.iter().any(|(_, m)| m == "WATCHDOG=1"),
        "a sink outage being retried is alive: {refused:?}"
    );
    let first_event = first_lifecycle_ms(&fake);
    assert!(
        exporter
            .live_checkpoint()
            .await
            .is_none_or(|c| c <= first_event),
        "the refusing sink holds the cursor"
    );

    // The sink takes everything; then every API request hangs (30 s, within its timeout).
    receiver.set_default(Reply::status(200));
    let resumed = socket.collect(Duration::from_secs(3)).await;
    assert!(
        resumed.iter().any(|(_, m)| m == "WATCHDOG=1"),
        "keep-alives go on with progress: {resumed:?}"
    );
    fake.fail_next(1000, Fault::Slow(Duration::from_secs(30)));
    let _ = socket.collect(Duration::from_secs(4)).await;
    let hung = socket.collect(Duration::from_secs(2)).await;
    assert!(
        !hung.iter().any(|(_, m)| m == "WATCHDOG=1"),
        "a hung request stops the keep-alives: {hung:?}"
    );
    running.signal("KILL").await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn with_telemetry(exporter: &Exporter, port: u16, max_lag: &str) {
    let text = exporter.config_text().replace(
        "[[sinks]]",
        &format!("[telemetry]\nlisten = \"127.0.0.1:{port}\"\nhealth_max_lag = \"{max_lag}\"\n\n[[sinks]]"),
    );
    exporter.write_config(&text);
}

async fn get(url: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match reqwest::get(url).await {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_what_was_delivered() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 5, 1500, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let port = free_port();
    with_telemetry(&exporter, port, "10m");
    let expected = fake.expected_lifecycle(now - 3 * DAY, now, None).len();
    let mut running = exporter.spawn(&["run"]);
    running
        .wait_until("every event printed", Duration::from_secs(30), |r| {
            r.lines_so_far() >= expected
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .expect("the Prometheus text parser accepts /metrics");
    let value_of = |sample: &prometheus_parse::Sample| match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    };
    let sum = |name: &str, filter: &dyn Fn(&prometheus_parse::Sample) -> bool| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && filter(s))
            .map(value_of)
            .sum()
    };
    let delivered = sum("lae_events_delivered_total", &|s| {
        s.labels.get("sink") == Some("stdout")
    });
    assert_eq!(
        delivered as usize,
        running.lines_so_far(),
        "events counted by sink and type:\n{body}"
    );
    assert!(
        sum("lae_api_requests_total", &|s| s.labels.get("status")
            == Some("200"))
            >= 1.0,
        "{body}"
    );
    assert!(
        sum("lae_api_requests_total", &|s| s.labels.get("endpoint")
            == Some("/api/v2/access/tokens"))
            >= 1.0,
        "{body}"
    );
    for name in [
        "lae_api_ratelimit_remaining",
        "lae_cursor_timestamp_seconds",
        "lae_cursor_lag_seconds",
        "lae_window_duration_seconds",
        "lae_sink_delivery_seconds_total",
        "lae_last_poll_success_timestamp_seconds",
        "lae_build_info",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "{name} missing:\n{body}"
        );
    }
    let build = scrape
        .samples
        .iter()
        .find(|s| s.metric == "lae_build_info")
        .expect("lae_build_info");
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(build.labels.get("revision"), Some(git_revision().as_str()));
    assert!(
        build
            .labels
            .get("rustc")
            .is_some_and(|r| r.starts_with("rustc ")),
        "{body}"
    );
    let (status, health) = get(&format!("http://127.0.0.1:{port}/healthz")).await;
    assert_eq!(status, 200, "{health}");
    running.signal("TERM").await;
    running.wait(Duration::from_secs(10)).await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_unhealthy_when_the_checkpoint_lags() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 6, 100, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            request_timeout: "30s",
            ..Cfg::default()
        },
    );
    let port = free_port();
    with_telemetry(&exporter, port, "6s");
    let running = exporter.spawn(&["run"]);
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&url).await;
        let committed =
            serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|h| h["cursor"].is_string());
        if status == 200 && committed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never healthy with a checkpoint: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fake.fail_next(1000, Fault::Slow(Duration::from_secs(30)));
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = get(&url).await;
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "never unhealthy: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert!(health["lag_seconds"].as_u64().unwrap() >= 6, "{health}");
    assert!(health["cursor"].is_string(), "{health}");
    assert!(
        health["reason"].as_str().unwrap().contains("lags"),
        "{health}"
    );
    running.signal("TERM").await;
    running.wait(Duration::from_secs(10)).await.expect_code(0);
}

/// Polls `url` until `wanted(status, body)` or `within` passes; the last answer.
async fn poll_until(
    url: &str,
    within: Duration,
    wanted: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = get(url).await;
        if wanted(status, &body) || Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_sink_outage_is_unready_but_alive_and_a_hang_is_not_alive() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 61, 300, now - DAY, now - 10 * SEC);
    let receiver = Receiver::start().await;
    receiver.set_default(Reply::status(503));
    let sinks = format!(
        "[[sinks]]\ntype = \"webhook\"\nname = \"siem\"\nurl = \"{}\"\nretry_initial = \"200ms\"\nretry_max = \"8s\"\n",
        receiver.url("/ingest")
    );
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            request_timeout: "30s",
            sinks: Box::leak(sinks.into_boxed_str()),
            ..Cfg::default()
        },
    );
    let port = free_port();
    let text = exporter.config_text().replace(
        "[[sinks]]",
        &format!("[telemetry]\nlisten = \"127.0.0.1:{port}\"\nhealth_max_lag = \"5s\"\nstuck_after = \"10s\"\n\n[[sinks]]"),
    );
    exporter.write_config(&text);
    let running = exporter.spawn(&["run"]);
    let base = format!("http://127.0.0.1:{port}");

    // The SIEM refuses everything for longer than stuck_after: not ready, yet alive (a restart
    // would not bring the SIEM back).
    let (status, body) = poll_until(
        &format!("{base}/readyz"),
        Duration::from_secs(20),
        |s, b| s == 503 && b.contains("siem"),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["sinks_down"], serde_json::json!(["siem"]), "{ready}");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (status, body) = get(&format!("{base}/livez")).await;
    assert_eq!(
        status, 200,
        "alive through a sink outage longer than stuck_after: {body}"
    );
    let (status, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 503, "/healthz is /readyz");
    assert!(receiver.requests().len() >= 3, "the batch was retried");

    // The SIEM is back: ready again.
    receiver.set_default(Reply::status(200));
    let (status, body) = poll_until(
        &format!("{base}/readyz"),
        Duration::from_secs(20),
        |s, _| s == 200,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A request that hangs (longer than stuck_after, within its own timeout) is a hang.
    fake.fail_next(1000, Fault::Slow(Duration::from_secs(30)));
    let (status, body) = poll_until(&format!("{base}/livez"), Duration::from_secs(25), |s, _| {
        s == 503
    })
    .await;
    assert_eq!(status, 503, "a hung request must count as stuck: {body}");
    assert!(body.contains("stuck"), "{body}");
    running.signal("KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_configuration_and_keeps_the_position() {
    let fake = start_fake(200).await;
    let now = now_ms();
    // The history ends well before the overlap re-read, so switching to include = "all"
    // cannot surface old non-lifecycle records.
    generate(&fake, 8, 400, now - DAY, now - 5 * MIN);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let socket = NotifySocket::bind();
    let expected = fake.expected_lifecycle(now - 3 * DAY, now, None).len();
    let mut running = spawn_with_env(&exporter, &["run"], &notify_env(&socket, "0"));
    running
        .wait_until("the history delivered", Duration::from_secs(30), |r| {
            r.lines_so_far() >= expected
        })
        .await;
    let checkpoint = exporter.live_checkpoint().await.expect("a checkpoint");

    exporter.write_config(
        &exporter
            .config_text()
            .replace("include = \"lifecycle\"", "include = \"all\""),
    );
    running.signal("HUP").await;
    let messages = socket
        .wait_for("RELOADING=1", Duration::from_secs(10))
        .await;
    assert!(messages.iter().any(|m| m.starts_with("RELOADING=1")));
    socket.wait_for("READY=1", Duration::from_secs(10)).await;

    let record = fake_lacework::FakeRecord::other(
        "Alert Channel Created",
        "ACME",
        "ops@acme.com",
        at(now_ms() - 500),
    );
    fake.insert(record);
    running
        .wait_until(
            "an AUDIT event after the reload",
            Duration::from_secs(20),
            |r| r.events_so_far().iter().any(|e| e["type"] == "AUDIT"),
        )
        .await;
    let events = running.events_so_far();
    let audits = events.iter().filter(|e| e["type"] == "AUDIT").count();
    assert_eq!(
        audits, 1,
        "only the new record: the position was kept, history not re-read"
    );
    let ids: Vec<&str> = events.iter().map(id_of).collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        "no event twice"
    );
    assert!(exporter.live_checkpoint().await.unwrap() >= checkpoint);

    // An invalid configuration on reload is refused and the exporter keeps running.
    exporter.write_config("[lacework]\nwindow = 1\n");
    running.signal("HUP").await;
    running
        .wait_until("the refusal logged", Duration::from_secs(10), |r| {
            r.stderr_so_far().contains("keeping the previous one")
        })
        .await;
    assert!(!running.exited());
    running.signal("TERM").await;
    running.wait(Duration::from_secs(10)).await.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_suit_journald_and_json_shippers() {
    let fake = start_fake(200).await;
    let now = now_ms();
    generate(&fake, 9, 50, now - DAY, now - 10 * SEC);
    let exporter = Exporter::new(&fake, &Cfg::default());
    let mut args = vec![
        "--config".to_string(),
        exporter.config_path.display().to_string(),
    ];
    args.extend(["run".to_string(), "--once".to_string()]);
    let journald = spawn(&args, &[("JOURNAL_STREAM", "8:12345")])
        .wait(TIMEOUT)
        .await;
    journald.expect_code(0);
    assert!(!journald.stderr.is_empty());
    for line in journald.stderr.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "journald lines start with a priority: {line:?}"
        );
        let after_prefix = &line[3..];
        assert!(
            !after_prefix.starts_with(&rfc3339(now)[..4]) && !after_prefix.starts_with("INFO"),
            "no timestamp or level word of our own (journald adds them): {line:?}"
        );
    }
    let json = exporter
        .run(&["--log-format", "json", "run", "--once"])
        .await;
    json.expect_code(0);
    assert!(!json.stderr.is_empty());
    for line in json.stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(
            value["level"].is_string() && value["message"].is_string(),
            "{value}"
        );
    }
}

/// The checkout's revision as `build.rs` records it (`unknown` outside git).
fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_the_revision_and_the_target() {
    let shown = run_bin(&["--version"], &[]).await;
    shown.expect_code(0);
    let expected = format!(
        "lacework-audit-exporter {} (revision {}, ",
        env!("CARGO_PKG_VERSION"),
        git_revision()
    );
    assert!(shown.stdout.starts_with(&expected), "{shown}");
    assert!(
        shown.stdout.contains("-linux-"),
        "the target triple: {shown}"
    );
}
