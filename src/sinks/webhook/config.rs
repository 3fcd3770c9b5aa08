//! `[[sinks]] type = "webhook"`: the endpoint, batching, authentication, signing and TLS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ByteSize;
use crate::config::ConfigError;

/// Configuration of a webhook sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Sink name for logs and `replay --sink`; default `webhook`.
    pub name: Option<String>,
    /// Where batches are POSTed, e.g. `https://collector.example.com/lacework` or a Splunk
    /// HEC endpoint `https://splunk:8088/services/collector/event`.
    pub url: String,
    /// Body format: `ndjson` (one event per line), `json_array`, or `splunk_hec` (the HEC
    /// event envelope, with `Authorization: Splunk <token>`).
    #[serde(default)]
    pub format: WebhookFormat,
    /// Most events per request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Largest request body before compression, e.g. `"1MiB"`. A single larger event is
    /// sent alone.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: ByteSize,
    /// Timeout of one request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra headers on every request, e.g. `{ "X-Team" = "soc" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// File holding a bearer token, sent as `Authorization: Bearer <token>`.
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic authentication.
    pub basic: Option<BasicAuthConfig>,
    /// File holding the Splunk HEC token (`format = "splunk_hec"`).
    pub hec_token_file: Option<PathBuf>,
    /// File holding a Standard Webhooks secret (`whsec_` + base64): requests carry
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
    pub signing_secret_file: Option<PathBuf>,
    /// PEM file of CA certificates trusted in addition to the system's. Verification is
    /// always on.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key_file: Option<PathBuf>,
    /// `none` or `gzip` (sent with `Content-Encoding: gzip`; signatures cover the
    /// uncompressed body).
    #[serde(default)]
    pub compression: Compression,
    /// First delay between retries of a failed request; doubles with jitter up to
    /// `retry_max`. `Retry-After` is honoured instead when the endpoint sends it.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between retries. Retries go on until the endpoint accepts the batch:
    /// meanwhile the exporter waits and the checkpoint does not move.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Splunk HEC `sourcetype`; default `lacework:audit:lifecycle`.
    pub hec_sourcetype: Option<String>,
    /// Splunk HEC `source`; default `lacework-audit-exporter`.
    pub hec_source: Option<String>,
    /// Splunk HEC `index`; default: the token's default index.
    pub hec_index: Option<String>,
    /// Splunk HEC `host`; default: the event's account.
    pub hec_host: Option<String>,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// User name.
    pub user: String,
    /// File holding the password.
    pub password_file: PathBuf,
}

/// Body format of a webhook request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// One event JSON per line (`application/x-ndjson`).
    #[default]
    Ndjson,
    /// A JSON array of events (`application/json`).
    JsonArray,
    /// Splunk HEC event envelopes, stacked (`application/json`).
    SplunkHec,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Plain bodies.
    #[default]
    None,
    /// gzip.
    Gzip,
}

fn default_batch_max_events() -> usize {
    500
}
fn default_batch_max_bytes() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}

/// Headers the sink sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-encoding",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

impl WebhookConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| Err(ConfigError::invalid(key, message));
        let url = match url::Url::parse(&self.url) {
            Ok(url) => url,
            Err(error) => return invalid("url", format!("{:?} is not a URL: {error}", self.url)),
        };
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return invalid(
                "url",
                format!("{:?} must be an http or https URL with a host", self.url),
            );
        }
        if self.batch_max_events == 0 || self.batch_max_events > 100_000 {
            return invalid("batch_max_events", "must be between 1 and 100000".into());
        }
        if self.batch_max_bytes.0 < 1024 {
            return invalid("batch_max_bytes", "must be at least 1KiB".into());
        }
        if self.timeout < Duration::from_secs(1) {
            return invalid("timeout", "must be at least 1s".into());
        }
        if self.retry_initial.is_zero() || self.retry_initial > self.retry_max {
            return invalid(
                "retry_initial",
                "must be above zero and at most retry_max".into(),
            );
        }
        let n_auth = [
            self.bearer_token_file.is_some(),
            self.basic.is_some(),
            self.hec_token_file.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if n_auth > 1 {
            return invalid(
                "bearer_token_file",
                "set only one of bearer_token_file, basic and hec_token_file".into(),
            );
        }
        match (self.format, self.hec_token_file.is_some()) {
            (WebhookFormat::SplunkHec, false) => {
                return invalid(
                    "hec_token_file",
                    "format = \"splunk_hec\" needs hec_token_file".into(),
                );
            }
            (WebhookFormat::Ndjson | WebhookFormat::JsonArray, true) => {
                return invalid(
                    "hec_token_file",
                    "is only used with format = \"splunk_hec\"".into(),
                );
            }
            _ => {}
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return invalid(
                "client_cert_file",
                "mutual TLS needs both client_cert_file and client_key_file".into(),
            );
        }
        for (name, value) in &self.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return invalid("headers", format!("{name} is set by the sink itself"));
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return invalid("headers", format!("{name:?} is not a valid header name"));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return invalid(
                    "headers",
                    format!("the value of {name} is not a valid header value"),
                );
            }
        }
        if let Some(basic) = &self.basic
            && basic.user.contains(':')
        {
            return invalid(
                "basic.user",
                "a basic-auth user name cannot contain ':'".into(),
            );
        }
        Ok(())
    }

    /// Warnings about legal but risky settings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let has_credentials = self.bearer_token_file.is_some()
            || self.basic.is_some()
            || self.hec_token_file.is_some();
        let loopback = url::Url::parse(&self.url)
            .ok()
            .is_some_and(|url| match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(domain)) => domain == "localhost",
                None => false,
            });
        if has_credentials && self.url.starts_with("http://") && !loopback {
            vec![format!(
                "webhook {:?} sends credentials over plain http: use https",
                self.name.as_deref().unwrap_or("webhook")
            )]
        } else {
            Vec::new()
        }
    }
}
