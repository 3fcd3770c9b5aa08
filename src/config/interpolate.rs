//! `${VAR}` in string values, as Vector and Compose write it: `${VAR}`, `${VAR:-default}` (the
//! default when VAR is unset or empty), `${VAR:?message}` (an error with the message when
//! VAR is unset or empty), and `$$` for a literal `$`. A `$` followed by anything else stays
//! as it is, so `$CREDENTIALS_DIRECTORY/key` paths keep their own meaning.
//!
//! Only string values are touched (never keys, comments or numbers), and each is written
//! back as a TOML basic string, so a value cannot break out of its string. A value with a
//! line break is refused: one setting, one line. The variables come from the caller (`cli`
//! reads the environment; nothing here does).

use std::borrow::Cow;

use crate::config::ConfigError;

/// Where `${VAR}` values come from.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `text` with every `${…}` in its string values replaced. Text that is not valid TOML is
/// returned as it is, for the parser to report.
pub fn interpolate<'t>(text: &'t str, lookup: Lookup<'_>) -> Result<Cow<'t, str>, ConfigError> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let Ok(document) = toml::de::DeTable::parse(text) else {
        return Ok(Cow::Borrowed(text));
    };
    let mut replacements = Vec::new();
    collect_table(document.get_ref(), "", lookup, text, &mut replacements)?;
    if replacements.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    replacements.sort_by_key(|(span, _)| span.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (span, token) in replacements {
        out.push_str(&text[at..span.start]);
        out.push_str(&token);
        at = span.end;
    }
    out.push_str(&text[at..]);
    Ok(Cow::Owned(out))
}

type Replacement = (std::ops::Range<usize>, String);

fn collect_table(
    table: &toml::de::DeTable<'_>,
    path: &str,
    lookup: Lookup<'_>,
    text: &str,
    out: &mut Vec<Replacement>,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter() {
        let key = key.get_ref();
        let path = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        collect_value(value, &path, lookup, text, out)?;
    }
    Ok(())
}

fn collect_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    path: &str,
    lookup: Lookup<'_>,
    text: &str,
    out: &mut Vec<Replacement>,
) -> Result<(), ConfigError> {
    use toml::de::DeValue;
    match value.get_ref() {
        DeValue::String(string) if string.contains('$') => {
            let expanded = expand(string, lookup).map_err(|message| ConfigError {
                file: None,
                key: Some(path.to_string()),
                line: Some(
                    text[..value.span().start.min(text.len())]
                        .matches('\n')
                        .count()
                        + 1,
                ),
                message,
            })?;
            if expanded != *string {
                out.push((value.span(), basic_string(&expanded)));
            }
        }
        DeValue::Table(table) => collect_table(table, path, lookup, text, out)?,
        DeValue::Array(array) => {
            for (idx, element) in array.iter().enumerate() {
                collect_value(element, &format!("{path}[{idx}]"), lookup, text, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands one string value; the error says which variable and why.
pub fn expand(value: &str, lookup: Lookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                return Err(format!(
                    "unclosed \"${{\" in {value:?}: write $$ for a literal $"
                ));
            };
            out.push_str(&substitute(&body[..close], lookup)?);
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${…}` body: `NAME`, `NAME:-default` or `NAME:?message`.
fn substitute(body: &str, lookup: Lookup<'_>) -> Result<String, String> {
    let (name, operator, argument) = match body.find(':') {
        Some(colon) => {
            let operator = body[colon + 1..].chars().next();
            (
                &body[..colon],
                operator,
                &body[(colon + 2).min(body.len())..],
            )
        }
        None => (body, None, ""),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "\"${{{body}}}\" does not name an environment variable (letters, digits and _)"
        ));
    }
    let value = lookup(name);
    let value = match (operator, value) {
        (None, Some(value)) => value,
        (None, None) => {
            return Err(format!(
                "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
            ));
        }
        (Some('-'), Some(value)) if !value.is_empty() => value,
        (Some('-'), _) => argument.to_string(),
        (Some('?'), Some(value)) if !value.is_empty() => value,
        (Some('?'), _) => {
            let why = if argument.is_empty() {
                "is required".to_string()
            } else {
                argument.to_string()
            };
            return Err(format!(
                "environment variable {name} is unset or empty: {why}"
            ));
        }
        (Some(other), _) => {
            return Err(format!(
                "\"${{{body}}}\": unknown operator \":{other}\" (use :- for a default or :? for a required variable)"
            ));
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable {name} holds a line break: refused (one setting, one line)"
        ));
    }
    Ok(value)
}

/// `value` as a TOML basic string.
fn basic_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn set_default_required_and_literal_dollars() {
        let env = with(&[("HOST", "kafka-1"), ("EMPTY", "")]);
        assert_eq!(expand("${HOST}:9093", &env).unwrap(), "kafka-1:9093");
        assert_eq!(expand("${PORT:-9093}", &env).unwrap(), "9093");
        assert_eq!(expand("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand("${HOST:?set HOST}", &env).unwrap(), "kafka-1");
        assert_eq!(expand("cost: $$5", &env).unwrap(), "cost: $5");
        assert_eq!(
            expand("$CREDENTIALS_DIRECTORY/key", &env).unwrap(),
            "$CREDENTIALS_DIRECTORY/key"
        );
        let error = expand("${MISSING}", &env).unwrap_err();
        assert!(error.contains("MISSING is not set"), "{error}");
        let error = expand("${TOPIC:?the topic for this site}", &env).unwrap_err();
        assert!(
            error.contains("TOPIC") && error.contains("the topic for this site"),
            "{error}"
        );
        assert!(expand("${HOST", &env).unwrap_err().contains("unclosed"));
        assert!(expand("${1X}", &env).unwrap_err().contains("does not name"));
        assert!(
            expand("${X:=y}", &env)
                .unwrap_err()
                .contains("unknown operator")
        );
    }

    #[test]
    fn a_line_break_is_refused() {
        let env = with(&[("TWO", "a\nb")]);
        let error = expand("${TWO}", &env).unwrap_err();
        assert!(
            error.contains("TWO") && error.contains("line break"),
            "{error}"
        );
    }

    #[test]
    fn only_string_values_change_and_errors_name_key_and_line() {
        let text = "# ${NOT_IN_A_COMMENT}\n[poll]\ninterval = \"${INTERVAL:-1m}\"\n\n[[sinks]]\ntype = \"stdout\"\n\n[[sinks]]\ntype = \"kafka\"\ntopic = 'lacework.${SITE}'\n";
        let env = with(&[("SITE", "eu \"quoted\" \\ back")]);
        let out = interpolate(text, &env).unwrap();
        assert!(out.contains("# ${NOT_IN_A_COMMENT}"), "{out}");
        assert!(out.contains("interval = \"1m\""), "{out}");
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(
            parsed["sinks"][1]["topic"].as_str(),
            Some("lacework.eu \"quoted\" \\ back")
        );
        let error = interpolate(text, &with(&[])).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("sinks[1].topic"));
        assert_eq!(error.line, Some(10));
        assert!(error.message.contains("SITE"), "{error}");
        let text = "[lacework]\nheaders = { \"X-Key\" = \"${KEY:?needed}\" }\n";
        let error = interpolate(text, &with(&[])).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("lacework.headers.X-Key"));
    }
}
