//! The TLS crypto provider for every Azure HTTP client: rustls with ring.
//!
//! reqwest is built without a provider of its own (its default, aws-lc-rs, needs cmake and a C
//! toolchain), so one must be installed process-wide before the first client is built; a
//! client built without one panics. Called by everything that builds an Azure client or an
//! Entra ID credential; the first call installs, later ones find it in place.

/// Installs ring as the process's rustls provider, unless a provider is already installed.
pub fn install_crypto_provider() {
    // `Err` only means a provider is in place already (ours, from an earlier call).
    let _ = rustls::crypto::ring::default_provider().install_default();
}
