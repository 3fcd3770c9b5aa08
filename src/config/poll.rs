//! The `[poll]` and `[state]` sections: how time is walked and where progress is kept.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// How the AuditLogs stream is walked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// Time between polls once caught up. The API allows 480 requests an hour.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Longest time window per AuditLogs query (at most 7d). Catching up walks several.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// Never query closer to now than this, so records that land late are still in the
    /// window when it is read.
    #[serde(default = "default_settle", with = "humantime_serde")]
    pub settle: Duration,
    /// Where the first run starts when there is no checkpoint: this long before now.
    #[serde(default = "default_lookback", with = "humantime_serde")]
    pub lookback: Duration,
    /// Each query also re-reads this much time before the checkpoint. Records seen before are
    /// dropped by id, and records that landed later than `settle` but within this margin
    /// are still caught. Costs no extra requests.
    #[serde(default = "default_overlap", with = "humantime_serde")]
    pub overlap: Duration,
    /// How far back a re-sweep reads: recent time is read again on a schedule so that records
    /// Lacework makes visible late (up to this long after their `createdTime`) are still
    /// delivered, once. `0s` turns re-sweeps off.
    #[serde(default = "default_resweep", with = "humantime_serde")]
    pub resweep: Duration,
    /// How often a re-sweep runs.
    #[serde(default = "default_resweep_every", with = "humantime_serde")]
    pub resweep_every: Duration,
    /// The most rows the API returns for one query across its pages (Lacework: 500,000). A
    /// window holding more is read as shorter windows instead of silently incomplete. Change
    /// only if Lacework changes the limit.
    #[serde(default = "default_max_result_rows")]
    pub max_result_rows: u64,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_window() -> Duration {
    Duration::from_secs(86_400)
}
fn default_settle() -> Duration {
    Duration::from_secs(120)
}
fn default_lookback() -> Duration {
    Duration::from_secs(86_400)
}
fn default_overlap() -> Duration {
    Duration::from_secs(600)
}
fn default_resweep() -> Duration {
    Duration::from_secs(86_400)
}
fn default_resweep_every() -> Duration {
    Duration::from_secs(900)
}
fn default_max_result_rows() -> u64 {
    500_000
}

impl Default for PollConfig {
    fn default() -> PollConfig {
        PollConfig {
            interval: default_interval(),
            window: default_window(),
            settle: default_settle(),
            lookback: default_lookback(),
            overlap: default_overlap(),
            resweep: default_resweep(),
            resweep_every: default_resweep_every(),
            max_result_rows: default_max_result_rows(),
        }
    }
}

/// The longest window the API is known to accept on its search endpoints.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 86_400);
/// How far back the API v2 lets one search (`V2ApiMaxSearchHistoryDays` in the Go SDK).
const MAX_HISTORY: Duration = Duration::from_secs(92 * 86_400);

impl PollConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.window > MAX_WINDOW {
            return Err(ConfigError::invalid(
                "poll.window",
                format!(
                    "{} is longer than the API's 7d maximum per query",
                    humantime::format_duration(self.window)
                ),
            ));
        }
        if self.window < Duration::from_secs(1) {
            return Err(ConfigError::invalid("poll.window", "must be at least 1s"));
        }
        if self.interval < Duration::from_secs(1) {
            return Err(ConfigError::invalid("poll.interval", "must be at least 1s"));
        }
        // Bounded so that time arithmetic on them cannot overflow (a huge settle would wrap
        // around and read into the future).
        for (key, value) in [
            ("poll.interval", self.interval),
            ("poll.settle", self.settle),
            ("poll.resweep_every", self.resweep_every),
        ] {
            if value > MAX_WINDOW {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} is longer than 7d", humantime::format_duration(value)),
                ));
            }
        }
        if self.lookback > MAX_HISTORY {
            return Err(ConfigError::invalid(
                "poll.lookback",
                format!(
                    "{} reaches further back than the 92 days the API keeps searchable",
                    humantime::format_duration(self.lookback)
                ),
            ));
        }
        if self.max_result_rows == 0 {
            return Err(ConfigError::invalid(
                "poll.max_result_rows",
                "must be at least 1",
            ));
        }
        if self.overlap > MAX_WINDOW {
            return Err(ConfigError::invalid("poll.overlap", "must be at most 7d"));
        }
        if self.resweep > MAX_WINDOW {
            return Err(ConfigError::invalid(
                "poll.resweep",
                format!(
                    "{} is longer than 7d: every re-sweep would read that much again",
                    humantime::format_duration(self.resweep)
                ),
            ));
        }
        if !self.resweep.is_zero() && self.resweep_every < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "poll.resweep_every",
                "must be at least 1s (set poll.resweep = \"0s\" to turn re-sweeps off)",
            ));
        }
        Ok(())
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.interval < Duration::from_secs(10) {
            warnings.push(format!(
                "poll.interval = {} spends much of the API's 480 requests an hour",
                humantime::format_duration(self.interval)
            ));
        }
        if !self.resweep.is_zero() && self.resweep_every < self.interval {
            warnings.push(format!(
                "poll.resweep_every = {} is shorter than poll.interval: re-sweeps will cost more requests than live polls",
                humantime::format_duration(self.resweep_every)
            ));
        }
        if self.settle < Duration::from_secs(10) {
            warnings.push(format!(
                "poll.settle = {} gives late records little time to land",
                humantime::format_duration(self.settle)
            ));
        }
        warnings
    }
}

/// Where the checkpoint database lives and how long delivered ids are remembered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// SQLite file holding the checkpoint, delivered ids and replay progress.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// How long ids of delivered events are remembered, to drop re-read records. Must exceed
    /// `poll.resweep + poll.window + poll.overlap`; by default 7 days, or that plus one day
    /// when longer.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
}

fn default_state_path() -> PathBuf {
    PathBuf::from("/var/lib/lacework-audit-exporter/state.db")
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig {
            path: default_state_path(),
            retention: None,
        }
    }
}

impl StateConfig {
    /// The retention in force: as configured, or 7 days, or what re-reads need
    /// (`poll.resweep + poll.window + poll.overlap`) plus one day when that is longer.
    pub fn effective_retention(&self, poll: &PollConfig) -> Duration {
        self.retention.unwrap_or(
            (reread_span(poll) + Duration::from_secs(86_400)).max(Duration::from_secs(7 * 86_400)),
        )
    }

    pub(crate) fn validate(&self, poll: &PollConfig) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid("state.path", "is empty"));
        }
        let needed = reread_span(poll);
        if let Some(retention) = self.retention
            && retention <= needed
        {
            return Err(ConfigError::invalid(
                "state.retention",
                format!(
                    "{} must be longer than poll.resweep + poll.window + poll.overlap ({}), or re-read records would be emitted again: raise state.retention or lower poll.resweep",
                    humantime::format_duration(retention),
                    humantime::format_duration(needed)
                ),
            ));
        }
        Ok(())
    }
}

/// How far back of the cursor records are ever read again: delivered ids must be kept at
/// least this long.
fn reread_span(poll: &PollConfig) -> Duration {
    poll.resweep + poll.window + poll.overlap
}
