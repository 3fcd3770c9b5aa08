//! Target `audit_logs_page`: `AuditLogPage::decode` on any bytes, and the lenient record view
//! (`AuditLog::parse`, `created_ms`) on every record it accepts.

use std::fmt;
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

use crate::fuzz::harness::{self, Input, Shown, Target};
use crate::fuzz::json;
use crate::fuzz::mutate;
use crate::lacework::{AuditLog, AuditLogPage};

const TARGET: Target = Target {
    name: "audit_logs_page",
    regressions: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/proptest-regressions/audit_logs_page.txt"
    ),
    extension: "json",
};

/// The longest error message `decode` may return, in characters: it quotes at most an excerpt
/// of the body, and the message ends up in a log line.
const MAX_ERROR_CHARS: usize = 300;

/// Pieces of AuditLogs pages worth inserting whole.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "[]",
    "{}",
    "\"data\":",
    "\"paging\":",
    "\"urls\":",
    "\"nextPage\":",
    "\"totalRows\":",
    "\"rows\":",
    "\"message\":",
    "\"createdTime\":",
    "\"accountName\":",
    "\"userAction\":",
    "\"eventType\":",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "1e999",
    "18446744073709551616",
];

/// A response body.
#[derive(Clone)]
struct Body(Vec<u8>);

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Shown(&self.0).fmt(f)
    }
}

impl Input for Body {
    fn to_seed(&self) -> Vec<u8> {
        self.0.clone()
    }
}

#[test]
fn audit_logs_page_decode_never_panics_and_keeps_every_record() {
    harness::on_large_stack(fuzz_target);
}

/// The target's body, on a thread of its own (see `harness::on_large_stack`).
fn fuzz_target() {
    let seeds = harness::corpus(TARGET.name);
    let seed_bytes = Arc::new(seeds.iter().map(|s| s.bytes.clone()).collect::<Vec<_>>());
    let seed_values = Arc::new(
        seeds
            .iter()
            .filter_map(|s| serde_json::from_slice::<Value>(&s.bytes).ok())
            .collect::<Vec<_>>(),
    );
    let strategy = prop_oneof![
        3 => mutate::mutated(seed_bytes, TOKENS),
        3 => page(),
        2 => mutate::json_mutated(seed_values).prop_map(|value| value.to_string().into_bytes()),
        1 => vec(any::<u8>(), 0..64),
    ]
    .prop_map(Body);
    let as_is: Vec<_> = seeds
        .into_iter()
        .map(|seed| (seed.path, Body(seed.bytes)))
        .collect();
    harness::fuzz(&TARGET, &as_is, strategy, |body| check(&body.0));
}

/// The properties of one body.
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    let decoded = AuditLogPage::decode(body);
    if let Err(message) = &decoded {
        let n_chars = message.chars().count();
        prop_assert!(
            n_chars > 0 && n_chars <= MAX_ERROR_CHARS,
            "an error message of {n_chars} characters: {message:?}"
        );
        prop_assert!(
            !message.contains(['\n', '\r']),
            "an error message of several lines: {message:?}"
        );
    }
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let expected = if blank {
        Expected::Accept(Page::default())
    } else if json::has_repeated_keys(body) {
        Expected::Unknown
    } else {
        serde_json::from_slice::<Value>(body).map_or(Expected::Unknown, |value| expect(&value))
    };
    match (&decoded, expected) {
        (Ok(page), Expected::Accept(records)) => {
            prop_assert_eq!(page.records.len(), records.records.len(), "records kept");
            for (raw, expected) in page.records.iter().zip(&records.records) {
                let got: Value = serde_json::from_str(raw.get()).map_err(|error| {
                    TestCaseError::fail(format!("a record is no JSON: {error}"))
                })?;
                prop_assert_eq!(&got, expected, "records are kept verbatim");
            }
            prop_assert_eq!(&page.next_page, &records.next_page);
            prop_assert_eq!(page.total_rows, records.total_rows);
        }
        (Err(message), Expected::Accept(_)) => {
            return Err(TestCaseError::fail(format!(
                "a well-formed page was refused: {message}"
            )));
        }
        (Ok(page), Expected::Refuse(why)) => {
            return Err(TestCaseError::fail(format!(
                "a body with {why} was accepted as {} records",
                page.records.len()
            )));
        }
        (Err(_), Expected::Refuse(_)) | (_, Expected::Unknown) => {}
    }
    if let Ok(page) = &decoded {
        for raw in &page.records {
            prop_assert!(
                raw.get().trim_start().starts_with('{'),
                "a record is no object"
            );
            // The normalizer reads each record through this view and relies on it accepting
            // every object: a refused record would lose all its fields.
            let record = AuditLog::parse(raw).map_err(|error| {
                TestCaseError::fail(format!(
                    "the lenient view refuses the record {}: {error}",
                    raw.get()
                ))
            })?;
            if let Some(time) = &record.created_time {
                let _ = time.as_text();
            }
            let _ = record.created_ms();
        }
    }
    Ok(())
}

/// What a correct decoder makes of a body that is valid JSON without repeated keys.
enum Expected {
    Accept(Page),
    Refuse(&'static str),
    Unknown,
}

/// The expected content of an accepted page.
#[derive(Default)]
struct Page {
    records: Vec<Value>,
    next_page: Option<String>,
    total_rows: Option<u64>,
}

impl Expected {
    fn accept(records: Vec<Value>, next_page: Option<String>, total_rows: Option<u64>) -> Self {
        Expected::Accept(Page {
            records,
            next_page,
            total_rows,
        })
    }
}

/// The decoder's contract, written out: `null` and objects with a `data` array of objects (or
/// no data and no `message`) are pages; `paging` is read when it has the documented types.
fn expect(value: &Value) -> Expected {
    let object = match value {
        Value::Null => return Expected::Accept(Page::default()),
        Value::Object(object) => object,
        // serde's derived structs also read an array as the fields in order, so `[]` is an
        // empty page and `[[{..}]]` a page of one record (and likewise for `paging` and
        // `urls`). Odd but harmless: records in any other shape are refused, none is skipped.
        Value::Array(_) => return Expected::Unknown,
        _ => return Expected::Refuse("a top level that is no object"),
    };
    let present = |key: &str| object.get(key).filter(|value| !value.is_null());
    let records = match present("data") {
        None if present("message").is_some() => {
            return Expected::Refuse("a message and no data");
        }
        None => Vec::new(),
        Some(Value::Array(records)) if records.iter().all(Value::is_object) => records.clone(),
        Some(Value::Array(_)) => return Expected::Refuse("a record that is no object"),
        Some(_) => return Expected::Refuse("data that is no array"),
    };
    let Some(paging) = present("paging") else {
        return Expected::accept(records, None, None);
    };
    let paging = match paging {
        Value::Object(paging) => paging,
        Value::Array(_) => return Expected::Unknown,
        _ => return Expected::Refuse("paging that is no object"),
    };
    let total_rows = match paging.get("totalRows") {
        None | Some(Value::Null) => None,
        Some(total_rows) => match total_rows.as_u64() {
            Some(total_rows) => Some(total_rows),
            None => return Expected::Refuse("a totalRows that is no count"),
        },
    };
    let next_page = match paging.get("urls") {
        None | Some(Value::Null) => None,
        Some(Value::Object(urls)) => match urls.get("nextPage") {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => Some(url.clone()).filter(|url| !url.trim().is_empty()),
            Some(_) => return Expected::Refuse("a nextPage that is no string"),
        },
        Some(Value::Array(_)) => return Expected::Unknown,
        Some(_) => return Expected::Refuse("urls that are no object"),
    };
    Expected::accept(records, next_page, total_rows)
}

/// A page written from parts: any subset of `data`, `paging`, `message` and unknown members,
/// in any order, each well-formed most of the time; now and then a top level of another type.
fn page() -> impl Strategy<Value = Vec<u8>> {
    let record = prop_oneof![
        8 => json::audit_record(),
        1 => json::raw_scalar(),
        1 => json::value().prop_map(|value| value.to_string()),
    ];
    let data = prop_oneof![
        6 => vec(record, 0..8).prop_map(|records| format!("[{}]", records.join(","))),
        1 => Just("null".to_string()),
        1 => json::raw_scalar(),
    ];
    let next_page = prop_oneof![
        2 => Just("null".to_string()),
        2 => select(&[
            "https://acme.lacework.net/api/v2/AuditLogs/AbCdEf0123456789",
            "https://acme.lacework.net/api/v2/AuditLogs/eeee==?startTime=2024-05-01T00:00:00Z&endTime=2024-05-01T12:00:00Z",
            "http://127.0.0.2:9/api/v2/AuditLogs/x",
            "",
            "  ",
        ][..])
        .prop_map(|url| Value::from(url).to_string()),
        1 => json::text().prop_map(|url| Value::from(url).to_string()),
        1 => json::raw_scalar(),
    ];
    let total_rows = prop_oneof![
        3 => any::<u64>().prop_map(|n| n.to_string()),
        2 => select(&["0", "5002", "500000", "null", "-1", "1e3", "5002.0", "\"5002\""][..])
            .prop_map(str::to_string),
        1 => json::raw_scalar(),
    ];
    let paging = prop_oneof![
        4 => (any::<u32>(), total_rows, next_page).prop_map(|(rows, total_rows, next_page)| {
            format!(
                r#"{{"rows":{rows},"totalRows":{total_rows},"urls":{{"nextPage":{next_page}}}}}"#
            )
        }),
        1 => Just("null".to_string()),
        1 => json::value().prop_map(|value| value.to_string()),
    ];
    let message = json::value().prop_map(|value| value.to_string());
    let extra = (json::key(), json::value())
        .prop_map(|(key, value)| format!("{}:{value}", Value::from(key)));
    let members = (
        prop::option::weighted(0.9, data),
        prop::option::weighted(0.5, paging),
        prop::option::weighted(0.2, message),
        vec(extra, 0..2),
    )
        .prop_map(|(data, paging, message, extra)| {
            let mut members = extra;
            members.extend(data.map(|data| format!(r#""data":{data}"#)));
            members.extend(paging.map(|paging| format!(r#""paging":{paging}"#)));
            members.extend(message.map(|message| format!(r#""message":{message}"#)));
            members
        })
        .prop_shuffle();
    let space = select(&["", " ", "\n", "\r\n\t "][..]);
    prop_oneof![
        9 => (members, space).prop_map(|(members, space)| {
            format!("{space}{{{}}}{space}", members.join(&format!(",{space}"))).into_bytes()
        }),
        1 => json::value().prop_map(|value| value.to_string().into_bytes()),
    ]
}
