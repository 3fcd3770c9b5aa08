//! Rows of the custom table: the one column list (name and Log Analytics type) that the rows,
//! the README's table and DCR set-up and the tests all follow, events encoded as rows, and
//! rows framed into JSON-array requests under the API's size limit.

use serde::Serialize;

use crate::event::{LifecycleEvent, RecordId};
use crate::time::format_time_ms;

/// One column of the custom table and of the DCR's stream declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column name, as in the table and every row.
    pub name: &'static str,
    /// Log Analytics type: `datetime`, `string` or `dynamic`.
    pub kind: &'static str,
    /// What of the event fills it.
    value: Value,
}

/// What of an event fills a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    TimeGenerated,
    EventId,
    EventType,
    Account,
    Actor,
    Target,
    Action,
    Description,
    Source,
    Schema,
    RawRecord,
}

const fn column(name: &'static str, kind: &'static str, value: Value) -> Column {
    Column { name, kind, value }
}

/// The columns of `LaceworkAudit_CL`, in row order: the one list the rows are written from,
/// and the one the README's table and DCR set-up repeat (`az_cli_columns` prints it).
pub const COLUMNS: [Column; 11] = [
    column("TimeGenerated", "datetime", Value::TimeGenerated),
    column("EventId", "string", Value::EventId),
    column("EventType", "string", Value::EventType),
    column("Account", "string", Value::Account),
    column("Actor", "string", Value::Actor),
    column("Target", "string", Value::Target),
    column("Action", "string", Value::Action),
    column("Description", "string", Value::Description),
    column("Source", "string", Value::Source),
    column("Schema", "string", Value::Schema),
    column("RawRecord", "dynamic", Value::RawRecord),
];

/// One request's worth of events and their encoded rows.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// The events, in order.
    pub events: &'a [LifecycleEvent],
    /// Each event's row, in the same order.
    pub rows: Vec<Vec<u8>>,
}

impl Chunk<'_> {
    /// The request body: the rows as one JSON array.
    pub fn body(&self) -> Vec<u8> {
        frame(&self.rows)
    }
}

/// A single event whose row alone is larger than a request may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// The event's id.
    pub id: RecordId,
    /// Its size as a one-row request.
    pub bytes: usize,
}

/// The row of `event`: one JSON object with every column of `COLUMNS`, in order.
/// `observed_ms` stands in for `TimeGenerated` when the event has no time.
pub fn encode_row(event: &LifecycleEvent, observed_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + event.raw.get().len());
    out.push(b'{');
    for (idx, column) in COLUMNS.iter().enumerate() {
        if idx > 0 {
            out.push(b',');
        }
        write_json(&mut out, column.name);
        out.push(b':');
        match column.value {
            Value::TimeGenerated => {
                let time = event
                    .time
                    .and_then(format_time_ms)
                    .or_else(|| format_time_ms(observed_ms))
                    .unwrap_or_default();
                write_json(&mut out, &time);
            }
            Value::EventId => write_json(&mut out, &event.id.to_string()),
            Value::EventType => write_json(&mut out, event.event_type.as_str()),
            Value::Account => write_json(&mut out, &event.account),
            Value::Actor => write_json(&mut out, &event.actor),
            Value::Target => write_json(&mut out, &event.target),
            Value::Action => write_json(&mut out, &event.action),
            Value::Description => write_json(&mut out, &event.description),
            Value::Source => write_json(&mut out, &event.source),
            Value::Schema => write_json(&mut out, event.schema),
            // A `dynamic` column: the record as the object it is, not as a string.
            Value::RawRecord => out.extend_from_slice(event.raw.get().as_bytes()),
        }
    }
    out.push(b'}');
    out
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("writing JSON to memory cannot fail");
}

/// Splits `events` into requests of at most `max_events` rows and `max_bytes` bytes of JSON
/// array, keeping their order. An event too large to be sent alone is an error.
pub fn chunks(
    events: &[LifecycleEvent],
    observed_ms: i64,
    max_events: usize,
    max_bytes: usize,
) -> Result<Vec<Chunk<'_>>, TooLarge> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut rows: Vec<Vec<u8>> = Vec::new();
    // `[` and `]`, and a comma before every row but the first.
    let mut size = 2;
    for (idx, event) in events.iter().enumerate() {
        let row = encode_row(event, observed_ms);
        if row.len() + 2 > max_bytes {
            return Err(TooLarge {
                id: event.id,
                bytes: row.len() + 2,
            });
        }
        let would_be = size + usize::from(!rows.is_empty()) + row.len();
        if !rows.is_empty() && (rows.len() >= max_events || would_be > max_bytes) {
            chunks.push(Chunk {
                events: &events[start..idx],
                rows: std::mem::take(&mut rows),
            });
            start = idx;
            size = 2;
        }
        size += usize::from(!rows.is_empty()) + row.len();
        rows.push(row);
    }
    if !rows.is_empty() {
        chunks.push(Chunk {
            events: &events[start..],
            rows,
        });
    }
    Ok(chunks)
}

/// Rows framed as one JSON array.
pub fn frame(rows: &[Vec<u8>]) -> Vec<u8> {
    let total = rows.iter().map(|row| row.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(total);
    body.push(b'[');
    for (idx, row) in rows.iter().enumerate() {
        if idx > 0 {
            body.push(b',');
        }
        body.extend_from_slice(row);
    }
    body.push(b']');
    body
}

/// The columns as `az monitor log-analytics workspace table create --columns` takes them:
/// `TimeGenerated=datetime EventId=string ...`.
pub fn az_cli_columns() -> String {
    COLUMNS
        .iter()
        .map(|column| format!("{}={}", column.name, column.kind))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::event::SCHEMA;
    use crate::sinks::testing::event;

    const OBSERVED_MS: i64 = 1_800_000_000_000;

    fn row_of(event: &LifecycleEvent) -> serde_json::Map<String, Value> {
        let value: Value = serde_json::from_slice(&encode_row(event, OBSERVED_MS)).unwrap();
        value.as_object().expect("a row is an object").clone()
    }

    #[test]
    fn every_row_has_exactly_the_declared_columns_in_order() {
        let events = [
            event(1),
            LifecycleEvent {
                time: None,
                account: None,
                actor: None,
                target: None,
                action: None,
                description: None,
                source: crate::event::Source::Reconcile,
                ..event(2)
            },
        ];
        let names: Vec<&str> = COLUMNS.iter().map(|column| column.name).collect();
        for event in &events {
            let mut keys: Vec<String> = row_of(event).keys().cloned().collect();
            keys.sort();
            let mut wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            wanted.sort();
            assert_eq!(keys, wanted);
            // In declaration order on the wire, as the README lists them.
            let text = String::from_utf8(encode_row(event, OBSERVED_MS)).unwrap();
            let positions: Vec<usize> = names
                .iter()
                .map(|name| text.find(&format!("\"{name}\":")).unwrap())
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        }
        assert_eq!(
            az_cli_columns(),
            "TimeGenerated=datetime EventId=string EventType=string Account=string Actor=string \
             Target=string Action=string Description=string Source=string Schema=string \
             RawRecord=dynamic"
        );
    }

    #[test]
    fn rows_carry_the_event() {
        let row = row_of(&event(7));
        assert_eq!(row["TimeGenerated"], "2026-11-01T09:15:02.130Z");
        assert_eq!(row["EventId"], "00000000000000000000000000000007");
        assert_eq!(row["EventType"], "USER_CREATED");
        assert_eq!(row["Account"], "ACME");
        assert_eq!(row["Actor"], "admin@acme.com");
        assert_eq!(row["Target"], "user7@acme.com");
        assert_eq!(row["Action"], "User Created");
        assert_eq!(
            row["Description"],
            "User user7@acme.com created by admin@acme.com"
        );
        assert_eq!(row["Source"], "audit");
        assert_eq!(row["Schema"], SCHEMA);
        assert_eq!(
            row["RawRecord"],
            serde_json::json!({"accountName": "ACME"}),
            "a dynamic column: the record as an object, not a string"
        );
        // No event time: the observation time.
        let timeless = row_of(&LifecycleEvent {
            time: None,
            ..event(7)
        });
        assert_eq!(timeless["TimeGenerated"], "2027-01-15T08:00:00.000Z");
        assert_eq!(timeless["Target"], "user7@acme.com");
    }

    /// An event whose description is `size` bytes long.
    fn big(n: u32, size: usize) -> LifecycleEvent {
        LifecycleEvent {
            description: Some("x".repeat(size)),
            ..event(n)
        }
    }

    #[test]
    fn requests_stay_under_the_limit_and_keep_order() {
        let events: Vec<LifecycleEvent> = (0..100).map(|n| big(n, 45_000 + n as usize)).collect();
        let chunks = chunks(&events, OBSERVED_MS, 500, 1_000_000).unwrap();
        assert!(chunks.len() >= 5, "{} requests", chunks.len());
        let mut ids = Vec::new();
        for chunk in &chunks {
            let body = chunk.body();
            assert!(body.len() <= 1_000_000, "{} bytes", body.len());
            let parsed: Vec<Value> = serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed.len(), chunk.events.len());
            for (row, event) in parsed.iter().zip(chunk.events) {
                assert_eq!(row["EventId"], event.id.to_string());
            }
            ids.extend(chunk.events.iter().map(|e| e.id));
        }
        assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
        // Full requests: the next event would not have fitted.
        for pair in chunks.windows(2) {
            let next = encode_row(&pair[1].events[0], OBSERVED_MS).len();
            assert!(pair[0].body().len() + 1 + next > 1_000_000);
        }
    }

    #[test]
    fn the_byte_limit_is_exact() {
        let events: Vec<LifecycleEvent> = (0..3).map(|n| big(n, 1000)).collect();
        let one = encode_row(&events[0], OBSERVED_MS).len();
        // Exactly two rows fit: `[a,b]`.
        let limit = 2 + one + 1 + one;
        let chunks = chunks(&events, OBSERVED_MS, 500, limit).unwrap();
        assert_eq!(
            chunks.iter().map(|c| c.events.len()).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(chunks[0].body().len(), limit);
        let tighter = super::chunks(&events, OBSERVED_MS, 500, limit - 1).unwrap();
        assert_eq!(tighter.len(), 3);
    }

    #[test]
    fn the_event_count_limit_holds() {
        let events: Vec<LifecycleEvent> = (0..1001).map(event).collect();
        let chunks = chunks(&events, OBSERVED_MS, 500, 1_000_000).unwrap();
        assert_eq!(
            chunks.iter().map(|c| c.events.len()).collect::<Vec<_>>(),
            vec![500, 500, 1]
        );
    }

    #[test]
    fn an_event_too_large_alone_is_named() {
        let events = vec![event(1), big(2, 1_000_000), event(3)];
        let error = chunks(&events, OBSERVED_MS, 500, 1_000_000).unwrap_err();
        assert_eq!(error.id, events[1].id);
        assert!(error.bytes > 1_000_000);
    }
}
