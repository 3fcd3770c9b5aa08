//! The file sink: one event per line in a local file, exactly once across `kill -9`.
//!
//! Writes are flushed to disk before the sink acknowledges, and the checkpoint stores the
//! file's identity and length with each acknowledgement; at start, a file longer than that
//! is cut back to it, so a crash between a write and its commit leaves neither a duplicate
//! nor a torn line. This is the file a Splunk Universal Forwarder, Filebeat or Elastic
//! Agent, Wazuh or the Google SecOps forwarder tails.

mod config;
mod rotate;
mod sink;

pub use config::FileConfig;
pub use sink::FileSink;
