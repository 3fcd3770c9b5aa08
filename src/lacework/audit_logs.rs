//! Wire types of `GET /api/v2/AuditLogs`: the page envelope and a lenient record view.
//!
//! Records are kept as the exact JSON text received (`RawValue`) so the `raw` field of an
//! event is the record as the API sent it, unknown fields included. `AuditLog` is a borrowed
//! view of the documented fields, parsed from that text.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

/// One page of AuditLogs, as decoded from a response body.
#[derive(Debug, Default, Clone)]
pub struct AuditLogPage {
    /// Records in the order received.
    pub records: Vec<Box<RawValue>>,
    /// The `paging.urls.nextPage` URL, if the API gave one.
    pub next_page: Option<String>,
    /// `paging.totalRows`, if given.
    pub total_rows: Option<u64>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    paging: Option<Paging>,
    #[serde(default)]
    message: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default, rename = "totalRows")]
    total_rows: Option<u64>,
    #[serde(default)]
    urls: Option<PagingUrls>,
}

#[derive(Deserialize)]
struct PagingUrls {
    #[serde(default, rename = "nextPage")]
    next_page: Option<String>,
}

impl AuditLogPage {
    /// Decodes a 200 body. An empty body, `null` and `{}` are an empty page, as the API
    /// answers empty ranges in all of these ways. An object carrying a `message` but no
    /// `data` is an error, not an empty page: silently reading it as empty could skip records.
    pub fn decode(body: &[u8]) -> Result<AuditLogPage, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(AuditLogPage::default());
        }
        let envelope: Option<Envelope> = serde_json::from_slice(body).map_err(|error| {
            format!(
                "AuditLogs body is not the expected JSON: {}",
                quoted(&error.to_string())
            )
        })?;
        let Some(envelope) = envelope else {
            return Ok(AuditLogPage::default());
        };
        if envelope.data.is_none()
            && let Some(message) = envelope.message
        {
            return Err(format!(
                "AuditLogs answered without data: {}",
                quoted(&message.to_string())
            ));
        }
        let (total_rows, next_page) = match envelope.paging {
            Some(paging) => (
                paging.total_rows,
                paging
                    .urls
                    .and_then(|urls| urls.next_page)
                    .filter(|url| !url.trim().is_empty()),
            ),
            None => (None, None),
        };
        let records = envelope.data.unwrap_or_default();
        if let Some(bad) = records
            .iter()
            .find(|r| !r.get().trim_start().starts_with('{'))
        {
            return Err(format!(
                "AuditLogs data holds a non-object record: {}",
                quoted(bad.get())
            ));
        }
        Ok(AuditLogPage {
            records,
            next_page,
            total_rows,
        })
    }
}

/// Characters of received text an error message quotes at most.
const MAX_QUOTED_CHARS: usize = 200;

/// Received text for an error message: one line and bounded, since the message is logged.
/// A `message` or a string quoted by serde's error can be any length (the `audit_logs_page`
/// fuzz target found messages of any length before).
fn quoted(text: &str) -> String {
    crate::text::excerpt(&text.replace(['\n', '\r'], " "), MAX_QUOTED_CHARS)
}

/// A borrowed view of one audit record's documented fields. Unknown fields are ignored here
/// and kept in the raw text.
#[derive(Debug, Default, Deserialize)]
pub struct AuditLog<'a> {
    /// Account the record belongs to.
    #[serde(
        default,
        borrow,
        rename = "accountName",
        deserialize_with = "lenient_str"
    )]
    pub account_name: Option<Cow<'a, str>>,
    /// When the action happened.
    #[serde(
        default,
        borrow,
        rename = "createdTime",
        deserialize_with = "lenient_time"
    )]
    pub created_time: Option<CreatedTime<'a>>,
    /// Name of the event, e.g. "User Login".
    #[serde(
        default,
        borrow,
        rename = "eventName",
        deserialize_with = "lenient_str"
    )]
    pub event_name: Option<Cow<'a, str>>,
    /// Summary of the action, e.g. "User Created".
    #[serde(
        default,
        borrow,
        rename = "userAction",
        deserialize_with = "lenient_str"
    )]
    pub user_action: Option<Cow<'a, str>>,
    /// Free-text description.
    #[serde(
        default,
        borrow,
        rename = "eventDescription",
        deserialize_with = "lenient_str"
    )]
    pub event_description: Option<Cow<'a, str>>,
    /// Who acted, usually an email address.
    #[serde(default, borrow, rename = "userName", deserialize_with = "lenient_str")]
    pub user_name: Option<Cow<'a, str>>,
    /// Not documented; honoured when a record already names its lifecycle type.
    #[serde(
        default,
        borrow,
        rename = "eventType",
        deserialize_with = "lenient_str"
    )]
    pub event_type: Option<Cow<'a, str>>,
}

impl<'a> AuditLog<'a> {
    /// Parses the view from a record's JSON text. Every object is accepted: the normalizer
    /// reads a record it could not view as one without any field, and would drop it.
    pub fn parse(raw: &'a RawValue) -> Result<AuditLog<'a>, serde_json::Error> {
        serde_json::from_str(raw.get()).or_else(|error| {
            // Shapes valid enough for the page decoder that trip the borrowed view, found by the
            // `audit_logs_page` and `record` fuzz targets and kept as corpus seeds: a key given
            // twice, which derived structs refuse (here the last one counts, as in most JSON
            // readers); a lone UTF-16 surrogate escape such as "\ud800", which Java-based
            // servers can send and no Rust string holds (here it reads as U+FFFD); a number
            // beyond f64 such as 1e400 (here that member is left out).
            let text = replace_lone_surrogates(raw.get());
            let members: HashMap<String, Box<RawValue>> =
                serde_json::from_str(&text).map_err(|_| error)?;
            let members = members
                .into_iter()
                .filter_map(|(key, value)| Some((key, serde_json::from_str(value.get()).ok()?)))
                .collect();
            AuditLog::deserialize(serde_json::Value::Object(members))
        })
    }

    /// `createdTime` as epoch milliseconds, if present and understood.
    pub fn created_ms(&self) -> Option<i64> {
        self.created_time.as_ref().and_then(CreatedTime::epoch_ms)
    }
}

/// The `Visitor` methods the lenient field readers share: `null`, objects and arrays are
/// absent (skipped whole), and `Some` is read with the same visitor.
macro_rules! absent_unless_scalar {
    ($visitor:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any($visitor)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

/// Accepts strings and, leniently, numbers and booleans (rendered as text); `null` is absent.
fn lenient_str<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct LenientStr;
    impl<'de> Visitor<'de> for LenientStr {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        absent_unless_scalar!(LenientStr);
    }
    deserializer.deserialize_any(LenientStr)
}

/// `createdTime` when it is a string or a number; `null` and other types are absent, so that a
/// record with an odd time keeps its other fields.
fn lenient_time<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<CreatedTime<'a>>, D::Error> {
    struct LenientTime;
    impl<'de> Visitor<'de> for LenientTime {
        type Value = Option<CreatedTime<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a timestamp string or epoch milliseconds")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(CreatedTime::Text(Cow::Borrowed(v))))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(CreatedTime::Text(Cow::Owned(v.to_string()))))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(CreatedTime::Number(v as f64)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(CreatedTime::Number(v as f64)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(CreatedTime::Number(v)))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        absent_unless_scalar!(LenientTime);
    }
    deserializer.deserialize_any(LenientTime)
}

/// `text` (valid JSON) with every lone UTF-16 surrogate escape, a high one not followed by a
/// low one or a low one alone, replaced by `\ufffd`. Outside strings valid JSON has no
/// backslash, so escapes are found without tracking strings.
fn replace_lone_surrogates(text: &str) -> String {
    let bytes = text.as_bytes();
    let unit_at = |at: usize| -> Option<u16> {
        if bytes.get(at) != Some(&b'\\') || bytes.get(at + 1) != Some(&b'u') {
            return None;
        }
        text.get(at + 2..at + 6)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let mut out = String::with_capacity(text.len());
    let (mut idx, mut copied) = (0, 0);
    while idx < bytes.len() {
        if bytes[idx] != b'\\' {
            idx += 1;
            continue;
        }
        match unit_at(idx) {
            Some(0xD800..=0xDBFF) if matches!(unit_at(idx + 6), Some(0xDC00..=0xDFFF)) => idx += 12,
            Some(0xD800..=0xDFFF) => {
                out.push_str(&text[copied..idx]);
                out.push_str("\\ufffd");
                idx += 6;
                copied = idx;
            }
            Some(_) => idx += 6,
            // Any other escape is two bytes; `\\` must not be read as the start of another.
            None => idx += 2,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// `createdTime` as sent: the sources disagree between RFC 3339 text and epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum CreatedTime<'a> {
    /// Text, normally RFC 3339 with or without fractional seconds.
    Text(Cow<'a, str>),
    /// A number, normally epoch milliseconds.
    Number(f64),
}

/// Integers below this are read as epoch seconds: as milliseconds they would be in 1973.
const SECONDS_CUTOFF: f64 = 100_000_000_000.0;

impl CreatedTime<'_> {
    /// The instant as epoch milliseconds, if it can be understood.
    pub fn epoch_ms(&self) -> Option<i64> {
        match self {
            CreatedTime::Number(n) => number_to_ms(*n),
            CreatedTime::Text(text) => parse_time_text(text),
        }
    }

    /// The value as text, for hashing records whose time cannot be parsed.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            CreatedTime::Text(text) => Cow::Borrowed(text.as_ref()),
            CreatedTime::Number(n) => Cow::Owned(n.to_string()),
        }
    }
}

fn number_to_ms(n: f64) -> Option<i64> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let ms = if n < SECONDS_CUTOFF { n * 1000.0 } else { n };
    Some(ms.round() as i64)
}

/// Parses RFC 3339 (with or without fraction), a few near variants, or epoch digits.
pub fn parse_time_text(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc).timestamp_millis());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<f64>().ok().and_then(number_to_ms);
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.fZ",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc().timestamp_millis());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn created_time_accepts_every_documented_form() {
        let check = |json: &str, expected: Option<i64>| {
            let record = raw(&format!(r#"{{"createdTime":{json}}}"#));
            assert_eq!(
                AuditLog::parse(&record).unwrap().created_ms(),
                expected,
                "{json}"
            );
        };
        check(r#""2024-05-01T09:15:02.123Z""#, Some(1_714_554_902_123));
        check(r#""2024-05-01T09:15:02Z""#, Some(1_714_554_902_000));
        check(
            r#""2024-05-01T11:15:02.123+02:00""#,
            Some(1_714_554_902_123),
        );
        check(r#""2024-05-01T09:15:02.123456Z""#, Some(1_714_554_902_123));
        check("1714554902123", Some(1_714_554_902_123));
        check("1714554902", Some(1_714_554_902_000));
        check(r#""1714554902123""#, Some(1_714_554_902_123));
        check(r#""2024-05-01 09:15:02""#, Some(1_714_554_902_000));
        check(r#""yesterday""#, None);
        check("null", None);
    }

    #[test]
    fn unknown_and_odd_fields_are_tolerated() {
        let record = raw(
            r#"{"accountName":"ACME","userName":42,"eventName":null,"extra":{"a":[1]},"userAction":["x"]}"#,
        );
        let log = AuditLog::parse(&record).unwrap();
        assert_eq!(log.account_name.as_deref(), Some("ACME"));
        assert_eq!(log.user_name.as_deref(), Some("42"));
        assert_eq!(log.event_name, None);
        assert_eq!(log.user_action, None);
    }

    #[test]
    fn records_the_borrowed_view_trips_on_keep_their_fields() {
        let check = |text: &str, action: Option<&str>, time: Option<i64>| {
            let record = raw(text);
            let log = AuditLog::parse(&record).unwrap();
            assert_eq!(log.user_action.as_deref(), action, "{text}");
            assert_eq!(log.created_ms(), time, "{text}");
        };
        check(
            r#"{"userAction":"User Created","createdTime":true}"#,
            Some("User Created"),
            None,
        );
        check(
            r#"{"userAction":"User Created","createdTime":{"$date":1}}"#,
            Some("User Created"),
            None,
        );
        check(
            r#"{"userAction":"User Created","userAction":"User Deleted","createdTime":1714554902}"#,
            Some("User Deleted"),
            Some(1_714_554_902_000),
        );
        check(
            r#"{"userAction":"User \ud800Created","createdTime":"2024-05-01T09:15:02Z"}"#,
            Some("User \u{fffd}Created"),
            Some(1_714_554_902_000),
        );
        check(
            r#"{"userAction":"\ud83d\ude00 \\ud800 \udc00","accountName":1e400}"#,
            Some("\u{1f600} \\ud800 \u{fffd}"),
            None,
        );
    }

    #[test]
    fn decode_errors_are_one_bounded_line() {
        let long = "x".repeat(10_000);
        for body in [
            format!(r#"{{"message":"{long}"}}"#),
            format!(r#"{{"data":"{long}"}}"#),
            format!("{{\"data\":[[\n{long}\n]]}}"),
        ] {
            let error = AuditLogPage::decode(body.as_bytes()).unwrap_err();
            assert!(error.chars().count() < 300, "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn empty_answers_are_empty_pages() {
        for body in [
            "",
            "  \n",
            "null",
            "{}",
            r#"{"data":[]}"#,
            r#"{"data":null}"#,
        ] {
            let page = AuditLogPage::decode(body.as_bytes()).unwrap();
            assert!(
                page.records.is_empty() && page.next_page.is_none(),
                "{body:?}"
            );
        }
    }

    #[test]
    fn pages_keep_records_verbatim_and_next_page() {
        let body = r#"{"paging":{"rows":1,"totalRows":3,"urls":{"nextPage":"https://a.lacework.net/api/v2/AuditLogs/x?y=1"}},
            "data":[{"accountName":"ACME", "extra": 1}]}"#;
        let page = AuditLogPage::decode(body.as_bytes()).unwrap();
        assert_eq!(
            page.records[0].get(),
            r#"{"accountName":"ACME", "extra": 1}"#
        );
        assert_eq!(
            page.next_page.as_deref(),
            Some("https://a.lacework.net/api/v2/AuditLogs/x?y=1")
        );
        assert_eq!(page.total_rows, Some(3));
        let last =
            AuditLogPage::decode(br#"{"paging":{"urls":{"nextPage":null}},"data":[]}"#).unwrap();
        assert_eq!(last.next_page, None);
    }

    #[test]
    fn errors_are_not_mistaken_for_empty_pages() {
        assert!(AuditLogPage::decode(br#"{"message":"Invalid Date"}"#).is_err());
        assert!(AuditLogPage::decode(b"<html>bad gateway</html>").is_err());
        assert!(AuditLogPage::decode(br#"{"data":["x"]}"#).is_err());
        assert!(AuditLogPage::decode(br#"{"data":[{"a":1}"#).is_err());
    }
}
