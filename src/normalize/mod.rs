//! From raw audit records to `LifecycleEvent`s: classification (`classify`), the user acted
//! upon (`target`), stable ids (`id`), and `Normalizer::normalize_page`, the one call per page
//! the poller's normalize stage makes.
//!
//! Invariant: wire types (`lacework::AuditLog`) and the output type (`event::LifecycleEvent`)
//! are separate and converted by hand here; this module does no I/O.

mod classify;
mod id;
mod normalizer;
mod reconcile;
mod shapes;
mod target;

pub(crate) use id::IdAssigner;
pub(crate) use normalizer::{Explained, NormalizedPage, Normalizer, WindowState};
pub(crate) use reconcile::changes as inventory_changes;
