//! HTTP routes: token exchange, AuditLogs first pages and nextPage fetches, the user inventory
//! (TeamUsers, TeamMembers, UserProfile), request logging and the rate-limit budget in front of
//! them all.

// Handlers short-circuit with a ready `Response` as the error; it is built at most once per
// request, so boxing it (what `result_large_err` suggests) would only add an allocation.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::faults::{self, Endpoint};
use crate::page;
use crate::ratelimit::Family;
use crate::store::{Scope, Session, shuffle_for_query};
use crate::timefmt::{DAY_MS, format_millis, now_ms, parse_query_time};
use crate::{EmptyVariant, Inner, RequestLog, lock};

const TOKENS_PATH: &str = "/api/v2/access/tokens";

/// The router with every route, the request log and the rate-limit headers.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route(TOKENS_PATH, post(issue_token))
        .route("/api/v2/AuditLogs", get(first_page))
        .route("/api/v2/AuditLogs/{token}", get(next_page))
        // EVE lists with a trailing slash; both forms answer.
        .route("/api/v2/TeamUsers", get(team_users))
        .route("/api/v2/TeamUsers/", get(team_users))
        .route("/api/v2/TeamUsers/{guid}", get(team_user))
        .route("/api/v2/TeamMembers", get(team_members))
        .route("/api/v2/TeamMembers/", get(team_members))
        .route("/api/v2/UserProfile", get(user_profile))
        .fallback(unrecognized_url)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&inner), observe))
        .with_state(inner)
}

/// A 4xx/5xx in the documented `{"message": ...}` shape.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    json_body(status, json!({ "message": message }).to_string())
}

fn json_body(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Logs every request in arrival order, applies the rate-limit budget (a refused request never
/// reaches its handler) and stamps the `RateLimit-*` headers on every answer.
async fn observe(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let entry = RequestLog {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        status: 0,
        account_name: header_str(headers, "account-name"),
        org_access: header_str(headers, "org-access"),
        authorization: header_str(headers, "authorization"),
        uaks_present: headers.contains_key("x-lw-uaks"),
    };
    let verdict = inner.rate.take(Family::for_path(&entry.path));
    let is_token_request = entry.method == "POST" && entry.path == TOKENS_PATH;
    let index = {
        let mut log = lock(&inner.requests);
        log.push(entry);
        log.len() - 1
    };
    let mut resp = if verdict.allowed {
        next.run(req).await
    } else {
        if is_token_request {
            // It arrived, so it counts, even though no handler sees it.
            inner
                .token_requests
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        faults::rate_limit_exceeded()
    };
    let h = resp.headers_mut();
    let offset = inner
        .date_offset_ms
        .load(std::sync::atomic::Ordering::SeqCst);
    if offset != 0
        && let Some(date) = chrono::DateTime::from_timestamp_millis(now_ms() + offset)
        && let Ok(value) =
            HeaderValue::from_str(&date.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        h.insert(header::DATE, value);
    }
    // A rate-limit fault sets its own remaining and reset; keep them.
    h.entry("ratelimit-limit")
        .or_insert(HeaderValue::from(verdict.limit));
    h.entry("ratelimit-remaining")
        .or_insert(HeaderValue::from(verdict.remaining));
    h.entry("ratelimit-reset")
        .or_insert(HeaderValue::from(verdict.reset_secs));
    if let Some(e) = lock(&inner.requests).get_mut(index) {
        e.status = resp.status().as_u16();
    }
    resp
}

/// The SKILL-observed answer to a wrong path.
async fn unrecognized_url() -> Response {
    json_error(StatusCode::FORBIDDEN, "Unrecognized url")
}

async fn method_not_allowed() -> Response {
    json_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

const DEFAULT_EXPIRY_SECS: i64 = 3600;
const MAX_EXPIRY_SECS: i64 = 86_400;

/// `POST /api/v2/access/tokens`: secret in `X-LW-UAKS`, `{"keyId", "expiryTime"}` body, 201.
async fn issue_token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    inner
        .token_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if let Some(resp) = faults::apply(inner.token_faults.take(), Endpoint::Tokens).await {
        return resp;
    }
    match headers.get("x-lw-uaks").map(HeaderValue::as_bytes) {
        None => return json_error(StatusCode::UNAUTHORIZED, "Missing X-LW-UAKS header"),
        Some(s) if s != inner.cfg.secret.as_bytes() => {
            return json_error(StatusCode::UNAUTHORIZED, "Invalid API secret");
        }
        Some(_) => {}
    }
    // An empty or non-object body behaves like a body without keyId.
    let body: serde_json::Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        Err(_) if body.trim_ascii().is_empty() => serde_json::Map::new(),
        _ => return json_error(StatusCode::BAD_REQUEST, "Invalid request body"),
    };
    if let Some(unknown) = body.keys().find(|k| *k != "keyId" && *k != "expiryTime") {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!("key {unknown} is unrecognized"),
        );
    }
    match body.get("keyId") {
        None | Some(Value::Null) => {
            return json_error(StatusCode::BAD_REQUEST, "Access Key is null.");
        }
        Some(Value::String(k)) if *k == inner.cfg.key_id => {}
        Some(_) => return json_error(StatusCode::UNAUTHORIZED, "Invalid API key"),
    }
    let expiry = match body.get("expiryTime") {
        None => DEFAULT_EXPIRY_SECS,
        Some(v) => match v.as_i64() {
            Some(secs) if (1..=MAX_EXPIRY_SECS).contains(&secs) => secs,
            _ => return json_error(StatusCode::BAD_REQUEST, "expiryTime out of range"),
        },
    };
    let (token, expires_at_ms) = lock(&inner.tokens).issue(expiry, now_ms());
    let body = json!({ "expiresAt": format_millis(expires_at_ms), "token": token });
    json_body(StatusCode::CREATED, body.to_string())
}

/// Accepts `Bearer <token>` and, like the GO SDK sends it, the bare token.
fn authorize(inner: &Inner, headers: &HeaderMap) -> Result<(), Response> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| json_error(StatusCode::UNAUTHORIZED, "Missing access token"))?;
    let token = match raw.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => raw[7..].trim_start(),
        _ => raw,
    };
    lock(&inner.tokens)
        .check(token, now_ms())
        .map_err(|e| json_error(StatusCode::UNAUTHORIZED, e.message()))
}

/// One decoded query parameter plus its raw (still percent-encoded) text.
struct Param {
    raw: String,
    value: Option<String>,
}

/// The first `name=` of a raw query string, percent-decoded (for clients of the fake that read
/// its request log).
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query_param(query, name)?.value
}

/// Finds the first `name=` in a raw query; `value` is `None` when it does not decode.
fn query_param(query: Option<&str>, name: &str) -> Option<Param> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k).as_deref() == Some(name)).then(|| Param {
            raw: v.to_owned(),
            value: percent_decode(v),
        })
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Resolves a time parameter: missing or empty means `default`, unparseable is an error.
fn time_param(p: Option<&Param>, default: i64) -> Result<i64, Response> {
    match p.map(|p| p.value.as_deref()) {
        None | Some(Some("")) => Ok(default),
        Some(Some(s)) => parse_query_time(s).ok_or(()),
        Some(None) => Err(()),
    }
    .map_err(|()| json_error(StatusCode::BAD_REQUEST, "Invalid Date"))
}

/// `Org-Access: true` beats `Account-Name`, which beats the key's primary account.
fn scope(headers: &HeaderMap, primary: &str) -> Scope {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if value("org-access").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Scope::All;
    }
    Scope::Account(value("account-name").unwrap_or(primary).to_owned())
}

fn empty_response(variant: EmptyVariant) -> Response {
    match variant {
        EmptyVariant::EmptyData => json_body(StatusCode::OK, r#"{"data":[]}"#.to_owned()),
        EmptyVariant::NoContent => StatusCode::NO_CONTENT.into_response(),
        EmptyVariant::EmptyBody => json_body(StatusCode::OK, String::new()),
        EmptyVariant::Null => json_body(StatusCode::OK, "null".to_owned()),
        EmptyVariant::NotFound => json_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `GET /api/v2/AuditLogs?startTime=..&endTime=..`: selects, snapshots and serves page one.
async fn first_page(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(resp) = faults::apply(inner.audit_faults.take(), Endpoint::AuditLogs).await {
        return resp;
    }
    if let Err(resp) = authorize(&inner, &headers) {
        return resp;
    }
    let resp = match select_first_page(&inner, &headers, query.as_deref()) {
        Ok(resp) | Err(resp) => resp,
    };
    if resp.status().is_success() {
        inner.note_page_served();
    }
    resp
}

fn select_first_page(
    inner: &Inner,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response, Response> {
    let now = now_ms();
    let start_param = query_param(query, "startTime");
    let end_param = query_param(query, "endTime");
    let end = time_param(end_param.as_ref(), now)?;
    let start = time_param(start_param.as_ref(), now - DAY_MS)?;
    if start > end {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "Invalid time range: startTime is after endTime",
        ));
    }
    let max_window = *lock(&inner.max_window);
    if let Some(max) = max_window
        && u128::try_from(end - start).unwrap_or(0) > max.as_millis()
    {
        let message = format!(
            "Invalid time range: the window exceeds the maximum of {} seconds",
            max.as_secs()
        );
        return Err(json_error(StatusCode::BAD_REQUEST, &message));
    }
    let scope = scope(headers, &inner.cfg.primary_account);
    let mut items = inner.store_read().select(start, end, now, &scope);
    if items.is_empty() {
        return Ok(empty_response(*lock(&inner.empty_variant)));
    }
    shuffle_for_query(&mut items, start, end, &scope);
    let total_rows = items.len();
    // Like the real API: at most this many rows per query, whatever the window holds.
    items.truncate(inner.cfg.max_result_rows.max(1));
    let page_size = inner.cfg.page_size.max(1);
    if items.len() <= page_size && total_rows == items.len() {
        return Ok(json_body(StatusCode::OK, page::data_only(&items)));
    }
    let suffix = if inner.cfg.next_page_query {
        // Echo what the client sent (still encoded), as the GO pagination fixture shows.
        let echo = |p: Option<Param>, ms: i64| match p {
            Some(p) if !p.raw.is_empty() => p.raw,
            _ => format_millis(ms),
        };
        format!(
            "?startTime={}&endTime={}",
            echo(start_param, start),
            echo(end_param, end)
        )
    } else {
        String::new()
    };
    let session = lock(&inner.sessions).create(items, total_rows, page_size, suffix);
    Ok(render_page(inner, &session, 0))
}

/// `GET /api/v2/AuditLogs/<token>`: a later page of a snapshot; the query string is ignored.
async fn next_page(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if let Some(resp) = faults::apply(inner.audit_faults.take(), Endpoint::AuditLogs).await {
        return resp;
    }
    if let Err(resp) = authorize(&inner, &headers) {
        return resp;
    }
    let Some((session, index)) = lock(&inner.sessions).lookup(&token) else {
        return json_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let resp = render_page(&inner, &session, index);
    inner.note_page_served();
    resp
}

fn render_page(inner: &Inner, session: &Session, index: usize) -> Response {
    let page_size = inner.cfg.page_size.max(1);
    let from = index * page_size;
    let to = (from + page_size).min(session.items.len());
    let pages = session.pages();
    let next = if inner
        .repeat_next_page
        .load(std::sync::atomic::Ordering::SeqCst)
        && pages > 1
    {
        Some(1)
    } else {
        Some(index + 1).filter(|&i| i < pages)
    };
    let url = next.map(|i| {
        let origin = lock(&inner.foreign_origin)
            .clone()
            .unwrap_or_else(|| inner.base_url.clone());
        format!(
            "{}/api/v2/AuditLogs/{}{}",
            origin.trim_end_matches('/'),
            session.tokens[i],
            session.query_suffix
        )
    });
    let body = page::paged(&session.items[from..to], session.total_rows, url.as_deref());
    json_body(StatusCode::OK, body)
}

/// The account an inventory request names: `Account-Name`, else the primary. `Org-Access` is
/// ignored: the only client that walks accounts sets `Account-Name` per sub-account, which
/// suggests the lists are per account.
fn inventory_account(headers: &HeaderMap, primary: &str) -> String {
    headers
        .get("account-name")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(primary)
        .to_owned()
}

/// Faults, then the bearer token, then the refusal switch: what every inventory route does first.
async fn inventory_gate(
    inner: &Inner,
    headers: &HeaderMap,
    refused: Option<(&std::sync::atomic::AtomicBool, &str)>,
) -> Result<(), Response> {
    if let Some(resp) = faults::apply(inner.inventory_faults.take(), Endpoint::Inventory).await {
        return Err(resp);
    }
    authorize(inner, headers)?;
    if let Some((switch, message)) = refused
        && switch.load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(json_error(StatusCode::FORBIDDEN, message));
    }
    Ok(())
}

const TEAM_USERS_REFUSED: &str =
    "TeamUsers API is not available: the account has not been migrated to the new RBAC model";
const TEAM_MEMBERS_REFUSED: &str =
    "TeamMembers API is unavailable: the account has migrated to the new RBAC model";

/// `GET /api/v2/TeamUsers`: `{"data":[...]}` of the account's users, no paging.
async fn team_users(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let refused = (&inner.refuse_team_users, TEAM_USERS_REFUSED);
    if let Err(resp) = inventory_gate(&inner, &headers, Some(refused)).await {
        return resp;
    }
    let account = inventory_account(&headers, &inner.cfg.primary_account);
    json_body(StatusCode::OK, inner.inventory().team_users_body(&account))
}

/// `GET /api/v2/TeamUsers/{userGuid}`: `{"data":{...}}`, or 404.
async fn team_user(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> Response {
    let refused = (&inner.refuse_team_users, TEAM_USERS_REFUSED);
    if let Err(resp) = inventory_gate(&inner, &headers, Some(refused)).await {
        return resp;
    }
    let account = inventory_account(&headers, &inner.cfg.primary_account);
    let body = inner.inventory().team_user_body(&account, &guid);
    match body {
        Some(body) => json_body(StatusCode::OK, body),
        None => json_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `GET /api/v2/TeamMembers` (legacy): the account's standard users in the old shape.
async fn team_members(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let refused = (&inner.refuse_team_members, TEAM_MEMBERS_REFUSED);
    if let Err(resp) = inventory_gate(&inner, &headers, Some(refused)).await {
        return resp;
    }
    let account = inventory_account(&headers, &inner.cfg.primary_account);
    json_body(
        StatusCode::OK,
        inner.inventory().team_members_body(&account),
    )
}

/// `GET /api/v2/UserProfile`: the caller and every account it can reach.
async fn user_profile(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if let Err(resp) = inventory_gate(&inner, &headers, None).await {
        return resp;
    }
    let body = inner
        .inventory()
        .user_profile_body(&inner.cfg.primary_account);
    json_body(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode_and_keep_raw() {
        let q = Some("a=1&startTime=2020-12-18T08%3A00%3A00Z&endTime=");
        let s = query_param(q, "startTime").unwrap();
        assert_eq!(s.raw, "2020-12-18T08%3A00%3A00Z");
        assert_eq!(s.value.as_deref(), Some("2020-12-18T08:00:00Z"));
        assert_eq!(
            query_param(q, "endTime").unwrap().value.as_deref(),
            Some("")
        );
        assert!(query_param(q, "missing").is_none());
        assert_eq!(percent_decode("%zz"), None);
    }
}
