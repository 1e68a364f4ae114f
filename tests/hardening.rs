//! Defences found in review: header spoofing by underscore and by other
//! forwarding names, forged identity notices, answers that a client never
//! reads, unauthenticated clients announcing huge first frames, and tokens
//! with absurd `exp` values.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

use support::requests::{connect_request, ws_request};
use support::*;

#[tokio::test]
async fn underscore_and_other_forwarding_headers_are_never_forwarded() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut request = ws_request(&proxy, "/");
    for (name, value) in [
        ("x_auth_subject", "admin"),
        ("x-auth-roles", "admin"),
        ("x-forwarded-port", "1"),
        ("x-real-ip", "10.0.0.1"),
        ("true-client-ip", "10.0.0.1"),
        ("x-custom", "kept"),
    ] {
        request
            .headers_mut()
            .insert(name, value.parse().expect("value"));
    }
    let mut ws = connect_request(request).await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let up = upstream.accept().await;
    for name in [
        "x_auth_subject",
        "x-auth-roles",
        "x-forwarded-port",
        "x-real-ip",
        "true-client-ip",
    ] {
        assert_eq!(up.header(name), None, "{name} reached the upstream");
    }
    assert_eq!(up.header("x-custom").as_deref(), Some("kept"));
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_client_cannot_forge_the_identity_notice() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("upstream_notice = true")
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let mut up = upstream.accept().await;
    let forged = r#"{"id":"f1","type":"identity_refreshed","payload":{"sub":"alice","claims":{"roles":["admin"]}}}"#;
    ws.send(Message::text(forged)).await.expect("send");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["payload"]["code"], "reserved_type", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "f1", "{v}");
    ws.send(Message::text("after")).await.expect("send");
    assert_eq!(up.recv().await, Message::text("after"));
}

#[tokio::test]
async fn the_notice_type_is_plain_data_when_the_notice_is_off() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let mut up = upstream.accept().await;
    let frame = r#"{"type":"identity_refreshed","payload":{}}"#;
    ws.send(Message::text(frame)).await.expect("send");
    assert_eq!(up.recv().await, Message::text(frame));
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_not_read_either() {
    let upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    // A small, fixed receive buffer on the client (no autotuning), so the
    // proxy's answers back up quickly when the client does not read them.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(proxy.addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(proxy.url("/"), tcp)
        .await
        .expect("handshake");
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send");
    let (mut sink, mut stream) = ws.split();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("answer");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
    // Valid REAUTHs, answered AUTHENTICATED or `rate_limited` (neither
    // closes the connection); the client reads none of the answers.
    let padding = "p".repeat(8 * 1024);
    let token = hs256("alice", 300);
    let frame =
        serde_json::json!({"type": "REAUTH", "id": 1, "pad": padding, "payload": {"token": token}})
            .to_string();
    let mut sent = 0usize;
    let stalled = loop {
        let send = sink.send(Message::text(frame.clone()));
        match tokio::time::timeout(Duration::from_millis(700), send).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => panic!("send failed after {sent} frames: {e}"),
            Err(_) => break true,
        }
        if sent >= 40_000 {
            break false;
        }
    };
    // Unbounded answers would let the client write forever; bounded ones make
    // the proxy stop reading once the answers fill the sockets, and then the
    // client's own writes stall.
    assert!(stalled, "the proxy kept reading: {sent} x 8 KiB frames");
}

#[tokio::test]
async fn an_announced_huge_first_frame_is_refused_without_waiting_for_it() {
    let upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("auth_timeout = \"30s\"")
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    // A masked text frame header announcing 500 000 bytes, then 40 000 of them.
    let mut raw = vec![0x81u8, 0x80 | 127];
    raw.extend_from_slice(&500_000u64.to_be_bytes());
    raw.extend_from_slice(&[1, 2, 3, 4]);
    raw.extend(std::iter::repeat_n(b'a' ^ 1, 40_000));
    let MaybeTlsStream::Plain(tcp) = ws.get_mut() else {
        panic!("plain TCP expected");
    };
    tcp.write_all(&raw).await.expect("write raw frame");
    // Closed long before the 30 s auth timeout, and before the frame is complete.
    assert_eq!(
        expect_close(&mut ws).await,
        (1009, "auth frame too large".to_owned())
    );
}

#[tokio::test]
async fn an_exp_in_milliseconds_is_refused_not_fatal() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let token = hs256_claims(&claims(
        "alice",
        0,
        serde_json::json!({"exp": now() * 1000}),
    ));
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&token)).await.expect("send");
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "invalid token".to_owned())
    );
    assert!(upstream
        .accept_within(Duration::from_millis(300))
        .await
        .is_none());
    // The proxy is still serving.
    let mut ws = authed(&proxy, "/", &hs256("bob", 300)).await;
    ws.send(Message::text("hi")).await.expect("send");
    assert_eq!(recv(&mut ws).await, Message::text("hi"));
}
