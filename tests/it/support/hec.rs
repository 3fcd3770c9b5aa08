//! A fake Splunk HTTP Event Collector on loopback, faithful to Splunk's public HEC docs ("Format
//! events for HTTP Event Collector", "About HTTP Event Collector Indexer Acknowledgment", the
//! HEC error codes): the event endpoint checks `Authorization: Splunk <token>`, wants a data
//! channel (`X-Splunk-Request-Channel` or `?channel=`) when the token has indexer
//! acknowledgement, reads stacked event envelopes (gzip bodies too) and answers an `ackId` per
//! channel; `/services/collector/ack` answers `{"acks":{"N":bool}}`, reporting `true` once and
//! then forgetting the id, as Splunk does.
//!
//! The fake "indexes" a request's events only when its ack becomes true (`ack_delay` after it
//! was accepted), so a request it "lost" (its ack never comes, as if the indexer dropped it)
//! is never counted, and a resent copy is counted once. Faults: acks disabled on the token,
//! lose the next K event requests, busy (503 code 9) for the next N requests, ack answers that
//! cannot be read.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The token the fake accepts.
pub const HEC_TOKEN: &str = "11111111-aaaa-4bbb-8ccc-222222222222";

/// One request to the event endpoint the fake accepted.
#[derive(Clone, Debug)]
pub struct EventRequest {
    /// The data channel it named, if any.
    pub channel: Option<String>,
    /// The ackId it was given (acks enabled).
    pub ack_id: Option<u64>,
    /// The `event` field of each envelope, in order.
    pub events: Vec<Value>,
    /// When its events count as indexed; `None` for a lost request.
    pub indexed_at: Option<Instant>,
}

/// Any request, as answered.
#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub status: u16,
    pub channel: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct Channel {
    next_ack_id: u64,
    /// ackId to the index of its request in `accepted`, until reported true.
    pending: HashMap<u64, usize>,
}

struct Inner {
    ack_enabled: bool,
    ack_delay: Duration,
    lose_next: usize,
    busy_next: usize,
    garble_next_acks: usize,
    channels: HashMap<String, Channel>,
    accepted: Vec<EventRequest>,
    log: Vec<Logged>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeHec {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeHec {
    /// Starts a fake whose token has indexer acknowledgement on, acks coming at once.
    pub async fn start() -> FakeHec {
        let inner = Arc::new(Mutex::new(Inner {
            ack_enabled: true,
            ack_delay: Duration::ZERO,
            lose_next: 0,
            busy_next: 0,
            garble_next_acks: 0,
            channels: HashMap::new(),
            accepted: Vec::new(),
            log: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake HEC");
        let addr = listener.local_addr().expect("fake HEC address");
        let app = axum::Router::new()
            .route("/services/collector", post(event))
            .route("/services/collector/event", post(event))
            .route("/services/collector/event/1.0", post(event))
            .route("/services/collector/ack", post(ack))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeHec { addr, inner }
    }

    /// The URL of `path` on the fake.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Indexer acknowledgement on the token (on by default). Off: events are indexed on
    /// receipt, answers carry no ackId, and the ack endpoint answers 400 code 14.
    pub fn set_ack_enabled(&self, enabled: bool) {
        self.inner.lock().unwrap().ack_enabled = enabled;
    }

    /// How long after a request was accepted its ack becomes true (and its events indexed);
    /// applies to requests accepted from now on.
    pub fn set_ack_delay(&self, delay: Duration) {
        self.inner.lock().unwrap().ack_delay = delay;
    }

    /// The next `n` event requests are accepted (200 with an ackId) but lost: their ack never
    /// becomes true and their events are never indexed.
    pub fn lose_next(&self, n: usize) {
        self.inner.lock().unwrap().lose_next = n;
    }

    /// The next `n` requests (to either endpoint) are answered 503 "Server is busy" (code 9).
    pub fn busy_next(&self, n: usize) {
        self.inner.lock().unwrap().busy_next = n;
    }

    /// The next `n` ack polls are answered 200 with a body that is not an ack answer (as a
    /// proxy's error page would be); they change nothing.
    pub fn garble_next_acks(&self, n: usize) {
        self.inner.lock().unwrap().garble_next_acks = n;
    }

    /// Every event request accepted, in arrival order.
    pub fn accepted(&self) -> Vec<EventRequest> {
        self.inner.lock().unwrap().accepted.clone()
    }

    /// Every request with its answer, in arrival order.
    pub fn log(&self) -> Vec<Logged> {
        self.inner.lock().unwrap().log.clone()
    }

    /// The events indexed by now (a resent request's copy counted again only if both copies
    /// were indexed).
    pub fn indexed_events(&self) -> Vec<Value> {
        let now = Instant::now();
        self.inner
            .lock()
            .unwrap()
            .accepted
            .iter()
            .filter(|request| request.indexed_at.is_some_and(|at| at <= now))
            .flat_map(|request| request.events.iter().cloned())
            .collect()
    }
}

/// A HEC error answer: status, text, code.
type Refusal = (u16, &'static str, u32);

/// A HEC answer: `{"text":..,"code":..}` with `status`.
fn answer(status: u16, text: &str, code: u32) -> Response {
    (
        StatusCode::from_u16(status).expect("valid status"),
        [("content-type", "application/json")],
        json!({ "text": text, "code": code }).to_string(),
    )
        .into_response()
}

/// The data channel named by the header or, failing that, the query.
fn channel_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            uri.query()?.split('&').find_map(|pair| {
                pair.strip_prefix("channel=")
                    .map(|value| value.replace("%2D", "-").replace("%2d", "-"))
            })
        })
}

fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The checks both endpoints make first: busy, then the token. `Err` is the answer.
fn gate(inner: &mut Inner, headers: &HeaderMap) -> Result<(), Refusal> {
    if inner.busy_next > 0 {
        inner.busy_next -= 1;
        return Err((503, "Server is busy", 9));
    }
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match authorization.strip_prefix("Splunk ") {
        None if authorization.is_empty() => Err((401, "Token is required", 2)),
        None => Err((401, "Invalid authorization", 3)),
        Some(token) if token != HEC_TOKEN => Err((403, "Invalid token", 4)),
        Some(_) => Ok(()),
    }
}

/// Logs the request with the status of `response` and passes it on.
fn logged(inner: &mut Inner, uri: &Uri, channel: Option<String>, response: Response) -> Response {
    inner.log.push(Logged {
        path: uri.path().to_string(),
        status: response.status().as_u16(),
        channel,
        at: Instant::now(),
    });
    response
}

/// Reads stacked envelopes (`{...}{...}` or one per line); each needs a non-blank `event`.
fn envelopes(body: &[u8]) -> Result<Vec<Value>, Refusal> {
    let mut events = Vec::new();
    for envelope in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        let envelope = envelope.map_err(|_| (400, "Invalid data format", 6))?;
        match envelope.get("event") {
            None => return Err((400, "Event field is required", 12)),
            Some(Value::String(text)) if text.trim().is_empty() => {
                return Err((400, "Event field cannot be blank", 13));
            }
            Some(event) => events.push(event.clone()),
        }
    }
    if events.is_empty() {
        return Err((400, "No data", 5));
    }
    Ok(events)
}

fn decoded(headers: &HeaderMap, body: &Bytes) -> Option<Vec<u8>> {
    let gzip = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Some(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

async fn event(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let channel = channel_of(&headers, &uri);
    let mut inner = inner.lock().unwrap();
    let inner = &mut *inner;
    let response = event_answer(inner, &headers, channel.clone(), &body);
    logged(inner, &uri, channel, response)
}

fn event_answer(
    inner: &mut Inner,
    headers: &HeaderMap,
    channel: Option<String>,
    body: &Bytes,
) -> Response {
    if let Err((status, text, code)) = gate(inner, headers) {
        return answer(status, text, code);
    }
    if inner.ack_enabled {
        match &channel {
            None => return answer(400, "Data channel is missing", 10),
            Some(channel) if !is_guid(channel) => {
                return answer(400, "Invalid data channel", 11);
            }
            Some(_) => {}
        }
    }
    let Some(body) = decoded(headers, body) else {
        return answer(400, "Invalid data format", 6);
    };
    let events = match envelopes(&body) {
        Ok(events) => events,
        Err((status, text, code)) => return answer(status, text, code),
    };
    let lost = inner.lose_next > 0;
    if lost {
        inner.lose_next -= 1;
    }
    let now = Instant::now();
    let index = inner.accepted.len();
    if !inner.ack_enabled {
        inner.accepted.push(EventRequest {
            channel,
            ack_id: None,
            events,
            indexed_at: (!lost).then_some(now),
        });
        return answer(200, "Success", 0);
    }
    let channel_name = channel.clone().expect("checked above");
    let state = inner.channels.entry(channel_name).or_default();
    let ack_id = state.next_ack_id;
    state.next_ack_id += 1;
    state.pending.insert(ack_id, index);
    inner.accepted.push(EventRequest {
        channel,
        ack_id: Some(ack_id),
        events,
        indexed_at: (!lost).then_some(now + inner.ack_delay),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({ "text": "Success", "code": 0, "ackId": ack_id }).to_string(),
    )
        .into_response()
}

async fn ack(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let channel = channel_of(&headers, &uri);
    let mut inner = inner.lock().unwrap();
    let inner = &mut *inner;
    let response = ack_answer(inner, &headers, channel.as_deref(), &body);
    logged(inner, &uri, channel, response)
}

fn ack_answer(
    inner: &mut Inner,
    headers: &HeaderMap,
    channel: Option<&str>,
    body: &Bytes,
) -> Response {
    if let Err((status, text, code)) = gate(inner, headers) {
        return answer(status, text, code);
    }
    if !inner.ack_enabled {
        return answer(400, "ACK is disabled", 14);
    }
    if inner.garble_next_acks > 0 {
        inner.garble_next_acks -= 1;
        return (
            StatusCode::OK,
            "<html><body>Gateway says hello</body></html>",
        )
            .into_response();
    }
    let channel = match channel {
        None => return answer(400, "Data channel is missing", 10),
        Some(channel) if !is_guid(channel) => return answer(400, "Invalid data channel", 11),
        Some(channel) => channel,
    };
    let Some(ids) = decoded(headers, body)
        .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
        .and_then(|value| {
            value["acks"].as_array().map(|ids| {
                ids.iter()
                    .map(|id| id.as_u64())
                    .collect::<Option<Vec<u64>>>()
            })
        })
        .flatten()
    else {
        return answer(400, "Invalid data format", 6);
    };
    let now = Instant::now();
    let Inner {
        channels, accepted, ..
    } = inner;
    let state = channels.entry(channel.to_string()).or_default();
    let mut acks = serde_json::Map::new();
    for id in ids {
        let indexed = state
            .pending
            .get(&id)
            .is_some_and(|&index| accepted[index].indexed_at.is_some_and(|at| at <= now));
        if indexed {
            // Reported true once, then forgotten: a second query answers false.
            state.pending.remove(&id);
        }
        acks.insert(id.to_string(), Value::Bool(indexed));
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({ "acks": acks }).to_string(),
    )
        .into_response()
}
