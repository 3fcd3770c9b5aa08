//! The composition root: from a configuration file to running parts, and the daemon's
//! lifecycle. Every command gets its parts here; no command builds them itself.
//!
//! - `Loaded::load` reads and validates the configuration and its secrets.
//! - `Parts::build` builds the API client, the normalizer and the sinks a walk needs.
//! - `Daemon::run` is the `run` command's body with everything the environment decides handed
//!   in (shutdown, reloads, the service manager's notifier), so it runs in-process in tests.
//!
//! Invariant: nothing here reads argv or environment variables; `cli` passes down what it read.

mod classify;
mod daemon;
mod error;
mod loaded;
mod parts;

pub(crate) use crate::poller::{ReplayOutcome, ReplayStep};
pub(crate) use classify::{Summary, classify_records};
pub(crate) use daemon::Daemon;
pub(crate) use error::Error;
pub(crate) use loaded::{Loaded, live_stream_of, open_store, open_store_exclusive, read_config};
pub(crate) use parts::Parts;
