//! Each format checked against its owner's reference, not against our reading of it: OCSF
//! events against OCSF's 1.8.0 JSON Schemas, ECS documents against ECS's field list and
//! allowed values (both committed under `tests/fixtures`).

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::*;
use crate::event::{EventType, Source};
use crate::sinks::testing::event;

/// Every type, from both sources, with and without actor, target and time.
fn samples() -> Vec<LifecycleEvent> {
    let mut samples = Vec::new();
    for (n, event_type) in EventType::ALL.into_iter().enumerate() {
        for source in [Source::Audit, Source::Reconcile] {
            let full = LifecycleEvent {
                event_type,
                source,
                raw: RawValue::from_string(
                    r#"{"accountName":"ACME","eventName":"x","userName":"admin@acme.com"}"#.into(),
                )
                .unwrap(),
                ..event(n as u32)
            };
            let bare = LifecycleEvent {
                actor: None,
                target: None,
                time: None,
                account: None,
                action: None,
                description: None,
                ..full.clone()
            };
            // A name OCSF's email pattern refuses must stay a plain name.
            let odd = LifecycleEvent {
                actor: Some("svc ci (automation)".into()),
                target: Some("bob@localhost".into()),
                ..full.clone()
            };
            samples.extend([full, bare, odd]);
        }
    }
    samples
}

fn encoded(format: EventFormat, event: &LifecycleEvent) -> Value {
    let mut out = Vec::new();
    encode(format, event, &mut out);
    serde_json::from_slice(&out).expect("the encoding is one JSON value")
}

fn ocsf_validator(class_uid: u64) -> jsonschema::Validator {
    let text = match class_uid {
        3001 => include_str!("../../tests/fixtures/ocsf-1.8.0/account_change.json"),
        3002 => include_str!("../../tests/fixtures/ocsf-1.8.0/authentication.json"),
        3004 => include_str!("../../tests/fixtures/ocsf-1.8.0/entity_management.json"),
        other => panic!("no OCSF schema fixture for class {other}"),
    };
    let schema: Value = serde_json::from_str(text).unwrap();
    jsonschema::validator_for(&schema).expect("the OCSF schema compiles")
}

#[test]
fn ocsf_events_validate_against_the_1_8_0_schemas() {
    let validators: BTreeMap<u64, jsonschema::Validator> = [3001, 3002, 3004]
        .into_iter()
        .map(|uid| (uid, ocsf_validator(uid)))
        .collect();
    let mut classes_seen = BTreeMap::new();
    for event in samples() {
        let doc = encoded(EventFormat::Ocsf, &event);
        let class_uid = doc["class_uid"].as_u64().expect("class_uid");
        *classes_seen.entry(class_uid).or_insert(0) += 1;
        let errors: Vec<String> = validators[&class_uid]
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} ({:?}) is not valid OCSF 1.8.0: {errors:#?}\n{doc:#}",
            event.event_type,
            event.source
        );
        // JSON Schema checks the enum, not the formula (formats.md §3.6).
        let activity_id = doc["activity_id"].as_u64().unwrap();
        assert_eq!(
            doc["type_uid"].as_u64().unwrap(),
            class_uid * 100 + activity_id,
            "{doc}"
        );
        assert_eq!(doc["category_uid"], 3);
        assert_eq!(doc["metadata"]["uid"], event.id.to_string());
        assert_eq!(doc["metadata"]["version"], "1.8.0");
        assert_eq!(doc["metadata"]["event_code"], event.event_type.as_str());
        assert_eq!(doc["raw_data"], event.raw.get());
        if let Some(time) = event.time {
            assert_eq!(doc["time"], time);
        }
    }
    assert_eq!(classes_seen.len(), 3, "{classes_seen:?}");
}

#[test]
fn ocsf_activities_follow_the_lifecycle_type() {
    let check = |event_type, class_uid, activity_id| {
        let doc = encoded(
            EventFormat::Ocsf,
            &LifecycleEvent {
                event_type,
                ..event(0)
            },
        );
        assert_eq!(
            (doc["class_uid"].as_u64(), doc["activity_id"].as_u64()),
            (Some(class_uid), Some(activity_id)),
            "{event_type}"
        );
    };
    check(EventType::UserCreated, 3001, 1);
    check(EventType::UserEnabled, 3001, 2);
    check(EventType::UserDisabled, 3001, 5);
    check(EventType::UserDeleted, 3001, 6);
    check(EventType::UserRoleChanged, 3001, 99);
    check(EventType::ApiKeyCreated, 3001, 1);
    check(EventType::ApiKeyEnabled, 3001, 2);
    check(EventType::ApiKeyDisabled, 3001, 5);
    check(EventType::ApiKeyDeleted, 3001, 6);
    check(EventType::UserLogin, 3002, 1);
    check(EventType::Audit, 3004, 99);
    // The user acted upon is the target, never the actor.
    let doc = encoded(EventFormat::Ocsf, &event(7));
    assert_eq!(doc["user"]["name"], "user7@acme.com");
    assert_eq!(doc["actor"]["user"]["name"], "admin@acme.com");
}

/// `a.b.c` paths of every leaf (arrays count as leaves) of an object.
fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(child, &path, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

#[test]
fn ecs_documents_use_only_ecs_fields_and_allowed_values() {
    let reference: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/ecs/fields-9.4.0.json")).unwrap();
    assert_eq!(reference["ecs_version"], ecs::ECS_VERSION);
    let fields = reference["fields"].as_object().unwrap();
    let allowed = |field: &str| -> Vec<String> {
        fields[field]["allowed_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let strings = |value: &Value| -> Vec<String> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            Value::String(text) => vec![text.clone()],
            other => panic!("not a keyword: {other}"),
        }
    };
    for event in samples() {
        let doc = encoded(EventFormat::Ecs, &event);
        let mut flat = BTreeMap::new();
        leaves(&doc, "", &mut flat);
        for (path, value) in &flat {
            if path.starts_with("lacework.") {
                continue; // our own namespace, as integrations keep theirs
            }
            let field = fields
                .get(path)
                .unwrap_or_else(|| panic!("{path} is not an ECS {} field", ecs::ECS_VERSION));
            let is_array = fields[path]["normalize"]
                .as_array()
                .is_some_and(|n| n.iter().any(|v| v == "array"));
            assert_eq!(
                value.is_array(),
                is_array,
                "{path}: array or not as ECS says"
            );
            if field.get("allowed_values").is_some() {
                for item in strings(value) {
                    assert!(
                        allowed(path).contains(&item),
                        "{path} = {item:?} is not allowed"
                    );
                }
            }
        }
        // Each category's expected event types (ECS's categorization rules).
        let types = strings(&doc["event"]["type"]);
        for category in doc["event"]["category"].as_array().into_iter().flatten() {
            let expected =
                &fields["event.category"]["expected_event_types"][category.as_str().unwrap()];
            for t in &types {
                assert!(
                    expected.as_array().unwrap().iter().any(|e| e == t),
                    "{}: event.type {t} is not expected with category {category}",
                    event.event_type
                );
            }
        }
        assert_eq!(doc["event"]["id"], event.id.to_string());
        assert_eq!(doc["event"]["original"], event.raw.get());
        assert_eq!(doc["event"]["kind"], "event");
        match event.time {
            Some(_) => assert!(doc["@timestamp"].as_str().unwrap().ends_with('Z')),
            None => assert!(doc.get("@timestamp").is_none()),
        }
    }
}

#[test]
fn ecs_puts_the_actor_and_the_target_where_elastic_integrations_do() {
    let doc = encoded(EventFormat::Ecs, &event(3));
    assert_eq!(doc["user"]["name"], "admin@acme.com");
    assert_eq!(doc["user"]["target"]["name"], "user3@acme.com");
    assert_eq!(doc["event"]["category"], serde_json::json!(["iam"]));
    assert_eq!(
        doc["event"]["type"],
        serde_json::json!(["user", "creation"])
    );
    assert_eq!(doc["event"]["action"], "user-created");
    assert_eq!(doc["@timestamp"], "2026-11-01T09:15:02.126Z");
}

#[test]
fn json_is_the_stdout_line() {
    let event = event(1);
    let mut line = Vec::new();
    event.write_json_line(&mut line);
    let mut out = Vec::new();
    encode_line(EventFormat::Json, &event, &mut out);
    assert_eq!(out, line);
    let mut out = Vec::new();
    encode(EventFormat::Json, &event, &mut out);
    assert_eq!(out, &line[..line.len() - 1]);
    for format in [EventFormat::Ocsf, EventFormat::Ecs] {
        let mut out = Vec::new();
        encode_line(format, &event, &mut out);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(out.last(), Some(&b'\n'));
    }
}

#[test]
fn schema_names_carry_the_versions() {
    assert_eq!(ocsf::SCHEMA_NAME, format!("ocsf/{}", ocsf::OCSF_VERSION));
    assert_eq!(ecs::SCHEMA_NAME, format!("ecs/{}", ecs::ECS_VERSION));
}
