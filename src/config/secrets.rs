//! API key material: the redacting `Secret` type and reading key files.
//!
//! Invariant: a secret's text is reachable only through `Secret::expose`, called only where a
//! secret is sent (the token exchange, sink credentials). `Debug` prints `[redacted]` and there is no `Display`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

use crate::config::ConfigError;
use crate::config::LaceworkConfig;

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

/// Everything needed to reach the API, after key files were read.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// API key id.
    pub key_id: String,
    /// API key secret.
    pub secret: Secret,
    /// Origin of the API, e.g. `https://acme.lacework.net`.
    pub api_origin: Url,
    /// Sub-account sent as `Account-Name`, if any.
    pub sub_account: Option<String>,
}

/// What a downloaded key file holds.
#[derive(Debug, Default)]
struct KeyFile {
    key_id: Option<String>,
    secret: Option<Secret>,
    account: Option<String>,
    sub_account: Option<String>,
}

impl Credentials {
    /// Reads secret and key files named by the configuration.
    /// `credentials_directory` is systemd's `$CREDENTIALS_DIRECTORY`, if set.
    pub fn resolve(
        config: &LaceworkConfig,
        credentials_directory: Option<&Path>,
    ) -> Result<Credentials, ConfigError> {
        let mut key_file = KeyFile::default();
        let secret = if let Some(secret) = &config.secret {
            secret.clone()
        } else if let Some(path) = &config.secret_file {
            let path = expand_credentials_directory(path, credentials_directory)
                .map_err(|message| ConfigError::invalid("lacework.secret_file", message))?;
            read_secret_file(&path)
                .map_err(|message| ConfigError::invalid("lacework.secret_file", message))?
        } else if let Some(path) = &config.api_key_file {
            let path = expand_credentials_directory(path, credentials_directory)
                .map_err(|message| ConfigError::invalid("lacework.api_key_file", message))?;
            key_file = read_key_file(&path)
                .map_err(|message| ConfigError::invalid("lacework.api_key_file", message))?;
            key_file.secret.clone().ok_or_else(|| {
                ConfigError::invalid(
                    "lacework.api_key_file",
                    format!("{} has no secret (or password) entry", path.display()),
                )
            })?
        } else {
            return Err(ConfigError::invalid(
                "lacework.secret_file",
                "no API key secret is configured",
            ));
        };

        let key_id = match (&config.key_id, &key_file.key_id) {
            (Some(configured), Some(from_file)) if configured.trim() != from_file.trim() => {
                return Err(ConfigError::invalid(
                    "lacework.key_id",
                    "differs from the keyId in api_key_file: remove one of them",
                ));
            }
            (Some(key_id), _) | (None, Some(key_id)) => key_id.trim().to_string(),
            (None, None) => {
                return Err(ConfigError::invalid(
                    "lacework.key_id",
                    "no key id: set key_id or use an api_key_file that has keyId",
                ));
            }
        };

        let api_origin = if let Some(base_url) = &config.base_url {
            crate::config::lacework::parse_base_url(base_url)
                .map_err(|message| ConfigError::invalid("lacework.base_url", message))?
        } else {
            let account = config
                .account
                .as_ref()
                .or(key_file.account.as_ref())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "lacework.account",
                        "account is required: the key file does not name one",
                    )
                })?;
            crate::config::lacework::api_origin_for_account(account)
                .map_err(|message| ConfigError::invalid("lacework.account", message))?
        };

        Ok(Credentials {
            key_id,
            secret,
            api_origin,
            sub_account: config.sub_account.clone().or(key_file.sub_account),
        })
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

fn expand_credentials_directory(path: &Path, directory: Option<&Path>) -> Result<PathBuf, String> {
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

/// The console's JSON key file, with either spelling of the sub-account field.
#[derive(Deserialize)]
struct ConsoleKeyFile {
    #[serde(rename = "keyId")]
    key_id: Option<String>,
    secret: Option<Secret>,
    account: Option<String>,
    #[serde(rename = "subAccount", alias = "subaccount")]
    sub_account: Option<String>,
}

fn read_key_file(path: &Path) -> Result<KeyFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    parse_key_file(&text).map_err(|message| format!("{}: {message}", path.display()))
}

fn parse_key_file(text: &str) -> Result<KeyFile, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        // serde_json's own message could quote the secret; keep only its position.
        let file: ConsoleKeyFile = serde_json::from_str(trimmed).map_err(|error| {
            format!(
                "not a valid API key JSON file (line {}, column {})",
                error.line(),
                error.column()
            )
        })?;
        return Ok(KeyFile {
            key_id: file.key_id.filter(|k| !k.trim().is_empty()),
            secret: file.secret.filter(|s| !s.expose().trim().is_empty()),
            account: file.account.filter(|a| !a.trim().is_empty()),
            sub_account: file.sub_account.filter(|s| !s.trim().is_empty()),
        });
    }
    // FortiCloud's TXT download: `key:value` lines, split at the first colon.
    let mut file = KeyFile::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "apiId" => file.key_id = Some(value.to_string()),
            "password" => file.secret = Some(Secret::new(value)),
            _ => {}
        }
    }
    if file.key_id.is_none() && file.secret.is_none() {
        return Err(
            "neither a Lacework JSON key file nor a FortiCloud TXT key file (apiId:/password:)"
                .to_string(),
        );
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::new("_s3cr3t_value");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        let file = KeyFile {
            secret: Some(secret),
            ..KeyFile::default()
        };
        assert!(!format!("{file:?}").contains("s3cr3t"));
    }

    #[test]
    fn console_json_key_file_is_read() {
        let file = parse_key_file(
            r#"{"keyId":"ACME_ABC","secret":"_xyz","subAccount":"acme-sub1","account":"acme.lacework.net"}"#,
        )
        .unwrap();
        assert_eq!(file.key_id.as_deref(), Some("ACME_ABC"));
        assert_eq!(file.secret.unwrap().expose(), "_xyz");
        assert_eq!(file.account.as_deref(), Some("acme.lacework.net"));
        assert_eq!(file.sub_account.as_deref(), Some("acme-sub1"));
    }

    #[test]
    fn forticloud_txt_key_file_is_read() {
        let file = parse_key_file(
            "apiId:12345678-1234-1234-1234-123456789012\npassword:123456a81234d23412c412345b789012\nclientId for FortiCNAPP:x\n",
        )
        .unwrap();
        assert_eq!(
            file.key_id.as_deref(),
            Some("12345678-1234-1234-1234-123456789012")
        );
        assert_eq!(
            file.secret.unwrap().expose(),
            "123456a81234d23412c412345b789012"
        );
    }

    #[test]
    fn broken_json_error_does_not_echo_the_secret() {
        let error = parse_key_file(r#"{"keyId":"A","secret":"_topsecret" "#)
            .err()
            .unwrap();
        assert!(!error.contains("topsecret"), "{error}");
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
