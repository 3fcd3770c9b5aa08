//! nginx from Debian's packages as a caching reverse proxy in front of the fake API, for
//! `lae-bench static`: every page is written to its cache once, then served from there with
//! `sendfile`, so the rows measured against it share the CPUs with almost no server work.
//!
//! nginx runs from a prefix in the bench's temp dir (config, pid, logs, temp and cache paths),
//! in the foreground under a [`Guard`], so it is stopped whatever happens to the bench.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::measure::Guard;

/// The token nginx hands out itself once the fake is gone. Nothing checks it then: the pages
/// come from the cache, whose key is the URL alone.
pub const STATIC_TOKEN: &str = "_lae_bench_static_token";

/// Debian's packages, best first: `-light` has the proxy and cache modules and little else.
const PACKAGES: [&str; 2] = ["nginx-light", "nginx"];

/// How long nginx may take to listen.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A running nginx.
pub struct Nginx {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    error_log: PathBuf,
    cache: PathBuf,
    _guard: Guard,
}

/// Requests nginx could not answer from its cache since some point: it tried the upstream, and
/// the upstream (the stopped fake) was not there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UpstreamMisses {
    /// AuditLogs pages not in the cache: each would have failed.
    pub pages: u64,
    /// Token exchanges, answered with [`STATIC_TOKEN`] instead.
    pub tokens: u64,
}

/// The `nginx` binary: on `PATH` or in `/usr/sbin` (outside root's `PATH`), else installed
/// with apt-get (as root, or through `sudo -n`).
pub fn ensure_installed() -> Result<PathBuf> {
    if let Some(bin) = find() {
        return Ok(bin);
    }
    if find_on_path("apt-get").is_none() {
        bail!("nginx is not installed and there is no apt-get: install nginx and put it on PATH");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let sudo: &[&str] = if unsafe { libc::geteuid() } == 0 {
        &[]
    } else if quiet(Command::new("sudo").args(["-n", "true"])) {
        &["sudo", "-n"]
    } else {
        bail!(
            "nginx is not installed and installing it needs root: run `sudo apt-get install -y \
             --no-install-recommends nginx-light` and try again"
        );
    };
    let package = PACKAGES
        .into_iter()
        .find(|p| quiet(Command::new("apt-cache").args(["show", "--no-all-versions", p])))
        .unwrap_or(PACKAGES[1]);
    let install = || -> Result<bool> {
        eprintln!("nginx: not found; apt-get install {package}...");
        Ok(apt(sudo, &["install", "-y", "--no-install-recommends", package])?.success())
    };
    // A fresh machine may have no package lists yet.
    if !install()? {
        apt(sudo, &["update"])?;
        if !install()? {
            bail!("apt-get install {package} failed (see above): install nginx and try again");
        }
    }
    find().context("apt-get installed nginx, but no nginx binary is on PATH or in /usr/sbin")
}

/// `nginx version: nginx/1.22.1`, or why not.
pub fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// A port free on loopback now, for nginx to take: the fake needs nginx's address before
/// either starts (its nextPage links name it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Nginx {
    /// Starts nginx on `127.0.0.1:port` with its prefix in `dir`, proxying to and caching
    /// `upstream` (`http://127.0.0.1:PORT`), and waits until it listens.
    pub fn start(bin: &Path, dir: &Path, port: u16, upstream: &str) -> Result<Nginx> {
        for sub in ["tmp", "cache"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let upstream = upstream
            .strip_prefix("http://")
            .context("the fake's base URL is not http://")?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_root = unsafe { libc::geteuid() } == 0;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, port, upstream, as_root))?;
        let error_log = dir.join("error.log");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            // From the start: without it nginx opens its compiled-in log before reading the
            // config.
            .arg("-e")
            .arg(&error_log)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut guard = Guard::new(child, Duration::from_secs(5));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        loop {
            if guard.exited() {
                bail!(
                    "nginx exited at start: {}",
                    tail(&[&error_log, &dir.join("stderr.log")])
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if started.elapsed() > START_LIMIT {
                bail!(
                    "nginx did not listen on {addr} within {} s: {}",
                    START_LIMIT.as_secs(),
                    tail(&[&error_log])
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nginx {
            origin: format!("http://{addr}"),
            error_log,
            cache: dir.join("cache"),
            _guard: guard,
        })
    }

    /// Where the error log ends now, to count what comes after with
    /// [`Nginx::upstream_misses_since`].
    pub fn error_log_len(&self) -> u64 {
        std::fs::metadata(&self.error_log).map_or(0, |m| m.len())
    }

    /// The requests that went to the upstream and found nobody since `offset` of the error
    /// log (nginx logs one `connect() failed ... while connecting to upstream` line each).
    pub fn upstream_misses_since(&self, offset: u64) -> Result<UpstreamMisses> {
        let mut file = std::fs::File::open(&self.error_log)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(count_misses(&text))
    }

    /// Files and bytes in the cache.
    pub fn cache_size(&self) -> (u64, u64) {
        dir_size(&self.cache)
    }
}

/// The configuration: a single worker, no access log, `sendfile`, every path under `dir`.
/// AuditLogs answers are cached by their URL; tokens go to the fake while it runs and are
/// answered statically once it is gone (a 502 from the proxy falls back to them).
fn config(dir: &Path, port: u16, upstream: &str, as_root: bool) -> String {
    let d = dir.display();
    // Root's workers would run as `nobody`, who cannot enter the bench's 0700 temp dir.
    let user = if as_root { "user root;\n" } else { "" };
    let token = format!(r#"{{"token":"{STATIC_TOKEN}","expiresAt":"2099-01-01T00:00:00.000Z"}}"#);
    format!(
        r#"# Written by lae-bench static: a caching proxy in front of the fake Lacework API.
{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log error;

events {{
    worker_connections 64;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    # One connection per client run, however many pages (5M records are over 1,000).
    keepalive_requests 1000000;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    # use_temp_path=off: a page is written once, into the cache directory.
    proxy_cache_path {d}/cache levels=1:2 keys_zone=pages:32m inactive=7d use_temp_path=off;

    server {{
        listen 127.0.0.1:{port};

        # First pages (?startTime=..&endTime=..) and nextPage links (/AuditLogs/<token>?..).
        location /api/v2/AuditLogs {{
            proxy_pass http://{upstream};
            proxy_read_timeout 600s;
            proxy_cache pages;
            # The URL alone: the bearer token differs between runs, the page does not.
            proxy_cache_key $request_uri;
            proxy_cache_methods GET HEAD;
            proxy_cache_valid 200 1d;
            proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;
            # The fake's advisory budget as it stood while the pages were recorded: replayed,
            # it would count down across runs and make the exporter pace itself.
            proxy_hide_header RateLimit-Limit;
            proxy_hide_header RateLimit-Remaining;
            proxy_hide_header RateLimit-Reset;
        }}

        location = /api/v2/access/tokens {{
            proxy_pass http://{upstream};
            error_page 502 504 = @static_token;
        }}

        location @static_token {{
            default_type application/json;
            return 200 '{token}';
        }}

        location / {{
            return 404;
        }}
    }}
}}
"#
    )
}

/// Counts the upstream connection failures in an error log excerpt, by request.
fn count_misses(text: &str) -> UpstreamMisses {
    let mut misses = UpstreamMisses::default();
    for line in text.lines().filter(|l| l.contains("upstream")) {
        if line.contains("request: \"GET /api/v2/AuditLogs")
            || line.contains("request: \"HEAD /api/v2/AuditLogs")
        {
            misses.pages += 1;
        } else if line.contains("request: \"POST /api/v2/access/tokens") {
            misses.tokens += 1;
        }
    }
    misses
}

fn dir_size(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (files, bytes) = dir_size(&entry.path());
            total = (total.0 + files, total.1 + bytes);
        } else {
            total = (total.0 + 1, total.1 + meta.len());
        }
    }
    total
}

fn find() -> Option<PathBuf> {
    find_on_path("nginx").or_else(|| {
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether `cmd` succeeds, its output discarded.
fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `apt-get ARGS` (behind `sudo`, if given), its output on our stderr: stdout is the report.
fn apt(sudo: &[&str], args: &[&str]) -> Result<std::process::ExitStatus> {
    let (program, pre) = match sudo.split_first() {
        Some((program, rest)) => (*program, rest.iter().chain(&["apt-get"]).copied().collect()),
        None => ("apt-get", Vec::new()),
    };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    Command::new(program)
        .args(pre)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("cannot run apt-get {}", args.join(" ")))
}

/// The last lines of the first of `paths` that says anything, for error messages.
fn tail(paths: &[&Path]) -> String {
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if !lines.is_empty() {
            return lines[lines.len().saturating_sub(10)..].join("\n");
        }
    }
    "(nothing logged)".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_every_path_in_the_prefix() {
        let conf = config(Path::new("/tmp/x"), 8080, "127.0.0.1:9", false);
        assert!(conf.contains("listen 127.0.0.1:8080;"));
        assert!(conf.contains("proxy_pass http://127.0.0.1:9;"));
        assert!(conf.contains("proxy_cache_key $request_uri;"));
        assert!(!conf.contains("user root"));
        for line in conf.lines().filter(|l| l.contains("/tmp")) {
            assert!(line.contains("/tmp/x/"), "{line}");
        }
        assert!(conf.contains(r#"return 200 '{"token":"_lae_bench_static_token","#));
        assert!(config(Path::new("/t"), 1, "h:2", true).starts_with("# Written"));
        assert!(config(Path::new("/t"), 1, "h:2", true).contains("\nuser root;\n"));
    }

    #[test]
    fn misses_are_counted_by_request() {
        let log = "\
2026/12/01 10:00:00 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: \"POST /api/v2/access/tokens HTTP/1.1\", upstream: \"http://127.0.0.1:9/api/v2/access/tokens\", host: \"127.0.0.1:8080\"
2026/12/01 10:00:01 [error] 7#7: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: \"GET /api/v2/AuditLogs?startTime=a&endTime=b HTTP/1.1\", upstream: \"http://127.0.0.1:9/api/v2/AuditLogs?startTime=a&endTime=b\", host: \"127.0.0.1:8080\"
2026/12/01 10:00:02 [error] 7#7: something else
";
        assert_eq!(
            count_misses(log),
            UpstreamMisses {
                pages: 1,
                tokens: 1
            }
        );
    }
}
