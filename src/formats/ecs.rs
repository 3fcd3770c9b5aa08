//! The Elastic Common Schema view of an event, as Elastic's own Okta and GitHub integrations
//! write identity events: `event.kind`/`category`/`type` from ECS's allowed values,
//! `user.name` the actor, `user.target.name` the user acted upon, `event.original` the record
//! as received. Fields ECS has no place for live under `lacework.*`.

use serde_json::{Map, Value, json};

use crate::event::{EventType, LifecycleEvent, Source};
use crate::time::format_time_ms;

/// The ECS version the fields follow (`ecs.version`).
pub const ECS_VERSION: &str = "9.4.0";

/// The schema name of the format, `ecs/9.4.0` (kept next to the version it repeats).
pub const SCHEMA_NAME: &str = "ecs/9.4.0";

/// `event.category` and `event.type` of each event type (ECS allowed values only).
pub fn categorization(event_type: EventType) -> (&'static [&'static str], &'static [&'static str]) {
    match event_type {
        EventType::UserCreated => (&["iam"], &["user", "creation"]),
        EventType::UserDeleted => (&["iam"], &["user", "deletion"]),
        EventType::UserEnabled | EventType::UserDisabled => (&["iam"], &["user", "change"]),
        EventType::UserRoleChanged => (&["iam"], &["user", "change", "group"]),
        EventType::UserLogin => (&["authentication"], &["start"]),
        EventType::ApiKeyCreated => (&["iam"], &["creation"]),
        EventType::ApiKeyDeleted => (&["iam"], &["deletion"]),
        EventType::ApiKeyEnabled | EventType::ApiKeyDisabled => (&["iam"], &["change"]),
        // An audit record of unknown meaning: no category is claimed for it.
        EventType::Audit => (&[], &["info"]),
    }
}

/// `event.action`: the type in lower case with dashes, e.g. `user-created`.
pub fn action(event_type: EventType) -> String {
    event_type.as_str().to_ascii_lowercase().replace('_', "-")
}

/// Appends the ECS document of `event` to `out`.
pub fn encode(event: &LifecycleEvent, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &document(event)).expect("a JSON value serializes");
}

/// The ECS document of `event`.
pub fn document(event: &LifecycleEvent) -> Value {
    let (category, types) = categorization(event.event_type);
    let mut ecs_event = Map::new();
    ecs_event.insert("kind".into(), json!("event"));
    if !category.is_empty() {
        ecs_event.insert("category".into(), json!(category));
    }
    ecs_event.insert("type".into(), json!(types));
    ecs_event.insert("action".into(), json!(action(event.event_type)));
    if event.event_type.is_lifecycle() {
        ecs_event.insert("outcome".into(), json!("success"));
    }
    ecs_event.insert("id".into(), json!(event.id.to_string()));
    ecs_event.insert("provider".into(), json!("lacework"));
    ecs_event.insert("module".into(), json!("lacework"));
    ecs_event.insert("dataset".into(), json!("lacework.audit"));
    ecs_event.insert("original".into(), json!(event.raw.get()));

    let mut doc = Map::new();
    if let Some(time) = event.time.and_then(format_time_ms) {
        doc.insert("@timestamp".into(), json!(time));
    }
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert("event".into(), Value::Object(ecs_event));
    let mut user = Map::new();
    if let Some(actor) = &event.actor {
        user.insert("name".into(), json!(actor));
    }
    if let Some(target) = &event.target {
        user.insert("target".into(), json!({ "name": target }));
    }
    if !user.is_empty() {
        doc.insert("user".into(), Value::Object(user));
    }
    let related: Vec<&str> = [event.actor.as_deref(), event.target.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !related.is_empty() {
        doc.insert("related".into(), json!({ "user": related }));
    }
    if let Some(description) = &event.description {
        doc.insert("message".into(), json!(description));
    }
    if let Some(account) = &event.account {
        doc.insert("organization".into(), json!({ "name": account }));
    }
    doc.insert(
        "observer".into(),
        json!({ "vendor": "Fortinet", "product": "Lacework FortiCNAPP" }),
    );
    let mut lacework = Map::new();
    lacework.insert("type".into(), json!(event.event_type.as_str()));
    lacework.insert(
        "source".into(),
        json!(match event.source {
            Source::Audit => "audit",
            Source::Reconcile => "reconcile",
        }),
    );
    if let Some(account) = &event.account {
        lacework.insert("account".into(), json!(account));
    }
    if let Some(action) = &event.action {
        lacework.insert("user_action".into(), json!(action));
    }
    lacework.insert("schema".into(), json!(event.schema));
    doc.insert("lacework".into(), json!({ "audit": lacework }));
    Value::Object(doc)
}
