//! The happy path end to end.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::*;

#[tokio::test]
async fn authenticated_round_trip_with_identity_headers() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut ws = authed(&proxy, "/chat?room=1&token=secret", &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.path, "/chat?room=1");
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("alice"));
    ws.send(Message::text("hello")).await.expect("send");
    assert_eq!(recv(&mut ws).await, Message::text("hello"));
}

/// Opens a WebSocket offering subprotocols.
async fn connect_offering(
    proxy: &TestProxy,
    offer: &str,
) -> Result<(Ws, http::Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = proxy.url("/chat").into_client_request().expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_str(offer).expect("header"),
    );
    tokio_tungstenite::connect_async(request).await
}

#[tokio::test]
async fn configured_subprotocol_is_agreed_on_both_legs() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream("subprotocols = [\"chat.v2\"]")
        .start()
        .await;
    let (mut ws, response) = connect_offering(&proxy, "chat.v1, chat.v2")
        .await
        .expect("handshake");
    let agreed = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok());
    assert_eq!(agreed, Some("chat.v2"));
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let up = upstream.accept().await;
    assert_eq!(
        up.header("sec-websocket-protocol").as_deref(),
        Some("chat.v2")
    );
}

#[tokio::test]
async fn unlisted_subprotocol_is_not_agreed() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    // The proxy answers without a subprotocol; a strict client (tungstenite) refuses that.
    let result = connect_offering(&proxy, "chat.v1").await;
    assert!(
        result.is_err(),
        "handshake should fail without an agreed subprotocol"
    );
}
