//! Injected faults: the queues tests fill at runtime and the responses each fault produces.
//!
//! Faults are broken answers (429, 5xx, a dropped connection, a slow answer, a 200 whose body
//! is unusable) that are independent of the request; the enforced rate-limit budget lives in
//! `ratelimit` and is checked before a fault is taken, so a refused request consumes none.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_core::Stream;

use crate::lock;
use crate::server::json_error;

/// A failure to inject into the next request(s) of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `RateLimit-Remaining: 0` and `RateLimit-Reset: reset_secs`.
    RateLimited {
        /// Seconds the client is told to wait.
        reset_secs: u64,
    },
    /// That status with a `{"message":..}` body (502 gets an nginx HTML page, as proxies send).
    Status(u16),
    /// 200 and headers plus the start of a body, then the connection is aborted.
    Drop,
    /// Waits this long, then answers normally.
    Slow(Duration),
    /// 200 with a complete, well-formed HTTP answer whose body a client cannot use. Unlike
    /// `Drop`, the body ends where its `Content-Length` says and the connection stays up.
    BadBody(BadBody),
}

/// The body of a [`Fault::BadBody`] answer; each is sent with status 200.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadBody {
    /// A maintenance page, as a proxy in front of the API serves it, with
    /// `Content-Type: text/html`.
    Html,
    /// `application/json` whose text stops in the middle of a record (the prefix `Drop`
    /// sends), delivered as the whole body.
    TruncatedJson,
    /// Valid JSON of the wrong shape, `{"data":{"oops":1}}`: AuditLogs promises a `data`
    /// array, the token endpoint a top-level `token` string.
    WrongShape,
    /// A line of plain text with `Content-Type: text/plain`.
    NotJson,
}

/// Faults waiting for the next requests of one endpoint, consumed one per request in order.
#[derive(Default)]
pub(crate) struct FaultQueue {
    queue: Mutex<VecDeque<(usize, Fault)>>,
}

impl FaultQueue {
    pub fn push(&self, n: usize, fault: Fault) {
        if n > 0 {
            lock(&self.queue).push_back((n, fault));
        }
    }

    pub fn clear(&self) {
        lock(&self.queue).clear();
    }

    pub fn take(&self) -> Option<Fault> {
        let mut queue = lock(&self.queue);
        let (left, fault) = queue.front_mut()?;
        *left -= 1;
        let fault = fault.clone();
        if *left == 0 {
            queue.pop_front();
        }
        Some(fault)
    }
}

/// Which endpoint a fault hits; decides what the truncated body of `Drop` looks like.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Endpoint {
    Tokens,
    AuditLogs,
    /// TeamUsers, TeamMembers and UserProfile.
    Inventory,
}

/// Acts on a taken fault: `Slow` sleeps and lets the request proceed (`None`), the others
/// produce the whole response.
pub(crate) async fn apply(fault: Option<Fault>, endpoint: Endpoint) -> Option<Response> {
    match fault? {
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Fault::RateLimited { reset_secs } => Some(rate_limited(reset_secs)),
        Fault::Status(code) => Some(status(code)),
        Fault::Drop => Some(dropped(endpoint)),
        Fault::BadBody(body) => Some(bad_body(body, endpoint)),
    }
}

/// The 429 of an exhausted budget; the caller adds the `RateLimit-*` headers.
pub(crate) fn rate_limit_exceeded() -> Response {
    json_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded")
}

/// Like a budget's 429 but with the fault's wait; `RateLimit-Limit` is added by the caller, so
/// it names the budget in force.
fn rate_limited(reset_secs: u64) -> Response {
    let mut resp = rate_limit_exceeded();
    let h = resp.headers_mut();
    h.insert("ratelimit-remaining", HeaderValue::from(0u32));
    h.insert("ratelimit-reset", HeaderValue::from(reset_secs));
    resp
}

/// What nginx in front of the API answers when the upstream is down.
const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

fn status(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::BAD_GATEWAY {
        return (status, [(header::CONTENT_TYPE, "text/html")], NGINX_502).into_response();
    }
    json_error(status, status.canonical_reason().unwrap_or("Error"))
}

/// The start of a plausible body, cut off mid-record: `Drop` sends it before aborting the
/// connection, `BadBody::TruncatedJson` as a complete body.
fn truncated_body(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Tokens => r#"{"expiresAt":"2026-11-01T10:15:02.123Z","tok"#,
        Endpoint::AuditLogs => concat!(
            r#"{"paging":{"rows":5000,"totalRows":12873,"urls":{"nextPage":null}},"data":["#,
            r#"{"accountName":"ACME","createdTime":"2026-11-01T09:15:02.123Z","#,
            r#""eventDescription":"User jane.doe@acme.com logged in","eventName":"User Login","#,
            r#""userAction":"Login with OAuth Succeeded","userName":"jane.doe@acme.com"},"#,
            r#"{"accountName":"ACME","createdTi"#
        ),
        Endpoint::Inventory => concat!(
            r#"{"data":[{"userGuid":"ACME_0123456789ABCDEF0123456789ABCDEF","name":"Jane Doe","#,
            r#""email":"jane.doe@acme.com","userEnabled":1,"type":"Stand"#
        ),
    }
}

fn dropped(endpoint: Endpoint) -> Response {
    let stream = AbortAfterChunk {
        chunk: Some(Bytes::from_static(truncated_body(endpoint).as_bytes())),
        // A short pause lets hyper flush the head and chunk before the abort, so the
        // client really sees a 200 whose body breaks rather than a refused request.
        pause: Box::pin(tokio::time::sleep(Duration::from_millis(30))),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A scheduled-maintenance page, as served by a proxy while the API is down.
const MAINTENANCE_HTML: &str = "<!DOCTYPE html>\n<html>\n<head><title>Scheduled Maintenance</title></head>\n<body>\n<h1>We'll be back soon</h1>\n<p>The service is undergoing scheduled maintenance. Please try again later.</p>\n</body>\n</html>\n";

/// The text Envoy sends when an upstream resets; here it arrives with a 200.
const PLAIN_TEXT: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

fn bad_body(body: BadBody, endpoint: Endpoint) -> Response {
    // A `&'static str` body gets an exact Content-Length, so the exchange itself is sound.
    let (content_type, text) = match body {
        BadBody::Html => ("text/html", MAINTENANCE_HTML),
        BadBody::TruncatedJson => ("application/json", truncated_body(endpoint)),
        BadBody::WrongShape => ("application/json", r#"{"data":{"oops":1}}"#),
        BadBody::NotJson => ("text/plain", PLAIN_TEXT),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// Yields one chunk, then an error, which makes hyper abort the connection mid-body.
struct AbortAfterChunk {
    chunk: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for AbortAfterChunk {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(chunk) = self.chunk.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "injected fault: connection dropped mid-body",
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_consumes_one_unit_per_request_in_order() {
        let q = FaultQueue::default();
        q.push(2, Fault::Status(500));
        q.push(0, Fault::Drop);
        q.push(1, Fault::Status(503));
        assert_eq!(q.take(), Some(Fault::Status(500)));
        assert_eq!(q.take(), Some(Fault::Status(500)));
        assert_eq!(q.take(), Some(Fault::Status(503)));
        assert_eq!(q.take(), None);
    }
}
