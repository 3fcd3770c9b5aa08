//! The exporter's own API key: an audit record saying it was disabled or deleted is the last
//! warning before the token expires and every request is refused.

use crate::event::{EventType, LifecycleEvent};
use crate::time::format_time_ms;

/// Logs an ERROR and sets `lae_own_api_key_revoked` for each event of `batch` that disables
/// or deletes the key `key_id`. Returns how many there were.
pub(crate) fn watch(batch: &[LifecycleEvent], key_id: &str) -> usize {
    let mut found = 0;
    for event in batch.iter().filter(|event| names_own_key(event, key_id)) {
        found += 1;
        crate::metrics::emit::own_api_key_revoked(key_id);
        let what = if event.event_type == EventType::ApiKeyDeleted {
            "deleted"
        } else {
            "disabled"
        };
        tracing::error!(
            key_id,
            event.id = %event.id,
            event.time = %event.time.and_then(format_time_ms).unwrap_or_default(),
            actor = event.actor.as_deref().unwrap_or("unknown"),
            "The exporter's own API key was {what}: it stops working when its current token expires. Create a new key and put it in the configuration."
        );
    }
    found
}

/// Whether `event` disables or deletes the key `key_id` (named in its description or record).
fn names_own_key(event: &LifecycleEvent, key_id: &str) -> bool {
    if !matches!(
        event.event_type,
        EventType::ApiKeyDisabled | EventType::ApiKeyDeleted
    ) || key_id.trim().is_empty()
    {
        return false;
    }
    let key = key_id.to_ascii_lowercase();
    let mentions = |text: &str| text.to_ascii_lowercase().contains(&key);
    event.description.as_deref().is_some_and(mentions) || mentions(event.raw.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::testing::event;

    fn key_event(event_type: EventType, description: &str) -> LifecycleEvent {
        LifecycleEvent {
            event_type,
            description: Some(description.to_string()),
            ..event(0)
        }
    }

    #[test]
    fn only_disabling_or_deleting_our_own_key_counts() {
        let ours = "ACME_3F2A9C";
        let batch = [
            key_event(
                EventType::ApiKeyDeleted,
                "User a@acme.com deleted API key ACME_3F2A9C",
            ),
            key_event(
                EventType::ApiKeyDisabled,
                "API key acme_3f2a9c disabled by a@acme.com",
            ),
            key_event(
                EventType::ApiKeyDeleted,
                "User a@acme.com deleted API key ACME_OTHER",
            ),
            key_event(
                EventType::ApiKeyCreated,
                "User a@acme.com created API key ACME_3F2A9C",
            ),
            key_event(
                EventType::UserDeleted,
                "User a@acme.com deleted user ACME_3F2A9C",
            ),
        ];
        assert_eq!(watch(&batch, ours), 2);
        assert_eq!(
            crate::metrics::global().value("lae_own_api_key_revoked", &[("key_id", ours)]),
            Some(1.0)
        );
        assert_eq!(watch(&batch, ""), 0);
    }
}
