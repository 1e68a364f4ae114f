//! TLS to the upstream (`wss://` and `https://` URLs): verified against the
//! public webpki roots or `upstream.ca_file`, SNI from the URL's host, and
//! an optional client certificate (`upstream.client_cert_file` and
//! `client_key_file`). There is no way to skip verification: a test CA is
//! the answer (`docs/operations.md`).

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::files;
use crate::config::{ConfigError, UpstreamConfig};

/// The rustls client configuration for TLS upstreams, built once from `[upstream]`.
#[derive(Clone)]
pub struct UpstreamTls {
    /// For the pass-through HTTP client (hyper-rustls sets its ALPN itself).
    pub http: Arc<ClientConfig>,
    /// For the WebSocket leg: the same, with ALPN `http/1.1`.
    pub ws: Arc<ClientConfig>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Reads `upstream.ca_file` and the client certificate, if set; errors name the key.
    pub fn from_config(config: &UpstreamConfig) -> Result<UpstreamTls, ConfigError> {
        let roots = match &config.ca_file {
            Some(path) => files::roots(path)
                .map_err(|e| ConfigError::invalid("upstream.ca_file", e.to_string()))?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let builder = ClientConfig::builder_with_provider(super::provider())
            .with_protocol_versions(super::VERSIONS)
            .map_err(|e| ConfigError::invalid("upstream", e.to_string()))?
            .with_root_certificates(roots);
        let client = match (&config.client_cert_file, &config.client_key_file) {
            (Some(cert), Some(key)) => {
                let chain = files::certificates(cert).map_err(|e| {
                    ConfigError::invalid("upstream.client_cert_file", e.to_string())
                })?;
                // Refuses a key that does not match the certificate.
                files::certified_key(cert, key)
                    .map_err(|e| ConfigError::invalid("upstream.client_key_file", e.to_string()))?;
                let key = files::private_key(key)
                    .map_err(|e| ConfigError::invalid("upstream.client_key_file", e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ConfigError::invalid("upstream.client_key_file", e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        let mut ws = client.clone();
        ws.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(UpstreamTls {
            http: Arc::new(client),
            ws: Arc::new(ws),
        })
    }

    /// The TLS handshake with the upstream named `host` (its SNI and the name its certificate must have).
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(self.ws.clone()).connect(name, tcp).await
    }
}
