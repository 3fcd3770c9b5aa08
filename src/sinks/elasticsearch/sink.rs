//! `ElasticsearchSink`: `_bulk` requests of `create` actions keyed by the event id, read item
//! by item.
//!
//! Delivery rule: an event counts as delivered when its item answers 201 (created) or 409
//! (`version_conflict_engine_exception`: an earlier attempt wrote it and its answer was lost),
//! so the index never holds an event twice whatever the crash. Items answering 429 or 5xx are
//! sent again, alone, with capped backoff; any other item error (a mapping or parse error) is
//! fatal and names the event. A whole request answered 408, 429, 5xx (but 501) or lost in
//! transport is retried, honouring `Retry-After`; 413 splits it; 401 and 403 and any other
//! answer are fatal.

use std::time::Duration;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap};
use url::Url;

use crate::backoff::Backoff;
use crate::config::secrets::read_secret;
use crate::event::LifecycleEvent;
use crate::formats::EventFormat;
use crate::sinks::elasticsearch::bulk::{self, Item, Outcome};
use crate::sinks::elasticsearch::{Compression, ElasticsearchConfig};
use crate::sinks::http::{self, Endpoint, TlsFiles};
use crate::sinks::{BuildContext, Error, Outage, Sink};

/// An Elasticsearch or OpenSearch sink, built from its configuration.
pub struct ElasticsearchSink {
    name: String,
    endpoint: Endpoint,
    /// `<base>/_bulk`, with `?pipeline=` when configured.
    bulk_url: Url,
    http: reqwest::Client,
    headers: HeaderMap,
    index: String,
    format: EventFormat,
    compression: Compression,
    max_events: usize,
    max_bytes: usize,
    backoff: Backoff,
    /// Whether the cluster is failing (WARN once when it starts, INFO when it recovers).
    outage: Outage,
}

/// What one `_bulk` request came to.
enum Attempt {
    /// A 2xx answer, read item by item.
    Answered(Vec<Outcome>),
    /// 413: the body is too large for the cluster.
    TooLarge,
    /// Worth sending again after a wait.
    Retry {
        message: String,
        wait: Option<Duration>,
    },
    /// Sending again will not help.
    Fatal(String),
}

impl ElasticsearchSink {
    /// Reads the credential files and builds the HTTP client; sends nothing.
    pub fn build(
        name: String,
        config: &ElasticsearchConfig,
        context: &BuildContext,
    ) -> Result<Box<dyn Sink>, Error> {
        Ok(Box::new(ElasticsearchSink::new(name, config, context)?))
    }

    fn new(
        name: String,
        config: &ElasticsearchConfig,
        context: &BuildContext,
    ) -> Result<ElasticsearchSink, Error> {
        let fatal = |message: String| Error::fatal(&name, message);
        let credentials_directory = context.credentials_directory.as_deref();
        let endpoint = Endpoint::resolve(
            &name,
            config.url.as_deref(),
            config.url_file.as_deref(),
            context,
        )?;
        let mut bulk_url = endpoint.url.clone();
        bulk_url.set_query(None);
        bulk_url.set_fragment(None);
        bulk_url
            .path_segments_mut()
            .map_err(|()| fatal(format!("{}: not a base URL", endpoint.shown)))?
            .pop_if_empty()
            .push("_bulk");
        if let Some(pipeline) = &config.pipeline {
            bulk_url.query_pairs_mut().append_pair("pipeline", pipeline);
        }
        let mut headers = http::headers(&name, &config.headers, &config.header_files, context)?;
        let authorization = if let Some(path) = &config.api_key_file {
            let key = read_secret(path, credentials_directory)
                .map_err(|m| fatal(format!("api_key_file: {m}")))?;
            Some(format!("ApiKey {}", encoded_api_key(key.expose())))
        } else if let Some(basic) = &config.basic {
            Some(basic.authorization(&name, context)?)
        } else {
            None
        };
        if let Some(value) = authorization {
            http::set_authorization(&name, &mut headers, &value)?;
        }
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
        Ok(ElasticsearchSink {
            outage: Outage::new(&name, "Elasticsearch delivery"),
            name,
            endpoint,
            bulk_url,
            http,
            headers,
            index: config.index.clone(),
            format: config.format,
            compression: config.compression,
            max_events: config.batch_max_events,
            max_bytes: usize::try_from(config.batch_max_bytes.0).unwrap_or(usize::MAX),
            backoff: Backoff {
                initial: config.retry_initial,
                max: config.retry_max,
            },
        })
    }

    fn fatal(&self, message: String) -> Error {
        Error::fatal(&self.name, message)
    }

    /// Sends `items` until every one is in the index (created or already there), splitting
    /// on 413 and sending again only the items the cluster rejected for now.
    async fn send(&self, items: Vec<Item>) -> Result<(), Error> {
        let mut pending = items;
        let mut attempt = 0u32;
        loop {
            let (message, wait) = match self.attempt(&pending).await {
                Attempt::Answered(outcomes) => {
                    let mut retry = Vec::new();
                    let mut first_retry = None;
                    let (mut n_created, mut n_existing) = (0usize, 0usize);
                    let mut refused = Vec::new();
                    for (item, outcome) in pending.into_iter().zip(outcomes) {
                        match outcome {
                            Outcome::Created => n_created += 1,
                            Outcome::Exists => n_existing += 1,
                            Outcome::Retry(error) => {
                                first_retry.get_or_insert(error);
                                retry.push(item);
                            }
                            Outcome::Refused(error) => refused.push((item, error)),
                        }
                    }
                    if n_existing > 0 {
                        tracing::info!(
                            sink = %self.name,
                            n_events = n_existing,
                            "Events already in the index (sent before a restart or a lost answer) were not written again."
                        );
                    }
                    tracing::trace!(sink = %self.name, n_created, n_existing, n_retry = retry.len(), "Bulk request answered.");
                    if let Some((item, error)) = refused.first() {
                        let more = match refused.len() {
                            1 => String::new(),
                            n => format!(" (and {} more refused items)", n - 1),
                        };
                        return Err(self.fatal(format!(
                            "event {} refused by index {}: {} {}: {}{more}",
                            item.id, item.index, error.status, error.kind, error.reason
                        )));
                    }
                    let Some(error) = first_retry else {
                        self.recovered();
                        return Ok(());
                    };
                    let message = format!(
                        "{} of {} items rejected for now, first {} {}: {}",
                        retry.len(),
                        retry.len() + n_created + n_existing,
                        error.status,
                        error.kind,
                        error.reason
                    );
                    pending = retry;
                    (message, None)
                }
                Attempt::TooLarge if pending.len() > 1 => {
                    tracing::warn!(sink = %self.name, n_events = pending.len(), "Elasticsearch answered 413; splitting the request.");
                    let right = pending.split_off(pending.len() / 2);
                    Box::pin(self.send(pending)).await?;
                    return Box::pin(self.send(right)).await;
                }
                Attempt::TooLarge => {
                    return Err(self.fatal(format!(
                        "_bulk at {} answered 413 to the single event {} of {} bytes: raise http.max_content_length",
                        self.endpoint.shown,
                        pending[0].id,
                        pending[0].lines.len()
                    )));
                }
                Attempt::Retry { message, wait } => (message, wait),
                Attempt::Fatal(message) => return Err(self.fatal(message)),
            };
            let wait = wait.unwrap_or_else(|| self.backoff.delay(attempt));
            self.outage.wait(&message, wait, attempt).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// Logs the recovery once after failures.
    fn recovered(&self) {
        self.outage.recovered();
    }

    /// One `_bulk` request of `items`.
    async fn attempt(&self, items: &[Item]) -> Attempt {
        let body = bulk::body(items);
        let mut request = self
            .http
            .post(self.bulk_url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/x-ndjson");
        let payload = match self.compression {
            Compression::None => body,
            Compression::Gzip => {
                request = request.header(CONTENT_ENCODING, "gzip");
                http::gzip(&body)
            }
        };
        let response = match request.body(payload).send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    message: format!(
                        "_bulk at {}: {}",
                        self.endpoint.shown,
                        http::without_url(&error)
                    ),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let reply = match response.bytes().await {
            Ok(reply) => reply,
            Err(error) => {
                return Attempt::Retry {
                    message: format!(
                        "_bulk at {}: answer {status} cut short: {}",
                        self.endpoint.shown,
                        http::without_url(&error)
                    ),
                    wait: None,
                };
            }
        };
        let excerpt = || crate::text::excerpt(&String::from_utf8_lossy(&reply), 300);
        match status {
            200..=299 => match bulk::parse_response(&reply, items) {
                Ok(outcomes) => Attempt::Answered(outcomes),
                Err(message) => {
                    Attempt::Fatal(format!("_bulk at {} {message}", self.endpoint.shown))
                }
            },
            413 => Attempt::TooLarge,
            408 | 429 | 500 | 502..=599 => Attempt::Retry {
                message: format!(
                    "_bulk at {} answered {status}: {}",
                    self.endpoint.shown,
                    excerpt()
                ),
                wait: retry_after,
            },
            401 | 403 => Attempt::Fatal(format!(
                "_bulk at {} answered {status}: the credentials (api_key_file, basic or header_files) are refused or lack the create_doc privilege on the index: {}",
                self.endpoint.shown,
                excerpt()
            )),
            300..=399 => Attempt::Fatal(format!(
                "_bulk at {} answered {status}: redirects are not followed, configure the cluster's own URL",
                self.endpoint.shown
            )),
            _ => Attempt::Fatal(format!(
                "_bulk at {} answered {status}: {}",
                self.endpoint.shown,
                excerpt()
            )),
        }
    }
}

/// The `Authorization: ApiKey` value of a key file: the base64 "encoded" key as Elastic shows
/// it, or an `id:api_key` pair, which is encoded here.
fn encoded_api_key(contents: &str) -> String {
    use base64::Engine;
    if contents.contains(':') {
        base64::engine::general_purpose::STANDARD.encode(contents)
    } else {
        contents.to_string()
    }
}

#[async_trait::async_trait]
impl Sink for ElasticsearchSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        let items = bulk::items(batch, self.format, &self.index, crate::time::now_ms());
        for chunk in bulk::chunk(items, self.max_events, self.max_bytes) {
            tracing::trace!(sink = %self.name, n_events = chunk.len(), "Sending a bulk request.");
            self.send(chunk).await?;
        }
        Ok(())
    }

    /// `GET /`: the cluster answers with its name and version when it is up and the
    /// credentials are good.
    async fn healthcheck(&self) -> Result<(), Error> {
        let response = self
            .http
            .get(self.endpoint.url.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|error| {
                Error::unavailable(
                    &self.name,
                    format!("{}: {}", self.endpoint.shown, http::without_url(&error)),
                )
            })?;
        let status = response.status().as_u16();
        let reply = response.text().await.unwrap_or_default();
        match status {
            200..=299 => {
                let info: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
                tracing::info!(
                    sink = %self.name,
                    url = %self.endpoint.shown,
                    cluster = info["cluster_name"].as_str().unwrap_or("?"),
                    distribution = info["version"]["distribution"].as_str().unwrap_or("elasticsearch"),
                    version = info["version"]["number"].as_str().unwrap_or("?"),
                    "Elasticsearch cluster reachable."
                );
                Ok(())
            }
            401 | 403 => Err(self.fatal(format!(
                "{} answered {status} to GET /: the credentials (api_key_file, basic or header_files) are refused or lack the monitor cluster privilege: {}",
                self.endpoint.shown,
                crate::text::excerpt(&reply, 300)
            ))),
            _ => Err(Error::unavailable(
                &self.name,
                format!(
                    "{} answered {status} to GET /: {}",
                    self.endpoint.shown,
                    crate::text::excerpt(&reply, 300)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_sent_encoded() {
        assert_eq!(
            encoded_api_key("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="),
            "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
        assert_eq!(
            encoded_api_key("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"),
            "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
    }

    #[test]
    fn the_bulk_url_keeps_a_path_prefix_and_names_the_pipeline() {
        let config: ElasticsearchConfig = toml::from_str(
            "url = \"https://proxy.example.com/es/\"\npipeline = \"lacework audit\"",
        )
        .unwrap();
        let sink = ElasticsearchSink::new("es".into(), &config, &BuildContext::default()).unwrap();
        assert_eq!(
            sink.bulk_url.as_str(),
            "https://proxy.example.com/es/_bulk?pipeline=lacework+audit"
        );
        let config: ElasticsearchConfig =
            toml::from_str("url = \"http://127.0.0.1:9200\"").unwrap();
        let sink = ElasticsearchSink::new("es".into(), &config, &BuildContext::default()).unwrap();
        assert_eq!(sink.bulk_url.as_str(), "http://127.0.0.1:9200/_bulk");
    }
}
