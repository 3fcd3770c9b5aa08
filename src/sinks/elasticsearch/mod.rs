//! `[[sinks]] type = "elasticsearch"`.

mod config;
mod sink;

pub use config::ElasticsearchConfig;
pub use sink::ElasticsearchSink;
