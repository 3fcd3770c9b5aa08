//! The Lacework API v2 client: token exchange, AuditLogs paging, retries.
//!
//! Invariant: this module knows nothing about sinks, checkpoints or SQLite. It turns a time
//! range into pages of raw records and reports errors that say whether retrying can help.

mod audit_logs;
mod auth;
mod client;
mod clock;
mod error;
mod governor;
mod http;
mod inventory;

pub use audit_logs::{AuditLog, AuditLogPage};
pub use client::{AuditLogPager, ClientOptions, LaceworkClient};
pub use error::Error;
pub use governor::Priority;
pub use inventory::{InventoryUser, is_refusal};
