//! Command-line fake Lacework API: serves generated records on loopback until Ctrl-C.
//!
//! Prints the base URL, key id and secret on one line each so scripts (the benchmark, Python or
//! curl comparisons) can read them from stdout. `--rate-limit 480/1h` enforces the real API's
//! budget (429 once a client outruns it); without it the `RateLimit-*` headers are advisory.
//! `--wording actor-first` words records as Lacework's real sample does (the actor first).
//! `--public-origin URL` puts another origin in nextPage links, for a proxy in front of the fake
//! (the benchmark's nginx cache), since clients refuse links to an origin they did not call.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use fake_lacework::{FakeConfig, FakeLacework, GenerateSpec, RateLimit, TimeFormat, Wording};

const USAGE: &str = "\
usage: fake-lacework [--port P] [--records N] [--seed S] [--days D] [--page-size K]
                     [--time-format mixed|millis|seconds|epoch] [--rate-limit N/PERIOD]
                     [--wording object-first|actor-first|mixed] [--refuse-team-users]
                     [--public-origin URL]

  --port P              port on 127.0.0.1 (default 0: any free port)
  --records N           records to generate (default 10000)
  --seed S              generator seed (default 1)
  --days D              spread the records over the last D days (default 1)
  --page-size K         rows per page (default 5000, as the real API)
  --time-format F       how createdTime is rendered (default mixed)
  --rate-limit N/PERIOD enforce a budget of N requests per PERIOD for each endpoint family
                        (tokens, AuditLogs, other), refilled continuously; a request over it
                        gets 429 with RateLimit-Reset. PERIOD is a number with a unit of ms, s,
                        m or h, e.g. 480/1h (the real API's budget) or 5/10s. Without it the
                        RateLimit-* headers count down from 480/1h and nothing is refused.
  --wording W           how records are worded (default object-first): actor-first names the
                        actor first, as Lacework's real sample does (\"User admin@acme.com
                        created user bob@acme.com in ACME account\"), adds actor-first
                        look-alikes and leaves userAction out of some records; mixed picks
                        either wording per record
  --refuse-team-users   answer GET /api/v2/TeamUsers with 403, so clients must fall back to
                        the legacy TeamMembers
  --public-origin URL   write nextPage links on this origin (http://host:port) instead of the
                        fake's own, for clients that reach the fake through a proxy there";

struct Args {
    port: u16,
    records: usize,
    seed: u64,
    days: u32,
    page_size: usize,
    time_format: TimeFormat,
    rate_limit: Option<RateLimit>,
    wording: Wording,
    refuse_team_users: bool,
    /// The origin nextPage links name, when clients come through a proxy.
    public_origin: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    parse_args_from(std::env::args().skip(1))
}

/// Parses the flags (without the program name).
fn parse_args_from(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        records: 10_000,
        seed: 1,
        days: 1,
        page_size: 5000,
        time_format: TimeFormat::Mixed,
        rate_limit: None,
        wording: Wording::ObjectFirst,
        refuse_team_users: false,
        public_origin: None,
    };
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        if flag == "--refuse-team-users" {
            args.refuse_team_users = true;
            continue;
        }
        const FLAGS: &[&str] = &[
            "--port",
            "--records",
            "--seed",
            "--days",
            "--page-size",
            "--time-format",
            "--rate-limit",
            "--wording",
            "--public-origin",
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
            "--wording" => {
                args.wording = Wording::from_flag(&value).ok_or_else(|| {
                    format!(
                        "invalid value {value:?} for {flag} (expected object-first, actor-first or mixed)"
                    )
                })?
            }
            "--public-origin" => {
                args.public_origin = Some(parse_origin(&value).ok_or_else(|| {
                    format!(
                        "invalid value {value:?} for {flag} (expected an origin such as \
                         http://127.0.0.1:8080)"
                    )
                })?)
            }
            "--rate-limit" => {
                args.rate_limit = Some(parse_rate_limit(&value).ok_or_else(|| {
                    format!("invalid value {value:?} for {flag} (expected e.g. 480/1h)")
                })?)
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if args.page_size == 0 {
        return Err("--page-size must be at least 1".to_owned());
    }
    Ok(args)
}

/// `http://host[:port]` or `https://...`, without a path (a trailing `/` is dropped): nextPage
/// links are this plus the fake's own path, so anything more would break them.
fn parse_origin(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('/');
    let host = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))?;
    (!host.is_empty() && !host.contains(['/', '?', '#', ' '])).then(|| s.to_owned())
}

/// `N/PERIOD`, e.g. `480/1h`; both parts must be non-zero.
fn parse_rate_limit(s: &str) -> Option<RateLimit> {
    let (requests, period) = s.split_once('/')?;
    let requests: u32 = requests.trim().parse().ok().filter(|&n| n > 0)?;
    let period = parse_period(period.trim()).filter(|d| !d.is_zero())?;
    Some(RateLimit { requests, period })
}

/// A whole number with one unit, like `10s` or `1h` (the subset of humantime we need).
fn parse_period(s: &str) -> Option<StdDuration> {
    let digits = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..digits].parse().ok()?;
    let secs_per_unit = match &s[digits..] {
        "ms" => return Some(StdDuration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(secs_per_unit).map(StdDuration::from_secs)
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
    fake.set_rate_limit(args.rate_limit);
    fake.set_refuse_team_users(args.refuse_team_users);
    fake.set_foreign_next_page(args.public_origin.clone());
    let end = Utc::now();
    fake.generate(&GenerateSpec {
        seed: args.seed,
        start: end - Duration::days(i64::from(args.days)),
        end,
        count: args.records,
        wording: args.wording,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<(u32, u64)>) {
        let got = parse_rate_limit(input).map(|r| (r.requests, r.period.as_millis() as u64));
        assert_eq!(got, expected, "{input}");
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args_from(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn wording_and_team_users_flags() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.wording, Wording::ObjectFirst);
        assert!(!args.refuse_team_users);
        let args = parse(&[
            "--wording",
            "actor-first",
            "--refuse-team-users",
            "--records",
            "5",
        ])
        .unwrap();
        assert_eq!(args.wording, Wording::ActorFirst);
        assert!(args.refuse_team_users);
        assert_eq!(args.records, 5);
        assert_eq!(
            parse(&["--wording", "mixed"]).unwrap().wording,
            Wording::Mixed
        );
        assert!(parse(&["--wording", "backwards"]).is_err());
        assert!(parse(&["--wording"]).is_err());
    }

    #[test]
    fn public_origin_flag() {
        assert_eq!(parse(&[]).unwrap().public_origin, None);
        for (input, expected) in [
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080")),
            ("http://127.0.0.1:8080/", Some("http://127.0.0.1:8080")),
            ("https://proxy.example", Some("https://proxy.example")),
            ("127.0.0.1:8080", None),
            ("ftp://127.0.0.1", None),
            ("http://", None),
            ("http://127.0.0.1:8080/api", None),
            ("http://127.0.0.1:8080?a=1", None),
        ] {
            let got = parse(&["--public-origin", input]).map(|a| a.public_origin);
            match expected {
                Some(origin) => assert_eq!(got, Ok(Some(origin.to_owned())), "{input}"),
                None => assert!(got.is_err(), "{input}"),
            }
        }
        assert!(parse(&["--public-origin"]).is_err());
    }

    #[test]
    fn rate_limits_parse_as_requests_per_period() {
        check("480/1h", Some((480, 3_600_000)));
        check("5/10s", Some((5, 10_000)));
        check("60/2m", Some((60, 120_000)));
        check("3/500ms", Some((3, 500)));
        check(" 7 / 1s ", Some((7, 1000)));
        for bad in [
            "", "480", "480/", "/1h", "0/1h", "5/0s", "5/1", "5/h", "5/1d", "-1/1h", "5/1.5h",
        ] {
            check(bad, None);
        }
    }
}
