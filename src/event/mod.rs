//! Normalized lifecycle events: our stable output schema and its types. How audit records
//! become events is `normalize`'s business; this module only says what an event is.
//!
//! The event JSON is a contract with consumers: `SCHEMA` names its version and a golden test
//! pins its serialized form. Change it only by adding fields, or by a new schema version.
//!
//! Invariant: this module imports nothing of ours but the time helpers, so every sink and the
//! checkpoint can depend on it without depending on the API client or the configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::time::format_time_ms;

/// Version tag carried by every event.
pub const SCHEMA: &str = "lacework-audit-exporter/v1";

/// What happened, normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// A user was created or added.
    UserCreated,
    /// A user was deleted or removed.
    UserDeleted,
    /// A user was enabled or re-activated.
    UserEnabled,
    /// A user was disabled or deactivated.
    UserDisabled,
    /// A user's role or role-carrying group membership changed.
    UserRoleChanged,
    /// A user logged in successfully.
    UserLogin,
    /// An API key was created.
    ApiKeyCreated,
    /// An API key was deleted or revoked.
    ApiKeyDeleted,
    /// An API key was enabled.
    ApiKeyEnabled,
    /// An API key was disabled.
    ApiKeyDisabled,
    /// Any other audit record (emitted only with `events.include = "all"`).
    Audit,
}

impl EventType {
    /// Every type, lifecycle types first.
    pub const ALL: [EventType; 11] = [
        EventType::UserCreated,
        EventType::UserDeleted,
        EventType::UserEnabled,
        EventType::UserDisabled,
        EventType::UserRoleChanged,
        EventType::UserLogin,
        EventType::ApiKeyCreated,
        EventType::ApiKeyDeleted,
        EventType::ApiKeyEnabled,
        EventType::ApiKeyDisabled,
        EventType::Audit,
    ];

    /// The type's name as it appears in the JSON, e.g. `USER_CREATED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "USER_CREATED",
            EventType::UserDeleted => "USER_DELETED",
            EventType::UserEnabled => "USER_ENABLED",
            EventType::UserDisabled => "USER_DISABLED",
            EventType::UserRoleChanged => "USER_ROLE_CHANGED",
            EventType::UserLogin => "USER_LOGIN",
            EventType::ApiKeyCreated => "API_KEY_CREATED",
            EventType::ApiKeyDeleted => "API_KEY_DELETED",
            EventType::ApiKeyEnabled => "API_KEY_ENABLED",
            EventType::ApiKeyDisabled => "API_KEY_DISABLED",
            EventType::Audit => "AUDIT",
        }
    }

    /// Whether this is a user or API-key lifecycle type (everything but `AUDIT`).
    pub fn is_lifecycle(self) -> bool {
        self != EventType::Audit
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ();
    /// Case-insensitive; `-` and spaces count as `_`.
    fn from_str(text: &str) -> Result<EventType, ()> {
        let wanted = text.trim().to_ascii_uppercase().replace(['-', ' '], "_");
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == wanted)
            .ok_or(())
    }
}

/// A record field classification rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Field {
    /// `userAction`, the action summary.
    #[serde(rename = "userAction")]
    UserAction,
    /// `eventName`.
    #[serde(rename = "eventName")]
    EventName,
    /// `eventDescription`, free text.
    #[serde(rename = "eventDescription")]
    EventDescription,
}

impl Field {
    /// The field's name in the record, e.g. `userAction`.
    pub fn name(self) -> &'static str {
        match self {
            Field::UserAction => "userAction",
            Field::EventName => "eventName",
            Field::EventDescription => "eventDescription",
        }
    }

    /// All fields, in the order the classifier tries them.
    pub fn all() -> Vec<Field> {
        vec![Field::UserAction, Field::EventName, Field::EventDescription]
    }
}

/// One normalized event: the `lacework-audit-exporter/v1` schema.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleEvent {
    /// Always `SCHEMA`.
    pub schema: &'static str,
    /// Stable id: a hash of the record's content (see `normalize`), 32 hex digits.
    pub id: RecordId,
    /// Normalized type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened, RFC 3339 UTC with milliseconds; null when the record had no
    /// understandable `createdTime`.
    #[serde(serialize_with = "serialize_time_ms")]
    pub time: Option<i64>,
    /// `accountName` of the record (or the configured account when the record has none).
    pub account: Option<String>,
    /// Who acted (`userName`).
    pub actor: Option<String>,
    /// The affected user, when the text names one.
    pub target: Option<String>,
    /// `userAction`.
    pub action: Option<String>,
    /// `eventDescription`.
    pub description: Option<String>,
    /// Where the event was learned: `audit` (the audit log) or `reconcile` (a change between
    /// two snapshots of the user inventory).
    pub source: Source,
    /// The record exactly as received.
    pub raw: Box<RawValue>,
}

/// Where an event was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An audit-log record.
    Audit,
    /// A difference between two snapshots of the user inventory.
    Reconcile,
}

/// An event's stable id: 128 bits, shown as 32 lowercase hex digits. How it is derived from a
/// record is `normalize::id`'s business.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 16]);

impl RecordId {
    /// Parses 32 hex digits.
    #[cfg(test)]
    pub fn from_hex(text: &str) -> Option<RecordId> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(RecordId(bytes))
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0u8; 32];
        hex::encode_to_slice(self.0, &mut buffer).expect("buffer fits");
        f.write_str(std::str::from_utf8(&buffer).expect("hex is ascii"))
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

impl Serialize for RecordId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn serialize_time_ms<S: Serializer>(time: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match time.and_then(format_time_ms) {
        Some(text) => serializer.serialize_str(&text),
        None => serializer.serialize_none(),
    }
}

impl LifecycleEvent {
    /// Appends the event as one JSON line (with `\n`) to `out`: byte for byte what
    /// `serde_json` makes of the derived `Serialize` (a test holds the two together), written
    /// by hand because it is the per-event cost of every sink. Text that needs no escaping,
    /// almost all of it, is copied as it is.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.reserve(self.raw.get().len() + 256);
        out.extend_from_slice(b"{\"schema\":");
        write_json_str(out, self.schema);
        out.extend_from_slice(b",\"id\":\"");
        let mut id = [0u8; 32];
        hex::encode_to_slice(self.id.0, &mut id).expect("buffer fits");
        out.extend_from_slice(&id);
        out.extend_from_slice(b"\",\"type\":\"");
        out.extend_from_slice(self.event_type.as_str().as_bytes());
        out.extend_from_slice(b"\",\"time\":");
        write_json_opt(out, self.time.and_then(format_time_ms).as_deref());
        for (key, value) in [
            (&b",\"account\":"[..], &self.account),
            (b",\"actor\":", &self.actor),
            (b",\"target\":", &self.target),
            (b",\"action\":", &self.action),
            (b",\"description\":", &self.description),
        ] {
            out.extend_from_slice(key);
            write_json_opt(out, value.as_deref());
        }
        out.extend_from_slice(match self.source {
            Source::Audit => b",\"source\":\"audit\",\"raw\":",
            Source::Reconcile => b",\"source\":\"reconcile\",\"raw\":",
        });
        out.extend_from_slice(self.raw.get().as_bytes());
        out.extend_from_slice(b"}\n");
    }
}

/// `null` or the quoted string.
fn write_json_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => write_json_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// The string as a JSON string literal. One that holds a quote, a backslash or a control
/// character goes through `serde_json`'s escaping, so the bytes are always what it writes.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if needs_escaping(text.as_bytes()) {
        serde_json::to_writer(&mut *out, text).expect("a string serializes");
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether JSON needs any of these bytes escaped. Checked 16 bytes at a time without an early
/// exit inside a block, which the compiler turns into vector compares.
fn needs_escaping(bytes: &[u8]) -> bool {
    let escaped = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |any, &b| any | escaped(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| escaped(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_is_pinned() {
        let event = LifecycleEvent {
            schema: SCHEMA,
            id: RecordId::from_hex("0123456789abcdef0123456789abcdef").unwrap(),
            event_type: EventType::UserCreated,
            time: Some(1_793_524_502_123),
            account: Some("ACME".into()),
            actor: Some("admin@acme.com".into()),
            target: Some("new.user@acme.com".into()),
            action: Some("User Created".into()),
            description: Some("User new.user@acme.com created by admin@acme.com".into()),
            source: Source::Audit,
            raw: RawValue::from_string(r#"{"accountName":"ACME", "x":1}"#.into()).unwrap(),
        };
        let mut line = Vec::new();
        event.write_json_line(&mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            concat!(
                r#"{"schema":"lacework-audit-exporter/v1","id":"0123456789abcdef0123456789abcdef","type":"USER_CREATED","#,
                r#""time":"2026-11-01T09:15:02.123Z","account":"ACME","actor":"admin@acme.com","#,
                r#""target":"new.user@acme.com","action":"User Created","#,
                r#""description":"User new.user@acme.com created by admin@acme.com","source":"audit","#,
                r#""raw":{"accountName":"ACME", "x":1}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn the_hand_written_line_is_what_serde_json_writes() {
        let texts = [
            None,
            Some(""),
            Some("plain text of some length, longer than sixteen bytes"),
            Some("quote \" inside"),
            Some("back\\slash and a tab\t and a newline\n"),
            Some("control \u{1} and \u{1f} and DEL \u{7f}"),
            Some("non-ASCII: café ☃ 𝄞, and a slash / here"),
            Some("sixteen bytes!!\""),
            // One escaped byte each, at the edges of what needs escaping and of a 16-byte block.
            Some("a unit separator \u{1f} alone"),
            Some("0123456789abcdef\u{0}"),
            Some("0123456789abcde\\"),
        ];
        for (n, text) in texts.iter().enumerate() {
            let text = text.map(str::to_string);
            let event = LifecycleEvent {
                schema: SCHEMA,
                id: RecordId([n as u8; 16]),
                event_type: EventType::ALL[n % EventType::ALL.len()],
                time: [None, Some(1_793_524_502_123), Some(i64::MAX)][n % 3],
                account: text.clone(),
                actor: text.clone(),
                target: text.clone(),
                action: text.clone(),
                description: text.clone(),
                source: [Source::Audit, Source::Reconcile][n % 2],
                raw: RawValue::from_string(r#"{"a": [1, "x\n"]}"#.into()).unwrap(),
            };
            let mut expected = serde_json::to_vec(&event).unwrap();
            expected.push(b'\n');
            let mut line = Vec::new();
            event.write_json_line(&mut line);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn type_names_round_trip() {
        for event_type in EventType::ALL {
            assert_eq!(event_type.as_str().parse::<EventType>(), Ok(event_type));
            let json = serde_json::to_string(&event_type).unwrap();
            assert_eq!(json, format!("\"{}\"", event_type.as_str()));
        }
        assert_eq!(
            "user-created".parse::<EventType>(),
            Ok(EventType::UserCreated)
        );
        assert!("USER_EXPLODED".parse::<EventType>().is_err());
    }
}
