//! Target `config`: `Config::parse` (what `Config::load` runs on the file's text) on any text,
//! on line-level mutations of valid configurations, and on configurations built from the
//! schema's keys with plausible and implausible values.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::config::{Config, ConfigError};
use crate::fuzz::harness::{self, Input, Target};
use crate::fuzz::json;
use crate::fuzz::mutate;

const TARGET: Target = Target {
    name: "config",
    regressions: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/proptest-regressions/config.txt"
    ),
    extension: "toml",
};

/// Pieces of TOML worth inserting whole.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "#",
    "\n",
    "\\",
    "{",
    "}",
    ",",
    ".",
    "[lacework]\n",
    "[[sinks]]\n",
    "type = \"stdout\"\n",
    "window = \"8d\"\n",
    "\"99999999999999y\"",
    "1979-05-27T07:32:00Z",
    "inf",
    "nan",
    "0x7fffffffffffffff",
];

/// Table headers, valid and not.
const HEADERS: &[&str] = &[
    "[lacework]",
    "[poll]",
    "[state]",
    "[events]",
    "[telemetry]",
    "[[sinks]]",
    "[[events.rules]]",
    "[sinks.properties]",
    "[sinks.basic]",
    "[[lacework]]",
    "[poll.window]",
    "[]",
    "[ü]",
];

/// Duration texts an operator would write.
const USUAL_DURATIONS: &[&str] = &[
    "500ms", "1s", "59s", "1m", "2m", "10m", "1h", "24h", "1d", "1 day 2h", "7d", "92d",
];

/// Duration texts out of range, at the edge of what humantime can hold, or no durations at all.
const ODD_DURATIONS: &[&str] = &[
    "0s",
    "1ms",
    "25h",
    "8d",
    "93d",
    "1y",
    "584942417355y",
    "18446744073709551615s",
    "18446744073709551615s 999ms",
    "99999999999999999999s",
    "-1s",
    "1.5h",
    "soon",
    "",
    "P1D",
];

/// The schema's keys, by section, with the kind of value each takes.
const LACEWORK: &[(&str, Kind)] = &[
    ("account", Kind::Account),
    ("base_url", Kind::Url),
    ("key_id", Kind::Text),
    ("secret", Kind::Text),
    ("secret_file", Kind::Path),
    ("api_key_file", Kind::Path),
    ("sub_account", Kind::Text),
    ("org_access", Kind::Bool),
    ("token_ttl", Kind::Duration),
    ("request_timeout", Kind::Duration),
    ("max_retries", Kind::Count),
    ("retry_initial", Kind::Duration),
    ("retry_max", Kind::Duration),
    ("rate_limit", Kind::Rate),
];
const POLL: &[(&str, Kind)] = &[
    ("interval", Kind::Duration),
    ("window", Kind::Duration),
    ("settle", Kind::Duration),
    ("lookback", Kind::Duration),
    ("overlap", Kind::Duration),
    ("max_result_rows", Kind::Count),
];
const STATE: &[(&str, Kind)] = &[("path", Kind::Path), ("retention", Kind::Duration)];
const EVENTS: &[(&str, Kind)] = &[("include", Kind::Include)];
const RULE: &[(&str, Kind)] = &[
    ("type", Kind::EventType),
    ("pattern", Kind::Pattern),
    ("fields", Kind::Fields),
];
const TELEMETRY: &[(&str, Kind)] = &[("listen", Kind::Listen), ("health_max_lag", Kind::Duration)];
const SINK: &[(&str, Kind)] = &[
    ("type", Kind::SinkType),
    ("name", Kind::Text),
    ("brokers", Kind::Brokers),
    ("topic", Kind::Topic),
    ("key", Kind::KafkaKey),
    ("format", Kind::Format),
    ("password_file", Kind::Path),
    ("delivery_timeout", Kind::Duration),
    ("stall_timeout", Kind::Duration),
    ("recreate_after_timeouts", Kind::Count),
    ("healthcheck_timeout", Kind::Duration),
    ("flush_timeout", Kind::Duration),
    ("properties", Kind::Properties),
    ("url", Kind::Url),
    ("batch_max_events", Kind::Count),
    ("batch_max_bytes", Kind::Size),
    ("timeout", Kind::Duration),
    ("headers", Kind::Headers),
    ("bearer_token_file", Kind::Path),
    ("basic", Kind::Basic),
    ("hec_token_file", Kind::Path),
    ("signing_secret_file", Kind::Path),
    ("ca_file", Kind::Path),
    ("client_cert_file", Kind::Path),
    ("client_key_file", Kind::Path),
    ("compression", Kind::Compression),
    ("retry_initial", Kind::Duration),
    ("retry_max", Kind::Duration),
    ("hec_sourcetype", Kind::Text),
    ("hec_source", Kind::Text),
    ("hec_index", Kind::Text),
    ("hec_host", Kind::Text),
];

/// What a key takes, so generated values are plausible most of the time.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Account,
    Url,
    Text,
    Path,
    Bool,
    Duration,
    Count,
    Rate,
    Include,
    EventType,
    Pattern,
    Fields,
    Listen,
    SinkType,
    Brokers,
    Topic,
    KafkaKey,
    Format,
    Properties,
    Size,
    Headers,
    Basic,
    Compression,
}

/// A configuration text.
#[derive(Clone)]
struct Text(String);

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} bytes:", self.0.len())?;
        f.write_str(&self.0)
    }
}

impl Input for Text {
    fn to_seed(&self) -> Vec<u8> {
        self.0.clone().into_bytes()
    }
}

/// One edit of a configuration's lines.
#[derive(Debug, Clone)]
enum LineMutation {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Keeps the key of a `key = value` line and writes another value.
    ReplaceValue(Index, String),
    Insert(Index, String),
}

#[test]
fn config_loader_never_panics_and_names_what_it_rejects() {
    harness::on_large_stack(fuzz_target);
}

/// The target's body, on a thread of its own (see `harness::on_large_stack`).
fn fuzz_target() {
    let mut seeds = harness::corpus(TARGET.name);
    // The shipped example is a seed too, read where it lives so it cannot drift.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    seeds.push(harness::Seed {
        bytes: std::fs::read(&example).expect("config.example.toml"),
        path: example,
    });
    let seed_texts: Arc<Vec<String>> = Arc::new(
        seeds
            .iter()
            .map(|seed| String::from_utf8_lossy(&seed.bytes).into_owned())
            .collect(),
    );
    let seed_bytes = Arc::new(seeds.iter().map(|seed| seed.bytes.clone()).collect());
    let documents = prop_oneof![
        3 => document(),
        1 => select(seed_texts.to_vec()),
    ];
    let strategy = prop_oneof![
        3 => document(),
        3 => (documents, vec(line_mutation(), 1..4)).prop_map(|(text, mutations)| {
            mutations
                .iter()
                .fold(text, |text, mutation| apply(&text, mutation))
        }),
        3 => mutate::mutated(seed_bytes, TOKENS)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        1 => vec(any::<char>(), 0..200).prop_map(String::from_iter),
    ]
    .prop_map(Text);
    let as_is: Vec<_> = seeds
        .iter()
        .cloned()
        .map(|seed| {
            let text = Text(String::from_utf8_lossy(&seed.bytes).into_owned());
            (seed.path, text)
        })
        .collect();
    harness::fuzz(&TARGET, &as_is, strategy, |text| check(&text.0));
    for seed in &seeds {
        check_load(&seed.path, &seed.bytes);
    }
}

/// The properties of one configuration text.
fn check(text: &str) -> Result<(), TestCaseError> {
    match Config::parse(text) {
        Ok(config) => {
            // What the daemon and `validate` do with a parsed configuration.
            prop_assert!(config.validate().is_ok());
            let _ = config.warnings();
            let _ = config.state.effective_retention(&config.poll);
            let _ = config.lacework.api_origin(None);
        }
        Err(error) => check_error(text, &error)?,
    }
    Ok(())
}

/// A rejection names a key or a line, and a line that is in the file.
fn check_error(text: &str, error: &ConfigError) -> Result<(), TestCaseError> {
    let shown = error.to_string();
    prop_assert!(
        error.key.is_some() || error.line.is_some(),
        "the error names neither a key nor a line: {shown}"
    );
    prop_assert!(
        !error.message.trim().is_empty(),
        "an empty message: {shown}"
    );
    if let Some(line) = error.line {
        let n_lines = text.split('\n').count();
        prop_assert!(
            (1..=n_lines).contains(&line),
            "line {line} of a text of {n_lines} lines: {shown}"
        );
    }
    if let Some(key) = &error.key {
        prop_assert!(shown.contains(key.as_str()), "{shown} does not show {key}");
    }
    Ok(())
}

/// `Config::load` agrees with `Config::parse` and names the file in its errors.
fn check_load(path: &Path, bytes: &[u8]) {
    let loaded = Config::load(path, &|_| None);
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            let parsed = Config::parse(text);
            assert_eq!(
                loaded.as_ref().err().map(|e| (&e.key, e.line, &e.message)),
                parsed.as_ref().err().map(|e| (&e.key, e.line, &e.message)),
                "{}",
                path.display()
            );
        }
        Err(_) => assert!(loaded.is_err(), "{}", path.display()),
    }
    if let Err(error) = loaded {
        let shown = error.to_string();
        assert!(
            shown.starts_with(&path.display().to_string()),
            "{shown} does not start with the file"
        );
    }
}

fn apply(text: &str, mutation: &LineMutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    match mutation {
        LineMutation::Delete(at) => {
            lines.remove(at.index(lines.len()));
        }
        LineMutation::Duplicate(at) => {
            let idx = at.index(lines.len());
            lines.insert(idx, lines[idx].clone());
        }
        LineMutation::Swap(a, b) => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
        }
        LineMutation::ReplaceValue(at, value) => {
            let idx = at.index(lines.len());
            if let Some((key, _)) = lines[idx].split_once('=') {
                lines[idx] = format!("{key}= {value}");
            }
        }
        LineMutation::Insert(at, line) => {
            lines.insert(at.index(lines.len() + 1), line.clone());
        }
    }
    lines.join("\n")
}

fn line_mutation() -> impl Strategy<Value = LineMutation> {
    let line = prop_oneof![
        1 => entry(LACEWORK),
        1 => entry(POLL),
        1 => entry(STATE),
        1 => entry(TELEMETRY),
        1 => entry(RULE),
        2 => entry(SINK),
        2 => select(HEADERS).prop_map(str::to_string),
        1 => json::text().prop_map(|text| text.replace('\n', " ")),
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(LineMutation::Delete),
        1 => any::<Index>().prop_map(LineMutation::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineMutation::Swap(a, b)),
        3 => (any::<Index>(), any_kind_value())
            .prop_map(|(at, value)| LineMutation::ReplaceValue(at, value)),
        2 => (any::<Index>(), line).prop_map(|(at, line)| LineMutation::Insert(at, line)),
    ]
}

/// A configuration built from the schema: a usable `[lacework]`, then sections and sinks with
/// keys from the schema (and now and then an unknown one), values plausible most of the time.
/// Keys and tables are not repeated, so that most documents get past the TOML syntax to the
/// validation.
fn document() -> impl Strategy<Value = String> {
    let lacework = (
        select(&[
            "account = \"acme\"\nkey_id = \"ACME_1234567890ABCDEF\"\nsecret_file = \"/run/secret\"",
            "base_url = \"http://127.0.0.1:8080\"\nkey_id = \"k\"\nsecret = \"s\"",
            "api_key_file = \"$CREDENTIALS_DIRECTORY/api-key.json\"",
        ][..]),
        entries(LACEWORK, 0..3),
    )
        .prop_map(|(base, extra)| {
            // Keys the base already sets are not set again.
            let extra: Vec<&String> = extra
                .iter()
                .filter(|line| {
                    let key = line.split(' ').next().unwrap_or_default();
                    !base.lines().any(|set| set.starts_with(&format!("{key} ")))
                })
                .collect();
            let extra: Vec<&str> = extra.iter().map(|line| line.as_str()).collect();
            format!("[lacework]\n{base}\n{}", extra.join("\n"))
        });
    let table = |header: &'static str, keys, n_entries| {
        prop::option::weighted(
            0.5,
            entries(keys, n_entries)
                .prop_map(move |lines| format!("{header}\n{}", lines.join("\n"))),
        )
    };
    let sink = (
        prop_oneof![
            3 => Just("type = \"stdout\""),
            2 => Just("type = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\ntopic = \"t\""),
            2 => Just("type = \"webhook\"\nurl = \"https://collector.example.com/x\""),
            1 => Just(""),
        ],
        entries(SINK, 0..4),
    )
        .prop_map(|(base, extra)| {
            let extra: Vec<&str> = extra
                .iter()
                .map(|line| line.as_str())
                .filter(|line| {
                    !base
                        .lines()
                        .any(|set| set.split(' ').next() == line.split(' ').next())
                })
                .collect();
            format!("[[sinks]]\n{base}\n{}", extra.join("\n"))
        });
    let rule = entries(RULE, 1..4).prop_map(|mut lines| {
        // `type` and `pattern` are required; a rule without them is mostly a syntax error.
        for (key, value) in [("type", r#""USER_CREATED""#), ("pattern", r#""^x$""#)] {
            if !lines
                .iter()
                .any(|line| line.starts_with(&format!("{key} ")))
            {
                lines.push(format!("{key} = {value}"));
            }
        }
        format!("[[events.rules]]\n{}", lines.join("\n"))
    });
    (
        lacework,
        table("[poll]", POLL, 1..6),
        table("[state]", STATE, 1..3),
        table("[events]", EVENTS, 0..2),
        table("[telemetry]", TELEMETRY, 1..3),
        vec(rule, 0..3),
        vec(sink, 1..3),
    )
        .prop_map(|(lacework, poll, state, events, telemetry, rules, sinks)| {
            let mut parts = vec![lacework];
            parts.extend([poll, state, events, telemetry].into_iter().flatten());
            parts.extend(rules);
            parts.extend(sinks);
            parts
        })
        .prop_shuffle()
        .prop_map(|parts| parts.join("\n"))
}

/// Lines `key = value` with distinct keys of `keys` (and now and then an unknown key).
fn entries(
    keys: &'static [(&'static str, Kind)],
    n_entries: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<String>> {
    vec(entry(keys), n_entries).prop_map(|lines| {
        let mut seen = std::collections::HashSet::new();
        lines
            .into_iter()
            .filter(|line| seen.insert(line.split(' ').next().unwrap_or_default().to_string()))
            .collect()
    })
}

/// `key = value` with a key of `keys` (or, now and then, an unknown key).
fn entry(keys: &'static [(&'static str, Kind)]) -> impl Strategy<Value = String> {
    prop_oneof![
        // One odd value in a document of usual ones gets past the other checks to its own.
        12 => select(keys).prop_flat_map(|(key, kind)| {
            prop_oneof![
                18 => usual(kind),
                1 => odd(kind),
                1 => any_kind_value(),
            ]
            .prop_map(move |value| format!("{key} = {value}"))
        }),
        1 => (select(&["windw", "typ", "secret_files", "lacework", "a.b", "\"quoted key\""][..]),
              any_kind_value())
            .prop_map(|(key, value)| format!("{key} = {value}")),
    ]
}

/// A TOML value of any type.
fn any_kind_value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(USUAL_DURATIONS).prop_map(toml_string),
        1 => select(ODD_DURATIONS).prop_map(toml_string),
        2 => json::text().prop_map(|text| toml_string(&text)),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => select(&["0", "-1", "1", "9223372036854775807", "1e3", "1.5", "inf", "nan", "true",
                      "false", "[]", "{}", "1979-05-27T07:32:00Z", "07:32:00", "0x10", "0o7",
                      "\"\"", "''", "[\"a\", 1]", "{ a = 1 }"][..])
            .prop_map(str::to_string),
    ]
}

/// A value of `kind` an operator would write.
fn usual(kind: Kind) -> BoxedStrategy<String> {
    match kind {
        Kind::Duration => select(USUAL_DURATIONS).prop_map(toml_string).boxed(),
        _ => select(values(kind).0).prop_map(str::to_string).boxed(),
    }
}

/// A value of `kind` that is out of range, malformed or of another type.
fn odd(kind: Kind) -> BoxedStrategy<String> {
    let text = json::text().prop_map(|text| toml_string(&text));
    match kind {
        Kind::Duration => select(ODD_DURATIONS).prop_map(toml_string).boxed(),
        Kind::Text | Kind::Pattern => {
            prop_oneof![select(values(kind).1).prop_map(str::to_string), text].boxed()
        }
        _ => select(values(kind).1).prop_map(str::to_string).boxed(),
    }
}

/// The usual and the odd values of `kind`, written as TOML (durations are listed above).
fn values(kind: Kind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        Kind::Account => (
            &[r#""acme""#, r#""acme.fra.lacework.net""#, r#""ACME""#],
            &[
                r#""""#,
                r#""a b""#,
                r#""ácme""#,
                r#""acme.lacework.net:443""#,
                r#""https://acme.lacework.net""#,
                r#""a..b""#,
                r#""-""#,
            ],
        ),
        Kind::Url => (
            &[
                r#""https://acme.lacework.net""#,
                r#""http://127.0.0.1:8080""#,
                r#""https://collector.example.com/lacework""#,
            ],
            &[
                r#""http://[::1]:9/x""#,
                r#""http://10.0.0.1""#,
                r#""https://""#,
                r#""ftp://x""#,
                r#""not a url""#,
                r#""https://h/x?x=1#f""#,
                r#""https://user:pw@h/""#,
                r#""""#,
            ],
        ),
        Kind::Text => (
            &[
                r#""acme-sub1""#,
                r#""exporter""#,
                r#""k""#,
                r#""lacework:audit:lifecycle""#,
            ],
            &[r#""""#, r#"" ""#],
        ),
        Kind::Path => (
            &[
                r#""/run/secret""#,
                r#""$CREDENTIALS_DIRECTORY/secret""#,
                r#""/etc/ssl/ca.pem""#,
            ],
            &[
                r#""$CREDENTIALS_DIRECTORY""#,
                r#""relative/file""#,
                r#""""#,
                r#""/""#,
                r#""$HOME/x""#,
                r#""${CREDENTIALS_DIRECTORY}/x""#,
            ],
        ),
        Kind::Bool => (&["true", "false"], &["1", r#""yes""#]),
        Kind::Duration => (&[], &[]),
        Kind::Count => (
            &["1", "3", "500", "5000", "500000"],
            &[
                "0",
                "-1",
                "4294967295",
                "4294967296",
                "9223372036854775807",
                "1.5",
                r#""3""#,
            ],
        ),
        Kind::Rate => (
            &[r#""384/1h""#, r#""480/1h""#, r#""1/1s""#],
            &[
                r#""0/1h""#,
                r#""1/0s""#,
                r#""4294967296/1h""#,
                r#""/""#,
                r#""1/""#,
                r#""1/500000000000y""#,
                r#""1/18446744073709551615s""#,
                "384",
            ],
        ),
        Kind::Include => (
            &[r#""lifecycle""#, r#""all""#],
            &[r#""ALL""#, r#""none""#, "true"],
        ),
        Kind::EventType => (
            &[
                r#""USER_CREATED""#,
                r#""user-deleted""#,
                r#""API_KEY_DISABLED""#,
            ],
            &[r#""AUDIT""#, r#""USER_EXPLODED""#, r#""""#],
        ),
        Kind::Pattern => (
            &[
                r#""^member onboarded$""#,
                r#""(?i)ü""#,
                r#""\\p{Greek}+""#,
                r#""key (?:gone|retired)""#,
            ],
            &[
                r#"".""#,
                r#""""#,
                r#""(""#,
                r#""[""#,
                r#""a{99999999}""#,
                r#""(a*)*b""#,
                r#""\\""#,
            ],
        ),
        Kind::Fields => (
            &[r#"["userAction"]"#, r#"["eventName", "eventDescription"]"#],
            &["[]", r#"["userName"]"#, r#""userAction""#],
        ),
        Kind::Listen => (
            &[r#""127.0.0.1:9464""#, r#""[::1]:0""#],
            &[r#""0.0.0.0:99999""#, r#""localhost:9464""#, r#""""#],
        ),
        Kind::SinkType => (
            &[r#""stdout""#],
            &[r#""kafka""#, r#""webhook""#, r#""carrier-pigeon""#, r#""""#],
        ),
        Kind::Brokers => (
            &[r#""127.0.0.1:9092""#, r#""kafka-1:9093,kafka-2:9093""#],
            &[r#""""#, r#"",""#, r#""a b""#],
        ),
        Kind::Topic => (
            &[
                r#""lacework.audit.lifecycle""#,
                r#""lacework.{account}.{type}""#,
            ],
            &[
                r#""{""#,
                r#""}""#,
                r#""{unknown}""#,
                r#""""#,
                r#""a/b""#,
                r#""ü""#,
                r#""{type}{type}{account}""#,
            ],
        ),
        Kind::KafkaKey => (
            &[
                r#""target""#,
                r#""actor""#,
                r#""account""#,
                r#""id""#,
                r#""none""#,
            ],
            &[r#""other""#],
        ),
        Kind::Format => (
            &[
                r#""json""#,
                r#""ndjson""#,
                r#""json_array""#,
                r#""splunk_hec""#,
            ],
            &[r#""xml""#],
        ),
        Kind::Properties => (
            &[r#"{ "security.protocol" = "SASL_SSL" }"#, "{}"],
            &[
                r#"{ "bootstrap.servers" = "x" }"#,
                r#"{ "enable.idempotence" = "false" }"#,
                r#"{ "message.timeout.ms" = 1 }"#,
                r#"{ "a" = { b = 1 } }"#,
            ],
        ),
        Kind::Size => (
            &[r#""1MiB""#, r#""512KiB""#, r#""1MB""#],
            &[
                r#""0""#,
                "0",
                r#""18446744073709551615GiB""#,
                r#""1XB""#,
                r#""""#,
                "-1",
                "18446744073709551615",
            ],
        ),
        Kind::Headers => (
            &[r#"{ "X-Team" = "soc" }"#, "{}"],
            &[
                r#"{ "Authorization" = "x" }"#,
                r#"{ "bad header" = "x" }"#,
                r#"{ "X" = "a\nb" }"#,
                r#"{ "X" = 1 }"#,
            ],
        ),
        Kind::Basic => (
            &[r#"{ user = "u", password_file = "/run/p" }"#],
            &[r#"{ user = "u" }"#, "{}", r#""u:p""#],
        ),
        Kind::Compression => (&[r#""gzip""#, r#""none""#], &[r#""zstd""#, r#""""#]),
    }
}

/// A TOML basic string; JSON's escapes are valid TOML escapes for every character.
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}
