//! TLS on both legs, with rustls and its aws-lc-rs provider (chosen here
//! explicitly, never a process-wide default): the listener's server side
//! (certificate rotation without restart, optional client certificates) and
//! the client side for `wss://`/`https://` upstreams.
//!
//! - [`files`]: PEM certificate chains, keys and CA bundles (rustls-pki-types' `PemObject`).
//! - [`server`]: the listener's [`ServerTls`] and its handshake.
//! - [`rotate`]: [`Rotating`], the certificate resolver swapped on SIGHUP and file changes.
//! - [`client`]: the upstream's TLS client configuration.
//! - [`rejects`]: the one count of connections that ended before HTTP.

pub mod client;
pub mod files;
pub mod rejects;
pub mod rotate;
pub mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::UpstreamTls;
pub use rejects::{Reject, Rejects};
pub use rotate::Rotating;
pub use server::ServerTls;

/// The one crypto provider of both legs: aws-lc-rs (already in the build
/// for token signatures).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS 1.3 and 1.2; nothing older.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
