//! Comparison rows, bench code only: the same pages from the same API (the fake, or nginx's
//! cache of it), fetched by `curl`, by a minimal single-threaded Rust loop, and by Python
//! `requests`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::fake::{Api, windows};
use crate::measure::{self, Cost};

/// The query range every comparison row walks, in 7-day windows like the exporter.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
    pub window_ms: i64,
}

/// Records fetched and requests made by one comparison row.
pub struct Fetched {
    pub records: u64,
    pub requests: u64,
    pub cost: Cost,
    /// curl only: the sum of its `%{time_total}`, the time on the wire without process starts.
    pub transfer_secs: Option<f64>,
}

/// `paging.rows` and `paging.urls.nextPage` of a page, or the `data` length of an unpaged one.
fn page_summary(
    head: &[u8],
    whole: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(u64, Option<String>)> {
    // A paged body starts with the `paging` object, before the (large) `data` array.
    const DATA: &[u8] = b",\"data\":[";
    if head.starts_with(b"{\"paging\":")
        && let Some(at) = head.windows(DATA.len()).position(|w| w == DATA)
    {
        let mut text = head[..at].to_vec();
        text.push(b'}');
        let paging: Value = serde_json::from_slice(&text).context("the paging object")?;
        let rows = paging["paging"]["rows"].as_u64().context("paging.rows")?;
        let next = paging["paging"]["urls"]["nextPage"]
            .as_str()
            .map(str::to_owned);
        return Ok((rows, next));
    }
    let body = whole()?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((0, None));
    }
    let page: Value = serde_json::from_slice(&body).context("a page body")?;
    let rows = page["data"].as_array().map_or(0, Vec::len) as u64;
    let next = page["paging"]["urls"]["nextPage"]
        .as_str()
        .map(str::to_owned);
    Ok((rows, next))
}

/// Token exchange and every page with one `curl` process per request, bodies to a scratch
/// file; the bench reads only each page's leading `paging` object to follow `nextPage`.
pub fn curl(api: &Api, range: Range, dir: &Path) -> Result<Fetched> {
    let started = Instant::now();
    let mut cost = Cost::default();
    let mut requests = 0u64;
    let token_file = dir.join("curl-token.json");
    let page_file = dir.join("curl-page.json");
    // `-w '%{time_total}'` lines of every page request.
    let times_path = dir.join("curl-times.txt");
    let times = File::create(&times_path)?;
    let body = json!({ "keyId": api.key_id, "expiryTime": 3600 }).to_string();
    let (status, c) = measure::run(
        Command::new("curl")
            .args(["-sS", "--fail", "-X", "POST", "-o"])
            .arg(&token_file)
            .arg("-H")
            .arg(format!("X-LW-UAKS: {}", api.secret))
            .args(["-H", "Content-Type: application/json", "--data", &body])
            .arg(format!("{}/api/v2/access/tokens", api.base_url))
            .stdin(Stdio::null()),
    )?;
    cost.absorb(c);
    requests += 1;
    if !status.success() {
        bail!("curl token exchange failed ({status})");
    }
    let token: Value = serde_json::from_slice(&std::fs::read(&token_file)?)?;
    let token = token["token"].as_str().context("no token")?.to_owned();
    let auth = format!("Authorization: Bearer {token}");
    let mut records = 0u64;
    for (start, end) in windows(range.from_ms, range.to_ms, range.window_ms) {
        let mut url = Some(format!(
            "{}/api/v2/AuditLogs?startTime={start}&endTime={end}",
            api.base_url
        ));
        while let Some(u) = url.take() {
            let (status, c) = measure::run(
                Command::new("curl")
                    .args(["-sS", "--fail", "-w", "%{time_total}\\n", "-o"])
                    .arg(&page_file)
                    .args(["-H", &auth, "-H", "Org-Access: true", &u])
                    .stdin(Stdio::null())
                    .stdout(times.try_clone()?),
            )?;
            cost.absorb(c);
            requests += 1;
            if !status.success() {
                bail!("curl {u} failed ({status})");
            }
            let mut head = vec![0u8; 4096];
            let mut file = File::open(&page_file)?;
            let mut n = 0;
            while n < head.len() {
                let got = file.read(&mut head[n..])?;
                if got == 0 {
                    break;
                }
                n += got;
            }
            head.truncate(n);
            let (rows, next) = page_summary(&head, || Ok(std::fs::read(&page_file)?))?;
            records += rows;
            url = next;
        }
    }
    cost.wall = started.elapsed();
    let transfer_secs = std::fs::read_to_string(&times_path)?
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .sum();
    Ok(Fetched {
        records,
        requests,
        cost,
        transfer_secs: Some(transfer_secs),
    })
}

/// Parses the `--name value` pairs the minimal loop (and Python) take.
fn flag<'a>(args: &'a [String], name: &str) -> Result<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .with_context(|| format!("missing {name}"))
}

/// The common arguments of the minimal loop and the Python script.
fn loop_args(api: &Api, range: Range, out: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--base-url",
        &api.base_url,
        "--key-id",
        &api.key_id,
        "--secret",
        &api.secret,
        "--from-ms",
        &range.from_ms.to_string(),
        "--to-ms",
        &range.to_ms.to_string(),
        "--window-ms",
        &range.window_ms.to_string(),
        "--out",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(out.as_os_str().to_owned());
    args
}

/// Runs a loop child (the minimal loop or Python) and reads its `{"records","requests"}`.
fn run_loop(cmd: &mut Command, dir: &Path, name: &str) -> Result<Fetched> {
    let result_path = dir.join(format!("{name}.result.json"));
    let (status, cost) = measure::run(
        cmd.stdin(Stdio::null())
            .stdout(File::create(&result_path)?)
            .stderr(Stdio::inherit()),
    )?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    let result: Value = serde_json::from_slice(&std::fs::read(&result_path)?)
        .with_context(|| format!("the result line of {name}"))?;
    Ok(Fetched {
        records: result["records"].as_u64().context("records")?,
        requests: result["requests"].as_u64().context("requests")?,
        cost,
        transfer_secs: None,
    })
}

/// `lae-bench minimal-loop ...` as a child, measured like the exporter.
pub fn minimal(api: &Api, range: Range, dir: &Path) -> Result<Fetched> {
    let out = dir.join("minimal.ndjson");
    let exe = std::env::current_exe()?;
    let fetched = run_loop(
        Command::new(exe)
            .arg("minimal-loop")
            .args(loop_args(api, range, &out)),
        dir,
        "minimal-loop",
    );
    let _ = std::fs::remove_file(out);
    fetched
}

/// `python3 crates/bench/baseline.py ...` (requests), measured like the exporter.
pub fn python(
    api: &Api,
    range: Range,
    dir: &Path,
    script: &Path,
    pythonpath: Option<&Path>,
) -> Result<Fetched> {
    let out = dir.join("python.ndjson");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(loop_args(api, range, &out));
    if let Some(p) = pythonpath {
        cmd.env("PYTHONPATH", p);
    }
    let fetched = run_loop(&mut cmd, dir, "python");
    let _ = std::fs::remove_file(out);
    fetched
}

/// Whether `python3` can import `requests`, with `PYTHONPATH` set to `path` if given.
fn has_requests(path: Option<&Path>) -> bool {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import requests"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(p) = path {
        cmd.env("PYTHONPATH", p);
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Makes `requests` importable: already installed, or in `cache` (installed there with pip
/// if missing). Returns the `PYTHONPATH` to use, if any.
pub fn ensure_requests(cache: &Path) -> Result<Option<&Path>> {
    if has_requests(None) {
        return Ok(None);
    }
    if !has_requests(Some(cache)) {
        eprintln!(
            "python: installing requests into {} (pip --target)",
            cache.display()
        );
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(cache)
            .arg("requests")
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .stdin(Stdio::null())
            .status()
            .context("python3 -m pip")?;
        if !status.success() || !has_requests(Some(cache)) {
            bail!("cannot install requests with pip ({status})");
        }
    }
    Ok(Some(cache))
}

/// The minimal loop itself (`lae-bench minimal-loop`): single-threaded `reqwest::blocking`,
/// each page parsed into a `serde_json::Value`, every record written back as one JSON line.
/// Prints `{"records":N,"requests":M}` on stdout.
pub fn minimal_loop_main(args: &[String]) -> Result<()> {
    let base_url = flag(args, "--base-url")?;
    let key_id = flag(args, "--key-id")?;
    let secret = flag(args, "--secret")?;
    let range = Range {
        from_ms: flag(args, "--from-ms")?.parse()?,
        to_ms: flag(args, "--to-ms")?.parse()?,
        window_ms: flag(args, "--window-ms")?.parse()?,
    };
    let out = flag(args, "--out")?;
    // reqwest is built with `rustls-no-provider` (features unify with the root crate's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let mut requests = 0u64;
    let token: Value = client
        .post(format!("{base_url}/api/v2/access/tokens"))
        .header("X-LW-UAKS", secret)
        .json(&json!({ "keyId": key_id, "expiryTime": 3600 }))
        .send()?
        .error_for_status()?
        .json()?;
    requests += 1;
    let token = token["token"].as_str().context("no token")?.to_owned();
    let auth = format!("Bearer {token}");
    let mut writer = BufWriter::with_capacity(1 << 16, File::create(out)?);
    let mut records = 0u64;
    for (start, end) in windows(range.from_ms, range.to_ms, range.window_ms) {
        let mut request = Some(
            client
                .get(format!("{base_url}/api/v2/AuditLogs"))
                .query(&[("startTime", &start), ("endTime", &end)]),
        );
        while let Some(r) = request.take() {
            let body = r
                .header("Authorization", &auth)
                .header("Org-Access", "true")
                .send()?
                .error_for_status()?
                .bytes()?;
            requests += 1;
            if body.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            let page: Value = serde_json::from_slice(&body)?;
            if let Some(data) = page["data"].as_array() {
                for record in data {
                    serde_json::to_writer(&mut writer, record)?;
                    writer.write_all(b"\n")?;
                }
                records += data.len() as u64;
            }
            if let Some(next) = page["paging"]["urls"]["nextPage"].as_str() {
                request = Some(client.get(next));
            }
        }
    }
    writer.flush()?;
    println!("{}", json!({ "records": records, "requests": requests }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_summary_reads_the_paging_head() {
        let body = br#"{"paging":{"rows":2,"totalRows":7,"urls":{"nextPage":"http://x/y?a=1"}},"data":[{"a":1},{"a":2}]}"#;
        let (rows, next) = page_summary(&body[..90], || unreachable!()).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(next.as_deref(), Some("http://x/y?a=1"));
        let last = br#"{"paging":{"rows":1,"totalRows":7,"urls":{"nextPage":null}},"data":[{}]}"#;
        assert_eq!(page_summary(last, || unreachable!()).unwrap(), (1, None));
        let unpaged = br#"{"data":[{"a":1},{"a":2},{"a":3}]}"#;
        assert_eq!(
            page_summary(&unpaged[..5], || Ok(unpaged.to_vec())).unwrap(),
            (3, None)
        );
    }
}
