//! Chaos: the daemon killed with SIGKILL over and over at random moments while the API answers
//! 429, 5xx, dropped connections and expired tokens and the webhook receiver is slow or
//! refusing, with four sinks at once; each sink is then judged against a reference run for
//! what it lost and what it holds twice.
//!
//! It runs with every `cargo test` (about a minute). `LAE_CHAOS_SEED` replays another schedule
//! of kills and faults.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake_lacework::{FakeLacework, Fault};
use serde_json::Value;

use crate::support::kafka::Broker;
use crate::support::receiver::{Receiver, Reply};
use crate::support::*;

/// Audit records the fake holds, spread over the day before the test.
const N_RECORDS: usize = 20_000;

/// Daemons started and killed with SIGKILL before the final `run --once`.
const N_KILLS: usize = 22;

/// The schedule's seed when `LAE_CHAOS_SEED` is not set.
const DEFAULT_SEED: u64 = 0x00c4_a05e;

/// Records per AuditLogs page: 40 pages for the history, about two to a one-hour window.
const PAGE_SIZE: usize = 500;

/// Rotated file sink files kept; more than the run can fill, so none is deleted.
const ROTATE_KEEP: u32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_9_loses_nothing_and_repeats_nothing() {
    let started = Instant::now();
    let seed = std::env::var("LAE_CHAOS_SEED")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut rng = fastrand::Rng::with_seed(seed);

    let fake = start_fake(PAGE_SIZE).await;
    let now = now_ms();
    generate(&fake, 77, N_RECORDS, now - DAY, now - 10 * SEC);
    let receiver = Receiver::start().await;
    let broker = Broker::start_transactional().await;
    let topic = format!("lae-chaos.{}", std::process::id());
    broker.create_topic(&topic, 3).await;
    let out_dir = tempfile::tempdir().expect("temporary directory");
    let file_path = out_dir.path().join("events.ndjson");
    let exporter = Exporter::new(
        &fake,
        &Cfg {
            // The shortest lifetime the exporter accepts; `expire_tokens_after_pages` below
            // makes tokens die in the middle of a window's pages, which a 1 minute TTL
            // alone would not in a process that lives a few seconds.
            token_ttl: Some("1m"),
            retry_initial: "50ms",
            retry_max: "500ms",
            lookback: "25h",
            window: "1h",
            include: "all",
            sinks: leak(all_sinks(&file_path, &receiver, &broker, &topic)),
            ..Cfg::default()
        },
    );

    // 1. Daemons killed at random moments, under faults re-armed before each start.
    let mut cycles: Vec<Cycle> = Vec::with_capacity(N_KILLS);
    for cycle_idx in 0..N_KILLS {
        let faults = arm_faults(&fake, &mut rng);
        let receiver_mood = set_receiver_mood(&receiver, &mut rng);
        let lifetime = Duration::from_millis(rng.u64(300..=4000));
        let n_requests_before = fake.requests().len();
        let mut daemon = exporter.spawn(&["run"]);
        tokio::time::sleep(lifetime).await;
        if daemon.exited() {
            let finished = daemon.wait(TIMEOUT).await;
            panic!(
                "cycle {cycle_idx}: the daemon exited on its own before the kill (faults {faults}, receiver {receiver_mood}): {finished}"
            );
        }
        daemon.signal("KILL").await;
        let killed = daemon.wait(Duration::from_secs(10)).await;
        assert_eq!(
            killed.code, None,
            "cycle {cycle_idx}: ended by the signal: {killed}"
        );
        cycles.push(Cycle {
            lifetime,
            faults,
            receiver_mood,
            n_pages: fake.requests()[n_requests_before..]
                .iter()
                .filter(|r| is_audit_logs(r) && r.status == 200)
                .count(),
            n_file: read_file_sink(&file_path).ids.len(),
            n_webhook: accepted_ids(&receiver).len(),
            killed,
        });
    }

    // 2. The API and the receiver heal; one last run must finish the history.
    fake.clear_faults();
    fake.expire_tokens_after_pages(0);
    receiver.set_delay(Duration::ZERO);
    let last = exporter.run(&["run", "--once"]).await;
    last.expect_code(0);

    // 3. The ground truth: a fresh exporter's `run --once` with the stdout sink alone.
    let reference = Exporter::new(
        &fake,
        &Cfg {
            lookback: "25h",
            include: "all",
            ..Cfg::default()
        },
    );
    let reference_run = reference.run(&["run", "--once"]).await;
    reference_run.expect_code(0);
    let reference_events = reference_run.events();
    assert_exactly_once(&reference_events, &fake.records(), "the reference run");
    let expected = id_set(&reference_events);

    // 4. Each sink against it.
    let file = read_file_sink(&file_path);
    let file_tally = Tally::of(&expected, file.ids.iter().map(String::as_str));
    let committed = broker.read_topic_committed(&topic).await;
    let kafka_tally = Tally::of(
        &expected,
        committed
            .iter()
            .map(|m| m.value["id"].as_str().unwrap_or("")),
    );
    let webhook = WebhookTally::of(&expected, &receiver);
    let mut stdout_ids: Vec<String> = Vec::new();
    for finished in cycles.iter().map(|c| &c.killed).chain([&last]) {
        let events = finished.events_allowing_cut_tail();
        stdout_ids.extend(events.iter().map(|e| id_of(e).to_string()));
    }
    let stdout_tally = Tally::of(&expected, stdout_ids.iter().map(String::as_str));

    let n_mid_work = cycles
        .iter()
        .filter(|c| c.n_file < expected.len() || c.n_webhook < expected.len())
        .count();
    let n_paging = cycles.iter().filter(|c| c.n_pages > 0).count();
    note(&format!(
        "chaos: {N_KILLS} kills ({n_mid_work} before every sink held everything, {n_paging} after pages came), {} records, {} events; file lost {} dup {} ({} files, {} torn lines); kafka(read_committed) lost {} dup {}; webhook lost {} dup {} after dedup ({} raw, {} requests); stdout lost {} dup {}; seed {seed}, {:.0?}",
        fake.record_count(),
        expected.len(),
        file_tally.lost,
        file_tally.duplicates,
        file.n_files,
        file.torn.len(),
        kafka_tally.lost,
        kafka_tally.duplicates,
        webhook.tally.lost,
        webhook.tally.duplicates,
        webhook.raw_duplicates,
        webhook.n_requests,
        stdout_tally.lost,
        stdout_tally.duplicates,
        started.elapsed()
    ));

    let diagnosis = || diagnose(&cycles, &last);
    // A kill during startup, or once every sink holds everything, tests little: most must
    // land in between.
    assert!(
        n_mid_work * 2 >= N_KILLS && n_paging * 3 >= N_KILLS,
        "only {n_mid_work} of {N_KILLS} kills landed before the sinks held everything, {n_paging} after pages came: the chaos tested little\n{}",
        diagnosis()
    );
    assert!(
        file.torn.is_empty(),
        "the file sink holds lines that are not events: {:?}\n{}",
        file.torn,
        diagnosis()
    );
    for (sink, tally) in [
        ("file", &file_tally),
        ("kafka (read_committed)", &kafka_tally),
        ("webhook (deduplicated by webhook-id)", &webhook.tally),
    ] {
        tally.assert_exactly_once(sink, &diagnosis);
    }
    assert_eq!(
        (stdout_tally.lost, stdout_tally.foreign),
        (0, 0),
        "stdout (every process's output together) lost events or printed unknown ones: {stdout_tally:?}\n{}",
        diagnosis()
    );
}

/// A `&'static str` for `Cfg::sinks`.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// The four sinks: stdout, a rotating file, a webhook to `receiver` and exactly-once Kafka.
fn all_sinks(file_path: &Path, receiver: &Receiver, broker: &Broker, topic: &str) -> String {
    format!(
        r#"[[sinks]]
type = "stdout"

[[sinks]]
type = "file"
name = "file"
path = "{file_path}"
rotate_size = "4MiB"
rotate_keep = {ROTATE_KEEP}

[[sinks]]
type = "webhook"
name = "siem"
url = "{url}"
format = "ndjson"
batch_max_events = 250
retry_initial = "100ms"
retry_max = "500ms"
timeout = "5s"

[[sinks]]
type = "kafka"
name = "bus"
brokers = "{brokers}"
topic = "{topic}"
exactly_once = true
state_topic = "{topic}.state"
stall_timeout = "1s"
delivery_timeout = "5s"
properties = {{ "transaction.timeout.ms" = 5000 }}
"#,
        file_path = file_path.display(),
        url = receiver.url("/lacework"),
        brokers = broker.bootstrap,
    )
}

/// One daemon's life: how long it ran, what it was up against, and what the file and webhook
/// sinks held right after its kill.
struct Cycle {
    lifetime: Duration,
    /// AuditLogs pages served while it ran.
    n_pages: usize,
    faults: String,
    receiver_mood: String,
    n_file: usize,
    n_webhook: usize,
    killed: Finished,
}

/// Queues a fresh mix of failures for the next daemon: two to four AuditLogs faults, each
/// after a few normal answers (so they land between pages, not all on the first request),
/// sometimes a failed token exchange, and tokens revoked after a few pages. Returns what was
/// armed, for failure messages.
fn arm_faults(fake: &FakeLacework, rng: &mut fastrand::Rng) -> String {
    fake.clear_faults();
    let mut armed = Vec::new();
    for _ in 0..rng.usize(2..=4) {
        let fault = match rng.u8(0..6) {
            0 => Fault::RateLimited { reset_secs: 1 },
            1 => Fault::Status(500),
            2 => Fault::Status(503),
            3 => Fault::Status(502),
            4 => Fault::Drop,
            _ => Fault::Slow(Duration::from_millis(rng.u64(100..=400))),
        };
        let n_normal = rng.usize(0..=3);
        // `Slow(0)` takes a place in the queue and answers normally.
        fake.fail_next(n_normal, Fault::Slow(Duration::ZERO));
        armed.push(format!("{n_normal} ok, {fault:?}"));
        fake.fail_next(1, fault);
    }
    if rng.bool() {
        let fault = match rng.u8(0..3) {
            0 => Fault::Status(503),
            1 => Fault::Drop,
            _ => Fault::RateLimited { reset_secs: 1 },
        };
        armed.push(format!("token exchange {fault:?}"));
        fake.fail_next_tokens(1, fault);
    }
    let n_pages = rng.usize(1..=4);
    fake.expire_tokens_after_pages(n_pages);
    armed.push(format!("tokens revoked after {n_pages} pages"));
    armed.join("; ")
}

/// Makes the receiver slow on about a third of the daemons (so the webhook still holds
/// batches the other sinks took) and refuses one request on another third.
fn set_receiver_mood(receiver: &Receiver, rng: &mut fastrand::Rng) -> String {
    match rng.u8(0..3) {
        0 => {
            let delay = Duration::from_millis(rng.u64(100..=400));
            receiver.set_delay(delay);
            format!("slow {delay:?}")
        }
        1 => {
            receiver.set_delay(Duration::ZERO);
            receiver.script([Reply::status(503)]);
            "one 503".to_string()
        }
        _ => {
            receiver.set_delay(Duration::ZERO);
            "prompt".to_string()
        }
    }
}

/// What one sink holds, measured against the expected ids.
#[derive(Debug, Default)]
struct Tally {
    /// Ids (copies included) the sink holds.
    n_held: usize,
    /// Expected ids the sink does not hold.
    lost: usize,
    /// Copies beyond the first of an id.
    duplicates: usize,
    /// Distinct ids the sink holds that the reference run did not print.
    foreign: usize,
    /// A few lost, repeated and unknown ids, for failure messages.
    examples: Vec<String>,
}

impl Tally {
    fn of<'a>(expected: &HashSet<String>, ids: impl Iterator<Item = &'a str>) -> Tally {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut tally = Tally::default();
        for id in ids {
            tally.n_held += 1;
            *counts.entry(id).or_default() += 1;
        }
        for (id, n) in &counts {
            tally.duplicates += n - 1;
            if *n > 1 && tally.examples.len() < 10 {
                tally.examples.push(format!("{id} held {n} times"));
            }
            if !expected.contains(*id) {
                tally.foreign += 1;
                if tally.examples.len() < 10 {
                    tally.examples.push(format!("{id:?} is not expected"));
                }
            }
        }
        for id in expected {
            if !counts.contains_key(id.as_str()) {
                tally.lost += 1;
                if tally.examples.len() < 10 {
                    tally.examples.push(format!("{id} lost"));
                }
            }
        }
        tally
    }

    fn assert_exactly_once(&self, sink: &str, diagnosis: &dyn Fn() -> String) {
        assert!(
            self.lost == 0 && self.duplicates == 0 && self.foreign == 0,
            "{sink}: {} held, {} lost, {} duplicates, {} unknown ids; e.g. {:?}\n{}",
            self.n_held,
            self.lost,
            self.duplicates,
            self.foreign,
            self.examples,
            diagnosis()
        );
    }
}

/// The file sink's lines: the live file and every rotated one.
struct FileContents {
    n_files: usize,
    ids: Vec<String>,
    /// `file:line` of each line that is not a whole event.
    torn: Vec<String>,
}

fn read_file_sink(path: &Path) -> FileContents {
    let mut contents = FileContents {
        n_files: 0,
        ids: Vec::new(),
        torn: Vec::new(),
    };
    let rotated = (1..=ROTATE_KEEP).map(|n| PathBuf::from(format!("{}.{n}", path.display())));
    for file in std::iter::once(path.to_path_buf()).chain(rotated) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        contents.n_files += 1;
        let n_lines = text.lines().count();
        for (line_idx, line) in text.lines().enumerate() {
            let whole = line_idx + 1 < n_lines || text.ends_with('\n');
            match serde_json::from_str::<Value>(line) {
                Ok(event) if whole && event["schema"] == SCHEMA => {
                    contents.ids.push(id_of(&event).to_string());
                }
                _ => contents
                    .torn
                    .push(format!("{}:{}", file.display(), line_idx + 1)),
            }
        }
    }
    contents
}

/// The webhook judged as a receiver that drops requests whose `webhook-id` it has seen.
struct WebhookTally {
    /// An event counts twice only when it came under two webhook-ids, or twice in one.
    tally: Tally,
    /// Copies beyond the first across every accepted request, before deduplication.
    raw_duplicates: usize,
    n_requests: usize,
}

impl WebhookTally {
    fn of(expected: &HashSet<String>, receiver: &Receiver) -> WebhookTally {
        let accepted = accepted_requests(receiver);
        let mut raw_ids: Vec<String> = Vec::new();
        let mut events_of_webhook_id: HashMap<String, Vec<String>> = HashMap::new();
        for request in &accepted {
            let webhook_id = request
                .header("webhook-id")
                .expect("webhook-id on every request");
            let ids: Vec<String> = request
                .events()
                .iter()
                .map(|e| id_of(e).to_string())
                .collect();
            raw_ids.extend(ids.iter().cloned());
            // A repeated webhook-id is dropped whole, as the receiver would.
            events_of_webhook_id.entry(webhook_id).or_insert(ids);
        }
        let deduplicated = events_of_webhook_id.values().flatten().map(String::as_str);
        let raw = Tally::of(expected, raw_ids.iter().map(String::as_str));
        WebhookTally {
            tally: Tally::of(expected, deduplicated),
            raw_duplicates: raw.duplicates,
            n_requests: accepted.len(),
        }
    }
}

fn accepted_requests(receiver: &Receiver) -> Vec<crate::support::receiver::Received> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| (200..300).contains(&r.status))
        .collect()
}

/// Distinct event ids the receiver accepted so far.
fn accepted_ids(receiver: &Receiver) -> HashSet<String> {
    accepted_requests(receiver)
        .iter()
        .flat_map(|r| r.events())
        .map(|e| id_of(&e).to_string())
        .collect()
}

/// Every cycle in one line each, then the last killed daemon's and the final run's logs.
fn diagnose(cycles: &[Cycle], last: &Finished) -> String {
    let mut out = String::from(
        "cycles (lifetime, pages served, faults, receiver, file/webhook ids after):\n",
    );
    for (cycle_idx, cycle) in cycles.iter().enumerate() {
        out.push_str(&format!(
            "  {cycle_idx}: {:?}, {} pages; {}; receiver {}; file {} webhook {}\n",
            cycle.lifetime,
            cycle.n_pages,
            cycle.faults,
            cycle.receiver_mood,
            cycle.n_file,
            cycle.n_webhook
        ));
    }
    if let Some(cycle) = cycles.last() {
        out.push_str(&format!(
            "last killed daemon's stderr:\n{}\n",
            tail(&cycle.killed.stderr)
        ));
    }
    out.push_str(&format!(
        "final run --once's stderr:\n{}",
        tail(&last.stderr)
    ));
    out
}
