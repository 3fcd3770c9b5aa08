//! `WebhookSink`: POSTs batches and retries until the endpoint accepts them.
//!
//! Delivery rule: a chunk counts as delivered only on a 2xx. 408, 429, 5xx (but 501) and
//! transport failures are retried with capped backoff, honouring `Retry-After`, for as long as
//! it takes: the poller waits meanwhile (backpressure) and the checkpoint does not move. A 413
//! splits the chunk in halves. Any other answer is fatal and names the status and the
//! endpoint's reply (with what to do about it, for Splunk HEC's error codes).
//!
//! With Splunk HEC indexer acknowledgement (`ack = true`) a 2xx only starts the wait: every
//! chunk of a batch is sent, then their ackIds are polled together until Splunk acknowledged
//! each as indexed; a chunk not acknowledged within `ack_timeout` is sent again, with a new
//! ackId (`hec_ack` holds the protocol and the bookkeeping).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::backoff::Backoff;
use crate::config::secrets::read_secret;
use crate::event::LifecycleEvent;
use crate::sinks::http::{self, Endpoint, TlsFiles};
use crate::sinks::webhook::format::{self, Chunk, HecFields};
use crate::sinks::webhook::hec_ack::{self, HecAck, PendingAcks};
use crate::sinks::webhook::{Compression, Signer, WebhookConfig, WebhookFormat};
use crate::sinks::{BuildContext, Error, Outage, Sink};

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
    outage: Outage,
    /// Splunk HEC indexer acknowledgement, when `ack = true`.
    ack: Option<HecAck>,
    /// The headers of an ack poll: `headers` without `Content-Encoding` (the poll's small
    /// body goes uncompressed).
    ack_headers: HeaderMap,
}

/// A chunk the endpoint accepted, with the ackId Splunk gave it (`ack = true`).
struct Accepted<'a> {
    events: &'a [LifecycleEvent],
    ack_id: Option<u64>,
}

/// What one request came to.
enum Attempt {
    /// A 2xx, with the endpoint's reply.
    Accepted {
        reply: String,
    },
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
            Some(basic.authorization(&name, context)?)
        } else {
            None
        };
        if let Some(value) = authorization {
            http::set_authorization(&name, &mut headers, &value)?;
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format::content_type(config.format)),
        );
        let ack = if config.ack {
            let ack = HecAck::new(
                &endpoint.url,
                config.channel.as_deref(),
                config.ack_timeout,
                config.ack_poll_interval,
            )
            .map_err(|m| fatal(format!("url: {m}")))?;
            let channel = HeaderValue::from_str(&ack.channel)
                .map_err(|_| fatal("channel: not a header value".into()))?;
            headers.insert(hec_ack::CHANNEL_HEADER, channel);
            tracing::info!(sink = %name, channel = %ack.channel, "Splunk HEC indexer acknowledgement is on.");
            Some(ack)
        } else {
            None
        };
        let ack_headers = headers.clone();
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
            outage: Outage::new(&name, "Webhook delivery"),
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
            ack,
            ack_headers,
        })
    }

    /// Delivers the chunks of a batch and waits until Splunk acknowledged each as indexed,
    /// sending again every chunk whose acknowledgement did not come within `ack_timeout`.
    /// Meanwhile the poller waits and the checkpoint does not move.
    async fn deliver_acknowledged(
        &self,
        ack: &HecAck,
        chunks: Vec<Chunk<'_>>,
    ) -> Result<(), Error> {
        let mut pending = PendingAcks::default();
        // Chunks to send (again): those whose acknowledgement did not come.
        let mut unacknowledged = Vec::new();
        for chunk in chunks {
            let accepted = self.send_chunk(chunk.events, chunk.body).await?;
            track(&mut pending, accepted, &mut unacknowledged);
        }
        loop {
            for events in std::mem::take(&mut unacknowledged) {
                let accepted = self.send_chunk(events, self.body_of(events)).await?;
                track(&mut pending, accepted, &mut unacknowledged);
            }
            if pending.is_empty() && unacknowledged.is_empty() {
                return Ok(());
            }
            crate::heartbeat::sleep(ack.poll_interval).await;
            let answer = self.query_acks(ack, &pending.ack_ids()).await?;
            let n_acknowledged = pending.settle(&answer);
            tracing::trace!(sink = %self.name, n_acknowledged, n_pending = pending.len(), "Polled indexer acknowledgements.");
            for (ack_id, events) in pending.take_expired(Instant::now(), ack.timeout) {
                tracing::warn!(
                    sink = %self.name,
                    ack_id,
                    n_events = events.len(),
                    ack_timeout = %humantime::format_duration(ack.timeout),
                    "Splunk did not acknowledge a request as indexed within ack_timeout; sending its events again."
                );
                unacknowledged.push(events);
            }
        }
    }

    /// Asks Splunk which of `ack_ids` are indexed. What may heal (busy, down, throttled) is
    /// retried for as long as it takes; an answer that cannot be read is asked again a few
    /// times and then acknowledges nothing, never everything.
    async fn query_acks(&self, ack: &HecAck, ack_ids: &[u64]) -> Result<HashMap<u64, bool>, Error> {
        let target = format!("the ack endpoint of {}", self.endpoint.shown);
        let mut attempt = 0u32;
        let mut n_unreadable = 0u32;
        loop {
            let request = self
                .http
                .post(ack.url.clone())
                .headers(self.ack_headers.clone())
                .body(hec_ack::ack_request_body(ack_ids));
            match self.send(request, &target).await {
                Attempt::Accepted { reply } => {
                    self.recovered();
                    if let Some(answer) = hec_ack::parse_ack_answer(&reply) {
                        return Ok(answer);
                    }
                    n_unreadable += 1;
                    let reply = crate::text::excerpt(&reply, 300);
                    if n_unreadable >= hec_ack::UNREADABLE_ANSWER_ATTEMPTS {
                        tracing::warn!(sink = %self.name, reply = %reply, "Splunk's ack answers cannot be read; counting none of the requests as indexed.");
                        return Ok(HashMap::new());
                    }
                    tracing::debug!(sink = %self.name, reply = %reply, "Splunk's ack answer cannot be read; asking again.");
                    crate::heartbeat::sleep(ack.poll_interval).await;
                }
                Attempt::Retry { message, wait } => {
                    self.hold(&message, wait, attempt).await;
                    attempt = attempt.saturating_add(1);
                }
                Attempt::TooLarge => {
                    return Err(Error::fatal(
                        &self.name,
                        format!(
                            "{target} answered 413 to a poll of {} ackIds",
                            ack_ids.len()
                        ),
                    ));
                }
                Attempt::Fatal(message) => return Err(Error::fatal(&self.name, message)),
            }
        }
    }

    /// The body of `events`, encoded and framed again (to send a chunk again).
    fn body_of(&self, events: &[LifecycleEvent]) -> Vec<u8> {
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .map(|e| format::encode_event(self.format, &self.hec, e))
            .collect();
        format::frame(self.format, &encoded)
    }

    /// Waits before retrying a request that may heal: `wait` when the endpoint asked for one,
    /// else the backoff's delay. WARN once per outage, DEBUG for each further retry.
    async fn hold(&self, message: &str, wait: Option<Duration>, attempt: u32) {
        let wait = wait.unwrap_or_else(|| self.backoff.delay(attempt));
        self.outage.wait(message, wait, attempt).await;
    }

    /// Notes that the endpoint answers again after a failure.
    fn recovered(&self) {
        self.outage.recovered();
    }

    /// Sends one chunk until it is accepted, split (413) or refused for good; returns the
    /// accepted pieces (one, or the halves of a split) with their ackIds.
    async fn send_chunk<'a>(
        &self,
        events: &'a [LifecycleEvent],
        body: Vec<u8>,
    ) -> Result<Vec<Accepted<'a>>, Error> {
        let webhook_id = webhook_id(events);
        let mut attempt = 0u32;
        loop {
            match self.attempt(&webhook_id, &body).await {
                Attempt::Accepted { reply } => {
                    self.recovered();
                    let ack_id = match &self.ack {
                        None => None,
                        Some(_) => Some(hec_ack::event_ack_id(&reply).ok_or_else(|| {
                            Error::fatal(
                                &self.name,
                                format!(
                                    "{} accepted events without an ackId ({}): {}",
                                    self.endpoint.shown,
                                    crate::text::excerpt(&reply, 300),
                                    hec_ack::ACK_DISABLED
                                ),
                            )
                        })?),
                    };
                    return Ok(vec![Accepted { events, ack_id }]);
                }
                Attempt::TooLarge if events.len() > 1 => {
                    let (left, right) = events.split_at(events.len() / 2);
                    tracing::warn!(sink = %self.name, n_events = events.len(), "Webhook endpoint answered 413; splitting the batch.");
                    let mut accepted = Vec::with_capacity(2);
                    for half in [left, right] {
                        accepted.extend(Box::pin(self.send_chunk(half, self.body_of(half))).await?);
                    }
                    return Ok(accepted);
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
                    self.hold(&message, wait, attempt).await;
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
        self.send(request.body(payload), &self.endpoint.shown).await
    }

    /// Sends `request` and reads what its answer means; `target` names the endpoint in
    /// messages.
    async fn send(&self, request: reqwest::RequestBuilder, target: &str) -> Attempt {
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    message: format!("{target}: {}", http::without_url(&error)),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reply = response.text().await.unwrap_or_default();
        let excerpt = crate::text::excerpt(&reply, 300);
        match status {
            200..=299 => Attempt::Accepted { reply },
            413 => Attempt::TooLarge,
            408 | 429 | 500 | 502..=599 => Attempt::Retry {
                message: format!("{target} answered {status}: {excerpt}"),
                wait: retry_after,
            },
            300..=399 => Attempt::Fatal(format!(
                "{target} answered {status} (redirect to {}): redirects are not followed, configure the final URL",
                location.as_deref().unwrap_or("?")
            )),
            _ => {
                let hint = match self.format {
                    WebhookFormat::SplunkHec => hec_ack::operator_hint(&reply),
                    _ => None,
                };
                Attempt::Fatal(match hint {
                    Some(hint) => format!("{target} answered {status}: {excerpt}: {hint}"),
                    None => format!("{target} answered {status}: {excerpt}"),
                })
            }
        }
    }
}

/// Files the accepted pieces of a chunk under their ackIds; a piece displaced by one with the
/// same id (Splunk restarted and numbers anew) goes back to `unacknowledged`.
fn track<'a>(
    pending: &mut PendingAcks<&'a [LifecycleEvent]>,
    accepted: Vec<Accepted<'a>>,
    unacknowledged: &mut Vec<&'a [LifecycleEvent]>,
) {
    let now = Instant::now();
    for piece in accepted {
        if let Some(ack_id) = piece.ack_id
            && let Some(displaced) = pending.insert(ack_id, piece.events, now)
        {
            unacknowledged.push(displaced);
        }
    }
}

#[async_trait::async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        let chunks = format::chunk(
            batch,
            self.format,
            &self.hec,
            self.max_events,
            self.max_bytes,
        );
        if let Some(ack) = &self.ack {
            return self.deliver_acknowledged(ack, chunks).await;
        }
        for chunk in chunks {
            tracing::trace!(sink = %self.name, n_events = chunk.events.len(), first = %format::first_time(chunk.events), "Posting a batch.");
            self.send_chunk(chunk.events, chunk.body).await?;
        }
        Ok(())
    }

    /// With `ack = true`, one ack poll with no ids: a token without indexer acknowledgement
    /// (code 14) or a refused token is a fatal error at start, not at the first batch.
    async fn healthcheck(&self) -> Result<(), Error> {
        let Some(ack) = &self.ack else {
            return Ok(());
        };
        let target = format!("the ack endpoint of {}", self.endpoint.shown);
        let request = self
            .http
            .post(ack.url.clone())
            .headers(self.ack_headers.clone())
            .body(hec_ack::ack_request_body(&[]));
        match self.send(request, &target).await {
            Attempt::Accepted { .. } | Attempt::TooLarge => Ok(()),
            Attempt::Retry { message, wait } => Err(Error::Unavailable {
                sink: self.name.clone(),
                message,
                retry_after: wait,
            }),
            Attempt::Fatal(message) => Err(Error::fatal(&self.name, message)),
        }
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
