//! The demo's built-in upstream, reached through wsguard: the echo
//! WebSocket server, the chat page, the token endpoint and `/api/whoami`,
//! the HTTP route wsguard protects (`[http] protect`).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::http::{error, json, redirect};
use super::tokens::Minter;

/// The protected HTTP route: answers the identity wsguard verified.
pub const WHOAMI_PATH: &str = "/api/whoami";

/// HTTP/1 with upgrades, one task per connection.
pub async fn serve(listener: TcpListener, minter: Arc<Minter>) {
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

/// WebSocket upgrades go to the echo server, the rest by path.
fn route(request: Request<Incoming>, minter: &Minter) -> Response<Full<Bytes>> {
    if request.headers().contains_key(header::SEC_WEBSOCKET_KEY) {
        return upgrade(request);
    }
    let (method, path) = (request.method(), request.uri().path());
    if let Some(answer) = minter.route(method, path, request.uri().query()) {
        return answer;
    }
    match (method, path) {
        (&Method::GET, WHOAMI_PATH) => whoami(request.headers()),
        (&Method::GET, "/demo") => redirect(super::page::PAGE_PATH),
        (&Method::GET, _) => super::page::serve(path).unwrap_or_else(not_found),
        _ => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    json(StatusCode::NOT_FOUND, &error("not_found", "no such path"))
}

/// `{"sub", "request_id"}` from the headers wsguard set after verifying the token.
fn whoami(headers: &HeaderMap) -> Response<Full<Bytes>> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    json(
        StatusCode::OK,
        &serde_json::json!({
            "sub": text("x-auth-subject"),
            "request_id": text("x-request-id"),
        }),
    )
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
