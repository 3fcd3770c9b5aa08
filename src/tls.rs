//! TLS setup shared by every HTTP client: rustls with the `ring` provider and the system's
//! trust store. Certificate verification is never turned off.

/// Installs the process-wide rustls crypto provider; idempotent.
pub fn install_crypto_provider() {
    // `install_default` fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
