//! The byte-level relay: messages larger than one read pass through intact
//! in both directions; the proxy's own frames never land inside a relayed
//! frame or fragmented message; a close that comes in the middle of a
//! relayed frame waits for the frame's end, or ends the socket when the
//! frame's sender is gone (the upstream's, or the client's, dropped or
//! reset: the soak's `kill_mid_frame`); a long text message is data,
//! whatever it says.

mod support;
use support::lifecycle::*;
use support::wire::*;
use support::*;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
use tokio_tungstenite::tungstenite::Message;

/// Client and raw upstream, authenticated with a token of `ttl` seconds.
async fn raw_pair_ttl(proxy: &TestProxy, raw: &RawUpstream, ttl: i64) -> (Ws, ServerWs) {
    let mut ws = connect(proxy, "/").await;
    ws.send(auth_frame(&token("alice", ttl).0))
        .await
        .expect("send auth");
    let (up, _) = raw.accept().await;
    recv_type(&mut ws, "AUTHENTICATED").await;
    (ws, up)
}

#[tokio::test]
async fn messages_larger_than_a_read_pass_through_intact_both_ways() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .websocket("read_buffer_bytes = 256")
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let mut up = upstream.accept().await;
    let big_binary: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let big_text = "wörld ✓ ".repeat(20_000);
    let messages = [
        Message::binary(big_binary.clone()),
        Message::text(big_text.clone()),
        Message::text("small"),
    ];
    relayed_both_ways(&mut ws, &mut up, &messages).await;
}

#[tokio::test]
async fn a_notice_due_inside_a_fragmented_message_waits_for_its_end() {
    let raw = RawUpstream::start().await;
    // auth_required is due within a second of the first auth.
    let proxy = proxy(raw.addr)
        .session("reauth_lead = \"3s\"\nping_interval = \"0s\"")
        .start()
        .await;
    let (mut ws, mut up) = raw_pair_ttl(&proxy, &raw, 4).await;
    let mut frames = fragments(Data::Text, &[b"first half, ", b"second half"]);
    let last = frames.split_off(1);
    send_all(&mut up, frames).await;
    // Past the notice's due time, before exp.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send_all(&mut up, last).await;
    // A frame of the proxy's inside the fragmented message would be a
    // protocol error for the client.
    assert_eq!(recv_text(&mut ws).await, "first half, second half");
    recv_type(&mut ws, "auth_required").await;
}

#[tokio::test]
async fn a_close_inside_a_fragmented_message_is_not_held_by_a_waiting_notice() {
    let raw = RawUpstream::start().await;
    // A close_timeout far longer than the test waits: the echo must come
    // because it can, not because time ran out.
    let proxy = proxy(raw.addr)
        .session("reauth_lead = \"3s\"\nping_interval = \"0s\"\nclose_timeout = \"30s\"")
        .start()
        .await;
    let (mut ws, mut up) = raw_pair_ttl(&proxy, &raw, 4).await;
    let mut frames = fragments(Data::Text, &[b"first half, ", b"never sent"]);
    frames.truncate(1);
    send_all(&mut up, frames).await;
    // auth_required is now due, and waits for the message's end.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws.send(Message::Close(close_frame(4000, "bye")))
        .await
        .expect("close");
    let closed = tokio::time::timeout(Duration::from_secs(5), expect_close(&mut ws)).await;
    assert_eq!(
        closed.expect("the close echo waited behind the notice"),
        (4000, "bye".to_owned())
    );
}

#[tokio::test]
async fn a_client_close_inside_a_relayed_frame_follows_the_frame() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"")
        .start()
        .await;
    let (mut ws, mut up) = raw_pair_ttl(&proxy, &raw, 300).await;
    let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let tcp = up.get_mut();
    tcp.write_all(&raw::header(raw::BINARY, 1000, false))
        .await
        .expect("write");
    tcp.write_all(&payload[..500]).await.expect("write");
    // The proxy has relayed the first half before the client closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws.send(Message::Close(close_frame(4000, "bye")))
        .await
        .expect("close");
    tokio::time::sleep(Duration::from_millis(200)).await;
    up.get_mut()
        .write_all(&payload[500..])
        .await
        .expect("write");
    assert_eq!(recv(&mut ws).await, Message::binary(payload));
    assert_eq!(expect_close(&mut ws).await, (4000, "bye".to_owned()));
}

#[tokio::test]
async fn an_upstream_gone_inside_a_relayed_frame_ends_the_client_socket() {
    let raw = RawUpstream::start().await;
    // A close_timeout far longer than the test waits: the socket must end
    // because the frame can never be completed, not because time ran out.
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"\nclose_timeout = \"60s\"")
        .start()
        .await;
    let (mut ws, mut up) = raw_pair_ttl(&proxy, &raw, 300).await;
    let tcp = up.get_mut();
    tcp.write_all(&raw::header(raw::BINARY, 1000, false))
        .await
        .expect("write");
    tcp.write_all(&[7u8; 500]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(up);
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Err(_) => panic!("the client socket was not ended"),
        // No close frame can follow half a frame: the stream just ends.
        Ok(None | Some(Err(_))) => {}
        Ok(Some(Ok(m))) => panic!("unexpected {}", describe(&m)),
    }
}

#[tokio::test]
async fn a_text_message_over_the_inspection_limit_is_data() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("max_auth_frame_bytes = 1024")
        .start()
        .await;
    let (t, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &token("alice", 300).0).await;
    let mut up = upstream.accept().await;
    let padded = serde_json::json!({
        "type": "REAUTH",
        "id": "r1",
        "payload": {"token": t},
        "padding": "x".repeat(2000),
    })
    .to_string();
    send_text(&mut ws, &padded).await;
    assert_eq!(up.recv().await, Message::text(padded));
    expect_silence(&mut ws, Duration::from_millis(300)).await;
    // The same REAUTH within the limit is a control frame.
    send(&mut ws, reauth("r2", &t)).await;
    recv_type(&mut ws, "AUTHENTICATED").await;
}

/// Writes half of a 1000-byte client frame on the plain socket under `ws`
/// and drops it (finding (a) of docs/reliability.md's soak).
async fn die_inside_a_frame(mut ws: Ws) {
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        panic!("a plain socket");
    };
    tcp.write_all(&raw::header(raw::BINARY, 1000, true))
        .await
        .expect("write");
    tcp.write_all(&raw::mask_at(&[7u8; 500], 0))
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(ws);
}

/// The upstream socket ends (no close frame can follow half a frame) well
/// before `close_timeout` (60 s in these tests).
async fn expect_upstream_ended(up: &mut ServerWs) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), up.next()).await {
            Err(_) => panic!("the upstream socket was not ended"),
            Ok(None | Some(Err(_))) => return,
            // The proxy's pings, if any: keep reading.
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(Some(Ok(m))) => panic!("unexpected {}", describe(&m)),
        }
    }
}

#[tokio::test]
async fn a_client_gone_inside_a_relayed_frame_ends_the_upstream_socket() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"\nclose_timeout = \"60s\"")
        .start()
        .await;
    let (ws, mut up) = raw_pair_ttl(&proxy, &raw, 300).await;
    die_inside_a_frame(ws).await;
    expect_upstream_ended(&mut up).await;
}

#[tokio::test]
async fn a_client_reset_inside_a_relayed_frame_ends_the_upstream_socket() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"\nclose_timeout = \"60s\"")
        .start()
        .await;
    let (ws, mut up) = raw_pair_ttl(&proxy, &raw, 300).await;
    // Frames the client never reads: dropping its socket resets it.
    for k in 0..20u8 {
        up.send(Message::binary(vec![k; 2000])).await.expect("send");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    die_inside_a_frame(ws).await;
    expect_upstream_ended(&mut up).await;
}
