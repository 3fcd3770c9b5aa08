//! Classification: which lifecycle type, if any, an audit record is, and whom it is about.
//!
//! Lacework does not publish the wording of its audit records; the one real sample (its API
//! spec) names the actor first: "User info@example.com logged in to Lacework account using
//! OAuth credentials". So classification is a rule table of regular expressions, matched
//! case-insensitively, and when in doubt a record stays `AUDIT`. Precedence, highest first:
//! 1. a record whose own `eventType` field names one of our types keeps it;
//! 2. rules from `[[events.rules]]`, in file order (a `(?P<target>…)` group names the target);
//! 3. the built-in rules (unless `builtin_rules = false`), on one field only: `userAction`
//!    when present, else `eventName`, else `eventDescription`. A summary that matches no rule
//!    leaves the record `AUDIT`; the free text is never read to second-guess it. Built-in rules
//!    never classify a record whose summary or description speaks of failure.
//!
//! Description rules make a user event only when the object of the verb is a user or an API
//! key: "User admin@acme.com created user bob@acme.com" is `USER_CREATED` about bob, "User
//! admin@acme.com created alert channel soc" is `AUDIT`. The same patterns find the target of
//! an event classified from its summary; the actor (`userName`) is never the target, logins
//! aside.

use std::fmt;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::config::RuleConfig;
use crate::event::{EventType, Field};
use crate::lacework::AuditLog;

/// What decided a record's type, for `classify` and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The record's own `eventType` field.
    RecordType,
    /// `[[events.rules]]` entry number (from 0).
    UserRule(usize),
    /// A built-in rule on this field.
    Builtin(Field, &'static str),
    /// The summary or description speaks of failure.
    Failure,
    /// Nothing matched.
    Nothing,
}

impl fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchedBy::RecordType => f.write_str("record eventType"),
            MatchedBy::UserRule(idx) => write!(f, "events.rules[{idx}]"),
            MatchedBy::Builtin(field, name) => write!(f, "built-in {}: {name}", field.name()),
            MatchedBy::Failure => f.write_str("built-in: failure words"),
            MatchedBy::Nothing => f.write_str("no rule"),
        }
    }
}

/// A record's type, its target when a rule named it, and what decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The type.
    pub event_type: EventType,
    /// The user acted upon, when the matching rule captured one.
    pub target: Option<String>,
    /// What decided.
    pub matched_by: MatchedBy,
}

/// What a record's shape decides before its description is read (`Classifier::shape_verdict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeVerdict {
    /// `AUDIT`, whatever the description says.
    Audit,
    /// This type. `captured` is the target a user rule caught in the summary; without one, the
    /// description names it. With `unless_failed`, a description speaking of failure makes the
    /// record `AUDIT`.
    Type {
        event_type: EventType,
        captured: Option<String>,
        unless_failed: bool,
    },
    /// The description takes part in the decision: classify the whole record.
    Full,
}

/// One user rule, compiled.
#[derive(Debug, Clone)]
struct UserRule {
    event_type: EventType,
    regex: Regex,
    fields: Vec<Field>,
}

/// A built-in rule for the free text: its type, a name, and a pattern whose `target` group
/// (when it has one) is the user acted upon.
#[derive(Debug, Clone)]
struct DescriptionRule {
    event_type: EventType,
    name: &'static str,
    regex: Regex,
}

/// A compiled rule table.
#[derive(Debug, Clone)]
pub struct Classifier {
    user_rules: Vec<UserRule>,
    builtin: bool,
    /// `userAction` and `eventName` rules: one set, with each pattern's type and name.
    summary: (RegexSet, Vec<(EventType, &'static str)>),
    description: Vec<DescriptionRule>,
    /// An `eventName` that only names a user or an API key as the kind of object.
    user_category: Regex,
    failure: Regex,
}

/// Verbs and nouns the built-in patterns share.
const API_KEY: &str = r"\b(?:api|access)[ _-]?keys?\b";
const CREATE: &str = r"(?:created|added|invited|generated|provisioned)";
const DELETE: &str = r"(?:deleted|removed|revoked)";
const ENABLE: &str = r"(?:enabled|activated|reactivated|re-enabled)";
const DISABLE: &str = r"(?:disabled|deactivated|suspended)";
const USER: &str = r"(?:user|team member|team user|service user|member)";
/// The user named after the noun, quoted or not.
const WHO: &str = r#"['"]?(?P<target>[^\s'",;]+)['"]?"#;
/// Articles before the object.
const THE: &str = r"(?:(?:an?|the|new)\s+)*";
/// "User admin@acme.com" or "admin@acme.com", opening an actor-first sentence.
const ACTOR: &str = r"^\s*(?:user\s+)?\S+\s+(?:has\s+)?";

/// The lifecycle verbs of users and keys, with the type each makes.
fn verbs(key: bool) -> [(EventType, &'static str, &'static str); 4] {
    if key {
        [
            (EventType::ApiKeyCreated, CREATE, "api-key-created"),
            (EventType::ApiKeyDeleted, DELETE, "api-key-deleted"),
            (EventType::ApiKeyEnabled, ENABLE, "api-key-enabled"),
            (EventType::ApiKeyDisabled, DISABLE, "api-key-disabled"),
        ]
    } else {
        [
            (EventType::UserCreated, CREATE, "user-created"),
            (EventType::UserDeleted, DELETE, "user-deleted"),
            (EventType::UserEnabled, ENABLE, "user-enabled"),
            (EventType::UserDisabled, DISABLE, "user-disabled"),
        ]
    }
}

/// Built-in rules for the short summaries (`userAction`, `eventName`), in priority order:
/// "User Created", "Created User", "API Key Revoked", "Login with OAuth Succeeded".
fn summary_rules() -> Vec<(EventType, &'static str, String)> {
    let mut rules = Vec::new();
    for (event_type, verb, name) in verbs(true) {
        rules.push((
            event_type,
            name,
            format!(r"^\s*(?:new\s+)?(?:user\s+|service\s+user\s+)?{API_KEY}\s+{verb}\b|^\s*{verb}\s+{THE}{API_KEY}\s*$"),
        ));
    }
    rules.push((
        EventType::UserRoleChanged,
        "user-role-changed",
        format!(
            r"^\s*{USER}s?\s+(?:roles?|user\s*groups?|group\s+membership)\s+(?:changed|updated|modified|assigned|granted|revoked)\b|^\s*{USER}s?\s+(?:added|removed)\s+(?:to|from)\s+(?:user\s*)?groups?\b|^\s*roles?\s+(?:changed|assigned|granted|revoked)\b"
        ),
    ));
    for (event_type, verb, name) in verbs(false) {
        rules.push((
            event_type,
            name,
            format!(r"^\s*(?:new\s+)?{USER}s?\s+{verb}\s*$|^\s*{verb}\s+{THE}{USER}s?\s*$"),
        ));
    }
    rules.push((
        EventType::UserLogin,
        "user-login",
        r"\blog(?:ged)?[ -]?in\b.*\bsucceed(?:ed)?\b|\bsuccessful(?:ly)?\s+log(?:ged)?[ -]?in\b|^\s*(?:user\s+)?(?:logged|signed)\s+in\s*$".to_string(),
    ));
    rules
}

/// Built-in rules for the free text, in priority order: keys, roles, users, logins; each in
/// the actor-first ("User admin@acme.com created user bob"), the passive ("User bob was
/// created by …") and the imperative ("Added user bob") word order. One pattern per word
/// order: a `target` group may appear once in a pattern.
fn description_rules() -> Vec<(EventType, &'static str, String)> {
    let mut rules = Vec::new();
    for (event_type, verb, name) in verbs(true) {
        for pattern in [
            format!(r"{ACTOR}{verb}\s+{THE}{API_KEY}"),
            format!(r"^\s*{THE}{API_KEY}\s+\S*\s*(?:was\s+|has\s+been\s+)?{verb}\b"),
            format!(r"^\s*{verb}\s+{THE}{API_KEY}"),
        ] {
            rules.push((event_type, name, pattern));
        }
    }
    let group = r"(?:the\s+)?(?:user\s*)?groups?\b";
    let role = r"(?:changed|updated|modified|set)";
    for pattern in [
        format!(r"{ACTOR}{role}\s+(?:the\s+)?roles?\s+of\s+(?:{USER}\s+)?{WHO}"),
        format!(r"^\s*{role}\s+(?:the\s+)?roles?\s+of\s+(?:{USER}\s+)?{WHO}"),
        format!(r"^\s*(?:the\s+)?roles?\s+of\s+(?:{USER}\s+)?{WHO}\s+(?:was\s+)?{role}\b"),
        format!(r"{ACTOR}(?:added|removed)\s+{THE}{USER}\s+{WHO}\s+(?:to|from)\s+{group}"),
        format!(r"^\s*(?:added|removed)\s+{THE}{USER}\s+{WHO}\s+(?:to|from)\s+{group}"),
        format!(r"^\s*{USER}\s+{WHO}\s+(?:was\s+)?(?:added\s+to|removed\s+from)\s+{group}"),
    ] {
        rules.push((EventType::UserRoleChanged, "user-role-changed", pattern));
    }
    for (event_type, verb, name) in verbs(false) {
        for pattern in [
            format!(r"{ACTOR}{verb}\s+{THE}{USER}\s+{WHO}"),
            format!(r"^\s*{verb}\s+{THE}{USER}\s+{WHO}"),
            format!(
                r"^\s*(?:new\s+)?{USER}\s+{WHO}\s+(?:was\s+|has\s+been\s+)?{verb}(?:\s+by\b|\s+in\b|\s+from\b|\s*[.,(]|\s*$)"
            ),
        ] {
            rules.push((event_type, name, pattern));
        }
    }
    rules.push((
        EventType::UserLogin,
        "user-login",
        format!(r"^\s*(?:user\s+)?{WHO}\s+(?:has\s+)?(?:successfully\s+)?(?:logged|signed)\s+in\b"),
    ));
    rules
}

/// Words that mark an attempt that did not happen.
const FAILURE: &str = r"\b(?:fail(?:s|ed|ure)?|unsuccessful|denied|rejected|errors?)\b|\bnot\s+(?:created|deleted|enabled|disabled|changed)\b";

/// Words a `target` group can catch that name no user: "created user group soc".
const NOT_A_NAME: &[&str] = &[
    "group",
    "groups",
    "role",
    "roles",
    "profile",
    "profiles",
    "account",
    "accounts",
    "by",
    "to",
    "from",
    "in",
    "was",
    "has",
    "is",
    "settings",
    "preferences",
    "session",
    "sessions",
];

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).case_insensitive(true).build()
}

impl Classifier {
    /// Compiles the user's rules (tried first) and, with `builtin`, the built-in table.
    pub fn new(user_rules: &[RuleConfig], builtin: bool) -> Result<Classifier, regex::Error> {
        let user_rules = user_rules
            .iter()
            .map(|rule| {
                Ok(UserRule {
                    event_type: rule.event_type,
                    regex: compile(&rule.pattern)?,
                    fields: rule.fields.clone(),
                })
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        let (summary_types, summary_patterns): (Vec<_>, Vec<_>) = summary_rules()
            .into_iter()
            .map(|(event_type, name, pattern)| ((event_type, name), pattern))
            .unzip();
        let summary = RegexSetBuilder::new(summary_patterns)
            .case_insensitive(true)
            .build()?;
        let description = description_rules()
            .into_iter()
            .map(|(event_type, name, pattern)| {
                Ok(DescriptionRule {
                    event_type,
                    name,
                    regex: compile(&pattern)?,
                })
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        Ok(Classifier {
            user_rules,
            builtin,
            summary: (summary, summary_types),
            description,
            user_category: compile(&format!(
                r"^\s*(?:{USER}s?|{API_KEY}|user\s*groups?|user\s+log(?:in|out)|login)\s*$"
            ))?,
            failure: compile(FAILURE)?,
        })
    }

    /// The record's type (`Audit` when nothing matched), its target when a rule named it,
    /// and what decided.
    pub fn classify(&self, record: &AuditLog<'_>) -> Classification {
        let decided = |event_type, target, matched_by| Classification {
            event_type,
            target,
            matched_by,
        };
        let description = record.event_description.as_deref();
        if let Some(own) = record
            .event_type
            .as_deref()
            .and_then(|t| t.parse::<EventType>().ok())
        {
            return decided(own, self.target_in(own, description), MatchedBy::RecordType);
        }
        let text_of = |field: Field| {
            match field {
                Field::UserAction => record.user_action.as_deref(),
                Field::EventName => record.event_name.as_deref(),
                Field::EventDescription => description,
            }
            .filter(|text| !text.trim().is_empty())
        };
        for (idx, rule) in self.user_rules.iter().enumerate() {
            for text in rule.fields.iter().filter_map(|f| text_of(*f)) {
                if let Some(captures) = rule.regex.captures(text) {
                    let target = captures
                        .name("target")
                        .map(|m| m.as_str().to_string())
                        .or_else(|| self.target_in(rule.event_type, description));
                    return decided(rule.event_type, target, MatchedBy::UserRule(idx));
                }
            }
        }
        if !self.builtin {
            return decided(EventType::Audit, None, MatchedBy::Nothing);
        }
        let failed = [Field::UserAction, Field::EventDescription]
            .into_iter()
            .filter_map(text_of)
            .any(|text| self.failure.is_match(text));
        if failed {
            return decided(EventType::Audit, None, MatchedBy::Failure);
        }
        // The first field present decides alone, except an `eventName` that only names the
        // kind of object ("User", "API Key", "User Login"): it says nothing of what happened,
        // so the description decides. Any other category ("Alert Channel") stays `AUDIT`.
        for field in [Field::UserAction, Field::EventName] {
            let Some(text) = text_of(field) else { continue };
            let (set, types) = &self.summary;
            return match set.matches(text).iter().next() {
                Some(first) => {
                    let (event_type, name) = types[first];
                    decided(
                        event_type,
                        self.target_in(event_type, description),
                        MatchedBy::Builtin(field, name),
                    )
                }
                None if field == Field::EventName && self.user_category.is_match(text) => break,
                None => decided(EventType::Audit, None, MatchedBy::Nothing),
            };
        }
        if let Some(text) = description {
            for rule in &self.description {
                if let Some(target) = captured_target(&rule.regex, text) {
                    return decided(
                        rule.event_type,
                        target,
                        MatchedBy::Builtin(Field::EventDescription, rule.name),
                    );
                }
            }
        }
        decided(EventType::Audit, None, MatchedBy::Nothing)
    }

    /// What the record's shape (its own `eventType`, `userAction` and `eventName`) decides
    /// without its description, mirroring `classify` step by step. Records of one shape get
    /// the same verdict, so the normalizer computes it once per shape (`ShapeCache`).
    pub fn shape_verdict(&self, record: &AuditLog<'_>) -> ShapeVerdict {
        if let Some(own) = record
            .event_type
            .as_deref()
            .and_then(|t| t.parse::<EventType>().ok())
        {
            return ShapeVerdict::Type {
                event_type: own,
                captured: None,
                unless_failed: false,
            };
        }
        let text_of = |field: Field| {
            match field {
                Field::UserAction => record.user_action.as_deref(),
                Field::EventName => record.event_name.as_deref(),
                // Never asked: a rule reading the description makes the verdict `Full` first.
                Field::EventDescription => None,
            }
            .filter(|text| !text.trim().is_empty())
        };
        for rule in &self.user_rules {
            // Whether this rule matches depends on the description, and so does every later
            // rule's turn.
            if rule.fields.contains(&Field::EventDescription) {
                return ShapeVerdict::Full;
            }
            for text in rule.fields.iter().filter_map(|f| text_of(*f)) {
                if let Some(captures) = rule.regex.captures(text) {
                    return ShapeVerdict::Type {
                        event_type: rule.event_type,
                        captured: captures.name("target").map(|m| m.as_str().to_string()),
                        unless_failed: false,
                    };
                }
            }
        }
        if !self.builtin {
            return ShapeVerdict::Audit;
        }
        if text_of(Field::UserAction).is_some_and(|text| self.failure.is_match(text)) {
            return ShapeVerdict::Audit;
        }
        for field in [Field::UserAction, Field::EventName] {
            let Some(text) = text_of(field) else { continue };
            let (set, types) = &self.summary;
            return match set.matches(text).iter().next() {
                Some(first) => ShapeVerdict::Type {
                    event_type: types[first].0,
                    captured: None,
                    unless_failed: true,
                },
                None if field == Field::EventName && self.user_category.is_match(text) => {
                    ShapeVerdict::Full
                }
                // Failure words in the description would only say `AUDIT` again.
                None => ShapeVerdict::Audit,
            };
        }
        ShapeVerdict::Full
    }

    /// The record's type and rule-named target under its shape's verdict: what `classify`
    /// gives, reading the description only where the verdict leaves it a say. `None` for a
    /// `Full` verdict (call `classify`).
    pub fn classify_by_shape(
        &self,
        verdict: &ShapeVerdict,
        record: &AuditLog<'_>,
    ) -> Option<(EventType, Option<String>)> {
        let description = record.event_description.as_deref();
        match verdict {
            ShapeVerdict::Audit => Some((EventType::Audit, None)),
            ShapeVerdict::Full => None,
            ShapeVerdict::Type {
                event_type,
                captured,
                unless_failed,
            } => {
                let failed = *unless_failed
                    && description
                        .filter(|text| !text.trim().is_empty())
                        .is_some_and(|text| self.failure.is_match(text));
                if failed {
                    return Some((EventType::Audit, None));
                }
                let target = captured
                    .clone()
                    .or_else(|| self.target_in(*event_type, description));
                Some((*event_type, target))
            }
        }
    }

    /// The target the built-in description rules of `event_type` find in `description`.
    fn target_in(&self, event_type: EventType, description: Option<&str>) -> Option<String> {
        let description = description?;
        self.description
            .iter()
            .filter(|rule| rule.event_type == event_type)
            .find_map(|rule| captured_target(&rule.regex, description))
            .flatten()
    }
}

/// Whether `regex` matches `text` with a plausible target: `None` when it does not match (or
/// only catches a word that names no user), `Some(None)` when it matches without a target.
fn captured_target(regex: &Regex, text: &str) -> Option<Option<String>> {
    for captures in regex.captures_iter(text) {
        match captures.name("target") {
            None => return Some(None),
            Some(found) => {
                let name = found.as_str().trim_end_matches(['.', ':', ')']);
                if !name.is_empty() && !NOT_A_NAME.contains(&name.to_ascii_lowercase().as_str()) {
                    return Some(Some(name.to_string()));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn record<'a>(action: &'a str, name: &'a str, description: &'a str) -> AuditLog<'a> {
        AuditLog {
            user_action: Some(Cow::Borrowed(action)).filter(|s| !s.is_empty()),
            event_name: Some(Cow::Borrowed(name)).filter(|s| !s.is_empty()),
            event_description: Some(Cow::Borrowed(description)).filter(|s| !s.is_empty()),
            ..AuditLog::default()
        }
    }

    /// `classify`'s answer, after checking that the shape's verdict gives the same type and
    /// target (the normalizer takes that path).
    fn classify_both_ways(classifier: &Classifier, record: &AuditLog<'_>) -> Classification {
        let full = classifier.classify(record);
        let verdict = classifier.shape_verdict(record);
        if let Some(by_shape) = classifier.classify_by_shape(&verdict, record) {
            assert_eq!(
                by_shape,
                (full.event_type, full.target.clone()),
                "{record:?} by its shape's verdict {verdict:?}"
            );
        }
        full
    }

    fn check(action: &str, name: &str, description: &str, expected: EventType) {
        let classifier = Classifier::new(&[], true).unwrap();
        assert_eq!(
            classify_both_ways(&classifier, &record(action, name, description)).event_type,
            expected,
            "userAction={action:?} eventName={name:?} eventDescription={description:?}"
        );
    }

    #[test]
    fn the_shapes_named_in_the_brief_are_classified() {
        use EventType::*;
        check(
            "User Created",
            "User",
            "User bob@acme.com created by admin@acme.com",
            UserCreated,
        );
        check("User Added", "User", "Added user bob@acme.com", UserCreated);
        check(
            "User Deleted",
            "User",
            "User bob@acme.com deleted",
            UserDeleted,
        );
        check(
            "User Removed",
            "User",
            "Removed user bob@acme.com",
            UserDeleted,
        );
        check(
            "User Enabled",
            "User",
            "User bob@acme.com enabled by admin@acme.com",
            UserEnabled,
        );
        check(
            "User Disabled",
            "User",
            "User bob@acme.com disabled by admin@acme.com",
            UserDisabled,
        );
        check(
            "User Deactivated",
            "User",
            "User bob@acme.com deactivated",
            UserDisabled,
        );
        check(
            "User Role Changed",
            "User",
            "Role of bob@acme.com changed from USER to ADMIN",
            UserRoleChanged,
        );
        check(
            "Login with OAuth Succeeded",
            "User Login",
            "User bob@acme.com logged in",
            UserLogin,
        );
        check(
            "API Key Created",
            "API Key",
            "API key ACME_3F2A created by admin@acme.com",
            ApiKeyCreated,
        );
        check("API Key Deleted", "API Key", "", ApiKeyDeleted);
        check("API Key Enabled", "API Key", "", ApiKeyEnabled);
        check("API Key Disabled", "API Key", "", ApiKeyDisabled);
    }

    #[test]
    fn description_alone_is_enough() {
        use EventType::*;
        check(
            "",
            "",
            "User bob@acme.com created by admin@acme.com",
            UserCreated,
        );
        check("", "", "Added user bob@acme.com", UserCreated);
        check("", "", "User 'bob' was deleted", UserDeleted);
        check(
            "",
            "",
            "Role of bob@acme.com changed from USER to ADMIN",
            UserRoleChanged,
        );
        check("", "", "User bob@acme.com logged in", UserLogin);
        check(
            "",
            "",
            "Added user bob@acme.com to group admins",
            UserRoleChanged,
        );
        check(
            "",
            "",
            "API key ACME_1 revoked by admin@acme.com",
            ApiKeyDeleted,
        );
        check("Member Added", "", "", UserCreated);
    }

    #[test]
    fn look_alikes_stay_audit() {
        use EventType::*;
        check(
            "Alert Channel Created",
            "Alert Channel",
            "Alert channel 'soc-slack' created by bob@acme.com",
            Audit,
        );
        check(
            "Report Rule Created",
            "Report Rule",
            "Report rule 'daily' created by user bob@acme.com",
            Audit,
        );
        check(
            "Resource Group Deleted",
            "Resource Group",
            "Resource group 'prod' deleted by user bob@acme.com",
            Audit,
        );
        check(
            "Login with OAuth Failed",
            "User Login",
            "User bob@acme.com failed to log in",
            Audit,
        );
        check(
            "Agent Token Created",
            "Agent Token",
            "Agent access token 'k8s' created by bob@acme.com",
            Audit,
        );
        check(
            "Integration Deleted",
            "Cloud Account",
            "Cloud account integration 'aws-prod' deleted by a@acme.com",
            Audit,
        );
        check(
            "Policy Disabled",
            "Policy",
            "Policy 'lacework-global-1' disabled by a@acme.com",
            Audit,
        );
        check(
            "User Creation Failed",
            "User",
            "User bob@acme.com could not be created: error",
            Audit,
        );
        check(
            "Custom Role Updated",
            "Role",
            "Custom role 'auditor' updated by a@acme.com",
            Audit,
        );
        check(
            "User Group Created",
            "User Group",
            "User group 'soc' created by a@acme.com",
            Audit,
        );
        check("", "User Login", "", Audit);
    }

    #[test]
    fn records_own_event_type_and_user_rules_win() {
        let mut own = record("Alert Channel Created", "", "");
        own.event_type = Some(Cow::Borrowed("user_deleted"));
        assert_eq!(
            Classifier::new(&[], true)
                .unwrap()
                .classify(&own)
                .event_type,
            EventType::UserDeleted
        );

        let rules = [RuleConfig {
            event_type: EventType::UserCreated,
            pattern: "^member onboarded$".into(),
            fields: vec![Field::UserAction],
        }];
        let classifier = Classifier::new(&rules, true).unwrap();
        assert_eq!(
            classifier
                .classify(&record("Member Onboarded", "", ""))
                .event_type,
            EventType::UserCreated
        );
        // The rule looks only at userAction.
        assert_eq!(
            classifier
                .classify(&record("", "Member Onboarded", ""))
                .event_type,
            EventType::Audit
        );
    }

    /// The classification and target of a record with `actor` as its `userName`.
    fn classified(action: &str, name: &str, description: &str) -> (EventType, Option<String>) {
        static BUILTIN: std::sync::LazyLock<Classifier> =
            std::sync::LazyLock::new(|| Classifier::new(&[], true).unwrap());
        let found = classify_both_ways(&BUILTIN, &record(action, name, description));
        (found.event_type, found.target)
    }

    #[test]
    fn actor_first_user_events_name_the_user_acted_upon() {
        use EventType::*;
        let cases = [
            (
                "User Created",
                "User admin@acme.com created user bob@acme.com in ACME account",
                UserCreated,
                "bob@acme.com",
            ),
            (
                "",
                "User admin@acme.com created user bob@acme.com in ACME account",
                UserCreated,
                "bob@acme.com",
            ),
            (
                "",
                "User admin@acme.com added new team member 'carol@acme.com'",
                UserCreated,
                "carol@acme.com",
            ),
            (
                "",
                "User admin@acme.com deleted user bob@acme.com",
                UserDeleted,
                "bob@acme.com",
            ),
            ("", "admin@acme.com removed user bob", UserDeleted, "bob"),
            (
                "",
                "User admin@acme.com disabled user bob@acme.com",
                UserDisabled,
                "bob@acme.com",
            ),
            (
                "",
                "User admin@acme.com has enabled user bob@acme.com",
                UserEnabled,
                "bob@acme.com",
            ),
            (
                "",
                "User admin@acme.com deactivated service user svc-ci",
                UserDisabled,
                "svc-ci",
            ),
            (
                "",
                "User admin@acme.com changed the role of bob@acme.com to ADMIN",
                UserRoleChanged,
                "bob@acme.com",
            ),
            (
                "",
                "User admin@acme.com added user bob@acme.com to group admins",
                UserRoleChanged,
                "bob@acme.com",
            ),
            (
                "User Role Changed",
                "User admin@acme.com changed the role of user bob@acme.com",
                UserRoleChanged,
                "bob@acme.com",
            ),
            (
                "",
                "User bob@acme.com was created by admin@acme.com",
                UserCreated,
                "bob@acme.com",
            ),
            (
                "",
                "User info@example.com logged in to Lacework account using OAuth credentials",
                UserLogin,
                "info@example.com",
            ),
        ];
        for (action, description, expected, target) in cases {
            assert_eq!(
                classified(action, "", description),
                (expected, Some(target.to_string())),
                "{action:?} / {description:?}"
            );
        }
    }

    #[test]
    fn an_admin_acting_on_anything_but_a_user_or_key_stays_audit_in_both_word_orders() {
        let objects = [
            "alert channel soc-slack",
            "alert rule 'critical'",
            "report rule daily",
            "resource group prod",
            "cloud account integration aws-prod",
            "container registry ecr",
            "agent access token k8s",
            "policy lacework-global-1",
            "user group soc",
            "custom role auditor",
            "team soc",
            "vulnerability exception cve-1",
            "data export rule siem",
            "query q1",
        ];
        let verbs = [
            "created", "deleted", "enabled", "disabled", "added", "removed", "updated",
        ];
        for object in objects {
            for verb in verbs {
                for description in [
                    format!("User admin@acme.com {verb} {object} in ACME account"),
                    format!("admin@acme.com {verb} {object}"),
                    format!("{object} {verb} by admin@acme.com"),
                    format!("{verb} {object}"),
                ] {
                    let (found, _) = classified("", "", &description);
                    assert_eq!(found, EventType::Audit, "{description:?}");
                }
                // With a summary present, the summary decides alone.
                let title: String = object.split(' ').take(2).collect::<Vec<_>>().join(" ");
                let action = format!("{title} {verb}");
                let description = format!("User admin@acme.com {verb} {object}");
                let (found, _) = classified(&action, "", &description);
                assert_eq!(found, EventType::Audit, "{action:?} / {description:?}");
            }
        }
    }

    #[test]
    fn the_summary_decides_alone_when_present() {
        // The free text would say USER_CREATED; the summary says something else.
        assert_eq!(
            classified(
                "Alert Channel Created",
                "",
                "User admin@acme.com created user bob@acme.com"
            )
            .0,
            EventType::Audit
        );
        // No userAction: eventName decides, and it names no lifecycle change.
        assert_eq!(
            classified("", "Alert Channel", "Added user bob@acme.com").0,
            EventType::Audit
        );
        // An eventName that only says "a user" (or "a user group") leaves it to the description.
        assert_eq!(
            classified("", "User", "User admin@acme.com created user bob@acme.com"),
            (EventType::UserCreated, Some("bob@acme.com".to_string()))
        );
        assert_eq!(
            classified(
                "",
                "User Group",
                "User admin@acme.com created user group soc"
            )
            .0,
            EventType::Audit
        );
        assert_eq!(
            classified(
                "",
                "User Group",
                "User a@acme.com added user b@acme.com to group soc"
            ),
            (EventType::UserRoleChanged, Some("b@acme.com".to_string()))
        );
        // Both absent: the description is read.
        assert_eq!(
            classified("", "", "Added user bob@acme.com").0,
            EventType::UserCreated
        );
    }

    #[test]
    fn a_rules_target_group_names_the_target_and_builtin_rules_can_be_turned_off() {
        let rules = [RuleConfig {
            event_type: EventType::UserDeleted,
            pattern: r"offboarded (?P<target>\S+@\S+)".into(),
            fields: vec![Field::EventDescription],
        }];
        let classifier = Classifier::new(&rules, false).unwrap();
        let found = classifier.classify(&record(
            "Member Offboarded",
            "",
            "admin@acme.com offboarded dave@acme.com",
        ));
        assert_eq!(found.event_type, EventType::UserDeleted);
        assert_eq!(found.target.as_deref(), Some("dave@acme.com"));
        assert_eq!(found.matched_by, MatchedBy::UserRule(0));
        // Without the built-in table, what only it knows stays AUDIT.
        let found = classifier.classify(&record("User Created", "User", ""));
        assert_eq!(
            (found.event_type, found.matched_by),
            (EventType::Audit, MatchedBy::Nothing)
        );
    }

    #[test]
    fn a_shapes_verdict_leaves_the_description_its_say() {
        use EventType::*;
        let builtin = Classifier::new(&[], true).unwrap();
        for (action, name, description, expected) in [
            (
                "User Created",
                "User",
                "Failed to create user bob@acme.com",
                Audit,
            ),
            (
                "User Created",
                "User",
                "Added user bob@acme.com",
                UserCreated,
            ),
            ("", "User", "Added user bob@acme.com", UserCreated),
            ("", "User", "Adding user bob@acme.com failed", Audit),
            ("", "", "Removed user bob@acme.com", UserDeleted),
            (
                "Alert Channel Created",
                "Alert Channel",
                "Added user bob@acme.com",
                Audit,
            ),
        ] {
            let found = classify_both_ways(&builtin, &record(action, name, description));
            assert_eq!(
                found.event_type, expected,
                "{action:?} {name:?} {description:?}"
            );
        }
        let verdict = |classifier: &Classifier, action, name| {
            classifier.shape_verdict(&record(action, name, "anything"))
        };
        assert_eq!(verdict(&builtin, "", "User"), ShapeVerdict::Full);
        assert_eq!(verdict(&builtin, "Login Failed", ""), ShapeVerdict::Audit);

        // A user rule on the summary decides by shape, its target caught there; one on the
        // description leaves every record it could match to `classify`.
        let summary_rule = [RuleConfig {
            event_type: UserDeleted,
            pattern: r"^offboarded (?P<target>\S+)$".into(),
            fields: vec![Field::UserAction],
        }];
        let classifier = Classifier::new(&summary_rule, true).unwrap();
        let found = classify_both_ways(&classifier, &record("Offboarded dave", "", "text"));
        assert_eq!(found.target.as_deref(), Some("dave"));
        assert_eq!(
            verdict(&classifier, "Offboarded dave", ""),
            ShapeVerdict::Type {
                event_type: UserDeleted,
                captured: Some("dave".into()),
                unless_failed: false
            }
        );
        let description_rule = [RuleConfig {
            event_type: UserDeleted,
            pattern: r"offboarded".into(),
            fields: vec![Field::EventDescription, Field::UserAction],
        }];
        let classifier = Classifier::new(&description_rule, true).unwrap();
        assert_eq!(
            verdict(&classifier, "User Created", "User"),
            ShapeVerdict::Full
        );
    }
}
