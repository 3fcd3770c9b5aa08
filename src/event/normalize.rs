//! From a raw audit record to a `LifecycleEvent`: stable ids, classification, field mapping.
//!
//! Records carry no id, so an event's id is derived from the record's content: SHA-256 over
//! the six documented fields (time normalized to milliseconds when it parses), truncated to
//! 128 bits. Two records with identical content in one window are told apart by their
//! occurrence index (the second gets `sha256(digest || 1)`), so a genuinely repeated action is
//! not mistaken for a re-read one, and re-reading the same window yields the same ids.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::config::{EventsConfig, Include};
use crate::event::classify::Classifier;
use crate::event::target::extract_target;
use crate::event::{EventType, LifecycleEvent, SCHEMA};
use crate::lacework::AuditLog;

/// An event's stable id: 128 bits, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 16]);

impl RecordId {
    /// Parses 32 hex digits.
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

/// SHA-256 over a record's documented fields, each length-prefixed so no two different
/// records can produce the same byte stream.
pub fn content_digest(record: &AuditLog<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"lae-record-v1");
    let mut field = |value: Option<&str>| match value {
        Some(text) => {
            hasher.update([1u8]);
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        None => hasher.update([0u8]),
    };
    field(record.account_name.as_deref());
    match (record.created_ms(), &record.created_time) {
        (Some(ms), _) => field(Some(&ms.to_string())),
        (None, Some(raw)) => field(Some(&format!("raw:{}", raw.as_text()))),
        (None, None) => field(None),
    }
    field(record.event_name.as_deref());
    field(record.user_action.as_deref());
    field(record.event_description.as_deref());
    field(record.user_name.as_deref());
    hasher.finalize().into()
}

/// Hands out ids within one window, counting identical records.
///
/// A window can hold up to the API's 500,000 records, so first sightings are kept as 64-bit
/// digest prefixes (8 bytes each) and only repeated content gets a counter. Two different
/// records sharing a 64-bit prefix (odds about 1 in 10^8 for a full window) are still told
/// apart: the later one is numbered as a repeat, so its id stays unique.
#[derive(Debug, Default)]
pub struct IdAssigner {
    seen: HashSet<u64>,
    repeats: HashMap<[u8; 16], u32>,
}

impl IdAssigner {
    /// The id of the next record with this content digest.
    pub fn next_id(&mut self, digest: &[u8; 32]) -> RecordId {
        let key: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        let prefix = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        if self.seen.insert(prefix) {
            return RecordId(key);
        }
        let occurrence = self.repeats.entry(key).or_insert(0);
        *occurrence += 1;
        let mut hasher = Sha256::new();
        hasher.update(digest);
        hasher.update(occurrence.to_le_bytes());
        let repeated: [u8; 32] = hasher.finalize().into();
        RecordId(repeated[..16].try_into().expect("16 bytes"))
    }
}

/// Classifies records and builds events from them.
#[derive(Debug, Clone)]
pub struct Normalizer {
    classifier: Classifier,
    include: Include,
    default_account: Option<String>,
}

impl Normalizer {
    /// Builds a normalizer. `default_account` fills `account` for records without
    /// `accountName`.
    pub fn new(
        events: &EventsConfig,
        default_account: Option<String>,
    ) -> Result<Normalizer, regex::Error> {
        Ok(Normalizer {
            classifier: Classifier::new(&events.rules)?,
            include: events.include,
            default_account,
        })
    }

    /// The type to emit the record as, or `None` when the configuration does not emit it.
    pub fn emitted_type(&self, record: &AuditLog<'_>) -> Option<EventType> {
        let event_type = self.classifier.classify(record);
        (event_type.is_lifecycle() || self.include == Include::All).then_some(event_type)
    }

    /// Builds the event for a record already given its type and id.
    pub fn build_event(
        &self,
        raw: &RawValue,
        record: &AuditLog<'_>,
        event_type: EventType,
        id: RecordId,
    ) -> LifecycleEvent {
        let actor = record.user_name.as_deref().map(str::to_string);
        let target = extract_target(
            event_type,
            record.event_description.as_deref(),
            actor.as_deref(),
        );
        LifecycleEvent {
            schema: SCHEMA,
            id,
            event_type,
            time: record.created_ms(),
            account: record
                .account_name
                .as_deref()
                .map(str::to_string)
                .or_else(|| self.default_account.clone()),
            actor,
            target,
            action: record.user_action.as_deref().map(str::to_string),
            description: record.event_description.as_deref().map(str::to_string),
            raw: raw.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    fn digest_of(text: &str) -> [u8; 32] {
        let record = raw(text);
        content_digest(&AuditLog::parse(&record).unwrap())
    }

    #[test]
    fn digest_ignores_time_format_and_unknown_fields_but_not_content() {
        let base = digest_of(
            r#"{"accountName":"A","createdTime":"2024-05-01T09:15:02.000Z","userAction":"User Created","userName":"a@x.io"}"#,
        );
        assert_eq!(
            base,
            digest_of(
                r#"{"userName":"a@x.io","createdTime":1714554902000,"accountName":"A","userAction":"User Created","new":1}"#
            )
        );
        assert_eq!(
            base,
            digest_of(
                r#"{"accountName":"A","createdTime":"2024-05-01T09:15:02Z","userAction":"User Created","userName":"a@x.io"}"#
            )
        );
        assert_ne!(
            base,
            digest_of(
                r#"{"accountName":"A","createdTime":"2024-05-01T09:15:02.001Z","userAction":"User Created","userName":"a@x.io"}"#
            )
        );
        assert_ne!(
            base,
            digest_of(
                r#"{"accountName":"B","createdTime":"2024-05-01T09:15:02.000Z","userAction":"User Created","userName":"a@x.io"}"#
            )
        );
        // Length prefixes keep field boundaries apart.
        assert_ne!(
            digest_of(r#"{"eventName":"ab","userAction":"c"}"#),
            digest_of(r#"{"eventName":"a","userAction":"bc"}"#)
        );
    }

    #[test]
    fn repeated_records_get_distinct_stable_ids() {
        let digest = digest_of(r#"{"userAction":"Login with OAuth Succeeded"}"#);
        let mut first_read = IdAssigner::default();
        let ids: Vec<RecordId> = (0..3).map(|_| first_read.next_id(&digest)).collect();
        assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            3
        );
        let mut second_read = IdAssigner::default();
        let again: Vec<RecordId> = (0..3).map(|_| second_read.next_id(&digest)).collect();
        assert_eq!(ids, again);
        assert_eq!(ids[0].to_string(), hex::encode(&digest[..16]));
    }

    #[test]
    fn include_all_emits_unclassified_records_as_audit() {
        let record_text = raw(r#"{"userAction":"Alert Channel Created","accountName":"ACME"}"#);
        let record = AuditLog::parse(&record_text).unwrap();
        let lifecycle = Normalizer::new(&EventsConfig::default(), None).unwrap();
        assert_eq!(lifecycle.emitted_type(&record), None);
        let all = Normalizer::new(
            &EventsConfig {
                include: Include::All,
                rules: vec![],
            },
            Some("acme".into()),
        )
        .unwrap();
        assert_eq!(all.emitted_type(&record), Some(EventType::Audit));
    }

    #[test]
    fn default_account_fills_a_missing_account_name() {
        let normalizer = Normalizer::new(&EventsConfig::default(), Some("acme".into())).unwrap();
        let text = raw(r#"{"userAction":"User Created","eventDescription":"Added user b@x.io"}"#);
        let record = AuditLog::parse(&text).unwrap();
        let event =
            normalizer.build_event(&text, &record, EventType::UserCreated, RecordId([0; 16]));
        assert_eq!(event.account.as_deref(), Some("acme"));
        assert_eq!(event.target.as_deref(), Some("b@x.io"));
        assert_eq!(event.time, None);
    }
}
