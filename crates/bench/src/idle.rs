//! `lae-bench idle`: what a caught-up daemon costs while little happens. The release binary
//! runs `run` against the fake API (hosted in this process, so its request log can be read)
//! with `poll.interval = "5s"` and every other setting at its default, a file sink, a few
//! hundred records over the last day and new ones at the same rate. Once the exporter has
//! caught up, the bench samples its memory every second and counts its CPU time, polls and
//! requests for `--minutes`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fake_lacework::{FakeConfig, FakeLacework, GenerateSpec};

use crate::daemon::{self, CAUGHT_UP_LINE, ExporterLog, RESWEEP_LINE, WINDOW_LINE};
use crate::report::{group, markdown};
use crate::requests::{self, DEFAULTS, Kind, Reach, classify, human};

/// The poll interval of this row: shorter than the default minute, so that a few minutes hold
/// enough polls to count.
const INTERVAL: Duration = Duration::from_secs(5);
/// Goal: resident memory at most this, in MiB, while idle.
const GOAL_RSS_MIB: f64 = 16.0;
/// How long the first catch-up may take before the bench gives up.
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// What `lae-bench idle` measures.
pub struct Options {
    /// Minutes measured once caught up.
    minutes: u32,
    /// Records over the last day; as many a day keep arriving.
    records: u32,
    bin_dir: Option<PathBuf>,
}

pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut o = Options {
        minutes: 3,
        records: 300,
        bin_dir: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--minutes" => o.minutes = value()?.parse()?,
            "--records" => o.records = value()?.parse()?,
            "--bin-dir" => o.bin_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => bail!(""),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if o.minutes == 0 {
        bail!("--minutes must be at least 1");
    }
    Ok(o)
}

/// What /proc says about one process.
struct Proc {
    pid: u32,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    ticks_per_sec: f64,
}

impl Proc {
    /// User + system CPU time so far (`utime + stime` of `/proc/<pid>/stat`).
    fn cpu(&self) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        Ok(Duration::from_secs_f64(
            cpu_ticks(&stat).context("/proc/<pid>/stat")? as f64 / self.ticks_per_sec,
        ))
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
    fn status_kib(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status_kib(&status, field).with_context(|| format!("{field} in /proc/<pid>/status"))
    }
}

/// `utime + stime` in clock ticks. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`: utime and stime are the 12th and 13th
/// after it.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(sorted: &[u64]) -> u64 {
    match sorted.len() {
        0 => 0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One request of the fake's log, sorted when it first appeared.
struct Seen {
    at: Instant,
    kind: Kind,
}

pub fn bench(o: &Options) -> Result<()> {
    let bins = crate::find_bins(o.bin_dir.as_deref(), &["lacework-audit-exporter"])?;
    let root = crate::root();
    let timing = requests::Timing {
        interval: INTERVAL,
        ..DEFAULTS
    };
    let reach = Reach::of(&timing);
    let every = (o.records > 0).then(|| DAY / o.records);
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "lae-bench idle {date}: the daemon (`run`) caught up, measured for {} min; {} records \
         over the last day{}",
        o.minutes,
        o.records,
        every.map_or_else(String::new, |e| format!(
            " and one more every {}",
            human(Duration::from_secs(e.as_secs()))
        ))
    );
    println!(
        "settings: poll.interval = {}, the other defaults (settle {}, overlap {}, resweep {} \
         every {}, token_ttl {}, rate_limit {}/{}, [reconcile] every 1h), org_access = true, \
         a file sink (fsync = true), no [telemetry] listener",
        human(timing.interval),
        human(timing.settle),
        human(timing.overlap),
        human(timing.resweep),
        human(timing.resweep_every),
        human(timing.token_ttl),
        timing.rate_requests,
        human(timing.rate_period),
    );
    println!(
        "machine: {nproc} CPUs ({}), {}",
        crate::cpu_model(),
        crate::memory()
    );
    println!("exporter: {}", crate::build_info(&root, &bins));
    println!("load average at start: {}", crate::load_average());

    let (tmp, exporter_bin) = crate::daemon::snapshot_exporter("idle", &bins)?;
    let dir = tmp.path();

    // One worker: the fake serves a request every few seconds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let fake = runtime.block_on(FakeLacework::start(FakeConfig::default()))?;
    let end = chrono::Utc::now();
    fake.generate(&GenerateSpec {
        seed: crate::fake::SEED,
        start: end - chrono::Duration::days(1),
        end,
        count: o.records as usize,
        ..GenerateSpec::default()
    });
    let trickle = every.map(|every| {
        let _entered = runtime.enter();
        fake.spawn_trickle(every, crate::fake::SEED)
    });

    let secret_path = crate::exporter::write_secret(dir, &fake.config().secret)?;
    let toml_str = crate::exporter::toml_string;
    let config = format!(
        "[lacework]\n\
         base_url = {base}\n\
         key_id = {key}\n\
         secret_file = {secret}\n\
         org_access = true\n\
         \n\
         [poll]\n\
         interval = \"{interval}\"\n\
         \n\
         [state]\n\
         path = {state}\n\
         \n\
         [[sinks]]\n\
         type = \"file\"\n\
         path = {events}\n",
        base = toml_str(&fake.base_url()),
        key = toml_str(&fake.config().key_id),
        secret = toml_str(&secret_path.to_string_lossy()),
        interval = human(INTERVAL),
        state = toml_str(&dir.join("state.db").to_string_lossy()),
        events = toml_str(&dir.join("events.ndjson").to_string_lossy()),
    );
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config)?;

    eprintln!("starting the exporter (run) against the fake API...");
    let started = Instant::now();
    let (mut guard, log) = daemon::spawn_run(&exporter_bin, &config_path, dir)?;
    let proc = Proc {
        pid: guard.child_mut().id(),
        // SAFETY: sysconf has no preconditions.
        ticks_per_sec: unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64,
    };

    // Every request is stamped when it first appears in the fake's log (within 100 ms).
    let mut seen: Vec<Seen> = Vec::new();
    let watch = |seen: &mut Vec<Seen>| {
        let now = Instant::now();
        let wall_ms = chrono::Utc::now().timestamp_millis();
        for r in fake.requests().iter().skip(seen.len()) {
            seen.push(Seen {
                at: now,
                kind: classify(&r.method, &r.path, r.query.as_deref(), wall_ms, reach),
            });
        }
    };
    let alive = |guard: &mut crate::measure::Guard, log: &ExporterLog| {
        if guard.exited() {
            bail!(
                "the exporter exited during the run; the end of its log:\n{}",
                log.tail()
            );
        }
        Ok(())
    };

    let caught_up = loop {
        watch(&mut seen);
        alive(&mut guard, &log)?;
        if let Some(at) = log.first(CAUGHT_UP_LINE) {
            break at;
        }
        if started.elapsed() > WARM_UP_LIMIT {
            bail!(
                "the exporter did not catch up within {} s; the end of its log:\n{}",
                WARM_UP_LIMIT.as_secs(),
                log.tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Everything so far belongs to the catch-up (the next poll is an interval away).
    watch(&mut seen);
    let n_catch_up = seen.len();
    eprintln!(
        "caught up after {:.2} s; measuring {} minute(s)...",
        caught_up.duration_since(started).as_secs_f64(),
        o.minutes
    );
    // The span's ends fall half an interval after a poll, in its sleep, so that every poll
    // inside it is counted whole: its request and its "caught up" line.
    let from = caught_up + INTERVAL / 2;
    while Instant::now() < from {
        watch(&mut seen);
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu_from = proc.cpu()?;
    let mut rss_kib: Vec<u64> = Vec::new();
    let mut next_sample = from;
    let minimum_end = from + Duration::from_secs(60) * o.minutes;
    let mut to: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if to.is_some_and(|to| now >= to) {
            break;
        }
        watch(&mut seen);
        alive(&mut guard, &log)?;
        if now >= next_sample {
            rss_kib.push(proc.status_kib("VmRSS")?);
            next_sample += Duration::from_secs(1);
        }
        if to.is_none()
            && now >= minimum_end
            && let Some(poll) = log
                .lock()
                .iter()
                .find(|l| l.message == CAUGHT_UP_LINE && l.at >= minimum_end)
        {
            to = Some(poll.at + INTERVAL / 2);
        }
        if now > minimum_end + 4 * INTERVAL + Duration::from_secs(60) {
            bail!(
                "no poll within a minute after the span: the end of its log:\n{}",
                log.tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let to = to.expect("the span ended");
    let cpu = proc.cpu()?.saturating_sub(cpu_from);
    let hwm_kib = proc.status_kib("VmHWM")?;
    let span = to.duration_since(from);
    guard.stop();
    if let Some(trickle) = trickle {
        trickle.abort();
    }
    fake.shutdown();
    runtime.shutdown_background();

    let per_hour = |n: f64| n * HOUR.as_secs_f64() / span.as_secs_f64();
    let in_span = |at: Instant| at >= from && at < to;
    let count = |kind: Kind| {
        seen.iter()
            .filter(|s| in_span(s.at) && s.kind == kind)
            .count()
    };
    let lines = log.lock();
    let logged = |message: &str| {
        lines
            .iter()
            .filter(|l| in_span(l.at) && l.message == message)
            .count()
    };
    let polls = logged(CAUGHT_UP_LINE);
    let live = count(Kind::LivePoll);
    let next_pages = count(Kind::NextPage);
    let resweep_reads = count(Kind::ResweepRead);
    let inventory = count(Kind::TeamUsers) + count(Kind::UserProfile);
    let audit_logs = live + next_pages + resweep_reads;
    let mut cells: Vec<Vec<String>> = vec![
        ["in the span", "count", "per hour"]
            .map(str::to_owned)
            .to_vec(),
    ];
    let mut add = |label: &str, n: usize| {
        cells.push(vec![
            label.to_owned(),
            group(n as u64),
            format!("{:.1}", per_hour(n as f64)),
        ]);
    };
    add("polls (\"Caught up\" log lines)", polls);
    add("windows committed", logged(WINDOW_LINE));
    add("AuditLogs requests", audit_logs);
    add("- live polls (first pages)", live);
    add("- nextPage fetches", next_pages);
    add("- re-sweep reads", resweep_reads);
    add("re-sweeps started", logged(RESWEEP_LINE));
    add("token exchanges", count(Kind::Token));
    add("TeamUsers/TeamMembers/UserProfile", inventory);
    cells.push(vec![
        "CPU s (utime + stime)".to_owned(),
        format!("{:.2}", cpu.as_secs_f64()),
        format!("{:.1}", per_hour(cpu.as_secs_f64())),
    ]);
    rss_kib.sort_unstable();
    let rss_max = rss_kib.last().copied().unwrap_or(0);
    let memory = vec![
        vec!["memory".to_owned(), "MiB".to_owned()],
        vec![
            format!("VmRSS median ({} samples, 1 s apart)", rss_kib.len()),
            format!("{:.1}", mib(median(&rss_kib))),
        ],
        vec!["VmRSS max".to_owned(), format!("{:.1}", mib(rss_max))],
        vec![
            "VmHWM (peak since start, catch-up included)".to_owned(),
            format!("{:.1}", mib(hwm_kib)),
        ],
    ];
    println!();
    println!(
        "span: {:.1} s, from half an interval after the first catch-up",
        span.as_secs_f64()
    );
    println!();
    print!("{}", markdown(&cells));
    println!();
    print!("{}", markdown(&memory));
    println!();
    let ratio = if polls > 0 {
        format!("{:.2}", live as f64 / polls as f64)
    } else {
        "-".to_owned()
    };
    println!(
        "AuditLogs requests per poll: {ratio} (live first pages / polls; one account, \
         org-wide); nextPage fetches and re-sweep reads are counted apart above"
    );

    // What falls outside a short span: the catch-up, and the whole run after it.
    let catch_up = &seen[..n_catch_up];
    let after = &seen[n_catch_up..];
    let of =
        |seen: &[Seen], kinds: &[Kind]| seen.iter().filter(|s| kinds.contains(&s.kind)).count();
    let inventory_kinds = [Kind::TeamUsers, Kind::UserProfile];
    let audit_kinds = [Kind::LivePoll, Kind::ResweepRead, Kind::NextPage];
    println!(
        "catch-up ({:.2} s, before the span): {} AuditLogs request(s) (reading back \
         lookback = {}), {} token exchange(s), {} TeamUsers/TeamMembers/UserProfile \
         request(s) (reconciliation's baseline, taken at the first catch-up; it reads again \
         every 1h)",
        caught_up.duration_since(started).as_secs_f64(),
        of(catch_up, &audit_kinds),
        human(timing.lookback),
        of(catch_up, &[Kind::Token]),
        of(catch_up, &inventory_kinds),
    );
    println!(
        "after the catch-up, whole run ({:.0} s): {} re-sweep read(s) ({} re-sweep(s) \
         started; the first is due {} after the first catch-up, then every {}), {} token \
         exchange(s) (renewed 5 min before the token's {} lifetime ends), {} \
         TeamUsers/TeamMembers/UserProfile request(s)",
        to.duration_since(caught_up).as_secs_f64(),
        of(after, &[Kind::ResweepRead]),
        lines.iter().filter(|l| l.message == RESWEEP_LINE).count(),
        human(timing.resweep_every),
        human(timing.resweep_every),
        of(after, &[Kind::Token]),
        human(timing.token_ttl),
        of(after, &inventory_kinds),
    );
    if u64::from(o.minutes) * 60 > 3600 {
        // 720 polls an hour against a bucket of 384 refilled at 384 an hour.
        println!(
            "note: at a {} interval the default rate_limit ({}/{}) runs dry after about 68 \
             minutes; polls then slow to its refill rate",
            human(INTERVAL),
            timing.rate_requests,
            human(timing.rate_period)
        );
    }
    crate::daemon::print_warnings(&lines);
    println!(
        "the bench and the fake API run in one process beside the exporter and are not counted; \
         load average at the end: {}",
        crate::load_average()
    );
    println!();
    let verdict = |met: bool| if met { "met" } else { "not met" };
    println!("goals:");
    println!(
        "- resident memory at most {GOAL_RSS_MIB:.0} MiB while idle: VmRSS max {:.1} MiB \
         (median {:.1}): {}",
        mib(rss_max),
        mib(median(&rss_kib)),
        verdict(mib(rss_max) <= GOAL_RSS_MIB)
    );
    let one_each = polls > 0 && live == polls && (next_pages == 0 || resweep_reads > 0);
    println!(
        "- one AuditLogs request per poll: {live} live first pages and {next_pages} nextPage \
         fetches for {polls} polls: {}",
        verdict(one_each)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        // A command name with a space and a parenthesis; utime 250, stime 50.
        let stat = "4242 (lacework (x) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                    9 0 12345 1000000 2500 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
        let status = "Name:\tlacework\nVmHWM:\t   14336 kB\nVmRSS:\t   10240 kB\nThreads:\t5\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(10_240));
        assert_eq!(status_kib(status, "VmHWM"), Some(14_336));
        assert_eq!(status_kib(status, "VmSwap"), None);
        assert_eq!(median(&[1, 2, 9]), 2);
        assert_eq!(median(&[1, 2, 4, 9]), 3);
        assert_eq!(median(&[]), 0);
    }
}
