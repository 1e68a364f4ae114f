//! An identity provider for tests: OpenID Connect discovery and a JWKS over
//! real HTTPS on 127.0.0.1:0, with a CA and a certificate made by rcgen in
//! the test. What it answers can be changed while it runs (a new set, down,
//! garbage, oversized, slow), and it counts the JWKS fetches.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// How the JWKS endpoint answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with the current set (and the `Cache-Control`, if any).
    Set,
    /// 503.
    Down,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a valid-looking body over 1 MiB.
    Oversized,
    /// The set, after this delay.
    Slow(Duration),
}

/// What the IdP serves.
struct State {
    /// The JWKS document's keys.
    keys: Vec<Value>,
    /// How the JWKS endpoint answers.
    answer: Answer,
    /// The `issuer` the discovery document names (the real one by default).
    issuer: Option<String>,
    /// A `Cache-Control` header on the JWKS.
    cache_control: Option<String>,
}

/// A running IdP; it stops with the test's runtime.
pub struct Idp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The CA's certificate, PEM (for the provider's `ca_file`).
    pub ca_pem: String,
    /// The CA written to a file, and the folder holding it.
    pub ca_file: String,
    _dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    jwks_fetches: Arc<AtomicUsize>,
}

/// A CA and a leaf certificate for 127.0.0.1 and localhost signed by it.
fn certificates() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca.pem(), leaf.der().clone(), key)
}

impl Idp {
    /// Starts an IdP serving `keys`.
    pub async fn start(keys: Vec<Value>) -> Idp {
        let (ca_pem, cert, key) = certificates();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind IdP");
        let addr = listener.local_addr().expect("IdP addr");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca_pem).expect("write CA");
        let state = Arc::new(Mutex::new(State {
            keys,
            answer: Answer::Set,
            issuer: None,
            cache_control: None,
        }));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let (st, count) = (state.clone(), jwks_fetches.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, st, count) = (acceptor.clone(), st.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        answer(req, addr, st.clone(), count.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Idp {
            addr,
            ca_pem,
            ca_file: ca_path.display().to_string(),
            _dir: dir,
            state,
            jwks_fetches,
        }
    }

    /// The issuer it describes: `https://127.0.0.1:port`.
    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Its JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer())
    }

    /// Serves another set from now on.
    pub fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().expect("state").keys = keys;
    }

    /// Changes how the JWKS endpoint answers.
    pub fn answer(&self, answer: Answer) {
        self.state.lock().expect("state").answer = answer;
    }

    /// Makes the discovery document name another issuer.
    pub fn claim_issuer(&self, issuer: &str) {
        self.state.lock().expect("state").issuer = Some(issuer.to_owned());
    }

    /// Sends this `Cache-Control` with the JWKS.
    pub fn cache_control(&self, value: &str) {
        self.state.lock().expect("state").cache_control = Some(value.to_owned());
    }

    /// JWKS fetches answered (or begun, for a slow answer) so far.
    pub fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` JWKS fetches have come (within `WAIT`).
    pub async fn wait_fetches(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        while self.fetches() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} JWKS fetches, wanted {n}",
                self.fetches()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One answer of the IdP.
async fn answer(
    req: Request<hyper::body::Incoming>,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    count: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let issuer = format!("https://127.0.0.1:{}", addr.port());
    let reply = |status: u16, body: Vec<u8>, cache: Option<String>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
        if let Some(c) = cache.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
            r.headers_mut().insert(http::header::CACHE_CONTROL, c);
        }
        Ok(r)
    };
    match req.uri().path() {
        "/.well-known/openid-configuration" => {
            let named = state.lock().expect("state").issuer.clone();
            let doc = json!({
                "issuer": named.unwrap_or_else(|| issuer.clone()),
                "jwks_uri": format!("{issuer}/jwks"),
            });
            reply(200, doc.to_string().into_bytes(), None)
        }
        "/jwks" => {
            count.fetch_add(1, Ordering::SeqCst);
            let (keys, how, cache) = {
                let s = state.lock().expect("state");
                (s.keys.clone(), s.answer.clone(), s.cache_control.clone())
            };
            let set = json!({ "keys": keys }).to_string().into_bytes();
            match how {
                Answer::Set => reply(200, set, cache),
                Answer::Down => reply(503, b"down".to_vec(), None),
                Answer::Garbage => reply(200, b"<html>not json</html>".to_vec(), None),
                Answer::Oversized => {
                    let padding = "x".repeat((1 << 20) + 10);
                    let body = json!({ "keys": keys, "padding": padding });
                    reply(200, body.to_string().into_bytes(), None)
                }
                Answer::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    reply(200, set, cache)
                }
            }
        }
        _ => reply(404, Vec::new(), None),
    }
}
