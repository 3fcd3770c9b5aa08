//! The Elasticsearch (and OpenSearch) sink: `_bulk` `create` actions with the event id as
//! `_id`, so the index holds each event once whatever the crash.

mod bulk;
mod config;
mod sink;

pub use config::{Compression, ElasticsearchConfig};
pub use sink::ElasticsearchSink;
