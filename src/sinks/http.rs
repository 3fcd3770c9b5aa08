//! What every HTTP sink (webhook, Elasticsearch, Sentinel) shares: the client with its TLS
//! settings, headers whose values may come from secret files, a URL that may itself be a
//! secret (`url_file`), gzip, and error texts that never show a secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::config::ConfigError;
use crate::config::secrets::{read_file, read_secret};
use crate::sinks::{BuildContext, Error};

/// Headers every HTTP sink sets itself; a sink may reserve more.
pub const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-encoding",
    "content-length",
    "host",
];

/// HTTP basic authentication, as a sink's `basic = { user, password_file }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// User name.
    pub user: String,
    /// File holding the password.
    pub password_file: PathBuf,
}

impl BasicAuthConfig {
    /// Pure checks; the key is `basic.user`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.user.is_empty() || self.user.contains(':') {
            return Err(ConfigError::invalid(
                "basic.user",
                "must be a user name, without ':'",
            ));
        }
        Ok(())
    }

    /// `Basic <base64 of user:password>`, the password read from its file.
    pub fn authorization(&self, sink: &str, context: &BuildContext) -> Result<String, Error> {
        use base64::Engine;
        let password = read_secret(
            &self.password_file,
            context.credentials_directory.as_deref(),
        )
        .map_err(|m| Error::fatal(sink, format!("basic.password_file: {m}")))?;
        let pair = format!("{}:{}", self.user, password.expose());
        Ok(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }
}

/// Sets `Authorization` to `value`, marked sensitive so no debug output shows it.
pub fn set_authorization(sink: &str, headers: &mut HeaderMap, value: &str) -> Result<(), Error> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        Error::fatal(
            sink,
            "the credential file holds characters a header cannot carry".into(),
        )
    })?;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    Ok(())
}

/// The wait an answer asks for in `Retry-After` (seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::backoff::parse_retry_after)
}

/// First delay between retries of a failed request (a sink's `retry_initial`).
pub fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}

/// Longest delay between retries (a sink's `retry_max`).
pub fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}

/// The TLS files of an HTTP sink, as configured.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles<'a> {
    /// Extra CA certificates (PEM).
    pub ca_file: Option<&'a Path>,
    /// Client certificate (PEM), with `client_key_file`.
    pub client_cert_file: Option<&'a Path>,
    /// The client certificate's key (PEM).
    pub client_key_file: Option<&'a Path>,
}

/// Builds the sink's HTTP client: system roots plus `ca_file`, an optional client identity,
/// `timeout` for connecting and for the whole request, redirects never followed.
pub fn client(
    sink: &str,
    timeout: Duration,
    tls: TlsFiles<'_>,
    context: &BuildContext,
) -> Result<reqwest::Client, Error> {
    let fatal = |message: String| Error::fatal(sink, message);
    let credentials_directory = context.credentials_directory.as_deref();
    let mut options = crate::tls::HttpClientOptions {
        timeout,
        connect_timeout: timeout,
        ..Default::default()
    };
    if let Some(path) = tls.ca_file {
        let pem =
            read_file(path, credentials_directory).map_err(|m| fatal(format!("ca_file: {m}")))?;
        options.extra_roots = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| fatal(format!("ca_file {}: {error}", path.display())))?;
    }
    if let (Some(cert), Some(key)) = (tls.client_cert_file, tls.client_key_file) {
        let mut pem = read_file(cert, credentials_directory)
            .map_err(|m| fatal(format!("client_cert_file: {m}")))?;
        pem.push(b'\n');
        pem.extend(
            read_file(key, credentials_directory)
                .map_err(|m| fatal(format!("client_key_file: {m}")))?,
        );
        options.identity = Some(reqwest::Identity::from_pem(&pem).map_err(|_| {
            fatal("client_cert_file/client_key_file: not a PEM certificate and private key".into())
        })?);
    }
    crate::tls::http_client(options)
        .map_err(|error| fatal(format!("cannot build the HTTP client: {error}")))
}

/// Checks `headers` and `header_files` (pure): valid names and values, none the sink sets
/// itself (`RESERVED_HEADERS` and the sink's own `reserved`, lower case), no name in both
/// tables.
pub fn validate_headers(
    headers: &BTreeMap<String, String>,
    header_files: &BTreeMap<String, PathBuf>,
    reserved: &[&str],
) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: String| Err(ConfigError::invalid(key, message));
    for (table, name) in headers
        .keys()
        .map(|name| ("headers", name))
        .chain(header_files.keys().map(|name| ("header_files", name)))
    {
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) || reserved.contains(&lower.as_str()) {
            return invalid(table, format!("{name} is set by the sink itself"));
        }
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return invalid(table, format!("{name:?} is not a valid header name"));
        }
    }
    for (name, value) in headers {
        if HeaderValue::from_str(value).is_err() {
            return invalid(
                "headers",
                format!("the value of {name} is not a valid header value"),
            );
        }
    }
    for (name, path) in header_files {
        if headers.keys().any(|other| other.eq_ignore_ascii_case(name)) {
            return invalid(
                "header_files",
                format!("{name} is also in headers: set it in one table only"),
            );
        }
        if path.as_os_str().is_empty() {
            return invalid("header_files", format!("the file of {name} is empty"));
        }
    }
    Ok(())
}

/// The fixed headers of every request: `headers` as written, and `header_files` read from
/// their files (`$CREDENTIALS_DIRECTORY` expanded), marked sensitive so that no debug output
/// shows them.
pub fn headers(
    sink: &str,
    headers: &BTreeMap<String, String>,
    header_files: &BTreeMap<String, PathBuf>,
    context: &BuildContext,
) -> Result<HeaderMap, Error> {
    let fatal = |message: String| Error::fatal(sink, message);
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|error| fatal(format!("headers: {error}")))?;
        let value =
            HeaderValue::from_str(value).map_err(|error| fatal(format!("headers: {error}")))?;
        map.insert(name, value);
    }
    for (name, path) in header_files {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|error| fatal(format!("header_files: {error}")))?;
        let secret = read_secret(path, context.credentials_directory.as_deref())
            .map_err(|m| fatal(format!("header_files.{name}: {m}")))?;
        let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
            fatal(format!(
                "header_files.{name}: {} holds characters a header cannot carry",
                path.display()
            ))
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// Where a sink sends, and how its messages may name it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL requests go to.
    pub url: Url,
    /// What logs and errors show: the URL itself, or only its scheme and host when it came
    /// from `url_file` (a Sumo Logic collector URL is its own credential).
    pub shown: String,
}

impl Endpoint {
    /// The endpoint from `url` or the contents of `url_file` (exactly one is set, checked by
    /// `validate_url`).
    pub fn resolve(
        sink: &str,
        url: Option<&str>,
        url_file: Option<&Path>,
        context: &BuildContext,
    ) -> Result<Endpoint, Error> {
        let fatal = |message: String| Error::fatal(sink, message);
        match (url, url_file) {
            (Some(url), _) => {
                let url = Url::parse(url).map_err(|error| fatal(format!("url: {error}")))?;
                Ok(Endpoint {
                    shown: url.to_string(),
                    url,
                })
            }
            (None, Some(path)) => {
                let secret = read_secret(path, context.credentials_directory.as_deref())
                    .map_err(|m| fatal(format!("url_file: {m}")))?;
                // The parser's message never repeats the URL.
                let url = Url::parse(secret.expose()).map_err(|error| {
                    fatal(format!("url_file {}: not a URL: {error}", path.display()))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(fatal(format!(
                        "url_file {}: must hold an http or https URL with a host",
                        path.display()
                    )));
                }
                Ok(Endpoint {
                    shown: format!(
                        "{}://{}/… (from url_file)",
                        url.scheme(),
                        url.host_str().unwrap_or("?")
                    ),
                    url,
                })
            }
            (None, None) => Err(fatal("set url or url_file".into())),
        }
    }
}

/// Checks `url`/`url_file` (pure): exactly one, and `url` an http(s) URL with a host.
pub fn validate_url(url: Option<&str>, url_file: Option<&Path>) -> Result<(), ConfigError> {
    match (url, url_file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            "url_file",
            "set url or url_file, not both",
        )),
        (None, None) => Err(ConfigError::invalid("url", "set url or url_file")),
        (None, Some(path)) if path.as_os_str().is_empty() => {
            Err(ConfigError::invalid("url_file", "is empty"))
        }
        (None, Some(_)) => Ok(()),
        (Some(text), None) => {
            let parsed = Url::parse(text).map_err(|error| {
                ConfigError::invalid("url", format!("{text:?} is not a URL: {error}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(ConfigError::invalid(
                    "url",
                    format!("{text:?} must be an http or https URL with a host"),
                ));
            }
            Ok(())
        }
    }
}

/// The warning for a sink of `kind` named `name` that sends credentials to `url` over plain
/// http to another machine; `None` when it does not (https, loopback, no credentials, or the
/// URL in a file, which validation cannot read).
pub fn plain_http_warning(
    kind: &str,
    name: &str,
    url: Option<&str>,
    has_credentials: bool,
) -> Option<String> {
    let plain_remote = url.is_some_and(|url| url.starts_with("http://") && !is_loopback(url));
    (has_credentials && plain_remote)
        .then(|| format!("{kind} {name:?} sends credentials over plain http: use https"))
}

/// Whether `url` points at this machine (plain http is then no risk to credentials).
pub fn is_loopback(url: &str) -> bool {
    Url::parse(url).ok().is_some_and(|url| match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    })
}

/// `body` gzipped (fast level: the network, not the CPU, is what compression saves).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .expect("writing to memory cannot fail");
    encoder.finish().expect("writing to memory cannot fail")
}

/// A reqwest error's text with its causes but without its URL (which may be a secret, and is
/// shown once by the caller as `Endpoint::shown`).
pub fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        let cause_text = match error.url() {
            Some(url) => cause_text.replace(url.as_str(), ""),
            None => cause_text,
        };
        text.push_str(&format!(": {cause_text}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, PathBuf> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect()
    }

    #[test]
    fn credentials_over_plain_http_to_another_machine_are_warned_about() {
        let warn = |url, creds| plain_http_warning("webhook", "siem", url, creds);
        assert!(
            warn(Some("http://collector.example.com/x"), true)
                .is_some_and(|w| w.contains("\"siem\" sends credentials over plain http"))
        );
        assert_eq!(warn(Some("http://collector.example.com/x"), false), None);
        assert_eq!(warn(Some("https://collector.example.com/x"), true), None);
        assert_eq!(warn(Some("http://127.0.0.1:8088/x"), true), None);
        assert_eq!(warn(Some("http://localhost/x"), true), None);
        assert_eq!(warn(None, true), None);
    }

    #[test]
    fn header_tables_are_checked() {
        let plain: BTreeMap<String, String> = [("X-Team".to_string(), "soc".to_string())].into();
        assert!(validate_headers(&plain, &files(&[("X-Key", "/k")]), &["authorization"]).is_ok());
        let error = validate_headers(&plain, &files(&[("x-team", "/k")]), &[]).unwrap_err();
        assert!(error.to_string().contains("also in headers"), "{error}");
        let error = validate_headers(
            &BTreeMap::new(),
            &files(&[("Authorization", "/k")]),
            &["authorization"],
        )
        .unwrap_err();
        assert!(error.to_string().contains("header_files"), "{error}");
        let error =
            validate_headers(&BTreeMap::new(), &files(&[("bad name", "/k")]), &[]).unwrap_err();
        assert!(
            error.to_string().contains("not a valid header name"),
            "{error}"
        );
    }

    #[test]
    fn header_files_are_read_and_marked_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        let map = headers(
            "w",
            &BTreeMap::new(),
            &files(&[("X-Webhook-Access-Key", path.to_str().unwrap())]),
            &BuildContext::default(),
        )
        .unwrap();
        let value = map.get("x-webhook-access-key").unwrap();
        assert_eq!(value.to_str().unwrap(), "s3cret-value");
        assert!(value.is_sensitive());
        assert!(!format!("{map:?}").contains("s3cret"));
    }

    #[test]
    fn a_url_from_a_file_is_never_shown_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(
            &path,
            "https://collectors.sumologic.com/receiver/v1/http/SECRETTOKEN\n",
        )
        .unwrap();
        let endpoint = Endpoint::resolve("w", None, Some(&path), &BuildContext::default()).unwrap();
        assert_eq!(endpoint.url.path(), "/receiver/v1/http/SECRETTOKEN");
        assert!(!endpoint.shown.contains("SECRET"), "{}", endpoint.shown);
        std::fs::write(&path, "not a url SECRETTOKEN").unwrap();
        let error = Endpoint::resolve("w", None, Some(&path), &BuildContext::default())
            .unwrap_err()
            .to_string();
        assert!(!error.contains("SECRET"), "{error}");
        assert!(validate_url(Some("https://a"), Some(&path)).is_err());
        assert!(validate_url(None, None).is_err());
        assert!(validate_url(Some("ftp://a"), None).is_err());
    }
}
