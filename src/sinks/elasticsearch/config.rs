//! `[[sinks]] type = "elasticsearch"`: pure validation, no I/O. (Skeleton: the sink's change fills it.)

use serde::Deserialize;

use crate::config::ConfigError;

/// Configuration of a elasticsearch sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Sink name for logs and `replay --sink`; default `elasticsearch`.
    pub name: Option<String>,
}

impl ElasticsearchConfig {
    /// The sink's name: `name` if set, else `elasticsearch`.
    pub fn sink_name(&self) -> &str {
        self.name.as_deref().unwrap_or("elasticsearch")
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Warnings about legal but risky settings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}
