//! `[[sinks]] type = "file"`: pure validation, no I/O.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ByteSize;
use crate::config::ConfigError;
use crate::formats::EventFormat;

/// `[[sinks]] type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Sink name for logs, metrics and `replay --sink`; default `file`.
    pub name: Option<String>,
    /// The file events are appended to, e.g. `/var/log/lacework-audit-exporter/events.ndjson`.
    /// Its directory must exist; the file is created with mode 0640.
    pub path: PathBuf,
    /// The line written per event: `json`, the exporter's own event (the stdout line),
    /// `ocsf` (OCSF 1.8.0) or `ecs` (Elastic Common Schema).
    #[serde(default)]
    pub format: EventFormat,
    /// Whether every batch is flushed to disk (`fsync`) before the sink acknowledges it. Off,
    /// a power loss (not a crash of the process) can lose acknowledged lines.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
    /// The file is rotated once it reaches this size, at a batch boundary after the batch was
    /// committed: `events.ndjson` becomes `events.ndjson.1`, as logrotate names them.
    /// `"0"` never rotates (when logrotate or the shipper does).
    #[serde(default = "default_rotate_size")]
    pub rotate_size: ByteSize,
    /// Rotated files kept (`.1` is the newest); older ones are deleted.
    #[serde(default = "default_rotate_keep")]
    pub rotate_keep: u32,
}

fn default_fsync() -> bool {
    true
}

fn default_rotate_size() -> ByteSize {
    ByteSize(100 << 20)
}

fn default_rotate_keep() -> u32 {
    10
}

impl FileConfig {
    /// The sink's name: `name` if set, else `file`.
    pub fn sink_name(&self) -> &str {
        self.name.as_deref().unwrap_or("file")
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self
            .name
            .as_ref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(ConfigError::invalid("name", "is empty"));
        }
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid("path", "is empty"));
        }
        if self.path.is_relative() {
            return Err(ConfigError::invalid(
                "path",
                format!(
                    "{} is relative: give an absolute path (the service's working directory is /)",
                    self.path.display()
                ),
            ));
        }
        if self.path.file_name().is_none() {
            return Err(ConfigError::invalid(
                "path",
                format!("{} does not name a file", self.path.display()),
            ));
        }
        if self.rotate_size.0 != 0 && self.rotate_size.0 < 4096 {
            return Err(ConfigError::invalid(
                "rotate_size",
                "must be at least 4KiB, or \"0\" to never rotate",
            ));
        }
        if self.rotate_keep > 1000 {
            return Err(ConfigError::invalid("rotate_keep", "must be at most 1000"));
        }
        Ok(())
    }

    /// Warnings about legal but risky settings.
    pub(crate) fn warnings(&self) -> Vec<String> {
        if self.fsync {
            Vec::new()
        } else {
            vec![format!(
                "sink {}: fsync = false: a power loss can lose lines the checkpoint counts as delivered",
                self.sink_name()
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, String> {
        let config: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn defaults_flush_and_rotate_at_100_mib_keeping_10() {
        let config = parse(r#"path = "/var/log/lae/events.ndjson""#).unwrap();
        assert!(config.fsync);
        assert_eq!(config.rotate_size, ByteSize(100 << 20));
        assert_eq!(config.rotate_keep, 10);
        assert_eq!(config.format, EventFormat::Json);
        assert_eq!(config.sink_name(), "file");
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (text, key) in [
            (r#"path = "events.ndjson""#, "path"),
            (r#"path = "/""#, "path"),
            (
                r#"path = "/x/e"
rotate_size = "1KiB""#,
                "rotate_size",
            ),
            (
                r#"path = "/x/e"
format = "xml""#,
                "format",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(key), "{text}: {error}");
        }
        assert!(parse("path = \"/x/e\"\nrotate_size = \"0\"").is_ok());
    }
}
