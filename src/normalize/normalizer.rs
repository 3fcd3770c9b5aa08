//! `Normalizer`: one page of raw records in, the events to emit out, in page order.

use std::ops::Range;

use serde_json::value::RawValue;

use crate::config::{EventsConfig, Include};
use crate::event::{EventType, LifecycleEvent, RecordId, SCHEMA, Source};
use crate::lacework::{AuditLog, AuditLogPage};
use crate::normalize::IdAssigner;
use crate::normalize::classify::{Classifier, MatchedBy};
use crate::normalize::id::content_digest;
use crate::normalize::shapes::ShapeCache;
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
    /// Worker threads a large page is normalized on.
    threads: usize,
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
            threads: normalize_threads(),
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
    /// its id from `window`'s. Ids depend on the order records are seen in (identical records
    /// are numbered), so one `WindowState` serves one window, page after page.
    ///
    /// A large page is cut into contiguous runs, one per worker thread; the runs are
    /// classified and hashed at once, and ids are handed out afterwards in page order.
    pub(crate) fn normalize_page(
        &self,
        page: AuditLogPage,
        keep: Option<&Range<i64>>,
        window: &mut WindowState,
    ) -> NormalizedPage {
        let mut normalized = NormalizedPage {
            total_rows: page.total_rows,
            next_page: page.next_page,
            keys: Vec::new(),
            events: Vec::new(),
            n_records: page.records.len(),
            n_outside: 0,
        };
        let runs = split_runs(page.records, self.threads);
        if window.shapes.len() < runs.len() {
            window.shapes.resize_with(runs.len(), ShapeCache::default);
        }
        let mut shapes = window.shapes.iter_mut();
        let runs: Vec<Run> = if runs.len() == 1 {
            let cache = shapes.next().expect("one cache per run");
            runs.into_iter()
                .map(|run| self.normalize_run(run, keep, cache))
                .collect()
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = runs
                    .into_iter()
                    .zip(shapes)
                    .map(|(run, cache)| scope.spawn(move || self.normalize_run(run, keep, cache)))
                    .collect();
                workers
                    .into_iter()
                    .map(|worker| match worker.join() {
                        Ok(run) => run,
                        Err(panic) => std::panic::resume_unwind(panic),
                    })
                    .collect()
            })
        };
        let n_events = runs.iter().map(|run| run.events.len()).sum();
        normalized.keys.reserve(n_events);
        for mut run in runs {
            normalized.n_outside += run.n_outside;
            for (event, digest) in run.events.iter_mut().zip(&run.digests) {
                event.id = window.ids.next_id(digest);
                normalized
                    .keys
                    .push(digest[..16].try_into().expect("16 bytes"));
            }
            // The first run's events become the page's; later runs are appended (one copy).
            if normalized.events.is_empty() {
                normalized.events = run.events;
            } else {
                normalized.events.append(&mut run.events);
            }
        }
        normalized
    }

    /// Everything of each record but its id, for a run of records in order.
    fn normalize_run(
        &self,
        records: Vec<Box<RawValue>>,
        keep: Option<&Range<i64>>,
        shapes: &mut ShapeCache,
    ) -> Run {
        let mut run = Run {
            events: Vec::with_capacity(records.len()),
            digests: Vec::with_capacity(records.len()),
            n_outside: 0,
        };
        for raw in records {
            // `AuditLogPage::decode` guarantees an object, and every field is parsed leniently.
            let record = AuditLog::parse(&raw).unwrap_or_default();
            if let (Some(keep), Some(time)) = (keep, record.created_ms())
                && !keep.contains(&time)
            {
                run.n_outside += 1;
                continue;
            }
            let verdict = shapes.verdict(&self.classifier, &record);
            let (event_type, target) = self
                .classifier
                .classify_by_shape(&verdict, &record)
                .unwrap_or_else(|| {
                    let classification = self.classifier.classify(&record);
                    (classification.event_type, classification.target)
                });
            if !event_type.is_lifecycle() && self.include != Include::All {
                continue;
            }
            let digest = content_digest(&record);
            let fields = self.event_fields(&record, event_type, target);
            drop(record);
            run.digests.push(digest);
            run.events.push(fields.into_event(one_line(raw)));
        }
        run
    }

    /// What the event of a record already given its type says, but its id and `raw`.
    fn event_fields(
        &self,
        record: &AuditLog<'_>,
        event_type: EventType,
        target: Option<String>,
    ) -> EventFields {
        let actor = record.user_name.as_deref().map(str::to_string);
        let target = target.or_else(|| {
            extract_target(
                event_type,
                record.event_description.as_deref(),
                actor.as_deref(),
            )
        });
        EventFields {
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
        }
    }
}

/// The events of one run of a page, in order, and the content digest each one's id comes from.
struct Run {
    events: Vec<LifecycleEvent>,
    digests: Vec<[u8; 32]>,
    /// Records whose time is outside the range kept.
    n_outside: usize,
}

/// An event's fields taken from its record: owned, so the record's text can then be moved
/// into the event as `raw` instead of copied.
struct EventFields {
    event_type: EventType,
    time: Option<i64>,
    account: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    action: Option<String>,
    description: Option<String>,
}

impl EventFields {
    /// The event, its id to be given (ids depend on page order).
    fn into_event(self, raw: Box<RawValue>) -> LifecycleEvent {
        LifecycleEvent {
            schema: SCHEMA,
            id: RecordId([0; 16]),
            event_type: self.event_type,
            time: self.time,
            account: self.account,
            actor: self.actor,
            target: self.target,
            action: self.action,
            description: self.description,
            source: Source::Audit,
            raw,
        }
    }
}

/// Records below which a page is not worth a second thread: starting one costs about as much
/// as normalizing a few dozen records.
const MIN_RECORDS_PER_THREAD: usize = 512;

/// Worker threads for one page: the machine's cores, at most four (the fetch and deliver
/// stages want CPU too).
fn normalize_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// `records` cut into at most `threads` contiguous runs of at least
/// `MIN_RECORDS_PER_THREAD` each, in order; always at least one run.
fn split_runs(mut records: Vec<Box<RawValue>>, threads: usize) -> Vec<Vec<Box<RawValue>>> {
    let n_runs = (records.len() / MIN_RECORDS_PER_THREAD).clamp(1, threads.max(1));
    let per_run = records.len().div_ceil(n_runs);
    let mut runs = Vec::with_capacity(n_runs);
    while records.len() > per_run {
        let rest = records.split_off(per_run);
        runs.push(std::mem::replace(&mut records, rest));
    }
    runs.push(records);
    runs
}

/// What normalizing one window carries from page to page: the ids handed out so far (identical
/// records are numbered) and each worker's verdicts by record shape.
#[derive(Debug, Default)]
pub(crate) struct WindowState {
    ids: IdAssigner,
    shapes: Vec<ShapeCache>,
}

impl WindowState {
    /// The state of a window resumed after the records whose digest keys are `keys` (see
    /// `IdAssigner::resumed`).
    pub(crate) fn resumed(keys: impl IntoIterator<Item = [u8; 16]>) -> WindowState {
        WindowState {
            ids: IdAssigner::resumed(keys),
            shapes: Vec::new(),
        }
    }
}

/// The record with its line breaks turned into spaces. A page sent pretty-printed (as the
/// API's own examples are) spans lines, and `raw` verbatim would split the event's JSON line
/// in two (found by the `record` fuzz target). Line breaks in valid JSON text are always
/// insignificant whitespace, since strings cannot hold them unescaped, so this changes no value.
fn one_line(raw: Box<RawValue>) -> Box<RawValue> {
    if !raw.get().contains(['\n', '\r']) {
        return raw;
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
        let normalized = lifecycle.normalize_page(alert.clone(), None, &mut WindowState::default());
        assert!(normalized.events.is_empty());
        let all = Normalizer::new(
            &EventsConfig {
                include: Include::All,
                ..EventsConfig::default()
            },
            Some("acme".into()),
        )
        .unwrap();
        let normalized = all.normalize_page(alert, None, &mut WindowState::default());
        assert_eq!(normalized.events[0].event_type, EventType::Audit);
    }

    #[test]
    fn default_account_fills_a_missing_account_name() {
        let normalizer = Normalizer::new(&EventsConfig::default(), Some("acme".into())).unwrap();
        let text = raw(r#"{"userAction":"User Created","eventDescription":"Added user b@x.io"}"#);
        let record = AuditLog::parse(&text).unwrap();
        let classification = normalizer.classifier.classify(&record);
        let event =
            normalizer.event_fields(&record, classification.event_type, classification.target);
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
        let mut window = WindowState::default();
        let normalized = normalizer.normalize_page(
            page(&[created, deleted, login_failed, created, outside]),
            Some(&keep),
            &mut window,
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
            page(&[created, deleted, login_failed, created, outside]),
            Some(&keep),
            &mut WindowState::default(),
        );
        let ids_of = |page: &NormalizedPage| page.events.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids_of(&normalized), ids_of(&again));
    }

    #[test]
    fn a_page_split_across_threads_gives_the_events_of_one_thread_in_order() {
        let events = EventsConfig {
            include: Include::All,
            ..EventsConfig::default()
        };
        let one = Normalizer {
            threads: 1,
            ..Normalizer::new(&events, Some("acme".into())).unwrap()
        };
        let four = Normalizer {
            threads: 4,
            ..one.clone()
        };
        // Repeats across run boundaries must be numbered in page order, and a record spanning
        // lines must still become one line.
        let records: Vec<String> = (0..3 * MIN_RECORDS_PER_THREAD + 7)
            .map(|i| match i % 5 {
                0 => r#"{"createdTime":"2026-11-01T00:00:00Z","userAction":"User Created","eventDescription":"Added user a@x.io"}"#.to_string(),
                1 => format!(r#"{{"createdTime":"2026-11-01T00:00:{:02}Z","userAction":"Alert Rule Modified","n":{i}}}"#, i % 60),
                2 => format!("{{\n  \"userAction\": \"User Deleted\",\n  \"eventDescription\": \"Removed user u{i}@x.io\"\n}}"),
                3 => r#"{"eventName":"User","eventDescription":"Added user b@x.io"}"#.to_string(),
                _ => format!(r#"{{"userAction":"Login with OAuth Succeeded","userName":"u{i}@x.io"}}"#),
            })
            .collect();
        let records: Vec<&str> = records.iter().map(String::as_str).collect();
        let lines = |normalizer: &Normalizer| {
            let mut window = WindowState::default();
            let mut out = Vec::new();
            for _ in 0..2 {
                let normalized = normalizer.normalize_page(page(&records), None, &mut window);
                for event in &normalized.events {
                    event.write_json_line(&mut out);
                }
            }
            String::from_utf8(out).unwrap()
        };
        let sequential = lines(&one);
        assert_eq!(sequential.lines().count(), 2 * records.len());
        assert_eq!(split_runs(page(&records).records, 4).len(), 3);
        assert_eq!(lines(&four), sequential);
    }
}
