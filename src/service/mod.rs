//! Running under a service manager: the sd_notify protocol, the watchdog tied to progress,
//! and the metrics and health listener.

mod listener;
mod notify;
mod progress;

pub use listener::{HealthPolicy, serve as serve_telemetry};
pub use notify::Notifier;
pub use progress::Progress;
