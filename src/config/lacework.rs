//! The `[lacework]` section (API host, API key and token settings) and the `Credentials` it
//! resolves to once its secret and key files are read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::ConfigError;
use crate::config::key_file::{KeyFile, read_key_file};
use crate::config::secrets::{Secret, expand_credentials_directory, read_secret};

/// One account a process polls: its name and its `[lacework]` settings, inherited ones
/// included.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    /// The account's name in logs and `state show`.
    pub name: String,
    /// Its settings.
    pub lacework: LaceworkConfig,
}

impl LaceworkConfig {
    /// The accounts this configuration polls: every `[[lacework.accounts]]` entry merged over
    /// `raw` (the `[lacework]` table as written), or this section alone when there are none.
    pub fn resolve_accounts(&self, raw: &toml::Table) -> Result<Vec<AccountSpec>, ConfigError> {
        let name_of = |lacework: &LaceworkConfig, idx: usize| {
            lacework
                .sub_account
                .clone()
                .or_else(|| lacework.account.clone())
                .unwrap_or_else(|| format!("account-{idx}"))
        };
        if self.accounts.is_empty() {
            return Ok(vec![AccountSpec {
                name: name_of(self, 0),
                lacework: self.clone(),
            }]);
        }
        let mut base = raw.clone();
        base.remove("accounts");
        base.remove("discover_sub_accounts");
        let mut specs: Vec<AccountSpec> = Vec::new();
        for (idx, entry) in self.accounts.iter().enumerate() {
            let key = |inner: Option<&str>| match inner {
                Some(inner) => format!("lacework.accounts[{idx}].{inner}"),
                None => format!("lacework.accounts[{idx}]"),
            };
            let mut merged = base.clone();
            let mut name = None;
            for (field, value) in entry {
                if field == "name" {
                    match value.as_str().map(str::trim).filter(|n| !n.is_empty()) {
                        Some(text) => name = Some(text.to_string()),
                        None => {
                            return Err(ConfigError::invalid(
                                key(Some("name")),
                                "must be a non-empty string",
                            ));
                        }
                    }
                } else if field == "accounts" || field == "discover_sub_accounts" {
                    return Err(ConfigError::invalid(
                        key(Some(field)),
                        "is only read at the top of [lacework]",
                    ));
                } else {
                    merged.insert(field.clone(), value.clone());
                }
            }
            let lacework: LaceworkConfig =
                toml::Value::Table(merged)
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        ConfigError::invalid(key(None), e.message().to_string())
                    })?;
            lacework.validate().map_err(|mut error| {
                error.key = Some(key(error
                    .key
                    .as_deref()
                    .and_then(|k| k.strip_prefix("lacework."))));
                error
            })?;
            let name = name.unwrap_or_else(|| name_of(&lacework, idx));
            if specs.iter().any(|s| s.name.eq_ignore_ascii_case(&name)) {
                return Err(ConfigError::invalid(
                    key(Some("name")),
                    format!("account name {name:?} is used twice: give each account a unique name"),
                ));
            }
            specs.push(AccountSpec { name, lacework });
        }
        Ok(specs)
    }
}

/// Where and how to reach the Lacework API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaceworkConfig {
    /// Account name (`acme` becomes `https://acme.lacework.net`) or a full API host such as
    /// `acme.fra.lacework.net`. May be left out when `api_key_file` names the account or
    /// `base_url` is set.
    pub account: Option<String>,
    /// Overrides the API origin derived from `account` (proxies, tests). `http` is allowed only
    /// for loopback addresses, so a bearer token never crosses a network in clear text.
    pub base_url: Option<String>,
    /// API key id, e.g. `ACME_1234...` or a FortiCloud UUID. May come from `api_key_file`.
    pub key_id: Option<String>,
    /// The API key secret inline. Works, but is warned about: prefer `secret_file`.
    pub secret: Option<Secret>,
    /// File holding the API key secret (trailing whitespace ignored). `$CREDENTIALS_DIRECTORY`
    /// in the path is expanded, for systemd's `LoadCredential=`.
    pub secret_file: Option<PathBuf>,
    /// The key file the Lacework console downloads (JSON with `keyId`, `secret`, optional
    /// `account` and `subAccount`), or FortiCloud's TXT file (`apiId:` and `password:` lines).
    pub api_key_file: Option<PathBuf>,
    /// Sub-account to read, sent as the `Account-Name` header (org-level keys only).
    pub sub_account: Option<String>,
    /// Read organization-level audit logs (`Org-Access: true`); needs org admin rights.
    #[serde(default)]
    pub org_access: bool,
    /// Lifetime asked for each access token (1m to 24h). Tokens are refreshed before they expire.
    #[serde(default = "default_token_ttl", with = "humantime_serde")]
    pub token_ttl: Duration,
    /// How long one HTTP request may take before it is abandoned and retried.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How many times one request is retried on 429, 5xx, timeouts and connection errors
    /// before the error is reported (the daemon then retries the whole window later).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First delay between retries; it doubles on each retry, with jitter, up to `retry_max`.
    /// A 429's `RateLimit-Reset` or `Retry-After` wait is honoured instead when present.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between two retries.
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// The request budget this process spends with this API key: `"384/1h"` is 384 requests
    /// per hour (80% of the 480 Lacework allows per user per endpoint), shared by the live
    /// walk, re-sweeps, replays and token exchanges.
    #[serde(default)]
    pub rate_limit: RateBudget,
    /// More accounts this process polls (`[[lacework.accounts]]`), each a `[lacework]` table
    /// that inherits every key it leaves out from this one, plus an optional `name` for its
    /// stream (unique; default: its `sub_account`, else its `account`). An org key with two
    /// sub-accounts is two entries with only `sub_account`; another tenant is an entry with
    /// its own `account` and key.
    #[serde(default)]
    pub accounts: Vec<toml::Table>,
    /// Poll every account the key can reach (`GET /api/v2/UserProfile`), read at start and
    /// on reload, each through `Account-Name`, besides those listed in `accounts`.
    #[serde(default)]
    pub discover_sub_accounts: bool,
}

/// A request budget: `requests` per `period`, written `"384/1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    /// Requests allowed per period.
    pub requests: u32,
    /// The period, refilled continuously.
    pub period: Duration,
}

impl Default for RateBudget {
    fn default() -> RateBudget {
        RateBudget {
            requests: 384,
            period: Duration::from_secs(3600),
        }
    }
}

impl std::str::FromStr for RateBudget {
    type Err = String;

    fn from_str(text: &str) -> Result<RateBudget, String> {
        let shape = || format!("{text:?} is not REQUESTS/PERIOD, e.g. \"384/1h\"");
        let (requests, period) = text.split_once('/').ok_or_else(shape)?;
        let requests: u32 = requests.trim().parse().map_err(|_| shape())?;
        let period = humantime::parse_duration(period.trim()).map_err(|_| shape())?;
        if requests == 0 || period < Duration::from_secs(1) {
            return Err(format!(
                "{text:?} allows no requests: give at least 1 request per 1s or longer"
            ));
        }
        Ok(RateBudget { requests, period })
    }
}

impl<'de> Deserialize<'de> for RateBudget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for RateBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.requests,
            humantime::format_duration(self.period)
        )
    }
}

fn default_token_ttl() -> Duration {
    Duration::from_secs(3600)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_retries() -> u32 {
    8
}

fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}

fn default_retry_max() -> Duration {
    Duration::from_secs(60)
}

/// The longest token lifetime the API grants.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(86_400);

impl LaceworkConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let secret_sources = [
            self.secret.is_some(),
            self.secret_file.is_some(),
            self.api_key_file.is_some(),
        ];
        match secret_sources.iter().filter(|set| **set).count() {
            0 => {
                return Err(ConfigError::invalid(
                    "lacework.secret_file",
                    "no API key secret is configured: set secret_file, api_key_file or secret",
                ));
            }
            1 => {}
            _ => {
                return Err(ConfigError::invalid(
                    "lacework.secret",
                    "set only one of secret, secret_file and api_key_file",
                ));
            }
        }
        if self.api_key_file.is_none() {
            match &self.key_id {
                None => {
                    return Err(ConfigError::invalid(
                        "lacework.key_id",
                        "key_id is required unless api_key_file provides it",
                    ));
                }
                Some(key_id) if key_id.trim().is_empty() => {
                    return Err(ConfigError::invalid("lacework.key_id", "key_id is empty"));
                }
                Some(_) => {}
            }
            if self.account.is_none() && self.base_url.is_none() {
                return Err(ConfigError::invalid(
                    "lacework.account",
                    "account is required (e.g. account = \"acme\" for https://acme.lacework.net)",
                ));
            }
        }
        if let Some(account) = &self.account {
            api_origin_for_account(account)
                .map_err(|message| ConfigError::invalid("lacework.account", message))?;
        }
        if let Some(base_url) = &self.base_url {
            parse_base_url(base_url)
                .map_err(|message| ConfigError::invalid("lacework.base_url", message))?;
        }
        if self.token_ttl < Duration::from_secs(60) || self.token_ttl > MAX_TOKEN_TTL {
            return Err(ConfigError::invalid(
                "lacework.token_ttl",
                format!(
                    "{} is out of range: the API grants tokens of 1m to 24h",
                    humantime::format_duration(self.token_ttl)
                ),
            ));
        }
        if self.request_timeout < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "lacework.request_timeout",
                "must be at least 1s",
            ));
        }
        if self.retry_initial.is_zero() || self.retry_initial > self.retry_max {
            return Err(ConfigError::invalid(
                "lacework.retry_initial",
                "must be above zero and at most retry_max",
            ));
        }
        if self
            .sub_account
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(ConfigError::invalid("lacework.sub_account", "is empty"));
        }
        Ok(())
    }

    /// The API origin: `base_url` when set, else the origin of `account`, or of the account
    /// the key file names (`key_file_account`) when the section has none.
    pub fn api_origin(&self, key_file_account: Option<&str>) -> Result<Url, ConfigError> {
        if let Some(base_url) = &self.base_url {
            return parse_base_url(base_url)
                .map_err(|message| ConfigError::invalid("lacework.base_url", message));
        }
        let account = self
            .account
            .as_deref()
            .or(key_file_account)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "lacework.account",
                    "account is required: the key file does not name one",
                )
            })?;
        api_origin_for_account(account)
            .map_err(|message| ConfigError::invalid("lacework.account", message))
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.secret.is_some() {
            warnings.push(
                "lacework.secret holds the API secret inline: prefer secret_file or api_key_file, readable only by the service".to_string(),
            );
        }
        if self.org_access && self.sub_account.is_some() {
            warnings.push(
                "lacework.org_access is true, so the API ignores lacework.sub_account".to_string(),
            );
        }
        warnings
    }
}

/// Everything needed to reach the API, after key files were read.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// API key id.
    pub key_id: String,
    /// API key secret.
    pub secret: Secret,
    /// Origin of the API, e.g. `https://acme.lacework.net`.
    pub api_origin: Url,
    /// Sub-account sent as `Account-Name`, if any.
    pub sub_account: Option<String>,
}

impl Credentials {
    /// Reads secret and key files named by the configuration.
    /// `credentials_directory` is systemd's `$CREDENTIALS_DIRECTORY`, if set.
    pub fn resolve(
        config: &LaceworkConfig,
        credentials_directory: Option<&Path>,
    ) -> Result<Credentials, ConfigError> {
        let mut key_file = KeyFile::default();
        let secret = if let Some(secret) = &config.secret {
            secret.clone()
        } else if let Some(path) = &config.secret_file {
            read_secret(path, credentials_directory)
                .map_err(|message| ConfigError::invalid("lacework.secret_file", message))?
        } else if let Some(path) = &config.api_key_file {
            let path = expand_credentials_directory(path, credentials_directory)
                .map_err(|message| ConfigError::invalid("lacework.api_key_file", message))?;
            key_file = read_key_file(&path)
                .map_err(|message| ConfigError::invalid("lacework.api_key_file", message))?;
            key_file.secret.clone().ok_or_else(|| {
                ConfigError::invalid(
                    "lacework.api_key_file",
                    format!("{} has no secret (or password) entry", path.display()),
                )
            })?
        } else {
            return Err(ConfigError::invalid(
                "lacework.secret_file",
                "no API key secret is configured",
            ));
        };

        let key_id = match (&config.key_id, &key_file.key_id) {
            (Some(configured), Some(from_file)) if configured.trim() != from_file.trim() => {
                return Err(ConfigError::invalid(
                    "lacework.key_id",
                    "differs from the keyId in api_key_file: remove one of them",
                ));
            }
            (Some(key_id), _) | (None, Some(key_id)) => key_id.trim().to_string(),
            (None, None) => {
                return Err(ConfigError::invalid(
                    "lacework.key_id",
                    "no key id: set key_id or use an api_key_file that has keyId",
                ));
            }
        };

        Ok(Credentials {
            key_id,
            secret,
            api_origin: config.api_origin(key_file.account.as_deref())?,
            sub_account: config.sub_account.clone().or(key_file.sub_account),
        })
    }
}

/// The API origin for an account name or host: `acme` -> `https://acme.lacework.net`.
pub fn api_origin_for_account(account: &str) -> Result<Url, String> {
    let host = account
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err("account is empty".to_string());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!(
            "{account:?} is not an account name or host such as \"acme\" or \"acme.fra.lacework.net\""
        ));
    }
    let host = if host.ends_with(".lacework.net") {
        host
    } else {
        format!("{host}.lacework.net")
    };
    Url::parse(&format!("https://{host}")).map_err(|error| format!("{account:?}: {error}"))
}

/// Parses `base_url`, allowing plain `http` only on loopback.
pub fn parse_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|error| format!("{text:?} is not a URL: {error}"))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(domain)) => domain == "localhost",
                None => false,
            };
            if !loopback {
                return Err(format!(
                    "{text:?} uses http on a non-loopback host: the bearer token would travel in clear text, use https"
                ));
            }
        }
        other => return Err(format!("{text:?}: scheme {other} is not http or https")),
    }
    if url.host().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "{text:?} must be an origin only (scheme, host, port), without a path"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_become_lacework_hosts() {
        let check = |input: &str, expected: &str| {
            assert_eq!(
                api_origin_for_account(input).unwrap().as_str(),
                expected,
                "{input}"
            );
        };
        check("acme", "https://acme.lacework.net/");
        check("ACME", "https://acme.lacework.net/");
        check("acme.fra", "https://acme.fra.lacework.net/");
        check("acme.fra.lacework.net", "https://acme.fra.lacework.net/");
        check("https://acme.lacework.net/", "https://acme.lacework.net/");
        assert!(api_origin_for_account("acme corp").is_err());
        assert!(api_origin_for_account("").is_err());
    }

    #[test]
    fn rate_budgets_parse() {
        assert_eq!(
            "384/1h".parse::<RateBudget>().unwrap(),
            RateBudget::default()
        );
        assert_eq!(
            " 10 / 30s ".parse::<RateBudget>().unwrap(),
            RateBudget {
                requests: 10,
                period: Duration::from_secs(30)
            }
        );
        for bad in ["384", "x/1h", "384/hour", "0/1h", "5/100ms", "-1/1h"] {
            assert!(bad.parse::<RateBudget>().is_err(), "{bad}");
        }
        assert_eq!(RateBudget::default().to_string(), "384/1h");
    }

    #[test]
    fn base_url_refuses_clear_text_off_loopback() {
        assert!(parse_base_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_base_url("http://localhost:8080").is_ok());
        assert!(parse_base_url("http://[::1]:8080").is_ok());
        assert!(parse_base_url("https://proxy.internal:8443").is_ok());
        assert!(
            parse_base_url("http://10.0.0.5:8080")
                .unwrap_err()
                .contains("clear text")
        );
        assert!(
            parse_base_url("https://x.lacework.net/api/v2")
                .unwrap_err()
                .contains("path")
        );
        assert!(parse_base_url("ftp://x").is_err());
    }
}
