//! Command-line fake Lacework API: serves generated records on loopback until Ctrl-C.
//!
//! Prints the base URL, key id and secret on one line each so scripts (the benchmark, Python or
//! curl comparisons) can read them from stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use chrono::{Duration, Utc};
use fake_lacework::{FakeConfig, FakeLacework, GenerateSpec, TimeFormat};

const USAGE: &str = "usage: fake-lacework [--port P] [--records N] [--seed S] [--days D] \
[--page-size K] [--time-format mixed|millis|seconds|epoch]";

struct Args {
    port: u16,
    records: usize,
    seed: u64,
    days: u32,
    page_size: usize,
    time_format: TimeFormat,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        records: 10_000,
        seed: 1,
        days: 1,
        page_size: 5000,
        time_format: TimeFormat::Mixed,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        const FLAGS: &[&str] = &[
            "--port",
            "--records",
            "--seed",
            "--days",
            "--page-size",
            "--time-format",
        ];
        if !FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown argument {flag}"));
        }
        let value = it
            .next()
            .ok_or_else(|| format!("missing value for {flag}"))?;
        let bad = |_| format!("invalid value {value:?} for {flag}");
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(bad)?,
            "--records" => args.records = value.parse().map_err(bad)?,
            "--seed" => args.seed = value.parse().map_err(bad)?,
            "--days" => args.days = value.parse().map_err(bad)?,
            "--page-size" => args.page_size = value.parse().map_err(bad)?,
            "--time-format" => {
                args.time_format = match value.as_str() {
                    "mixed" => TimeFormat::Mixed,
                    "millis" => TimeFormat::Millis,
                    "seconds" => TimeFormat::Seconds,
                    "epoch" => TimeFormat::EpochMillis,
                    _ => return Err(format!("invalid value {value:?} for {flag}")),
                }
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.page_size == 0 {
        return Err("--page-size must be at least 1".to_owned());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = FakeConfig {
        page_size: args.page_size,
        time_format: args.time_format,
        ..FakeConfig::default()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let fake = match FakeLacework::start_on(addr, cfg).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let end = Utc::now();
    fake.generate(&GenerateSpec {
        seed: args.seed,
        start: end - Duration::days(i64::from(args.days)),
        end,
        count: args.records,
        ..GenerateSpec::default()
    });
    let mut out = std::io::stdout().lock();
    // Flushed at once: readers block on these lines before sending anything.
    let printed = writeln!(out, "{}", fake.base_url())
        .and_then(|()| writeln!(out, "{}", fake.config().key_id))
        .and_then(|()| writeln!(out, "{}", fake.config().secret))
        .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = printed {
        eprintln!("error: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot wait for ctrl-c: {e}");
        return ExitCode::FAILURE;
    }
    fake.shutdown();
    ExitCode::SUCCESS
}
