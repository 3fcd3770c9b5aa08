//! `[[sinks]] type = "webhook"`: the endpoint, batching, authentication, signing and TLS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ByteSize;
use crate::config::ConfigError;
use crate::formats::EventFormat;
use crate::sinks::http;

/// Configuration of a webhook sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Sink name for logs and `replay --sink`; default `webhook`.
    pub name: Option<String>,
    /// Where batches are POSTed, e.g. `https://collector.example.com/lacework` or a Splunk
    /// HEC endpoint `https://splunk:8088/services/collector/event`. Set this or `url_file`.
    pub url: Option<String>,
    /// File holding the URL, for endpoints whose URL is their credential (Sumo Logic's HTTP
    /// source). `$CREDENTIALS_DIRECTORY` is expanded; logs show only its scheme and host.
    pub url_file: Option<PathBuf>,
    /// Body format: `ndjson` (one event per line), `json_array`, `splunk_hec` (the HEC
    /// event envelope, with `Authorization: Splunk <token>`), `ocsf` (OCSF 1.8.0 events, one
    /// per line) or `ecs` (Elastic Common Schema documents, one per line).
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
    /// Headers whose values are secrets, each read from a file, e.g.
    /// `{ "X-Webhook-Access-Key" = "$CREDENTIALS_DIRECTORY/secops-feed-key" }`. Never logged.
    #[serde(default)]
    pub header_files: BTreeMap<String, PathBuf>,
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
    /// OCSF 1.8.0 events, one per line (`application/x-ndjson`).
    Ocsf,
    /// Elastic Common Schema documents, one per line (`application/x-ndjson`).
    Ecs,
}

impl WebhookFormat {
    /// How each event is encoded inside the body.
    pub fn event_format(self) -> EventFormat {
        match self {
            WebhookFormat::Ndjson | WebhookFormat::JsonArray | WebhookFormat::SplunkHec => {
                EventFormat::Json
            }
            WebhookFormat::Ocsf => EventFormat::Ocsf,
            WebhookFormat::Ecs => EventFormat::Ecs,
        }
    }
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
        http::validate_url(self.url.as_deref(), self.url_file.as_deref())?;
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
            (_, true) if self.format != WebhookFormat::SplunkHec => {
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
        http::validate_headers(&self.headers, &self.header_files, RESERVED_HEADERS)?;
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
        let loopback = self.url.as_deref().is_none_or(http::is_loopback);
        let has_credentials = has_credentials || !self.header_files.is_empty();
        let plain = self
            .url
            .as_deref()
            .is_some_and(|url| url.starts_with("http://"));
        if has_credentials && plain && !loopback {
            vec![format!(
                "webhook {:?} sends credentials over plain http: use https",
                self.name.as_deref().unwrap_or("webhook")
            )]
        } else {
            Vec::new()
        }
    }
}
