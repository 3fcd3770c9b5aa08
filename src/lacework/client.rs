//! `LaceworkClient`: authenticated, retried requests, and `AuditLogPager`, which walks the
//! pages of one time range.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use url::Url;

use crate::backoff::{Backoff, server_wait, with_small_jitter};
use crate::config::{Credentials, LaceworkConfig, RateBudget};
use crate::lacework::auth::{Token, TokenProvider};
use crate::lacework::clock::ServerClock;
use crate::lacework::governor::{Governor, Priority};
use crate::lacework::http::{api_message, read_body, transport_label};
use crate::lacework::{AuditLogPage, Error};

/// How many 429s in a row one request waits out per configured retry before it gives up.
const RATE_LIMITED_PER_RETRY: u32 = 4;

/// Path of the AuditLogs endpoint.
pub const AUDIT_LOGS_PATH: &str = "/api/v2/AuditLogs";

/// Settings of the client that are not credentials.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Lifetime asked for each token.
    pub token_ttl: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of one request on transient errors.
    pub max_retries: u32,
    /// Delays between those retries.
    pub backoff: Backoff,
    /// Send `Org-Access: true`.
    pub org_access: bool,
    /// The request budget of the API key in this process.
    pub rate_limit: RateBudget,
}

impl ClientOptions {
    /// Options from the `[lacework]` section.
    pub fn from_config(config: &LaceworkConfig) -> ClientOptions {
        ClientOptions {
            token_ttl: config.token_ttl,
            request_timeout: config.request_timeout,
            max_retries: config.max_retries,
            backoff: Backoff {
                initial: config.retry_initial,
                max: config.retry_max,
            },
            org_access: config.org_access,
            rate_limit: config.rate_limit,
        }
    }
}

/// A client for one account (or sub-account) of the Lacework API. Cheap to clone.
#[derive(Clone)]
pub struct LaceworkClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    origin: Url,
    key_id: String,
    scope_headers: HeaderMap,
    tokens: TokenProvider,
    governor: Arc<Governor>,
    max_retries: u32,
    backoff: Backoff,
    server_clock: ServerClock,
}

impl LaceworkClient {
    /// The id of the API key this client authenticates with.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// Builds a client; sends nothing yet.
    pub fn new(
        credentials: &Credentials,
        options: &ClientOptions,
    ) -> Result<LaceworkClient, Error> {
        let http = crate::tls::http_client(crate::tls::HttpClientOptions {
            timeout: options.request_timeout,
            connect_timeout: options.request_timeout.min(Duration::from_secs(15)),
            ..Default::default()
        })
        .map_err(|source| Error::Transport {
            endpoint: credentials.api_origin.to_string(),
            source,
        })?;
        let mut scope_headers = HeaderMap::new();
        scope_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if options.org_access {
            scope_headers.insert("Org-Access", HeaderValue::from_static("true"));
        }
        if let Some(sub_account) = &credentials.sub_account {
            let value = HeaderValue::from_str(sub_account).map_err(|_| Error::Setup {
                message: format!("sub_account {sub_account:?} cannot be sent as a header"),
            })?;
            scope_headers.insert("Account-Name", value);
        }
        // One governor per key: every client this process builds with the key shares it.
        let governor = Governor::for_key(
            &format!("{}|{}", credentials.api_origin, credentials.key_id),
            options.rate_limit,
        );
        let server_clock = ServerClock::default();
        let tokens = TokenProvider::new(
            http.clone(),
            &credentials.api_origin,
            credentials.key_id.clone(),
            credentials.secret.clone(),
            options.token_ttl,
            Arc::clone(&governor),
            server_clock.clone(),
        );
        Ok(LaceworkClient {
            inner: Arc::new(Inner {
                http,
                origin: credentials.api_origin.clone(),
                key_id: credentials.key_id.clone(),
                scope_headers,
                tokens,
                governor,
                max_retries: options.max_retries,
                backoff: options.backoff,
                server_clock,
            }),
        })
    }

    /// The API server's clock, as its answers' `Date` headers tell it.
    pub fn server_clock(&self) -> &ServerClock {
        &self.inner.server_clock
    }

    /// Obtains a token, proving the key works (used by `validate --online`).
    pub async fn check_credentials(&self) -> Result<(), Error> {
        self.with_retries(AUDIT_LOGS_PATH, || async {
            self.inner.tokens.get().await.map(drop)
        })
        .await
    }

    /// A pager over the records created in `[start_ms, end_ms]` as the API bounds them; its
    /// requests wait for the budget at `priority`.
    pub fn audit_logs(&self, start_ms: i64, end_ms: i64, priority: Priority) -> AuditLogPager {
        let mut url = self
            .inner
            .origin
            .join(AUDIT_LOGS_PATH)
            .expect("static path joins");
        url.query_pairs_mut()
            .append_pair("startTime", &format_api_time(start_ms))
            .append_pair("endTime", &format_api_time(end_ms));
        AuditLogPager {
            client: self.clone(),
            next: Some(url),
            seen: HashSet::new(),
            pages_read: 0,
            resumed: false,
            priority,
        }
    }

    /// A pager that continues a walk at a saved `nextPage` link (after a crash). The link is
    /// checked against the origin like any other; a server that no longer knows it answers
    /// 404, reported as `Error::PageExpired`.
    pub fn resume_audit_logs(
        &self,
        next_page: &str,
        priority: Priority,
    ) -> Result<AuditLogPager, Error> {
        let url = self.check_next_page(next_page)?;
        Ok(AuditLogPager {
            client: self.clone(),
            seen: HashSet::from([url.to_string()]),
            next: Some(url),
            pages_read: 0,
            resumed: true,
            priority,
        })
    }

    async fn with_retries<T, F, Fut>(&self, endpoint: &str, mut attempt_once: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut attempt = 0;
        let mut rate_limited = 0;
        loop {
            match attempt_once().await {
                Ok(value) => return Ok(value),
                // A 429 is pacing, not failure: the governor holds every request on the key
                // until it has passed, so it neither sleeps here nor spends a retry. Only a
                // server that keeps refusing far longer ends the request (the daemon then
                // reads the window again later; `--once` exits instead of waiting forever).
                Err(error) if error.status() == Some(429) => {
                    if rate_limited >= RATE_LIMITED_PER_RETRY * self.inner.max_retries.max(1) {
                        return Err(error);
                    }
                    rate_limited += 1;
                    crate::metrics::emit::api_retry(endpoint);
                    tracing::debug!(endpoint, error = %error, "Rate limited; waiting for the governor.");
                }
                Err(error) if error.is_transient() && attempt < self.inner.max_retries => {
                    let wait = match error.retry_after() {
                        Some(wait) => with_small_jitter(wait),
                        None => self.inner.backoff.delay(attempt),
                    };
                    crate::metrics::emit::api_retry(endpoint);
                    tracing::warn!(
                        endpoint,
                        attempt = attempt + 1,
                        max_retries = self.inner.max_retries,
                        wait_ms = wait.as_millis() as u64,
                        error = %error,
                        "Lacework request failed; retrying."
                    );
                    crate::heartbeat::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// GETs an endpoint that answers one JSON document (the user inventory), with the
    /// token, the governor at `priority`, retries and one token refresh on 401: the body of a
    /// 200. A 401 or 403 is `Error::Auth` (for these endpoints: missing rights, not a bad key,
    /// since the token was just issued).
    pub async fn get_document(
        &self,
        path: &'static str,
        priority: Priority,
    ) -> Result<Vec<u8>, Error> {
        let url = self.inner.origin.join(path).expect("static path joins");
        self.with_retries(path, || async {
            let mut refreshed = false;
            loop {
                // The budget first, then the token: a wait for the budget can outlast a
                // token taken before it (measured: 401s with 20 accounts on one key).
                self.inner.governor.acquire(priority, path).await;
                let token = self.inner.tokens.get().await?;
                match self.send_get_document(&url, path, &token).await {
                    Err(Error::Auth { status: 401, .. }) if !refreshed => {
                        self.inner.tokens.invalidate(&token).await;
                        refreshed = true;
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    /// One GET with the token and the scope headers: its status, headers and body, with the
    /// request counted and its answer shown to the governor and the server clock.
    async fn get_answer(
        &self,
        url: &Url,
        path: &'static str,
        token: &Token,
    ) -> Result<(u16, HeaderMap, bytes::Bytes), Error> {
        let response = self
            .inner
            .http
            .get(url.clone())
            .bearer_auth(&token.value)
            .headers(self.inner.scope_headers.clone())
            .send()
            .await
            .map_err(|source| {
                crate::metrics::emit::api_request(path, transport_label(&source));
                Error::Transport {
                    endpoint: path.to_string(),
                    source,
                }
            })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        crate::metrics::emit::api_request(path, response.status().as_str());
        self.inner.governor.observe(path, status, &headers);
        self.inner.server_clock.observe(&headers);
        let bytes = read_body(response, path).await?;
        Ok((status, headers, bytes))
    }

    async fn send_get_document(
        &self,
        url: &Url,
        path: &'static str,
        token: &Token,
    ) -> Result<Vec<u8>, Error> {
        let (status, headers, bytes) = self.get_answer(url, path, token).await?;
        match status {
            200 => Ok(bytes.to_vec()),
            401 | 403 => Err(Error::Auth {
                status,
                endpoint: path.to_string(),
                message: api_message(&bytes),
            }),
            _ => Err(Error::Status {
                status,
                endpoint: path.to_string(),
                message: api_message(&bytes),
                retry_after: server_wait(status, &headers),
            }),
        }
    }

    /// GETs one AuditLogs page with retries and one token refresh on 401.
    async fn get_page(
        &self,
        url: &Url,
        is_first_page: bool,
        priority: Priority,
    ) -> Result<AuditLogPage, Error> {
        self.with_retries(AUDIT_LOGS_PATH, || {
            self.get_page_once(url, is_first_page, priority)
        })
        .await
    }

    async fn get_page_once(
        &self,
        url: &Url,
        is_first_page: bool,
        priority: Priority,
    ) -> Result<AuditLogPage, Error> {
        let mut refreshed = false;
        loop {
            // The budget first, then the token: a wait for the budget can outlast a token
            // taken before it.
            self.inner.governor.acquire(priority, AUDIT_LOGS_PATH).await;
            let token = self.inner.tokens.get().await?;
            match self.send_get(url, &token, is_first_page).await {
                Err(Error::Auth { status: 401, .. }) if !refreshed => {
                    tracing::info!("Access token rejected (401); refreshing it once.");
                    self.inner.tokens.invalidate(&token).await;
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    async fn send_get(
        &self,
        url: &Url,
        token: &Token,
        is_first_page: bool,
    ) -> Result<AuditLogPage, Error> {
        let started = std::time::Instant::now();
        let (status, headers, bytes) = self.get_answer(url, AUDIT_LOGS_PATH, token).await?;
        tracing::debug!(
            endpoint = AUDIT_LOGS_PATH,
            status,
            bytes = bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            ratelimit_remaining = headers
                .get("ratelimit-remaining")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            "AuditLogs page fetched."
        );
        match status {
            200 => AuditLogPage::decode(&bytes).map_err(|message| Error::Decode {
                endpoint: AUDIT_LOGS_PATH.to_string(),
                message: format!(
                    "{message}; the body begins {:?}",
                    crate::text::excerpt(&String::from_utf8_lossy(&bytes), 120)
                ),
            }),
            204 => Ok(AuditLogPage::default()),
            404 if is_first_page => {
                // The API answers some empty ranges with 404 (as the Splunk add-on observed).
                tracing::debug!(message = %api_message(&bytes), "AuditLogs answered 404; reading it as no records.");
                Ok(AuditLogPage::default())
            }
            404 => Err(Error::PageExpired {
                url: url.to_string(),
                message: api_message(&bytes),
            }),
            401 | 403 => Err(Error::Auth {
                status,
                endpoint: AUDIT_LOGS_PATH.to_string(),
                message: api_message(&bytes),
            }),
            _ => Err(Error::Status {
                status,
                endpoint: AUDIT_LOGS_PATH.to_string(),
                message: api_message(&bytes),
                retry_after: server_wait(status, &headers),
            }),
        }
    }

    /// Resolves a `nextPage` value, refusing any origin but ours.
    fn check_next_page(&self, next: &str) -> Result<Url, Error> {
        let origin = &self.inner.origin;
        let url = origin
            .join(next.trim())
            .map_err(|error| Error::UnsafeNextPage {
                url: next.to_string(),
                reason: format!("not a URL ({error})"),
                origin: origin_text(origin),
            })?;
        let differs = if url.scheme() != origin.scheme() {
            Some(format!(
                "scheme {} is not {}",
                url.scheme(),
                origin.scheme()
            ))
        } else if url.host_str() != origin.host_str() {
            Some(format!(
                "host {} is not {}",
                url.host_str().unwrap_or("(none)"),
                origin.host_str().unwrap_or("(none)")
            ))
        } else if url.port_or_known_default() != origin.port_or_known_default() {
            Some(format!(
                "port {} is not {}",
                url.port_or_known_default()
                    .map_or("(none)".into(), |p| p.to_string()),
                origin
                    .port_or_known_default()
                    .map_or("(none)".into(), |p| p.to_string())
            ))
        } else if !url.username().is_empty() || url.password().is_some() {
            Some("it carries user credentials".to_string())
        } else {
            None
        };
        match differs {
            Some(reason) => Err(Error::UnsafeNextPage {
                url: next.to_string(),
                reason,
                origin: origin_text(origin),
            }),
            None => Ok(url),
        }
    }
}

fn origin_text(origin: &Url) -> String {
    origin.as_str().trim_end_matches('/').to_string()
}

/// Walks the pages of one AuditLogs query, following `nextPage` until it is absent.
pub struct AuditLogPager {
    client: LaceworkClient,
    next: Option<Url>,
    seen: HashSet<String>,
    pages_read: usize,
    /// Started at a saved link: a 404 on its first page means the link expired, not "empty".
    resumed: bool,
    priority: Priority,
}

impl AuditLogPager {
    /// The next page, or `None` after the last one. Cancel-safe: dropping the future abandons
    /// the request in flight, and calling again repeats it.
    pub async fn next_page(&mut self) -> Result<Option<AuditLogPage>, Error> {
        let Some(url) = self.next.clone() else {
            return Ok(None);
        };
        let is_first_page = self.pages_read == 0 && !self.resumed;
        let page = self
            .client
            .get_page(&url, is_first_page, self.priority)
            .await?;
        self.pages_read += 1;
        self.next = match page.next_page.as_deref() {
            None => None,
            Some(next) => {
                let next_url = self.client.check_next_page(next)?;
                if !self.seen.insert(next_url.to_string()) {
                    return Err(Error::PagingLoop {
                        url: next.to_string(),
                    });
                }
                Some(next_url)
            }
        };
        Ok(Some(page))
    }
}

/// Formats epoch milliseconds the way the API documents: `2024-05-01T00:00:00.000Z`.
pub fn format_api_time(ms: i64) -> String {
    crate::time::format_time_ms(ms).unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secrets::Secret;

    fn client(origin: &str) -> LaceworkClient {
        let credentials = Credentials {
            key_id: "K".into(),
            secret: Secret::new("S"),
            api_origin: Url::parse(origin).unwrap(),
            sub_account: None,
        };
        let options = ClientOptions {
            token_ttl: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(5),
            max_retries: 0,
            backoff: Backoff {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(1),
            },
            org_access: false,
            rate_limit: RateBudget::default(),
        };
        LaceworkClient::new(&credentials, &options).unwrap()
    }

    #[test]
    fn next_page_must_stay_on_the_origin() {
        let client = client("https://acme.lacework.net");
        let ok = client
            .check_next_page(
                "https://acme.lacework.net/api/v2/AuditLogs/abc==?startTime=x&endTime=y",
            )
            .unwrap();
        assert_eq!(ok.query(), Some("startTime=x&endTime=y"));
        assert!(
            client
                .check_next_page("https://acme.lacework.net:443/api/v2/AuditLogs/abc")
                .is_ok()
        );
        assert!(client.check_next_page("/api/v2/AuditLogs/abc").is_ok());
        for bad in [
            "http://acme.lacework.net/api/v2/AuditLogs/abc",
            "https://evil.example/api/v2/AuditLogs/abc",
            "https://acme.lacework.net.evil.example/x",
            "https://acme.lacework.net:8443/api/v2/AuditLogs/abc",
            "https://user:pw@acme.lacework.net/x",
            "//evil.example/x",
        ] {
            let error = client.check_next_page(bad).unwrap_err();
            assert!(
                matches!(error, Error::UnsafeNextPage { .. }),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn api_time_has_milliseconds_and_z() {
        assert_eq!(
            format_api_time(1_714_521_600_000),
            "2024-05-01T00:00:00.000Z"
        );
        assert_eq!(
            format_api_time(1_714_554_902_123),
            "2024-05-01T09:15:02.123Z"
        );
    }
}
