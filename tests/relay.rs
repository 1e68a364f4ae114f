//! Relaying after AUTHENTICATED: text, binary and fragmented messages both ways, close codes and reasons both ways, either side vanishing, message limits, ping/pong staying hop-by-hop, backpressure, slow consumers and the proxy's memory under a slow reader.

mod support;
use support::*;

use std::time::Duration;
use support::wire::*;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
use tokio_tungstenite::tungstenite::Message;

/// The limits used by the message-size tests.
const LIMITS: &str = "max_message_bytes = 4096\nmax_frame_bytes = 4096";
const LIMIT: usize = 4096;

/// A flood message: big enough that a bounded proxy blocks quickly.
const CHUNK: usize = 64 * 1024;

/// An authenticated client and the upstream connection the proxy opened for it.
async fn pair(proxy: &TestProxy, upstream: &mut Upstream) -> (Ws, UpConn) {
    let ws = authed(proxy, "/", &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    (ws, up)
}

/// The same with a raw upstream socket (every frame visible, pings included).
async fn raw_pair(proxy: &TestProxy, raw: &RawUpstream) -> (Ws, ServerWs) {
    let mut ws = connect(proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    let (up, _) = raw.accept().await;
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    (ws, up)
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).cycle().take(1000).collect()
}

#[tokio::test]
async fn text_and_binary_are_relayed_unchanged_both_ways() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let (mut ws, mut up) = pair(&proxy, &mut upstream).await;
    let messages = vec![
        Message::text("héllo wörld ✓"),
        Message::binary(all_bytes()),
        Message::text(""),
        Message::binary(Vec::new()),
        Message::text(r#"{"type":"chat","payload":{"token":"not-a-control-frame"}}"#),
    ];
    relayed_both_ways(&mut ws, &mut up, &messages).await;
}

#[tokio::test]
async fn fragmented_client_messages_arrive_whole() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let (mut ws, mut up) = pair(&proxy, &mut upstream).await;
    // "wörld" split inside the two-byte ö.
    send_all(
        &mut ws,
        fragments(Data::Text, &[b"hello ", b"w\xc3", b"\xb6rld"]),
    )
    .await;
    send_all(
        &mut ws,
        fragments(Data::Binary, &[&[0u8, 1], &[], &[2, 3, 255]]),
    )
    .await;
    assert_eq!(up.recv().await, Message::text("hello wörld"));
    assert_eq!(up.recv().await, Message::binary(vec![0u8, 1, 2, 3, 255]));
}

#[tokio::test]
async fn fragmented_upstream_messages_arrive_whole() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let (mut ws, mut up) = raw_pair(&proxy, &raw).await;
    send_all(&mut up, fragments(Data::Text, &[b"fr", b"ag", b"ment"])).await;
    send_all(&mut up, fragments(Data::Binary, &[&[9u8; 3], &[8u8; 2]])).await;
    assert_eq!(recv(&mut ws).await, Message::text("fragment"));
    assert_eq!(recv(&mut ws).await, Message::binary(vec![9u8, 9, 9, 8, 8]));
}

#[tokio::test]
async fn client_close_code_and_reason_reach_upstream() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let (mut ws, mut up) = pair(&proxy, &mut upstream).await;
    ws.send(Message::text("last")).await.expect("send");
    ws.close(close_frame(4000, "bye")).await.expect("close");
    assert_eq!(up.recv().await, Message::text("last"));
    assert_eq!(close_of(&up.recv().await), (4000, "bye".to_owned()));
    assert_eq!(expect_close(&mut ws).await, (4000, "bye".to_owned()));
    drop(up);
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn upstream_close_code_and_reason_reach_client() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let (mut ws, mut up) = pair(&proxy, &mut upstream).await;
    up.send(Message::text("last"));
    let _ = up.tx.send(Cmd::Close(close_frame(4001, "later")));
    assert_eq!(recv(&mut ws).await, Message::text("last"));
    assert_eq!(close_of(&recv(&mut ws).await), (4001, "later".to_owned()));
    // The proxy answers the upstream's close.
    assert_eq!(close_of(&up.recv().await), (4001, "later".to_owned()));
    drop(up);
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn upstream_vanishing_closes_client_1011() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let (mut ws, up) = pair(&proxy, &mut upstream).await;
    let _ = up.tx.send(Cmd::Vanish);
    assert_eq!(
        close_of(&recv(&mut ws).await),
        (1011, "upstream gone".to_owned())
    );
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn client_vanishing_closes_upstream_1001() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("close_timeout = \"500ms\"")
        .start()
        .await;
    let (ws, mut up) = raw_pair(&proxy, &raw).await;
    drop(ws);
    assert_eq!(
        close_of(&next_any(&mut up).await),
        (1001, "client gone".to_owned())
    );
    // Our close reply goes out with the next read; then the proxy drops the socket.
    let _ = tokio::time::timeout(WAIT, up.next()).await;
    assert_eof(up.get_mut(), "upstream socket").await;
}

#[tokio::test]
async fn client_message_at_the_limit_passes_and_over_it_closes_1009() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .websocket(LIMITS)
        .session("max_auth_frame_bytes = 4096")
        .start()
        .await;
    let (mut ws, mut up) = pair(&proxy, &mut upstream).await;
    let at_limit = Message::text("t".repeat(LIMIT));
    ws.send(at_limit.clone()).await.expect("send");
    ws.send(Message::binary(vec![7u8; LIMIT]))
        .await
        .expect("send");
    assert_eq!(up.recv().await, at_limit);
    assert_eq!(up.recv().await, Message::binary(vec![7u8; LIMIT]));

    ws.send(Message::binary(vec![7u8; LIMIT + 1]))
        .await
        .expect("send");
    assert_eq!(
        close_of(&recv(&mut ws).await),
        (1009, "message too large".to_owned())
    );
    assert_eq!(close_of(&up.recv().await), (1001, "client gone".to_owned()));
    drop(up);
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn fragmented_client_message_over_the_limit_closes_1009() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .websocket(LIMITS)
        .session("max_auth_frame_bytes = 4096")
        .start()
        .await;
    let (mut ws, mut up) = pair(&proxy, &mut upstream).await;
    let half = vec![1u8; LIMIT / 2];
    send_all(&mut ws, fragments(Data::Binary, &[&half, &half])).await;
    assert_eq!(up.recv().await, Message::binary(vec![1u8; LIMIT]));

    let part = vec![2u8; 1500];
    send_all(&mut ws, fragments(Data::Binary, &[&part, &part, &part])).await;
    assert_eq!(
        close_of(&recv(&mut ws).await),
        (1009, "message too large".to_owned())
    );
    assert_eq!(close_of(&up.recv().await), (1001, "client gone".to_owned()));
    drop(up);
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn upstream_message_over_the_limit_closes_both_legs() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .websocket(LIMITS)
        .session("max_auth_frame_bytes = 4096")
        .start()
        .await;
    let (mut ws, mut up) = pair(&proxy, &mut upstream).await;
    up.send(Message::binary(vec![3u8; LIMIT]));
    assert_eq!(recv(&mut ws).await, Message::binary(vec![3u8; LIMIT]));

    up.send(Message::binary(vec![3u8; LIMIT + 1]));
    assert_eq!(
        close_of(&recv(&mut ws).await),
        (1011, "upstream gone".to_owned())
    );
    assert_eq!(
        close_of(&up.recv().await),
        (1009, "message too large".to_owned())
    );
    drop(up);
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn pings_are_answered_by_the_proxy_and_not_relayed() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"")
        .start()
        .await;
    let (mut ws, mut up) = raw_pair(&proxy, &raw).await;

    ws.send(Message::Ping("p1".into())).await.expect("ping");
    assert_eq!(next_any(&mut ws).await, Message::Pong("p1".into()));
    ws.send(Message::Pong("unsolicited".into()))
        .await
        .expect("pong");
    ws.send(Message::text("after")).await.expect("send");
    // The upstream sees the data frame and nothing before it.
    assert_eq!(next_any(&mut up).await, Message::text("after"));

    up.send(Message::Ping("u1".into())).await.expect("ping");
    assert_eq!(next_any(&mut up).await, Message::Pong("u1".into()));
    up.send(Message::text("after-up")).await.expect("send");
    assert_eq!(next_any(&mut ws).await, Message::text("after-up"));
}

#[tokio::test]
async fn a_slow_reader_does_not_grow_the_proxys_memory() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"")
        .start()
        .await;
    let (mut ws, up) = raw_pair(&proxy, &raw).await;
    let (flood, _up_rx) = flood(up, CHUNK);
    // The client reads nothing: the upstream's sends must come to a stop,
    // because the proxy stops reading it while the client leg is blocked.
    let stalled_at = flood.stalled(Duration::from_millis(400)).await;
    assert!(
        stalled_at < 1024,
        "the upstream sent {stalled_at} x 64 KiB before its sends blocked"
    );
    eprintln!("upstream blocked after {stalled_at} messages of 64 KiB");

    // Nothing was lost and the order held: the client now reads everything.
    flood.stop();
    let mut seq = 0u64;
    loop {
        match recv(&mut ws).await {
            Message::Binary(b) => {
                assert!(b[..] == numbered(seq, CHUNK)[..], "message {seq} differs");
                seq += 1;
            }
            Message::Text(t) if t.as_str() == "end" => break,
            other => panic!("unexpected {}", describe(&other)),
        }
    }
    let _sink = flood.join().await;
    assert!(seq as usize > stalled_at);
}

#[tokio::test]
async fn a_client_that_stays_too_slow_is_closed_and_upstream_gets_1001() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session(
            "ping_interval = \"0s\"\nslow_consumer_timeout = \"500ms\"\nclose_timeout = \"4s\"",
        )
        .start()
        .await;
    let (mut ws, up) = raw_pair(&proxy, &raw).await;
    let (flood, mut up_rx) = flood(up, CHUNK);
    let close = tokio::time::timeout(WAIT, up_rx.next())
        .await
        .expect("the upstream was not closed in time")
        .expect("upstream socket ended")
        .expect("upstream read");
    assert_eq!(close_of(&close), (1001, "client gone".to_owned()));
    assert!(
        flood.count() < 1024,
        "the upstream sent {} x 64 KiB",
        flood.count()
    );
    // The close frame is queued behind what the socket already holds; a
    // client that reads again within close_timeout finds it after the backlog.
    assert_eq!(
        expect_close(&mut ws).await,
        (1013, "slow consumer".to_owned())
    );
}

#[tokio::test]
async fn an_upstream_that_stays_too_slow_is_dropped_and_client_gets_1001() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session(
            "ping_interval = \"0s\"\nslow_consumer_timeout = \"500ms\"\nclose_timeout = \"500ms\"",
        )
        .start()
        .await;
    let (ws, mut up) = raw_pair(&proxy, &raw).await;
    // The upstream reads nothing; the client floods.
    let (flood, mut client_rx) = flood(ws, CHUNK);
    let close = tokio::time::timeout(WAIT, client_rx.next())
        .await
        .expect("the client was not closed in time")
        .expect("client socket ended")
        .expect("client read");
    assert_eq!(close_of(&close), (1001, "upstream gone".to_owned()));
    assert!(
        flood.count() < 1024,
        "the client sent {} x 64 KiB",
        flood.count()
    );
    // The proxy drops the upstream socket (behind the data it did take).
    assert_eof(up.get_mut(), "upstream socket").await;
}
