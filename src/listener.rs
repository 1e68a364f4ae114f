//! Accepting connections: the accept loop (with backoff), the TLS handshake
//! when `[listener.tls]` is set, HTTP/1 serving, and the WebSocket handshake
//! after which the same task runs the connection's [`Session`] on the socket
//! hyper hands back (TCP, or the TLS stream: the serving path is generic
//! over the socket, so the plain path has no indirection). Non-upgrade
//! requests go to [`crate::passthrough`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::budget::Budgeted;
use crate::drain::Live;
use crate::headers::{has_token, list_items, ClientRequest};
use crate::limits::{Admission, Limits};
use crate::process::Local;
use crate::process::Process;
use crate::proxy::{Body, Proxy};
use crate::rescue::HttpError;
use crate::session::{ClientIo, Session, Start};
use crate::tls::{Reject, Rejects};

/// Bytes an unauthenticated client may send beyond the first-frame limit
/// (frame headers, a few pings).
const PRE_AUTH_SLACK: usize = 1024;

/// First pause after a failed accept; doubles up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
/// Longest pause after failed accepts (for example while out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves connections from a bound listener until `shutdown` completes or
/// the process drains; the listening socket is closed on return (the
/// connections already accepted go on). `proxy` becomes the process's
/// current proxy unless a reload set one already; the loop keeps none of
/// its own, so that a proxy a reload replaced (its upstream addresses and
/// their refresh) goes once its last connection ends.
pub async fn run(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    local: Local,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    local.process.proxy.set_if_none(proxy);
    let process = local.process.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            () = process.drain.started() => {}
        }
    };
    tokio::pin!(shutdown);
    let mut backoff = MIN_ACCEPT_BACKOFF;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    backoff = MIN_ACCEPT_BACKOFF;
                    let _ = tcp.set_nodelay(true);
                    // The current configuration's proxy (a reload swaps it; set above).
                    let Some(proxy) = local.process.proxy.load_full() else {
                        continue;
                    };
                    let local = local.clone();
                    // Counted until its task ends: the drain waits for it.
                    let live = Live::new(local.process.clone());
                    if proxy.tls.is_some() {
                        tokio::spawn(async move {
                            serve_tls(tcp, peer, proxy, local, header_read_timeout).await;
                            drop(live);
                        });
                    } else {
                        let client = Client { peer, tls: false };
                        tokio::spawn(async move {
                            serve(tcp, client, proxy, local, header_read_timeout).await;
                            drop(live);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, pause = ?backoff, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => {
                            tracing::info!("listener stopped");
                            return;
                        }
                    }
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            },
            () = &mut shutdown => {
                tracing::info!("listener stopped");
                return;
            }
        }
    }
}

/// The upgrade request a connection answered with 101, if any, how its
/// session starts, and what it holds of the limits.
type Upgrade = Arc<Mutex<Option<(ClientRequest, Start, Admission)>>>;

/// Who is connected: the TCP peer, and whether over TLS.
#[derive(Debug, Clone, Copy)]
struct Client {
    /// The TCP peer.
    peer: SocketAddr,
    /// The connection is TLS (`X-Forwarded-Proto: https`).
    tls: bool,
}

/// Runs the TLS handshake (within `listener.tls.handshake_timeout`, before
/// and apart from `session.auth_timeout`), then serves the TLS stream as
/// [`serve`] serves TCP.
async fn serve_tls(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    local: Local,
    header_read_timeout: Duration,
) {
    let Some(tls) = proxy.tls.as_ref() else {
        return;
    };
    let Some(stream) = tls.accept(tcp, peer).await else {
        return;
    };
    let client = Client { peer, tls: true };
    serve(stream, client, proxy, local, header_read_timeout).await;
}

/// Serves one connection (TCP or TLS): HTTP/1 until it ends, or until a WebSocket
/// upgrade, after which hyper hands the socket back (its manual upgrade:
/// `without_shutdown` and `into_parts`) and the same task runs the session
/// on it. No task, channel or boxed socket is added per connection for the
/// upgrade.
async fn serve<IO: ClientIo>(
    io: IO,
    peer: Client,
    proxy: Arc<Proxy>,
    local: Local,
    header_read_timeout: Duration,
) {
    let upgrade = Upgrade::default();
    let service = {
        let (proxy, upgrade) = (proxy.clone(), upgrade.clone());
        let process = local.process.clone();
        service_fn(move |request| {
            let (proxy, upgrade, process) = (proxy.clone(), upgrade.clone(), process.clone());
            // Boxed: hyper's manual upgrade needs an `Unpin` response future.
            Box::pin(async move {
                Ok::<_, Infallible>(route(request, peer, (proxy, process), &upgrade).await)
            })
        })
    };
    // hyper's manual upgrade (`without_shutdown`), and the drain: a request
    // in flight is finished, then the connection closes. In a block: none of
    // it is kept while the session runs. The box holding hyper's connection
    // state (about 2 KiB) is freed at the block's end: `into_parts` moves the
    // connection out of it, and a moved-from box is freed only when it goes
    // out of scope (at the function's end, it cost every idle connection
    // those 2 KiB; see docs/benchmarks.md).
    let parts = {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_header_size(proxy.max_header_bytes);
        if proxy.max_headers != crate::config::DEFAULT_MAX_HEADERS {
            // hyper's own limit otherwise (set, its header array is on the heap).
            builder.max_headers(proxy.max_headers);
        }
        let mut connection = Box::new(builder.serve_connection(TokioIo::new(io), service));
        let served = {
            let drained = local.process.drain.started();
            tokio::pin!(drained);
            let mut shutting_down = false;
            std::future::poll_fn(|cx| {
                if !shutting_down && drained.as_mut().poll(cx).is_ready() {
                    shutting_down = true;
                    std::pin::Pin::new(&mut *connection).graceful_shutdown();
                }
                connection.poll_without_shutdown(cx)
            })
            .await
        };
        match served {
            Ok(()) => connection.into_parts(),
            Err(e) => {
                if e.is_parse() {
                    Rejects::global().count(Reject::BadHttp);
                }
                tracing::debug!(error = %e, "http connection ended with an error");
                return;
            }
        }
    };
    let answered = upgrade
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some((client, start, admission)) = answered else {
        // Plain HTTP, served until the client was done.
        return;
    };
    // Room for the first frame, its header and a few pings before it.
    let budget = proxy.session.max_auth_frame_bytes + PRE_AUTH_SLACK;
    let http1::Parts { io, read_buf, .. } = parts;
    let socket = Budgeted::new(io.into_inner(), budget);
    let id = crate::ids::connection_id();
    let session = Session::new(proxy, local, id, client, socket, &read_buf)
        .admitted(admission)
        .begin(start);
    // `read_buf` shares hyper's read buffer: dropped before the session runs,
    // or every open connection would keep that buffer.
    drop(read_buf);
    drop(upgrade);
    session.run().await;
}

/// Upgrade requests become WebSocket sessions; everything else is passed through.
async fn route(
    request: Request<Incoming>,
    peer: Client,
    (proxy, process): (Arc<Proxy>, Arc<Process>),
    upgrade: &Upgrade,
) -> Response<Body> {
    let limits = &process.limits;
    if request.headers().contains_key(UPGRADE)
        || has_token(request.headers(), CONNECTION.as_str(), "upgrade")
    {
        let accept = match accept_key(&request) {
            Ok(accept) => accept,
            Err(e) => return error(e),
        };
        let admission = match admit(limits, &proxy, peer, request.headers()) {
            Ok(admission) => admission,
            Err(refused) => {
                return refused
                    .response_retry_after(limits.config().retry_after)
                    .map(|b| b.map_err(|never| match never {}).boxed())
            }
        };
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        // Upgrade tokens answered in HTTP: a cooling address gets 429 for one
        // (the session refuses it at the first frame otherwise).
        if proxy.legacy.reject_with_http
            && limits.cooling(admission.addr())
            && proxy.legacy.find(request.headers(), target).is_some()
        {
            return too_many_attempts(limits);
        }
        return match crate::http_auth::admit_upgrade(&proxy, request.headers(), target).await {
            Ok(start) => answer_upgrade(request, peer, &proxy, accept, (upgrade, start, admission)),
            Err(refused) => {
                if is_own_401(&refused) {
                    limits.auth_failed(admission.addr());
                }
                *refused
            }
        };
    }
    // Protected routes: failed auths count against the client's address.
    let key = proxy.http_rules.protects().then(|| {
        let ip = crate::limits::client_address(
            peer.peer.ip(),
            request.headers(),
            proxy.headers.trusted(),
        );
        limits.key(ip)
    });
    if key.is_some_and(|k| limits.cooling(k)) {
        return too_many_attempts(limits);
    }
    let response =
        crate::passthrough::forward(request, peer.peer, peer.tls, &proxy, &process.revocations)
            .await;
    if let Some(k) = key.filter(|_| is_own_401(&response)) {
        limits.auth_failed(k);
    }
    response
}

/// 429 `too_many_attempts` for a client address in its failed-auth cool-down
/// (counted as a refusal).
fn too_many_attempts(limits: &crate::limits::Limits) -> Response<Body> {
    crate::metrics::limit_refused(crate::limits::Limit::FailedAuth);
    HttpError::TooManyAttempts
        .response_retry_after(limits.config().failed_auth_cooldown)
        .map(|b| b.map_err(|never| match never {}).boxed())
}

/// Whether a response is wsguard's own 401 (a protected route's refused or
/// missing token), not one passed through from the upstream.
fn is_own_401(response: &Response<Body>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer realm=\"wsguard\""))
}

/// The limits' verdict on an upgrade (before its token is looked at): its
/// admission, or the 503/429 answer (sent with `Retry-After`).
fn admit(
    limits: &Arc<Limits>,
    proxy: &Proxy,
    peer: Client,
    headers: &HeaderMap,
) -> Result<Admission, HttpError> {
    let ip = crate::limits::client_address(peer.peer.ip(), headers, proxy.headers.trusted());
    limits.admit(limits.key(ip)).map_err(|limit| {
        crate::metrics::limit_refused(limit);
        tracing::debug!(client = ?ip, limit = limit.label(), "upgrade refused by a limit");
        if limit.over_capacity() {
            HttpError::OverCapacity
        } else {
            HttpError::RateLimited
        }
    })
}

/// An HTTP error as a response of the proxy's body type.
pub fn error(e: HttpError) -> Response<Body> {
    e.response()
        .map(|b| b.map_err(|never| match never {}).boxed())
}

/// The `Sec-WebSocket-Accept` value if this is a valid WebSocket handshake
/// (RFC 6455 §4.2.1), else the answer that says what is wrong.
fn accept_key(request: &Request<Incoming>) -> Result<HeaderValue, HttpError> {
    let h = request.headers();
    let valid = request.method() == Method::GET
        && request.version() == http::Version::HTTP_11
        && has_token(h, UPGRADE.as_str(), "websocket")
        && has_token(h, CONNECTION.as_str(), "upgrade")
        && !has_body(h);
    if !valid {
        return Err(HttpError::BadUpgrade);
    }
    if !is_origin_or_absolute_form(request.uri()) {
        return Err(HttpError::BadRequestTarget);
    }
    let mut versions = list_items(h, SEC_WEBSOCKET_VERSION.as_str());
    if versions.next() != Some(b"13".as_slice()) || versions.next().is_some() {
        return Err(HttpError::UnsupportedWebSocketVersion);
    }
    let mut keys = h.get_all(SEC_WEBSOCKET_KEY).into_iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(HttpError::BadUpgrade);
    };
    let decoded_len =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.as_bytes())
            .map(|k| k.len())
            .unwrap_or(0);
    if decoded_len != 16 {
        return Err(HttpError::BadUpgrade);
    }
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| HttpError::BadUpgrade)
}

/// Whether a request announces a body by its length (an upgrade may not
/// have one: its bytes would be taken for WebSocket frames). A chunked
/// upgrade is left to hyper, as before (tests/headers.rs: an empty chunked
/// body is accepted).
fn has_body(h: &HeaderMap) -> bool {
    h.get_all(http::header::CONTENT_LENGTH)
        .iter()
        .any(|v| v.as_bytes() != b"0")
}

/// Whether an upgrade's request target is origin-form (`/path?query`) or
/// absolute-form with an `http`, `https`, `ws` or `wss` scheme (of which
/// only the path and query are used). Asterisk-form (`*`) and
/// authority-form (`host:port`) are refused.
pub(crate) fn is_origin_or_absolute_form(uri: &Uri) -> bool {
    match (uri.scheme_str(), uri.authority()) {
        (None, None) => uri.path().starts_with('/'),
        (Some(scheme), Some(_)) => ["http", "https", "ws", "wss"]
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s)),
        _ => false,
    }
}

/// Answers 101; the session starts once hyper hands the socket back (see [`serve`]).
fn answer_upgrade(
    mut request: Request<Incoming>,
    peer: Client,
    proxy: &Proxy,
    accept: HeaderValue,
    (upgrade, start, admission): (&Upgrade, Start, Admission),
) -> Response<Body> {
    let subprotocol = choose_subprotocol(request.headers(), &proxy.upstream.subprotocols);
    let client = ClientRequest {
        subprotocol: subprotocol.clone(),
        peer: peer.peer,
        tls: peer.tls,
        headers: std::mem::take(request.headers_mut()),
        path_and_query: request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned()),
    };
    *upgrade.lock().unwrap_or_else(PoisonError::into_inner) = Some((client, start, admission));
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(p) = subprotocol {
        h.insert(SEC_WEBSOCKET_PROTOCOL, p);
    }
    response
}

/// The first subprotocol the client offers that the configuration allows.
fn choose_subprotocol(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    if allowed.is_empty() {
        return None;
    }
    list_items(headers, SEC_WEBSOCKET_PROTOCOL.as_str())
        .find(|offered| allowed.iter().any(|a| a.as_bytes() == *offered))
        .and_then(|p| HeaderValue::from_bytes(p).ok())
}
