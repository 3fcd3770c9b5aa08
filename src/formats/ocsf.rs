//! OCSF 1.8.0 (the latest release; `../shared/formats.md` §3). User and API-key lifecycle
//! events are Account Change (3001), logins Authentication (3002), any other audit record
//! Entity Management (3004) with activity Other: Lacework's audit log is what a management
//! console records, and nothing in such a record says more than that.
//!
//! Choices the schema leaves open, so consumers can rely on them:
//! - A role change is Account Change activity 99 (Other, named "Role Change"): 1.8.0 has no
//!   role activity, and the record does not say whether a role was granted or taken away
//!   (which Attach/Detach Policy would claim). 1.9.0's User Management class adds one.
//! - API-key events share the user activities (Create, Delete, Enable, Disable) and are told
//!   apart by `metadata.event_code` (`API_KEY_CREATED`, ...), which every event carries.
//! - `user` is required: the user acted upon (`target`); the actor for a login; `unknown`
//!   when the record names nobody (OCSF allows no null).
//! - `time` is required: an event without a readable time gets the time it was encoded, and
//!   `metadata.original_time` is then absent.

use serde_json::{Map, Value, json};

use crate::event::{EventType, LifecycleEvent, Source};
use crate::time::format_time_ms;

/// `metadata.version`.
pub const OCSF_VERSION: &str = "1.8.0";

/// The schema name of the format, `ocsf/1.8.0` (kept next to the version it repeats).
pub const SCHEMA_NAME: &str = "ocsf/1.8.0";

/// An OCSF class and activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// `class_uid`.
    pub class_uid: u32,
    /// `class_name`.
    pub class_name: &'static str,
    /// `activity_id`.
    pub activity_id: u32,
    /// `activity_name`.
    pub activity_name: &'static str,
}

impl Activity {
    /// `type_uid = class_uid * 100 + activity_id` (OCSF's dictionary).
    pub fn type_uid(self) -> u32 {
        self.class_uid * 100 + self.activity_id
    }
}

const ACCOUNT_CHANGE: u32 = 3001;
const AUTHENTICATION: u32 = 3002;
const ENTITY_MANAGEMENT: u32 = 3004;

/// The class and activity of each event type.
pub fn activity(event_type: EventType) -> Activity {
    let account_change = |activity_id, activity_name| Activity {
        class_uid: ACCOUNT_CHANGE,
        class_name: "Account Change",
        activity_id,
        activity_name,
    };
    match event_type {
        EventType::UserCreated | EventType::ApiKeyCreated => account_change(1, "Create"),
        EventType::UserEnabled | EventType::ApiKeyEnabled => account_change(2, "Enable"),
        EventType::UserDisabled | EventType::ApiKeyDisabled => account_change(5, "Disable"),
        EventType::UserDeleted | EventType::ApiKeyDeleted => account_change(6, "Delete"),
        EventType::UserRoleChanged => account_change(99, "Role Change"),
        EventType::UserLogin => Activity {
            class_uid: AUTHENTICATION,
            class_name: "Authentication",
            activity_id: 1,
            activity_name: "Logon",
        },
        EventType::Audit => Activity {
            class_uid: ENTITY_MANAGEMENT,
            class_name: "Entity Management",
            activity_id: 99,
            activity_name: "Other",
        },
    }
}

/// Appends the OCSF event of `event` to `out`.
pub fn encode(event: &LifecycleEvent, out: &mut Vec<u8>) {
    serde_json::to_writer(out, &document(event)).expect("a JSON value serializes");
}

/// The OCSF event of `event`.
pub fn document(event: &LifecycleEvent) -> Value {
    let activity = activity(event.event_type);
    let mut doc = Map::new();
    doc.insert("activity_id".into(), json!(activity.activity_id));
    doc.insert("activity_name".into(), json!(activity.activity_name));
    doc.insert("category_uid".into(), json!(3));
    doc.insert(
        "category_name".into(),
        json!("Identity & Access Management"),
    );
    doc.insert("class_uid".into(), json!(activity.class_uid));
    doc.insert("class_name".into(), json!(activity.class_name));
    doc.insert("type_uid".into(), json!(activity.type_uid()));
    doc.insert(
        "type_name".into(),
        json!(format!(
            "{}: {}",
            activity.class_name, activity.activity_name
        )),
    );
    doc.insert("severity_id".into(), json!(1));
    doc.insert("severity".into(), json!("Informational"));
    // The audit log records what was done, never an attempt that failed.
    doc.insert("status_id".into(), json!(1));
    doc.insert("status".into(), json!("Success"));
    let time = event
        .time
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    doc.insert("time".into(), json!(time));
    if let Some(description) = &event.description {
        doc.insert("message".into(), json!(description));
    }
    doc.insert("metadata".into(), metadata(event));
    if let Some(actor) = &event.actor {
        doc.insert("actor".into(), json!({ "user": user(actor) }));
    }
    match event.event_type {
        EventType::UserLogin => {
            let who = event.target.as_deref().or(event.actor.as_deref());
            doc.insert("user".into(), who.map_or_else(unknown_user, user));
            doc.insert("service".into(), json!({ "name": "Lacework FortiCNAPP" }));
        }
        EventType::Audit => {
            let name = [&event.action, &event.description]
                .into_iter()
                .flatten()
                .next()
                .map_or("Lacework audit record", String::as_str);
            doc.insert("entity".into(), json!({ "name": name }));
        }
        _ => {
            let who = event.target.as_deref();
            doc.insert("user".into(), who.map_or_else(unknown_user, user));
        }
    }
    doc.insert("unmapped".into(), unmapped(event));
    doc.insert("raw_data".into(), json!(event.raw.get()));
    Value::Object(doc)
}

fn metadata(event: &LifecycleEvent) -> Value {
    let feature = match event.source {
        Source::Audit => "AuditLogs",
        Source::Reconcile => "TeamUsers",
    };
    let mut metadata = Map::new();
    metadata.insert("version".into(), json!(OCSF_VERSION));
    metadata.insert(
        "product".into(),
        json!({
            "name": "Lacework FortiCNAPP",
            "vendor_name": "Fortinet",
            "feature": { "name": feature },
        }),
    );
    metadata.insert("uid".into(), json!(event.id.to_string()));
    metadata.insert("event_code".into(), json!(event.event_type.as_str()));
    metadata.insert("log_name".into(), json!(feature));
    if let Some(original) = event.time.and_then(format_time_ms) {
        metadata.insert("original_time".into(), json!(original));
    }
    if let Some(account) = &event.account {
        metadata.insert("tenant_uid".into(), json!(account));
    }
    Value::Object(metadata)
}

fn user(name: &str) -> Value {
    let mut user = Map::new();
    user.insert("name".into(), json!(name));
    if looks_like_email(name) {
        user.insert("email_addr".into(), json!(name));
    }
    Value::Object(user)
}

fn unknown_user() -> Value {
    json!({ "name": "unknown", "type_id": 0, "type": "Unknown" })
}

/// Whether OCSF's `email_t` pattern accepts `text`:
/// `^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$` (where `+-/` is the
/// range `+ , - . /`). Anything else stays a `name` only.
fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let Some((host, rest)) = domain.split_once('.') else {
        return false;
    };
    let local_ok = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+,-./=?^_`{|}~".contains(c);
    let label_ok = |c: char| c.is_ascii_alphanumeric() || c == '-';
    !local.is_empty()
        && local.chars().all(local_ok)
        && !host.is_empty()
        && host.chars().all(label_ok)
        && !rest.is_empty()
        && rest.chars().all(|c| label_ok(c) || c == '.')
}

/// What OCSF has no attribute for: the exporter's own type and fields.
fn unmapped(event: &LifecycleEvent) -> Value {
    let mut unmapped = Map::new();
    unmapped.insert("type".into(), json!(event.event_type.as_str()));
    unmapped.insert(
        "source".into(),
        json!(match event.source {
            Source::Audit => "audit",
            Source::Reconcile => "reconcile",
        }),
    );
    unmapped.insert("schema".into(), json!(event.schema));
    if let Some(account) = &event.account {
        unmapped.insert("account".into(), json!(account));
    }
    if let Some(action) = &event.action {
        unmapped.insert("user_action".into(), json!(action));
    }
    json!({ "lacework": unmapped })
}
