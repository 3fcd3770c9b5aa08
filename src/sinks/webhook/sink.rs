//! `WebhookSink`: POSTs batches and retries until the endpoint accepts them.
//!
//! Delivery rule: a chunk counts as delivered only on a 2xx. 408, 429, 5xx (but 501) and
//! transport failures are retried with capped backoff, honouring `Retry-After`, for as long as
//! it takes: the poller waits meanwhile (backpressure) and the checkpoint does not move. A 413
//! splits the chunk in halves. Any other answer is fatal and names the status and the
//! endpoint's reply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::backoff::{Backoff, parse_retry_after};
use crate::config::secrets::read_secret;
use crate::event::LifecycleEvent;
use crate::sinks::http::{self, Endpoint, TlsFiles};
use crate::sinks::webhook::format::{self, HecFields};
use crate::sinks::webhook::{Compression, Signer, WebhookConfig, WebhookFormat};
use crate::sinks::{BuildContext, Error, Sink};

/// A webhook sink, built from its configuration.
pub struct WebhookSink {
    name: String,
    endpoint: Endpoint,
    http: reqwest::Client,
    format: WebhookFormat,
    hec: HecFields,
    headers: HeaderMap,
    signer: Option<Signer>,
    compression: Compression,
    max_events: usize,
    max_bytes: usize,
    backoff: Backoff,
    failing: AtomicBool,
}

/// What one attempt at one chunk came to.
enum Attempt {
    Accepted,
    TooLarge,
    Retry {
        message: String,
        wait: Option<Duration>,
    },
    Fatal(String),
}

impl WebhookSink {
    /// Reads the credential files and builds the HTTP client; sends nothing.
    pub fn build(
        name: String,
        config: &WebhookConfig,
        context: &BuildContext,
    ) -> Result<WebhookSink, Error> {
        let fatal = |message: String| Error::Fatal {
            sink: name.clone(),
            message,
        };
        let credentials_directory = context.credentials_directory.as_deref();
        let endpoint = Endpoint::resolve(
            &name,
            config.url.as_deref(),
            config.url_file.as_deref(),
            context,
        )?;
        let mut headers = http::headers(&name, &config.headers, &config.header_files, context)?;
        let authorization = if let Some(path) = &config.bearer_token_file {
            let token = read_secret(path, credentials_directory)
                .map_err(|m| fatal(format!("bearer_token_file: {m}")))?;
            Some(format!("Bearer {}", token.expose()))
        } else if let Some(path) = &config.hec_token_file {
            let token = read_secret(path, credentials_directory)
                .map_err(|m| fatal(format!("hec_token_file: {m}")))?;
            Some(format!("Splunk {}", token.expose()))
        } else if let Some(basic) = &config.basic {
            use base64::Engine;
            let password = read_secret(&basic.password_file, credentials_directory)
                .map_err(|m| fatal(format!("basic.password_file: {m}")))?;
            let pair = format!("{}:{}", basic.user, password.expose());
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        } else {
            None
        };
        if let Some(value) = authorization {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                fatal("the credential file holds characters a header cannot carry".into())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format::content_type(config.format)),
        );
        if config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let signer = match &config.signing_secret_file {
            Some(path) => {
                let secret = read_secret(path, credentials_directory)
                    .map_err(|m| fatal(format!("signing_secret_file: {m}")))?;
                Some(
                    Signer::from_secret(secret.expose())
                        .map_err(|m| fatal(format!("signing_secret_file: {m}")))?,
                )
            }
            None => None,
        };
        // Standard Webhooks: a redirect is a failure, never followed (the shared builder's rule).
        let http = http::client(
            &name,
            config.timeout,
            TlsFiles {
                ca_file: config.ca_file.as_deref(),
                client_cert_file: config.client_cert_file.as_deref(),
                client_key_file: config.client_key_file.as_deref(),
            },
            context,
        )?;
        Ok(WebhookSink {
            name,
            endpoint,
            http,
            format: config.format,
            hec: HecFields {
                source: config.hec_source.clone(),
                sourcetype: config.hec_sourcetype.clone(),
                index: config.hec_index.clone(),
                host: config.hec_host.clone(),
            },
            headers,
            signer,
            compression: config.compression,
            max_events: config.batch_max_events,
            max_bytes: config.batch_max_bytes.0 as usize,
            backoff: Backoff {
                initial: config.retry_initial,
                max: config.retry_max,
            },
            failing: AtomicBool::new(false),
        })
    }

    /// Sends one chunk until it is accepted, split (413) or refused for good.
    async fn send_chunk(&self, events: &[LifecycleEvent], body: Vec<u8>) -> Result<(), Error> {
        let webhook_id = webhook_id(events);
        let mut attempt = 0u32;
        loop {
            match self.attempt(&webhook_id, &body).await {
                Attempt::Accepted => {
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(sink = %self.name, "Webhook endpoint accepts batches again.");
                        crate::metrics::emit::sink_up(&self.name, true);
                    }
                    return Ok(());
                }
                Attempt::TooLarge if events.len() > 1 => {
                    let (left, right) = events.split_at(events.len() / 2);
                    tracing::warn!(sink = %self.name, n_events = events.len(), "Webhook endpoint answered 413; splitting the batch.");
                    for half in [left, right] {
                        let encoded: Vec<Vec<u8>> = half
                            .iter()
                            .map(|e| format::encode_event(self.format, &self.hec, e))
                            .collect();
                        Box::pin(self.send_chunk(half, format::frame(self.format, &encoded)))
                            .await?;
                    }
                    return Ok(());
                }
                Attempt::TooLarge => {
                    return Err(Error::Fatal {
                        sink: self.name.clone(),
                        message: format!(
                            "{} answered 413 to a single event of {} bytes: raise the endpoint's body limit",
                            self.endpoint.shown,
                            body.len()
                        ),
                    });
                }
                Attempt::Retry { message, wait } => {
                    let wait = wait.unwrap_or_else(|| self.backoff.delay(attempt));
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        crate::metrics::emit::sink_up(&self.name, false);
                        tracing::warn!(
                            sink = %self.name,
                            error = %message,
                            wait_ms = wait.as_millis() as u64,
                            "Webhook delivery failed; holding the batch and retrying until the endpoint accepts it."
                        );
                    } else {
                        tracing::debug!(sink = %self.name, error = %message, attempt, "Webhook delivery still failing.");
                    }
                    crate::heartbeat::sleep(wait).await;
                    attempt = attempt.saturating_add(1);
                }
                Attempt::Fatal(message) => {
                    return Err(Error::Fatal {
                        sink: self.name.clone(),
                        message,
                    });
                }
            }
        }
    }

    async fn attempt(&self, webhook_id: &str, body: &[u8]) -> Attempt {
        // The id goes out signed or not: it is the receiver's idempotency key, also as
        // `Idempotency-Key` (IETF httpapi draft) for receivers that read that header.
        let mut request = self
            .http
            .post(self.endpoint.url.clone())
            .headers(self.headers.clone())
            .header("webhook-id", webhook_id)
            .header("idempotency-key", webhook_id);
        if let Some(signer) = &self.signer {
            let timestamp = chrono::Utc::now().timestamp();
            request = request
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signer.sign(webhook_id, timestamp, body),
                );
        }
        let payload = match self.compression {
            Compression::None => body.to_vec(),
            Compression::Gzip => http::gzip(body),
        };
        let response = match request.body(payload).send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    message: format!("{}: {}", self.endpoint.shown, http::without_url(&error)),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reply = response.text().await.unwrap_or_default();
        let reply = crate::text::excerpt(&reply, 300);
        match status {
            200..=299 => Attempt::Accepted,
            413 => Attempt::TooLarge,
            408 | 429 | 500 | 502..=599 => Attempt::Retry {
                message: format!("{} answered {status}: {reply}", self.endpoint.shown),
                wait: retry_after,
            },
            300..=399 => Attempt::Fatal(format!(
                "{} answered {status} (redirect to {}): redirects are not followed, configure the final URL",
                self.endpoint.shown,
                location.as_deref().unwrap_or("?")
            )),
            _ => Attempt::Fatal(format!(
                "{} answered {status}: {reply}",
                self.endpoint.shown
            )),
        }
    }
}

#[async_trait::async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        for chunk in format::chunk(
            batch,
            self.format,
            &self.hec,
            self.max_events,
            self.max_bytes,
        ) {
            tracing::trace!(sink = %self.name, n_events = chunk.events.len(), first = %format::first_time(chunk.events), "Posting a batch.");
            self.send_chunk(chunk.events, chunk.body).await?;
        }
        Ok(())
    }
}

/// `msg_` + 32 hex digits derived from the event ids: the same batch content always has the
/// same id, so a receiver can drop a retried duplicate.
pub fn webhook_id(events: &[LifecycleEvent]) -> String {
    let mut hasher = Sha256::new();
    for event in events {
        hasher.update(event.id.0);
    }
    format!("msg_{}", hex::encode(&hasher.finalize()[..16]))
}
