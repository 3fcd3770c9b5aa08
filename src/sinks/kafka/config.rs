//! `[[sinks]] type = "kafka"`: brokers, topic template, partition key, librdkafka properties.
//!
//! Validation here is pure. librdkafka checks property names and values itself when the
//! producer is created (`build`), which reads no network either.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::formats::EventFormat;
use crate::sinks::kafka::topic::TopicTemplate;

/// Configuration of a Kafka sink.
///
/// Every event becomes one message: the value is the event JSON (the bytes of one stdout
/// line, without the newline), the headers are `schema`, `type`, `id` and `account`, and the
/// key is chosen by `key`. A batch counts as delivered only when the brokers acknowledged
/// every message of it (`acks = all` and an idempotent producer by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Sink name for logs, metrics (`sink` label) and `replay --sink`; default `kafka`.
    pub name: Option<String>,
    /// Bootstrap brokers, comma-separated `host:port` pairs, e.g.
    /// `"kafka-1:9093,kafka-2:9093"` (librdkafka's `bootstrap.servers`).
    pub brokers: String,
    /// Topic to write to. May contain `{type}` (the event type, e.g. `USER_CREATED`) and
    /// `{account}` (the Lacework account; `unknown` when the event has none), e.g.
    /// `"lacework.{account}.{type}"`. Characters a Kafka topic name cannot hold (anything
    /// outside `A-Z a-z 0-9 . _ -`) are replaced by `_` in the substituted values, and names
    /// are cut at 249 characters.
    pub topic: String,
    /// Partition key of each message: `target` (the affected user), `actor`, `account`,
    /// `id` (the event id) or `none`. Events with the same key land on the same partition,
    /// in order. An event whose chosen field is null gets a null key (any partition).
    #[serde(default)]
    pub key: KafkaKey,
    /// Message value format: `json` (the normalized event, schema
    /// `lacework-audit-exporter/v1`), `ocsf` (OCSF 1.8.0) or `ecs` (Elastic Common Schema).
    #[serde(default)]
    pub format: EventFormat,
    /// File holding the SASL password, passed to librdkafka as `sasl.password`. The password
    /// is never accepted inline in `properties`. `$CREDENTIALS_DIRECTORY` is expanded.
    pub password_file: Option<PathBuf>,
    /// How long librdkafka may try to deliver a message (its `message.timeout.ms`). A batch
    /// whose messages time out is held and retried with backoff; the checkpoint does not
    /// move meanwhile.
    #[serde(default = "default_delivery_timeout", with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// How long a batch may go without any delivery report before the sink counts as down: a
    /// WARN log (once per change of state) and `lae_sink_up{sink}` = 0. The batch keeps
    /// waiting until it is acknowledged or `delivery_timeout` passes.
    #[serde(default = "default_stall_timeout", with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// After this many batches in a row whose messages timed out, the producer is thrown
    /// away and created anew (new connections, new idempotent producer id). This recovers
    /// from a cluster that was replaced under the sink.
    #[serde(default = "default_recreate_after_timeouts")]
    pub recreate_after_timeouts: u32,
    /// Bound of the connectivity check made at startup and by `validate --online`.
    #[serde(default = "default_healthcheck_timeout", with = "humantime_serde")]
    pub healthcheck_timeout: Duration,
    /// How long shutdown waits for messages still in the producer's queue. Whatever is not
    /// acknowledged by then was never acknowledged to the poller, so it is not committed.
    #[serde(default = "default_flush_timeout", with = "humantime_serde")]
    pub flush_timeout: Duration,
    /// Exactly once for `read_committed` consumers: a transactional producer writes each
    /// batch's events and a record of their ids to `state_topic` in one transaction, and the
    /// stream's cursor there after each window. At start the sink reads its progress back from
    /// `state_topic` and it is trusted over the state file, so a deployment whose only sink is
    /// this one needs no local state. A second process with the same `transactional_id`
    /// fences this one, which stops (exit 1).
    #[serde(default)]
    pub exactly_once: bool,
    /// The compacted topic holding the sink's progress (`exactly_once`); created with
    /// `cleanup.policy = compact` when missing. Default `lacework-audit-exporter-state`.
    pub state_topic: Option<String>,
    /// librdkafka's `transactional.id` (`exactly_once`): the same across restarts and hosts,
    /// different for every deployment writing to one cluster. Default
    /// `lacework-audit-exporter-<sink name>`.
    pub transactional_id: Option<String>,
    /// librdkafka properties, passed as they are, for anything not named above, e.g.
    /// `"security.protocol" = "SASL_SSL"`, `"sasl.mechanisms" = "SCRAM-SHA-512"`,
    /// `"sasl.username" = "exporter"`, `"compression.type" = "zstd"`,
    /// `"ssl.ca.location" = "/etc/ssl/kafka-ca.pem"`. The sink sets
    /// `enable.idempotence = true`, `acks = all`, `client.id = lacework-audit-exporter` and
    /// `partitioner = murmur2_random` (the Java client's key hashing) unless given here.
    /// `enable.idempotence = false` is allowed but warned about. The producer queue
    /// (`queue.buffering.max.messages`, default 100000) is bounded: when it is full the sink
    /// waits for acknowledgements before it enqueues more.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
}

/// Which event field becomes the message key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaKey {
    /// The affected user.
    #[default]
    Target,
    /// Who acted.
    Actor,
    /// The Lacework account.
    Account,
    /// The event id: spreads events evenly, keeps retries of one event on one partition.
    Id,
    /// No key (librdkafka picks a partition).
    None,
}

/// A librdkafka property value as written in TOML: a string, an integer, a float or a bool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// `"SASL_SSL"`.
    Text(String),
    /// `5`.
    Integer(i64),
    /// `0.5`.
    Float(f64),
    /// `true`.
    Bool(bool),
}

impl fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropertyValue::Text(text) => f.write_str(text),
            PropertyValue::Integer(value) => write!(f, "{value}"),
            PropertyValue::Float(value) => write!(f, "{value}"),
            PropertyValue::Bool(value) => write!(f, "{value}"),
        }
    }
}

fn default_delivery_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_stall_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_recreate_after_timeouts() -> u32 {
    3
}
fn default_healthcheck_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_flush_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Properties the sink owns, with what to use instead.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `brokers` instead"),
    ("metadata.broker.list", "set `brokers` instead"),
    (
        "sasl.password",
        "never put the password in the configuration: write it to a file and set `password_file`",
    ),
    ("message.timeout.ms", "set `delivery_timeout` instead"),
    ("delivery.timeout.ms", "set `delivery_timeout` instead"),
    (
        "transactional.id",
        "set `exactly_once = true` (and `transactional_id`) instead",
    ),
];

impl KafkaConfig {
    /// The sink's name: `name` if set, else `kafka`.
    pub fn sink_name(&self) -> &str {
        self.name.as_deref().unwrap_or("kafka")
    }

    /// Pure checks; the error is (key within the sink table, message).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| Err(ConfigError::invalid(key, message));
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return invalid("name", "is empty".into());
        }
        if let Err(message) = check_brokers(&self.brokers) {
            return invalid("brokers", message);
        }
        if let Err(message) = TopicTemplate::parse(&self.topic) {
            return invalid("topic", message);
        }
        if self.delivery_timeout < Duration::from_secs(1) {
            return invalid("delivery_timeout", "must be at least 1s".into());
        }
        if self.stall_timeout < Duration::from_millis(100) {
            return invalid("stall_timeout", "must be at least 100ms".into());
        }
        if self.recreate_after_timeouts == 0 {
            return invalid("recreate_after_timeouts", "must be at least 1".into());
        }
        if self.healthcheck_timeout < Duration::from_secs(1) {
            return invalid("healthcheck_timeout", "must be at least 1s".into());
        }
        if let Some(path) = &self.password_file
            && path.as_os_str().is_empty()
        {
            return invalid("password_file", "is empty".into());
        }
        for (property, value) in &self.properties {
            let key = format!("properties.\"{property}\"");
            if property.is_empty() || property.contains(char::is_whitespace) {
                return invalid(
                    &key,
                    format!("{property:?} is not a librdkafka property name"),
                );
            }
            if let Some((_, instead)) = OWNED_PROPERTIES.iter().find(|(name, _)| name == property) {
                return invalid(&key, format!("is set by the sink: {instead}"));
            }
            if property == "enable.idempotence" && parse_bool(value).is_none() {
                return invalid(&key, "must be true or false".into());
            }
        }
        if self.exactly_once {
            if !self.idempotence() {
                return invalid(
                    "properties.\"enable.idempotence\"",
                    "must be true with exactly_once = true".into(),
                );
            }
            if let Err(message) = check_topic_name(self.state_topic()) {
                return invalid("state_topic", message);
            }
            if self.transactional_id().trim().is_empty() {
                return invalid("transactional_id", "is empty".into());
            }
            // librdkafka refuses a message timeout longer than the transaction's.
            if let Some(PropertyValue::Integer(ms)) = self.properties.get("transaction.timeout.ms")
                && u128::try_from(*ms).is_ok_and(|ms| ms < self.delivery_timeout.as_millis())
            {
                return invalid(
                    "delivery_timeout",
                    format!(
                        "must not exceed properties.\"transaction.timeout.ms\" ({ms} ms) with exactly_once = true"
                    ),
                );
            }
        } else if self.state_topic.is_some() {
            return invalid(
                "state_topic",
                "is only used with exactly_once = true".into(),
            );
        } else if self.transactional_id.is_some() {
            return invalid(
                "transactional_id",
                "is only used with exactly_once = true".into(),
            );
        }
        if self.idempotence() && !self.acks_all() {
            return invalid(
                "properties.\"acks\"",
                "must be \"all\" while enable.idempotence is true (the default)".into(),
            );
        }
        Ok(())
    }

    /// Warnings about legal but risky settings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let name = self.sink_name();
        let mut warnings = Vec::new();
        if !self.idempotence() {
            warnings.push(format!(
                "kafka sink {name:?}: enable.idempotence = false: a retried batch may be written twice and reordered"
            ));
        }
        if !self.acks_all() {
            warnings.push(format!(
                "kafka sink {name:?}: acks is not \"all\": the broker may acknowledge events it then loses, and the checkpoint moves past them"
            ));
        }
        for property in self.properties.keys() {
            let lower = property.to_ascii_lowercase();
            if lower.ends_with("password") || lower.ends_with("secret") {
                warnings.push(format!(
                    "kafka sink {name:?}: properties.\"{property}\" is a secret in the configuration file: keep the file readable by the exporter only"
                ));
            }
        }
        if self.stall_timeout >= self.delivery_timeout {
            warnings.push(format!(
                "kafka sink {name:?}: stall_timeout is not below delivery_timeout: an outage is reported only when messages time out"
            ));
        }
        warnings
    }

    /// The topic holding an exactly-once sink's progress.
    pub(crate) fn state_topic(&self) -> &str {
        self.state_topic
            .as_deref()
            .unwrap_or("lacework-audit-exporter-state")
    }

    /// The transactional id of an exactly-once sink.
    pub(crate) fn transactional_id(&self) -> String {
        self.transactional_id
            .clone()
            .unwrap_or_else(|| format!("lacework-audit-exporter-{}", self.sink_name()))
    }

    /// Whether the producer is idempotent (`enable.idempotence`, default true).
    pub(crate) fn idempotence(&self) -> bool {
        self.properties
            .get("enable.idempotence")
            .and_then(parse_bool)
            .unwrap_or(true)
    }

    /// Whether `acks` (or its alias) is `all`/`-1`, the default.
    fn acks_all(&self) -> bool {
        ["acks", "request.required.acks"]
            .iter()
            .filter_map(|name| self.properties.get(*name))
            .all(|value| matches!(value.to_string().trim(), "all" | "-1"))
    }

    /// The SASL mechanism configured, for error messages.
    pub(crate) fn sasl_mechanism(&self) -> Option<String> {
        ["sasl.mechanisms", "sasl.mechanism"]
            .iter()
            .find_map(|name| self.properties.get(*name))
            .map(ToString::to_string)
    }

    /// The librdkafka configuration without the password: the sink's defaults, then the
    /// operator's `properties`, then what the sink owns.
    pub(crate) fn librdkafka_properties(&self) -> BTreeMap<String, String> {
        let mut properties = BTreeMap::new();
        for (name, value) in [
            ("client.id", "lacework-audit-exporter"),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("partitioner", "murmur2_random"),
        ] {
            properties.insert(name.to_string(), value.to_string());
        }
        for (name, value) in &self.properties {
            // `request.required.acks` is the same property as `acks`; keep only one.
            if name == "request.required.acks" {
                properties.remove("acks");
            }
            properties.insert(name.clone(), value.to_string());
        }
        properties.insert("bootstrap.servers".into(), self.brokers.trim().to_string());
        properties.insert(
            "message.timeout.ms".into(),
            self.delivery_timeout.as_millis().to_string(),
        );
        if self.exactly_once {
            properties.insert("transactional.id".into(), self.transactional_id());
        }
        properties
    }
}

fn parse_bool(value: &PropertyValue) -> Option<bool> {
    match value {
        PropertyValue::Bool(value) => Some(*value),
        PropertyValue::Text(text) => match text.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        PropertyValue::Integer(_) | PropertyValue::Float(_) => None,
    }
}

/// Checks a fixed topic name: 1 to 249 characters of `A-Z a-z 0-9 . _ -`.
fn check_topic_name(topic: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty()
        || topic.len() > 249
        || !topic.chars().all(legal)
        || topic == "."
        || topic == ".."
    {
        return Err(format!(
            "{topic:?} is not a topic name (1 to 249 characters of A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// Checks a comma-separated broker list: `host:port`, `host`, `[v6]:port`, with an optional
/// `protocol://` prefix as librdkafka allows.
fn check_brokers(brokers: &str) -> Result<(), String> {
    if brokers.trim().is_empty() {
        return Err("is empty: list at least one broker, e.g. \"kafka-1:9093\"".into());
    }
    for broker in brokers.split(',') {
        let broker = broker.trim();
        if broker.is_empty() {
            return Err(format!("{brokers:?} has an empty entry"));
        }
        if broker.contains(char::is_whitespace) {
            return Err(format!("{broker:?} contains whitespace"));
        }
        let address = broker.split_once("://").map_or(broker, |(_, rest)| rest);
        let port = if let Some(rest) = address.strip_prefix('[') {
            match rest.split_once(']') {
                Some((_, "")) => None,
                Some((_, port)) => Some(port.strip_prefix(':').unwrap_or(port)),
                None => return Err(format!("{broker:?} has an unclosed '['")),
            }
        } else {
            address.rsplit_once(':').map(|(_, port)| port)
        };
        let host = address.split(':').next().unwrap_or("");
        if host.is_empty() && !address.starts_with('[') {
            return Err(format!("{broker:?} has no host"));
        }
        if let Some(port) = port
            && !matches!(port.parse::<u16>(), Ok(1..))
        {
            return Err(format!("{broker:?} has no valid port (1-65535)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `extra` on top of `brokers = "kafka-1:9093,kafka-2:9093"` and `topic = "lacework.audit"`.
    fn parse(extra: &str) -> KafkaConfig {
        let mut table: toml::Table =
            toml::from_str(extra).unwrap_or_else(|e| panic!("{extra}: {e}"));
        table
            .entry("brokers")
            .or_insert_with(|| "kafka-1:9093,kafka-2:9093".into());
        table
            .entry("topic")
            .or_insert_with(|| "lacework.audit".into());
        toml::Value::Table(table)
            .try_into()
            .unwrap_or_else(|e| panic!("{extra}: {e}"))
    }

    /// `expected`: `Ok(())` or the key and a fragment of the message.
    fn check(extra: &str, expected: Result<(), (&str, &str)>) {
        let result = parse(extra).validate();
        match (result, expected) {
            (Ok(()), Ok(())) => {}
            (Err(error), Err((want_key, fragment))) => {
                let (key, message) = (error.key.unwrap_or_default(), error.message);
                assert_eq!(key, want_key, "{extra}: {message}");
                assert!(
                    message.contains(fragment),
                    "{extra}: {message:?} lacks {fragment:?}"
                );
            }
            (got, want) => panic!("{extra}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn exactly_once_settings() {
        check("exactly_once = true", Ok(()));
        check(
            "exactly_once = true\nstate_topic = \"lae.state\"\ntransactional_id = \"lae-prod\"",
            Ok(()),
        );
        check(
            "exactly_once = true\nstate_topic = \"lae state\"",
            Err(("state_topic", "not a topic name")),
        );
        check(
            "exactly_once = true\nproperties = { \"transaction.timeout.ms\" = 5000 }",
            Err(("delivery_timeout", "transaction.timeout.ms")),
        );
        check(
            "exactly_once = true\ndelivery_timeout = \"5s\"\nproperties = { \"transaction.timeout.ms\" = 5000 }",
            Ok(()),
        );
        check(
            "state_topic = \"lae.state\"",
            Err(("state_topic", "only used with exactly_once")),
        );
        check(
            "transactional_id = \"x\"",
            Err(("transactional_id", "only used with exactly_once")),
        );
        check(
            "exactly_once = true\nproperties = { \"enable.idempotence\" = false }",
            Err(("properties.\"enable.idempotence\"", "exactly_once")),
        );
        check(
            "properties = { \"transactional.id\" = \"x\" }",
            Err(("properties.\"transactional.id\"", "exactly_once = true")),
        );
        let config = parse("exactly_once = true\nname = \"siem\"");
        assert_eq!(config.state_topic(), "lacework-audit-exporter-state");
        assert_eq!(
            config.librdkafka_properties()["transactional.id"],
            "lacework-audit-exporter-siem"
        );
        assert!(
            !parse("")
                .librdkafka_properties()
                .contains_key("transactional.id")
        );
    }

    #[test]
    fn validation_table() {
        check("", Ok(()));
        check("key = \"none\"\nformat = \"json\"", Ok(()));
        check("topic = \"lacework.{account}.{type}\"", Ok(()));
        check("topic = \"lacework.{user}\"", Err(("topic", "{user}")));
        check("topic = \"lacework audit\"", Err(("topic", "' '")));
        check("topic = \"\"", Err(("topic", "empty")));
        check("brokers = \"\"", Err(("brokers", "empty")));
        check("brokers = \"a:1,,b:2\"", Err(("brokers", "empty entry")));
        check("brokers = \"a:0\"", Err(("brokers", "port")));
        check("brokers = \"a:99999\"", Err(("brokers", "port")));
        check("brokers = \"SASL_SSL://a:9093,[::1]:9092,b\"", Ok(()));
        check(
            "[properties]\n\"sasl.password\" = \"hunter2\"",
            Err(("properties.\"sasl.password\"", "password_file")),
        );
        check(
            "[properties]\n\"bootstrap.servers\" = \"x:1\"",
            Err(("properties.\"bootstrap.servers\"", "brokers")),
        );
        check(
            "[properties]\n\"message.timeout.ms\" = 5000",
            Err(("properties.\"message.timeout.ms\"", "delivery_timeout")),
        );
        check(
            "[properties]\n\"enable.idempotence\" = \"maybe\"",
            Err(("properties.\"enable.idempotence\"", "true or false")),
        );
        check(
            "[properties]\nacks = 1",
            Err(("properties.\"acks\"", "enable.idempotence")),
        );
        check(
            "[properties]\nacks = 1\n\"enable.idempotence\" = false",
            Ok(()),
        );
        check(
            "[properties]\nacks = -1\n\"linger.ms\" = 20\n\"compression.type\" = \"zstd\"",
            Ok(()),
        );
        check(
            "delivery_timeout = \"500ms\"",
            Err(("delivery_timeout", "1s")),
        );
        check(
            "recreate_after_timeouts = 0",
            Err(("recreate_after_timeouts", "at least 1")),
        );
    }

    #[test]
    fn the_commented_example_in_config_example_toml_is_valid() {
        let example = include_str!("../../../config.example.toml");
        let start = example.find("# type = \"kafka\"").expect("a kafka example");
        let table: String = example[start..]
            .lines()
            .skip(1)
            .map_while(|line| line.strip_prefix('#'))
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .map(|line| {
                if line == "[sinks.properties]" {
                    "[properties]"
                } else {
                    line
                }
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let config: KafkaConfig = toml::from_str(&table).unwrap_or_else(|e| panic!("{table}: {e}"));
        config.validate().unwrap();
        assert!(config.warnings().is_empty(), "{:?}", config.warnings());
        assert_eq!(config.properties.len(), 5, "{table}");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_key_mode() {
        let text = "brokers = \"a:1\"\ntopic = \"t\"\nkey = \"user\"\n";
        let error = toml::from_str::<KafkaConfig>(text).unwrap_err().to_string();
        assert!(error.contains("unknown variant `user`"), "{error}");
        let text = "brokers = \"a:1\"\ntopic = \"t\"\nbroker = \"a:1\"\n";
        let error = toml::from_str::<KafkaConfig>(text).unwrap_err().to_string();
        assert!(error.contains("unknown field `broker`"), "{error}");
        let text = "brokers = \"a:1\"\ntopic = \"t\"\nformat = \"ocsf\"\n";
        assert_eq!(
            toml::from_str::<KafkaConfig>(text).unwrap().format,
            EventFormat::Ocsf
        );
        let text = "brokers = \"a:1\"\ntopic = \"t\"\nformat = \"avro\"\n";
        assert!(toml::from_str::<KafkaConfig>(text).is_err());
    }

    #[test]
    fn warnings_name_the_risk() {
        assert!(parse("").warnings().is_empty());
        let warnings = parse("[properties]\n\"enable.idempotence\" = false\nacks = 1").warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("enable.idempotence = false"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("acks"), "{warnings:?}");
        let warnings = parse("[properties]\n\"ssl.key.password\" = \"x\"").warnings();
        assert!(warnings[0].contains("ssl.key.password"), "{warnings:?}");
    }

    #[test]
    fn librdkafka_properties_layer_defaults_operator_and_owned() {
        let config = parse(
            "delivery_timeout = \"30s\"\n[properties]\n\"client.id\" = \"soc\"\n\"linger.ms\" = 20\n\"request.required.acks\" = \"all\"",
        );
        let properties = config.librdkafka_properties();
        assert_eq!(properties["client.id"], "soc");
        assert_eq!(properties["linger.ms"], "20");
        assert_eq!(properties["enable.idempotence"], "true");
        assert!(!properties.contains_key("acks"));
        assert_eq!(properties["request.required.acks"], "all");
        assert_eq!(properties["bootstrap.servers"], "kafka-1:9093,kafka-2:9093");
        assert_eq!(properties["message.timeout.ms"], "30000");
        assert!(!properties.contains_key("sasl.password"));
    }
}
