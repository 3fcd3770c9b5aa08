//! The Lacework API v2 client: token exchange, AuditLogs paging, retries.
//!
//! Invariant: this module knows nothing about sinks, checkpoints or SQLite. It turns a time
//! range into pages of raw records and reports errors that say whether retrying can help.

mod audit_logs;
mod auth;
mod client;
mod error;

pub use audit_logs::{AuditLog, AuditLogPage, CreatedTime, parse_time_text};
pub use client::{AuditLogPager, ClientOptions, LaceworkClient, format_api_time};
pub use error::Error;
