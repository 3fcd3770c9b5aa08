//! Microsoft Entra access tokens by OAuth2 client credentials, cached and refreshed before
//! they expire.
//!
//! One exchange at a time: the cache sits behind an async mutex held across the exchange, so
//! concurrent callers wait for the same new token instead of each asking for one. The client
//! secret goes only into the token request's form body; the token only into the ingestion
//! request's `Authorization` header (marked sensitive). Neither is ever in a message.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::secrets::Secret;
use crate::sinks::http::without_url;

/// An access token and when to stop using it.
#[derive(Clone)]
pub struct AccessToken {
    /// The opaque token.
    value: Arc<str>,
    /// When the cache asks for the next one.
    refresh_at: Instant,
}

impl AccessToken {
    /// A token valid for `lifetime` from `obtained`.
    pub fn new(value: &str, obtained: Instant, lifetime: Duration) -> AccessToken {
        AccessToken {
            value: Arc::from(value),
            refresh_at: obtained + lifetime - refresh_margin(lifetime),
        }
    }

    /// The token text, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether the token may still be sent at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Entra refused the credentials or the request: an operator must act.
    Refused(String),
    /// Entra or the network failed for now; `retry_after` is Entra's own wait, if it sent one.
    Unavailable {
        /// What happened.
        message: String,
        /// The wait Entra asked for.
        retry_after: Option<Duration>,
    },
}

/// Gets and caches tokens for one app registration and scope.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    secret: Secret,
    scope: String,
    current: Mutex<Option<AccessToken>>,
}

/// The token endpoint's success answer.
#[derive(Deserialize)]
struct TokenAnswer {
    token_type: Option<String>,
    access_token: String,
    /// Seconds; a number from the v2.0 endpoint, a string from v1.0 and some proxies.
    expires_in: serde_json::Value,
}

/// The token endpoint's error answer (RFC 6749 section 5.2, plus Entra's `AADSTS` text).
#[derive(Deserialize)]
struct TokenRefusal {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenSource {
    /// A source asking `token_url` for tokens of `scope` as `client_id`.
    pub fn new(
        http: reqwest::Client,
        token_url: String,
        client_id: String,
        secret: Secret,
        scope: String,
    ) -> TokenSource {
        TokenSource {
            http,
            token_url,
            client_id,
            secret,
            scope,
            current: Mutex::new(None),
        }
    }

    /// The cached token, or a new one when there is none or it is near expiry.
    pub async fn get(&self) -> Result<AccessToken, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            if token.is_fresh(Instant::now()) {
                return Ok(token.clone());
            }
            tracing::debug!("Entra access token is near expiry; refreshing.");
        }
        let token = self.exchange().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Drops `rejected` from the cache (after a 401), unless it was already replaced.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|token| Arc::ptr_eq(&token.value, &rejected.value))
        {
            *current = None;
        }
    }

    async fn exchange(&self) -> Result<AccessToken, TokenError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.secret.expose())
            .append_pair("scope", &self.scope)
            .append_pair("grant_type", "client_credentials")
            .finish();
        let obtained = Instant::now();
        let response = self
            .http
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|error| TokenError::Unavailable {
                message: format!(
                    "token request to {}: {}",
                    self.token_url,
                    without_url(&error)
                ),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        let retry_after = crate::backoff::server_wait(status, response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|error| TokenError::Unavailable {
                message: format!(
                    "token answer from {}: {}",
                    self.token_url,
                    without_url(&error)
                ),
                retry_after: None,
            })?;
        if status != 200 {
            let refusal = serde_json::from_slice::<TokenRefusal>(&body).ok();
            let what = match &refusal {
                Some(refusal) => format!(
                    "{} {}: {}",
                    status,
                    refusal.error,
                    crate::text::excerpt(&one_line(&refusal.error_description), 400)
                ),
                None => format!(
                    "{status}: {}",
                    crate::text::excerpt(&String::from_utf8_lossy(&body), 300)
                ),
            };
            let retryable = matches!(status, 408 | 429 | 500 | 502..=599)
                || refusal
                    .as_ref()
                    .is_some_and(|r| r.error == "temporarily_unavailable");
            return Err(if retryable {
                TokenError::Unavailable {
                    message: format!("token endpoint {} answered {what}", self.token_url),
                    retry_after,
                }
            } else {
                TokenError::Refused(format!(
                    "token endpoint {} refused the app registration {} ({what}): check tenant_id, client_id, client_secret_file (the secret's Value, not its ID, and not expired) and scope",
                    self.token_url, self.client_id
                ))
            });
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|error| TokenError::Unavailable {
                message: format!(
                    "token endpoint {} answered 200 without a token: {error}",
                    self.token_url
                ),
                retry_after: None,
            })?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|kind| !kind.eq_ignore_ascii_case("bearer"))
        {
            return Err(TokenError::Refused(format!(
                "token endpoint {} issued a {:?} token, not a bearer token",
                self.token_url,
                answer.token_type.unwrap_or_default()
            )));
        }
        let lifetime = lifetime_of(&answer.expires_in).ok_or_else(|| TokenError::Unavailable {
            message: format!(
                "token endpoint {} answered expires_in {}, not a number of seconds",
                self.token_url, answer.expires_in
            ),
            retry_after: None,
        })?;
        if answer.access_token.trim().is_empty() {
            return Err(TokenError::Unavailable {
                message: format!("token endpoint {} answered an empty token", self.token_url),
                retry_after: None,
            });
        }
        tracing::debug!(
            lifetime_secs = lifetime.as_secs(),
            "Entra access token obtained."
        );
        Ok(AccessToken::new(&answer.access_token, obtained, lifetime))
    }
}

/// Refresh this long before expiry: 5 minutes, or a tenth of a short lifetime. Entra's
/// tokens live 60 to 90 minutes, so the 5 minutes are what counts outside tests.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(300))
}

/// `expires_in` as a lifetime: whole seconds, as a number or a string; never zero.
fn lifetime_of(expires_in: &serde_json::Value) -> Option<Duration> {
    let seconds = match expires_in {
        serde_json::Value::Number(number) => number.as_u64()?,
        serde_json::Value::String(text) => text.trim().parse().ok()?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// Entra's descriptions carry `\r\n` before their trace and correlation ids.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_five_minutes_or_a_tenth() {
        let check = |lifetime: u64, margin_ms: u64| {
            assert_eq!(
                refresh_margin(Duration::from_secs(lifetime)),
                Duration::from_millis(margin_ms),
                "lifetime {lifetime}s"
            );
        };
        check(3599, 300_000);
        check(5399, 300_000);
        check(3000, 300_000);
        check(600, 60_000);
        check(3, 300);
    }

    #[test]
    fn a_token_is_used_until_its_margin() {
        let obtained = Instant::now();
        let token = AccessToken::new("t", obtained, Duration::from_secs(3599));
        let check = |after_secs: u64, fresh: bool| {
            assert_eq!(
                token.is_fresh(obtained + Duration::from_secs(after_secs)),
                fresh,
                "{after_secs}s after it was obtained"
            );
        };
        check(0, true);
        check(3000, true);
        check(3298, true);
        check(3299, false);
        check(3599, false);
        check(7200, false);
        let short = AccessToken::new("t", obtained, Duration::from_secs(3));
        assert!(short.is_fresh(obtained + Duration::from_millis(2699)));
        assert!(!short.is_fresh(obtained + Duration::from_millis(2700)));
    }

    #[tokio::test]
    async fn a_refused_token_is_dropped_once() {
        let http = crate::tls::http_client(crate::tls::HttpClientOptions::default()).unwrap();
        let source = TokenSource::new(
            http,
            "http://127.0.0.1:9/tenant/oauth2/v2.0/token".into(),
            "client".into(),
            Secret::new("secret"),
            "https://monitor.azure.com/.default".into(),
        );
        let now = Instant::now();
        let old = AccessToken::new("old", now, Duration::from_secs(3599));
        let new = AccessToken::new("new", now, Duration::from_secs(3599));
        *source.current.lock().await = Some(old.clone());
        assert_eq!(source.get().await.unwrap().expose(), "old", "cached");
        // A 401 to a token already replaced (by a concurrent refresh) keeps the new one.
        *source.current.lock().await = Some(new.clone());
        source.invalidate(&old).await;
        assert_eq!(source.get().await.unwrap().expose(), "new");
        source.invalidate(&new).await;
        assert!(source.current.lock().await.is_none());
    }

    #[test]
    fn expires_in_is_read_as_number_or_string() {
        let check = |value: serde_json::Value, wanted: Option<u64>| {
            assert_eq!(
                lifetime_of(&value),
                wanted.map(Duration::from_secs),
                "{value}"
            );
        };
        check(serde_json::json!(3599), Some(3599));
        check(serde_json::json!("3599"), Some(3599));
        check(serde_json::json!(0), None);
        check(serde_json::json!(-5), None);
        check(serde_json::json!(null), None);
        check(serde_json::json!("soon"), None);
    }

    #[test]
    fn descriptions_become_one_line() {
        assert_eq!(
            one_line(
                "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nTimestamp: 2"
            ),
            "AADSTS7000215: Invalid client secret provided. Trace ID: 1 Timestamp: 2"
        );
    }
}
