//! `lae-bench`: the exporter's throughput and footprint per sink against the fake Lacework API,
//! next to comparison rows (curl, a minimal Rust loop, Python requests) fetching the same pages.
//!
//! `lae-bench requests` (`requests.rs`) instead counts the API requests one live stream makes
//! per hour at the default settings, in scaled time, against Lacework's 480 an hour.
//! `lae-bench static` (`static_pages.rs`) measures the exporter and the comparison rows against
//! pages written once and served by nginx, so that no API server shares the CPUs with them.
//! `lae-bench idle` (`idle.rs`) measures a caught-up daemon's memory, CPU and requests.
//!
//! Builds nothing: `./scripts/bench.sh` runs `cargo build --release --workspace` first. See
//! README.md, "Performance".

mod baselines;
mod daemon;
mod exporter;
mod fake;
mod idle;
mod kafka;
mod measure;
mod nginx;
mod report;
mod requests;
mod rows;
mod static_pages;
mod webhook;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use baselines::Range;
use report::group;
use rows::{Rows, STDOUT_ROW, add_note, fetched_row, sink_row};

const USAGE: &str = "usage: lae-bench [--records N] [--days D] \
[--sinks stdout,file,file-nofsync,kafka,kafka-eos,webhook] [--skip-baselines] [--bin-dir DIR]
       lae-bench minimal-loop --base-url URL --key-id ID --secret S --from-ms A --to-ms B \
--window-ms W --out FILE
       lae-bench requests [--scale S] [--hours H] [--per-minute N] [--accounts N] [--bin-dir DIR]
       lae-bench static [--records N] [--days D] [--skip-baselines] [--bin-dir DIR]
       lae-bench idle [--minutes M] [--records N] [--bin-dir DIR]";

/// The workspace root (this crate is `crates/bench`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A row of the exporter with one sink, as `--sinks` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// `stdout`.
    Stdout,
    /// `file` (`fsync = true`, the default) and `file-nofsync` (`fsync = false`).
    File { fsync: bool },
    /// `kafka`.
    Kafka,
    /// `kafka-eos`: the Kafka sink with `exactly_once = true`.
    KafkaExactlyOnce,
    /// `webhook`.
    Webhook,
}

impl Sink {
    /// Every row, in the order they run: the default of `--sinks`.
    const ALL: [Sink; 6] = [
        Sink::Stdout,
        Sink::File { fsync: true },
        Sink::File { fsync: false },
        Sink::Kafka,
        Sink::KafkaExactlyOnce,
        Sink::Webhook,
    ];

    /// The name `--sinks` takes.
    fn name(self) -> &'static str {
        match self {
            Sink::Stdout => "stdout",
            Sink::File { fsync: true } => "file",
            Sink::File { fsync: false } => "file-nofsync",
            Sink::Kafka => "kafka",
            Sink::KafkaExactlyOnce => "kafka-eos",
            Sink::Webhook => "webhook",
        }
    }
}

struct Options {
    records: usize,
    days: u32,
    sinks: Vec<Sink>,
    skip_baselines: bool,
    bin_dir: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut o = Options {
        records: 1_000_000,
        days: 30,
        sinks: Sink::ALL.to_vec(),
        skip_baselines: false,
        bin_dir: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--records" => o.records = value()?.replace(['_', ','], "").parse()?,
            "--days" => o.days = value()?.parse()?,
            "--sinks" => {
                o.sinks = value()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        let s = s.trim();
                        match Sink::ALL.iter().find(|sink| sink.name() == s) {
                            Some(sink) => Ok(*sink),
                            None => bail!(
                                "unknown sink {s:?} ({})",
                                Sink::ALL.map(Sink::name).join(", ")
                            ),
                        }
                    })
                    .collect::<Result<_>>()?;
            }
            "--skip-baselines" => o.skip_baselines = true,
            "--bin-dir" => o.bin_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => bail!(""),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if o.days == 0 {
        bail!("--days must be at least 1");
    }
    Ok(o)
}

/// `target/release`: next to this binary when built there, else under the workspace root.
fn bin_dir(o: &Options) -> Result<PathBuf> {
    find_bins(
        o.bin_dir.as_deref(),
        &["fake-lacework", "lacework-audit-exporter"],
    )
}

/// The first of `explicit`, this binary's directory and `target/release` that holds every one
/// of `names`.
fn find_bins(explicit: Option<&Path>, names: &[&str]) -> Result<PathBuf> {
    let candidates = explicit.map(Path::to_path_buf).into_iter().chain(
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf)),
    );
    let candidates: Vec<PathBuf> = candidates
        .chain(std::iter::once(root().join("target/release")))
        .collect();
    for dir in &candidates {
        if names.iter().all(|name| dir.join(name).is_file()) {
            return Ok(dir.clone());
        }
    }
    bail!(
        "target/release/{{{}}} not found (looked in {}): run `cargo build --release \
         --workspace` or ./scripts/bench.sh",
        names.join(","),
        candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((first, rest)) if !first.starts_with('-') => (first.as_str(), rest),
        _ => ("", &args[..]),
    };
    match command {
        "minimal-loop" => finish(baselines::minimal_loop_main(rest)),
        "requests" => run(requests::parse_args(rest), |o| requests::bench(&o)),
        "static" => run(static_pages::parse_args(rest), |o| static_pages::bench(&o)),
        "idle" => run(idle::parse_args(rest), |o| idle::bench(&o)),
        "" => run(parse_args(rest), |o| bench(&o)),
        other => usage(anyhow::anyhow!("unknown command {other:?}")),
    }
}

/// Runs `bench` with the parsed options, or reports the usage error.
fn run<T>(parsed: Result<T>, bench: impl FnOnce(T) -> Result<()>) -> ExitCode {
    match parsed {
        Ok(o) => finish(bench(o)),
        Err(e) => usage(e),
    }
}

/// A usage error (an empty one: `--help`) exits 2 with the usage.
fn usage(e: anyhow::Error) -> ExitCode {
    if !e.to_string().is_empty() {
        eprintln!("error: {e}");
    }
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// A failed bench exits 1.
fn finish(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(o: &Options) -> Result<()> {
    let bins = bin_dir(o)?;
    let root = root();
    let n = o.records as u64;
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "lae-bench {date}: N = {} records over {} days, page size {}, seed {}",
        group(n),
        o.days,
        fake::PAGE_SIZE,
        fake::SEED
    );
    println!("machine: {nproc} CPUs ({}), {}", cpu_model(), memory());
    println!("exporter: {}", build_info(&root, &bins));
    println!("load average at start: {}", load_average());
    let tmp = tempfile::Builder::new().prefix("lae-bench-").tempdir()?;
    let dir = tmp.path();
    // Run copies, so a rebuild in target/release during the bench cannot mix two versions.
    let snapshot = dir.join("bin");
    std::fs::create_dir_all(&snapshot)?;
    for name in ["fake-lacework", "lacework-audit-exporter"] {
        std::fs::copy(bins.join(name), snapshot.join(name))
            .with_context(|| format!("copying {name}"))?;
    }
    let bins = snapshot;

    let start_fake = || -> Result<fake::Fake> {
        eprintln!("starting the fake API with {} records...", group(n));
        let fake = fake::start(&bins.join("fake-lacework"), o.records, o.days, None)?;
        eprintln!(
            "fake API ready at {} after {:.1} s",
            fake.api.base_url,
            fake.startup.as_secs_f64()
        );
        Ok(fake)
    };
    let mut fake = start_fake()?;
    let mut fake_used = false;
    // The exporter replays `--from {days+10}d --to now`; the comparison rows walk the same
    // range in the same 7-day windows.
    let back_days = o.days + 10;
    let from = format!("{back_days}d");
    let to_ms = now_ms();
    let range = Range {
        from_ms: to_ms - i64::from(back_days) * 86_400_000,
        to_ms,
        window_ms: fake::WINDOW_MS,
    };

    let mut rows = Rows::new();
    let mut minimal_rate = None;
    let mut python_rate = None;
    let mut baseline_rows = Vec::new();
    if !o.skip_baselines {
        eprintln!("curl raw fetch...");
        let r = baselines::curl(&fake.api, range, dir).map(|f| fetched_row("curl raw fetch", f, n));
        rows.push("curl raw fetch", r);
        eprintln!("minimal Rust loop...");
        let r = baselines::minimal(&fake.api, range, dir)
            .map(|f| fetched_row("minimal Rust loop", f, n));
        if let Ok(row) = &r {
            minimal_rate = Some(row.rate());
        }
        rows.push("minimal Rust loop", r);
        eprintln!("Python requests...");
        match baselines::ensure_requests(&root.join(".ci/cache/py")) {
            Ok(pythonpath) => {
                let script = root.join("crates/bench/baseline.py");
                let r = baselines::python(&fake.api, range, dir, &script, pythonpath)
                    .map(|f| fetched_row("Python requests", f, n));
                if let Ok(row) = &r {
                    python_rate = Some(row.rate());
                }
                rows.push("Python requests", r);
            }
            Err(e) => rows.skip(format!("python: skipped ({e:#})")),
        }
        baseline_rows = std::mem::take(&mut rows.rows);
        fake_used = true;
    }

    let exporter_bin = bins.join("lacework-audit-exporter");
    for sink in &o.sinks {
        // Every exporter row gets a fake of its own, as a deployment has a key of its own. The
        // fake's `RateLimit-*` headers count down from 480 an hour per process, and the
        // exporter's request governor slows a replay to the refill rate (one request per
        // 7.5 s) once they near its reserve: after two rows of ~200 requests, a third on the
        // same fake would measure that wait, not the exporter.
        if fake_used {
            drop(fake);
            fake = start_fake()?;
        }
        fake_used = true;
        match sink {
            Sink::Stdout => {
                eprintln!("{STDOUT_ROW}...");
                let r = rows::stdout_row(
                    &exporter_bin,
                    &dir.join("stdout"),
                    &live_target(&fake, &from),
                    n,
                );
                rows.push("stdout", r);
            }
            Sink::File { fsync } => {
                eprintln!("{}...", rows::file_row_name(*fsync));
                let d = dir.join(sink.name());
                let r = rows::file_row(&exporter_bin, &d, &live_target(&fake, &from), *fsync, n);
                rows.push(sink.name(), r);
            }
            Sink::Kafka => {
                let Some(tansu) = kafka::tansu_bin(&root) else {
                    rows.skip("kafka: skipped (run ./scripts/test.sh to install tansu)".into());
                    continue;
                };
                eprintln!("exporter -> kafka (tansu)...");
                let d = dir.join("kafka");
                let r = (|| {
                    std::fs::create_dir_all(&d)?;
                    let broker = kafka::Broker::start(&tansu, &d.join("tansu.log"))?;
                    broker.create_topic("bench", 3)?;
                    let sink = format!(
                        "[[sinks]]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopic = \"bench\"\nkey = \"id\"\n",
                        broker.bootstrap
                    );
                    let run = exporter::replay(
                        &exporter_bin,
                        &d,
                        &live_target(&fake, &from),
                        &sink,
                        Stdio::null(),
                    )?;
                    let events = broker.count_messages("bench")?;
                    Ok(sink_row("exporter -> kafka (tansu)", events, &run, n))
                })();
                rows.push("kafka", r);
            }
            Sink::KafkaExactlyOnce => {
                let Some(tansu) = kafka::tansu_bin(&root) else {
                    rows.skip("kafka-eos: skipped (run ./scripts/test.sh to install tansu)".into());
                    continue;
                };
                let name = "exporter -> kafka (tansu, exactly_once)";
                eprintln!("{name}...");
                let d = dir.join("kafka-eos");
                let r = (|| {
                    std::fs::create_dir_all(&d)?;
                    let broker = kafka::Broker::start(&tansu, &d.join("tansu.log"))?;
                    broker.create_topic("bench", 3)?;
                    // The exporter creates the state topic itself, as it would in production.
                    let sink = format!(
                        "[[sinks]]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopic = \"bench\"\nkey = \"id\"\n\
                         exactly_once = true\nstate_topic = \"bench.state\"\n",
                        broker.bootstrap
                    );
                    let run = exporter::replay(
                        &exporter_bin,
                        &d,
                        &live_target(&fake, &from),
                        &sink,
                        Stdio::null(),
                    )?;
                    let counted = broker.count_transactional("bench", "bench.state")?;
                    let mut row = sink_row(name, counted.events, &run, n);
                    if counted.duplicates > 0 {
                        add_note(
                            &mut row,
                            format!("{} duplicate event ids", group(counted.duplicates)),
                        );
                    }
                    // One ids record per batch transaction, one cursor record per window's
                    // transaction (tombstones ride along with a cursor).
                    let kind = |kind: &str| counted.state_records.get(kind).copied().unwrap_or(0);
                    let (batches, windows) = (kind("ids"), kind("cursor"));
                    let records: Vec<String> = counted
                        .state_records
                        .iter()
                        .map(|(kind, n)| format!("{kind} {}", group(*n)))
                        .collect();
                    add_note(
                        &mut row,
                        format!(
                            "state topic records: {}; {} transactions ({} events per batch), \
                             {:.1} ms of wall time per transaction",
                            records.join(", "),
                            group(batches + windows),
                            group(counted.events / batches.max(1)),
                            run.cost.wall.as_secs_f64() * 1000.0
                                / (batches + windows).max(1) as f64
                        ),
                    );
                    Ok(row)
                })();
                rows.push("kafka-eos", r);
            }
            Sink::Webhook => {
                eprintln!("exporter -> webhook...");
                let d = dir.join("webhook");
                let r = (|| {
                    let receiver = webhook::Receiver::start()?;
                    let sink = format!(
                        "[[sinks]]\ntype = \"webhook\"\nurl = \"{}\"\nbatch_max_events = 500\n",
                        receiver.url
                    );
                    let run = exporter::replay(
                        &exporter_bin,
                        &d,
                        &live_target(&fake, &from),
                        &sink,
                        Stdio::null(),
                    )?;
                    // The exporter only exits once every batch was answered.
                    std::thread::sleep(Duration::from_millis(50));
                    let mut row = sink_row("exporter -> webhook", receiver.events(), &run, n);
                    add_note(
                        &mut row,
                        format!("{} POSTs received", group(receiver.requests())),
                    );
                    Ok(row)
                })();
                rows.push("webhook", r);
            }
        }
    }
    drop(fake);

    let mut all = std::mem::take(&mut rows.rows);
    let load_end = load_average();
    all.extend(baseline_rows);
    println!();
    let baselines = [
        report::Baseline {
            name: "minimal loop",
            rate: minimal_rate,
        },
        report::Baseline {
            name: "Python",
            rate: python_rate,
        },
    ];
    print!("{}", report::table(&all, &baselines));
    println!();
    println!(
        "events: stdout = lines written, file = lines in the file and its rotated files, \
         kafka = messages on the topic (offsets), kafka exactly_once = messages read back \
         (offsets also count transaction markers), webhook = ndjson lines received; \
         baselines = records fetched."
    );
    println!(
        "requests: exporter = sum of `pages=` over its \"Window delivered and committed.\" log \
         lines + token exchanges (debug log); baselines count their own."
    );
    println!(
        "CPU s and peak RSS are the measured child process's own (wait4): the fake API and \
         the broker are not included; the curl row sums every curl process and shows the \
         largest RSS."
    );
    println!("load average at the end: {load_end} (other work on this machine skews the figures)");
    for row in &all {
        if let Some(note) = &row.note {
            println!("note: {note}");
        }
    }
    for line in &rows.skipped {
        println!("{line}");
    }
    let exporter_rss: Vec<String> = all
        .iter()
        .filter(|r| r.name.starts_with("exporter"))
        .map(|r| {
            format!(
                "{} {:.1} MiB",
                r.name.trim_start_matches("exporter -> "),
                r.cost.max_rss_kib as f64 / 1024.0
            )
        })
        .collect();
    if !exporter_rss.is_empty() {
        println!(
            "exporter peak RSS at N = {}: {} (target: < 64 MiB, within 10% between N = 1M and 5M)",
            group(n),
            exporter_rss.join(", ")
        );
    }
    Ok(())
}

/// A replay of the last `from` (e.g. `40d`) to now, straight from `fake`.
fn live_target<'a>(fake: &'a fake::Fake, from: &'a str) -> exporter::Target<'a> {
    exporter::Target {
        api: &fake.api,
        from,
        to: "now",
        lacework_extra: "",
    }
}

/// The commit, whether `src/` has uncommitted changes, and when the exporter binary was built.
fn build_info(root: &Path, bins: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--", "src", "Cargo.toml"]).is_some_and(|s| !s.is_empty());
    let built = std::fs::metadata(bins.join("lacework-audit-exporter"))
        .and_then(|m| m.modified())
        .ok()
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into());
    format!(
        "commit {commit}{}, binary built {built}",
        if dirty { " + uncommitted changes" } else { "" }
    )
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let kib: u64 = text
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown RAM".to_owned())
}
