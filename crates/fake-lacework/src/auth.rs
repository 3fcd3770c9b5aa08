//! Access tokens: minting, wall-clock expiry and mass invalidation.

use std::collections::HashMap;

use crate::generator::SplitMix64;

/// Why a bearer token was refused; rendered into the 401 `message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    Unknown,
    Expired,
    Revoked,
}

impl TokenError {
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Unknown => "Invalid access token",
            TokenError::Expired => "Access token expired",
            TokenError::Revoked => "Access token is no longer valid",
        }
    }
}

struct Issued {
    expires_at_ms: i64,
    revoked: bool,
}

/// Every token handed out, keyed by its value.
pub(crate) struct Tokens {
    issued: HashMap<String, Issued>,
    rng: SplitMix64,
}

impl Tokens {
    pub fn new(seed: u64) -> Self {
        Tokens {
            issued: HashMap::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Mints `_<32 hex>` (the shape of the GO PR #513 example) valid until the returned time.
    pub fn issue(&mut self, expiry_secs: i64, now_ms: i64) -> (String, i64) {
        // Long-expired tokens can never be valid again; dropping them bounds the map.
        self.issued
            .retain(|_, t| t.expires_at_ms > now_ms - 24 * 3_600_000);
        let token = format!("_{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let expires_at_ms = now_ms + expiry_secs * 1000;
        self.issued.insert(
            token.clone(),
            Issued {
                expires_at_ms,
                revoked: false,
            },
        );
        (token, expires_at_ms)
    }

    pub fn check(&self, token: &str, now_ms: i64) -> Result<(), TokenError> {
        match self.issued.get(token) {
            None => Err(TokenError::Unknown),
            Some(t) if t.revoked => Err(TokenError::Revoked),
            Some(t) if t.expires_at_ms <= now_ms => Err(TokenError::Expired),
            Some(_) => Ok(()),
        }
    }

    /// Invalidates every token issued so far; tokens minted later are unaffected.
    pub fn revoke_all(&mut self) {
        for t in self.issued.values_mut() {
            t.revoked = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_revoke() {
        let mut tokens = Tokens::new(3);
        let (a, exp) = tokens.issue(10, 1_000);
        assert_eq!(exp, 11_000);
        assert_eq!(a.len(), 33);
        assert!(a.starts_with('_'));
        assert_eq!(tokens.check(&a, 10_999), Ok(()));
        assert_eq!(tokens.check(&a, 11_000), Err(TokenError::Expired));
        assert_eq!(tokens.check("_nope", 0), Err(TokenError::Unknown));
        tokens.revoke_all();
        assert_eq!(tokens.check(&a, 2_000), Err(TokenError::Revoked));
        let (b, _) = tokens.issue(10, 2_000);
        assert_eq!(tokens.check(&b, 2_000), Ok(()));
    }
}
