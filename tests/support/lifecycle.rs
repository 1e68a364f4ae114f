//! Helpers for the token-lifecycle and dialect tests: tokens with a known
//! `exp`, control frames, typed receives, and silence checks on both legs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{claims, hs256_claims, recv, recv_within, UpConn, Ws};

/// An HS256 token for `sub` that lives `ttl` seconds, and its `exp`.
pub fn token(sub: &str, ttl: i64) -> (String, i64) {
    token_with(sub, ttl, json!({}))
}

/// Like [`token`], with extra claims merged in.
pub fn token_with(sub: &str, ttl: i64, extra: Value) -> (String, i64) {
    let c = claims(sub, ttl, extra);
    let exp = c["exp"].as_i64().expect("exp");
    (hs256_claims(&c), exp)
}

/// A control frame `{"type": kind, "id": id, "payload": {"token": token}}`.
pub fn control(kind: &str, id: &str, token: &str) -> Message {
    Message::text(json!({"type": kind, "id": id, "payload": {"token": token}}).to_string())
}

/// A `REAUTH` frame.
pub fn reauth(id: &str, token: &str) -> Message {
    control("REAUTH", id, token)
}

/// Sends a frame from the client.
pub async fn send(ws: &mut Ws, m: Message) {
    ws.send(m).await.expect("client send");
}

/// Sends a text frame from the client.
pub async fn send_text(ws: &mut Ws, text: &str) {
    send(ws, Message::text(text)).await;
}

/// The client's next frame, which must be text.
pub async fn recv_text(ws: &mut Ws) -> String {
    match recv(ws).await {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The client's next frame, which must be a JSON object of type `kind`.
pub async fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    let text = recv_text(ws).await;
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(v["type"], kind, "expected a {kind} frame, got {v}");
    v
}

/// Asserts that the client gets no data or close frame for `wait` (it keeps
/// reading meanwhile, so it answers pings).
pub async fn expect_silence(ws: &mut Ws, wait: Duration) {
    if let Some(m) = recv_within(ws, wait).await {
        panic!("expected nothing for {wait:?}, got {m:?}");
    }
}

/// Sends a text frame and checks that the very next frame is its echo.
pub async fn round_trip(ws: &mut Ws, text: &str) {
    send_text(ws, text).await;
    assert_eq!(recv_text(ws).await, text, "echo of {text:?}");
}

/// The upstream's next frame, which must be text.
pub async fn up_text(up: &mut UpConn) -> String {
    match up.recv().await {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("upstream expected a text frame, got {other:?}"),
    }
}

/// Asserts that the upstream receives nothing for `wait`.
pub async fn up_silence(up: &mut UpConn, wait: Duration) {
    if let Some(m) = up.recv_within(wait).await {
        panic!("upstream expected nothing for {wait:?}, got {m:?}");
    }
}

/// The upstream's next frame, which must be a close frame: its code and reason.
pub async fn up_close(up: &mut UpConn) -> (u16, String) {
    match up.recv().await {
        Message::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
        Message::Close(None) => (1005, String::new()),
        other => panic!("upstream expected a close frame, got {other:?}"),
    }
}

/// Unix time now, with fractions of a second.
pub fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// RFC 3339 text (whole seconds, UTC) for unix seconds.
pub fn rfc3339(secs: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("positive time"));
    humantime::format_rfc3339_seconds(at).to_string()
}
