//! `lae-bench requests`: the API requests one live stream makes per hour at the default
//! `[poll]` and `[lacework]` settings (live polls, late-arrival re-sweeps, nextPage fetches and
//! token exchanges), as a share of the 480 requests an hour Lacework allows per API key.
//!
//! An hour is too long to wait, so time is scaled: every duration of the defaults is divided by
//! `--scale S` (60: a poll every second, an hour in one minute). The real release binary runs
//! `run` against the fake API, which this process hosts so that it can read the fake's request
//! log; what the fake logs during one scaled hour after the first catch-up is what one real hour
//! costs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fake_lacework::{FakeConfig, FakeLacework, GenerateSpec, RateLimit, parse_query_time};
use serde_json::Value;

use crate::daemon::{self, CAUGHT_UP_LINE, LogLine, RESWEEP_LINE, TOKEN_LINE, WINDOW_LINE};
use crate::report::{group, markdown};

/// Lacework's budget: requests per hour per user and endpoint.
const API_BUDGET_PER_HOUR: f64 = 480.0;
/// The goal for one live stream at the defaults: at most this share of the budget.
const GOAL_SHARE: f64 = 0.15;
const HOUR: Duration = Duration::from_secs(3600);
/// Rows per page, as the real API and the fake's default.
const PAGE_SIZE: u64 = 5000;
const TOKENS_PATH: &str = "/api/v2/access/tokens";
const AUDIT_LOGS_PATH: &str = "/api/v2/AuditLogs";
const USER_PROFILE_PATH: &str = "/api/v2/UserProfile";
const TEAM_USERS_PATH: &str = "/api/v2/TeamUsers";
const TEAM_MEMBERS_PATH: &str = "/api/v2/TeamMembers";
/// How long the first catch-up may take before the bench gives up.
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);

/// What `lae-bench requests` measures.
pub struct Options {
    /// Every duration of the defaults is divided by this (1 to 60).
    scale: u32,
    /// Scaled hours to measure; the table shows the average per hour.
    hours: u32,
    /// New audit records per (scaled) minute, created as time goes by.
    per_minute: u32,
    /// Accounts the key reaches: 1 polls the primary org-wide (`org_access = true`); more adds
    /// `ACME-SUB1`.. to the fake's inventory and turns on `discover_sub_accounts`, so the
    /// exporter polls each through `Account-Name`, sharing one request governor.
    accounts: u32,
    bin_dir: Option<PathBuf>,
}

pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut o = Options {
        scale: 60,
        hours: 1,
        per_minute: 3,
        accounts: 1,
        bin_dir: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--scale" => o.scale = value()?.parse()?,
            "--hours" => o.hours = value()?.parse()?,
            "--per-minute" => o.per_minute = value()?.parse()?,
            "--accounts" => o.accounts = value()?.parse()?,
            "--bin-dir" => o.bin_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => bail!(""),
            other => bail!("unknown argument {other:?}"),
        }
    }
    // At 60 the interval is 1 s and the token lifetime 1 min, the least the exporter accepts.
    if !(1..=60).contains(&o.scale) {
        bail!(
            "--scale must be 1 to 60: poll.interval (1m) cannot go below 1s, nor \
             lacework.token_ttl (1h) below 1m"
        );
    }
    if o.hours == 0 {
        bail!("--hours must be at least 1");
    }
    if o.accounts == 0 {
        bail!("--accounts must be at least 1");
    }
    Ok(o)
}

/// The timing settings of one exporter: the defaults of `config.example.toml` and
/// `src/config/{poll,lacework}.rs`, or those divided by the scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) interval: Duration,
    pub(crate) window: Duration,
    pub(crate) settle: Duration,
    pub(crate) lookback: Duration,
    pub(crate) overlap: Duration,
    pub(crate) resweep: Duration,
    pub(crate) resweep_every: Duration,
    pub(crate) token_ttl: Duration,
    /// `[lacework] rate_limit`: this many requests per `rate_period`.
    pub(crate) rate_requests: u32,
    pub(crate) rate_period: Duration,
}

pub(crate) const DEFAULTS: Timing = Timing {
    interval: Duration::from_secs(60),
    window: Duration::from_secs(86_400),
    settle: Duration::from_secs(120),
    lookback: Duration::from_secs(86_400),
    overlap: Duration::from_secs(600),
    resweep: Duration::from_secs(86_400),
    resweep_every: Duration::from_secs(900),
    token_ttl: Duration::from_secs(3600),
    rate_requests: 384,
    rate_period: HOUR,
};

impl Timing {
    /// Every duration divided by `scale`; request counts stay.
    fn scaled(&self, scale: u32) -> Timing {
        Timing {
            interval: self.interval / scale,
            window: self.window / scale,
            settle: self.settle / scale,
            lookback: self.lookback / scale,
            overlap: self.overlap / scale,
            resweep: self.resweep / scale,
            resweep_every: self.resweep_every / scale,
            token_ttl: self.token_ttl / scale,
            rate_requests: self.rate_requests,
            rate_period: self.rate_period / scale,
        }
    }

    /// The `[lacework]` timing keys and the `[poll]` section.
    fn toml(&self) -> String {
        format!(
            "token_ttl = \"{}\"\n\
             rate_limit = \"{}/{}\"\n\
             \n\
             [poll]\n\
             interval = \"{}\"\n\
             window = \"{}\"\n\
             settle = \"{}\"\n\
             lookback = \"{}\"\n\
             overlap = \"{}\"\n\
             resweep = \"{}\"\n\
             resweep_every = \"{}\"\n",
            human(self.token_ttl),
            self.rate_requests,
            human(self.rate_period),
            human(self.interval),
            human(self.window),
            human(self.settle),
            human(self.lookback),
            human(self.overlap),
            human(self.resweep),
            human(self.resweep_every),
        )
    }

    /// Token exchanges per `hour` (of this timing's own scale): a token is renewed a fifth of
    /// its lifetime, at most 5 minutes, before it expires (`src/lacework/auth.rs`).
    fn tokens_per(&self, hour: Duration) -> f64 {
        let margin = (self.token_ttl / 5).min(Duration::from_secs(300));
        hour.as_secs_f64() / (self.token_ttl - margin).as_secs_f64()
    }
}

/// A duration as the exporter's configuration writes it: `1m`, `24m`, `10s`, `8571ms`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// What one logged request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A first AuditLogs page reading recent time: the live walk.
    LivePoll,
    /// A first AuditLogs page reading back to about `now - resweep`.
    ResweepRead,
    /// A further page of either, by its nextPage URL.
    NextPage,
    /// `POST /api/v2/access/tokens`.
    Token,
    /// `GET /api/v2/UserProfile`: the accounts the key reaches (`discover_sub_accounts`).
    UserProfile,
    /// `GET /api/v2/TeamUsers` or `TeamMembers`: a reconciliation's user list.
    TeamUsers,
    /// Anything else (none is expected).
    Other,
}

const KINDS: [Kind; 7] = [
    Kind::LivePoll,
    Kind::ResweepRead,
    Kind::NextPage,
    Kind::Token,
    Kind::UserProfile,
    Kind::TeamUsers,
    Kind::Other,
];

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::LivePoll => "live polls",
            Kind::ResweepRead => "re-sweep reads",
            Kind::NextPage => "nextPage fetches",
            Kind::Token => "token exchanges",
            Kind::UserProfile => "UserProfile reads",
            Kind::TeamUsers => "TeamUsers/TeamMembers reads",
            Kind::Other => "other",
        }
    }
}

/// How far before now each kind of first-page query starts, in steady state (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reach {
    /// A live poll reads from its previous end minus `overlap`, and that end was
    /// `now - settle` one `interval` ago: `settle + interval + overlap`.
    pub(crate) live_ms: i64,
    /// A re-sweep reads from `now - settle - resweep`; `None` when re-sweeps are off.
    pub(crate) resweep_ms: Option<i64>,
}

impl Reach {
    pub(crate) fn of(timing: &Timing) -> Reach {
        let ms = |d: Duration| d.as_millis() as i64;
        Reach {
            live_ms: ms(timing.settle + timing.interval + timing.overlap),
            resweep_ms: (!timing.resweep.is_zero()).then(|| ms(timing.settle + timing.resweep)),
        }
    }
}

/// Sorts one request the fake logged at `now_ms`. A first AuditLogs page is a re-sweep read
/// when its `startTime` lies nearer to `now - reach.resweep_ms` than to `now - reach.live_ms`,
/// else a live poll. (A fixed "within window + overlap of now" cannot tell them apart: at the
/// defaults a re-sweep reaches back 1d + settle and a live window may be 1d + overlap long.)
/// A live catch-up reaching back over half a re-sweep, which a caught-up stream never makes,
/// would count as a re-sweep read.
pub(crate) fn classify(
    method: &str,
    path: &str,
    query: Option<&str>,
    now_ms: i64,
    reach: Reach,
) -> Kind {
    if method == "POST" && path == TOKENS_PATH {
        return Kind::Token;
    }
    if method != "GET" {
        return Kind::Other;
    }
    if path == USER_PROFILE_PATH {
        return Kind::UserProfile;
    }
    let listing = |base: &str| {
        path.strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest == "/")
    };
    if listing(TEAM_USERS_PATH) || listing(TEAM_MEMBERS_PATH) {
        return Kind::TeamUsers;
    }
    if path == AUDIT_LOGS_PATH {
        let Some(start_ms) =
            fake_lacework::query_value(query, "startTime").and_then(|s| parse_query_time(&s))
        else {
            return Kind::Other;
        };
        let age_ms = now_ms - start_ms;
        return match reach.resweep_ms {
            Some(resweep_ms) if 2 * age_ms > reach.live_ms + resweep_ms => Kind::ResweepRead,
            _ => Kind::LivePoll,
        };
    }
    match path.strip_prefix(AUDIT_LOGS_PATH) {
        Some(rest) if rest.len() > 1 && rest.starts_with('/') => Kind::NextPage,
        _ => Kind::Other,
    }
}

/// One request as the bench saw it appear in the fake's log.
struct Seen {
    /// Its index in the fake's request log (for its final status).
    index: usize,
    at: Instant,
    kind: Kind,
    /// The `Account-Name` header, upper-cased (none with `org_access = true`).
    account: Option<String>,
}

pub fn bench(o: &Options) -> Result<()> {
    let bins = crate::find_bins(o.bin_dir.as_deref(), &["lacework-audit-exporter"])?;
    let root = crate::root();
    let timing = DEFAULTS.scaled(o.scale);
    let hour = HOUR / o.scale;
    let measured = hour * o.hours;
    let reach = Reach::of(&timing);
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let streams = if o.accounts == 1 {
        "one live stream".to_owned()
    } else {
        format!(
            "{} accounts (discover_sub_accounts, one stream each, one governor)",
            o.accounts
        )
    };
    println!(
        "lae-bench requests {date}: {streams} at the default settings, time scaled 1/{} \
         (one hour = {:.1} s); {} new records a minute (scaled), page size {PAGE_SIZE}",
        o.scale,
        hour.as_secs_f64(),
        o.per_minute
    );
    println!(
        "machine: {nproc} CPUs ({}), {}",
        crate::cpu_model(),
        crate::memory()
    );
    println!("exporter: {}", crate::build_info(&root, &bins));
    println!("load average at start: {}", crate::load_average());
    println!(
        "scaled settings: interval {}, window {}, settle {}, lookback {}, overlap {}, resweep {}, \
         resweep_every {}, token_ttl {}, rate_limit {}/{}",
        human(timing.interval),
        human(timing.window),
        human(timing.settle),
        human(timing.lookback),
        human(timing.overlap),
        human(timing.resweep),
        human(timing.resweep_every),
        human(timing.token_ttl),
        timing.rate_requests,
        human(timing.rate_period)
    );
    if o.accounts > 1 {
        println!("scaled [reconcile] every {}", human(hour));
    }

    let (tmp, exporter_bin) = crate::daemon::snapshot_exporter("requests", &bins)?;
    let dir = tmp.path();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let fake = runtime.block_on(FakeLacework::start(FakeConfig::default()))?;
    // The accounts UserProfile lists: the primary, then ACME-SUB1.. (with one account the
    // history keeps the generator's default spread and the exporter reads org-wide).
    let primary = fake.config().primary_account.clone();
    let accounts: Vec<String> = std::iter::once(primary.clone())
        .chain((1..o.accounts).map(|i| format!("{primary}-SUB{i}")))
        .collect();
    if o.accounts > 1 {
        fake.edit_inventory(|inventory| {
            for account in &accounts {
                inventory.add_account(account);
            }
        });
    }
    // Lacework's own budget, scaled like everything else, so the fake's RateLimit-* headers
    // tell the exporter what the real API would, and outrunning it is answered 429.
    fake.set_rate_limit(Some(RateLimit {
        requests: API_BUDGET_PER_HOUR as u32,
        period: hour,
    }));
    // The history the first catch-up and the re-sweeps read, at the same rate as new records.
    let end = chrono::Utc::now();
    let history = chrono::Duration::from_std(timing.lookback)?;
    let history_minutes = DEFAULTS.lookback.as_secs() / 60;
    fake.generate(&GenerateSpec {
        seed: crate::fake::SEED,
        start: end - history,
        end,
        count: (u64::from(o.per_minute) * history_minutes) as usize,
        accounts: if o.accounts > 1 {
            accounts.clone()
        } else {
            GenerateSpec::default().accounts
        },
        ..GenerateSpec::default()
    });
    let trickle = (o.per_minute > 0).then(|| {
        let every = Duration::from_secs(60) / o.scale / o.per_minute;
        let _entered = runtime.enter();
        fake.spawn_trickle(every, crate::fake::SEED)
    });

    let secret_path = crate::exporter::write_secret(dir, &fake.config().secret)?;
    let toml_str = |s: &str| Value::from(s).to_string();
    // Several accounts: each discovered through UserProfile, and each account's user list
    // reconciled once a (scaled) hour.
    let (access, reconcile) = if o.accounts > 1 {
        (
            "org_access = false\ndiscover_sub_accounts = true\n".to_owned(),
            format!("\n[reconcile]\nevery = \"{}\"\n", human(hour)),
        )
    } else {
        ("org_access = true\n".to_owned(), String::new())
    };
    let config = format!(
        "[lacework]\n\
         base_url = {base}\n\
         key_id = {key}\n\
         secret_file = {secret}\n\
         {access}\
         {timing}\
         {reconcile}\
         \n\
         [state]\n\
         path = {state}\n\
         \n\
         [[sinks]]\n\
         type = \"stdout\"\n",
        base = toml_str(&fake.base_url()),
        key = toml_str(&fake.config().key_id),
        secret = toml_str(&secret_path.to_string_lossy()),
        timing = timing.toml(),
        state = toml_str(&dir.join("state.db").to_string_lossy()),
    );
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config)?;

    eprintln!("starting the exporter (run) against the fake API...");
    let started = Instant::now();
    let (mut guard, log) = daemon::spawn_run(&exporter_bin, &config_path, dir)?;

    // Watch the fake's log until the measured hours are over; each request is stamped and
    // sorted when it first appears (within a few ms of its arrival).
    let mut seen: Vec<Seen> = Vec::new();
    let mut window: Option<(Instant, Instant)> = None;
    let mut tokens_at_bounds = (0usize, 0usize);
    loop {
        let now = Instant::now();
        let wall_ms = chrono::Utc::now().timestamp_millis();
        let requests = fake.requests();
        for (index, r) in requests.iter().enumerate().skip(seen.len()) {
            seen.push(Seen {
                index,
                at: now,
                kind: classify(&r.method, &r.path, r.query.as_deref(), wall_ms, reach),
                account: r.account_name.as_deref().map(str::to_ascii_uppercase),
            });
        }
        if guard.exited() {
            bail!(
                "the exporter exited during the run; the end of its log:\n{}",
                log.tail()
            );
        }
        match window {
            None => {
                // Every account's stream caught up; past the warm-up limit, those that did.
                let all = log.nth_stream(CAUGHT_UP_LINE, accounts.len());
                let late = now.duration_since(started) > WARM_UP_LIMIT;
                let some = (late && log.first(CAUGHT_UP_LINE).is_some()).then_some(now);
                if let Some(caught_up) = all.or(some) {
                    if all.is_none() {
                        eprintln!(
                            "only {} of {} streams caught up within {} s; measuring anyway",
                            log.streams(CAUGHT_UP_LINE),
                            accounts.len(),
                            WARM_UP_LIMIT.as_secs()
                        );
                    }
                    // Half an interval on, so the hour's bounds fall between two polls.
                    let from = caught_up + timing.interval / 2;
                    window = Some((from, from + measured));
                    eprintln!(
                        "caught up after {:.2} s; measuring {} scaled hour(s) ({:.1} s)...",
                        caught_up.duration_since(started).as_secs_f64(),
                        o.hours,
                        measured.as_secs_f64()
                    );
                } else if now.duration_since(started) > WARM_UP_LIMIT {
                    bail!(
                        "the exporter did not catch up within {} s; the end of its log:\n{}",
                        WARM_UP_LIMIT.as_secs(),
                        log.tail()
                    );
                }
            }
            Some((from, to)) => {
                if now < from {
                    tokens_at_bounds.0 = fake.token_requests();
                }
                if now < to {
                    tokens_at_bounds.1 = fake.token_requests();
                } else {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (from, to) = window.expect("the measured hours began");
    // Requests seen just before the end get their answers (the log says 0 until then).
    std::thread::sleep(Duration::from_millis(200));
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    let refused_429 = fake.rate_limited_answers();
    guard.stop();
    if let Some(trickle) = trickle {
        trickle.abort();
    }
    fake.shutdown();
    let records = fake.record_count();
    runtime.shutdown_background();

    let in_hours: Vec<&Seen> = seen.iter().filter(|s| s.at >= from && s.at < to).collect();
    let count = |kind: Kind| in_hours.iter().filter(|s| s.kind == kind).count() as u64;
    let per_hour = |n: u64| n as f64 / f64::from(o.hours);
    let share = |n: f64| format!("{:.1}%", 100.0 * n / API_BUDGET_PER_HOUR);

    // What the settings imply per real hour (the live poll and re-sweep fire one loop turn
    // after they are due, so a little fewer).
    let real = DEFAULTS;
    let resweeps_per_hour = HOUR.as_secs_f64() / real.resweep_every.as_secs_f64();
    let resweep_windows = real
        .resweep
        .as_secs()
        .div_ceil(real.window.as_secs().max(1))
        .max(1);
    let rows_per_resweep_window =
        u64::from(o.per_minute) * real.resweep.min(real.window).as_secs() / 60;
    let rows_per_poll = u64::from(o.per_minute) * (real.interval + real.overlap).as_secs() / 60;
    let polls_per_hour = HOUR.as_secs_f64() / real.interval.as_secs_f64();
    let extra_pages = |rows: u64| (rows.div_ceil(PAGE_SIZE).max(1) - 1) as f64;
    // With several accounts, what every stream would ask for without the governor (the
    // records are spread over the accounts, so no more pages each).
    let n_accounts = f64::from(o.accounts);
    let expected = |kind: Kind| match kind {
        Kind::LivePoll => n_accounts * polls_per_hour,
        Kind::ResweepRead => n_accounts * resweeps_per_hour * resweep_windows as f64,
        Kind::NextPage => {
            n_accounts
                * (polls_per_hour * extra_pages(rows_per_poll)
                    + resweeps_per_hour
                        * resweep_windows as f64
                        * extra_pages(rows_per_resweep_window))
        }
        Kind::Token => real.tokens_per(HOUR),
        // Read at start (and on reload), not each hour.
        Kind::UserProfile => 0.0,
        Kind::TeamUsers if o.accounts > 1 => n_accounts,
        Kind::TeamUsers | Kind::Other => 0.0,
    };

    let mut cells = vec![
        [
            "requests",
            "in the scaled hour(s)",
            "per hour",
            "share of 480/h",
            "defaults imply per hour",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    let mut total = 0u64;
    let mut total_expected = 0.0;
    for kind in KINDS {
        let n = count(kind);
        // One account keeps today's table: the inventory rows only when something came.
        let optional = kind == Kind::Other
            || (o.accounts == 1 && matches!(kind, Kind::UserProfile | Kind::TeamUsers));
        if optional && n == 0 {
            continue;
        }
        total += n;
        total_expected += expected(kind);
        cells.push(vec![
            kind.label().to_owned(),
            group(n),
            format!("{:.1}", per_hour(n)),
            share(per_hour(n)),
            format!("{:.1}", expected(kind)),
        ]);
    }
    cells.push(vec![
        "total".to_owned(),
        group(total),
        format!("{:.1}", per_hour(total)),
        share(per_hour(total)),
        format!("{total_expected:.1}"),
    ]);
    println!();
    print!("{}", markdown(&cells));
    println!();
    let goal = GOAL_SHARE * API_BUDGET_PER_HOUR;
    let total_per_hour = per_hour(total);
    println!(
        "goal: at most {:.0}% of 480/h ({goal:.0} requests/hour): {} ({total_per_hour:.1}/h = {})",
        GOAL_SHARE * 100.0,
        if total_per_hour <= goal {
            "met"
        } else {
            "not met"
        },
        share(total_per_hour)
    );
    let live = per_hour(count(Kind::LivePoll));
    println!(
        "live polls alone: {live:.1}/h = {} of the budget, {:.0}% of the goal",
        share(live),
        100.0 * live / goal
    );
    if o.hours > 1 {
        // The governor starts with a full bucket, so the first hour may spend it on top of
        // the refill; the later hours show the steady state.
        let by_hour: Vec<String> = (0..o.hours)
            .map(|h| {
                let start = from + hour * h;
                let in_hour = in_hours
                    .iter()
                    .filter(|s| s.at >= start && s.at < start + hour);
                let (mut n, mut live) = (0, 0);
                for s in in_hour {
                    n += 1;
                    live += usize::from(s.kind == Kind::LivePoll);
                }
                format!(
                    "hour {}: {n} requests ({live} live polls, {:.1} per account)",
                    h + 1,
                    live as f64 / n_accounts
                )
            })
            .collect();
        println!("by scaled hour: {}", by_hour.join("; "));
    }
    if o.accounts > 1 {
        println!(
            "governor: {}/{} scaled = {} requests per hour for all {} accounts; total {:.1}/h = \
             {:.1}% of it",
            timing.rate_requests,
            human(timing.rate_period),
            DEFAULTS.rate_requests,
            o.accounts,
            total_per_hour,
            100.0 * total_per_hour / f64::from(DEFAULTS.rate_requests)
        );
        // Live polls per account, by the Account-Name header each first page carried.
        let per_account: Vec<(String, f64)> = accounts
            .iter()
            .map(|account| {
                let upper = account.to_ascii_uppercase();
                let n = in_hours
                    .iter()
                    .filter(|s| s.kind == Kind::LivePoll && s.account.as_deref() == Some(&upper))
                    .count() as u64;
                (account.clone(), per_hour(n))
            })
            .collect();
        let mut rates: Vec<f64> = per_account.iter().map(|(_, r)| *r).collect();
        rates.sort_by(f64::total_cmp);
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let median = rates[rates.len() / 2];
        let unattributed = in_hours
            .iter()
            .filter(|s| {
                s.kind == Kind::LivePoll
                    && !s
                        .account
                        .as_deref()
                        .is_some_and(|a| accounts.iter().any(|b| b.eq_ignore_ascii_case(a)))
            })
            .count();
        println!(
            "live polls per account per hour (Account-Name of each first page; 60 at the \
             defaults): mean {mean:.1}, min {:.1}, median {median:.1}, max {:.1}{}",
            rates[0],
            rates[rates.len() - 1],
            if unattributed > 0 {
                format!("; {unattributed} live polls named no listed account")
            } else {
                String::new()
            }
        );
        let list: Vec<String> = per_account
            .iter()
            .map(|(account, rate)| format!("{account} {rate:.0}"))
            .collect();
        println!("  by account: {}", list.join(", "));
    }

    // The exporter's own account of the same time, as a check on the sorting above.
    let lines = log.lock();
    let in_window = |l: &&LogLine| l.at >= from && l.at < to;
    let live_windows: Vec<&LogLine> = lines
        .iter()
        .filter(in_window)
        .filter(|l| l.message == WINDOW_LINE)
        .collect();
    let live_pages: u64 = live_windows.iter().map(|l| l.pages).sum();
    let n_resweeps = lines
        .iter()
        .filter(in_window)
        .filter(|l| l.message == RESWEEP_LINE)
        .count();
    let n_tokens = lines
        .iter()
        .filter(in_window)
        .filter(|l| l.message == TOKEN_LINE)
        .count();
    println!(
        "exporter log, same span: {} live windows committed ({} pages), {n_resweeps} re-sweeps \
         started, {n_tokens} token exchanges; the fake counted {} token requests",
        live_windows.len(),
        live_pages,
        tokens_at_bounds.1 - tokens_at_bounds.0
    );
    println!(
        "classification: a first AuditLogs page is a re-sweep read when its startTime is nearer \
         now - (settle + resweep) than now - (settle + interval + overlap), else a live poll; \
         nextPage = /api/v2/AuditLogs/<token>; counts are requests that reached the fake in the \
         span, whatever their answer"
    );
    let failed: Vec<u16> = in_hours
        .iter()
        .filter_map(|s| statuses.get(s.index).copied())
        .filter(|status| !(200..300).contains(status))
        .collect();
    if !failed.is_empty() {
        println!(
            "note: {} requests in the span were not answered 2xx: statuses {failed:?} (0: no \
             answer); {refused_429} refused by the fake's scaled 480/h budget over the whole run",
            failed.len()
        );
    }
    let tokens_scaled = timing.tokens_per(hour);
    if (tokens_scaled - real.tokens_per(HOUR)).abs() > 0.01 {
        println!(
            "note: scaled, the token ({}) is renewed {} early (a fifth), not 5 minutes of 60: \
             {tokens_scaled:.2} exchanges per scaled hour against {:.2} per real hour",
            human(timing.token_ttl),
            human((timing.token_ttl / 5).min(Duration::from_secs(300))),
            real.tokens_per(HOUR)
        );
    }
    crate::daemon::print_warnings(&lines);
    if o.accounts == 1 {
        println!(
            "records at the fake at the end: {} (org-wide, org_access = true)",
            group(records as u64)
        );
    } else {
        println!(
            "records at the fake at the end: {} over all accounts (history spread over the {} \
             accounts; the trickle over the fake's default three)",
            group(records as u64),
            o.accounts
        );
    }
    println!(
        "load average at the end: {} (other work on this machine skews the timing)",
        crate::load_average()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T12:00:00.000Z.
    const NOW_MS: i64 = 1_796_040_000_000;

    fn check(method: &str, path: &str, query: Option<&str>, reach: Reach, expected: Kind) {
        let got = classify(method, path, query, NOW_MS, reach);
        assert_eq!(got, expected, "{method} {path}?{}", query.unwrap_or(""));
    }

    /// An AuditLogs query as the exporter sends it: form-encoded, reading from `ago_ms` before
    /// now to `settle` before now.
    fn audit_query(ago_ms: i64) -> String {
        let t = |ms: i64| fake_lacework::format_millis(ms).replace(':', "%3A");
        format!(
            "startTime={}&endTime={}",
            t(NOW_MS - ago_ms),
            t(NOW_MS - 120_000)
        )
    }

    #[test]
    fn requests_are_sorted_by_kind() {
        let reach = Reach::of(&DEFAULTS);
        assert_eq!(
            reach,
            Reach {
                live_ms: 780_000,
                resweep_ms: Some(86_520_000)
            }
        );
        let scaled = Reach::of(&DEFAULTS.scaled(60));
        assert_eq!(scaled.live_ms, 13_000);
        let no_resweep = Reach::of(&Timing {
            resweep: Duration::ZERO,
            ..DEFAULTS
        });
        let minute = 60_000;
        let midpoint = (reach.live_ms + reach.resweep_ms.unwrap()) / 2;
        // First pages, by how far back of now they start.
        for (ago_ms, reach, expected) in [
            // Live polls: settle + interval + overlap back, give or take a slow turn.
            (13 * minute, reach, Kind::LivePoll),
            (30 * minute, reach, Kind::LivePoll),
            // Re-sweeps: settle + resweep back.
            (24 * 60 * minute + 2 * minute, reach, Kind::ResweepRead),
            (20 * 60 * minute, reach, Kind::ResweepRead),
            // The midpoint between the two reaches decides.
            (midpoint, reach, Kind::LivePoll),
            (midpoint + 1, reach, Kind::ResweepRead),
            // With re-sweeps off, every first page is a live poll.
            (24 * 60 * minute + 2 * minute, no_resweep, Kind::LivePoll),
            // The scaled settings (1/60).
            (14_000, scaled, Kind::LivePoll),
            (24 * minute + 2_000, scaled, Kind::ResweepRead),
        ] {
            check(
                "GET",
                AUDIT_LOGS_PATH,
                Some(&audit_query(ago_ms)),
                reach,
                expected,
            );
        }
        // Parameters in another order, or not percent-encoded.
        let swapped = format!(
            "endTime=x&startTime={}",
            fake_lacework::format_millis(NOW_MS - minute)
        );
        check(
            "GET",
            AUDIT_LOGS_PATH,
            Some(&swapped),
            reach,
            Kind::LivePoll,
        );
        // nextPage URLs carry the fake's echoed query; the path decides.
        let resweep_query = audit_query(24 * 60 * minute);
        let next = "/api/v2/AuditLogs/AbC123%3D%3D";
        check("GET", next, Some(&resweep_query), reach, Kind::NextPage);
        check("GET", next, None, reach, Kind::NextPage);
        check("POST", TOKENS_PATH, None, reach, Kind::Token);
        // Anything else, and AuditLogs queries the exporter never sends.
        for (method, path, query) in [
            ("GET", AUDIT_LOGS_PATH, None),
            ("GET", AUDIT_LOGS_PATH, Some("startTime=yesterday")),
            ("GET", "/api/v2/AuditLogs/", None),
            ("GET", TOKENS_PATH, None),
            ("POST", AUDIT_LOGS_PATH, Some(resweep_query.as_str())),
            ("GET", "/api/v2/TeamUsers/some-guid", None),
        ] {
            check(method, path, query, reach, Kind::Other);
        }
        check("GET", USER_PROFILE_PATH, None, reach, Kind::UserProfile);
        check("GET", TEAM_USERS_PATH, None, reach, Kind::TeamUsers);
        check("GET", "/api/v2/TeamMembers/", None, reach, Kind::TeamUsers);
    }

    #[test]
    fn scaled_settings_divide_every_duration() {
        let scaled = DEFAULTS.scaled(60);
        assert_eq!(
            scaled.toml(),
            "token_ttl = \"1m\"\nrate_limit = \"384/1m\"\n\n[poll]\ninterval = \"1s\"\n\
             window = \"24m\"\nsettle = \"2s\"\nlookback = \"24m\"\noverlap = \"10s\"\n\
             resweep = \"24m\"\nresweep_every = \"15s\"\n"
        );
        assert_eq!(human(DEFAULTS.scaled(7).interval), "8571ms");
        assert_eq!(human(DEFAULTS.window), "24h");
        assert!((DEFAULTS.tokens_per(HOUR) - 3600.0 / 3300.0).abs() < 1e-9);
        assert!((scaled.tokens_per(HOUR / 60) - 1.25).abs() < 1e-9);
    }
}
