//! `benchtool rotation-storm`: a key rotation under load. A JWKS server
//! (plain HTTP on 127.0.0.1, counting its fetches), an echo upstream and the
//! `wsguard` binary (a child process, with a `jwks_url` provider allowed to
//! use http://) are started; N connections open, the IdP rotates to a new
//! `kid`, and every connection then authenticates at once with a token of
//! that new `kid`. The run fails unless all of them authenticate and the
//! rotation cost exactly one JWKS fetch (single-flight refetch).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// The flags of `benchtool rotation-storm`.
#[derive(Debug, Clone, Args)]
pub struct RotationArgs {
    /// The wsguard binary.
    #[arg(long, default_value = "target/release/wsguard")]
    pub wsguard: PathBuf,
    /// Connections that present the new kid at once.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Connections opened in parallel before the storm.
    #[arg(long, default_value_t = 200)]
    pub open_concurrency: usize,
    /// Tiny run (200 connections) for a smoke test of the harness.
    #[arg(long)]
    pub quick: bool,
    /// Limit for the whole storm.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// HMAC secrets of the old and the new key (at least 32 bytes each).
const OLD_SECRET: &[u8] = b"rotation-storm-old-key-0123456789abcdef";
const NEW_SECRET: &[u8] = b"rotation-storm-new-key-0123456789abcdef";

/// An `oct` JWK for HS256.
fn jwk(kid: &str, secret: &[u8]) -> Value {
    json!({"kty": "oct", "kid": kid, "alg": "HS256", "use": "sig", "k": base64url(secret)})
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWKS server's state: the set it serves and the fetches it answered.
struct Idp {
    /// The JWKS document.
    set: Mutex<String>,
    /// JWKS fetches so far.
    fetches: AtomicUsize,
}

/// Serves `GET /jwks` (HTTP/1.1, one request per connection).
async fn serve_jwks(listener: TcpListener, idp: Arc<Idp>) {
    while let Ok((mut tcp, _)) = listener.accept().await {
        let idp = idp.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            idp.fetches.fetch_add(1, Ordering::SeqCst);
            let body = idp.set.lock().map(|s| s.clone()).unwrap_or_default();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        });
    }
}

/// An echo WebSocket upstream.
async fn serve_echo(listener: TcpListener) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(m)) = ws.next().await {
                if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A free 127.0.0.1 port (bound and released).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The proxy's configuration.
fn config(listen: u16, upstream: SocketAddr, idp: SocketAddr) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:{listen}"
worker_threads = 1
[upstream]
url = "ws://{upstream}"
[session]
auth_timeout = "30s"
[limits]
max_unauthenticated = 1000000
per_address_rate = 0
per_address_connections = 1000000
max_connections = 1000000
failed_auth_max = 0
[auth.jwks]
refresh_interval = "1h"
refetch_cooldown = "30s"
[[auth.providers]]
name = "storm-idp"
algorithms = ["HS256"]
allow_insecure_http = true
[[auth.providers.keys]]
kind = "jwks_url"
url = "http://{idp}/jwks"
"#
    )
}

/// Waits until the proxy accepts connections.
async fn wait_listening(addr: SocketAddr, child: &mut tokio::process::Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("wsguard exited: {status}");
        }
        if Instant::now() > deadline {
            bail!("wsguard did not listen on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs the storm; prints one JSON line; fails unless every connection
/// authenticated with exactly one JWKS fetch for the rotation.
pub async fn run(args: RotationArgs) -> Result<()> {
    let n = if args.quick { 200 } else { args.connections };
    let idp = Arc::new(Idp {
        set: Mutex::new(json!({"keys": [jwk("old", OLD_SECRET)]}).to_string()),
        fetches: AtomicUsize::new(0),
    });
    let idp_listener = TcpListener::bind("127.0.0.1:0").await?;
    let idp_addr = idp_listener.local_addr()?;
    tokio::spawn(serve_jwks(idp_listener, idp.clone()));
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    tokio::spawn(serve_echo(echo));

    let port = free_port()?;
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let path = std::env::temp_dir().join(format!("wsguard-storm-{}.toml", std::process::id()));
    std::fs::write(&path, config(port, echo_addr, idp_addr))?;
    let mut child = tokio::process::Command::new(&args.wsguard)
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", args.wsguard.display()))?;
    let outcome = storm(&args, n, proxy, &idp, &mut child).await;
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&path);
    outcome
}

async fn storm(
    args: &RotationArgs,
    n: usize,
    proxy: SocketAddr,
    idp: &Arc<Idp>,
    child: &mut tokio::process::Child,
) -> Result<()> {
    wait_listening(proxy, child).await?;
    let url = format!("ws://{proxy}/");
    // Every connection opened (101) before the rotation.
    let sem = Arc::new(Semaphore::new(args.open_concurrency.max(1)));
    let opens = (0..n).map(|_| {
        let (sem, url) = (sem.clone(), url.clone());
        async move {
            let _permit = sem.acquire().await.ok();
            tokio_tungstenite::connect_async(url)
                .await
                .map(|(ws, _)| ws)
        }
    });
    let sockets: Vec<_> = futures_util::future::join_all(opens)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .context("opening the connections")?;
    let before = idp.fetches.load(Ordering::SeqCst);
    if let Ok(mut set) = idp.set.lock() {
        *set = json!({"keys": [jwk("old", OLD_SECRET), jwk("new", NEW_SECRET)]}).to_string();
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("new".into());
    let key = EncodingKey::from_secret(NEW_SECRET);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let started = Instant::now();
    let auths = sockets.into_iter().enumerate().map(|(i, mut ws)| {
        let token =
            jsonwebtoken::encode(&header, &json!({"sub": format!("u{i}"), "exp": exp}), &key);
        async move {
            let token = token.ok()?;
            let frame = json!({"type": "auth", "payload": {"token": token}}).to_string();
            ws.send(Message::text(frame)).await.ok()?;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).ok()?;
                    return (v["type"] == "AUTHENTICATED").then_some(ws);
                }
            }
            None
        }
    });
    let done = tokio::time::timeout(args.timeout, futures_util::future::join_all(auths))
        .await
        .context("the storm did not finish in time")?;
    let elapsed = started.elapsed();
    let authenticated = done.iter().filter(|w| w.is_some()).count();
    let fetches = idp.fetches.load(Ordering::SeqCst) - before;
    println!(
        "{}",
        json!({
            "mode": "rotation-storm",
            "connections": n,
            "authenticated": authenticated,
            "jwks_fetches": fetches,
            "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        })
    );
    if authenticated != n {
        bail!("only {authenticated} of {n} connections authenticated");
    }
    if fetches != 1 {
        bail!("the rotation cost {fetches} JWKS fetches, not 1");
    }
    Ok(())
}
