//! WebSocket client side of the load generator: target parsing, connecting,
//! and the wsguard auth exchange.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<Io>;

/// A client socket: TCP for `ws://`, TLS for `wss://`.
pub enum Io {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A TLS client trusting the CA certificates of a PEM file.
fn tls_connector(ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("--ca {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("--ca {}", ca.display()))?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// Options shared by every mode.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Target URL, e.g. ws://127.0.0.1:9000/echo (loopback only).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Plain WebSocket target (direct/nginx/HAProxy): no auth frame.
    #[arg(long, global = true)]
    pub no_auth: bool,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", global = true)]
    pub headers: Vec<String>,
    /// Label of the target in the output (direct, nginx, haproxy, wsguard...).
    #[arg(long, default_value = "target", global = true)]
    pub target: String,
    /// Process whose CPU/RSS is measured (repeatable, e.g. proxy workers).
    #[arg(long = "watch-pid", global = true)]
    pub watch_pids: Vec<u32>,
    /// Upstream process whose CPU is reported separately (repeatable).
    #[arg(long = "upstream-pid", global = true)]
    pub upstream_pids: Vec<u32>,
    /// Hard limit for the whole run; the process exits when it is reached.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// Limit for one connect + handshake + auth.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration, global = true)]
    pub op_timeout: Duration,
    /// Tokio worker threads of the load generator (1 = current-thread runtime).
    #[arg(long, default_value_t = 1, global = true)]
    pub threads: usize,
    /// Read buffer per client connection (bytes).
    #[arg(long, default_value_t = 4096, global = true)]
    pub read_buffer: usize,
    /// Append the JSON result line to this file too.
    #[arg(long, global = true)]
    pub json_out: Option<PathBuf>,
    /// Free-form tag copied into the JSON line (e.g. round number).
    #[arg(long, default_value = "", global = true)]
    pub tag: String,
    /// PEM CA certificate(s) trusted for a wss:// target (its certificate
    /// must be for `localhost`).
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
}

/// A resolved, validated target.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub config: WebSocketConfig,
    pub auth: bool,
    pub op_timeout: Duration,
    /// TLS for wss:// targets.
    pub tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Io::Plain(_) => "Plain",
            Io::Tls(_) => "Tls",
        })
    }
}

impl Target {
    pub fn from_args(args: &CommonArgs) -> Result<Self> {
        let url = args.url.clone().context("--url is required")?;
        let addr = loopback_addr(&url)?;
        let mut headers = Vec::new();
        for h in &args.headers {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("header {h:?} is not `Name: value`"))?;
            headers.push((
                HeaderName::from_bytes(name.trim().as_bytes())?,
                HeaderValue::from_str(value.trim())?,
            ));
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(args.read_buffer)
            .write_buffer_size(0);
        let tls = match (url.starts_with("wss://"), &args.ca) {
            (false, _) => None,
            (true, Some(ca)) => Some(tls_connector(ca)?),
            (true, None) => bail!("a wss:// target needs --ca"),
        };
        Ok(Self {
            tls,
            url,
            addr,
            headers,
            config,
            auth: !args.no_auth,
            op_timeout: args.op_timeout,
        })
    }

    /// TCP connect + WebSocket upgrade (no auth).
    pub async fn connect(&self) -> Result<Ws> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let stream = match &self.tls {
            None => Io::Plain(stream),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                Io::Tls(Box::new(
                    tls.connect(name, stream).await.context("TLS handshake")?,
                ))
            }
        };
        let mut req = self.url.as_str().into_client_request()?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let (ws, _resp) =
            tokio_tungstenite::client_async_with_config(req, stream, Some(self.config))
                .await
                .context("WebSocket handshake")?;
        Ok(ws)
    }

    /// Connect and, unless the target is plain, authenticate with `token`.
    /// Bounded by `op_timeout`.
    pub async fn open(&self, token: Option<&str>) -> Result<Ws> {
        let fut = async {
            let mut ws = self.connect().await?;
            if self.auth {
                let token = token.context("auth target but no token")?;
                authenticate(&mut ws, "auth", token).await?;
            }
            Ok(ws)
        };
        tokio::time::timeout(self.op_timeout, fut)
            .await
            .map_err(|_| anyhow!("open timed out after {:?}", self.op_timeout))?
    }
}

/// Accept only ws:// and wss:// URLs whose host is a loopback address.
pub fn loopback_addr(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .context("only ws:// and wss:// URLs are supported")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .context("URL needs an explicit port")?;
    let port: u16 = port.parse().context("bad port")?;
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h
            .parse()
            .with_context(|| format!("host {h:?} is not an IP"))?,
    };
    if !ip.is_loopback() {
        bail!("refusing non-loopback target {ip}");
    }
    Ok(SocketAddr::new(ip, port))
}

/// The auth / REAUTH frame.
pub fn auth_frame(kind: &str, token: &str) -> Message {
    Message::text(json!({"type": kind, "payload": {"token": token}}).to_string())
}

/// Send `{"type":kind,...}` and wait for AUTHENTICATED; returns its JSON.
pub async fn authenticate(ws: &mut Ws, kind: &str, token: &str) -> Result<Value> {
    ws.send(auth_frame(kind, token))
        .await
        .context("sending auth")?;
    wait_for_type(ws, "AUTHENTICATED").await
}

/// Read frames until a JSON text frame of type `want` (case-insensitive)
/// arrives. Any other text frame, a close or EOF is an error.
pub async fn wait_for_type(ws: &mut Ws, want: &str) -> Result<Value> {
    loop {
        match ws.next().await {
            None => bail!("connection closed while waiting for {want}"),
            Some(Err(e)) => return Err(e).context(format!("waiting for {want}")),
            Some(Ok(Message::Text(t))) => {
                let v = parse_control(t.as_str())?;
                if msg_type(&v).eq_ignore_ascii_case(want) {
                    return Ok(v);
                }
                bail!("expected {want}, got {}", truncate(t.as_str()));
            }
            Some(Ok(Message::Close(f))) => bail!("closed by peer while waiting for {want}: {f:?}"),
            Some(Ok(_)) => continue,
        }
    }
}

pub fn parse_control(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("non-JSON frame {}", truncate(text)))
}

pub fn msg_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

pub fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Best-effort close: send a Close frame, don't wait for the reply.
pub async fn close_quietly(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(loopback_addr("ws://127.0.0.1:80/echo").is_ok());
        assert!(loopback_addr("ws://localhost:80/x?y=1").is_ok());
        assert!(loopback_addr("ws://[::1]:80/").is_ok());
        assert!(loopback_addr("ws://10.0.0.1:80/").is_err());
        assert!(loopback_addr("wss://localhost:443/").is_ok());
        assert!(loopback_addr("wss://10.0.0.1:443/").is_err());
        assert!(loopback_addr("http://127.0.0.1:80/").is_err());
        assert!(loopback_addr("ws://127.0.0.1/").is_err());
    }
}
