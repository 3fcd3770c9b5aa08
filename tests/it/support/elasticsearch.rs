//! A fake Elasticsearch on loopback, faithful to the public `_bulk` documentation where the
//! sink depends on it: NDJSON action/source pairs that must end with a newline, `create`
//! answering 409 `version_conflict_engine_exception` for an `_id` already in the index, a 200
//! answer with `errors: true` when items fail, items answered in request order, data streams
//! (`logs-*-*`) that take only `create` and need `@timestamp` and name their backing index in
//! the answer, gzip request bodies, `Authorization` checked on every request, `GET /` with the
//! cluster's info. Faults are injected per item (429 `es_rejected_execution_exception`, 400
//! `document_parsing_exception`) or per request (any status, a delay before the answer, 413
//! above a body size). Documents are stored per index and create attempts counted per `_id`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One `_bulk` request as received.
#[derive(Clone, Debug)]
pub struct BulkLog {
    /// When it arrived.
    pub at: Instant,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// Whether the body came gzipped.
    pub gzip: bool,
    /// Actions in the body (0 when the request was refused whole).
    pub n_actions: usize,
    /// The answer's status.
    pub status: u16,
}

impl BulkLog {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A stored document.
#[derive(Clone, Debug)]
pub struct Doc {
    /// The index or data stream name it was sent to.
    pub index: String,
    pub id: String,
    pub source: Value,
}

#[derive(Default)]
struct Inner {
    /// The `Authorization` value every request must carry, if any.
    authorization: Option<String>,
    /// Index (or data stream) name to documents by `_id`.
    indices: BTreeMap<String, BTreeMap<String, Value>>,
    /// `create` actions seen per `_id`, whatever their answer.
    attempts: HashMap<String, usize>,
    /// Items answered 201.
    n_created: usize,
    /// Items answered 409.
    n_conflicts: usize,
    /// The next this many items answer 429.
    reject_items: usize,
    /// Ids whose items answer 400 `document_parsing_exception`.
    refuse_ids: HashSet<String>,
    /// The create action with this number (1-based, counted over the fake's life) and every
    /// later one with the same id answer 400.
    refuse_nth: Option<usize>,
    n_creates_seen: usize,
    /// Whole-request answers for the next requests: status and `Retry-After`.
    fail_requests: VecDeque<(u16, Option<String>)>,
    /// Delay before answering each `_bulk` request, after the documents were stored.
    answer_delay: Duration,
    /// After `slow_skip` more requests with actions, the next `slow_next` ones wait
    /// `slow_delay` instead.
    slow_skip: usize,
    slow_next: usize,
    slow_delay: Duration,
    /// Bodies larger than this (as received) get 413.
    max_body: Option<usize>,
    requests: Vec<BulkLog>,
    /// Documents of items answered 400 `document_parsing_exception` by injection.
    refused: Vec<Doc>,
    seq_no: u64,
    auto_id: u64,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeElasticsearch {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeElasticsearch {
    /// Starts on 127.0.0.1 with an ephemeral port; `authorization` is the header value
    /// requests must carry (`None`: security off).
    pub async fn start(authorization: Option<&str>) -> FakeElasticsearch {
        let inner = Arc::new(Mutex::new(Inner {
            authorization: authorization.map(str::to_string),
            ..Inner::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Elasticsearch");
        let addr = listener.local_addr().expect("its address");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeElasticsearch { addr, inner }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` items (over all requests) answer 429 `es_rejected_execution_exception`.
    pub fn reject_next_items(&self, n: usize) {
        self.lock().reject_items = n;
    }

    /// The `n`th create action from now (1-based) is refused with 400, and so is every later
    /// action with its id.
    pub fn refuse_nth_create(&self, n: usize) {
        let mut inner = self.lock();
        inner.refuse_nth = Some(inner.n_creates_seen + n);
    }

    /// Stops refusing anything.
    pub fn stop_refusing(&self) {
        let mut inner = self.lock();
        inner.refuse_ids.clear();
        inner.refuse_nth = None;
    }

    /// The next requests are answered whole with these statuses (and `Retry-After`).
    pub fn fail_next_requests(
        &self,
        answers: impl IntoIterator<Item = (u16, Option<&'static str>)>,
    ) {
        self.lock()
            .fail_requests
            .extend(answers.into_iter().map(|(s, r)| (s, r.map(str::to_string))));
    }

    /// Every `_bulk` answer waits this long after the documents were stored.
    pub fn set_answer_delay(&self, delay: Duration) {
        self.lock().answer_delay = delay;
    }

    /// After `skip` more `_bulk` requests that reach the index, the next `n` answers wait
    /// `delay` after the documents were stored.
    pub fn slow_answers(&self, skip: usize, n: usize, delay: Duration) {
        let mut inner = self.lock();
        inner.slow_skip = skip;
        inner.slow_next = n;
        inner.slow_delay = delay;
    }

    /// Answers 413 to bodies larger than `max` bytes as received.
    pub fn set_max_body(&self, max: Option<usize>) {
        self.lock().max_body = max;
    }

    /// Every stored document, by index then id.
    pub fn docs(&self) -> Vec<Doc> {
        self.lock()
            .indices
            .iter()
            .flat_map(|(index, docs)| {
                docs.iter().map(|(id, source)| Doc {
                    index: index.clone(),
                    id: id.clone(),
                    source: source.clone(),
                })
            })
            .collect()
    }

    /// Names of the indices and data streams holding documents.
    pub fn index_names(&self) -> Vec<String> {
        self.lock().indices.keys().cloned().collect()
    }

    /// `create` actions seen per `_id`.
    pub fn attempts(&self) -> HashMap<String, usize> {
        self.lock().attempts.clone()
    }

    /// Items answered 201 so far.
    pub fn n_created(&self) -> usize {
        self.lock().n_created
    }

    /// Items answered 409 so far.
    pub fn n_conflicts(&self) -> usize {
        self.lock().n_conflicts
    }

    /// Documents refused by injection, as sent.
    pub fn refused(&self) -> Vec<Doc> {
        self.lock().refused.clone()
    }

    /// Every `_bulk` request so far.
    pub fn requests(&self) -> Vec<BulkLog> {
        self.lock().requests.clone()
    }
}

fn error_body(status: u16, kind: &str, reason: &str) -> Value {
    json!({
        "error": {
            "root_cause": [{ "type": kind, "reason": reason }],
            "type": kind,
            "reason": reason,
        },
        "status": status,
    })
}

fn answer(status: u16, body: &Value) -> Response {
    let mut response = (
        StatusCode::from_u16(status).expect("a valid status"),
        body.to_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-elastic-product", "Elasticsearch".parse().unwrap());
    response
}

/// Whether `name` is a data stream under Elasticsearch's built-in templates.
fn is_data_stream(name: &str) -> bool {
    ["logs-", "metrics-", "traces-"]
        .iter()
        .any(|prefix| name.starts_with(prefix) && name[prefix.len()..].contains('-'))
}

/// Elasticsearch's index name rules (`MetadataCreateIndexService.validateIndexOrAliasName`).
fn invalid_index_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Some("must not be empty, '.' or '..'");
    }
    if name.to_lowercase() != name {
        return Some("must be lowercase");
    }
    if name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']) {
        return Some("must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]");
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("must not start with '_', '-', or '+'");
    }
    None
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = inner.lock().unwrap().authorization.clone();
    if let Some(expected) = expected {
        let got = headers.get("authorization").and_then(|v| v.to_str().ok());
        if got != Some(expected.as_str()) {
            let reason = match got {
                None => format!("missing authentication credentials for REST request [{uri}]"),
                Some(_) => "unable to authenticate with provided credentials".to_string(),
            };
            let mut response = answer(401, &error_body(401, "security_exception", &reason));
            response.headers_mut().insert(
                "www-authenticate",
                "ApiKey, Basic realm=\"security\", charset=\"UTF-8\""
                    .parse()
                    .unwrap(),
            );
            return response;
        }
    }
    let path = uri.path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, [""]) => answer(
            200,
            &json!({
                "name": "fake-es-1",
                "cluster_name": "fake-cluster",
                "cluster_uuid": "o6Kf2d5bT3qY0gC0v9mJQw",
                "version": {
                    "number": "8.17.0",
                    "build_flavor": "default",
                    "build_type": "docker",
                    "lucene_version": "9.12.0",
                    "minimum_wire_compatibility_version": "7.17.0",
                    "minimum_index_compatibility_version": "7.0.0",
                },
                "tagline": "You Know, for Search",
            }),
        ),
        (&Method::POST | &Method::PUT, ["_bulk"]) => bulk(&inner, None, &uri, headers, body).await,
        (&Method::POST | &Method::PUT, [index, "_bulk"]) => {
            let index = index.to_string();
            bulk(&inner, Some(index), &uri, headers, body).await
        }
        _ => answer(
            400,
            &json!({
                "error": format!("no handler found for uri [{path}] and method [{method}]"),
            }),
        ),
    }
}

async fn bulk(
    inner: &Arc<Mutex<Inner>>,
    path_index: Option<String>,
    uri: &Uri,
    headers: HeaderMap,
    wire: Bytes,
) -> Response {
    let arrived = Instant::now();
    let log = |status: u16, n_actions: usize, gzip: bool| BulkLog {
        at: arrived,
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers.clone(),
        gzip,
        n_actions,
        status,
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !matches!(media, "application/json" | "application/x-ndjson") {
        inner.lock().unwrap().requests.push(log(406, 0, false));
        return answer(
            406,
            &json!({
                "error": format!("Content-Type header [{content_type}] is not supported"),
                "status": 406,
            }),
        );
    }
    let gzip = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    {
        let mut state = inner.lock().unwrap();
        if state.max_body.is_some_and(|max| wire.len() > max) {
            state.requests.push(log(413, 0, gzip));
            return answer(413, &json!({}));
        }
        if let Some((status, retry_after)) = state.fail_requests.pop_front() {
            state.requests.push(log(status, 0, gzip));
            let (kind, reason) = match status {
                429 => (
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=104857600, max_coordinating_and_primary_bytes=107374182]",
                ),
                503 => (
                    "cluster_block_exception",
                    "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
                ),
                _ => ("exception", "injected failure"),
            };
            let mut response = answer(status, &error_body(status, kind, reason));
            if let Some(retry_after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", retry_after.parse().unwrap());
            }
            return response;
        }
    }
    let body = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&wire[..])
            .read_to_end(&mut out)
            .is_err()
        {
            inner.lock().unwrap().requests.push(log(400, 0, gzip));
            return answer(
                400,
                &error_body(400, "parse_exception", "request body is not valid gzip"),
            );
        }
        out
    } else {
        wire.to_vec()
    };
    if !body.ends_with(b"\n") {
        inner.lock().unwrap().requests.push(log(400, 0, gzip));
        return answer(
            400,
            &error_body(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            ),
        );
    }
    let text = match String::from_utf8(body) {
        Ok(text) => text,
        Err(_) => {
            inner.lock().unwrap().requests.push(log(400, 0, gzip));
            return answer(
                400,
                &error_body(400, "parse_exception", "body is not UTF-8"),
            );
        }
    };
    // Parse every action first: a malformed action line refuses the whole request.
    let mut actions: Vec<(String, String, Option<String>, String)> = Vec::new();
    let mut lines = text.split('\n').enumerate();
    while let Some((line_idx, line)) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let refuse =
            |reason: String| answer(400, &error_body(400, "illegal_argument_exception", &reason));
        let Ok(Value::Object(action)) = serde_json::from_str::<Value>(line) else {
            inner.lock().unwrap().requests.push(log(400, 0, gzip));
            return refuse(format!(
                "Malformed action/metadata line [{}], expected START_OBJECT",
                line_idx + 1
            ));
        };
        let Some((op, meta)) = action.iter().next() else {
            inner.lock().unwrap().requests.push(log(400, 0, gzip));
            return refuse(format!(
                "Malformed action/metadata line [{}], expected FIELD_NAME but found [END_OBJECT]",
                line_idx + 1
            ));
        };
        if !matches!(op.as_str(), "create" | "index") {
            inner.lock().unwrap().requests.push(log(400, 0, gzip));
            return refuse(format!(
                "Malformed action/metadata line [{}], expected one of [create, delete, index, update] but found [{op}]",
                line_idx + 1
            ));
        }
        let index = meta["_index"]
            .as_str()
            .map(str::to_string)
            .or_else(|| path_index.clone());
        let Some(index) = index else {
            inner.lock().unwrap().requests.push(log(400, 0, gzip));
            return answer(
                400,
                &error_body(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                ),
            );
        };
        let id = meta["_id"].as_str().map(str::to_string);
        let Some((_, source)) = lines.next() else {
            inner.lock().unwrap().requests.push(log(400, 0, gzip));
            return refuse("The bulk request must be terminated by a newline [\\n]".into());
        };
        actions.push((op.clone(), index, id, source.to_string()));
    }

    let started = std::time::Instant::now();
    let (items, delay) = {
        let mut state = inner.lock().unwrap();
        let today = chrono::Utc::now().format("%Y.%m.%d").to_string();
        let mut items = Vec::with_capacity(actions.len());
        for (op, index, id, source) in &actions {
            let id = id.clone().unwrap_or_else(|| {
                state.auto_id += 1;
                format!("auto-{}", state.auto_id)
            });
            let shown_index = if is_data_stream(index) {
                format!(".ds-{index}-{today}-000001")
            } else {
                index.clone()
            };
            let item_error = |status: u16, kind: &str, reason: String| {
                json!({ op.as_str(): {
                    "_index": shown_index, "_id": id, "status": status,
                    "error": { "type": kind, "reason": reason, "index": shown_index, "shard": "0", "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA" },
                }})
            };
            if op == "create" {
                *state.attempts.entry(id.clone()).or_default() += 1;
                state.n_creates_seen += 1;
                if state.refuse_nth == Some(state.n_creates_seen) {
                    state.refuse_ids.insert(id.clone());
                }
            }
            if state.reject_items > 0 {
                state.reject_items -= 1;
                items.push(item_error(429, "es_rejected_execution_exception", "rejected execution of primary operation [shard_detail=[lacework][0][C], shard_max_coordinating_and_primary_bytes=107374182, shard_operation_bytes=1024, shard_max_replica_bytes=0] OR [node_coordinating_and_primary_bytes=107374182, node_replica_bytes=0, node_all_bytes=107374182, node_operation_bytes=1024, node_max_coordinating_and_primary_bytes=107374182]".into()));
                continue;
            }
            if let Some(problem) = invalid_index_name(index) {
                items.push(item_error(
                    400,
                    "invalid_index_name_exception",
                    format!("Invalid index name [{index}], {problem}"),
                ));
                continue;
            }
            if is_data_stream(index) && op != "create" {
                items.push(item_error(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams"
                        .to_string(),
                ));
                continue;
            }
            if state.refuse_ids.contains(&id) {
                let source = serde_json::from_str(source).unwrap_or(Value::Null);
                state.refused.push(Doc {
                    index: index.clone(),
                    id: id.clone(),
                    source,
                });
                items.push(item_error(400, "document_parsing_exception", format!("[1:97] failed to parse field [user.name] of type [long] in document with id '{id}'. Preview of field's value: 'admin@acme.com'")));
                continue;
            }
            let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(source) else {
                items.push(item_error(
                    400,
                    "document_parsing_exception",
                    "[1:1] failed to parse: source is not a JSON object".into(),
                ));
                continue;
            };
            if is_data_stream(index) && !doc.contains_key("@timestamp") {
                items.push(item_error(
                    400,
                    "document_parsing_exception",
                    "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing"
                        .into(),
                ));
                continue;
            }
            let exists = state
                .indices
                .get(index)
                .is_some_and(|docs| docs.contains_key(&id));
            if exists && op == "create" {
                state.n_conflicts += 1;
                items.push(item_error(
                    409,
                    "version_conflict_engine_exception",
                    format!(
                        "[{id}]: version conflict, document already exists (current version [1])"
                    ),
                ));
                continue;
            }
            state.seq_no += 1;
            let seq_no = state.seq_no;
            state
                .indices
                .entry(index.clone())
                .or_default()
                .insert(id.clone(), Value::Object(doc));
            let (status, result, version) = if exists {
                (200, "updated", 2)
            } else {
                (201, "created", 1)
            };
            if status == 201 {
                state.n_created += 1;
            }
            items.push(json!({ op.as_str(): {
                "_index": shown_index, "_id": id, "_version": version, "result": result,
                "_shards": { "total": 2, "successful": 1, "failed": 0 },
                "_seq_no": seq_no, "_primary_term": 1, "status": status,
            }}));
        }
        let delay = if state.slow_skip > 0 {
            state.slow_skip -= 1;
            state.answer_delay
        } else if state.slow_next > 0 {
            state.slow_next -= 1;
            state.slow_delay
        } else {
            state.answer_delay
        };
        state.requests.push(log(200, actions.len(), gzip));
        (items, delay)
    };
    // The documents are in the index: an answer lost from here on (a client timeout, a
    // crash) leaves them there, which is what makes a re-send come back 409.
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let errors = items.iter().any(|item| {
        item.as_object()
            .and_then(|o| o.values().next())
            .and_then(|r| r["status"].as_u64())
            .is_some_and(|s| s >= 300)
    });
    answer(
        200,
        &json!({ "took": started.elapsed().as_millis() as u64, "errors": errors, "items": items }),
    )
}
