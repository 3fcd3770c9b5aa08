//! API key files as the consoles download them: Lacework's JSON (`keyId`, `secret`, optional
//! `account` and `subAccount`) and FortiCloud's TXT (`apiId:` and `password:` lines).
//!
//! Errors name the file and the position of a problem, never the file's content.

use std::path::Path;

use serde::Deserialize;

use crate::config::secrets::Secret;

/// What a downloaded key file holds.
#[derive(Debug, Default)]
pub(crate) struct KeyFile {
    pub key_id: Option<String>,
    pub secret: Option<Secret>,
    pub account: Option<String>,
    pub sub_account: Option<String>,
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

pub(crate) fn read_key_file(path: &Path) -> Result<KeyFile, String> {
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
        let file = KeyFile {
            secret: Some(Secret::new("_s3cr3t_value")),
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
}
