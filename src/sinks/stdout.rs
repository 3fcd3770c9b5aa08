//! The stdout sink: one JSON event per line. The only module that writes to standard output
//! (besides CLI reports).

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::event::LifecycleEvent;
use crate::sinks::{Error, Sink};

/// `[[sinks]] type = "stdout"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Sink name for logs and `replay --sink`; default `stdout`.
    pub name: Option<String>,
}

impl StdoutConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        match &self.name {
            Some(name) if name.trim().is_empty() => Err(("name".into(), "is empty".into())),
            _ => Ok(()),
        }
    }
}

/// Writes NDJSON to standard output and flushes after every batch.
pub struct StdoutSink {
    name: String,
    out: Mutex<tokio::io::Stdout>,
}

impl StdoutSink {
    /// A sink named `name`.
    pub fn new(name: String) -> StdoutSink {
        StdoutSink {
            name,
            out: Mutex::new(tokio::io::stdout()),
        }
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
            event.write_json_line(&mut buffer);
        }
        let mut out = self.out.lock().await;
        let written = async {
            out.write_all(&buffer).await?;
            out.flush().await
        };
        // A closed or broken stdout will not heal: a reader that went away must not make the
        // checkpoint advance.
        written.await.map_err(|error| Error::Fatal {
            sink: self.name.clone(),
            message: format!("cannot write to standard output: {error}"),
        })
    }
}
