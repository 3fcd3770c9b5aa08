//! The `_bulk` wire format: index names from the configured pattern, `create` actions keyed
//! by the event id, NDJSON bodies chunked by count and bytes, and the per-item reading of the
//! answer (`_bulk` answers 200 even when items fail).

use chrono::Datelike;
use serde::Deserialize;

use crate::event::LifecycleEvent;
use crate::formats::{self, EventFormat};

/// Longest index name Elasticsearch accepts, in bytes.
const MAX_INDEX_BYTES: usize = 255;

/// Characters an index name cannot hold (Elasticsearch's `Strings.INVALID_FILENAME_CHARS`,
/// plus `#` and `:`).
const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];

/// `pattern` with `%Y`, `%m` and `%d` replaced by the UTC date of `time_ms`; `Err` names an
/// unknown directive.
fn expand(pattern: &str, time_ms: i64) -> Result<String, String> {
    if !pattern.contains('%') {
        return Ok(pattern.to_string());
    }
    let date = chrono::DateTime::from_timestamp_millis(time_ms)
        .unwrap_or_default()
        .date_naive();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", date.year())),
            Some('m') => out.push_str(&format!("{:02}", date.month())),
            Some('d') => out.push_str(&format!("{:02}", date.day())),
            Some(other) => {
                return Err(format!("unknown date pattern %{other} (use %Y, %m and %d)"));
            }
            None => return Err("ends with a lone % (use %Y, %m and %d)".into()),
        }
    }
    Ok(out)
}

/// Checks an index pattern (pure): a name Elasticsearch accepts for any date.
pub fn validate_index(pattern: &str) -> Result<(), String> {
    let name = expand(pattern, 1_793_524_502_123)?;
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_INDEX_BYTES {
        return Err(format!(
            "{pattern:?} is longer than {MAX_INDEX_BYTES} bytes"
        ));
    }
    if name != name.to_lowercase() {
        return Err(format!("{pattern:?} must be lowercase"));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(format!(
            "{pattern:?} cannot contain {c:?} (nor spaces or any of \\/*?\"<>|,#:)"
        ));
    }
    if name.starts_with(['-', '_', '+']) {
        return Err(format!("{pattern:?} cannot start with '-', '_' or '+'"));
    }
    if name == "." || name == ".." {
        return Err(format!("{pattern:?} is not an index name"));
    }
    Ok(())
}

/// The index `event` goes to: the pattern expanded with the event's time (or `now_ms` for an
/// event without one). The pattern was validated, so the expansion cannot fail.
pub fn index_name(pattern: &str, time_ms: Option<i64>, now_ms: i64) -> String {
    expand(pattern, time_ms.unwrap_or(now_ms)).unwrap_or_else(|_| pattern.to_string())
}

/// One event's two lines of a `_bulk` body.
#[derive(Debug, Clone)]
pub struct Item {
    /// The event id, sent as `_id`.
    pub id: String,
    /// The index (or data stream) it goes to.
    pub index: String,
    /// The action line and the document line, each with its newline.
    pub lines: Vec<u8>,
}

/// Encodes each event as a `create` action with `_index` and `_id`, and its document.
pub fn items(
    events: &[LifecycleEvent],
    format: EventFormat,
    pattern: &str,
    now_ms: i64,
) -> Vec<Item> {
    events
        .iter()
        .map(|event| {
            let id = event.id.to_string();
            let index = index_name(pattern, event.time, now_ms);
            let mut lines = Vec::with_capacity(768);
            serde_json::to_writer(
                &mut lines,
                &serde_json::json!({ "create": { "_index": index, "_id": id } }),
            )
            .expect("an action line serializes");
            lines.push(b'\n');
            formats::encode(format, event, &mut lines);
            lines.push(b'\n');
            Item { id, index, lines }
        })
        .collect()
}

/// Splits `items` into requests of at most `max_events` items and, unless a single item is
/// larger, at most `max_bytes` bytes of body.
pub fn chunk(items: Vec<Item>, max_events: usize, max_bytes: usize) -> Vec<Vec<Item>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Item> = Vec::new();
    let mut size = 0usize;
    for item in items {
        if !current.is_empty()
            && (current.len() >= max_events || size + item.lines.len() > max_bytes)
        {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += item.lines.len();
        current.push(item);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The NDJSON body of `items` (it ends with a newline, as `_bulk` demands).
pub fn body(items: &[Item]) -> Vec<u8> {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.lines.len()).sum());
    for item in items {
        body.extend_from_slice(&item.lines);
    }
    body
}

/// An item's error as the cluster reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The item's HTTP status.
    pub status: u16,
    /// `error.type`, e.g. `document_parsing_exception`.
    pub kind: String,
    /// `error.reason`, with `caused_by` appended when there is one.
    pub reason: String,
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written now (201, or 200).
    Created,
    /// Already in the index (409 `version_conflict_engine_exception`): written by an earlier
    /// attempt whose answer was lost. Delivered.
    Exists,
    /// Rejected for now (429, 5xx, 408): send this item again.
    Retry(ItemError),
    /// Refused for good (a mapping or parse error, a missing index, no privilege).
    Refused(ItemError),
}

#[derive(Deserialize)]
struct BulkResponse {
    items: Vec<std::collections::BTreeMap<String, ItemResult>>,
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(rename = "_id")]
    id: Option<String>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    reason: Option<String>,
    caused_by: Option<Box<ErrorBody>>,
}

impl ErrorBody {
    fn item_error(&self, status: u16) -> ItemError {
        let mut reason = self.reason.clone().unwrap_or_default();
        if let Some(cause) = &self.caused_by {
            reason.push_str(&format!(
                " (caused by {}: {})",
                cause.kind.as_deref().unwrap_or("?"),
                cause.reason.as_deref().unwrap_or("")
            ));
        }
        ItemError {
            status,
            kind: self.kind.clone().unwrap_or_else(|| "unknown".into()),
            reason: crate::text::excerpt(&reason, 400),
        }
    }
}

/// Reads a 2xx `_bulk` answer to `sent`: one outcome per item, in order. `Err` when the body
/// is not a `_bulk` answer to these items (a proxy's page, a different item count or ids).
pub fn parse_response(body: &[u8], sent: &[Item]) -> Result<Vec<Outcome>, String> {
    let response: BulkResponse = serde_json::from_slice(body).map_err(|error| {
        format!(
            "answered with a body that is not a _bulk answer ({error}): {}",
            crate::text::excerpt(&String::from_utf8_lossy(body), 200)
        )
    })?;
    if response.items.len() != sent.len() {
        return Err(format!(
            "answered {} items to {} actions",
            response.items.len(),
            sent.len()
        ));
    }
    let mut outcomes = Vec::with_capacity(sent.len());
    for (answer, item) in response.items.iter().zip(sent) {
        let Some(result) = answer.get("create").or_else(|| answer.values().next()) else {
            return Err("answered an empty item".into());
        };
        if let Some(id) = &result.id
            && id != &item.id
        {
            return Err(format!(
                "answered for _id {id} where {} was sent: items out of order",
                item.id
            ));
        }
        let error = || match &result.error {
            Some(error) => error.item_error(result.status),
            None => ItemError {
                status: result.status,
                kind: "unknown".into(),
                reason: String::new(),
            },
        };
        outcomes.push(match result.status {
            200..=299 => Outcome::Created,
            409 => Outcome::Exists,
            408 | 429 | 500..=599 => Outcome::Retry(error()),
            _ => Outcome::Refused(error()),
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::sinks::testing::event;

    /// 2026-11-01T09:15:02.123Z, the fixture's time.
    const FIXTURE_MS: i64 = 1_793_524_502_123;

    fn lines(item: &Item) -> (Value, Value) {
        let text = std::str::from_utf8(&item.lines).unwrap();
        assert!(text.ends_with('\n'));
        let mut lines = text.lines();
        let action = serde_json::from_str(lines.next().unwrap()).unwrap();
        let document = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(lines.next(), None, "two lines per item");
        (action, document)
    }

    #[test]
    fn index_patterns_are_checked() {
        let check = |pattern: &str, ok: bool| {
            assert_eq!(validate_index(pattern).is_ok(), ok, "{pattern}");
        };
        check("logs-lacework.audit-default", true);
        check("lacework-audit-%Y.%m.%d", true);
        check(".lacework", true);
        for bad in [
            "", "Logs", "a b", "a\\b", "a/b", "a*", "a?", "a\"", "a<", "a>", "a|", "a,b", "a#b",
            "a:b", "-a", "_a", "+a", ".", "..", "a-%H", "a-%",
        ] {
            check(bad, false);
        }
        check(&"a".repeat(256), false);
        assert!(validate_index("a-%q").unwrap_err().contains("%q"));
    }

    #[test]
    fn dates_come_from_the_event_time_in_utc() {
        // 2026-11-01T09:15:02Z; 23:30 on 31 December 2025 UTC is still 2025 everywhere here.
        assert_eq!(
            index_name("lacework-audit-%Y.%m.%d", Some(FIXTURE_MS), 0),
            "lacework-audit-2026.11.01"
        );
        let new_year_eve = 1_767_223_800_000; // 2025-12-31T23:30:00Z
        assert_eq!(
            index_name("a-%Y-%m-%d", Some(new_year_eve), FIXTURE_MS),
            "a-2025-12-31"
        );
        assert_eq!(
            index_name("a-%Y-%m-%d", None, FIXTURE_MS),
            "a-2026-11-01",
            "no time: the current date"
        );
        assert_eq!(index_name("plain", Some(0), 0), "plain");
    }

    #[test]
    fn each_event_is_a_create_with_its_id_and_index() {
        let mut events = vec![event(1), event(2)];
        events[1].time = Some(FIXTURE_MS + 86_400_000);
        let items = items(&events, EventFormat::Ecs, "lacework-audit-%Y.%m.%d", 0);
        assert_eq!(items.len(), 2);
        let (action, document) = lines(&items[0]);
        assert_eq!(
            action,
            serde_json::json!({ "create": {
                "_index": "lacework-audit-2026.11.01",
                "_id": "00000000000000000000000000000001",
            }})
        );
        assert_eq!(document["event"]["id"], "00000000000000000000000000000001");
        assert_eq!(document["@timestamp"], "2026-11-01T09:15:02.124Z");
        let (action, _) = lines(&items[1]);
        assert_eq!(action["create"]["_index"], "lacework-audit-2026.11.02");
        assert_eq!(items[1].id, "00000000000000000000000000000002");

        let json = super::items(&events[..1], EventFormat::Json, "x", 0);
        let (_, document) = lines(&json[0]);
        assert_eq!(document["schema"], crate::event::SCHEMA);

        let all = body(&items);
        assert!(all.ends_with(b"\n"));
        assert_eq!(all.iter().filter(|b| **b == b'\n').count(), 4);
    }

    #[test]
    fn chunks_respect_both_limits_and_keep_order() {
        let events: Vec<_> = (0..10).map(event).collect();
        let all = items(&events, EventFormat::Ecs, "x", 0);
        let one = all[0].lines.len();
        let by_count = chunk(all.clone(), 4, usize::MAX);
        assert_eq!(by_count.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let by_bytes = chunk(all.clone(), 100, 3 * one + 2);
        assert!(
            by_bytes.iter().all(|c| c.len() <= 3),
            "{:?}",
            by_bytes.len()
        );
        let order: Vec<String> = by_bytes.into_iter().flatten().map(|i| i.id).collect();
        assert_eq!(order, all.iter().map(|i| i.id.clone()).collect::<Vec<_>>());
        let alone = chunk(all[..2].to_vec(), 100, 10);
        assert_eq!(alone.len(), 2, "an item larger than the limit goes alone");
    }

    #[test]
    fn item_answers_are_classified() {
        let sent = items(
            &(0..6).map(event).collect::<Vec<_>>(),
            EventFormat::Ecs,
            "x",
            0,
        );
        let id = |n: usize| sent[n].id.clone();
        let answer = serde_json::json!({
            "took": 30, "errors": true,
            "items": [
                {"create": {"_index": "x", "_id": id(0), "_version": 1, "result": "created", "status": 201}},
                {"create": {"_index": "x", "_id": id(1), "status": 409, "error": {
                    "type": "version_conflict_engine_exception",
                    "reason": format!("[{}]: version conflict, document already exists (current version [1])", id(1))}}},
                {"create": {"_index": "x", "_id": id(2), "status": 429, "error": {
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution of coordinating operation"}}},
                {"create": {"_index": "x", "_id": id(3), "status": 503, "error": {
                    "type": "unavailable_shards_exception", "reason": "primary shard is not active"}}},
                {"create": {"_index": "x", "_id": id(4), "status": 400, "error": {
                    "type": "document_parsing_exception",
                    "reason": "[1:12] failed to parse field [user.name] of type [long]",
                    "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"admin\""}}}},
                {"create": {"_index": ".ds-x-2026.11.01-000001", "_id": id(5), "status": 404, "error": {
                    "type": "index_not_found_exception", "reason": "no such index [x]"}}},
            ]
        });
        let outcomes = parse_response(answer.to_string().as_bytes(), &sent).unwrap();
        assert_eq!(outcomes[0], Outcome::Created);
        assert_eq!(outcomes[1], Outcome::Exists);
        assert!(
            matches!(&outcomes[2], Outcome::Retry(e) if e.status == 429 && e.kind == "es_rejected_execution_exception")
        );
        assert!(matches!(&outcomes[3], Outcome::Retry(e) if e.status == 503));
        let Outcome::Refused(error) = &outcomes[4] else {
            panic!("{:?}", outcomes[4]);
        };
        assert_eq!(error.kind, "document_parsing_exception");
        assert!(error.reason.contains("failed to parse field [user.name]"));
        assert!(
            error
                .reason
                .contains("caused by illegal_argument_exception")
        );
        assert!(matches!(&outcomes[5], Outcome::Refused(e) if e.status == 404));
    }

    #[test]
    fn answers_that_do_not_match_the_request_are_errors() {
        let sent = items(&[event(0), event(1)], EventFormat::Ecs, "x", 0);
        let one = serde_json::json!({"errors": false, "items": [
            {"create": {"_id": sent[0].id, "status": 201}}]});
        assert!(
            parse_response(one.to_string().as_bytes(), &sent)
                .unwrap_err()
                .contains("1 items to 2 actions")
        );
        let swapped = serde_json::json!({"errors": false, "items": [
            {"create": {"_id": sent[1].id, "status": 201}},
            {"create": {"_id": sent[0].id, "status": 201}}]});
        assert!(parse_response(swapped.to_string().as_bytes(), &sent).is_err());
        let html = b"<html><body>Welcome to nginx</body></html>";
        assert!(parse_response(html, &sent).unwrap_err().contains("nginx"));
    }
}
