//! Request-level helpers: a real HTTP/1 upstream that records every request
//! and answers a fixed response, raw HTTP/1.1 requests over a plain
//! `TcpStream`, and WebSocket connects with a hand-built request (extra
//! headers).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::client::Request;

use super::{TestProxy, Ws, WAIT};

/// One request the HTTP upstream received.
#[derive(Debug)]
pub struct SeenRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl SeenRequest {
    /// A header's value as text (the first one).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// How many values a header has.
    pub fn count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }
}

/// What the HTTP upstream answers to every request.
pub const HTTP_UPSTREAM_STATUS: u16 = 201;
/// Body of the HTTP upstream's answer.
pub const HTTP_UPSTREAM_BODY: &str = "{\"created\":true}";

/// A real HTTP/1 server (hyper) that records requests and answers
/// `201` with `HTTP_UPSTREAM_BODY`, `Content-Type: application/json`,
/// `X-Upstream: yes` and `Set-Cookie: sid=abc; Path=/`.
pub struct HttpUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<SeenRequest>,
}

impl HttpUpstream {
    /// Starts the server on 127.0.0.1:0.
    pub async fn start() -> HttpUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http upstream");
        let addr = listener.local_addr().expect("addr");
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let _ = tx.send(SeenRequest {
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            });
                            let response = hyper::Response::builder()
                                .status(HTTP_UPSTREAM_STATUS)
                                .header("content-type", "application/json")
                                .header("x-upstream", "yes")
                                .header("set-cookie", "sid=abc; Path=/")
                                .body(Full::new(Bytes::from_static(HTTP_UPSTREAM_BODY.as_bytes())))
                                .expect("response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        HttpUpstream { addr, seen }
    }

    /// The next request it received, within `WAIT`.
    pub async fn request(&mut self) -> SeenRequest {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("http upstream got no request in time")
            .expect("http upstream stopped")
    }

    /// A request if one arrives within `wait`.
    pub async fn request_within(&mut self, wait: Duration) -> Option<SeenRequest> {
        tokio::time::timeout(wait, self.seen.recv())
            .await
            .ok()
            .flatten()
    }
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer decoded).
    pub body: String,
    /// Interim (`1xx`) responses that came before this one.
    pub interim: usize,
}

impl RawResponse {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Sends `raw` (a complete HTTP/1.1 request; it should say
/// `Connection: close`) to `addr` and reads the response until the server
/// closes, within `WAIT`.
pub async fn raw_http(addr: SocketAddr, raw: &str) -> RawResponse {
    let read = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(raw.as_bytes()).await.expect("write request");
        let mut buf = Vec::new();
        // A reset after the full response is fine; what was read is kept.
        let _ = tcp.read_to_end(&mut buf).await;
        buf
    };
    let buf = tokio::time::timeout(WAIT, read)
        .await
        .expect("no complete HTTP response in time");
    parse_response(&buf)
}

/// Parses the final response; interim `1xx` responses before it (such as
/// `100 Continue`) are skipped and counted in [`RawResponse::interim`].
fn parse_response(buf: &[u8]) -> RawResponse {
    let mut text = String::from_utf8_lossy(buf).into_owned();
    let mut interim = 0;
    while text.starts_with("HTTP/1.1 1") {
        let Some((_, rest)) = text.split_once("\r\n\r\n") else {
            break;
        };
        text = rest.to_owned();
        interim += 1;
    }
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    RawResponse {
        status,
        headers,
        body,
        interim,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// A WebSocket client request for `path` on the proxy; add headers to it
/// and pass it to [`connect_request`].
pub fn ws_request(proxy: &TestProxy, path: &str) -> Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    proxy
        .url(path)
        .into_client_request()
        .expect("client request")
}

/// Opens a WebSocket to the proxy with a hand-built request (no auth yet).
pub async fn connect_request(request: Request) -> Ws {
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}
