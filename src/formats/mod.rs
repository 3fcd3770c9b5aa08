//! Output formats of an event: the exporter's own JSON (`lacework-audit-exporter/v1`), OCSF
//! 1.8.0 and the Elastic Common Schema. Every sink that takes `format` encodes through
//! `encode`, so one event reads the same in every destination that asked for the same format.
//!
//! Invariant: pure functions of an event; no I/O, no configuration beyond the format itself.

mod ecs;
mod ocsf;

use serde::Deserialize;

use crate::event::LifecycleEvent;

/// How an event is written, selected by a sink's `format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    /// The exporter's own event JSON (schema `lacework-audit-exporter/v1`).
    #[default]
    #[serde(alias = "ndjson")]
    Json,
    /// OCSF 1.8.0: Account Change (3001), Authentication (3002), Entity Management (3004).
    Ocsf,
    /// Elastic Common Schema.
    Ecs,
}

/// Appends `event` encoded as `format` to `out`: one JSON object, no newline.
pub fn encode(format: EventFormat, event: &LifecycleEvent, out: &mut Vec<u8>) {
    match format {
        EventFormat::Json => {
            event.write_json_line(out);
            out.pop();
        }
        EventFormat::Ocsf => ocsf::encode(event, out),
        EventFormat::Ecs => ecs::encode(event, out),
    }
}

/// The schema an encoded event follows, e.g. for a Kafka `schema` header.
pub fn schema_name(format: EventFormat, event: &LifecycleEvent) -> &'static str {
    match format {
        EventFormat::Json => event.schema,
        EventFormat::Ocsf => ocsf::SCHEMA_NAME,
        EventFormat::Ecs => ecs::SCHEMA_NAME,
    }
}

/// Appends `event` encoded as `format` and a newline to `out`.
pub fn encode_line(format: EventFormat, event: &LifecycleEvent, out: &mut Vec<u8>) {
    match format {
        // The hot path of stdout and the file sink: straight to the buffer.
        EventFormat::Json => event.write_json_line(out),
        _ => {
            encode(format, event, out);
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests;
