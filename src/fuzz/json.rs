//! Generators of JSON: arbitrary values, odd scalars written as raw text (numbers serde_json
//! cannot hold, lone surrogates), and audit records whose documented fields have any type.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value};

/// A moment near the example pages (2024-05-01T09:15:02.123Z), so that generated times and
/// generated `keep` ranges overlap.
pub const T0_MS: i64 = 1_714_554_902_123;

/// The documented record fields, plus the undocumented `eventType` the classifier honours.
pub const RECORD_FIELDS: [&str; 7] = [
    "accountName",
    "createdTime",
    "eventName",
    "userAction",
    "eventDescription",
    "userName",
    "eventType",
];

/// Strings that have broken, or could break, text handling: lifecycle wording the classifier
/// looks for, addresses the target extractor looks for, and unicode whose case mapping changes
/// its length.
const STRINGS: &[&str] = &[
    "",
    " ",
    "User Created",
    "User Deleted",
    "User Login",
    "Login with OAuth Succeeded",
    "Login with OAuth Failed",
    "API Key Created",
    "API Key Disabled",
    "User Role Changed",
    "Alert Channel Created",
    "Member Added",
    "user_deleted",
    "USER-CREATED",
    "AUDIT",
    "User bob@acme.com created by admin@acme.com",
    "Added user bob@acme.com",
    "Removed user bob@acme.com",
    "User 'bob' was deleted",
    "Role of bob@acme.com changed from USER to ADMIN",
    "User jane.doe@acme.com logged in",
    "API key ACME_3F2A revoked by admin@acme.com",
    "by admin@acme.com",
    " by user x@y.io",
    "User İ@x.io created by ǅ@ß.io",
    "user İstanbul was deleted",
    "role of ẞ changed",
    "User \u{202e}moc.emca@bob created",
    "User 𝓫𝓸𝓫@acme.com created",
    "管理者@例え.jp",
    "a\u{0}b@x.io",
    "ACME",
    "acme",
    "jane.doe@acme.com",
    "2024-05-01T09:15:02.123Z",
    "\t\n\r",
];

/// Any string worth putting in a record or a config: listed oddities, arbitrary characters
/// (controls included), printable text, and the occasional long one.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(STRINGS).prop_map(str::to_string),
        3 => vec(any::<char>(), 0..24).prop_map(String::from_iter),
        2 => "\\PC{0,40}",
        1 => (select(STRINGS), select(STRINGS), any::<char>())
            .prop_map(|(a, b, c)| format!("{a}{c}{b}")),
        1 => (select(STRINGS), 1usize..400).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// A member name: documented field names most of the time.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&RECORD_FIELDS[..]).prop_map(str::to_string),
        1 => select(&["data", "paging", "urls", "nextPage", "totalRows", "rows", "message"][..])
            .prop_map(str::to_string),
        1 => text(),
    ]
}

/// Any JSON value, a few levels deep.
pub fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Non-finite floats become null, as serde_json would write them.
        any::<f64>().prop_map(Value::from),
        time_value(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key(), inner), 0..6).prop_map(|members| Value::Object(Map::from_iter(members))),
        ]
    })
}

/// `createdTime` values as the sources disagree on them, and as they could go wrong.
pub fn time_value() -> impl Strategy<Value = Value> {
    let offset_ms = prop_oneof![3 => -10_000i64..10_000, 1 => -86_400_000i64..86_400_000];
    let near = offset_ms.prop_map(|offset| T0_MS + offset);
    prop_oneof![
        4 => near.clone().prop_map(|ms| Value::from(rfc3339(ms, "%Y-%m-%dT%H:%M:%S%.3fZ"))),
        2 => near.clone().prop_map(|ms| Value::from(rfc3339(ms, "%Y-%m-%dT%H:%M:%SZ"))),
        1 => near.clone().prop_map(|ms| Value::from(rfc3339(ms, "%Y-%m-%dT%H:%M:%S%.6f+00:00"))),
        1 => near.clone().prop_map(|ms| Value::from(rfc3339(ms, "%Y-%m-%d %H:%M:%S"))),
        3 => near.clone().prop_map(Value::from),
        1 => near.clone().prop_map(|ms| Value::from(ms / 1000)),
        1 => near.clone().prop_map(|ms| Value::from(ms.to_string())),
        1 => near.prop_map(|ms| Value::from(ms as f64 + 0.5)),
        2 => select(&[
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "+002024-05-01T09:15:02Z",
            "2024-13-45T99:99:99Z",
            "2024-05-01T09:15:02.123456789123Z",
            "2024-05-01T09:15:02.123-23:59",
            "1714554902123.5",
            "99999999999999999999999",
            "-1",
            "0",
            "yesterday",
            " 2024-05-01T09:15:02Z ",
        ][..])
        .prop_map(Value::from),
        1 => select(&[i64::MIN, -1, 0, 1, 99_999_999_999, 100_000_000_000, i64::MAX][..])
            .prop_map(Value::from),
        1 => select(&[u64::MAX, 1e20 as u64][..]).prop_map(Value::from),
        1 => select(&[f64::MAX, f64::MIN_POSITIVE, -0.0, 1e-300, 9.223_372_036_854_776e18][..])
            .prop_map(Value::from),
    ]
}

/// Scalars written as raw text, including ones no `Value` can hold.
pub fn raw_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "1e400",
                "-1e400",
                "18446744073709551616",
                "-9223372036854775809",
                "123456789012345678901234567890",
                "1.7976931348623157e308",
                "4.9e-324",
                "-0",
                "0.0000000000000000000000001",
                "\"\\ud800\"",
                "\"\\udc00\\ud800\"",
                "\"\\ud83d\\ude00\"",
                "\"\\u0000\"",
                "\"\\x41\"",
                "NaN",
                "Infinity",
                "true",
                "nul",
            ][..]
        )
        .prop_map(str::to_string),
        value().prop_map(|value| value.to_string()),
    ]
}

/// One record as JSON text: an object whose documented fields are present or not, in any
/// order, with any type, plus unknown members and the occasional repeated key.
pub fn audit_record() -> impl Strategy<Value = String> {
    let field_value = prop_oneof![
        6 => text().prop_map(|text| Value::from(text).to_string()),
        3 => time_value().prop_map(|value| value.to_string()),
        2 => raw_scalar(),
        1 => value().prop_map(|value| value.to_string()),
    ];
    let member = prop_oneof![
        5 => (select(&RECORD_FIELDS[..]).prop_map(str::to_string), field_value),
        1 => (key(), value().prop_map(|value| value.to_string())),
    ];
    (vec(member, 0..10), prop::bool::weighted(0.2)).prop_map(|(members, repeat_keys)| {
        let mut seen = std::collections::HashSet::new();
        let members: Vec<String> = members
            .into_iter()
            .filter(|(key, _)| repeat_keys || seen.insert(key.clone()))
            .map(|(key, value)| format!("{}:{value}", Value::from(key)))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

fn rfc3339(ms: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("near T0")
        .format(format)
        .to_string()
}

/// Whether some object in the JSON text repeats a key (after unescaping). `serde_json::Value`
/// keeps the last of repeated keys while derived structs refuse them, so an oracle built on
/// `Value` says nothing about such texts.
pub fn has_repeated_keys(text: &[u8]) -> bool {
    use serde::de::DeserializeSeed;
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    match RepeatedKeys.deserialize(&mut deserializer) {
        Ok(()) => false,
        Err(error) => error.to_string().starts_with(REPEATED_KEY),
    }
}

const REPEATED_KEY: &str = "repeated key";

/// Walks any JSON value and fails on the first object that repeats a key.
#[derive(Clone, Copy)]
struct RepeatedKeys;

impl<'de> serde::de::DeserializeSeed<'de> for RepeatedKeys {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RepeatedKeys {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key) {
                return Err(serde::de::Error::custom(REPEATED_KEY));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}
