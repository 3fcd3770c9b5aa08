//! `[[sinks]] type = "sentinel"`: pure validation, no I/O. (Skeleton: the sink's change fills it.)

use serde::Deserialize;

use crate::config::ConfigError;

/// Configuration of a sentinel sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// Sink name for logs and `replay --sink`; default `sentinel`.
    pub name: Option<String>,
}

impl SentinelConfig {
    /// The sink's name: `name` if set, else `sentinel`.
    pub fn sink_name(&self) -> &str {
        self.name.as_deref().unwrap_or("sentinel")
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Warnings about legal but risky settings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}
