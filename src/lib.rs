//! lacework-audit-exporter: polls Lacework (FortiCNAPP) AuditLogs and exports user and
//! API-key lifecycle events to sinks, with a SQLite checkpoint so nothing is lost or repeated.
//!
//! Data flows `lacework` -> `poller` -> `event` -> `sinks`, with `checkpoint` beside the
//! poller. `cli` wires them; `config` describes them. See ARCHITECTURE.md.

pub mod backoff;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod event;
pub mod lacework;
pub mod metrics;
pub mod poller;
pub mod service;
pub mod sinks;
pub mod telemetry;
pub mod text;
pub mod tls;
