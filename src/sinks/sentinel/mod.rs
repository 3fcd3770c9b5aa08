//! `[[sinks]] type = "sentinel"`.

mod config;
mod sink;

pub use config::SentinelConfig;
pub use sink::SentinelSink;
