//! Stable event ids derived from a record's content.
//!
//! Records carry no id, so an event's id is derived from the record's content: SHA-256 over
//! the six documented fields (time normalized to milliseconds when it parses), truncated to
//! 128 bits. Two records with identical content in one window are told apart by their
//! occurrence index (the second gets `sha256(digest || 1)`), so a genuinely repeated action is
//! not mistaken for a re-read one, and re-reading the same window yields the same ids.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::event::RecordId;
use crate::lacework::AuditLog;

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
    /// An assigner that continues a window after the records whose digest keys (the first 16
    /// bytes of each digest, in the order ids were given) are `keys`: a walk resumed at a
    /// saved page numbers repeated content as the interrupted walk did.
    pub fn resumed(keys: impl IntoIterator<Item = [u8; 16]>) -> IdAssigner {
        let mut ids = IdAssigner::default();
        for key in keys {
            ids.count(key);
        }
        ids
    }

    /// The id of the next record with this content digest.
    pub fn next_id(&mut self, digest: &[u8; 32]) -> RecordId {
        let key: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        let occurrence = self.count(key);
        if occurrence == 0 {
            return RecordId(key);
        }
        let mut hasher = Sha256::new();
        hasher.update(digest);
        hasher.update(occurrence.to_le_bytes());
        let repeated: [u8; 32] = hasher.finalize().into();
        RecordId(repeated[..16].try_into().expect("16 bytes"))
    }

    /// Counts one more record with this key; returns its occurrence number (0 for the first).
    fn count(&mut self, key: [u8; 16]) -> u32 {
        let prefix = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        if self.seen.insert(prefix) {
            return 0;
        }
        let occurrence = self.repeats.entry(key).or_insert(0);
        *occurrence += 1;
        *occurrence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

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
        // A walk resumed after the first occurrence numbers the rest as the first walk did.
        let key: [u8; 16] = digest[..16].try_into().unwrap();
        let mut resumed = IdAssigner::resumed([key]);
        assert_eq!(resumed.next_id(&digest), ids[1]);
        assert_eq!(resumed.next_id(&digest), ids[2]);
    }
}
