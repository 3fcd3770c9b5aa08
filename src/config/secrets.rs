//! Secrets: the redacting `Secret` type, and reading secret and credential files (with
//! `$CREDENTIALS_DIRECTORY` expanded for systemd's `LoadCredential=`).
//!
//! Invariant: a secret's text is reachable only through `Secret::expose`, called only where a
//! secret is sent (the token exchange, sink credentials). `Debug` prints `[redacted]` and there
//! is no `Display`. This module is a leaf: it imports nothing of ours.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A secret string that never prints itself.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps secret text.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Reads a secret from a file (trimmed), expanding `$CREDENTIALS_DIRECTORY` in the path.
/// Errors name the file, never its content.
pub fn read_secret(path: &Path, credentials_directory: Option<&Path>) -> Result<Secret, String> {
    read_secret_file(&expand_credentials_directory(path, credentials_directory)?)
}

/// Reads a whole file (a certificate, a key), expanding `$CREDENTIALS_DIRECTORY` in the path.
pub fn read_file(path: &Path, credentials_directory: Option<&Path>) -> Result<Vec<u8>, String> {
    let path = expand_credentials_directory(path, credentials_directory)?;
    std::fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

pub(crate) fn expand_credentials_directory(
    path: &Path,
    directory: Option<&Path>,
) -> Result<PathBuf, String> {
    let text = path.to_string_lossy();
    if !text.contains("$CREDENTIALS_DIRECTORY") && !text.contains("${CREDENTIALS_DIRECTORY}") {
        return Ok(path.to_path_buf());
    }
    let directory = directory.ok_or_else(|| {
        format!(
            "{text} uses $CREDENTIALS_DIRECTORY, which is not set (it is set by systemd's LoadCredential=)"
        )
    })?;
    let directory = directory.to_string_lossy();
    Ok(PathBuf::from(
        text.replace("${CREDENTIALS_DIRECTORY}", &directory)
            .replace("$CREDENTIALS_DIRECTORY", &directory),
    ))
}

fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::new("_s3cr3t_value");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
    }

    #[test]
    fn credentials_directory_is_expanded() {
        let path = expand_credentials_directory(
            Path::new("$CREDENTIALS_DIRECTORY/secret"),
            Some(Path::new("/run/credentials/x.service")),
        )
        .unwrap();
        assert_eq!(path, PathBuf::from("/run/credentials/x.service/secret"));
        assert!(
            expand_credentials_directory(Path::new("${CREDENTIALS_DIRECTORY}/s"), None).is_err()
        );
    }
}
