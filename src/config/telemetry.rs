//! The `[telemetry]` section: the metrics and health listener.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, PollConfig};

/// Metrics and health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address serving Prometheus text on `/metrics` and health on `/healthz`, e.g.
    /// `"127.0.0.1:9464"`. Off when left out.
    pub listen: Option<SocketAddr>,
    /// `/healthz` answers 503 when the live checkpoint is further behind now than this.
    /// Must exceed `poll.settle + poll.interval`, the normal lag.
    #[serde(default = "default_health_max_lag", with = "humantime_serde")]
    pub health_max_lag: Duration,
}

fn default_health_max_lag() -> Duration {
    Duration::from_secs(30 * 60)
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            listen: None,
            health_max_lag: default_health_max_lag(),
        }
    }
}

impl TelemetryConfig {
    pub(crate) fn validate(&self, poll: &PollConfig) -> Result<(), ConfigError> {
        // Saturating: neither `poll.settle` nor `poll.interval` has an upper bound, and
        // "18446744073709551615s" in either overflowed `Duration` here and panicked (found by
        // the `config` fuzz target).
        let normal = poll.settle.saturating_add(poll.interval);
        if self.health_max_lag <= normal {
            return Err(ConfigError::invalid(
                "telemetry.health_max_lag",
                format!(
                    "{} is not above poll.settle + poll.interval ({}), the lag of a healthy exporter",
                    humantime::format_duration(self.health_max_lag),
                    humantime::format_duration(normal)
                ),
            ));
        }
        Ok(())
    }
}
