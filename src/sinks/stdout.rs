//! The stdout sink: one JSON event per line. The only module that writes to standard output
//! (besides CLI reports).

use serde::Deserialize;
use std::io::Write;

use crate::config::ConfigError;
use crate::event::LifecycleEvent;
use crate::formats::EventFormat;
use crate::sinks::{Error, Sink};

/// `[[sinks]] type = "stdout"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Sink name for logs and `replay --sink`; default `stdout`.
    pub name: Option<String>,
    /// The line written per event: `json` (the exporter's own event), `ocsf` (OCSF 1.8.0) or
    /// `ecs` (Elastic Common Schema).
    #[serde(default)]
    pub format: EventFormat,
}

impl StdoutConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match &self.name {
            Some(name) if name.trim().is_empty() => Err(ConfigError::invalid("name", "is empty")),
            _ => Ok(()),
        }
    }
}

/// Writes NDJSON to standard output and flushes after every batch.
pub struct StdoutSink {
    name: String,
    format: EventFormat,
}

impl StdoutSink {
    /// A sink named `name` writing `format`.
    pub fn new(name: String, format: EventFormat) -> StdoutSink {
        StdoutSink { name, format }
    }
}

#[async_trait::async_trait]
impl Sink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        let mut buffer = Vec::with_capacity(batch.len() * 512);
        for event in batch {
            crate::formats::encode_line(self.format, event, &mut buffer);
        }
        // One blocking write of the whole batch under the stdout lock: lines of two sinks (or
        // two batches) never interleave, and the buffer is not copied again.
        let written = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&buffer)?;
            out.flush()
        })
        .await;
        // A closed or broken stdout will not heal: a reader that went away must not make the
        // checkpoint advance.
        let fatal = |message: String| Error::Fatal {
            sink: self.name.clone(),
            message,
        };
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(fatal(format!("cannot write to standard output: {error}"))),
            Err(error) => Err(fatal(format!(
                "the write to standard output failed: {error}"
            ))),
        }
    }
}
