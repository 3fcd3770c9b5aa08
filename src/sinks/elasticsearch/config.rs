//! `[[sinks]] type = "elasticsearch"`: the cluster, the index, credentials, batching and TLS;
//! pure validation, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ByteSize;
use crate::config::ConfigError;
use crate::formats::EventFormat;
use crate::sinks::elasticsearch::bulk;
use crate::sinks::http::{self, BasicAuthConfig};

/// Configuration of an Elasticsearch (or OpenSearch) sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Sink name for logs and `replay --sink`; default `elasticsearch`.
    pub name: Option<String>,
    /// Base URL of the cluster, e.g. `https://es.example.com:9200` (a path prefix is kept:
    /// `https://proxy.example.com/es` posts to `/es/_bulk`). Set this or `url_file`.
    pub url: Option<String>,
    /// File holding the base URL, when the URL itself is a secret. `$CREDENTIALS_DIRECTORY`
    /// is expanded; logs show only its scheme and host.
    pub url_file: Option<PathBuf>,
    /// Index or data stream the events go to; default `logs-lacework.audit-default` (a data
    /// stream under Elasticsearch's built-in `logs-*-*` template). `%Y`, `%m` and `%d` are
    /// replaced from the event's UTC time (the current date for an event without a time), so
    /// `lacework-audit-%Y.%m.%d` gives daily indices and a re-sent event always goes to the
    /// index it went to the first time.
    #[serde(default = "default_index")]
    pub index: String,
    /// Document format: `ecs` (Elastic Common Schema, with `@timestamp`), `json` (the
    /// exporter's own event JSON) or `ocsf` (OCSF 1.8.0).
    #[serde(default = "default_format")]
    pub format: EventFormat,
    /// File holding an API key, sent as `Authorization: ApiKey <contents>`: the base64
    /// "encoded" value Elastic shows when it creates a key (an `id:api_key` pair is encoded
    /// here). Never logged.
    pub api_key_file: Option<PathBuf>,
    /// HTTP basic authentication (`user` and `password_file`), instead of `api_key_file`.
    pub basic: Option<BasicAuthConfig>,
    /// Extra headers on every request, e.g. `{ "X-Team" = "soc" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose values are secrets, each read from a file. Never logged.
    #[serde(default)]
    pub header_files: BTreeMap<String, PathBuf>,
    /// PEM file of CA certificates trusted in addition to the system's (a self-managed
    /// cluster's `http_ca.crt`). Verification is always on.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key_file: Option<PathBuf>,
    /// `none` or `gzip` (request bodies sent with `Content-Encoding: gzip`).
    #[serde(default)]
    pub compression: Compression,
    /// Most events per `_bulk` request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Largest `_bulk` body before compression (action lines included), e.g. `"5MiB"`. A
    /// single larger event is sent alone; a 413 splits a request in halves.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: ByteSize,
    /// Timeout of one request (connecting included).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// First delay between retries (of a whole request, or of the items the cluster
    /// rejected with 429 or 5xx); doubles with jitter up to `retry_max`. `Retry-After` is
    /// honoured instead when the cluster (or a proxy) sends it.
    #[serde(default = "http::default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between retries. Retries go on until the cluster takes every event:
    /// meanwhile the exporter waits and the checkpoint does not move.
    #[serde(default = "http::default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Ingest pipeline every document goes through (`?pipeline=`); default: the index's
    /// own default pipeline, if any.
    pub pipeline: Option<String>,
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

fn default_index() -> String {
    "logs-lacework.audit-default".to_string()
}
fn default_format() -> EventFormat {
    EventFormat::Ecs
}
fn default_batch_max_events() -> usize {
    500
}
fn default_batch_max_bytes() -> ByteSize {
    ByteSize(5 << 20)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl ElasticsearchConfig {
    /// The sink's name: `name` if set, else `elasticsearch`.
    pub fn sink_name(&self) -> &str {
        self.name.as_deref().unwrap_or("elasticsearch")
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| Err(ConfigError::invalid(key, message));
        http::validate_url(self.url.as_deref(), self.url_file.as_deref())?;
        if let Some(text) = &self.url {
            let url = url::Url::parse(text).expect("checked by validate_url");
            if !url.username().is_empty() || url.password().is_some() {
                return invalid(
                    "url",
                    "must not carry credentials: use api_key_file or basic".into(),
                );
            }
            if url.query().is_some() || url.fragment().is_some() {
                return invalid(
                    "url",
                    "must be the cluster's base URL, without a query or fragment".into(),
                );
            }
        }
        bulk::validate_index(&self.index)
            .map_err(|message| ConfigError::invalid("index", message))?;
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
        if self.api_key_file.is_some() && self.basic.is_some() {
            return invalid("basic", "set api_key_file or basic, not both".into());
        }
        if let Some(path) = &self.api_key_file
            && path.as_os_str().is_empty()
        {
            return invalid("api_key_file", "is empty".into());
        }
        if let Some(basic) = &self.basic {
            basic.validate()?;
            if basic.password_file.as_os_str().is_empty() {
                return invalid("basic.password_file", "is empty".into());
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return invalid(
                "client_cert_file",
                "mutual TLS needs both client_cert_file and client_key_file".into(),
            );
        }
        http::validate_headers(&self.headers, &self.header_files, &[])?;
        if let Some(pipeline) = &self.pipeline
            && (pipeline.is_empty()
                || pipeline
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            return invalid(
                "pipeline",
                format!("{pipeline:?} is not an ingest pipeline name"),
            );
        }
        Ok(())
    }

    /// Warnings about legal but risky settings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let has_credentials =
            self.api_key_file.is_some() || self.basic.is_some() || !self.header_files.is_empty();
        let mut warnings: Vec<String> = http::plain_http_warning(
            "elasticsearch",
            self.sink_name(),
            self.url.as_deref(),
            has_credentials,
        )
        .into_iter()
        .collect();
        let data_stream = ["logs-", "metrics-", "traces-"]
            .iter()
            .any(|prefix| self.index.starts_with(prefix));
        if data_stream && self.format != EventFormat::Ecs && self.pipeline.is_none() {
            warnings.push(format!(
                "elasticsearch {:?}: index {:?} is a data stream, which needs @timestamp; only format = \"ecs\" writes it (or set a pipeline that does)",
                self.sink_name(),
                self.index
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> ElasticsearchConfig {
        let text = format!("url = \"https://es.example.com:9200\"\n{extra}");
        toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The key validation names for `extra`, or `None` when it passes.
    fn invalid_key(extra: &str) -> Option<String> {
        parse(extra).validate().err().map(|error| {
            assert!(
                !error.message.ends_with('.'),
                "no trailing period: {:?}",
                error.message
            );
            error.key.unwrap_or_default()
        })
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = parse("");
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.sink_name(), "elasticsearch");
        assert_eq!(config.index, "logs-lacework.audit-default");
        assert_eq!(config.format, EventFormat::Ecs);
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.batch_max_events, 500);
        assert_eq!(config.batch_max_bytes, ByteSize(5 << 20));
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.retry_initial, Duration::from_secs(1));
        assert_eq!(config.retry_max, Duration::from_secs(60));
        assert!(config.warnings().is_empty());
    }

    #[test]
    fn each_bad_key_is_named() {
        let cases: &[(&str, Option<&str>)] = &[
            ("index = \"lacework-audit-%Y.%m.%d\"", None),
            (
                "api_key_file = \"/k\"\nheaders = { \"X-Team\" = \"soc\" }",
                None,
            ),
            ("basic = { user = \"lae\", password_file = \"/p\" }", None),
            (
                "compression = \"gzip\"\npipeline = \"lacework-audit\"",
                None,
            ),
            ("index = \"Lacework\"", Some("index")),
            ("index = \"lacework audit\"", Some("index")),
            ("index = \"lacework:audit\"", Some("index")),
            ("index = \"_lacework\"", Some("index")),
            ("index = \"lacework-%H\"", Some("index")),
            ("index = \"\"", Some("index")),
            ("batch_max_events = 0", Some("batch_max_events")),
            ("batch_max_bytes = \"100B\"", Some("batch_max_bytes")),
            ("timeout = \"10ms\"", Some("timeout")),
            ("retry_initial = \"2m\"", Some("retry_initial")),
            (
                "api_key_file = \"/k\"\nbasic = { user = \"u\", password_file = \"/p\" }",
                Some("basic"),
            ),
            (
                "basic = { user = \"a:b\", password_file = \"/p\" }",
                Some("basic.user"),
            ),
            ("client_cert_file = \"/c\"", Some("client_cert_file")),
            ("headers = { \"Authorization\" = \"x\" }", Some("headers")),
            (
                "header_files = { \"Content-Encoding\" = \"/x\" }",
                Some("header_files"),
            ),
            ("pipeline = \"a b\"", Some("pipeline")),
        ];
        for (extra, want) in cases {
            assert_eq!(invalid_key(extra).as_deref(), *want, "{extra}");
        }
        let no_url: ElasticsearchConfig = toml::from_str("index = \"x\"").unwrap();
        assert_eq!(no_url.validate().unwrap_err().key.as_deref(), Some("url"));
        let with_password: ElasticsearchConfig =
            toml::from_str("url = \"https://u:secret@es:9200\"").unwrap();
        let error = with_password.validate().unwrap_err();
        assert_eq!(error.key.as_deref(), Some("url"));
        let with_query: ElasticsearchConfig =
            toml::from_str("url = \"https://es:9200/?pipeline=x\"").unwrap();
        assert_eq!(
            with_query.validate().unwrap_err().key.as_deref(),
            Some("url")
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<ElasticsearchConfig>("url = \"https://es\"\napi_key = \"k\"")
            .unwrap_err();
        assert!(error.to_string().contains("api_key"), "{error}");
    }

    #[test]
    fn risky_settings_warn() {
        let remote: ElasticsearchConfig =
            toml::from_str("url = \"http://es.example.com:9200\"\napi_key_file = \"/k\"").unwrap();
        assert_eq!(remote.warnings().len(), 1, "{:?}", remote.warnings());
        assert!(remote.warnings()[0].contains("plain http"));
        let local: ElasticsearchConfig =
            toml::from_str("url = \"http://127.0.0.1:9200\"\napi_key_file = \"/k\"").unwrap();
        assert!(local.warnings().is_empty());
        let anonymous: ElasticsearchConfig =
            toml::from_str("url = \"http://es.example.com:9200\"").unwrap();
        assert!(anonymous.warnings().is_empty());
        let json = parse("format = \"json\"");
        assert!(
            json.warnings()[0].contains("@timestamp"),
            "{:?}",
            json.warnings()
        );
        assert!(
            parse("format = \"json\"\nindex = \"lacework\"")
                .warnings()
                .is_empty()
        );
    }
}
