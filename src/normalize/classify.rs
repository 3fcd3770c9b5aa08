//! Classification: which lifecycle type, if any, an audit record is.
//!
//! Lacework does not publish the wording of its audit records, so classification is a rule
//! table: regular expressions over `userAction`, `eventName` and `eventDescription`, matched
//! case-insensitively. Precedence, highest first:
//! 1. a record whose own `eventType` field names one of our types keeps it;
//! 2. user rules from `[[events.rules]]`, in file order;
//! 3. the built-in rules, trying `userAction` first, then `eventName`, then `eventDescription`
//!    (the summary fields are more reliable than free text). Built-in rules never classify a
//!    record whose summary or description speaks of failure ("Login Failed").

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::config::RuleConfig;
use crate::event::{EventType, Field};
use crate::lacework::AuditLog;

/// A compiled rule table.
#[derive(Debug, Clone)]
pub struct Classifier {
    user_rules: Vec<(EventType, Regex, Vec<Field>)>,
    builtin_by_field: [(RegexSet, Vec<EventType>); 3],
    failure: Regex,
}

/// Verbs and nouns the built-in patterns share.
const API_KEY: &str = r"\b(?:api|access)[ _-]?keys?\b";
const CREATE: &str = r"(?:created|added|invited|generated|provisioned)";
const DELETE: &str = r"(?:deleted|removed|revoked)";
const ENABLE: &str = r"(?:enabled|activated|reactivated|re-enabled)";
const DISABLE: &str = r"(?:disabled|deactivated|suspended)";
const USER: &str = r"(?:user|team member|team user|service user|member)";

/// One built-in rule table in priority order: API-key changes, role changes, user changes,
/// logins. `key` and `user` make the pattern for a verb.
fn rule_table(
    key: impl Fn(&str) -> String,
    user: impl Fn(&str) -> String,
    role: String,
    login: &str,
) -> Vec<(EventType, String)> {
    vec![
        (EventType::ApiKeyCreated, key(CREATE)),
        (EventType::ApiKeyDeleted, key(DELETE)),
        (EventType::ApiKeyEnabled, key(ENABLE)),
        (EventType::ApiKeyDisabled, key(DISABLE)),
        (EventType::UserRoleChanged, role),
        (EventType::UserCreated, user(CREATE)),
        (EventType::UserDeleted, user(DELETE)),
        (EventType::UserEnabled, user(ENABLE)),
        (EventType::UserDisabled, user(DISABLE)),
        (EventType::UserLogin, login.to_string()),
    ]
}

/// Built-in rules for the short summary fields (`userAction`, `eventName`), in priority order.
fn summary_rules() -> Vec<(EventType, String)> {
    let key = |verb: &str| format!(r"{API_KEY}.*\b{verb}\b|^\s*{verb}\s+(?:an?\s+)?{API_KEY}");
    let user = |verb: &str| {
        format!(
            r"^\s*(?:new\s+)?{USER}s?\s+{verb}\b|^\s*{verb}\s+(?:an?\s+)?(?:new\s+)?{USER}s?\s*$"
        )
    };
    rule_table(
        key,
        user,
        format!(
            r"^\s*{USER}\s+(?:roles?|user\s*groups?|group\s+membership)\s+(?:changed|updated|modified|assigned|granted|revoked)\b|^\s*{USER}s?\s+(?:added|removed)\s+(?:to|from)\s+(?:user\s*)?groups?\b|^\s*roles?\s+(?:changed|assigned|granted|revoked)\b"
        ),
        r"\blog(?:ged)?[ -]?in\b.*\bsucceed(?:ed)?\b|\bsuccessful(?:ly)?\s+log(?:ged)?[ -]?in\b|^\s*(?:user\s+)?(?:logged|signed)\s+in\s*$",
    )
}

/// Built-in rules for the free-text `eventDescription`, in priority order.
fn description_rules() -> Vec<(EventType, String)> {
    let key = |verb: &str| {
        format!(
            r"^\s*(?:the\s+)?(?:new\s+)?{API_KEY}\s+.*\b{verb}\b|^\s*{verb}\s+(?:an?\s+)?(?:new\s+)?{API_KEY}"
        )
    };
    // "User bob@acme.com created by ...", "Added user bob@acme.com", "User 'bob' was deleted".
    let user = |verb: &str| {
        format!(
            r"^\s*(?:new\s+)?{USER}\s+\S+\s+(?:was\s+|has\s+been\s+)?{verb}\b|^\s*{verb}\s+(?:new\s+)?{USER}\s+\S+\s*(?:$|\bby\b|\(|,|\.)"
        )
    };
    rule_table(
        key,
        user,
        format!(
            r"^\s*(?:the\s+)?roles?\s+of\s+\S+\s+(?:was\s+)?(?:changed|updated|modified|set)\b|^\s*{USER}\s+\S+\s+(?:was\s+)?(?:added\s+to|removed\s+from)\s+(?:the\s+)?(?:user\s*)?groups?\b|^\s*(?:added|removed)\s+{USER}\s+\S+\s+(?:to|from)\s+(?:the\s+)?(?:user\s*)?groups?\b|^\s*(?:changed|updated)\s+(?:the\s+)?roles?\s+of\b"
        ),
        r"^\s*(?:user\s+)?\S+\s+(?:has\s+)?(?:logged|signed)\s+in\b|\bsuccessfully\s+(?:logged|signed)\s+in\b",
    )
}

/// Words that mark an attempt that did not happen.
const FAILURE: &str = r"\b(?:fail(?:s|ed|ure)?|unsuccessful|denied|rejected|errors?)\b|\bnot\s+(?:created|deleted|enabled|disabled|changed)\b";

impl Classifier {
    /// Compiles the built-in rules plus the user's extra rules (which take precedence).
    pub fn new(extra_rules: &[RuleConfig]) -> Result<Classifier, regex::Error> {
        let user_rules = extra_rules
            .iter()
            .map(|rule| {
                let regex = RegexBuilder::new(&rule.pattern)
                    .case_insensitive(true)
                    .build()?;
                Ok((rule.event_type, regex, rule.fields.clone()))
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        let compile =
            |rules: Vec<(EventType, String)>| -> Result<(RegexSet, Vec<EventType>), regex::Error> {
                let (types, patterns): (Vec<EventType>, Vec<String>) = rules.into_iter().unzip();
                let set = RegexSetBuilder::new(patterns)
                    .case_insensitive(true)
                    .build()?;
                Ok((set, types))
            };
        Ok(Classifier {
            user_rules,
            builtin_by_field: [
                compile(summary_rules())?,
                compile(summary_rules())?,
                compile(description_rules())?,
            ],
            failure: RegexBuilder::new(FAILURE).case_insensitive(true).build()?,
        })
    }

    /// The record's type; `Audit` when nothing matched.
    pub fn classify(&self, record: &AuditLog<'_>) -> EventType {
        if let Some(own) = record
            .event_type
            .as_deref()
            .and_then(|t| t.parse::<EventType>().ok())
        {
            return own;
        }
        let text_of = |field: Field| match field {
            Field::UserAction => record.user_action.as_deref(),
            Field::EventName => record.event_name.as_deref(),
            Field::EventDescription => record.event_description.as_deref(),
        };
        for (event_type, regex, fields) in &self.user_rules {
            if fields
                .iter()
                .filter_map(|f| text_of(*f))
                .any(|text| regex.is_match(text))
            {
                return *event_type;
            }
        }
        let failed = [Field::UserAction, Field::EventDescription]
            .into_iter()
            .filter_map(text_of)
            .any(|text| self.failure.is_match(text));
        if failed {
            return EventType::Audit;
        }
        let fields = [Field::UserAction, Field::EventName, Field::EventDescription];
        for (field, (set, types)) in fields.into_iter().zip(&self.builtin_by_field) {
            let Some(text) = text_of(field) else { continue };
            if let Some(first) = set.matches(text).iter().next() {
                return types[first];
            }
        }
        EventType::Audit
    }
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

    fn check(action: &str, name: &str, description: &str, expected: EventType) {
        let classifier = Classifier::new(&[]).unwrap();
        assert_eq!(
            classifier.classify(&record(action, name, description)),
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
            Classifier::new(&[]).unwrap().classify(&own),
            EventType::UserDeleted
        );

        let rules = [RuleConfig {
            event_type: EventType::UserCreated,
            pattern: "^member onboarded$".into(),
            fields: vec![Field::UserAction],
        }];
        let classifier = Classifier::new(&rules).unwrap();
        assert_eq!(
            classifier.classify(&record("Member Onboarded", "", "")),
            EventType::UserCreated
        );
        // The rule looks only at userAction.
        assert_eq!(
            classifier.classify(&record("", "Member Onboarded", "")),
            EventType::Audit
        );
    }
}
