//! Shared helpers: start a fake, fetch tokens, query AuditLogs and follow every page.

use chrono::{DateTime, Utc};
use fake_lacework::{FakeConfig, FakeLacework, FakeRecord, parse_query_time};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

/// A plain HTTP client. In a workspace build reqwest's features unify with the exporter's
/// (`rustls-no-provider`), so a crypto provider must be installed before building one.
pub fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new()
}

/// A started fake, a client and a fresh token.
pub struct Api {
    pub fake: FakeLacework,
    pub http: Client,
    pub token: String,
}

impl Api {
    pub async fn start(cfg: FakeConfig) -> Api {
        let fake = FakeLacework::start(cfg).await.expect("fake starts");
        let http = client();
        let token = new_token(&http, &fake).await;
        Api { fake, http, token }
    }

    pub async fn default() -> Api {
        Api::start(FakeConfig::default()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fake.base_url())
    }

    /// `GET /api/v2/AuditLogs` with a Bearer token and the given window.
    pub fn audit(&self, start: &str, end: &str) -> RequestBuilder {
        self.http
            .get(self.url("/api/v2/AuditLogs"))
            .bearer_auth(&self.token)
            .query(&[("startTime", start), ("endTime", end)])
    }

    /// The first page of `audit(start, end)`, as JSON.
    pub async fn audit_json(&self, start: &str, end: &str) -> Value {
        self.audit(start, end)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn get(&self, url: &str) -> RequestBuilder {
        self.http.get(url).bearer_auth(&self.token)
    }

    /// Follows nextPage from a first response; returns every page body.
    pub async fn all_pages(&self, first: Response) -> Vec<Value> {
        assert_eq!(first.status(), StatusCode::OK);
        let mut pages = vec![first.json::<Value>().await.expect("json page")];
        while let Some(next) = pages.last().unwrap()["paging"]["urls"]["nextPage"].as_str() {
            assert!(pages.len() < 1000, "runaway paging");
            let resp = self.get(next).send().await.expect("next page");
            assert_eq!(resp.status(), StatusCode::OK);
            pages.push(resp.json().await.expect("json page"));
        }
        pages
    }

    /// All rows of a window (following pages), as canonical JSON strings, sorted.
    pub async fn rows(&self, req: RequestBuilder) -> Vec<String> {
        let first = req.send().await.expect("first page");
        sorted(
            self.all_pages(first)
                .await
                .iter()
                .flat_map(page_rows)
                .collect(),
        )
    }
}

pub async fn new_token(http: &Client, fake: &FakeLacework) -> String {
    let resp = http
        .post(format!("{}/api/v2/access/tokens", fake.base_url()))
        .header("X-LW-UAKS", &fake.config().secret)
        .json(&json!({"keyId": fake.config().key_id, "expiryTime": 3600}))
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.expect("token json");
    body["token"].as_str().expect("token string").to_owned()
}

/// The `data` rows of a page as canonical JSON strings.
pub fn page_rows(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(Value::to_string)
        .collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Canonical JSON of ground-truth records, sorted, for comparing with served rows.
pub fn canon(records: &[FakeRecord]) -> Vec<String> {
    sorted(records.iter().map(|r| r.json.to_string()).collect())
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms(s)).unwrap()
}

pub fn ms(s: &str) -> i64 {
    parse_query_time(s).unwrap_or_else(|| panic!("bad test time {s}"))
}

pub fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// The creation time a client would read from a served record.
pub fn created_of(v: &Value) -> i64 {
    match &v["createdTime"] {
        Value::Number(n) => n.as_i64().expect("integer millis"),
        Value::String(s) => parse_query_time(s).expect("documented timestamp"),
        other => panic!("unexpected createdTime {other}"),
    }
}

/// A noise record in `account` at `t`.
pub fn noise(account: &str, t: DateTime<Utc>) -> FakeRecord {
    FakeRecord::other("Query Created", account, "admin@acme.com", t)
}
