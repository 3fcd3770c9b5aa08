//! `[[sinks]] type = "sentinel"`: the Entra app credentials, the Logs Ingestion endpoint, the
//! data collection rule and stream, batching and retries. Pure validation, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::ByteSize;
use crate::config::ConfigError;
use crate::sinks::http;

/// The Logs Ingestion API's limit on one request: 1 MB of JSON, counted uncompressed.
pub const MAX_REQUEST_BYTES: u64 = 1_000_000;

/// Configuration of a Microsoft Sentinel sink (Azure Monitor Logs Ingestion API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// Sink name for logs and `replay --sink`; default `sentinel`.
    pub name: Option<String>,
    /// Directory (tenant) ID of the app registration: a GUID or a verified domain such as
    /// `contoso.onmicrosoft.com`.
    pub tenant_id: String,
    /// Application (client) ID of the app registration, a GUID.
    pub client_id: String,
    /// File holding the app registration's client secret (its Value, not its Secret ID).
    /// `$CREDENTIALS_DIRECTORY` is expanded; never logged.
    pub client_secret_file: PathBuf,
    /// Microsoft Entra authority the token is asked from; default
    /// `https://login.microsoftonline.com`. Azure Government: `https://login.microsoftonline.us`.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// OAuth2 scope of the token; default `https://monitor.azure.com/.default`. Azure
    /// Government: `https://monitor.azure.us/.default`.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Logs ingestion URL of the data collection endpoint (DCE) or of the DCR itself, e.g.
    /// `https://my-dce-x1y2.eastus-1.ingest.monitor.azure.com`.
    pub endpoint: String,
    /// Immutable ID of the data collection rule: `dcr-` and 32 hex digits.
    pub dcr_immutable_id: String,
    /// The DCR's input stream, e.g. `Custom-LaceworkAudit_CL`.
    pub stream_name: String,
    /// `gzip` (default; sent with `Content-Encoding: gzip`) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Largest request, as uncompressed JSON; default and maximum `"1MB"` (1,000,000 bytes,
    /// the API's limit). A single event larger than this stops the sink.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: ByteSize,
    /// Most events (rows) per request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Timeout of one request (token or ingestion).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// First delay between retries of a failed request; doubles with jitter up to
    /// `retry_max`. A 429's `Retry-After` is honoured instead.
    #[serde(default = "http::default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between retries. Retries go on until the API accepts the batch:
    /// meanwhile the exporter waits and the checkpoint does not move.
    #[serde(default = "http::default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Extra headers on every ingestion request, e.g. `{ "X-Team" = "soc" }` for a proxy.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra headers whose values are secrets, each read from a file. Never logged.
    #[serde(default)]
    pub header_files: BTreeMap<String, PathBuf>,
    /// PEM file of CA certificates trusted in addition to the system's (a TLS-inspecting
    /// proxy). Verification is always on.
    pub ca_file: Option<PathBuf>,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Plain JSON.
    None,
    /// gzip, which the Logs Ingestion API accepts and recommends.
    #[default]
    Gzip,
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".to_string()
}
fn default_scope() -> String {
    "https://monitor.azure.com/.default".to_string()
}
fn default_batch_max_bytes() -> ByteSize {
    ByteSize(MAX_REQUEST_BYTES)
}
fn default_batch_max_events() -> usize {
    500
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Tenant names that work for interactive sign-in but not for client credentials.
const MULTI_TENANT_ALIASES: &[&str] = &["common", "organizations", "consumers"];

impl SentinelConfig {
    /// The sink's name: `name` if set, else `sentinel`.
    pub fn sink_name(&self) -> &str {
        self.name.as_deref().unwrap_or("sentinel")
    }

    /// The token endpoint: `{authority}/{tenant_id}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority.trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// The ingestion URL: `{endpoint}/dataCollectionRules/{dcr}/streams/{stream}` with the
    /// API version.
    pub fn ingestion_url(&self) -> String {
        format!(
            "{}/dataCollectionRules/{}/streams/{}?api-version=2023-01-01",
            self.endpoint.trim_end_matches('/'),
            self.dcr_immutable_id,
            self.stream_name
        )
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| Err(ConfigError::invalid(key, message));
        let tenant = self.tenant_id.as_str();
        if MULTI_TENANT_ALIASES.contains(&tenant.to_ascii_lowercase().as_str()) {
            return invalid(
                "tenant_id",
                format!("{tenant:?} cannot get an app-only token: use the directory (tenant) ID"),
            );
        }
        if !is_guid(tenant) && !is_domain(tenant) {
            return invalid(
                "tenant_id",
                format!(
                    "{tenant:?} is neither a GUID nor a domain such as contoso.onmicrosoft.com"
                ),
            );
        }
        if !is_guid(&self.client_id) {
            return invalid(
                "client_id",
                format!(
                    "{:?} is not a GUID (the app registration's Application (client) ID)",
                    self.client_id
                ),
            );
        }
        if self.client_secret_file.as_os_str().is_empty() {
            return invalid("client_secret_file", "is empty".into());
        }
        validate_origin("authority", &self.authority)?;
        validate_scope(&self.scope)?;
        validate_origin("endpoint", &self.endpoint)?;
        if !is_dcr_immutable_id(&self.dcr_immutable_id) {
            return invalid(
                "dcr_immutable_id",
                format!(
                    "{:?} is not a DCR immutable ID (dcr- and 32 hex digits, shown on the DCR's overview page)",
                    self.dcr_immutable_id
                ),
            );
        }
        let stream = self.stream_name.as_str();
        let table_part = stream.strip_prefix("Custom-").unwrap_or("");
        if table_part.is_empty()
            || !table_part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return invalid(
                "stream_name",
                format!(
                    "{stream:?} must be a custom stream declared in the DCR, e.g. \"Custom-LaceworkAudit_CL\""
                ),
            );
        }
        if self.batch_max_bytes.0 < 1024 || self.batch_max_bytes.0 > MAX_REQUEST_BYTES {
            return invalid(
                "batch_max_bytes",
                format!(
                    "must be between 1KiB and 1MB ({MAX_REQUEST_BYTES} bytes, the Logs Ingestion API's limit per request)"
                ),
            );
        }
        if self.batch_max_events == 0 || self.batch_max_events > 100_000 {
            return invalid("batch_max_events", "must be between 1 and 100000".into());
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
        if self
            .ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return invalid("ca_file", "is empty".into());
        }
        http::validate_headers(&self.headers, &self.header_files, &[])
    }

    /// Warnings about legal but risky settings: an authority, scope and endpoint of
    /// different Azure clouds (a public-cloud token is refused by Azure Government).
    pub(crate) fn warnings(&self) -> Vec<String> {
        let clouds = [
            ("authority", cloud_of(&self.authority)),
            ("scope", cloud_of(&self.scope)),
            ("endpoint", cloud_of(&self.endpoint)),
        ];
        let known: Vec<(&str, Cloud)> = clouds
            .iter()
            .filter_map(|(key, cloud)| cloud.map(|cloud| (*key, cloud)))
            .collect();
        match known.iter().find(|(_, cloud)| *cloud != known[0].1) {
            Some((key, cloud)) => vec![format!(
                "sentinel {:?}: {} is in {}, {} in {}: authority, scope and endpoint must be of one Azure cloud",
                self.sink_name(),
                known[0].0,
                known[0].1.name(),
                key,
                cloud.name()
            )],
            None => Vec::new(),
        }
    }
}

/// An Azure cloud, told by host name suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Public,
    Government,
    China,
}

impl Cloud {
    fn name(self) -> &'static str {
        match self {
            Cloud::Public => "Azure's public cloud",
            Cloud::Government => "Azure Government",
            Cloud::China => "Azure China",
        }
    }
}

fn cloud_of(url: &str) -> Option<Cloud> {
    let host = Url::parse(url).ok()?.host_str()?.to_ascii_lowercase();
    const SUFFIXES: &[(&str, Cloud)] = &[
        ("login.microsoftonline.com", Cloud::Public),
        ("monitor.azure.com", Cloud::Public),
        ("login.microsoftonline.us", Cloud::Government),
        ("monitor.azure.us", Cloud::Government),
        ("login.chinacloudapi.cn", Cloud::China),
        ("login.partner.microsoftonline.cn", Cloud::China),
        ("monitor.azure.cn", Cloud::China),
    ];
    SUFFIXES
        .iter()
        .find(|(suffix, _)| host == *suffix || host.ends_with(&format!(".{suffix}")))
        .map(|(_, cloud)| *cloud)
}

/// An https origin (plain http only on loopback, for tests), without query or fragment.
fn validate_origin(key: &str, text: &str) -> Result<(), ConfigError> {
    let parsed = Url::parse(text)
        .map_err(|error| ConfigError::invalid(key, format!("{text:?} is not a URL: {error}")))?;
    let plain_allowed = parsed.scheme() == "http" && http::is_loopback(text);
    if parsed.host().is_none() || !(parsed.scheme() == "https" || plain_allowed) {
        return Err(ConfigError::invalid(
            key,
            format!("{text:?} must be an https URL with a host"),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::invalid(
            key,
            format!("{text:?} must not have a query or fragment"),
        ));
    }
    Ok(())
}

/// Client credentials take a resource's `/.default` scope only.
fn validate_scope(scope: &str) -> Result<(), ConfigError> {
    let parsed = Url::parse(scope).ok();
    if !scope.ends_with("/.default") || parsed.is_none_or(|url| url.host().is_none()) {
        return Err(ConfigError::invalid(
            "scope",
            format!(
                "{scope:?} must be a resource's /.default scope, e.g. \"https://monitor.azure.com/.default\""
            ),
        ));
    }
    Ok(())
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_domain(text: &str) -> bool {
    text.contains('.')
        && text.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_dcr_immutable_id(text: &str) -> bool {
    text.strip_prefix("dcr-")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        client_id = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
        client_secret_file = "$CREDENTIALS_DIRECTORY/sentinel-secret"
        endpoint = "https://my-dce-x1y2.eastus-1.ingest.monitor.azure.com"
        dcr_immutable_id = "dcr-00112233445566778899aabbccddeeff"
        stream_name = "Custom-LaceworkAudit_CL"
    "#;

    fn parse(text: &str) -> SentinelConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The good configuration with `key = value` (TOML) set or replaced.
    fn with(key: &str, value: &str) -> SentinelConfig {
        let kept: Vec<&str> = GOOD
            .lines()
            .filter(|line| line.trim().split(" = ").next() != Some(key))
            .collect();
        parse(&format!("{}\n{key} = {value}\n", kept.join("\n")))
    }

    #[test]
    fn a_good_configuration_has_the_documented_defaults() {
        let config = parse(GOOD);
        config.validate().unwrap();
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
        assert_eq!(config.sink_name(), "sentinel");
        assert_eq!(config.compression, Compression::Gzip);
        assert_eq!(config.batch_max_bytes, ByteSize(1_000_000));
        assert_eq!(config.batch_max_events, 500);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.retry_initial, Duration::from_secs(1));
        assert_eq!(config.retry_max, Duration::from_secs(60));
        assert_eq!(
            config.token_url(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
        assert_eq!(
            config.ingestion_url(),
            "https://my-dce-x1y2.eastus-1.ingest.monitor.azure.com/dataCollectionRules/dcr-00112233445566778899aabbccddeeff/streams/Custom-LaceworkAudit_CL?api-version=2023-01-01"
        );
        // A domain tenant, Azure Government, a loopback test double.
        with("tenant_id", "\"contoso.onmicrosoft.com\"")
            .validate()
            .unwrap();
        with("endpoint", "\"http://127.0.0.1:8080\"")
            .validate()
            .unwrap();
    }

    #[test]
    fn each_bad_key_is_named() {
        let check = |key: &str, value: &str, named: &str, says: &str| {
            let error = with(key, value)
                .validate()
                .expect_err(&format!("{key} = {value} is refused"));
            assert_eq!(
                error.key.as_deref(),
                Some(named),
                "{key} = {value}: {error}"
            );
            assert!(
                error.message.contains(says),
                "{key} = {value}: {error} should say {says:?}"
            );
        };
        check("tenant_id", "\"common\"", "tenant_id", "app-only");
        check("tenant_id", "\"not a tenant\"", "tenant_id", "GUID");
        check("client_id", "\"my-app\"", "client_id", "GUID");
        check("client_secret_file", "\"\"", "client_secret_file", "empty");
        check(
            "authority",
            "\"http://login.microsoftonline.com\"",
            "authority",
            "https",
        );
        check(
            "authority",
            "\"login.microsoftonline.com\"",
            "authority",
            "not a URL",
        );
        check(
            "scope",
            "\"https://monitor.azure.com\"",
            "scope",
            "/.default",
        );
        check(
            "endpoint",
            "\"http://my-dce.eastus-1.ingest.monitor.azure.com\"",
            "endpoint",
            "https",
        );
        check(
            "endpoint",
            "\"https://dce.example/?x=1\"",
            "endpoint",
            "query",
        );
        check(
            "dcr_immutable_id",
            "\"dcr-0011\"",
            "dcr_immutable_id",
            "32 hex",
        );
        check("dcr_immutable_id", "\"my-dcr\"", "dcr_immutable_id", "dcr-");
        check(
            "stream_name",
            "\"LaceworkAudit_CL\"",
            "stream_name",
            "Custom-",
        );
        check("stream_name", "\"Custom-\"", "stream_name", "Custom-");
        check(
            "batch_max_bytes",
            "\"1MiB\"",
            "batch_max_bytes",
            "1000000 bytes",
        );
        check("batch_max_bytes", "\"512B\"", "batch_max_bytes", "1KiB");
        check("batch_max_events", "0", "batch_max_events", "between");
        check("timeout", "\"100ms\"", "timeout", "at least");
        check("retry_initial", "\"2m\"", "retry_initial", "retry_max");
        check(
            "headers",
            "{ Authorization = \"x\" }",
            "headers",
            "set by the sink",
        );
    }

    #[test]
    fn unknown_keys_and_compressions_are_refused() {
        let table = |extra: &str| toml::from_str::<SentinelConfig>(&format!("{GOOD}\n{extra}"));
        assert!(
            table("shared_key = \"x\"").is_err(),
            "the retired API's key"
        );
        assert!(table("compression = \"zstd\"").is_err());
        assert_eq!(
            table("compression = \"none\"").unwrap().compression,
            Compression::None
        );
    }

    #[test]
    fn clouds_that_do_not_match_are_warned_about() {
        let government = with("authority", "\"https://login.microsoftonline.us\"");
        let warnings = government.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("Azure Government"), "{warnings:?}");
        let text = format!(
            "{}\nauthority = \"https://login.microsoftonline.us\"\nscope = \"https://monitor.azure.us/.default\"\n",
            GOOD.replace(
                "eastus-1.ingest.monitor.azure.com",
                "usgovvirginia-1.ingest.monitor.azure.us"
            )
        );
        let all_government = parse(&text);
        all_government.validate().unwrap();
        assert!(all_government.warnings().is_empty());
    }
}
