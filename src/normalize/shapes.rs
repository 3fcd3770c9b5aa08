//! Verdicts by record shape: most audit records share a handful of `(eventType, userAction,
//! eventName)` combinations, and the rule table's verdict on those fields is the same for
//! every record of a combination. Remembering it spares the summary rules per record; what
//! depends on the description is still read per record (`Classifier::classify_by_shape`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use crate::lacework::AuditLog;
use crate::normalize::classify::{Classifier, ShapeVerdict};

/// Shapes one cache remembers. Lacework's summaries are a closed vocabulary of a few hundred
/// at most; past this many (a tenant whose summaries carry names, say) the verdicts of new
/// shapes are computed each time instead of growing the map.
const MAX_SHAPES: usize = 4096;

/// A shape's fields, owned.
#[derive(Debug, PartialEq, Eq)]
struct ShapeKey {
    event_type: Option<Box<str>>,
    user_action: Option<Box<str>>,
    event_name: Option<Box<str>>,
}

impl ShapeKey {
    fn of(record: &AuditLog<'_>) -> ShapeKey {
        let owned = |field: &Option<std::borrow::Cow<'_, str>>| field.as_deref().map(Box::from);
        ShapeKey {
            event_type: owned(&record.event_type),
            user_action: owned(&record.user_action),
            event_name: owned(&record.event_name),
        }
    }

    fn matches(&self, record: &AuditLog<'_>) -> bool {
        self.event_type.as_deref() == record.event_type.as_deref()
            && self.user_action.as_deref() == record.user_action.as_deref()
            && self.event_name.as_deref() == record.event_name.as_deref()
    }
}

/// The verdicts of the shapes one normalize worker has seen. Keyed by a hash of the borrowed
/// fields, so a lookup allocates nothing; the key is compared in full on a hit, and a shape
/// whose hash another shape holds is simply not cached.
#[derive(Debug, Default)]
pub(crate) struct ShapeCache {
    hasher: RandomState,
    verdicts: HashMap<u64, (ShapeKey, ShapeVerdict)>,
}

impl ShapeCache {
    /// The verdict of the record's shape, computed on its first sighting.
    pub(crate) fn verdict(
        &mut self,
        classifier: &Classifier,
        record: &AuditLog<'_>,
    ) -> ShapeVerdict {
        let hash = self.hash(record);
        if let Some((key, verdict)) = self.verdicts.get(&hash)
            && key.matches(record)
        {
            return verdict.clone();
        }
        let verdict = classifier.shape_verdict(record);
        if self.verdicts.len() < MAX_SHAPES && !self.verdicts.contains_key(&hash) {
            self.verdicts
                .insert(hash, (ShapeKey::of(record), verdict.clone()));
        }
        verdict
    }

    fn hash(&self, record: &AuditLog<'_>) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        record.event_type.as_deref().hash(&mut hasher);
        record.user_action.as_deref().hash(&mut hasher);
        record.event_name.as_deref().hash(&mut hasher);
        hasher.finish()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.verdicts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    use crate::event::EventType;

    fn record<'a>(action: &'a str, name: &'a str) -> AuditLog<'a> {
        AuditLog {
            user_action: Some(Cow::Borrowed(action)),
            event_name: Some(Cow::Borrowed(name)),
            ..AuditLog::default()
        }
    }

    #[test]
    fn one_verdict_per_shape_and_the_cap_holds() {
        let classifier = Classifier::new(&[], true).unwrap();
        let mut cache = ShapeCache::default();
        let created = record("User Created", "User");
        for _ in 0..3 {
            assert_eq!(
                cache.verdict(&classifier, &created),
                ShapeVerdict::Type {
                    event_type: EventType::UserCreated,
                    captured: None,
                    unless_failed: true
                }
            );
        }
        assert_eq!(
            cache.verdict(
                &classifier,
                &record("Alert Channel Created", "Alert Channel")
            ),
            ShapeVerdict::Audit
        );
        assert_eq!(cache.len(), 2);
        let names: Vec<String> = (0..MAX_SHAPES + 10).map(|i| format!("Thing {i}")).collect();
        for name in &names {
            assert_eq!(
                cache.verdict(&classifier, &record(name, "Thing")),
                ShapeVerdict::Audit
            );
        }
        assert_eq!(cache.len(), MAX_SHAPES);
        // A shape past the cap still gets its verdict, computed afresh.
        assert_eq!(
            cache.verdict(&classifier, &record("User Deleted", "User")),
            ShapeVerdict::Type {
                event_type: EventType::UserDeleted,
                captured: None,
                unless_failed: true
            }
        );
    }
}
