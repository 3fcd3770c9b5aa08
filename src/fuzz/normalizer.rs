//! Target `record`: `Normalizer::normalize_page` on windows of arbitrary records, with and
//! without a `keep` range, under several `[events]` configurations.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::{EventsConfig, Include, RuleConfig};
use crate::event::{EventType, Field, LifecycleEvent};
use crate::fuzz::harness::{self, Input, Target};
use crate::fuzz::json::{self, T0_MS};
use crate::fuzz::mutate;
use crate::lacework::{AuditLog, AuditLogPage};
use crate::normalize::{Normalizer, WindowState};

const TARGET: Target = Target {
    name: "record",
    regressions: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/proptest-regressions/record.txt"
    ),
    extension: "json",
};

/// Pieces of records worth inserting whole.
const TOKENS: &[&str] = &[
    "\"createdTime\":",
    "\"accountName\":",
    "\"eventName\":",
    "\"userAction\":",
    "\"eventDescription\":",
    "\"userName\":",
    "\"eventType\":",
    "null",
    "true",
    "{}",
    "[]",
    "\"\"",
    ",",
    "\\u0000",
    "\\ud800",
    " by ",
    "@acme.com",
    "User ",
    " created",
    "1714554902123",
];

/// One window: pages of records (as JSON text), the range to keep, and which normalizer.
#[derive(Clone)]
struct Window {
    pages: Vec<Vec<String>>,
    keep: Option<Range<i64>>,
    setup: usize,
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "setup {} ({}), keep {:?}",
            self.setup, SETUPS[self.setup].0, self.keep
        )?;
        for (page_idx, page) in self.pages.iter().enumerate() {
            writeln!(f, "page {page_idx}:")?;
            for record in page {
                writeln!(f, "  {record}")?;
            }
        }
        Ok(())
    }
}

impl Input for Window {
    /// A record seed holds one record or a JSON array of them.
    fn to_seed(&self) -> Vec<u8> {
        let records: Vec<&String> = self.pages.iter().flatten().collect();
        match records.as_slice() {
            [record] => format!("{record}\n"),
            records => format!(
                "[\n{}\n]\n",
                records
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",\n")
            ),
        }
        .into_bytes()
    }
}

/// The normalizers a window runs under: name, `[events]` and the configured account.
type Setup = (&'static str, fn() -> EventsConfig, Option<&'static str>);

const SETUPS: [Setup; 5] = [
    ("lifecycle", EventsConfig::default, None),
    ("all", all_events, Some("acme")),
    (
        "lifecycle with rules",
        lifecycle_with_rules,
        Some("ÄCME-日本"),
    ),
    (
        "all with a rule matching everything",
        all_with_catch_all,
        None,
    ),
    (
        "lifecycle with a rule matching empty text",
        lifecycle_with_empty_rule,
        None,
    ),
];

fn all_events() -> EventsConfig {
    EventsConfig {
        include: Include::All,
        rules: vec![],
        builtin_rules: true,
    }
}

fn lifecycle_with_rules() -> EventsConfig {
    let rule = |event_type, pattern: &str, fields| RuleConfig {
        event_type,
        pattern: pattern.to_string(),
        fields,
    };
    EventsConfig {
        include: Include::Lifecycle,
        rules: vec![
            rule(
                EventType::UserCreated,
                "^member onboarded$",
                vec![Field::UserAction],
            ),
            rule(
                EventType::ApiKeyDeleted,
                "key (?:gone|retired)",
                Field::all(),
            ),
            rule(
                EventType::UserLogin,
                "ü|日本|\u{202e}",
                vec![Field::EventDescription],
            ),
        ],
        builtin_rules: true,
    }
}

fn all_with_catch_all() -> EventsConfig {
    EventsConfig {
        include: Include::All,
        rules: vec![RuleConfig {
            event_type: EventType::UserDisabled,
            pattern: ".".to_string(),
            fields: vec![Field::EventName],
        }],
        builtin_rules: true,
    }
}

fn lifecycle_with_empty_rule() -> EventsConfig {
    EventsConfig {
        include: Include::Lifecycle,
        rules: vec![RuleConfig {
            event_type: EventType::UserRoleChanged,
            pattern: "^$".to_string(),
            fields: Field::all(),
        }],
        // The empty table: only this rule classifies.
        builtin_rules: false,
    }
}

#[test]
fn record_normalizer_never_panics_and_gives_stable_unique_ids() {
    harness::on_large_stack(fuzz_target);
}

/// The target's body, on a thread of its own (see `harness::on_large_stack`).
fn fuzz_target() {
    let normalizers: Vec<Normalizer> = SETUPS
        .iter()
        .map(|(name, events, account)| {
            let events = events();
            events
                .validate()
                .unwrap_or_else(|error| panic!("{name}: {error}"));
            Normalizer::new(&events, account.map(str::to_string)).expect("rules compile")
        })
        .collect();
    let seeds = harness::corpus(TARGET.name);
    // Records of the page corpus count as record seeds too.
    let page_records = harness::corpus("audit_logs_page")
        .into_iter()
        .filter_map(|seed| AuditLogPage::decode(&seed.bytes).ok())
        .flat_map(|page| page.records)
        .map(|raw| raw.get().to_string());
    let mut records: Vec<String> = seeds.iter().flat_map(seed_records).collect();
    records.extend(page_records);
    let record_bytes = Arc::new(records.iter().map(|r| r.as_bytes().to_vec()).collect());
    let record_values = Arc::new(
        records
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(r).ok())
            .collect::<Vec<_>>(),
    );
    let record = prop_oneof![
        4 => json::audit_record(),
        2 => select(records.clone()),
        2 => mutate::mutated(record_bytes, TOKENS)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        2 => mutate::json_mutated(record_values).prop_map(|value| value.to_string()),
    ];
    // Some records repeat within a window: identical records must still get distinct ids.
    let page = (vec(record, 0..6), vec(any::<Index>(), 0..3)).prop_map(|(mut page, repeats)| {
        if !page.is_empty() {
            for repeat in repeats {
                page.push(repeat.get(&page).clone());
            }
        }
        page
    });
    let keep = prop_oneof![
        2 => Just(None),
        4 => (-20_000i64..20_000, 0i64..20_000)
            .prop_map(|(start, len)| Some(T0_MS + start..T0_MS + start + len)),
        1 => (any::<i64>(), any::<i64>()).prop_map(|(start, end)| Some(start..end)),
    ];
    let strategy = (vec(page, 1..4), keep, 0..SETUPS.len())
        .prop_map(|(pages, keep, setup)| Window { pages, keep, setup });
    let as_is: Vec<_> = seeds
        .iter()
        .flat_map(|seed| {
            let records = seed_records(seed);
            (0..SETUPS.len()).flat_map(move |setup| {
                [None, Some(T0_MS - 1_000..T0_MS + 1_000)].map(|keep| {
                    let window = Window {
                        pages: vec![records.clone()],
                        keep,
                        setup,
                    };
                    (seed.path.clone(), window)
                })
            })
        })
        .collect();
    harness::fuzz(&TARGET, &as_is, strategy, |window| {
        check(&normalizers[window.setup], window)
    });
}

/// The records of a seed file: one record, or a JSON array of records.
fn seed_records(seed: &harness::Seed) -> Vec<String> {
    let text = String::from_utf8_lossy(&seed.bytes);
    match serde_json::from_str::<Vec<Box<RawValue>>>(&text) {
        Ok(records) => records.iter().map(|r| r.get().to_string()).collect(),
        Err(_) => vec![text.trim().to_string()],
    }
}

/// The properties of one window.
fn check(normalizer: &Normalizer, window: &Window) -> Result<(), TestCaseError> {
    let pages = decode_pages(&window.pages)?;
    let keep = window.keep.as_ref();
    let (_, events_config, account) = SETUPS[window.setup];
    let include_all = events_config().include == Include::All;

    let mut window_state = WindowState::default();
    let mut seen_ids = HashSet::new();
    let mut all_events: Vec<LifecycleEvent> = Vec::new();
    for page in &pages {
        let normalized = normalizer.normalize_page(page.clone(), keep, &mut window_state);
        let n_records = page.records.len();
        prop_assert_eq!(normalized.n_records, n_records);
        prop_assert_eq!(normalized.total_rows, page.total_rows);
        prop_assert!(
            normalized.events.len() + normalized.n_outside <= n_records,
            "{} events and {} outside from {n_records} records",
            normalized.events.len(),
            normalized.n_outside
        );
        if include_all {
            prop_assert_eq!(
                normalized.events.len() + normalized.n_outside,
                n_records,
                "include = all emits every record kept"
            );
        }
        if keep.is_none() {
            prop_assert_eq!(normalized.n_outside, 0);
        }
        for event in &normalized.events {
            prop_assert!(
                seen_ids.insert(event.id),
                "the id {} is given twice in one window",
                event.id
            );
            check_event(event, keep, include_all, account)?;
            // The verdicts cached by record shape change nothing: the record classified alone,
            // in full, gets the same type and target.
            let explained = normalizer.explain(&event.raw);
            prop_assert_eq!(
                (event.event_type, &event.target),
                (explained.event_type, &explained.target),
                "classified by shape differently from in full: {}",
                event.raw.get()
            );
        }
        all_events.extend(normalized.events);
    }

    // Reading the window again, with fresh ids, gives the same events: ids are stable.
    let mut again_state = WindowState::default();
    let again: Vec<LifecycleEvent> = pages
        .iter()
        .flat_map(|page| {
            normalizer
                .normalize_page(page.clone(), keep, &mut again_state)
                .events
        })
        .collect();
    prop_assert_eq!(lines(&all_events), lines(&again), "a re-read differs");
    Ok(())
}

/// Every record that is a JSON object becomes part of a page; pages decode as a whole.
fn decode_pages(pages: &[Vec<String>]) -> Result<Vec<AuditLogPage>, TestCaseError> {
    pages
        .iter()
        .map(|records| {
            let objects: Vec<&str> = records
                .iter()
                .filter_map(|text| serde_json::from_str::<&RawValue>(text).ok())
                .map(RawValue::get)
                .filter(|text| text.starts_with('{'))
                .collect();
            let body = format!(r#"{{"data":[{}]}}"#, objects.join(","));
            let page = AuditLogPage::decode(body.as_bytes()).map_err(|error| {
                TestCaseError::fail(format!("a page of valid records is refused: {error}"))
            })?;
            prop_assert_eq!(page.records.len(), objects.len());
            Ok(page)
        })
        .collect()
}

/// The properties of one event against the record it came from.
fn check_event(
    event: &LifecycleEvent,
    keep: Option<&Range<i64>>,
    include_all: bool,
    account: Option<&str>,
) -> Result<(), TestCaseError> {
    let record = AuditLog::parse(&event.raw).unwrap_or_default();
    prop_assert_eq!(event.time, record.created_ms());
    if let (Some(keep), Some(time)) = (keep, event.time) {
        prop_assert!(keep.contains(&time), "{time} is outside {keep:?}");
    }
    if !include_all {
        prop_assert!(event.event_type.is_lifecycle());
    }
    // The documented text fields reach the event as sent (the view keeps the last of repeated
    // keys, as `Value` does). A record holding a number beyond f64 has no `Value`.
    if let Ok(value) = serde_json::from_str::<Value>(event.raw.get()) {
        let string = |key: &str| value.get(key).and_then(Value::as_str);
        let absent = |key: &str| value.get(key).is_none_or(Value::is_null);
        for (key, got) in [
            ("userAction", &event.action),
            ("eventDescription", &event.description),
            ("userName", &event.actor),
        ] {
            if let Some(sent) = string(key) {
                prop_assert_eq!(got.as_deref(), Some(sent), "{} is not carried over", key);
            } else if absent(key) {
                prop_assert_eq!(got, &None, "{} is made up", key);
            }
        }
        if let Some(sent) = string("accountName") {
            prop_assert_eq!(event.account.as_deref(), Some(sent));
        } else if absent("accountName") {
            prop_assert_eq!(
                event.account.as_deref(),
                account,
                "the configured account fills in"
            );
        }
    }
    let mut line = Vec::new();
    event.write_json_line(&mut line);
    let line = String::from_utf8(line)
        .map_err(|error| TestCaseError::fail(format!("the event line is no UTF-8: {error}")))?;
    prop_assert!(
        line.ends_with(&format!(",\"raw\":{}}}\n", event.raw.get())),
        "raw is not kept verbatim at the end of one line: {line}"
    );
    prop_assert_eq!(line.matches('\n').count(), 1, "one line per event");
    if serde_json::from_str::<Value>(event.raw.get()).is_ok() {
        prop_assert!(
            serde_json::from_str::<Value>(&line).is_ok(),
            "the event line is no JSON: {line}"
        );
    }
    let id = event.id.to_string();
    prop_assert!(
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "id {}",
        id
    );
    Ok(())
}

fn lines(events: &[LifecycleEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            let mut line = Vec::new();
            event.write_json_line(&mut line);
            String::from_utf8_lossy(&line).into_owned()
        })
        .collect()
}
