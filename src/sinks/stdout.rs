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

/// Bytes of encoded lines written at a time: a batch of thousands of events goes out in
/// pieces of about this size instead of being held encoded whole (5,000 events are about
/// 7 MiB).
const WRITE_CHUNK: usize = 1 << 20;

/// Writes NDJSON to standard output and flushes after every piece of a batch.
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
        let mut events = batch.iter().peekable();
        // Room for the line that crosses `WRITE_CHUNK`, so the buffer is not grown (and copied)
        // at the end of every piece; pages never written to cost no memory.
        let mut buffer = Vec::with_capacity(2 * WRITE_CHUNK.min(batch.len() * 1024));
        while events.peek().is_some() {
            buffer.clear();
            while buffer.len() < WRITE_CHUNK
                && let Some(event) = events.next()
            {
                crate::formats::encode_line(self.format, event, &mut buffer);
            }
            buffer = self.write(buffer).await?;
        }
        Ok(())
    }
}

impl StdoutSink {
    /// Writes whole lines in one blocking write under the stdout lock, so lines of two sinks
    /// never interleave; hands the buffer back for the next piece.
    async fn write(&self, buffer: Vec<u8>) -> Result<Vec<u8>, Error> {
        let written = tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&buffer)?;
            out.flush()?;
            Ok::<_, std::io::Error>(buffer)
        })
        .await;
        // A closed or broken stdout will not heal: a reader that went away must not make the
        // checkpoint advance.
        let fatal = |message: String| Error::Fatal {
            sink: self.name.clone(),
            message,
        };
        match written {
            Ok(Ok(buffer)) => Ok(buffer),
            Ok(Err(error)) => Err(fatal(format!("cannot write to standard output: {error}"))),
            Err(error) => Err(fatal(format!(
                "the write to standard output failed: {error}"
            ))),
        }
    }
}
