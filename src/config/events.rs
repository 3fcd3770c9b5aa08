//! The `[events]` section: which records are emitted and extra classification rules.

use serde::Deserialize;

use crate::config::ConfigError;
use crate::event::{EventType, Field};

/// Which records become events and how they are classified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// `lifecycle` (default) emits only classified lifecycle events; `all` also emits every
    /// other audit record with type `AUDIT`.
    #[serde(default)]
    pub include: Include,
    /// Extra classification rules, tried in order before the built-in ones.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Whether the built-in rule table is used after `rules`; `false` starts from an empty
    /// table (only `rules`, and a record's own `eventType`, classify).
    #[serde(default = "default_builtin_rules")]
    pub builtin_rules: bool,
}

fn default_builtin_rules() -> bool {
    true
}

/// Which records are emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Include {
    /// Only user and API-key lifecycle events.
    #[default]
    Lifecycle,
    /// Every record; unclassified ones get type `AUDIT`.
    All,
}

/// One user-defined classification rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The event type a match produces, e.g. `USER_CREATED`.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Regular expression (Rust `regex` syntax), matched case-insensitively. A named group
    /// `(?P<target>…)` is the user acted upon (the event's `target`).
    pub pattern: String,
    /// Record fields the pattern is tried on; default: `userAction`, `eventName`,
    /// `eventDescription`.
    #[serde(default = "Field::all")]
    pub fields: Vec<Field>,
}

impl Default for EventsConfig {
    fn default() -> EventsConfig {
        EventsConfig {
            include: Include::default(),
            rules: Vec::new(),
            builtin_rules: true,
        }
    }
}

impl EventsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (idx, rule) in self.rules.iter().enumerate() {
            if rule.event_type == EventType::Audit {
                return Err(ConfigError::invalid(
                    format!("events.rules[{idx}].type"),
                    "AUDIT is what unmatched records get; a rule must name a lifecycle type",
                ));
            }
            if let Err(error) = regex::RegexBuilder::new(&rule.pattern)
                .case_insensitive(true)
                .build()
            {
                return Err(ConfigError::invalid(
                    format!("events.rules[{idx}].pattern"),
                    format!("not a valid regular expression: {error}"),
                ));
            }
            if rule.fields.is_empty() {
                return Err(ConfigError::invalid(
                    format!("events.rules[{idx}].fields"),
                    "is empty: name at least one of userAction, eventName, eventDescription",
                ));
            }
        }
        Ok(())
    }
}
