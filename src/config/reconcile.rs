//! `[reconcile]`: comparing each account's user list with its last snapshot.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// How often the user inventory is compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// How often each account's user list (`TeamUsers`, or the legacy `TeamMembers`) is
    /// compared with the previous snapshot; a change the audit log did not deliver becomes an
    /// event with `source = "reconcile"`. One request each time. `"0s"` turns it off.
    #[serde(default = "default_every", with = "humantime_serde")]
    pub every: Duration,
}

fn default_every() -> Duration {
    Duration::from_secs(3600)
}

impl Default for ReconcileConfig {
    fn default() -> ReconcileConfig {
        ReconcileConfig {
            every: default_every(),
        }
    }
}

impl ReconcileConfig {
    /// Whether reconciliation runs.
    pub fn enabled(&self) -> bool {
        !self.every.is_zero()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled() && self.every < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "reconcile.every",
                "must be at least 1s, or \"0s\" to turn reconciliation off",
            ));
        }
        Ok(())
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        if self.enabled() && self.every < Duration::from_secs(300) {
            vec![format!(
                "reconcile.every = {} spends a request of the API's 480 an hour that often",
                humantime::format_duration(self.every)
            )]
        } else {
            Vec::new()
        }
    }
}
