//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Signs request bodies with a symmetric Standard Webhooks secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

impl Signer {
    /// Parses a secret as the spec shows it to users: `whsec_` + standard base64 (the prefix
    /// is optional). Errors never quote the secret.
    pub fn from_secret(text: &str) -> Result<Signer, String> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        let key = STANDARD.decode(encoded).map_err(|_| {
            "the signing secret is not whsec_ followed by standard base64".to_string()
        })?;
        if key.is_empty() {
            return Err("the signing secret is empty".to_string());
        }
        if key.len() < 24 {
            tracing::warn!(
                bytes = key.len(),
                "The webhook signing secret is shorter than the 24 bytes the spec asks for."
            );
        }
        Ok(Signer { key })
    }

    /// The `webhook-signature` value for one delivery attempt.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_test_vector() {
        let signer = Signer::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signature = signer.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn bad_secrets_are_refused_without_echo() {
        let error = Signer::from_secret("whsec_not base64!!").unwrap_err();
        assert!(!error.contains("not base64!!"));
        assert!(Signer::from_secret("whsec_").is_err());
        assert_eq!(
            format!("{:?}", Signer::from_secret("AAAA").unwrap()),
            "Signer([redacted])"
        );
    }
}
