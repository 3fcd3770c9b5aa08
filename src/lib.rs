//! lacework-audit-exporter: polls Lacework (FortiCNAPP) AuditLogs and exports user and
//! API-key lifecycle events to sinks, with a SQLite checkpoint so nothing is lost or repeated.
//!
//! Data flows `lacework` -> `poller` -> `normalize` -> `sinks`, with `checkpoint` beside the
//! poller. `exporter` builds and runs them; `cli` turns argv, the environment and signals into
//! calls of `exporter`; `config` describes them. See ARCHITECTURE.md.
//!
//! Only `cli` is public (the binary calls it); everything else is crate-private so that the
//! compiler reports any item nothing uses.

mod backoff;
mod build_info;
mod checkpoint;
pub mod cli;
mod config;
mod event;
mod exporter;
mod formats;
#[cfg(test)]
mod fuzz;
mod heartbeat;
mod lacework;
pub mod memory;
mod metrics;
mod normalize;
mod poller;
mod service;
mod sinks;
mod telemetry;
mod text;
mod time;
mod tls;
