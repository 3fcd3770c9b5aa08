//! Topic templates: `lacework.{account}.{type}` parsed once, rendered per event into a valid
//! Kafka topic name.

use crate::event::LifecycleEvent;

/// A parsed `topic` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Type,
    Account,
}

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

/// What `{account}` becomes for an event without an account.
const NO_ACCOUNT: &str = "unknown";

impl TopicTemplate {
    /// Parses a template; the error names the offending placeholder or character.
    pub fn parse(text: &str) -> Result<TopicTemplate, String> {
        if text.is_empty() {
            return Err("is empty".into());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(ch) = rest.chars().next() {
            if ch == '{' {
                let Some(end) = rest.find('}') else {
                    return Err(format!("{text:?} has a '{{' without '}}'"));
                };
                let placeholder = &rest[..=end];
                let part = match placeholder {
                    "{type}" => Part::Type,
                    "{account}" => Part::Account,
                    _ => {
                        return Err(format!(
                            "{text:?}: unknown placeholder {placeholder}: use {{type}} or {{account}}"
                        ));
                    }
                };
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = &rest[end + 1..];
                continue;
            }
            if !is_topic_char(ch) {
                return Err(format!(
                    "{text:?} contains {ch:?}: a Kafka topic name holds only A-Z a-z 0-9 . _ -"
                ));
            }
            literal.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let template = TopicTemplate { parts };
        if let Some(fixed) = template.fixed() {
            if fixed == "." || fixed == ".." {
                return Err(format!("{text:?} is not a valid topic name"));
            }
            if fixed.len() > MAX_TOPIC_LEN {
                return Err(format!("is longer than {MAX_TOPIC_LEN} characters"));
            }
        }
        Ok(template)
    }

    /// The topic when the template has no placeholder.
    pub fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(literal)] => Some(literal),
            _ => None,
        }
    }

    /// The topic of one event.
    pub fn render(&self, event: &LifecycleEvent) -> String {
        if let Some(fixed) = self.fixed() {
            return fixed.to_string();
        }
        let mut topic = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => topic.push_str(literal),
                Part::Type => topic.push_str(event.event_type.as_str()),
                Part::Account => {
                    push_sanitized(&mut topic, event.account.as_deref().unwrap_or(NO_ACCOUNT))
                }
            }
        }
        if topic.len() > MAX_TOPIC_LEN {
            // Every character is ASCII by now, so any byte index is a character boundary.
            topic.truncate(MAX_TOPIC_LEN);
        }
        if topic.bytes().all(|b| b == b'.') {
            topic = topic.replace('.', "_");
        }
        topic
    }
}

fn is_topic_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')
}

fn push_sanitized(topic: &mut String, value: &str) {
    if value.is_empty() {
        topic.push_str(NO_ACCOUNT);
        return;
    }
    topic.extend(
        value
            .chars()
            .map(|ch| if is_topic_char(ch) { ch } else { '_' }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn event(event_type: EventType, account: Option<&str>) -> LifecycleEvent {
        LifecycleEvent {
            event_type,
            account: account.map(str::to_string),
            ..crate::sinks::testing::event(0)
        }
    }

    fn check(template: &str, event_type: EventType, account: Option<&str>, expected: &str) {
        let parsed = TopicTemplate::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        assert_eq!(
            parsed.render(&event(event_type, account)),
            expected,
            "{template}"
        );
    }

    #[test]
    fn renders_templates() {
        check(
            "lacework.audit.lifecycle",
            EventType::UserCreated,
            Some("ACME"),
            "lacework.audit.lifecycle",
        );
        check(
            "lacework.{type}",
            EventType::ApiKeyDeleted,
            Some("ACME"),
            "lacework.API_KEY_DELETED",
        );
        check(
            "lacework.{account}.{type}",
            EventType::UserLogin,
            Some("ACME"),
            "lacework.ACME.USER_LOGIN",
        );
        check(
            "lacework.{account}",
            EventType::UserLogin,
            Some("acme corp/eu:1"),
            "lacework.acme_corp_eu_1",
        );
        check(
            "lacework.{account}",
            EventType::UserLogin,
            Some("zürich"),
            "lacework.z_rich",
        );
        check(
            "lacework.{account}",
            EventType::UserLogin,
            None,
            "lacework.unknown",
        );
        check("{account}", EventType::UserLogin, Some(".."), "__");
        check("{account}{type}-x", EventType::Audit, Some("a"), "aAUDIT-x");
        let long = "a".repeat(300);
        check(
            "t.{account}",
            EventType::Audit,
            Some(&long),
            &format!("t.{}", &long[..247]),
        );
    }

    #[test]
    fn rejects_bad_templates() {
        for (template, fragment) in [
            ("", "empty"),
            ("lacework.{user}", "unknown placeholder {user}"),
            ("lacework.{type", "without"),
            ("lacework/audit", "'/'"),
            ("..", "not a valid topic name"),
        ] {
            let error = TopicTemplate::parse(template).unwrap_err();
            assert!(error.contains(fragment), "{template}: {error}");
        }
        assert!(TopicTemplate::parse(&"a".repeat(250)).is_err());
        assert_eq!(TopicTemplate::parse("x.{type}").unwrap().fixed(), None);
        assert_eq!(TopicTemplate::parse("x.y").unwrap().fixed(), Some("x.y"));
    }
}
