//! `wsguard demo`: a built-in upstream (an echo WebSocket server plus a
//! development-only token endpoint), the proxy in front of it with a fresh
//! random key, and the command that connects to it, all in one process.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::config::Config;
use crate::proxy::Proxy;

/// The demo's configuration template.
const TEMPLATE: &str = include_str!("../config/demo.toml");
/// The path of the development-only token endpoint, on the proxy's address.
pub const TOKEN_PATH: &str = "/demo/token";
/// The `iss` of the demo's tokens (its provider pins it).
pub const ISSUER: &str = "wsguard-demo";
/// The `sub` of a token asked for without `?sub=`.
pub const DEFAULT_SUB: &str = "alice";
/// The longest `sub` the token endpoint mints for.
const MAX_SUB_BYTES: usize = 64;

/// What `wsguard demo` can be told.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// Lifetime of each token the demo mints.
    pub token_ttl: Duration,
    /// `session.reauth_lead`: how long before `exp` the proxy sends `auth_required`.
    pub reauth_lead: Duration,
}

/// Mints the demo's tokens with its secret.
struct Minter {
    /// The HS256 secret (from the OS-seeded CSPRNG; never written anywhere but the proxy's key file, deleted at once).
    secret: String,
    /// Lifetime of each token.
    ttl: Duration,
}

/// Starts the built-in upstream and the proxy, prints how to connect, and serves until `shutdown`.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if options.token_ttl.as_secs() == 0 {
        anyhow::bail!("--token-ttl must be at least 1s");
    }
    let minter = Arc::new(Minter {
        secret: random_hex(32),
        ttl: options.token_ttl,
    });
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(serve_upstream(upstream, minter.clone()));

    let (config, proxy) = build_proxy(&options, upstream_addr, &minter.secret)?;
    let listener = TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    let (token, _) = minter.mint(DEFAULT_SUB)?;
    print_banner(&banner(&options, upstream_addr, addr, &token));
    crate::listener::run(
        listener,
        proxy,
        crate::process::Local::default(),
        config.listener.header_read_timeout,
        shutdown,
    )
    .await;
    Ok(())
}

/// The demo's configuration and proxy; the secret's file exists only while the proxy loads it.
fn build_proxy(
    options: &Options,
    upstream: SocketAddr,
    secret: &str,
) -> anyhow::Result<(Config, Arc<Proxy>)> {
    let secret_file = std::env::temp_dir().join(format!(
        "wsguard-demo-{}-{}.secret",
        std::process::id(),
        random_hex(8)
    ));
    write_private(&secret_file, secret)?;
    let text = TEMPLATE
        .replace("@LISTEN@", &options.listen.to_string())
        .replace("@UPSTREAM@", &upstream.to_string())
        .replace("@ISSUER@", ISSUER)
        .replace(
            "@REAUTH_LEAD@",
            &humantime::format_duration(options.reauth_lead).to_string(),
        )
        .replace(
            "@SECRET_FILE@",
            &secret_file.display().to_string().replace('\\', "\\\\"),
        );
    let built = Config::parse(&text)
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            let proxy = Proxy::new(&config)?;
            Ok((config, proxy))
        });
    let _ = std::fs::remove_file(&secret_file);
    built
}

/// What the demo prints at start.
fn banner(options: &Options, upstream: SocketAddr, addr: SocketAddr, token: &str) -> String {
    let ttl = options.token_ttl.as_secs();
    let lead = humantime::format_duration(options.reauth_lead);
    format!(
        "wsguard demo\n\
         upstream: ws://{upstream} (built-in echo server and token endpoint)\n\
         proxy: ws://{addr}/chat\n\
         token endpoint: http://{addr}{TOKEN_PATH}?sub={DEFAULT_SUB} (development only: anyone who reaches it gets a token)\n\
         token: {token}\n\
         (tokens are for sub \"{DEFAULT_SUB}\" unless ?sub= says otherwise, and last {ttl}s; auth_required comes {lead} before exp)\n\
         connect: {} connect ws://{addr}/chat --token-url http://{addr}{TOKEN_PATH}\n\
         (it re-authenticates on the same socket each time auth_required comes; type lines to have them echoed, ctrl-D to close)\n",
        self_command()
    )
}

/// How to run this same binary again: its path, quoted for a shell when needed.
fn self_command() -> String {
    let path = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "wsguard".to_owned());
    if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:".contains(c))
    {
        path
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

/// Writes the banner; a closed standard output (a reader that went away) must not stop the demo.
fn print_banner(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `bytes` random bytes from the OS-seeded CSPRNG (`rand::rng()`), in hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

impl Minter {
    /// A fresh token for `sub` and its `exp`.
    fn mint(&self, sub: &str) -> Result<(String, u64), crate::token::MintError> {
        let claims = crate::token::Claims {
            iss: Some(ISSUER.to_owned()),
            ..Default::default()
        };
        let token = crate::token::mint(self.secret.as_bytes(), sub, self.ttl, &claims)?;
        Ok((token, crate::auth::unix_now() + self.ttl.as_secs()))
    }

    /// The token endpoint's answer to a query string.
    fn answer(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let sub = match requested_sub(query) {
            Ok(sub) => sub,
            Err(message) => return json(StatusCode::BAD_REQUEST, &error("bad_sub", message)),
        };
        match self.mint(sub) {
            Ok((token, exp)) => json(StatusCode::OK, &token_body(&token, sub, exp, self.ttl)),
            Err(e) => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &error("mint_failed", &e.to_string()),
            ),
        }
    }
}

/// The token endpoint's JSON.
fn token_body(token: &str, sub: &str, exp: u64, ttl: Duration) -> serde_json::Value {
    let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
    serde_json::json!({
        "token": token,
        "sub": sub,
        "exp": exp,
        "expires_at": humantime::format_rfc3339_seconds(expires_at).to_string(),
        "expires_in": ttl.as_secs(),
    })
}

/// `?sub=` if given: 1 to 64 of `A-Z a-z 0-9 . _ @ -` (no escapes, so what is
/// minted is exactly what was asked for); `alice` without it.
fn requested_sub(query: Option<&str>) -> Result<&str, &'static str> {
    let mut sub = DEFAULT_SUB;
    for pair in query.unwrap_or("").split('&') {
        if let Some(value) = pair.strip_prefix("sub=") {
            sub = value;
        }
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if sub.is_empty() || sub.len() > MAX_SUB_BYTES || !sub.chars().all(allowed) {
        return Err("sub must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -");
    }
    Ok(sub)
}

fn error(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": code, "message": message})
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// The built-in upstream: HTTP/1 with upgrades, one task per connection.
async fn serve_upstream(listener: TcpListener, minter: Arc<Minter>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let minter = minter.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let minter = minter.clone();
                async move { Ok::<_, Infallible>(route(request, &minter)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

/// WebSocket upgrades go to the echo server, `GET /demo/token` to the minter.
fn route(request: Request<Incoming>, minter: &Minter) -> Response<Full<Bytes>> {
    if request.headers().contains_key(header::SEC_WEBSOCKET_KEY) {
        return upgrade(request);
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, TOKEN_PATH) => minter.answer(request.uri().query()),
        (_, TOKEN_PATH) => json(
            StatusCode::METHOD_NOT_ALLOWED,
            &error("method_not_allowed", "use GET"),
        ),
        _ => json(StatusCode::NOT_FOUND, &error("not_found", "no such path")),
    }
}

/// Answers 101 and runs the echo server on the upgraded connection.
fn upgrade(mut request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(accept) = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()))
    else {
        return json(StatusCode::BAD_REQUEST, &error("bad_upgrade", "no key"));
    };
    let sub = request
        .headers()
        .get("x-auth-subject")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(io) = upgraded.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
            echo(ws, &sub).await;
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(value) = header::HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// Greets with the subject wsguard named, then echoes every message.
async fn echo<S>(mut ws: WebSocketStream<S>, sub: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let welcome = serde_json::json!({"type": "welcome", "payload": {"sub": sub}}).to_string();
    if ws.send(Message::text(welcome)).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => message,
            Message::Close(_) => break,
            _ => continue,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}
