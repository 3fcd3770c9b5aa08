//! Configuration: the TOML file's shape, its pure validation, and loading it from disk.
//!
//! Loading is two steps on purpose: `Config::parse` turns text into a validated `Config`
//! without touching anything else, and `Credentials::resolve` reads the secret and key files.
//! Every error names the key (and its line when the file has one) so an operator can fix it.

mod events;
mod interpolate;
mod key_file;
mod lacework;
mod poll;
mod reconcile;
pub(crate) mod secrets;
mod telemetry;
mod units;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use events::{EventsConfig, Include, RuleConfig};
pub use interpolate::Lookup;
pub use lacework::AccountSpec;
pub use lacework::{Credentials, LaceworkConfig, RateBudget};
pub use poll::{PollConfig, StateConfig};
pub use reconcile::ReconcileConfig;
pub use telemetry::TelemetryConfig;
pub use units::ByteSize;

use crate::sinks::SinkConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where and how to reach the Lacework API.
    pub lacework: LaceworkConfig,
    /// How the AuditLogs stream is walked.
    #[serde(default)]
    pub poll: PollConfig,
    /// Where the checkpoint database lives.
    #[serde(default)]
    pub state: StateConfig,
    /// Which records become events and how they are classified.
    #[serde(default)]
    pub events: EventsConfig,
    /// Where events go. At least one.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// Metrics and health endpoints.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Comparing the user inventory with its last snapshot.
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    /// The accounts polled: `[[lacework.accounts]]` merged over `[lacework]`, or `[lacework]`
    /// alone. Filled by `Config::parse`.
    #[serde(skip)]
    pub accounts: Vec<AccountSpec>,
}

/// A configuration problem, with the key it concerns and, when known, the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the configuration came from, if any.
    pub file: Option<PathBuf>,
    /// Dotted key path such as `poll.window` or `sinks[1].name`; `None` for syntax errors.
    pub key: Option<String>,
    /// 1-based line of the key in the file, when it can be found.
    pub line: Option<usize>,
    /// What is wrong, in lowercase, without trailing period.
    pub message: String,
}

impl ConfigError {
    /// An error about one key, found by validation.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            key: Some(key.into()),
            line: None,
            message: message.into(),
        }
    }

    fn with_file(mut self, file: &Path) -> ConfigError {
        self.file = Some(file.to_path_buf());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Default path of the configuration file when neither `--config` nor the environment names one.
pub const DEFAULT_PATH: &str = "/etc/lacework-audit-exporter/config.toml";

impl Config {
    /// Parses and validates configuration text. Pure: reads no files.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|error| syntax_error(text, &error))?;
        let with_line = |mut error: ConfigError| {
            if let Some(key) = &error.key {
                error.line = line_of_key(text, key);
            }
            error
        };
        config.validate().map_err(with_line)?;
        // The text parsed once already; as a table it keeps what each account inherits.
        let raw: toml::Table = toml::from_str(text).map_err(|error| syntax_error(text, &error))?;
        let lacework = raw
            .get("lacework")
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default();
        config.accounts = config
            .lacework
            .resolve_accounts(&lacework)
            .map_err(with_line)?;
        Ok(config)
    }

    /// Reads the file at `path`, replaces `${VAR}` in its string values with what `lookup`
    /// says, and validates it. Secrets are resolved separately.
    pub fn load(path: &Path, lookup: Lookup<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            file: Some(path.to_path_buf()),
            key: None,
            line: None,
            message: format!("cannot read the configuration file: {error}"),
        })?;
        let text =
            interpolate::interpolate(&text, lookup).map_err(|error| error.with_file(path))?;
        Config::parse(&text).map_err(|error| error.with_file(path))
    }

    /// Checks every rule that can be checked without I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.lacework.validate()?;
        self.poll.validate()?;
        self.state.validate(&self.poll)?;
        self.events.validate()?;
        self.telemetry.validate(&self.poll)?;
        self.reconcile.validate()?;
        if self.sinks.is_empty() {
            return Err(ConfigError::invalid(
                "sinks",
                "no sink is configured: add at least one [[sinks]] table, e.g. type = \"stdout\"",
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut files = std::collections::HashSet::new();
        for (idx, sink) in self.sinks.iter().enumerate() {
            sink.validate().map_err(|mut error| {
                error.key = Some(match error.key {
                    Some(key) => format!("sinks[{idx}].{key}"),
                    None => format!("sinks[{idx}]"),
                });
                error
            })?;
            if !names.insert(sink.name()) {
                return Err(ConfigError::invalid(
                    format!("sinks[{idx}].name"),
                    format!(
                        "sink name {:?} is used twice: give each sink a unique name",
                        sink.name()
                    ),
                ));
            }
            if let SinkConfig::File(file) = sink
                && !files.insert(&file.path)
            {
                return Err(ConfigError::invalid(
                    format!("sinks[{idx}].path"),
                    format!(
                        "{} is the path of another file sink: one file has one writer",
                        file.path.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Warnings about settings that are legal but probably unintended.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.lacework.warnings();
        warnings.extend(self.poll.warnings());
        warnings.extend(self.reconcile.warnings());
        warnings.extend(self.sinks.iter().flat_map(SinkConfig::warnings));
        warnings
    }
}

fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| line_at(text, span.start));
    let key = error
        .span()
        .and_then(|span| key_at_offset(text, span.start))
        .map(|key| refine_key_in_table(text, &key, error.message()).unwrap_or(key));
    ConfigError {
        file: None,
        key,
        line,
        message: error.message().trim_end().trim_end_matches('.').to_string(),
    }
}

/// 1-based line number of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The dotted key path whose key or value covers byte `offset`, e.g. `poll.interval`.
/// Tables opened by a `[header]` do not span their body, so every table is searched.
fn key_at_offset(text: &str, offset: usize) -> Option<String> {
    use toml::de::{DeTable, DeValue};
    fn search_value(value: &DeValue<'_>, offset: usize, path: &str) -> Option<String> {
        match value {
            DeValue::Table(table) => search_table(table, offset, path),
            DeValue::Array(array) => array.iter().enumerate().find_map(|(idx, element)| {
                let element_path = format!("{path}[{idx}]");
                search_value(element.get_ref(), offset, &element_path)
                    .or_else(|| element.span().contains(&offset).then_some(element_path))
            }),
            _ => None,
        }
    }
    fn search_table(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
        table.iter().find_map(|(key, value)| {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            search_value(value.get_ref(), offset, &path).or_else(|| {
                (key.span().contains(&offset) || value.span().contains(&offset)).then_some(path)
            })
        })
    }
    let document = DeTable::parse(text).ok()?;
    search_table(document.get_ref(), offset, "")
}

/// Errors inside an internally tagged table (a `[[sinks]]` entry) point at the whole table.
/// When the message names one of its keys (`unknown field `x``) or quotes one of its values,
/// that key is the one meant.
fn refine_key_in_table(text: &str, key: &str, message: &str) -> Option<String> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let table = walk_key(document.get_ref(), key).table?;
    let named = table
        .iter()
        .find(|(k, _)| message.contains(&format!("`{}`", k.get_ref())));
    let quoted = || {
        table.iter().find(|(_, v)| {
            let source = text.get(v.span()).unwrap_or("").trim().trim_matches('"');
            source.len() > 2 && message.contains(source)
        })
    };
    named
        .or_else(quoted)
        .map(|(k, _)| format!("{key}.{}", k.get_ref()))
}

/// Finds the line of a dotted key path such as `poll.window` or `sinks[1].url`; a key left out
/// (defaulted) points at the table that should hold it.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    walk_key(document.get_ref(), key)
        .span
        .map(|span| line_at(text, span.start))
}

/// Where a dotted key path led in a parsed document.
struct KeyWalk<'d, 'i> {
    /// Span of the deepest key (or array element) found on the path.
    span: Option<std::ops::Range<usize>>,
    /// The table the whole path names, when it names one.
    table: Option<&'d toml::de::DeTable<'i>>,
}

/// Follows `poll.window` or `sinks[1].url` through `root` as far as it exists.
fn walk_key<'d, 'i>(root: &'d toml::de::DeTable<'i>, key: &str) -> KeyWalk<'d, 'i> {
    use toml::de::DeValue;
    let mut walk = KeyWalk {
        span: None,
        table: None,
    };
    let mut table = root;
    let segments: Vec<&str> = key.split('.').collect();
    for (position, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*segment, None),
        };
        let Some((found_key, value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)
        else {
            return walk;
        };
        walk.span = Some(found_key.span());
        let value = match (value.get_ref(), index) {
            (DeValue::Array(array), Some(index)) => {
                let Some(element) = array.get(index) else {
                    return walk;
                };
                walk.span = Some(element.span());
                element.get_ref()
            }
            (value, _) => value,
        };
        let DeValue::Table(inner) = value else {
            return walk;
        };
        if position + 1 == segments.len() {
            walk.table = Some(inner);
        }
        table = inner;
    }
    walk
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[lacework]
account = "acme"
key_id = "ACME_1234567890ABCDEF"
secret_file = "/run/secret"

[[sinks]]
type = "stdout"
"#;

    fn check_error(
        extra: &str,
        expected_key: Option<&str>,
        expected_line: Option<usize>,
        needle: &str,
    ) {
        let text = format!("{MINIMAL}{extra}");
        let error = Config::parse(&text).expect_err("config should be rejected");
        assert_eq!(error.key.as_deref(), expected_key, "{error}");
        assert_eq!(error.line, expected_line, "{error}");
        assert!(
            error.to_string().contains(needle),
            "{error} should mention {needle}"
        );
    }

    #[test]
    fn minimal_config_has_documented_defaults() {
        let config = Config::parse(MINIMAL).unwrap();
        assert_eq!(config.poll.interval, std::time::Duration::from_secs(60));
        assert_eq!(config.poll.window, std::time::Duration::from_secs(86_400));
        assert_eq!(config.poll.settle, std::time::Duration::from_secs(120));
        assert_eq!(config.poll.lookback, std::time::Duration::from_secs(86_400));
        assert_eq!(
            config.lacework.token_ttl,
            std::time::Duration::from_secs(3600)
        );
        assert_eq!(config.sinks.len(), 1);
        assert_eq!(config.sinks[0].name(), "stdout");
    }

    #[test]
    fn rejections_name_the_key_and_line() {
        // MINIMAL is 8 lines (the first one empty), so appended text starts on line 9.
        check_error(
            "[poll]\nwindow = \"8d\"\n",
            Some("poll.window"),
            Some(10),
            "7d",
        );
        check_error(
            "[poll]\ninterval = \"soon\"\n",
            Some("poll.interval"),
            Some(10),
            "expected a duration",
        );
        check_error(
            "[poll]\nwindw = \"1d\"\n",
            Some("poll.windw"),
            Some(10),
            "unknown field `windw`",
        );
        check_error(
            "[poll]\nsettle = 120\n",
            Some("poll.settle"),
            Some(10),
            "poll.settle",
        );
        check_error(
            "[[sinks]]\ntype = \"stdout\"\n",
            Some("sinks[1].name"),
            Some(9),
            "used twice",
        );
        check_error(
            "[[sinks]]\ntype = \"file\"\nname = \"a\"\npath = \"/var/log/e.ndjson\"\n[[sinks]]\ntype = \"file\"\nname = \"b\"\npath = \"/var/log/e.ndjson\"\n",
            Some("sinks[2].path"),
            Some(16),
            "one writer",
        );
        check_error(
            "[[sinks]]\ntype = \"carrier-pigeon\"\n",
            Some("sinks[1].type"),
            Some(10),
            "carrier-pigeon",
        );
        check_error("[lacework\n", None, Some(9), "");
        check_error(
            "[state]\nretention = \"1m\"\n",
            Some("state.retention"),
            Some(10),
            "overlap",
        );
    }

    #[test]
    fn accounts_inherit_what_they_leave_out_and_need_unique_names() {
        let text = |accounts: &str| {
            format!(
                "[lacework]\naccount = \"acme\"\nkey_id = \"ACME_1\"\nsecret_file = \"/run/secret\"\ntoken_ttl = \"30m\"\n{accounts}\n[[sinks]]\ntype = \"stdout\"\n"
            )
        };
        let single = Config::parse(&text("")).unwrap();
        assert_eq!(single.accounts.len(), 1);
        assert_eq!(single.accounts[0].name, "acme");

        let config = Config::parse(&text(
            "[[lacework.accounts]]\nsub_account = \"acme-sub1\"\n[[lacework.accounts]]\nsub_account = \"acme-sub2\"\n[[lacework.accounts]]\nname = \"beta\"\naccount = \"beta\"\nkey_id = \"BETA_1\"\nsecret_file = \"/run/beta\"\n",
        ))
        .unwrap();
        let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["acme-sub1", "acme-sub2", "beta"]);
        assert_eq!(
            config.accounts[0].lacework.account.as_deref(),
            Some("acme"),
            "inherited"
        );
        assert_eq!(
            config.accounts[1].lacework.token_ttl,
            std::time::Duration::from_secs(1800),
            "inherited"
        );
        assert_eq!(
            config.accounts[2].lacework.key_id.as_deref(),
            Some("BETA_1")
        );
        assert_eq!(config.accounts[2].lacework.sub_account, None);

        let twice = Config::parse(&text(
            "[[lacework.accounts]]\nsub_account = \"x\"\n[[lacework.accounts]]\nsub_account = \"X\"\n",
        ))
        .unwrap_err();
        assert_eq!(
            twice.key.as_deref(),
            Some("lacework.accounts[1].name"),
            "{twice}"
        );
        let bad = Config::parse(&text("[[lacework.accounts]]\nsub_account = \"\"\n")).unwrap_err();
        assert_eq!(
            bad.key.as_deref(),
            Some("lacework.accounts[0].sub_account"),
            "{bad}"
        );
        let unknown =
            Config::parse(&text("[[lacework.accounts]]\nsubaccount = \"x\"\n")).unwrap_err();
        assert!(unknown.to_string().contains("subaccount"), "{unknown}");
    }

    #[test]
    fn key_lines_are_found() {
        let text = format!("{MINIMAL}[poll]\nwindow = \"8d\"\n");
        assert_eq!(line_of_key(&text, "poll.window"), Some(10));
        assert_eq!(line_of_key(&text, "lacework.key_id"), Some(4));
        assert_eq!(line_of_key(&text, "sinks[0].type"), Some(8));
    }

    #[test]
    fn the_longest_window_and_overlap_are_valid_with_default_retention() {
        let text = format!("{MINIMAL}[poll]\nwindow = \"7d\"\noverlap = \"7d\"\n");
        let config = Config::parse(&text).unwrap();
        assert_eq!(
            config.state.effective_retention(&config.poll),
            std::time::Duration::from_secs(16 * 86_400),
            "resweep (1d) + window + overlap, plus a day"
        );
    }

    #[test]
    fn durations_are_bounded_so_time_arithmetic_cannot_overflow() {
        for key in ["settle", "interval", "resweep_every", "resweep"] {
            let text = format!("{MINIMAL}[poll]\n{key} = \"18446744073709551615s\"\n");
            let error = Config::parse(&text).unwrap_err();
            assert_eq!(
                error.key.as_deref(),
                Some(format!("poll.{key}").as_str()),
                "{error}"
            );
        }
    }

    #[test]
    fn retention_must_cover_the_resweep() {
        let text = format!(
            "{MINIMAL}[poll]\nresweep = \"3d\"\n\n[state]\npath = \"/tmp/s.db\"\nretention = \"3d\"\n"
        );
        let error = Config::parse(&text).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("state.retention"));
        assert!(error.message.contains("poll.resweep"), "{error}");
        let text = text.replace("resweep = \"3d\"", "resweep = \"0s\"");
        Config::parse(&text).expect("without re-sweeps, 3d covers window + overlap");
    }

    #[test]
    fn missing_secret_is_rejected() {
        let text = MINIMAL.replace("secret_file = \"/run/secret\"\n", "");
        let error = Config::parse(&text).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("lacework.secret_file"));
        assert!(error.message.contains("secret"), "{error}");
    }

    #[test]
    fn two_secret_sources_are_rejected() {
        let text = MINIMAL.replace(
            "secret_file = \"/run/secret\"",
            "secret_file = \"/run/secret\"\nsecret = \"abc\"",
        );
        let error = Config::parse(&text).unwrap_err();
        assert!(error.message.contains("only one"), "{error}");
    }

    #[test]
    fn no_sink_is_rejected() {
        let text = MINIMAL.replace("[[sinks]]\ntype = \"stdout\"\n", "");
        let error = Config::parse(&text).unwrap_err();
        assert_eq!(error.key.as_deref(), Some("sinks"));
    }

    #[test]
    fn display_includes_file_line_and_key() {
        let error = ConfigError {
            file: Some(PathBuf::from("/etc/x.toml")),
            key: Some("poll.window".into()),
            line: Some(12),
            message: "too long".into(),
        };
        assert_eq!(error.to_string(), "/etc/x.toml:12: poll.window: too long");
    }
}
