//! The protected backend: its URLs, and opening a WebSocket to it (over
//! TCP, or TLS for `wss://`) with the verified identity as request headers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::config::{ConfigError, UpstreamConfig};
use crate::tls::UpstreamTls;

/// The upstream's socket: TCP, or TLS over TCP for `wss://`. An enum, not a
/// box: the plain path pays one branch per read, no indirection; the TLS
/// state (large) is boxed once per connection.
#[derive(Debug)]
pub enum UpstreamIo {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open upstream WebSocket, taken back from hyper's client connection
/// once it answered 101 (hyper's manual upgrade: `without_shutdown` and
/// `into_parts`), so that the relay works on the socket itself.
#[derive(Debug)]
pub struct UpstreamSocket {
    /// The socket.
    pub io: UpstreamIo,
    /// Bytes the upstream sent right after its answer, already read by hyper
    /// (the first frames; usually empty).
    pub received: Bytes,
}

/// Why the upstream WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed (for example, the certificate is not trusted).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    /// The HTTP exchange of the handshake failed.
    #[error("handshake failed: {0}")]
    Http(#[source] hyper::Error),
    /// The upstream answered the upgrade with another status.
    #[error("handshake refused with status {0}")]
    Refused(http::StatusCode),
    /// The 101 answer is not a valid WebSocket handshake (accept key, upgrade, subprotocol).
    #[error("invalid handshake answer: {0}")]
    BadAnswer(&'static str),
    /// Connect plus handshake took longer than `upstream.connect_timeout`.
    #[error("timed out")]
    Timeout,
    /// The URL built from the client's path is not valid.
    #[error("bad upstream URL")]
    Url,
}

/// Where the upstream is.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` for TCP.
    authority: String,
    /// The host, for TLS (SNI and the certificate's name).
    host: String,
    /// TLS for the WebSocket leg (`wss://`); `None` for `ws://`.
    tls: Option<UpstreamTls>,
    /// Path prefix of the WebSocket base URL, without a trailing `/`.
    ws_prefix: String,
    /// `http://host:port` plus prefix for plain HTTP requests.
    http_base: String,
    /// Query parameters removed before forwarding, lower-cased.
    strip: Vec<String>,
    /// The resolved addresses of `authority` (see [`crate::resolve`]).
    addresses: std::sync::Arc<crate::resolve::Addresses>,
}

/// A base URL's parts.
struct Base {
    /// `host:port`.
    authority: String,
    /// The host alone.
    host: String,
    /// The path, without a trailing `/`.
    prefix: String,
    /// `wss://` or `https://`.
    tls: bool,
}

/// Parses a base URL of scheme `plain` or `secure` (`ws`/`wss`, `http`/`https`).
fn parse_base(key: &str, url: &str, plain: &str, secure: &str) -> Result<Base, ConfigError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ConfigError::invalid(key, format!("{url:?} is not a URL: {e}")))?;
    let tls = match uri.scheme_str() {
        Some(s) if s == plain => false,
        Some(s) if s == secure => true,
        _ => {
            return Err(ConfigError::invalid(
                key,
                format!("must start with {plain}:// or {secure}://"),
            ))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| ConfigError::invalid(key, "has no host"))?;
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    if uri.query().is_some() {
        return Err(ConfigError::invalid(key, "must not have a query string"));
    }
    let host = authority.host();
    Ok(Base {
        authority: format!("{host}:{port}"),
        // Without the brackets of an IPv6 literal, for TLS.
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        prefix: uri.path().trim_end_matches('/').to_owned(),
        tls,
    })
}

impl Target {
    /// Checks and parses `[upstream]`'s URLs. `tls` is the TLS client
    /// configuration, used when `upstream.url` is `wss://`.
    pub fn from_config(config: &UpstreamConfig, tls: &UpstreamTls) -> Result<Target, ConfigError> {
        let ws = parse_base("upstream.url", &config.url, "ws", "wss")?;
        let http_base = match &config.http_url {
            Some(url) => {
                let b = parse_base("upstream.http_url", url, "http", "https")?;
                format!("{}://{}{}", scheme(b.tls), b.authority, b.prefix)
            }
            None => format!("{}://{}{}", scheme(ws.tls), ws.authority, ws.prefix),
        };
        Ok(Target {
            addresses: std::sync::Arc::new(crate::resolve::Addresses::new(&ws.authority)),
            authority: ws.authority,
            host: ws.host,
            tls: ws.tls.then(|| tls.clone()),
            ws_prefix: ws.prefix,
            http_base,
            strip: config
                .strip_query_params
                .iter()
                .map(|p| normalized_name(p))
                .collect(),
        })
    }

    /// Removes the query parameter `name` too (the legacy auth parameter),
    /// by the same rules as `upstream.strip_query_params`.
    pub fn also_strip(&mut self, name: &str) {
        let name = normalized_name(name);
        if !self.strip.contains(&name) {
            self.strip.push(name);
        }
    }

    /// The upstream's resolved addresses (resolved at start and refreshed
    /// by `wsguard run` on the control thread).
    pub fn addresses(&self) -> &std::sync::Arc<crate::resolve::Addresses> {
        &self.addresses
    }

    /// The upstream's `host:port` (what the readiness probe connects to).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Takes `current`'s resolved addresses (and so its refresh task) when
    /// both name the same `host:port`: a reload keeps what was resolved.
    pub fn share_addresses(&mut self, current: &Target) {
        if self.authority == current.authority {
            self.addresses = current.addresses.clone();
        }
    }

    /// The client's path and query with token parameters removed.
    pub fn forwarded_path(&self, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        // Pairs are split on `&`, and inside one on `;` too (some servers
        // split on both): each piece is judged on its own.
        let kept: Vec<String> = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| {
                let pieces: Vec<&str> = pair.split(';').filter(|p| self.keeps(p)).collect();
                (!pieces.is_empty()).then(|| pieces.join(";"))
            })
            .collect();
        if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        }
    }

    /// Whether a `name=value` query pair goes upstream: its name, decoded
    /// as in form encoding (`%XX`, and `+` as a space) and normalized as
    /// the most lenient servers read it ([`normalized_name`]), is not one
    /// of the stripped names. A name that does not decode (a bad `%`
    /// sequence, or not UTF-8) is dropped: the upstream might decode it
    /// leniently into a stripped name. Empty names are dropped too.
    fn keeps(&self, pair: &str) -> bool {
        let raw = pair.split('=').next().unwrap_or_default();
        match decode_query_name(raw) {
            Some(name) if !name.is_empty() => !self.strip.contains(&normalized_name(&name)),
            _ => false,
        }
    }

    /// The upstream WebSocket URL for a client request.
    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!(
            "{}://{}{}{}",
            if self.tls.is_some() { "wss" } else { "ws" },
            self.authority,
            self.ws_prefix,
            self.forwarded_path(path_and_query)
        )
    }

    /// The upstream HTTP URL for a client request.
    pub fn http_url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.http_base, self.forwarded_path(path_and_query))
    }

    /// Opens the upstream WebSocket. `prepare` adds the forwarded and identity headers.
    pub async fn connect(
        &self,
        path_and_query: &str,
        prepare: impl FnOnce(&mut http::HeaderMap),
        timeout: Duration,
    ) -> Result<UpstreamSocket, UpstreamError> {
        // tungstenite makes the handshake headers (Host, key, version); hyper
        // carries the exchange, so that the socket's read buffer is the
        // configured one (tungstenite's own client handshake leaves a fixed
        // 4 KiB buffer behind on every connection).
        let template = self
            .ws_url(path_and_query)
            .into_client_request()
            .map_err(|_| UpstreamError::Url)?;
        let (parts, ()) = template.into_parts();
        let mut request = http::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
        // The path of `upstream.url` comes first, then the client's.
        *request.uri_mut() = format!("{}{}", self.ws_prefix, self.forwarded_path(path_and_query))
            .parse()
            .map_err(|_| UpstreamError::Url)?;
        *request.headers_mut() = parts.headers;
        prepare(request.headers_mut());
        let key = request
            .headers()
            .get(SEC_WEBSOCKET_KEY)
            .map(|k| derive_accept_key(k.as_bytes()))
            .ok_or(UpstreamError::Url)?;
        let asked_protocol = request.headers().get(SEC_WEBSOCKET_PROTOCOL).cloned();
        let attempt = async {
            let io = self.open().await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(UpstreamError::Http)?;
            // The connection is driven here, not in a task of its own, and
            // ends at the upgrade, handing the socket back.
            let conn = conn.without_shutdown();
            let send = sender.send_request(request);
            tokio::pin!(conn, send);
            let (response, parts) = tokio::select! {
                biased;
                response = &mut send => (response.map_err(UpstreamError::Http)?, None),
                parts = &mut conn => {
                    let parts = parts.map_err(UpstreamError::Http)?;
                    (send.await.map_err(UpstreamError::Http)?, Some(parts))
                }
            };
            if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                return Err(UpstreamError::Refused(response.status()));
            }
            let h = response.headers();
            if h.get(SEC_WEBSOCKET_ACCEPT).and_then(|v| v.to_str().ok()) != Some(key.as_str()) {
                return Err(UpstreamError::BadAnswer("wrong Sec-WebSocket-Accept"));
            }
            if !h
                .get(UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
            {
                return Err(UpstreamError::BadAnswer("no Upgrade: websocket"));
            }
            if h.get(SEC_WEBSOCKET_PROTOCOL) != asked_protocol.as_ref() {
                return Err(UpstreamError::BadAnswer("subprotocol not agreed"));
            }
            let parts = match parts {
                Some(parts) => parts,
                None => conn.await.map_err(UpstreamError::Http)?,
            };
            Ok(UpstreamSocket {
                io: parts.io.into_inner(),
                received: parts.read_buf,
            })
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// The TCP connection, with the TLS handshake for `wss://`.
    async fn open(&self) -> Result<UpstreamIo, UpstreamError> {
        let tcp = self
            .addresses
            .connect()
            .await
            .map_err(UpstreamError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(UpstreamIo::Plain(tcp)),
            Some(tls) => tls
                .connect(&self.host, tcp)
                .await
                .map(|s| UpstreamIo::Tls(Box::new(s)))
                .map_err(UpstreamError::Tls),
        }
    }
}

/// `http` or `https`.
fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

/// A decoded parameter name as the most lenient servers read it: lower
/// case, cut at the first `[` (PHP reads `token[]` and `token[x]` as
/// `token`), `.` and space as `_` (PHP reads `access.token` as
/// `access_token`).
fn normalized_name(name: &str) -> String {
    let base = name.split('[').next().unwrap_or_default();
    base.to_lowercase().replace(['.', ' '], "_")
}

/// A query parameter's name (or value) decoded strictly: `+` is a space and `%XX` a
/// byte; `None` when a `%` is not followed by two hex digits or the bytes
/// are not UTF-8.
pub(crate) fn decode_query_name(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                u8::try_from(hi * 16 + lo).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        let cfg: UpstreamConfig =
            toml::from_str("url = \"ws://127.0.0.1:9000/base/\"").unwrap_or_else(|e| panic!("{e}"));
        let tls = UpstreamTls::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
        Target::from_config(&cfg, &tls).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn token_params_are_stripped() {
        let t = target();
        assert_eq!(
            t.ws_url("/chat?room=1&token=abc&access_token=x&b"),
            "ws://127.0.0.1:9000/base/chat?room=1&b"
        );
        assert_eq!(t.ws_url("/chat?token=abc"), "ws://127.0.0.1:9000/base/chat");
        assert_eq!(t.http_url("/"), "http://127.0.0.1:9000/base/");
    }

    #[test]
    fn token_params_are_stripped_by_any_spelling() {
        let t = target();
        assert_eq!(
            t.ws_url("/c?Token=1&TOKEN=2&%74oken=3&access%5Ftoken=4&ACCESS%5fTOKEN=5&a=%zz&b=1"),
            "ws://127.0.0.1:9000/base/c?a=%zz&b=1"
        );
        // Undecodable names are dropped; others stay as written, in order.
        assert_eq!(
            t.ws_url("/c?x%zz=1&y%4=2&%FF=3&q=a%20b&to+ken=4&Z=%41"),
            "ws://127.0.0.1:9000/base/c?q=a%20b&to+ken=4&Z=%41"
        );
        // Spellings lenient servers read as a token name.
        assert_eq!(
            t.ws_url("/c?a=1;token=x;b=2&access.token=1&access+token=2&token[]=3&Token[x]=4&c=3"),
            "ws://127.0.0.1:9000/base/c?a=1;b=2&c=3"
        );
        assert_eq!(decode_query_name("a+b%2B"), Some("a b+".to_owned()));
        assert_eq!(decode_query_name("%"), None);
        assert_eq!(decode_query_name("%c3%a9"), Some("é".to_owned()));
    }

    #[test]
    fn wss_and_https_use_tls_and_port_443() {
        let cfg: UpstreamConfig =
            toml::from_str("url = \"wss://up.example/base\"").unwrap_or_else(|e| panic!("{e}"));
        let tls = UpstreamTls::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let t = Target::from_config(&cfg, &tls).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.ws_url("/c"), "wss://up.example:443/base/c");
        assert_eq!(t.http_url("/c"), "https://up.example:443/base/c");
        let cfg: UpstreamConfig =
            toml::from_str("url = \"ftp://x\"").unwrap_or_else(|e| panic!("{e}"));
        let err = Target::from_config(&cfg, &tls)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("upstream.url: must start with ws:// or wss://"),
            "{err}"
        );
    }
}
