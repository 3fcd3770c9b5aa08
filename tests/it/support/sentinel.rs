//! A fake of Microsoft Sentinel's ingestion path on loopback, written from Microsoft's public
//! documentation: the Entra ID v2.0 token endpoint (OAuth2 client credentials) and the Azure
//! Monitor Logs Ingestion API (`POST /dataCollectionRules/{id}/streams/{stream}`).
//!
//! Quirks kept from the real services:
//! - Entra answers errors as `{"error", "error_description": "AADSTSnnn: ...\r\nTrace ID: ..."}`
//!   with 400, except a wrong client secret (`invalid_client`), which is 401; the form must be
//!   `application/x-www-form-urlencoded`; client credentials take only a `/.default` scope.
//! - Tokens are opaque bearer tokens with `expires_in` (and `ext_expires_in`) in seconds.
//! - The ingestion API checks the token before anything else (401), then the DCR (404), the
//!   app's role on it (403 `OperationFailed`), the stream; it takes at most 1 MB per call
//!   (413 `ContentLengthLimitExceeded`, counted on the uncompressed body too), answers 429
//!   with `Retry-After` (seconds), 204 with no body on success, and errors as
//!   `{"error":{"code","message"}}` with the code also in `x-ms-error-code`.
//! - Columns a row carries beyond the stream's declaration are dropped silently by the real
//!   service; the fake keeps rows as sent so tests can see exactly what went out.
//!
//! Where the documentation does not give an error code (wrong stream, content type), the
//! fake's code is its own choice; the sink treats every such 4xx as fatal anyway.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The tenant (directory) the fake's app registration lives in.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The app registration's Application (client) ID.
pub const CLIENT_ID: &str = "5c3e1f0a-2b4d-4e6f-8a9b-0c1d2e3f4a5b";
/// The app registration's client secret (its Value).
pub const CLIENT_SECRET: &str = "Qx8~fake.Secret_Value-0123456789abcdefghij";
/// The data collection rule's immutable ID.
pub const DCR_IMMUTABLE_ID: &str = "dcr-0123456789abcdef0123456789abcdef";
/// The stream the DCR declares.
pub const STREAM_NAME: &str = "Custom-LaceworkAudit_CL";
/// The scope of Azure Monitor in the public cloud.
pub const SCOPE: &str = "https://monitor.azure.com/.default";
/// The Logs Ingestion API's limit on one call, compressed or not.
pub const MAX_BODY: usize = 1_000_000;

/// One ingestion call as the fake saw it.
#[derive(Clone, Debug)]
pub struct Ingestion {
    pub at: Instant,
    pub status: u16,
    /// The error code answered, if any (`InvalidToken`, `OperationFailed`, ...).
    pub code: Option<String>,
    /// Why a token was refused: `expired`, `revoked`, `unknown`, `missing` or `audience`.
    pub token_refusal: Option<&'static str>,
    /// The body's size on the wire and after undoing gzip.
    pub wire_len: usize,
    pub body_len: usize,
    pub gzip: bool,
    pub content_type: Option<String>,
    /// Rows in the body (when it parsed).
    pub n_rows: usize,
}

#[derive(Default)]
struct Inner {
    expires_in: u64,
    /// Issued tokens and when each expires; revoked ones are removed.
    tokens: HashMap<String, Instant>,
    /// Every token ever issued, to check that none leaks into logs.
    issued: Vec<String>,
    revoked: Vec<String>,
    n_token_requests: usize,
    n_token_refusals: usize,
    ingestions: Vec<Ingestion>,
    rows: Vec<Value>,
    throttle_next: usize,
    throttle_secs: u64,
    forbidden: bool,
    refuse_every_token: bool,
    max_body: usize,
    delay: Duration,
}

/// The running fake: token endpoint and ingestion endpoint on one loopback port.
#[derive(Clone)]
pub struct SentinelFake {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl SentinelFake {
    pub async fn start() -> SentinelFake {
        let inner = Arc::new(Mutex::new(Inner {
            expires_in: 3599,
            max_body: MAX_BODY,
            ..Inner::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Sentinel fake");
        let addr = listener.local_addr().expect("fake address");
        let app = axum::Router::new()
            .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token))
            .route(
                "/dataCollectionRules/{dcr}/streams/{stream}",
                axum::routing::post(ingest),
            )
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SentinelFake { addr, inner }
    }

    /// `http://127.0.0.1:port`: the authority and the ingestion endpoint both.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `[[sinks]]` table for this fake, reading the secret from `secret_file`, with
    /// `extra` lines appended.
    pub fn sink_toml(&self, secret_file: &str, extra: &str) -> String {
        format!(
            "[[sinks]]\ntype = \"sentinel\"\nname = \"sentinel\"\ntenant_id = \"{TENANT_ID}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{secret_file}\"\nauthority = \"{url}\"\nendpoint = \"{url}\"\ndcr_immutable_id = \"{DCR_IMMUTABLE_ID}\"\nstream_name = \"{STREAM_NAME}\"\nretry_initial = \"100ms\"\nretry_max = \"500ms\"\ntimeout = \"5s\"\n{extra}\n",
            url = self.url()
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_expires_in(&self, seconds: u64) {
        self.with(|inner| inner.expires_in = seconds);
    }

    /// Revokes every token issued so far: the next call with one gets 401.
    pub fn revoke_all(&self) {
        self.with(|inner| {
            let revoked: Vec<String> = inner.tokens.drain().map(|(token, _)| token).collect();
            inner.revoked.extend(revoked);
        });
    }

    /// Answers 401 to every token, new ones too (the wrong cloud's audience).
    pub fn refuse_every_token(&self) {
        self.with(|inner| inner.refuse_every_token = true);
    }

    /// Answers the next `n` ingestion calls 429 with `Retry-After: seconds`.
    pub fn throttle(&self, n: usize, seconds: u64) {
        self.with(|inner| {
            inner.throttle_next = n;
            inner.throttle_secs = seconds;
        });
    }

    /// Answers 403 `OperationFailed`: the app lacks "Monitoring Metrics Publisher" on the DCR.
    pub fn forbid(&self) {
        self.with(|inner| inner.forbidden = true);
    }

    /// Refuses (413) calls larger than `bytes` instead of 1 MB, to play a stricter limit.
    pub fn set_max_body(&self, bytes: usize) {
        self.with(|inner| inner.max_body = bytes);
    }

    /// Sleeps this long before answering each ingestion call.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|inner| inner.delay = delay);
    }

    /// Token requests received (answered or refused).
    pub fn token_requests(&self) -> usize {
        self.with(|inner| inner.n_token_requests)
    }

    /// Token requests refused.
    pub fn token_refusals(&self) -> usize {
        self.with(|inner| inner.n_token_refusals)
    }

    /// Every token issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.with(|inner| inner.issued.clone())
    }

    /// Every ingestion call, in arrival order.
    pub fn ingestions(&self) -> Vec<Ingestion> {
        self.with(|inner| inner.ingestions.clone())
    }

    /// Rows of every accepted call, in arrival order.
    pub fn rows(&self) -> Vec<Value> {
        self.with(|inner| inner.rows.clone())
    }
}

/// Entra's error answer: 400 (or 401 for `invalid_client`) with the AADSTS text.
fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description}\r\nTrace ID: 0b5e4c1a-7f10-4c2d-9a3e-5d6f7a8b9c00\r\nCorrelation ID: 3f2e1d0c-b9a8-4765-8432-10fedcba9876\r\nTimestamp: 2026-11-01 09:15:02Z"
        ),
        "error_codes": [code],
        "timestamp": "2026-11-01 09:15:02Z",
        "trace_id": "0b5e4c1a-7f10-4c2d-9a3e-5d6f7a8b9c00",
        "correlation_id": "3f2e1d0c-b9a8-4765-8432-10fedcba9876",
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (
        StatusCode::from_u16(status).expect("valid status"),
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.n_token_requests += 1;
    let refused = |inner: &mut Inner, response: Response| {
        inner.n_token_refusals += 1;
        response
    };
    if tenant != TENANT_ID {
        return refused(
            &mut inner,
            entra_error(
                400,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ),
        );
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> = if form_type {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        HashMap::new()
    };
    let field = |name: &str| form.get(name).map(String::as_str);
    let Some(grant_type) = field("grant_type") else {
        return refused(
            &mut inner,
            entra_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ),
        );
    };
    if grant_type != "client_credentials" {
        return refused(
            &mut inner,
            entra_error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{grant_type}'."),
            ),
        );
    }
    if field("client_id") != Some(CLIENT_ID) {
        return refused(
            &mut inner,
            entra_error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{}' was not found in the directory '{TENANT_ID}'.",
                    field("client_id").unwrap_or("")
                ),
            ),
        );
    }
    if field("client_secret") != Some(CLIENT_SECRET) {
        return refused(
            &mut inner,
            entra_error(
                401,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{CLIENT_ID}'."
                ),
            ),
        );
    }
    match field("scope") {
        Some(SCOPE) => {}
        Some(scope) if !scope.ends_with("/.default") => {
            return refused(
                &mut inner,
                entra_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                ),
            );
        }
        other => {
            return refused(
                &mut inner,
                entra_error(
                    400,
                    "invalid_resource",
                    500011,
                    &format!(
                        "The resource principal named {} was not found in the tenant named {TENANT_ID}.",
                        other.unwrap_or("(none)").trim_end_matches("/.default")
                    ),
                ),
            );
        }
    }
    let n = inner.issued.len() + 1;
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-token-{n}-{}",
        fastrand::u64(..)
    );
    let expires_in = inner.expires_in;
    inner.tokens.insert(
        token.clone(),
        Instant::now() + Duration::from_secs(expires_in),
    );
    inner.issued.push(token.clone());
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": token,
        })
        .to_string(),
    )
        .into_response()
}

/// The ingestion API's error answer.
fn ingestion_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).expect("valid status"),
        [
            ("content-type", "application/json"),
            ("x-ms-error-code", code),
        ],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

async fn ingest(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((dcr, stream)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let delay = inner.lock().unwrap().delay;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let gzip = header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let plain = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map(|_| out)
    } else {
        Ok(body.to_vec())
    };
    let mut record = Ingestion {
        at: arrived,
        status: 0,
        code: None,
        token_refusal: None,
        wire_len: body.len(),
        body_len: plain.as_ref().map_or(0, Vec::len),
        gzip,
        content_type: header("content-type"),
        n_rows: 0,
    };
    let (response, rows) = {
        let mut inner = inner.lock().unwrap();
        let authorization = header("authorization");
        let answer = judge(
            &mut inner,
            &mut record,
            authorization.as_deref(),
            arrived,
            &dcr,
            &stream,
            &query,
            plain,
        );
        match answer {
            Ok(rows) => {
                record.status = 204;
                (StatusCode::NO_CONTENT.into_response(), Some(rows))
            }
            Err(refused) => {
                record.status = refused.status;
                record.code = Some(refused.code.to_string());
                let mut response = ingestion_error(refused.status, refused.code, &refused.message);
                if let Some(seconds) = refused.retry_after {
                    response.headers_mut().insert(
                        "retry-after",
                        seconds.to_string().parse().expect("valid header"),
                    );
                }
                (response, None)
            }
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut inner = inner.lock().unwrap();
    if let Some(rows) = rows {
        record.n_rows = rows.len();
        inner.rows.extend(rows);
    }
    inner.ingestions.push(record);
    response
}

/// A refused call.
struct Refusal {
    status: u16,
    code: &'static str,
    message: String,
    /// `Retry-After` seconds (429 only).
    retry_after: Option<u64>,
}

fn refusal(status: u16, code: &'static str, message: String) -> Refusal {
    Refusal {
        status,
        code,
        message,
        retry_after: None,
    }
}

/// The checks in the order the real service makes them; the rows when all pass.
#[expect(
    clippy::too_many_arguments,
    reason = "one call, every part of the request"
)]
fn judge(
    inner: &mut Inner,
    record: &mut Ingestion,
    authorization: Option<&str>,
    arrived: Instant,
    dcr: &str,
    stream: &str,
    query: &HashMap<String, String>,
    plain: std::io::Result<Vec<u8>>,
) -> Result<Vec<Value>, Refusal> {
    if let Err(reason) = check_bearer(inner, authorization, arrived) {
        record.token_refusal = Some(reason);
        return Err(refusal(
            401,
            "InvalidToken",
            format!("The provided access token is not valid: {reason}."),
        ));
    }
    match query.get("api-version").map(String::as_str) {
        Some("2023-01-01" | "2021-11-01-preview") => {}
        Some(other) => {
            return Err(refusal(
                400,
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{other}' is invalid. The supported versions are '2023-01-01,2021-11-01-preview'."
                ),
            ));
        }
        None => {
            return Err(refusal(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests."
                    .into(),
            ));
        }
    }
    if dcr != DCR_IMMUTABLE_ID {
        return Err(refusal(
            404,
            "NotFound",
            format!("Data collection rule with immutable Id '{dcr}' not found."),
        ));
    }
    if inner.forbidden {
        return Err(refusal(
            403,
            "OperationFailed",
            format!(
                "The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '{dcr}'."
            ),
        ));
    }
    if stream != STREAM_NAME {
        return Err(refusal(
            400,
            "InvalidStream",
            format!("Stream '{stream}' is not declared in data collection rule '{dcr}'."),
        ));
    }
    if inner.throttle_next > 0 {
        inner.throttle_next -= 1;
        let seconds = inner.throttle_secs;
        return Err(Refusal {
            retry_after: Some(seconds),
            ..refusal(
                429,
                "TooManyRequests",
                format!("Request rate is too large; retry after {seconds} seconds."),
            )
        });
    }
    if !record
        .content_type
        .as_deref()
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return Err(refusal(
            415,
            "UnsupportedMediaType",
            format!(
                "Content-Type {:?} is not supported; use application/json.",
                record.content_type
            ),
        ));
    }
    let plain = plain.map_err(|error| {
        refusal(
            400,
            "InvalidContentEncoding",
            format!("The body is not valid gzip: {error}."),
        )
    })?;
    let largest = record.wire_len.max(plain.len());
    if largest > inner.max_body {
        return Err(refusal(
            413,
            "ContentLengthLimitExceeded",
            format!(
                "Maximum allowed content length: {} bytes. Provided content length: {largest} bytes.",
                inner.max_body
            ),
        ));
    }
    match serde_json::from_slice::<Value>(&plain) {
        Ok(Value::Array(rows)) if rows.iter().all(Value::is_object) => Ok(rows),
        _ => Err(refusal(
            400,
            "InvalidPayload",
            "The request body must be a JSON array of objects.".into(),
        )),
    }
}

/// Checks the bearer token: issued, not revoked, not expired when the call `arrived`.
fn check_bearer(
    inner: &Inner,
    authorization: Option<&str>,
    arrived: Instant,
) -> Result<(), &'static str> {
    let token = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or("missing")?;
    if inner.refuse_every_token {
        return Err("audience");
    }
    match inner.tokens.get(token) {
        Some(expires) if arrived < *expires => Ok(()),
        Some(_) => Err("expired"),
        None if inner.revoked.iter().any(|t| t == token) => Err("revoked"),
        None => Err("unknown"),
    }
}
