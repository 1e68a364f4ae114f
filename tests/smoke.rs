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
