//! `SentinelSink`: rows POSTed to the Azure Monitor Logs Ingestion API, retried until
//! accepted.
//!
//! Delivery rule: a request counts as delivered only on a 204. 408, 429, 5xx (but 501) and
//! transport failures are retried with capped backoff, a 429 after its `Retry-After`, for as
//! long as it takes: the poller waits meanwhile (backpressure) and the checkpoint does not
//! move. A 413 splits the request in halves. A 401 gets one new token and one more try; a
//! second 401 right after is fatal, as are 403 (the app lacks "Monitoring Metrics
//! Publisher" on the DCR), 400 and 404 (a wrong DCR id or stream) and any other answer.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::backoff::{Backoff, with_small_jitter};
use crate::config::secrets::read_secret;
use crate::event::LifecycleEvent;
use crate::sinks::http::{self, TlsFiles};
use crate::sinks::sentinel::rows::{self, Chunk};
use crate::sinks::sentinel::token::{AccessToken, TokenError, TokenSource};
use crate::sinks::sentinel::{Compression, SentinelConfig};
use crate::sinks::{BuildContext, Error, Outage, Sink};

/// A Microsoft Sentinel sink, built from its configuration.
pub struct SentinelSink {
    name: String,
    http: reqwest::Client,
    tokens: TokenSource,
    /// The ingestion URL, which is also what messages show (it holds no secret).
    url: String,
    dcr_immutable_id: String,
    stream_name: String,
    client_id: String,
    headers: HeaderMap,
    compression: Compression,
    max_events: usize,
    max_bytes: usize,
    backoff: Backoff,
    outage: Outage,
}

/// What one attempt at one request came to.
enum Attempt {
    Accepted,
    TooLarge(String),
    Unauthorized(String),
    Retry {
        message: String,
        wait: Option<Duration>,
    },
    Fatal(String),
}

/// The ingestion API's error answer: `{"error":{"code","message"}}`.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl SentinelSink {
    /// Reads the client secret and header files and builds the HTTP client; sends nothing.
    pub fn build(
        name: String,
        config: &SentinelConfig,
        context: &BuildContext,
    ) -> Result<Box<dyn Sink>, Error> {
        let secret = read_secret(
            &config.client_secret_file,
            context.credentials_directory.as_deref(),
        )
        .map_err(|m| Error::fatal(&name, format!("client_secret_file: {m}")))?;
        let mut headers = http::headers(&name, &config.headers, &config.header_files, context)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let http = http::client(
            &name,
            config.timeout,
            TlsFiles {
                ca_file: config.ca_file.as_deref(),
                ..TlsFiles::default()
            },
            context,
        )?;
        let tokens = TokenSource::new(
            http.clone(),
            config.token_url(),
            config.client_id.clone(),
            secret,
            config.scope.clone(),
        );
        Ok(Box::new(SentinelSink {
            outage: Outage::new(&name, "Sentinel delivery"),
            name,
            http,
            tokens,
            url: config.ingestion_url(),
            dcr_immutable_id: config.dcr_immutable_id.clone(),
            stream_name: config.stream_name.clone(),
            client_id: config.client_id.clone(),
            headers,
            compression: config.compression,
            max_events: config.batch_max_events,
            max_bytes: config.batch_max_bytes.0 as usize,
            backoff: Backoff {
                initial: config.retry_initial,
                max: config.retry_max,
            },
        }))
    }

    fn fatal(&self, message: String) -> Error {
        Error::fatal(&self.name, message)
    }

    /// Sends one request until it is accepted, split (413) or refused for good.
    async fn send_chunk(&self, chunk: Chunk<'_>) -> Result<(), Error> {
        let body = chunk.body();
        let payload = match self.compression {
            Compression::None => body,
            Compression::Gzip => http::gzip(&body),
        };
        let mut attempt = 0u32;
        let mut after_401 = false;
        loop {
            let token = match self.tokens.get().await {
                Ok(token) => token,
                Err(TokenError::Refused(message)) => return Err(self.fatal(message)),
                Err(TokenError::Unavailable {
                    message,
                    retry_after,
                }) => {
                    self.wait_to_retry(&message, retry_after, attempt).await;
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            };
            match self.attempt(&token, &payload).await {
                Attempt::Accepted => {
                    self.outage.recovered();
                    return Ok(());
                }
                Attempt::TooLarge(reply) if chunk.events.len() > 1 => {
                    tracing::warn!(sink = %self.name, n_events = chunk.events.len(), reply = %reply, "Sentinel ingestion answered 413; splitting the request.");
                    let half = chunk.events.len() / 2;
                    let mut rows = chunk.rows;
                    let right_rows = rows.split_off(half);
                    let (left, right) = chunk.events.split_at(half);
                    Box::pin(self.send_chunk(Chunk { events: left, rows })).await?;
                    Box::pin(self.send_chunk(Chunk {
                        events: right,
                        rows: right_rows,
                    }))
                    .await?;
                    return Ok(());
                }
                Attempt::TooLarge(reply) => {
                    return Err(self.fatal(format!(
                        "{} answered 413 to event {} alone ({} bytes): {reply}",
                        self.url,
                        chunk.events[0].id,
                        chunk.rows[0].len() + 2
                    )));
                }
                Attempt::Unauthorized(reply) if after_401 => {
                    return Err(self.fatal(format!(
                        "{} answered 401 also to a new token: {reply} (is scope the audience of this endpoint's cloud?)",
                        self.url
                    )));
                }
                Attempt::Unauthorized(reply) => {
                    tracing::info!(sink = %self.name, reply = %reply, "Sentinel ingestion refused the access token (401); getting a new one.");
                    self.tokens.invalidate(&token).await;
                    after_401 = true;
                }
                Attempt::Retry { message, wait } => {
                    after_401 = false;
                    self.wait_to_retry(&message, wait, attempt).await;
                    attempt = attempt.saturating_add(1);
                }
                Attempt::Fatal(message) => return Err(self.fatal(message)),
            }
        }
    }

    /// Waits before a retry: the server's wait (with a little jitter) or the backoff's.
    /// Warns once per outage.
    async fn wait_to_retry(&self, message: &str, server_wait: Option<Duration>, attempt: u32) {
        let wait = server_wait
            .map(with_small_jitter)
            .unwrap_or_else(|| self.backoff.delay(attempt));
        self.outage.wait(message, wait, attempt).await;
    }

    async fn attempt(&self, token: &AccessToken, payload: &[u8]) -> Attempt {
        let mut authorization = match HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            Ok(value) => value,
            Err(_) => {
                return Attempt::Fatal(
                    "the token endpoint issued a token a header cannot carry".into(),
                );
            }
        };
        authorization.set_sensitive(true);
        let response = match self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .header(AUTHORIZATION, authorization)
            .body(payload.to_vec())
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    message: format!("{}: {}", self.url, http::without_url(&error)),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let error_code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.text().await.unwrap_or_default();
        let reply = reply_text(&body, error_code.as_deref());
        match status {
            200..=299 => Attempt::Accepted,
            413 => Attempt::TooLarge(reply),
            401 => Attempt::Unauthorized(reply),
            408 | 429 | 500 | 502..=599 => Attempt::Retry {
                message: format!("{} answered {status}: {reply}", self.url),
                wait: retry_after,
            },
            403 => Attempt::Fatal(format!(
                "{} answered 403 {reply} (the app registration {} needs the \"Monitoring Metrics Publisher\" role on the data collection rule {})",
                self.url, self.client_id, self.dcr_immutable_id
            )),
            400 | 404 => Attempt::Fatal(format!(
                "{} answered {status} {reply} (check endpoint, dcr_immutable_id {} and stream_name {}: the DCR must declare that stream with the columns {})",
                self.url,
                self.dcr_immutable_id,
                self.stream_name,
                rows::az_cli_columns()
            )),
            _ => Attempt::Fatal(format!("{} answered {status} {reply}", self.url)),
        }
    }
}

/// `code: message` from the API's error answer, else the `x-ms-error-code` header and an
/// excerpt of the body.
fn reply_text(body: &str, error_code: Option<&str>) -> String {
    match serde_json::from_str::<ErrorAnswer>(body) {
        Ok(answer) => format!(
            "{}: {}",
            answer.error.code,
            crate::text::excerpt(&answer.error.message, 400)
        ),
        Err(_) => match error_code {
            Some(code) => format!("{code}: {}", crate::text::excerpt(body, 300)),
            None => crate::text::excerpt(body, 300),
        },
    }
}

#[async_trait::async_trait]
impl Sink for SentinelSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        let observed_ms = crate::time::now_ms();
        let chunks =
            rows::chunks(batch, observed_ms, self.max_events, self.max_bytes).map_err(|large| {
                self.fatal(format!(
                    "event {} is {} bytes as a row, more than batch_max_bytes ({}) allows in one request",
                    large.id, large.bytes, self.max_bytes
                ))
            })?;
        for chunk in chunks {
            tracing::trace!(sink = %self.name, n_events = chunk.events.len(), "Posting rows.");
            self.send_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        match self.tokens.get().await {
            Ok(_) => Ok(()),
            Err(TokenError::Refused(message)) => Err(self.fatal(message)),
            Err(TokenError::Unavailable {
                message,
                retry_after,
            }) => Err(Error::Unavailable {
                sink: self.name.clone(),
                message,
                retry_after,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_show_the_apis_code_and_message() {
        assert_eq!(
            reply_text(
                r#"{"error":{"code":"OperationFailed","message":"The authentication token provided does not have access"}}"#,
                Some("OperationFailed")
            ),
            "OperationFailed: The authentication token provided does not have access"
        );
        assert_eq!(
            reply_text("upstream timed out", Some("GatewayTimeout")),
            "GatewayTimeout: upstream timed out"
        );
        assert_eq!(reply_text("", None), "(empty body)");
    }
}
