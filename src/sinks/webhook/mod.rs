//! The webhook sink: batched, signed, retried HTTP POSTs to a SIEM collector.

mod config;
mod format;
mod hec_ack;
mod signing;
mod sink;

pub use config::{Compression, WebhookConfig, WebhookFormat};
pub use signing::Signer;
pub use sink::WebhookSink;
