//! `[[sinks]] type = "webhook"`: the endpoint, batching, authentication, signing and TLS.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ByteSize;
use crate::config::ConfigError;
use crate::formats::EventFormat;
use crate::sinks::http::{self, BasicAuthConfig};
use crate::sinks::webhook::hec_ack;

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
    #[serde(default = "http::default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between retries. Retries go on until the endpoint accepts the batch:
    /// meanwhile the exporter waits and the checkpoint does not move.
    #[serde(default = "http::default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Splunk HEC `sourcetype`; default `lacework:audit:lifecycle`.
    pub hec_sourcetype: Option<String>,
    /// Splunk HEC `source`; default `lacework-audit-exporter`.
    pub hec_source: Option<String>,
    /// Splunk HEC `index`; default: the token's default index.
    pub hec_index: Option<String>,
    /// Splunk HEC `host`; default: the event's account.
    pub hec_host: Option<String>,
    /// Splunk HEC indexer acknowledgement (`format = "splunk_hec"` only; the HEC token must
    /// have "Indexer acknowledgement" enabled). A HEC `200` only means the events look valid;
    /// with `ack = true` a batch counts as delivered, and the checkpoint moves, only once
    /// Splunk acknowledged every request of it as indexed. A request not acknowledged within
    /// `ack_timeout` is sent again (at least once: Splunk may then hold it twice). Default
    /// `false`: a `200` is delivered.
    #[serde(default)]
    pub ack: bool,
    /// How long a request may wait for its indexer acknowledgement before it is sent again,
    /// e.g. `"5m"`; must exceed `ack_poll_interval`. Meanwhile the exporter waits and the
    /// checkpoint does not move.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Pause between two queries of `/services/collector/ack`; default `"1s"`.
    #[serde(default = "default_ack_poll_interval", with = "humantime_serde")]
    pub ack_poll_interval: Duration,
    /// The HEC data channel (a GUID such as `"0f8c2a4e-3b1d-4c55-9a7e-1d2c3b4a5f60"`) named by
    /// every request with `ack = true`. Default: a new random GUID at each start (the
    /// acknowledgements a channel owes do not survive a restart anyway).
    pub channel: Option<String>,
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
fn default_ack_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_ack_poll_interval() -> Duration {
    Duration::from_secs(1)
}

/// Headers the sink sets itself, besides `http::RESERVED_HEADERS`.
const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    crate::sinks::webhook::hec_ack::CHANNEL_HEADER,
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
        self.validate_ack()?;
        http::validate_headers(&self.headers, &self.header_files, RESERVED_HEADERS)?;
        if let Some(basic) = &self.basic {
            basic.validate()?;
        }
        Ok(())
    }

    /// The indexer acknowledgement settings: `ack` only with HEC, a timeout above the poll
    /// interval, a GUID channel.
    fn validate_ack(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| Err(ConfigError::invalid(key, message));
        if self.ack && self.format != WebhookFormat::SplunkHec {
            return invalid(
                "ack",
                "indexer acknowledgement is a Splunk HEC feature: set format = \"splunk_hec\" or ack = false"
                    .into(),
            );
        }
        if self.ack
            && let Some(Ok(url)) = self.url.as_deref().map(url::Url::parse)
            && let Err(message) = hec_ack::ack_url(&url)
        {
            return invalid("url", message);
        }
        if self.ack_poll_interval.is_zero() {
            return invalid("ack_poll_interval", "must be above zero".into());
        }
        if self.ack_timeout <= self.ack_poll_interval {
            return invalid(
                "ack_timeout",
                format!(
                    "must exceed ack_poll_interval ({})",
                    humantime::format_duration(self.ack_poll_interval)
                ),
            );
        }
        match &self.channel {
            Some(_) if !self.ack => invalid("channel", "is only used with ack = true".into()),
            Some(channel) if !hec_ack::is_guid(channel) => invalid(
                "channel",
                format!(
                    "{channel:?} is not a GUID such as \"0f8c2a4e-3b1d-4c55-9a7e-1d2c3b4a5f60\""
                ),
            ),
            _ => Ok(()),
        }
    }

    /// Warnings about legal but risky settings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let has_credentials = self.bearer_token_file.is_some()
            || self.basic.is_some()
            || self.hec_token_file.is_some()
            || !self.header_files.is_empty();
        http::plain_http_warning(
            "webhook",
            self.name.as_deref().unwrap_or("webhook"),
            self.url.as_deref(),
            has_credentials,
        )
        .into_iter()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the error a `[[sinks]]` table of type webhook gets, through the whole
    /// configuration parser (so that serde's errors are mapped to keys too).
    fn error_key(sink: &str) -> Option<String> {
        let url = if sink.contains("url = ") {
            ""
        } else {
            "url = \"https://splunk:8088/services/collector/event\"\n"
        };
        let text = format!(
            "[lacework]\naccount = \"acme\"\nkey_id = \"ACME_1234567890ABCDEF\"\nsecret_file = \"/run/secret\"\n\n[[sinks]]\ntype = \"webhook\"\n{url}{sink}\n"
        );
        match crate::config::Config::parse(&text) {
            Ok(_) => None,
            Err(error) => Some(format!(
                "{} {}",
                error.key.unwrap_or_default(),
                error.message
            )),
        }
    }

    const HEC: &str = "format = \"splunk_hec\"\nhec_token_file = \"/run/hec\"";

    #[test]
    fn ack_settings_are_checked_and_name_their_key() {
        for (sink, expected) in [
            ("ack = true", Some("sinks[0].ack ")),
            ("ack = true\nformat = \"ndjson\"", Some("sinks[0].ack ")),
            (&format!("{HEC}\nack = true"), None),
            (&format!("{HEC}\nack = false"), None),
            (
                &format!("{HEC}\nack = true\nack_timeout = \"2s\"\nack_poll_interval = \"100ms\""),
                None,
            ),
            (
                &format!("{HEC}\nack = true\nack_timeout = \"1s\""),
                Some("sinks[0].ack_timeout must exceed ack_poll_interval"),
            ),
            (
                &format!("{HEC}\nack = true\nack_timeout = \"5 parsecs\""),
                Some("sinks[0].ack_timeout"),
            ),
            (
                &format!("{HEC}\nack = true\nack_timeout = 300"),
                Some("sinks[0].ack_timeout"),
            ),
            (
                &format!("{HEC}\nack = true\nack_poll_interval = \"0s\""),
                Some("sinks[0].ack_poll_interval"),
            ),
            (
                &format!("{HEC}\nack = true\nchannel = \"0F8C2A4E-3B1D-4C55-9A7E-1D2C3B4A5F60\""),
                None,
            ),
            (
                &format!("{HEC}\nack = true\nchannel = \"my-channel\""),
                Some("sinks[0].channel \"my-channel\" is not a GUID"),
            ),
            (
                &format!("{HEC}\nchannel = \"0f8c2a4e-3b1d-4c55-9a7e-1d2c3b4a5f60\""),
                Some("sinks[0].channel is only used with ack = true"),
            ),
            ("ack = \"yes\"", Some("sinks[0].ack")),
            (
                &format!("{HEC}\nack = true\nurl = \"https://splunk:8088/hec\""),
                Some("sinks[0].url ack = true needs a HEC endpoint URL"),
            ),
        ] {
            match (error_key(sink), expected) {
                (None, None) => {}
                (Some(got), Some(want)) => assert!(got.starts_with(want), "{sink}: {got}"),
                (got, want) => panic!("{sink}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ack_is_off_by_default_with_a_five_minute_timeout() {
        let config: WebhookConfig =
            toml::from_str("url = \"https://splunk:8088/services/collector\"").unwrap();
        assert!(!config.ack);
        assert_eq!(config.ack_timeout, Duration::from_secs(300));
        assert_eq!(config.ack_poll_interval, Duration::from_secs(1));
        assert_eq!(config.channel, None);
    }
}
