//! Test certificates (rcgen: a CA and leaves signed by it, never the CA as
//! a server certificate), a `wss://` client with chosen roots and client
//! certificate, and a TLS WebSocket echo upstream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::WAIT;

/// A `wss://` client socket.
pub type Wss = WebSocketStream<TlsStream<TcpStream>>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A test certificate authority.
pub struct Ca {
    /// Its certificate.
    pub cert: CertificateDer<'static>,
    /// Its certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
pub struct Leaf {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM (PKCS#8).
    pub key_pem: String,
    key_der: Vec<u8>,
}

impl Leaf {
    /// The key as rustls takes it.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone().into())
    }

    /// Writes `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, &self.cert_pem).expect("write cert");
        std::fs::write(&k, &self.key_pem).expect("write key");
        (c, k)
    }
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca {
            cert: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf(ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    pub fn client(&self) -> Leaf {
        self.leaf(ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A server certificate whose validity ended in 2000.
    pub fn expired_server(&self) -> Leaf {
        self.leaf_with(ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.not_before = rcgen::date_time_ymd(1999, 1, 1);
            p.not_after = rcgen::date_time_ymd(2000, 1, 1);
        })
    }

    fn leaf(&self, usage: ExtendedKeyUsagePurpose) -> Leaf {
        self.leaf_with(usage, |_| {})
    }

    fn leaf_with(
        &self,
        usage: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf params");
        params.extended_key_usages = vec![usage];
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    /// Writes the CA certificate to `dir/name`; returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.pem).expect("write ca");
        p
    }

    /// A root store holding this CA only.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).expect("add root");
        roots
    }
}

/// Opens a TLS connection to `addr` trusting `roots`, with an optional
/// client certificate.
pub async fn tls_open(
    addr: SocketAddr,
    roots: RootCertStore,
    client: Option<&Leaf>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tls_handshake(tcp, roots, client).await
}

/// The client side of a TLS handshake on an open TCP connection.
pub async fn tls_handshake(
    tcp: TcpStream,
    roots: RootCertStore,
    client: Option<&Leaf>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.cert.clone()], leaf.key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// Opens a `wss://` WebSocket to `addr` (no auth yet).
pub async fn wss_open(
    addr: SocketAddr,
    path: &str,
    roots: RootCertStore,
    client: Option<&Leaf>,
) -> Result<Wss, String> {
    let tls = tls_open(addr, roots, client)
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("wss://localhost:{}{path}", addr.port());
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .map_err(|_| "WebSocket handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// [`wss_open`], then the auth frame and its `AUTHENTICATED` answer.
pub async fn wss_authed(addr: SocketAddr, roots: RootCertStore, token: &str) -> Wss {
    let mut ws = wss_open(addr, "/", roots, None).await.expect("wss open");
    ws.send(super::auth_frame(token)).await.expect("send auth");
    let v = super::recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    ws
}

/// Sends `text` and expects it back.
pub async fn wss_round_trip(ws: &mut Wss, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    match super::recv(ws).await {
        Message::Text(t) => assert_eq!(t.as_str(), text),
        other => panic!("expected {text:?}, got {other:?}"),
    }
}

/// A TLS WebSocket echo upstream with `leaf` as its certificate; when
/// `client_ca` is given, it requires client certificates signed by it.
pub async fn tls_echo_upstream(leaf: &Leaf, client_ca: Option<&Ca>) -> SocketAddr {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.roots()),
                provider(),
            )
            .build()
            .expect("verifier"),
        ),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(vec![leaf.cert.clone()], leaf.key())
        .expect("server cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        let _ = ws.send(m).await;
                    }
                }
            });
        }
    });
    addr
}

/// The inner key of a PKCS#8 `PrivateKeyInfo`: for an EC key its SEC1
/// `ECPrivateKey`, for an RSA key its PKCS#1 `RSAPrivateKey`.
pub fn pkcs8_inner(der: &[u8]) -> Vec<u8> {
    /// One DER element at `at`: (tag, content start, end).
    fn element(der: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = der[at];
        let first = der[at + 1] as usize;
        let (len, start) = if first < 0x80 {
            (first, at + 2)
        } else {
            let n = first & 0x7f;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |l, b| l << 8 | *b as usize);
            (len, at + 2 + n)
        };
        (tag, start, start + len)
    }
    let (_, body, _) = element(der, 0);
    let (_, _, version_end) = element(der, body);
    let (_, _, algorithm_end) = element(der, version_end);
    let (tag, start, end) = element(der, algorithm_end);
    assert_eq!(tag, 0x04, "PKCS#8 key is an OCTET STRING");
    der[start..end].to_vec()
}

/// DER as PEM with `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl Ca {
    /// A server certificate for an RSA key (2048 bits).
    pub fn rsa_server(&self) -> Leaf {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

impl Leaf {
    /// The key as PEM in its legacy form: SEC1 (`EC PRIVATE KEY`) for EC,
    /// PKCS#1 (`RSA PRIVATE KEY`) for RSA.
    pub fn legacy_key_pem(&self, label: &str) -> String {
        pem(label, &pkcs8_inner(&self.key_der))
    }
}

/// A TLS HTTP/1 server with `leaf` as its certificate that answers every
/// request `200 ok` with the request's `X-Forwarded-Proto` as the body.
pub async fn tls_http_upstream(leaf: &Leaf) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.cert.clone()], leaf.key())
        .expect("server cert");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let proto = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-forwarded-proto: "))
                    .unwrap_or("none")
                    .to_owned();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{proto}",
                    proto.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
