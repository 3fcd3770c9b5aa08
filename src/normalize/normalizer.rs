//! `Normalizer`: one page of raw records in, the events to emit out, in page order.

use std::ops::Range;

use serde_json::value::RawValue;

use crate::config::{EventsConfig, Include};
use crate::event::{EventType, LifecycleEvent, RecordId, SCHEMA, Source};
use crate::lacework::{AuditLog, AuditLogPage};
use crate::normalize::IdAssigner;
use crate::normalize::classify::{Classification, Classifier, MatchedBy};
use crate::normalize::id::content_digest;
use crate::normalize::target::extract_target;

/// One page, normalized.
#[derive(Debug)]
pub(crate) struct NormalizedPage {
    /// `paging.totalRows`, when the API gave it.
    pub total_rows: Option<u64>,
    /// The page's `nextPage` link: where a walk interrupted after this page resumes.
    pub next_page: Option<String>,
    /// The digest key of every record given an id, in order (see `IdAssigner::resumed`).
    pub keys: Vec<[u8; 16]>,
    /// Events to emit, ids assigned, in page order.
    pub events: Vec<LifecycleEvent>,
    /// Records on the page.
    pub n_records: usize,
    /// Records outside the range that was asked to be kept (a replay window).
    pub n_outside: usize,
}

/// One record as `classify` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Explained {
    pub event_type: EventType,
    pub target: Option<String>,
    /// The rule that decided, e.g. `built-in userAction: user-created`.
    pub matched_by: String,
    /// Whether any rule decided (a failure rule counts); `false` is an unmatched record.
    pub matched: bool,
    pub time_ms: Option<i64>,
    pub actor: Option<String>,
    pub user_action: Option<String>,
    pub event_name: Option<String>,
    pub description: Option<String>,
}

/// Classifies records and builds events from them.
#[derive(Debug, Clone)]
pub(crate) struct Normalizer {
    classifier: Classifier,
    include: Include,
    default_account: Option<String>,
}

impl Normalizer {
    /// Builds a normalizer. `default_account` fills `account` for records without
    /// `accountName`.
    pub(crate) fn new(
        events: &EventsConfig,
        default_account: Option<String>,
    ) -> Result<Normalizer, regex::Error> {
        Ok(Normalizer {
            classifier: Classifier::new(&events.rules, events.builtin_rules)?,
            include: events.include,
            default_account,
        })
    }

    /// How one record is classified, for `classify`: its type, target and the rule that
    /// decided, whatever `include` says.
    pub(crate) fn explain(&self, raw: &RawValue) -> Explained {
        let record = AuditLog::parse(raw).unwrap_or_default();
        let classification = self.classifier.classify(&record);
        let actor = record.user_name.as_deref().map(str::to_string);
        let target = classification.target.clone().or_else(|| {
            extract_target(
                classification.event_type,
                record.event_description.as_deref(),
                actor.as_deref(),
            )
        });
        let text = |field: &Option<std::borrow::Cow<'_, str>>| field.as_deref().map(str::to_string);
        Explained {
            event_type: classification.event_type,
            target,
            matched_by: classification.matched_by.to_string(),
            matched: classification.matched_by != MatchedBy::Nothing,
            time_ms: record.created_ms(),
            actor,
            user_action: text(&record.user_action),
            event_name: text(&record.event_name),
            description: text(&record.event_description),
        }
    }

    /// Turns a page into the events to emit: parse each record, keep only those whose time
    /// falls in `keep` (when given; records without a time are kept), classify, and give each
    /// its id from `ids`. Ids depend on the order records are seen in (identical records are
    /// numbered), so one `IdAssigner` serves one window, page after page.
    pub(crate) fn normalize_page(
        &self,
        page: &AuditLogPage,
        keep: Option<&Range<i64>>,
        ids: &mut IdAssigner,
    ) -> NormalizedPage {
        let mut normalized = NormalizedPage {
            total_rows: page.total_rows,
            next_page: page.next_page.clone(),
            keys: Vec::new(),
            events: Vec::new(),
            n_records: page.records.len(),
            n_outside: 0,
        };
        for raw in &page.records {
            // `AuditLogPage::decode` guarantees an object, and every field is parsed leniently.
            let record = AuditLog::parse(raw).unwrap_or_default();
            if let (Some(keep), Some(time)) = (keep, record.created_ms())
                && !keep.contains(&time)
            {
                normalized.n_outside += 1;
                continue;
            }
            let classification = self.classifier.classify(&record);
            if !classification.event_type.is_lifecycle() && self.include != Include::All {
                continue;
            }
            let digest = content_digest(&record);
            let id = ids.next_id(&digest);
            normalized
                .keys
                .push(digest[..16].try_into().expect("16 bytes"));
            normalized
                .events
                .push(self.build_event(raw, &record, classification, id));
        }
        normalized
    }

    /// Builds the event for a record already given its type and id.
    fn build_event(
        &self,
        raw: &RawValue,
        record: &AuditLog<'_>,
        classification: Classification,
        id: RecordId,
    ) -> LifecycleEvent {
        let event_type = classification.event_type;
        let actor = record.user_name.as_deref().map(str::to_string);
        let target = classification.target.or_else(|| {
            extract_target(
                event_type,
                record.event_description.as_deref(),
                actor.as_deref(),
            )
        });
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
            source: Source::Audit,
            raw: one_line(raw),
        }
    }
}

/// The record with its line breaks turned into spaces. A page sent pretty-printed (as the
/// API's own examples are) spans lines, and `raw` verbatim would split the event's JSON line
/// in two (found by the `record` fuzz target). Line breaks in valid JSON text are always
/// insignificant whitespace, since strings cannot hold them unescaped, so this changes no value.
fn one_line(raw: &RawValue) -> Box<RawValue> {
    if !raw.get().contains(['\n', '\r']) {
        return raw.to_owned();
    }
    RawValue::from_string(raw.get().replace(['\n', '\r'], " "))
        .expect("whitespace for whitespace keeps JSON valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    fn page(records: &[&str]) -> AuditLogPage {
        let body = format!(r#"{{"data":[{}]}}"#, records.join(","));
        AuditLogPage::decode(body.as_bytes()).unwrap()
    }

    #[test]
    fn include_all_emits_unclassified_records_as_audit() {
        let alert = page(&[r#"{"userAction":"Alert Channel Created","accountName":"ACME"}"#]);
        let lifecycle = Normalizer::new(&EventsConfig::default(), None).unwrap();
        let normalized = lifecycle.normalize_page(&alert, None, &mut IdAssigner::default());
        assert!(normalized.events.is_empty());
        let all = Normalizer::new(
            &EventsConfig {
                include: Include::All,
                ..EventsConfig::default()
            },
            Some("acme".into()),
        )
        .unwrap();
        let normalized = all.normalize_page(&alert, None, &mut IdAssigner::default());
        assert_eq!(normalized.events[0].event_type, EventType::Audit);
    }

    #[test]
    fn default_account_fills_a_missing_account_name() {
        let normalizer = Normalizer::new(&EventsConfig::default(), Some("acme".into())).unwrap();
        let text = raw(r#"{"userAction":"User Created","eventDescription":"Added user b@x.io"}"#);
        let record = AuditLog::parse(&text).unwrap();
        let classification = normalizer.classifier.classify(&record);
        let event = normalizer.build_event(&text, &record, classification, RecordId([0; 16]));
        assert_eq!(event.account.as_deref(), Some("acme"));
        assert_eq!(event.target.as_deref(), Some("b@x.io"));
        assert_eq!(event.time, None);
    }

    #[test]
    fn a_page_keeps_order_counts_what_it_drops_and_numbers_repeats() {
        let normalizer = Normalizer::new(&EventsConfig::default(), None).unwrap();
        let created = r#"{"createdTime":"2026-11-01T00:00:10Z","userAction":"User Created","eventDescription":"Added user a@x.io"}"#;
        let deleted = r#"{"createdTime":"2026-11-01T00:00:05Z","userAction":"User Deleted","eventDescription":"Removed user b@x.io"}"#;
        let login_failed = r#"{"createdTime":"2026-11-01T00:00:06Z","userAction":"Login Failed"}"#;
        let outside = r#"{"createdTime":"2026-11-02T00:00:00Z","userAction":"User Created"}"#;
        let keep = 1_793_491_200_000..1_793_491_260_000; // 2026-11-01T00:00 to 00:01
        let mut ids = IdAssigner::default();
        let normalized = normalizer.normalize_page(
            &page(&[created, deleted, login_failed, created, outside]),
            Some(&keep),
            &mut ids,
        );
        assert_eq!(normalized.n_records, 5);
        assert_eq!(normalized.n_outside, 1);
        let types: Vec<EventType> = normalized.events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [
                EventType::UserCreated,
                EventType::UserDeleted,
                EventType::UserCreated
            ],
            "page order kept; the failed login is not emitted"
        );
        assert_ne!(
            normalized.events[0].id, normalized.events[2].id,
            "a repeated record gets its own id"
        );
        // The same page read again with fresh ids gives the same ids.
        let again = normalizer.normalize_page(
            &page(&[created, deleted, login_failed, created, outside]),
            Some(&keep),
            &mut IdAssigner::default(),
        );
        let ids_of = |page: &NormalizedPage| page.events.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids_of(&normalized), ids_of(&again));
    }
}
