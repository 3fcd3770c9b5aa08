//! Access tokens: the `POST /api/v2/access/tokens` exchange, cached and refreshed ahead of expiry.
//!
//! One exchange at a time: the cache sits behind an async mutex held across the exchange, so
//! concurrent callers wait for the same new token instead of each asking for one.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::secrets::Secret;
use crate::lacework::Error;
use crate::lacework::clock::ServerClock;
use crate::lacework::governor::{Governor, Priority};
use crate::lacework::http::{api_message, read_body, transport_label};

/// Path of the token exchange.
pub const TOKEN_PATH: &str = "/api/v2/access/tokens";

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    /// The opaque token.
    pub value: Arc<str>,
    refresh_at: Instant,
}

/// Exchanges the API key for tokens and caches the current one.
pub struct TokenProvider {
    http: reqwest::Client,
    url: Url,
    key_id: String,
    secret: Secret,
    ttl: Duration,
    current: Mutex<Option<Token>>,
    governor: Arc<Governor>,
    server_clock: ServerClock,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
    #[serde(rename = "expiresAt")]
    expires_at: Option<String>,
}

impl TokenProvider {
    pub fn new(
        http: reqwest::Client,
        origin: &Url,
        key_id: String,
        secret: Secret,
        ttl: Duration,
        governor: Arc<Governor>,
        server_clock: ServerClock,
    ) -> TokenProvider {
        TokenProvider {
            http,
            url: origin.join(TOKEN_PATH).expect("static path joins"),
            key_id,
            secret,
            ttl,
            current: Mutex::new(None),
            governor,
            server_clock,
        }
    }

    /// The cached token, or a fresh one when there is none or it is near expiry.
    pub async fn get(&self) -> Result<Token, Error> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            if Instant::now() < token.refresh_at {
                return Ok(token.clone());
            }
            tracing::debug!("Access token is near expiry; refreshing.");
        }
        let token = self.exchange().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Drops `rejected` from the cache (after a 401), unless it was already replaced.
    pub async fn invalidate(&self, rejected: &Token) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.value, &rejected.value))
        {
            *current = None;
        }
    }

    async fn exchange(&self) -> Result<Token, Error> {
        let body = serde_json::json!({
            "keyId": self.key_id,
            "expiryTime": self.ttl.as_secs(),
        });
        // Everyone needs the token, so it goes at the live poll's priority.
        self.governor.acquire(Priority::Live, TOKEN_PATH).await;
        let response = self
            .http
            .post(self.url.clone())
            .header("X-LW-UAKS", self.secret.expose())
            .json(&body)
            .send()
            .await
            .map_err(|source| {
                crate::metrics::emit::api_request(TOKEN_PATH, transport_label(&source));
                Error::Transport {
                    endpoint: TOKEN_PATH.to_string(),
                    source,
                }
            })?;
        let status = response.status().as_u16();
        crate::metrics::emit::api_request(TOKEN_PATH, response.status().as_str());
        let headers = response.headers().clone();
        self.governor.observe(TOKEN_PATH, status, &headers);
        self.server_clock.observe(&headers);
        let bytes = read_body(response, TOKEN_PATH).await?;
        match status {
            200 | 201 => {}
            401 | 403 => {
                return Err(Error::Auth {
                    status,
                    endpoint: TOKEN_PATH.to_string(),
                    message: format!(
                        "{} (check key_id and the secret of API key {}. Lacework also refuses a key that was disabled or deleted, and a key whose creator is no longer an admin (made a plain user since): see Settings > API keys, and create a new key if needed)",
                        api_message(&bytes),
                        self.key_id
                    ),
                });
            }
            _ => {
                return Err(Error::Status {
                    status,
                    endpoint: TOKEN_PATH.to_string(),
                    message: api_message(&bytes),
                    retry_after: crate::backoff::server_wait(status, &headers),
                });
            }
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|error| Error::Decode {
                endpoint: TOKEN_PATH.to_string(),
                message: format!(
                    "expected {{\"token\", \"expiresAt\"}}: {error}; the body begins {:?}",
                    crate::text::excerpt(&String::from_utf8_lossy(&bytes), 120)
                ),
            })?;
        if parsed.token.trim().is_empty() {
            return Err(Error::Decode {
                endpoint: TOKEN_PATH.to_string(),
                message: "the token is empty".to_string(),
            });
        }
        let lifetime = parsed
            .expires_at
            .as_deref()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text.trim()).ok())
            .and_then(|expires| {
                (expires.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .ok()
            })
            .filter(|lifetime| !lifetime.is_zero())
            .unwrap_or_else(|| {
                tracing::warn!(
                    expires_at = parsed.expires_at.as_deref().unwrap_or("(missing)"),
                    "Token expiry is missing, unreadable or past; assuming the requested lifetime."
                );
                self.ttl
            })
            .min(self.ttl.max(Duration::from_secs(60)));
        let refresh_at = Instant::now() + lifetime - refresh_margin(lifetime);
        tracing::debug!(lifetime_secs = lifetime.as_secs(), "Access token obtained.");
        Ok(Token {
            value: Arc::from(parsed.token),
            refresh_at,
        })
    }
}

/// Refresh this long before expiry: 5 minutes, or a fifth of a short lifetime.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_five_minutes_or_a_fifth() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(12)
        );
    }
}
