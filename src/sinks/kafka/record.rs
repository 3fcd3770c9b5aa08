//! One event as one Kafka message: topic, key, headers and value, computed before anything
//! is enqueued so a batch is encoded once however often it is retried.

use rdkafka::message::{Header, OwnedHeaders};

use crate::event::LifecycleEvent;
use crate::formats::{self, EventFormat};
use crate::sinks::kafka::{KafkaKey, TopicTemplate};

/// An encoded message, ready to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The rendered topic.
    pub topic: String,
    /// The partition key; `None` is a null key.
    pub key: Option<String>,
    /// `(name, value)` headers; a `None` value is a null header value. `schema` names the
    /// value's schema: the event's own, `ocsf/1.8.0` or `ecs/9.4.0`.
    pub headers: Vec<(&'static str, Option<String>)>,
    /// The event in the sink's format; for `json` exactly one stdout line without its newline.
    pub value: Vec<u8>,
}

impl Message {
    /// Encodes `event`.
    pub fn encode(
        event: &LifecycleEvent,
        topic: &TopicTemplate,
        key: KafkaKey,
        format: EventFormat,
    ) -> Message {
        let mut value = Vec::with_capacity(512);
        formats::encode(format, event, &mut value);
        let key = match key {
            KafkaKey::Target => event.target.clone(),
            KafkaKey::Actor => event.actor.clone(),
            KafkaKey::Account => event.account.clone(),
            KafkaKey::Id => Some(event.id.to_string()),
            KafkaKey::None => None,
        };
        Message {
            topic: topic.render(event),
            key,
            headers: vec![
                (
                    "schema",
                    Some(formats::schema_name(format, event).to_string()),
                ),
                ("type", Some(event.event_type.as_str().to_string())),
                ("id", Some(event.id.to_string())),
                ("account", event.account.clone()),
            ],
            value,
        }
    }

    /// The headers in librdkafka's form.
    pub fn owned_headers(&self) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            headers = headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;
    use crate::event::{RecordId, SCHEMA};

    fn event() -> LifecycleEvent {
        LifecycleEvent {
            id: RecordId::from_hex("0123456789abcdef0123456789abcdef").unwrap(),
            target: None,
            ..crate::sinks::testing::event(0)
        }
    }

    fn check(key: KafkaKey, expected: Option<&str>) {
        let template = TopicTemplate::parse("lacework.{type}").unwrap();
        let message = Message::encode(&event(), &template, key, EventFormat::Json);
        assert_eq!(message.key.as_deref(), expected, "{key:?}");
    }

    #[test]
    fn keys_follow_the_setting() {
        check(KafkaKey::Target, None);
        check(KafkaKey::Actor, Some("admin@acme.com"));
        check(KafkaKey::Account, Some("ACME"));
        check(KafkaKey::Id, Some("0123456789abcdef0123456789abcdef"));
        check(KafkaKey::None, None);
    }

    #[test]
    fn value_is_the_stdout_line_and_headers_carry_the_envelope() {
        let event = event();
        let template = TopicTemplate::parse("lacework.{type}").unwrap();
        let message = Message::encode(&event, &template, KafkaKey::Id, EventFormat::Json);
        let mut line = Vec::new();
        event.write_json_line(&mut line);
        assert_eq!(message.value, line[..line.len() - 1]);
        assert_eq!(message.topic, "lacework.USER_CREATED");
        let headers = message.owned_headers();
        let pairs: Vec<(String, Option<String>)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("schema".to_string(), Some(SCHEMA.to_string())),
                ("type".to_string(), Some("USER_CREATED".to_string())),
                (
                    "id".to_string(),
                    Some("0123456789abcdef0123456789abcdef".to_string())
                ),
                ("account".to_string(), Some("ACME".to_string())),
            ]
        );
    }

    #[test]
    fn ocsf_and_ecs_values_say_so_in_the_schema_header() {
        let template = TopicTemplate::parse("lacework.{type}").unwrap();
        for (format, schema, probe) in [
            (EventFormat::Ocsf, "ocsf/1.8.0", "/metadata/uid"),
            (EventFormat::Ecs, "ecs/9.4.0", "/event/id"),
        ] {
            let message = Message::encode(&event(), &template, KafkaKey::Id, format);
            let value: serde_json::Value = serde_json::from_slice(&message.value).unwrap();
            assert_eq!(
                value.pointer(probe).unwrap(),
                "0123456789abcdef0123456789abcdef"
            );
            assert_eq!(message.headers[0], ("schema", Some(schema.to_string())));
        }
    }
}
