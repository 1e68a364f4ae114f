//! The listener's TLS: the rustls server configuration (TLS 1.2 and 1.3,
//! ALPN `http/1.1` only: offering h2 would break WebSocket upgrades),
//! optional client certificates, and the handshake with its own timeout.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::rejects::{Reject, Rejects};
use super::{files, Rotating};
use crate::config::{ClientAuth, ConfigError, ListenerTls};

/// TLS on the listening socket, built once from `[listener.tls]`.
#[derive(Clone)]
pub struct ServerTls {
    /// Runs handshakes.
    acceptor: TlsAcceptor,
    /// The certificate in use, swapped on rotation.
    pub resolver: Arc<Rotating>,
    /// `listener.tls.handshake_timeout`.
    pub handshake_timeout: Duration,
    /// `listener.tls.watch_interval`.
    pub watch_interval: Duration,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("resolver", &self.resolver)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files of `[listener.tls]`; errors name the key.
    pub fn from_config(config: &ListenerTls) -> Result<ServerTls, ConfigError> {
        let resolver = Rotating::load(&config.cert_file, &config.key_file).map_err(|e| {
            let key = if e.is_key {
                "listener.tls.key_file"
            } else {
                "listener.tls.cert_file"
            };
            ConfigError::invalid(key, e.to_string())
        })?;
        let resolver = Arc::new(resolver);
        let builder = ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(super::VERSIONS)
            .map_err(|e| ConfigError::invalid("listener.tls", e.to_string()))?;
        let builder = match &config.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let roots = files::roots(path).map_err(|e| {
                    ConfigError::invalid("listener.tls.client_ca_file", e.to_string())
                })?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider());
                let verifier = match config.client_auth.unwrap_or(ClientAuth::Required) {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier.build().map_err(|e| {
                    ConfigError::invalid("listener.tls.client_ca_file", e.to_string())
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder.with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            resolver,
            handshake_timeout: config.handshake_timeout,
            watch_interval: config.watch_interval,
        })
    }

    /// Runs the handshake within `handshake_timeout`; a failure is logged
    /// (`debug`), counted in [`Rejects`], and gives `None`.
    pub async fn accept(&self, tcp: TcpStream, peer: SocketAddr) -> Option<TlsStream<TcpStream>> {
        let reject =
            match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => return Some(stream),
                Ok(Err(e)) => classify(&e),
                Err(_) => Reject::HandshakeTimeout,
            };
        Rejects::global().count(reject);
        tracing::debug!(peer = %peer, cause = reject.name(), "TLS handshake failed");
        None
    }
}

/// Which [`Reject`] a failed handshake is.
fn classify(e: &io::Error) -> Reject {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return Reject::Handshake;
    };
    match tls {
        rustls::Error::InvalidMessage(_) => Reject::NotTls,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            Reject::ClientCertificate
        }
        _ => Reject::Handshake,
    }
}
