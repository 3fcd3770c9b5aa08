//! The `[telemetry]` section: the metrics and health listener.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, PollConfig};

/// Metrics and health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address serving Prometheus text on `/metrics`, liveness on `/livez` and readiness on
    /// `/readyz` (and `/healthz`, its older name), e.g. `"127.0.0.1:9464"`. Off when left out.
    pub listen: Option<SocketAddr>,
    /// `/readyz` answers 503 when the live checkpoint is further behind now than this.
    /// Must exceed `poll.settle + poll.interval`, the normal lag.
    #[serde(default = "default_health_max_lag", with = "humantime_serde")]
    pub health_max_lag: Duration,
    /// `/livez` answers 503 when the poll loop has neither progressed nor retried for this
    /// long: it hangs, and a restart may help. An outage being retried is not stuck. Keep it
    /// at the unit's `WatchdogSec=` (5 min), which applies the same rule.
    #[serde(default = "default_stuck_after", with = "humantime_serde")]
    pub stuck_after: Duration,
}

fn default_health_max_lag() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_stuck_after() -> Duration {
    Duration::from_secs(5 * 60)
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            listen: None,
            health_max_lag: default_health_max_lag(),
            stuck_after: default_stuck_after(),
        }
    }
}

impl TelemetryConfig {
    pub(crate) fn validate(&self, poll: &PollConfig) -> Result<(), ConfigError> {
        // Saturating: neither `poll.settle` nor `poll.interval` has an upper bound, and
        // "18446744073709551615s" in either overflowed `Duration` here and panicked (found by
        // the `config` fuzz target).
        if self.stuck_after < Duration::from_secs(10) {
            return Err(ConfigError::invalid(
                "telemetry.stuck_after",
                "must be at least 10s, and above the longest request timeout: a slow request is not a hang",
            ));
        }
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
