//! Control frames of the dialect are never relayed: small ones whatever
//! their spelling or what a JSON parser makes of them, large or much
//! fragmented ones when their first member is the type; application
//! messages pass untouched; the upstream can tell the proxy's notice from
//! anything a client sends by its key (docs/protocol.md, "Client →
//! wsguard" and "wsguard → upstream").

mod support;

use futures_util::SinkExt;
use serde_json::{json, Value};
use support::lifecycle::*;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// A proxy with the upstream notice on and no REAUTH rate limit.
async fn notice_proxy(upstream: &Upstream) -> TestProxy {
    proxy(upstream.addr)
        .session("upstream_notice = true\nreauth_min_interval = \"0s\"")
        .start()
        .await
}

/// Sends `text` as a text message in `n` fragments.
async fn send_fragmented(ws: &mut Ws, text: &str, n: usize) {
    let bytes = text.as_bytes();
    let cut = |i: usize| i * bytes.len() / n;
    let pieces: Vec<&[u8]> = (0..n).map(|i| &bytes[cut(i)..cut(i + 1)]).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { Data::Text } else { Data::Continue };
        let frame = Frame::message(piece.to_vec(), OpCode::Data(op), i + 1 == n);
        ws.send(Message::Frame(frame)).await.expect("send fragment");
    }
}

/// The next frame the client gets is an `error` with `code`.
async fn expect_refused(ws: &mut Ws, code: &str, what: &str) {
    let v = recv_type(ws, "error").await;
    assert_eq!(v["payload"]["code"], code, "{what}: {v}");
}

/// Nothing reached the upstream before `marker`: it is the next frame.
async fn nothing_relayed_before(ws: &mut Ws, up: &mut UpConn, marker: &str) {
    send_text(ws, marker).await;
    assert_eq!(up_text(up).await, marker);
}

fn forged_notice(extra: &str) -> String {
    format!(
        r#"{{"type":"identity_refreshed","payload":{{"sub":"admin","exp":9999999999,"claims":{{"sub":"admin"}}}}{extra}}}"#
    )
}

#[tokio::test]
async fn large_fragmented_and_escaped_forged_notices_never_reach_the_upstream() {
    let mut upstream = Upstream::start(false).await;
    let proxy = notice_proxy(&upstream).await;
    let mut ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let mut up = upstream.accept().await;
    let pad = format!(r#","pad":"{}""#, "x".repeat(20_000));

    // 20 KB: over session.max_auth_frame_bytes (16 KiB), decided by its first member.
    send_text(&mut ws, &forged_notice(&pad)).await;
    expect_refused(&mut ws, "frame_too_large", "20 KB notice").await;
    let escaped = forged_notice(&pad).replace("refreshed", r"refresh\u0065d");
    send_text(&mut ws, &escaped).await;
    expect_refused(&mut ws, "frame_too_large", "escaped 20 KB notice").await;
    let upper = forged_notice(&pad).replacen("type", "TYPE", 1);
    send_text(&mut ws, &upper).await;
    expect_refused(&mut ws, "frame_too_large", "TYPE 20 KB notice").await;

    // 15 fragments: more than the 8 an inspected message may come in.
    send_fragmented(&mut ws, &forged_notice(""), 15).await;
    expect_refused(&mut ws, "frame_too_large", "15 fragments").await;
    send_fragmented(&mut ws, &forged_notice(&pad), 15).await;
    expect_refused(&mut ws, "frame_too_large", "20 KB in 15 fragments").await;

    // Small, escaped: inspected whole.
    send_text(
        &mut ws,
        &forged_notice("").replace("refreshed", r"refresh\u0065d"),
    )
    .await;
    expect_refused(&mut ws, "reserved_type", "escaped notice").await;
    send_text(
        &mut ws,
        &forged_notice("").replacen("type", r"\u0074ype", 1),
    )
    .await;
    expect_refused(&mut ws, "reserved_type", "escaped key").await;

    nothing_relayed_before(&mut ws, &mut up, "after").await;
}

#[tokio::test]
async fn the_upstream_tells_the_real_notice_by_the_connection_key() {
    let mut upstream = Upstream::start(false).await;
    let proxy = notice_proxy(&upstream).await;
    let mut request = proxy.url("/").into_client_request().expect("request");
    request.headers_mut().insert(
        "x-auth-notice-key",
        "forged-by-the-client".parse().expect("value"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    send(&mut ws, auth_frame(&hs256("alice", 300))).await;
    recv_type(&mut ws, "AUTHENTICATED").await;
    let mut up = upstream.accept().await;
    let key = up
        .header("x-auth-notice-key")
        .expect("the upstream gets a key");
    assert_eq!(key.len(), 22, "128 bits, base64url: {key}");
    assert_ne!(key, "forged-by-the-client");

    send(&mut ws, reauth("r1", &hs256("alice", 600))).await;
    recv_type(&mut ws, "AUTHENTICATED").await;
    let notice: Value = serde_json::from_str(&up_text(&mut up).await).expect("JSON");
    assert_eq!(notice["type"], "identity_refreshed", "{notice}");
    assert_eq!(notice["key"], key.as_str(), "{notice}");

    // Another connection has another key.
    let _other = authed(&proxy, "/", &hs256("bob", 300)).await;
    let other_up = upstream.accept().await;
    let other_key = other_up.header("x-auth-notice-key").expect("key");
    assert_ne!(other_key, key);
}

#[tokio::test]
async fn without_the_notice_there_is_no_key() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let _ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.header("x-auth-notice-key"), None);
}

#[tokio::test]
async fn an_oversized_reauth_is_answered_and_its_token_never_relayed() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let mut up = upstream.accept().await;
    let big_token = hs256_claims(&json!({
        "sub": "alice",
        "exp": support::lifecycle::unix_now_f64() as i64 + 600,
        "groups": vec!["a-group-with-a-long-name"; 800],
    }));
    assert!(big_token.len() > 16 * 1024);
    // `type` first: a message too large to hold is decided by its first member.
    let frame = format!(r#"{{"type":"REAUTH","id":"big","payload":{{"token":"{big_token}"}}}}"#);
    send_text(&mut ws, &frame).await;
    expect_refused(&mut ws, "frame_too_large", "large REAUTH").await;
    send_fragmented(&mut ws, &frame, 3).await;
    expect_refused(&mut ws, "frame_too_large", "large REAUTH in 3 fragments").await;
    nothing_relayed_before(&mut ws, &mut up, "after").await;

    // A REAUTH that fits is still taken, on the same socket.
    send(&mut ws, reauth("small", &hs256("alice", 600))).await;
    let v = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "small", "{v}");
}

#[tokio::test]
async fn control_frames_our_parser_refuses_are_refused_not_relayed() {
    let mut upstream = Upstream::start(false).await;
    let proxy = notice_proxy(&upstream).await;
    let mut ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let mut up = upstream.accept().await;
    let token = hs256("alice", 600);
    let deep = format!(r#","deep":{}{}"#, "[".repeat(200), "]".repeat(200));
    let cases = [
        ("out-of-range number", forged_notice(r#","n":1e400"#)),
        ("lone surrogate", forged_notice(r#","pad":"\ud800""#)),
        ("deep nesting", forged_notice(&deep)),
        (
            "REAUTH with an out-of-range number",
            format!(r#"{{"type":"REAUTH","payload":{{"token":"{token}"}},"n":1e400}}"#),
        ),
        ("TYPE key", forged_notice("").replacen("type", "TYPE", 1)),
        ("trailing data", format!("{} trailing", forged_notice(""))),
        (
            "second object",
            format!(r#"{}{{"x":1}}"#, forged_notice("")),
        ),
        ("BOM", format!("\u{feff}{}", forged_notice(""))),
        (
            "duplicate type keys",
            format!(r#"{{"type":"chat","type":"REAUTH","payload":{{"token":"{token}"}}}}"#),
        ),
        (
            "duplicate type keys, other order",
            format!(r#"{{"type":"REAUTH","type":"chat","payload":{{"token":"{token}"}}}}"#),
        ),
    ];
    for (what, text) in cases {
        send_text(&mut ws, &text).await;
        expect_refused(&mut ws, "malformed_frame", what).await;
    }
    nothing_relayed_before(&mut ws, &mut up, "after").await;
    // The connection still takes a well-formed REAUTH.
    send(&mut ws, reauth("ok", &token)).await;
    recv_type(&mut ws, "AUTHENTICATED").await;
}

#[tokio::test]
async fn application_messages_pass_untouched() {
    let mut upstream = Upstream::start(false).await;
    let proxy = notice_proxy(&upstream).await;
    let mut ws = authed(&proxy, "/", &hs256("alice", 300)).await;
    let mut up = upstream.accept().await;
    let long = "y".repeat(20_000);
    let messages = [
        // A truncated emoji, as JavaScript's JSON.stringify writes it.
        r#"{"type":"chat","text":"\ud83d"}"#.to_owned(),
        r#"{"type":"chat","n":1e400,"about":"REAUTH"}"#.to_owned(),
        format!(
            r#"{{"type":"chat","d":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        ),
        r#"{"type":"chat","text":"\"identity_refreshed\""}"#.to_owned(),
        "\u{feff}{\"type\":\"chat\"}".to_owned(),
        r#"{"type":"chat"} {"type":"REAUTH"}"#.to_owned(),
        format!(r#"{{"type":"chat","text":"{long}"}}"#),
        // Too large to hold: decided by its first member (docs/protocol.md).
        format!(r#"{{"text":"{long}","type":"identity_refreshed"}}"#),
    ];
    for text in &messages {
        send_text(&mut ws, text).await;
        assert_eq!(&up_text(&mut up).await, text);
    }
    send_fragmented(&mut ws, &messages[6], 20).await;
    assert_eq!(up_text(&mut up).await, messages[6]);
}

#[tokio::test]
async fn a_first_frame_too_large_to_be_an_auth_frame_is_closed_at_its_header() {
    use support::raw::{header, mask_at, read_head, upgrade_request, TEXT};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::start(false).await;
    // A long auth timeout: the close must come from the header, not the timer.
    let proxy = proxy(upstream.addr)
        .session("auth_timeout = \"60s\"")
        .start()
        .await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let mut bytes = upgrade_request(proxy.addr, "/", "").into_bytes();
    bytes.extend(header(TEXT, 100_000, true));
    bytes.extend(mask_at(br#"{"type":"REA"#, 0));
    tcp.write_all(&bytes).await.expect("write");
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut frame = [0u8; 4];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut frame))
        .await
        .expect("closed at once, not after the auth timeout")
        .expect("read");
    assert_eq!(frame[0], 0x88, "a close frame: {frame:?}");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1009);
}
