//! Request bodies: events encoded one by one, then framed per format into batches that
//! respect `batch_max_events` and `batch_max_bytes`.

use serde_json::json;

use crate::event::LifecycleEvent;
use crate::formats;
use crate::sinks::webhook::WebhookFormat;
use crate::time::format_time_ms;

/// Splunk HEC envelope settings.
#[derive(Debug, Clone, Default)]
pub struct HecFields {
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
    pub host: Option<String>,
}

/// One request's worth of events.
pub struct Chunk<'a> {
    /// The events, in order.
    pub events: &'a [LifecycleEvent],
    /// The uncompressed body.
    pub body: Vec<u8>,
}

/// Encodes one event as the format wants it (without framing).
pub fn encode_event(format: WebhookFormat, hec: &HecFields, event: &LifecycleEvent) -> Vec<u8> {
    match format {
        WebhookFormat::Ndjson
        | WebhookFormat::JsonArray
        | WebhookFormat::Ocsf
        | WebhookFormat::Ecs => {
            let mut out = Vec::with_capacity(512);
            formats::encode(format.event_format(), event, &mut out);
            out
        }
        WebhookFormat::SplunkHec => {
            let mut envelope = json!({
                "time": event.time.map(|ms| ms as f64 / 1000.0),
                "host": hec.host.clone().or_else(|| event.account.clone()),
                "source": hec.source.as_deref().unwrap_or("lacework-audit-exporter"),
                "sourcetype": hec.sourcetype.as_deref().unwrap_or("lacework:audit:lifecycle"),
                "event": event,
            });
            if let Some(index) = &hec.index {
                envelope["index"] = json!(index);
            }
            if event.time.is_none() {
                envelope.as_object_mut().expect("object").remove("time");
            }
            serde_json::to_vec(&envelope).expect("envelope serializes")
        }
    }
}

/// The `Content-Type` of a format.
pub fn content_type(format: WebhookFormat) -> &'static str {
    match format {
        WebhookFormat::Ndjson | WebhookFormat::Ocsf | WebhookFormat::Ecs => "application/x-ndjson",
        WebhookFormat::JsonArray | WebhookFormat::SplunkHec => "application/json",
    }
}

/// Frames already encoded events into one body.
pub fn frame(format: WebhookFormat, encoded: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = encoded.iter().map(|e| e.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(total);
    match format {
        WebhookFormat::Ndjson
        | WebhookFormat::SplunkHec
        | WebhookFormat::Ocsf
        | WebhookFormat::Ecs => {
            for event in encoded {
                body.extend_from_slice(event);
                body.push(b'\n');
            }
        }
        WebhookFormat::JsonArray => {
            body.push(b'[');
            for (idx, event) in encoded.iter().enumerate() {
                if idx > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(event);
            }
            body.push(b']');
        }
    }
    body
}

/// Splits `events` into chunks of at most `max_events` events and, unless a single event is
/// larger, at most `max_bytes` bytes of body.
pub fn chunk<'a>(
    events: &'a [LifecycleEvent],
    format: WebhookFormat,
    hec: &HecFields,
    max_events: usize,
    max_bytes: usize,
) -> Vec<Chunk<'a>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    let mut size = 2;
    for (idx, event) in events.iter().enumerate() {
        let one = encode_event(format, hec, event);
        let would_be = size + one.len() + 1;
        if !encoded.is_empty() && (encoded.len() >= max_events || would_be > max_bytes) {
            chunks.push(Chunk {
                events: &events[start..idx],
                body: frame(format, &encoded),
            });
            start = idx;
            encoded.clear();
            size = 2;
        }
        size += one.len() + 1;
        encoded.push(one);
    }
    if !encoded.is_empty() {
        chunks.push(Chunk {
            events: &events[start..],
            body: frame(format, &encoded),
        });
    }
    chunks
}

/// The time of the first event, for log fields.
pub fn first_time(events: &[LifecycleEvent]) -> String {
    events
        .first()
        .and_then(|e| e.time)
        .and_then(format_time_ms)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SCHEMA;
    use crate::sinks::testing::event;

    #[test]
    fn chunks_respect_both_limits_and_keep_order() {
        let events: Vec<_> = (0..10).map(event).collect();
        let one = encode_event(WebhookFormat::Ndjson, &HecFields::default(), &events[0]).len();
        let by_count = chunk(
            &events,
            WebhookFormat::Ndjson,
            &HecFields::default(),
            4,
            1 << 20,
        );
        assert_eq!(
            by_count.iter().map(|c| c.events.len()).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let by_bytes = chunk(
            &events,
            WebhookFormat::Ndjson,
            &HecFields::default(),
            100,
            3 * (one + 1) + 2,
        );
        assert_eq!(
            by_bytes.iter().map(|c| c.events.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        let ids: Vec<_> = by_bytes
            .iter()
            .flat_map(|c| c.events.iter().map(|e| e.id))
            .collect();
        assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
        for c in &by_bytes {
            assert!(c.body.len() <= 3 * (one + 1) + 2);
            assert_eq!(
                c.body.iter().filter(|b| **b == b'\n').count(),
                c.events.len()
            );
        }
        // A single event over the limit is still sent, alone.
        let tiny = chunk(
            &events[..2],
            WebhookFormat::Ndjson,
            &HecFields::default(),
            100,
            10,
        );
        assert_eq!(tiny.len(), 2);
    }

    #[test]
    fn json_array_and_hec_bodies_parse() {
        // Whole seconds, so that HEC's float `time` compares exactly.
        let events: Vec<_> = (0..3)
            .map(|n| LifecycleEvent {
                time: Some(1_793_524_502_000 + 1_000 * i64::from(n)),
                ..event(n)
            })
            .collect();
        let chunks = chunk(
            &events,
            WebhookFormat::JsonArray,
            &HecFields::default(),
            10,
            1 << 20,
        );
        let array: Vec<serde_json::Value> = serde_json::from_slice(&chunks[0].body).unwrap();
        assert_eq!(array.len(), 3);
        let hec = HecFields {
            index: Some("security".into()),
            ..HecFields::default()
        };
        let chunks = chunk(&events, WebhookFormat::SplunkHec, &hec, 10, 1 << 20);
        let body = String::from_utf8(chunks[0].body.clone()).unwrap();
        let first: serde_json::Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        assert_eq!(first["time"], json!(1_793_524_502.0));
        assert_eq!(first["host"], "ACME");
        assert_eq!(first["sourcetype"], "lacework:audit:lifecycle");
        assert_eq!(first["index"], "security");
        assert_eq!(first["event"]["schema"], SCHEMA);
    }
}
