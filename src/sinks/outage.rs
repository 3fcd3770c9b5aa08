//! How a sink that retries on its own (webhook, Elasticsearch, Sentinel) lives through an
//! outage: one WARN when the destination starts failing and one INFO when it recovers (not a
//! line per attempt), `lae_sink_up` following it for `/readyz`, and the waits between
//! attempts beating the heartbeat so that the watchdog and `/livez` see a sink being retried,
//! not a hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One sink's outage state.
pub struct Outage {
    sink: String,
    /// The destination as logs name it, e.g. "Sentinel ingestion".
    what: &'static str,
    failing: AtomicBool,
}

impl Outage {
    /// The state of sink `sink`, whose destination logs call `what`.
    pub fn new(sink: &str, what: &'static str) -> Outage {
        Outage {
            sink: sink.to_string(),
            what,
            failing: AtomicBool::new(false),
        }
    }

    /// The destination accepted a request.
    pub fn recovered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(sink = %self.sink, "{} recovered: batches are accepted again.", self.what);
            crate::metrics::emit::sink_up(&self.sink, true);
        }
    }

    /// Attempt `attempt` failed with `message`: logs it (WARN the first time) and waits
    /// `wait` before the next.
    pub async fn wait(&self, message: &str, wait: Duration, attempt: u32) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                sink = %self.sink,
                error = %message,
                wait_ms = wait.as_millis() as u64,
                "{} failed; holding the batch and retrying until it is accepted.",
                self.what
            );
            crate::metrics::emit::sink_up(&self.sink, false);
        } else {
            tracing::debug!(sink = %self.sink, error = %message, attempt, "{} still failing.", self.what);
        }
        crate::heartbeat::sleep(wait).await;
    }
}
