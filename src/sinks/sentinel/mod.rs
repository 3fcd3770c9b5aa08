//! The Microsoft Sentinel sink: rows for a custom Log Analytics table through the Azure
//! Monitor Logs Ingestion API (a data collection rule's stream), with an Entra app's
//! client-credentials token.

mod config;
mod rows;
mod sink;
mod token;

pub use config::{Compression, SentinelConfig};
pub use sink::SentinelSink;
