//! Which user an event is about, read from the record's free text.

use std::sync::LazyLock;

use regex::Regex;

use crate::event::EventType;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("valid regex")
});

/// A user named without an email: "User 'bob' was deleted", "Role of bob changed ...".
static NAMED_USER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(?:^|\s)(?:user|member|role\s+of)\s+['"]?([^\s'",]+)"#).expect("valid regex")
});

/// Words that follow "user" but are not a name.
const NOT_A_NAME: &[&str] = &[
    "created",
    "added",
    "invited",
    "deleted",
    "removed",
    "enabled",
    "disabled",
    "deactivated",
    "activated",
    "reactivated",
    "suspended",
    "role",
    "roles",
    "group",
    "groups",
    "logged",
    "signed",
    "login",
    "was",
    "has",
    "is",
    "account",
    "accounts",
    "profile",
    "by",
    "to",
    "from",
];

/// The affected user named by `description`, or `None`: the fallback when no rule captured
/// one.
///
/// The actor is never the target (descriptions name the actor first: "User admin@acme.com
/// created user bob@acme.com"), and neither is an address right after "by". A login's target
/// is the user who logged in, so it falls back to the actor.
pub fn extract_target(
    event_type: EventType,
    description: Option<&str>,
    actor: Option<&str>,
) -> Option<String> {
    // An audit record is about something other than a user, or nobody knows what.
    if event_type == EventType::Audit {
        return None;
    }
    if let Some(description) = description {
        let is_actor = |name: &str| {
            event_type != EventType::UserLogin
                && actor.is_some_and(|actor| actor.eq_ignore_ascii_case(name))
        };
        for found in EMAIL.find_iter(description) {
            let before = description[..found.start()].trim_end().to_ascii_lowercase();
            // "User admin@acme.com created …" opens an actor-first sentence: the address is
            // the actor, unless a "by" later makes the sentence passive ("User bob@acme.com
            // created by admin@acme.com").
            let after = description[found.end()..].to_ascii_lowercase();
            let opens = event_type != EventType::UserLogin
                && (before.is_empty() || before == "user")
                && !after.contains(" by ");
            if before.ends_with(" by")
                || before.ends_with(" by user")
                || before == "by"
                || opens
                || is_actor(found.as_str())
            {
                continue;
            }
            return Some(found.as_str().to_string());
        }
        if event_type != EventType::UserLogin {
            for captures in NAMED_USER.captures_iter(description) {
                let name = captures[1].trim_end_matches(['.', ':', ')']);
                let before = description[..captures.get(0).map_or(0, |m| m.start())].trim_end();
                // Addresses were weighed above; "by user x" names the actor.
                let is_actor = before.to_ascii_lowercase().ends_with(" by")
                    || before.eq_ignore_ascii_case("by");
                let is_actor_name =
                    |name: &str| actor.is_some_and(|a| a.eq_ignore_ascii_case(name));
                if !name.is_empty()
                    && !name.contains('@')
                    && !is_actor
                    && !is_actor_name(name)
                    && !NOT_A_NAME.contains(&name.to_ascii_lowercase().as_str())
                {
                    return Some(name.to_string());
                }
            }
        }
    }
    if event_type == EventType::UserLogin {
        return actor.map(str::to_string);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(event_type: EventType, description: &str, expected: Option<&str>) {
        assert_eq!(
            extract_target(event_type, Some(description), Some("actor@acme.com")).as_deref(),
            expected,
            "{description}"
        );
    }

    #[test]
    fn targets_are_read_from_descriptions() {
        use EventType::*;
        check(
            UserCreated,
            "User new.user@acme.com created by admin@acme.com",
            Some("new.user@acme.com"),
        );
        check(UserCreated, "Added user bob@acme.com", Some("bob@acme.com"));
        check(
            UserRoleChanged,
            "Role of bob@acme.com changed from USER to ADMIN",
            Some("bob@acme.com"),
        );
        check(UserDeleted, "User 'bob' was deleted", Some("bob"));
        check(UserDeleted, "Role of svc-ci changed", Some("svc-ci"));
        check(
            UserLogin,
            "User bob@acme.com logged in",
            Some("bob@acme.com"),
        );
        check(UserLogin, "Logged in", Some("actor@acme.com"));
        check(
            ApiKeyCreated,
            "API key ACME_3F2A created by admin@acme.com",
            None,
        );
        check(UserCreated, "User created", None);
        check(Audit, "Report rule created by user bob@acme.com", None);
        check(Audit, "Report rule created by user bob", None);
        check(
            UserCreated,
            "User actor@acme.com created user bob@acme.com in ACME account",
            Some("bob@acme.com"),
        );
        check(
            UserDeleted,
            "User actor@acme.com deleted user bob",
            Some("bob"),
        );
        check(UserDisabled, "User actor@acme.com disabled", None);
        check(
            UserCreated,
            "User admin@acme.com did something to bob@acme.com",
            Some("bob@acme.com"),
        );
        check(UserCreated, "admin@acme.com created something", None);
        check(Audit, "User admin@acme.com created alert channel soc", None);
    }
}
