//! Reconciliation: the lifecycle changes between two snapshots of an account's user
//! inventory, as events with `source = "reconcile"`. An independent source: it catches what
//! the audit-log rules miss (a wording no rule knows, a record Lacework never wrote).

use std::collections::BTreeMap;

use serde_json::json;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::event::{EventType, LifecycleEvent, RecordId, SCHEMA, Source};
use crate::lacework::InventoryUser;

/// The events that take `before` to `after`. `before_ms` (when the earlier snapshot was
/// taken) goes into the ids, so reading the same change again before the new snapshot is
/// saved gives the same ids; `now_ms` is the events' time.
pub(crate) fn changes(
    account: Option<&str>,
    before: &[InventoryUser],
    before_ms: i64,
    after: &[InventoryUser],
    now_ms: i64,
) -> Vec<LifecycleEvent> {
    let before: BTreeMap<&str, &InventoryUser> =
        before.iter().map(|u| (u.guid.as_str(), u)).collect();
    let after: BTreeMap<&str, &InventoryUser> =
        after.iter().map(|u| (u.guid.as_str(), u)).collect();
    let mut events = Vec::new();
    let mut emit = |event_type: EventType, user: &InventoryUser, detail: String| {
        let raw = json!({
            "source": "reconcile",
            "userGuid": user.guid,
            "user": user.name,
            "change": detail,
            "before": before.get(user.guid.as_str()),
            "after": after.get(user.guid.as_str()),
        });
        events.push(LifecycleEvent {
            schema: SCHEMA,
            id: change_id(account, event_type, &user.guid, &detail, before_ms),
            event_type,
            time: Some(now_ms),
            account: account.map(str::to_string),
            actor: None,
            target: Some(user.name.clone()),
            action: Some("Reconciled with the user inventory".into()),
            description: Some(detail),
            source: Source::Reconcile,
            raw: RawValue::from_string(raw.to_string()).expect("JSON text is JSON"),
        });
    };
    for (guid, new) in &after {
        let Some(old) = before.get(guid) else {
            emit(
                EventType::UserCreated,
                new,
                format!("user {} appeared", new.name),
            );
            for key in new.api_keys.keys() {
                emit(
                    EventType::ApiKeyCreated,
                    new,
                    format!("API key {key} of {} appeared", new.name),
                );
            }
            continue;
        };
        if old.enabled && !new.enabled {
            emit(
                EventType::UserDisabled,
                new,
                format!("user {} disabled", new.name),
            );
        } else if !old.enabled && new.enabled {
            emit(
                EventType::UserEnabled,
                new,
                format!("user {} enabled", new.name),
            );
        }
        if old.groups != new.groups {
            let list = |u: &InventoryUser| u.groups.iter().cloned().collect::<Vec<_>>().join(", ");
            emit(
                EventType::UserRoleChanged,
                new,
                format!(
                    "groups of {} changed from [{}] to [{}]",
                    new.name,
                    list(old),
                    list(new)
                ),
            );
        }
        for (key, status) in &new.api_keys {
            match old.api_keys.get(key) {
                None => emit(
                    EventType::ApiKeyCreated,
                    new,
                    format!("API key {key} of {} appeared", new.name),
                ),
                Some(was) if was != status => {
                    let event_type = if is_active(status) {
                        EventType::ApiKeyEnabled
                    } else {
                        EventType::ApiKeyDisabled
                    };
                    emit(
                        event_type,
                        new,
                        format!("API key {key} of {} went from {was} to {status}", new.name),
                    );
                }
                Some(_) => {}
            }
        }
        for key in old
            .api_keys
            .keys()
            .filter(|k| !new.api_keys.contains_key(*k))
        {
            emit(
                EventType::ApiKeyDeleted,
                new,
                format!("API key {key} of {} disappeared", new.name),
            );
        }
    }
    for (guid, old) in &before {
        if !after.contains_key(guid) {
            emit(
                EventType::UserDeleted,
                old,
                format!("user {} disappeared", old.name),
            );
        }
    }
    events
}

/// Whether an API key status means usable.
fn is_active(status: &str) -> bool {
    matches!(status, "active" | "enabled" | "1" | "true")
}

/// A change's id: stable for the same change against the same earlier snapshot.
fn change_id(
    account: Option<&str>,
    event_type: EventType,
    guid: &str,
    detail: &str,
    before_ms: i64,
) -> RecordId {
    let mut hasher = Sha256::new();
    for part in [
        "reconcile",
        account.unwrap_or(""),
        event_type.as_str(),
        guid,
        detail,
        &before_ms.to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    RecordId(digest[..16].try_into().expect("16 bytes"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn user(
        guid: &str,
        name: &str,
        enabled: bool,
        groups: &[&str],
        keys: &[(&str, &str)],
    ) -> InventoryUser {
        InventoryUser {
            guid: guid.into(),
            name: name.into(),
            enabled,
            groups: groups
                .iter()
                .map(|g| g.to_string())
                .collect::<BTreeSet<_>>(),
            api_keys: keys
                .iter()
                .map(|(k, s)| (k.to_string(), s.to_string()))
                .collect(),
        }
    }

    #[test]
    fn every_kind_of_change_becomes_one_event_about_the_user() {
        let before = [
            user("1", "stays@acme.com", true, &["Admin"], &[]),
            user("2", "goes@acme.com", true, &[], &[]),
            user("3", "disabled@acme.com", true, &[], &[]),
            user("4", "enabled@acme.com", false, &[], &[]),
            user("5", "promoted@acme.com", true, &["Read-only"], &[]),
            user(
                "6",
                "svc-ci",
                true,
                &[],
                &[("K1", "active"), ("K2", "active"), ("K3", "inactive")],
            ),
        ];
        let after = [
            user("1", "stays@acme.com", true, &["Admin"], &[]),
            user("3", "disabled@acme.com", false, &[], &[]),
            user("4", "enabled@acme.com", true, &[], &[]),
            user("5", "promoted@acme.com", true, &["Admin"], &[]),
            user(
                "6",
                "svc-ci",
                true,
                &[],
                &[("K1", "inactive"), ("K3", "active"), ("K4", "active")],
            ),
            user("7", "new@acme.com", true, &[], &[]),
        ];
        let events = changes(Some("ACME"), &before, 1_000, &after, 2_000);
        let mut got: Vec<(EventType, String)> = events
            .iter()
            .map(|e| (e.event_type, e.target.clone().unwrap()))
            .collect();
        got.sort();
        let mut want = vec![
            (EventType::UserDeleted, "goes@acme.com".to_string()),
            (EventType::UserDisabled, "disabled@acme.com".into()),
            (EventType::UserEnabled, "enabled@acme.com".into()),
            (EventType::UserRoleChanged, "promoted@acme.com".into()),
            (EventType::ApiKeyDisabled, "svc-ci".into()),
            (EventType::ApiKeyDeleted, "svc-ci".into()),
            (EventType::ApiKeyEnabled, "svc-ci".into()),
            (EventType::ApiKeyCreated, "svc-ci".into()),
            (EventType::UserCreated, "new@acme.com".into()),
        ];
        want.sort();
        assert_eq!(got, want);
        assert!(events.iter().all(|e| e.source == Source::Reconcile));
        // The same change against the same earlier snapshot has the same id.
        let again = changes(Some("ACME"), &before, 1_000, &after, 9_999);
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            again.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        assert!(changes(Some("ACME"), &after, 1_000, &after, 2_000).is_empty());
    }
}
