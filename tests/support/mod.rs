//! The test harness: `Upstream::start()`, `proxy(&upstream).session(..).start()`,
//! token minting for every key kind, and client helpers.
#![allow(dead_code)]

pub mod admin;
pub mod cli;
pub mod idp;
pub mod lifecycle;
pub mod raw;
pub mod redis;
pub mod requests;
pub mod schema;
pub mod tls;
mod tokens;
mod upstream;
pub mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use tokens::*;
pub use upstream::*;

/// A client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for anything that should happen (generous: shared machines).
pub const WAIT: Duration = Duration::from_secs(5);

/// The repository's test keys.
pub fn keys_dir() -> String {
    format!("{}/tests/keys", env!("CARGO_MANIFEST_DIR"))
}

/// Builds a proxy configuration section by section.
pub struct ProxyBuilder {
    upstream: String,
    upstream_extra: String,
    auth: Option<String>,
    session: String,
    websocket: String,
    dialect: String,
    listener: String,
    legacy: String,
    http: String,
    limits: String,
}

/// A running proxy; it stops when dropped.
pub struct TestProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process state (registry, limits).
    pub process: std::sync::Arc<wsguard::process::Process>,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// A proxy in front of `upstream` (use `Upstream::unused_addr()` for a dead one).
pub fn proxy(upstream: SocketAddr) -> ProxyBuilder {
    ProxyBuilder {
        upstream: format!("ws://{upstream}"),
        upstream_extra: String::new(),
        auth: None,
        session: String::new(),
        websocket: String::new(),
        dialect: String::new(),
        listener: String::new(),
        legacy: String::new(),
        http: String::new(),
        limits: String::new(),
    }
}

impl ProxyBuilder {
    /// Replaces `upstream.url` (for example to give it a path).
    pub fn upstream_url(mut self, url: &str) -> Self {
        self.upstream = url.to_owned();
        self
    }
    /// Extra lines for `[upstream]`.
    pub fn upstream(mut self, lines: &str) -> Self {
        self.upstream_extra = lines.to_owned();
        self
    }
    /// Replaces the whole `[auth]` part (may use `@KEYS@` and `@SECRET_FILE@`).
    pub fn auth(mut self, toml: &str) -> Self {
        self.auth = Some(toml.to_owned());
        self
    }
    /// Lines for `[session]`.
    pub fn session(mut self, lines: &str) -> Self {
        self.session = lines.to_owned();
        self
    }
    /// Lines for `[websocket]`.
    pub fn websocket(mut self, lines: &str) -> Self {
        self.websocket = lines.to_owned();
        self
    }
    /// Lines for `[dialect]`.
    pub fn dialect(mut self, lines: &str) -> Self {
        self.dialect = lines.to_owned();
        self
    }
    /// Lines for `[auth.legacy]`.
    pub fn legacy(mut self, lines: &str) -> Self {
        self.legacy = lines.to_owned();
        self
    }
    /// Lines for `[http]`.
    pub fn http(mut self, lines: &str) -> Self {
        self.http = lines.to_owned();
        self
    }
    /// Lines for `[limits]`.
    pub fn limits(mut self, lines: &str) -> Self {
        self.limits = lines.to_owned();
        self
    }
    /// Lines for `[listener]`.
    pub fn listener(mut self, lines: &str) -> Self {
        self.listener = lines.to_owned();
        self
    }

    /// The configuration text this builder makes.
    pub fn toml(&self, secret_file: &str) -> String {
        let auth = self.auth.clone().unwrap_or_else(|| DEFAULT_AUTH.to_owned());
        // Notices exactly `reauth_lead` before exp, unless a test asks for jitter.
        // Tests written before `[limits]` open many connections and fail
        // many auths from 127.0.0.1: the per-address rate and the failed-auth
        // cool-down are off unless a test sets `[limits]`.
        let limits = if self.limits.is_empty() {
            "per_address_rate = 0\nfailed_auth_max = 0".to_owned()
        } else {
            self.limits.clone()
        };
        let mut session = self.session.clone();
        if !session.contains("reauth_jitter") {
            session.push_str("\nreauth_jitter = \"0s\"");
        }
        format!(
            "[listener]\nbind = \"127.0.0.1:0\"\n{}\n[upstream]\nurl = \"{}\"\n{}\n{}\n[auth.legacy]\n{}\n[session]\n{}\n[websocket]\n{}\n[dialect]\n{}\n[http]\n{}\n[limits]\n{}\n",
            self.listener, self.upstream, self.upstream_extra, auth, self.legacy, session, self.websocket, self.dialect, self.http, limits
        )
        .replace("@KEYS@", &keys_dir())
        .replace("@SECRET_FILE@", secret_file)
    }

    /// Starts the proxy on 127.0.0.1:0.
    pub async fn start(self) -> TestProxy {
        self.try_start()
            .await
            .unwrap_or_else(|e| panic!("start: {e}"))
    }

    /// Starts the proxy on 127.0.0.1:0 as `wsguard run` does: one process state
    /// (registry) for its worker and the key refresh (on this test's runtime), then
    /// waits for the providers' first key sets; the error is start-up's.
    pub async fn try_start(self) -> Result<TestProxy, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, SECRET).expect("write secret");
        let text = self.toml(&secret_file.display().to_string());
        let config =
            wsguard::config::Config::parse(&text).unwrap_or_else(|e| panic!("config: {e}\n{text}"));
        let shared = wsguard::proxy::Proxy::new(&config).unwrap_or_else(|e| panic!("proxy: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let process =
            std::sync::Arc::new(wsguard::process::Process::new(1).with_limits(&config.limits));
        shared.verifier.start(
            &tokio::runtime::Handle::current(),
            process.registry.clone(),
            config.session.grace,
        );
        shared.verifier.first_keys().await?;
        if let Some(tls) = &shared.tls {
            // Rotation runs here as it does on the control thread.
            tls.resolver
                .start(tls.watch_interval, &tokio::runtime::Handle::current())
                .expect("watch the certificate");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        // Current before the first accept, as `wsguard run` sets it.
        process.proxy.swap(shared.clone());
        tokio::spawn(wsguard::listener::run(
            listener,
            shared,
            process.local(0),
            // 5 s, unless a test sets a shorter `listener.header_read_timeout`.
            config
                .listener
                .header_read_timeout
                .min(Duration::from_secs(5)),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(TestProxy {
            addr,
            process,
            _stop: stop,
            _dir: dir,
        })
    }
}

/// The test HS256 provider in a configuration of the real binary
/// (`admin::run` and `cli` write the test secret to `secret` beside it).
pub const BINARY_PROVIDER: &str = r#"[[auth.providers]]
name = "test"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "secret"
"#;

/// The default `[auth]`: one HS256 provider with the test secret.
pub const DEFAULT_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "test"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "@SECRET_FILE@"
"#;

impl TestProxy {
    /// `ws://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

/// Opens a WebSocket to the proxy (no auth yet).
pub async fn connect(proxy: &TestProxy, path: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(proxy.url(path)))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}

/// The default auth frame for a token.
pub fn auth_frame(token: &str) -> Message {
    Message::text(
        serde_json::json!({"type": "auth", "id": "a1", "payload": {"token": token}}).to_string(),
    )
}

/// Connects, authenticates and checks the `AUTHENTICATED` answer.
pub async fn authed(proxy: &TestProxy, path: &str, token: &str) -> Ws {
    let mut ws = connect(proxy, path).await;
    ws.send(auth_frame(token)).await.expect("send auth");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "a1", "{v}");
    ws
}

/// The next data or close frame (pings and pongs skipped), within `WAIT`.
pub async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    recv_within(ws, WAIT).await.expect("no frame in time")
}

/// The next data or close frame within `wait`, or `None`; a control frame
/// of wsguard's must match its schema in `docs/schemas/`.
pub async fn recv_within<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    wait: Duration,
) -> Option<Message> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) => return None,
            Ok(Some(Err(e))) => panic!("client read error: {e}"),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(m))) => {
                if let Message::Text(t) = &m {
                    if let Ok(frame) = serde_json::from_str::<Value>(t) {
                        schema::check_client_bound(&frame);
                    }
                }
                return Some(m);
            }
        }
    }
}

/// The next frame, parsed as JSON.
pub async fn recv_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    match recv(ws).await {
        Message::Text(t) => {
            serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
        }
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads until the close frame and returns its code and reason
/// (1006 and "" when the socket ends without one).
pub async fn expect_close<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no close in time"),
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return (u16::from(f.code), f.reason.to_string())
            }
            Ok(Some(Ok(Message::Close(None)))) => return (1005, String::new()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) => return (1006, String::new()),
        }
    }
}
