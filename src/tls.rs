//! TLS and HTTP client setup shared by every HTTP client (the Lacework API client and the
//! webhook sink): rustls with the `ring` provider, the system's trust store plus any extra CA,
//! our user agent, timeouts, and no redirects. Certificate verification is never turned off.
//!
//! Ground floor: imports nothing of ours.

use std::time::Duration;

/// Installs the process-wide rustls crypto provider; idempotent.
fn install_crypto_provider() {
    // `install_default` fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What an HTTP client to one destination needs.
#[derive(Default)]
pub struct HttpClientOptions {
    /// Timeout of one whole request.
    pub timeout: Duration,
    /// Timeout of connecting.
    pub connect_timeout: Duration,
    /// Certificates trusted besides the system's (a private CA).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// A client certificate and key, for mutual TLS.
    pub identity: Option<reqwest::Identity>,
}

/// Builds an HTTP client. Redirects are never followed: a redirect could carry a bearer token
/// or a signed body elsewhere, and neither the API nor a webhook receiver is meant to send one.
pub fn http_client(options: HttpClientOptions) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.connect_timeout)
        .user_agent(concat!(
            "lacework-audit-exporter/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(reqwest::redirect::Policy::none());
    if !options.extra_roots.is_empty() {
        builder = builder.tls_certs_merge(options.extra_roots);
    }
    if let Some(identity) = options.identity {
        builder = builder.identity(identity);
    }
    builder.build()
}
