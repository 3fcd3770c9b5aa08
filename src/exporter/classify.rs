//! `classify`: how the rules read a file of raw audit records, without any API or sink.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::EventsConfig;
use crate::exporter::Error;
use crate::normalize::{Explained, Normalizer};

/// Every record in `input`, classified with `events`' rules (the built-in table unless
/// turned off). `input` is a JSON array of records, NDJSON, or AuditLogs pages (one or many,
/// or an array of them).
pub(crate) fn classify_records(
    input: &[u8],
    events: &EventsConfig,
) -> Result<Vec<Explained>, Error> {
    let normalizer = Normalizer::new(events, None).map_err(Error::Rules)?;
    let mut records = Vec::new();
    let stream = serde_json::Deserializer::from_slice(input).into_iter::<Box<RawValue>>();
    for (n, value) in stream.enumerate() {
        let value =
            value.map_err(|error| Error::Input(format!("JSON value {}: {error}", n + 1)))?;
        collect_records(value, &mut records)?;
    }
    Ok(records.iter().map(|raw| normalizer.explain(raw)).collect())
}

/// A page's envelope: its records, when the value has a `data` array.
#[derive(Deserialize)]
struct Envelope {
    data: Option<Vec<Box<RawValue>>>,
}

/// Adds the records of one JSON value: a record, a page, or an array of either.
fn collect_records(value: Box<RawValue>, out: &mut Vec<Box<RawValue>>) -> Result<(), Error> {
    let text = value.get().trim_start();
    if text.starts_with('[') {
        let items: Vec<Box<RawValue>> = serde_json::from_str(value.get())
            .map_err(|error| Error::Input(format!("a JSON array: {error}")))?;
        for item in items {
            collect_records(item, out)?;
        }
        return Ok(());
    }
    if !text.starts_with('{') {
        return Err(Error::Input(format!(
            "expected audit records (JSON objects), found {}",
            crate::text::excerpt(text, 40)
        )));
    }
    match serde_json::from_str::<Envelope>(value.get()) {
        Ok(Envelope {
            data: Some(records),
        }) => out.extend(records),
        _ => out.push(value),
    }
    Ok(())
}

/// Counts by type and the unmatched summary values of `records`.
pub(crate) struct Summary {
    /// Records read.
    pub records: usize,
    /// Records per type, `AUDIT` included.
    pub by_type: BTreeMap<&'static str, usize>,
    /// `(field, value)` of records no rule matched, with how many carried it.
    pub unmatched: BTreeMap<(&'static str, String), usize>,
}

impl Summary {
    /// Sums up classified records.
    pub(crate) fn of(records: &[Explained]) -> Summary {
        let mut by_type = BTreeMap::new();
        let mut unmatched = BTreeMap::new();
        for record in records {
            *by_type.entry(record.event_type.as_str()).or_insert(0) += 1;
            if record.matched {
                continue;
            }
            for (field, value) in [
                ("userAction", &record.user_action),
                ("eventName", &record.event_name),
            ] {
                if let Some(value) = value {
                    *unmatched.entry((field, value.clone())).or_insert(0) += 1;
                }
            }
        }
        Summary {
            records: records.len(),
            by_type,
            unmatched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_ndjson_and_pages_are_read_alike() {
        let record = r#"{"userAction":"User Created","eventDescription":"User a@x.io created user b@x.io","userName":"a@x.io"}"#;
        let other = r#"{"userAction":"Alert Channel Created","eventName":"Alert Channel"}"#;
        let inputs = [
            format!("[{record},{other}]"),
            format!("{record}\n{other}\n"),
            format!(r#"{{"paging":{{}},"data":[{record}]}}{{"data":[{other}]}}"#),
            format!(r#"[{{"data":[{record},{other}]}}]"#),
        ];
        for input in inputs {
            let records = classify_records(input.as_bytes(), &EventsConfig::default()).unwrap();
            let types: Vec<&str> = records.iter().map(|r| r.event_type.as_str()).collect();
            assert_eq!(types, ["USER_CREATED", "AUDIT"], "{input}");
            assert_eq!(records[0].target.as_deref(), Some("b@x.io"));
            let summary = Summary::of(&records);
            assert_eq!(summary.records, 2);
            assert_eq!(
                summary.unmatched.keys().cloned().collect::<Vec<_>>(),
                [
                    ("eventName", "Alert Channel".to_string()),
                    ("userAction", "Alert Channel Created".to_string())
                ]
            );
        }
        let error = classify_records(b"{\"a\":1} 42", &EventsConfig::default()).unwrap_err();
        assert!(error.to_string().contains("42"), "{error}");
        assert!(classify_records(b"[1,", &EventsConfig::default()).is_err());
    }
}
