//! `lae-bench static`: the exporter and the comparison rows against pages written once and
//! served by nginx, so the serving side costs almost nothing and the rows measure the clients.
//!
//! nginx caches every AuditLogs answer by its URL in front of the fake API, whose nextPage
//! links name nginx (`fake-lacework --public-origin`). A warm-up pass, not measured, runs each
//! client once through nginx, which records its pages; then the fake is stopped, and the
//! measured runs read the same URLs again. With the fake gone a page missing from the cache
//! would fail its row, and nginx's error log counts such misses: the report shows that none
//! happened. Tokens go to the fake during the warm-up and are answered by nginx afterwards.
//!
//! Every client walks the same absolute range (`replay --from <RFC 3339> --to <RFC 3339>`), so
//! a measured run asks for exactly the URLs its warm-up did.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::Options;
use crate::baselines::{self, Range};
use crate::exporter::{self, Target};
use crate::fake::{self, Api};
use crate::nginx::{self, Nginx};
use crate::report::{self, Baseline, Row, group};
use crate::rows::{self, Rows, STDOUT_ROW, fetched_row};

/// The exporter's own budget would pace a replay of over ~350 requests (5M records make about
/// 1,000); here it is lifted, as the rows measure throughput, not pacing.
const UNPACED: &str = "rate_limit = \"1000000/1h\"\n";
/// Goal: the stdout row at least this fraction of the minimal loop's rate.
const GOAL_STDOUT: f64 = 1.0;
/// Goal: the file sink row (fsync = true) at least this fraction of the minimal loop's rate.
const GOAL_FILE: f64 = 0.9;
/// Goal: every exporter row's peak RSS at most this, in MiB.
const GOAL_RSS_MIB: f64 = 48.0;
const DAY_MS: i64 = 86_400_000;

/// `lae-bench static` takes the main bench's options but `--sinks`: its exporter rows are
/// always stdout and the file sink.
pub fn parse_args(args: &[String]) -> Result<Options> {
    if args.iter().any(|arg| arg == "--sinks") {
        bail!(
            "lae-bench static always measures stdout and the file sink; --sinks is for lae-bench"
        );
    }
    crate::parse_args(args)
}

/// A client that runs once to record its pages and once measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Exporter,
    Minimal,
    Python,
    Curl,
}

impl Client {
    /// Its name in progress lines and directory names.
    fn label(self) -> &'static str {
        match self {
            Client::Exporter => "exporter",
            Client::Minimal => "minimal-loop",
            Client::Python => "python",
            Client::Curl => "curl",
        }
    }
}

pub fn bench(o: &Options) -> Result<()> {
    let bins = crate::find_bins(
        o.bin_dir.as_deref(),
        &["fake-lacework", "lacework-audit-exporter"],
    )?;
    // Before the records are generated, which takes a while at 5M.
    let nginx_bin = nginx::ensure_installed()?;
    let root = crate::root();
    let n = o.records as u64;
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "lae-bench static {date}: N = {} records over {} days, page size {}, seed {}; pages \
         served from nginx's cache",
        group(n),
        o.days,
        fake::PAGE_SIZE,
        fake::SEED
    );
    println!(
        "machine: {nproc} CPUs ({}), {}",
        crate::cpu_model(),
        crate::memory()
    );
    println!("exporter: {}", crate::build_info(&root, &bins));
    println!("{}", nginx::version(&nginx_bin));
    println!("load average at start: {}", crate::load_average());

    let tmp = tempfile::Builder::new()
        .prefix("lae-bench-static-")
        .tempdir()?;
    let dir = tmp.path();
    // Run copies, so a rebuild in target/release during the bench cannot mix two versions.
    let snapshot = dir.join("bin");
    std::fs::create_dir_all(&snapshot)?;
    for name in ["fake-lacework", "lacework-audit-exporter"] {
        std::fs::copy(bins.join(name), snapshot.join(name))
            .with_context(|| format!("copying {name}"))?;
    }
    let exporter_bin = snapshot.join("lacework-audit-exporter");

    let port = nginx::free_port()?;
    let public = format!("http://127.0.0.1:{port}");
    eprintln!("starting the fake API with {} records...", group(n));
    let fake = fake::start(
        &snapshot.join("fake-lacework"),
        o.records,
        o.days,
        Some(&public),
    )?;
    eprintln!(
        "fake API ready at {} after {:.1} s; nginx at {public}",
        fake.api.base_url,
        fake.startup.as_secs_f64()
    );
    let nginx = Nginx::start(&nginx_bin, &dir.join("nginx"), port, &fake.api.base_url)?;
    let api = Api {
        base_url: nginx.origin.clone(),
        ..fake.api.clone()
    };

    // Fixed bounds, from after the fake generated its records (they end at its start) to a
    // whole second, so that the exporter's RFC 3339 arguments say exactly these instants.
    let to_ms = (crate::now_ms() / 1000 + 1) * 1000;
    let range = Range {
        from_ms: to_ms - i64::from(o.days + 10) * DAY_MS,
        to_ms,
        window_ms: fake::WINDOW_MS,
    };
    let (from, to) = (rfc3339(range.from_ms), rfc3339(range.to_ms));
    println!("range: replay --from {from} --to {to}, 7-day windows for every client");
    let target = Target {
        api: &api,
        from: &from,
        to: &to,
        lacework_extra: UNPACED,
    };

    let mut clients = vec![Client::Exporter];
    let mut rows = Rows::new();
    let mut pythonpath = None;
    let py_cache = root.join(".ci/cache/py");
    if !o.skip_baselines {
        clients.push(Client::Minimal);
        match baselines::ensure_requests(&py_cache) {
            Ok(path) => {
                pythonpath = Some(path);
                clients.push(Client::Python);
            }
            Err(e) => rows.skip(format!("python: skipped ({e:#})")),
        }
        clients.push(Client::Curl);
    }
    let script = root.join("crates/bench/baseline.py");
    let run_client = |client: Client, d: PathBuf| -> Result<Row> {
        std::fs::create_dir_all(&d)?;
        match client {
            // The stdout row's walk; the file row asks for the same URLs.
            Client::Exporter => {
                let run = exporter::replay(
                    &exporter_bin,
                    &d,
                    &target,
                    "[[sinks]]\ntype = \"stdout\"\n",
                    Stdio::null(),
                )?;
                Ok(rows::sink_row(
                    "exporter (stdout to /dev/null)",
                    run.logged_events,
                    &run,
                    n,
                ))
            }
            Client::Minimal => {
                baselines::minimal(&api, range, &d).map(|f| fetched_row("minimal Rust loop", f, n))
            }
            Client::Python => baselines::python(&api, range, &d, &script, pythonpath.flatten())
                .map(|f| fetched_row("Python requests", f, n)),
            Client::Curl => {
                baselines::curl(&api, range, &d).map(|f| fetched_row("curl raw fetch", f, n))
            }
        }
    };

    // Warm-up: each client once, through nginx to the fake, which writes the pages.
    let mut recorded = Vec::new();
    for client in &clients {
        eprintln!("warm-up (recording pages): {}...", client.label());
        match run_client(*client, dir.join("warm-up").join(client.label())) {
            Ok(row) => {
                if let Some(note) = &row.note {
                    eprintln!("warm-up: {note}");
                }
                recorded.push(*client);
            }
            Err(e) if *client == Client::Exporter => return Err(e.context("warm-up")),
            Err(e) => rows.skip(format!("{}: warm-up failed: {e:#}", client.label())),
        }
    }
    let (n_files, bytes) = nginx.cache_size();
    eprintln!(
        "warm-up done: {} pages in nginx's cache ({:.0} MiB); stopping the fake API",
        group(n_files),
        bytes as f64 / 1024.0 / 1024.0
    );
    // From here on nothing can reach the fake: a page not in the cache fails its row.
    drop(fake);
    let log_offset = nginx.error_log_len();

    let exporter_dir = |name: &str| dir.join("measured").join(name);
    eprintln!("{STDOUT_ROW}...");
    let r = rows::stdout_row(&exporter_bin, &exporter_dir("stdout"), &target, n);
    rows.push("stdout", r);
    eprintln!("{}...", rows::file_row_name(true));
    let r = rows::file_row(&exporter_bin, &exporter_dir("file"), &target, true, n);
    rows.push("file", r);
    let mut minimal_rate = None;
    for client in recorded.iter().filter(|c| **c != Client::Exporter) {
        eprintln!("{}...", client.label());
        let r = run_client(*client, dir.join("measured").join(client.label()));
        if let (Client::Minimal, Ok(row)) = (client, &r) {
            minimal_rate = Some(row.rate());
        }
        rows.push(client.label(), r);
    }
    let misses = nginx.upstream_misses_since(log_offset)?;
    let load_end = crate::load_average();
    drop(nginx);

    println!();
    print!(
        "{}",
        report::table(
            &rows.rows,
            &[Baseline {
                name: "minimal loop",
                rate: minimal_rate,
            }]
        )
    );
    println!();
    println!(
        "pages: recorded once by a warm-up run of each client (not measured) into nginx's \
         cache, {} files, {:.0} MiB; then the fake API was stopped. In the measured runs nginx \
         went to the stopped fake for {} AuditLogs requests (cache misses: each fails its row) \
         and {} token exchanges (answered by nginx itself).",
        group(n_files),
        bytes as f64 / 1024.0 / 1024.0,
        misses.pages,
        misses.tokens
    );
    println!(
        "the exporter's [lacework] rate_limit is lifted to 1000000/1h and nginx drops the \
         fake's advisory RateLimit-* headers: the rows measure throughput, not pacing."
    );
    println!(
        "events: stdout = lines written, file = lines in the file and its rotated files; \
         baselines = records fetched. CPU s and peak RSS are the measured process's own \
         (wait4), nginx not included; the curl row sums every curl process."
    );
    println!(
        "requests: exporter = sum of `pages=` over its \"Window delivered and committed.\" log \
         lines + token exchanges; the first page of a window over the API's 500,000-row cap, \
         which the exporter then reads as shorter windows, is not in `pages=`. Baselines count \
         their own."
    );
    println!("load average at the end: {load_end} (other work on this machine skews the figures)");
    for row in &rows.rows {
        if let Some(note) = &row.note {
            println!("note: {note}");
        }
    }
    for line in &rows.skipped {
        println!("{line}");
    }
    println!();
    for line in goals(&rows.rows, minimal_rate) {
        println!("{line}");
    }
    Ok(())
}

/// The goals, each with what was measured and whether it is met.
fn goals(rows: &[Row], minimal_rate: Option<f64>) -> Vec<String> {
    let row = |name: &str| rows.iter().find(|r| r.name == name);
    let verdict = |met: bool| if met { "met" } else { "not met" };
    let vs_minimal = |name: &str, goal: f64| match (row(name), minimal_rate) {
        (Some(row), Some(minimal)) if minimal > 0.0 => {
            let ratio = row.rate() / minimal;
            format!("{ratio:.2}x: {}", verdict(ratio >= goal))
        }
        (None, _) => "not measured (the row failed)".to_owned(),
        _ => "not measured (no minimal loop row)".to_owned(),
    };
    let exporter_rss: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.name.starts_with("exporter"))
        .map(|r| {
            (
                r.name.trim_start_matches("exporter -> ").to_owned(),
                r.cost.max_rss_kib as f64 / 1024.0,
            )
        })
        .collect();
    let rss = if exporter_rss.is_empty() {
        "not measured".to_owned()
    } else {
        let list: Vec<String> = exporter_rss
            .iter()
            .map(|(name, mib)| format!("{name} {mib:.1} MiB"))
            .collect();
        let met = exporter_rss.iter().all(|(_, mib)| *mib <= GOAL_RSS_MIB);
        format!("{}: {}", list.join(", "), verdict(met))
    };
    vec![
        "goals:".to_owned(),
        format!(
            "- stdout at least {GOAL_STDOUT:.1}x the minimal loop: {}",
            vs_minimal(STDOUT_ROW, GOAL_STDOUT)
        ),
        format!(
            "- file sink (fsync = true) at least {GOAL_FILE:.1}x the minimal loop: {}",
            vs_minimal(rows::file_row_name(true), GOAL_FILE)
        ),
        format!("- exporter peak RSS at most {GOAL_RSS_MIB:.0} MiB: {rss}"),
    ]
}

/// `2026-12-01T10:00:00Z`; the bounds are whole seconds.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Cost;
    use std::time::Duration;

    fn row(name: &str, events: u64, wall_secs: u64, rss_mib: u64) -> Row {
        Row {
            name: name.to_owned(),
            events,
            cost: Cost {
                wall: Duration::from_secs(wall_secs),
                cpu: Duration::ZERO,
                max_rss_kib: rss_mib * 1024,
            },
            requests: None,
            note: None,
        }
    }

    #[test]
    fn goals_compare_with_the_minimal_loop() {
        let rows = [
            row(STDOUT_ROW, 1000, 1, 40),
            row(rows::file_row_name(true), 1000, 2, 50),
        ];
        assert_eq!(
            goals(&rows, Some(1000.0)),
            [
                "goals:",
                "- stdout at least 1.0x the minimal loop: 1.00x: met",
                "- file sink (fsync = true) at least 0.9x the minimal loop: 0.50x: not met",
                "- exporter peak RSS at most 48 MiB: stdout (file) 40.0 MiB, file (fsync = \
                 true) 50.0 MiB: not met",
            ]
        );
        let skipped = goals(&rows[..1], None);
        assert_eq!(
            skipped[1],
            "- stdout at least 1.0x the minimal loop: not measured (no minimal loop row)"
        );
        assert_eq!(
            skipped[2],
            "- file sink (fsync = true) at least 0.9x the minimal loop: not measured (the row \
             failed)"
        );
        assert_eq!(rfc3339(1_796_040_000_000), "2026-11-30T12:00:00Z");
    }
}
