//! The first frame and the way to AUTHENTICATED: the upgrade without credentials, every first-frame failure (timeout, wrong type, binary, not JSON, too large), client frames queued while the upstream is being opened (order and bounds), an upstream that is down, refuses or stalls, and the AUTHENTICATED frame itself.

mod support;
use support::*;

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::wire::*;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Long enough to notice a connection the proxy should not have opened.
const QUIET: Duration = Duration::from_millis(300);

/// The first frame the client gets must be this close.
async fn expect_first_close(ws: &mut Ws, code: u16, reason: &str) {
    let first = recv(ws).await;
    assert_eq!(
        close_of(&first),
        (code, reason.to_owned()),
        "{}",
        describe(&first)
    );
}

/// An auth frame of exactly `len` bytes (padded with an extra field).
fn padded_auth(token: &str, len: usize) -> String {
    let base = json!({"type": "auth", "pad": "", "payload": {"token": token}}).to_string();
    assert!(len >= base.len(), "{len} is too short for an auth frame");
    let text =
        json!({"type": "auth", "pad": "x".repeat(len - base.len()), "payload": {"token": token}})
            .to_string();
    assert_eq!(text.len(), len);
    text
}

/// A first-frame failure: the close the client gets, that the upstream was
/// never contacted, and that the proxy dropped the client.
async fn first_frame_refused(first: Message, code: u16, reason: &str) {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(first).await.expect("send first frame");
    expect_first_close(&mut ws, code, reason).await;
    assert_client_released(&mut ws).await;
    assert!(
        raw.accept_tcp_within(QUIET).await.is_none(),
        "the upstream was contacted"
    );
}

#[tokio::test]
async fn upgrade_needs_no_credentials_and_upstream_waits_for_auth() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let mut ws = connect(&proxy, "/room?x=1").await;
    assert!(
        raw.accept_tcp_within(QUIET).await.is_none(),
        "the upstream was contacted before any auth frame"
    );
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    let (mut up, path) = raw.accept().await;
    assert_eq!(path, "/room?x=1");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    ws.send(Message::text("hi")).await.expect("send");
    assert_eq!(next_any(&mut up).await, Message::text("hi"));
}

#[tokio::test]
async fn no_first_frame_closes_auth_timeout_without_contacting_upstream() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("auth_timeout = \"300ms\"")
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    expect_first_close(&mut ws, 1008, "auth timeout").await;
    assert_client_released(&mut ws).await;
    assert!(
        raw.accept_tcp_within(QUIET).await.is_none(),
        "the upstream was contacted"
    );
}

#[tokio::test]
async fn auth_timeout_is_distinct_code_4408_when_configured() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("auth_timeout = \"300ms\"\nclose_codes = \"distinct\"")
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    expect_first_close(&mut ws, 4408, "auth timeout").await;
}

#[tokio::test]
async fn first_frame_of_another_type_is_auth_required() {
    let token = hs256("alice", 300);
    let frame = json!({"type": "hello", "payload": {"token": token}}).to_string();
    first_frame_refused(Message::text(frame), 1008, "auth required").await;
}

#[tokio::test]
async fn reauth_as_first_frame_is_auth_required() {
    let token = hs256("alice", 300);
    let frame = json!({"type": "REAUTH", "payload": {"token": token}}).to_string();
    first_frame_refused(Message::text(frame), 1008, "auth required").await;
}

#[tokio::test]
async fn binary_first_frame_is_auth_required() {
    let token = hs256("alice", 300);
    let frame = json!({"type": "auth", "payload": {"token": token}}).to_string();
    first_frame_refused(Message::binary(frame.into_bytes()), 1008, "auth required").await;
}

#[tokio::test]
async fn non_json_first_frame_is_auth_required() {
    first_frame_refused(Message::text("hello there"), 1008, "auth required").await;
}

#[tokio::test]
async fn json_array_first_frame_is_auth_required() {
    first_frame_refused(Message::text(r#"[{"type":"auth"}]"#), 1008, "auth required").await;
}

#[tokio::test]
async fn auth_frame_over_the_limit_closes_1009() {
    let text = padded_auth(&hs256("alice", 300), 16 * 1024 + 1);
    first_frame_refused(Message::text(text), 1009, "auth frame too large").await;
}

#[tokio::test]
async fn auth_frame_exactly_at_the_limit_is_accepted() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(Message::text(padded_auth(&hs256("alice", 300), 16 * 1024)))
        .await
        .expect("send auth");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    let _up = upstream.accept().await;
}

#[tokio::test]
async fn configured_auth_frame_limit_is_inclusive() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("max_auth_frame_bytes = 1024")
        .start()
        .await;
    let token = hs256("alice", 300);

    let mut ws = connect(&proxy, "/").await;
    ws.send(Message::text(padded_auth(&token, 1024)))
        .await
        .expect("send auth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let _up = upstream.accept().await;

    let mut ws = connect(&proxy, "/").await;
    ws.send(Message::text(padded_auth(&token, 1025)))
        .await
        .expect("send auth");
    expect_first_close(&mut ws, 1009, "auth frame too large").await;
    assert!(upstream.accept_within(QUIET).await.is_none());
}

#[tokio::test]
async fn first_frame_over_the_message_limit_is_auth_frame_too_large() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .websocket("max_message_bytes = 4096\nmax_frame_bytes = 4096")
        .session("max_auth_frame_bytes = 1024")
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(Message::text(padded_auth(&hs256("alice", 300), 5000)))
        .await
        .expect("send auth");
    expect_first_close(&mut ws, 1009, "auth frame too large").await;
    assert!(raw.accept_tcp_within(QUIET).await.is_none());
}

#[tokio::test]
async fn frames_sent_before_authenticated_are_delivered_in_order() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let mut ws = connect(&proxy, "/").await;
    let early = vec![
        Message::text("one"),
        Message::binary(vec![2u8, 2, 2]),
        Message::text("three"),
        Message::text(r#"{"type":"chat","text":"four"}"#),
        Message::binary(vec![5u8]),
    ];
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    for m in early.clone() {
        ws.send(m).await.expect("send early frame");
    }
    // Hold the upstream handshake so the frames arrive while the proxy is connecting.
    let tcp = raw.accept_tcp().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut up, _) = handshake(tcp).await;

    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    for expected in early {
        assert_eq!(next_any(&mut up).await, expected);
    }
    ws.send(Message::text("after")).await.expect("send");
    assert_eq!(next_any(&mut up).await, Message::text("after"));
}

#[tokio::test]
async fn too_many_frames_before_authenticated_close_buffer_full() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .upstream("pending_max_frames = 3")
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    // The upstream accepts TCP but never answers the handshake.
    let mut tcp = raw.accept_tcp().await;
    for i in 0..4 {
        ws.send(Message::text(format!("m{i}")))
            .await
            .expect("send early frame");
    }
    expect_first_close(&mut ws, 1008, "buffer full").await;
    assert_client_released(&mut ws).await;
    // The connect attempt was given up with the session.
    assert_eof(&mut tcp, "pending upstream connection").await;
}

#[tokio::test]
async fn pending_bytes_bound_is_inclusive() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .upstream("pending_max_bytes = 112")
        .start()
        .await;
    let token = hs256("alice", 300);

    // 60 + 40 bytes of payload fit exactly: 66 + 46 with the frame headers
    // (2 bytes each, and the 4-byte masking key).
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&token)).await.expect("send auth");
    let tcp = raw.accept_tcp().await;
    ws.send(Message::text("a".repeat(60))).await.expect("send");
    ws.send(Message::binary(vec![b'b'; 40]))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut up, _) = handshake(tcp).await;
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    assert_eq!(next_any(&mut up).await, Message::text("a".repeat(60)));
    assert_eq!(next_any(&mut up).await, Message::binary(vec![b'b'; 40]));

    // 60 + 41 bytes (113 with the headers) do not.
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&token)).await.expect("send auth");
    let _tcp = raw.accept_tcp().await;
    ws.send(Message::text("a".repeat(60))).await.expect("send");
    ws.send(Message::binary(vec![b'b'; 41]))
        .await
        .expect("send");
    expect_first_close(&mut ws, 1008, "buffer full").await;
}

#[tokio::test]
async fn unreachable_upstream_closes_1013() {
    let proxy = proxy(Upstream::unused_addr().await).start().await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    expect_first_close(&mut ws, 1013, "upstream unavailable").await;
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn upstream_refusing_the_handshake_closes_1013() {
    let proxy = proxy(refusing_upstream("403 Forbidden").await)
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    expect_first_close(&mut ws, 1013, "upstream unavailable").await;
    assert_client_released(&mut ws).await;
}

#[tokio::test]
async fn upstream_not_answering_the_handshake_closes_1013_after_connect_timeout() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .upstream("connect_timeout = \"300ms\"")
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    let mut tcp = raw.accept_tcp().await;
    expect_first_close(&mut ws, 1013, "upstream unavailable").await;
    assert_eof(&mut tcp, "timed-out upstream connection").await;
}

fn unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn authenticated_carries_identity_connection_and_envelope() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).start().await;
    let c = claims("alice", 300, json!({}));
    let exp = c["exp"].as_u64().expect("exp");
    let token = hs256_claims(&c);

    let mut ws = connect(&proxy, "/").await;
    let auth = json!({"type": "auth", "id": "req-42", "payload": {"token": token}});
    ws.send(Message::text(auth.to_string()))
        .await
        .expect("send auth");
    let v = recv_json(&mut ws).await;
    let up = upstream.accept().await;

    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["id", "payload", "timestamp", "type"], "{v}");
    assert_eq!(v["type"], "AUTHENTICATED");
    let p = &v["payload"];
    assert_eq!(
        keys(p),
        ["connection_id", "exp", "expires_at", "in_reply_to", "sub"],
        "{v}"
    );
    assert_eq!(p["sub"], "alice");
    assert_eq!(p["exp"], exp);
    let expires_at = p["expires_at"].as_str().expect("expires_at");
    assert_eq!(
        humantime::parse_rfc3339(expires_at).expect("expires_at is RFC 3339"),
        unix(exp)
    );
    assert_eq!(p["in_reply_to"], "req-42");
    let connection_id = p["connection_id"].as_str().expect("connection_id");
    assert!(!connection_id.is_empty());
    assert_eq!(up.header("x-request-id").as_deref(), Some(connection_id));

    let id = v["id"].as_str().expect("id");
    assert!(!id.is_empty());
    let at = humantime::parse_rfc3339(v["timestamp"].as_str().expect("timestamp"))
        .expect("timestamp is RFC 3339");
    let skew = match at.duration_since(SystemTime::now()) {
        Ok(ahead) => ahead,
        Err(e) => e.duration(),
    };
    assert!(skew < Duration::from_secs(60), "timestamp {at:?} is off");

    // Another connection: another connection id and frame id; a numeric
    // auth id is echoed as a number, and no id means no in_reply_to.
    let mut ws2 = connect(&proxy, "/").await;
    let auth = json!({"type": "auth", "id": 7, "payload": {"token": hs256("bob", 300)}});
    ws2.send(Message::text(auth.to_string()))
        .await
        .expect("send auth");
    let v2 = recv_json(&mut ws2).await;
    assert_eq!(v2["payload"]["in_reply_to"], 7, "{v2}");
    assert_eq!(v2["payload"]["sub"], "bob");
    assert_ne!(v2["payload"]["connection_id"].as_str(), Some(connection_id));
    assert_ne!(v2["id"].as_str(), Some(id));

    let mut ws3 = connect(&proxy, "/").await;
    let auth = json!({"type": "auth", "payload": {"token": hs256("carol", 300)}});
    ws3.send(Message::text(auth.to_string()))
        .await
        .expect("send auth");
    let v3 = recv_json(&mut ws3).await;
    assert_eq!(v3["type"], "AUTHENTICATED", "{v3}");
    assert!(v3["payload"].get("in_reply_to").is_none(), "{v3}");
}

#[tokio::test]
async fn authenticated_switched_off_client_first_sees_the_upstream() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .dialect("authenticated = \"\"")
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    let mut up = upstream.accept().await;
    up.send(Message::text("welcome"));
    assert_eq!(recv(&mut ws).await, Message::text("welcome"));
    ws.send(Message::text("hi")).await.expect("send");
    assert_eq!(up.recv().await, Message::text("hi"));
}

#[tokio::test]
async fn reauth_before_authenticated_is_refused_without_reordering() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    let reauth = serde_json::json!({"type": "REAUTH", "id": "r1", "payload": {"token": hs256("alice", 400)}});
    ws.send(Message::text(reauth.to_string()))
        .await
        .expect("send reauth");
    // The upstream handshake is held until the REAUTH has been answered.
    let tcp = raw.accept_tcp().await;
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["payload"]["code"], "not_authenticated", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "r1", "{v}");
    let (mut up, _) = handshake(tcp).await;
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "a1", "{v}");
    ws.send(Message::text("after")).await.expect("send");
    // The REAUTH never reached the upstream.
    assert_eq!(next_any(&mut up).await, Message::text("after"));
}

#[tokio::test]
async fn upstream_101_without_a_valid_accept_key_closes_1013() {
    // A 101 with no Upgrade and no Sec-WebSocket-Accept is not a WebSocket handshake.
    let proxy = proxy(refusing_upstream("101 Switching Protocols").await)
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    expect_first_close(&mut ws, 1013, "upstream unavailable").await;
    assert_client_released(&mut ws).await;
}

/// Frames that arrive in the same packet as a handshake are not lost: the
/// client's auth frame and first message right behind its upgrade request,
/// and the upstream's first message right behind its 101 (both are read by
/// the HTTP layer before the relay takes the socket over).
#[tokio::test]
async fn frames_sent_with_the_handshakes_are_relayed() {
    use raw::*;
    let upstream = RawUpstream::start().await;
    let proxy = proxy(upstream.addr).start().await;
    let then = client_frame(TEXT, b"first from client");
    let mut client = raw_client_with(proxy.addr, "/chat", &hs256("alice", 300), &then).await;
    let first = server_frame(TEXT, b"first from server");
    let (mut up, _) = raw_upstream_accept_with(&upstream, &first).await;
    assert!(client
        .data_or_close()
        .await
        .text()
        .contains("AUTHENTICATED"));
    assert_eq!(client.data_or_close().await.text(), "first from server");
    assert_eq!(up.data_or_close().await.text(), "first from client");
}

// ---- request target, version and key of the upgrade -------------------------

/// An upgrade request for `target` with `version_and_key` header lines,
/// asking the proxy to close the connection after answering.
fn upgrade(target: &str, version_and_key: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade, close\r\n{version_and_key}\r\n"
    )
}

/// The usual version and key lines.
const V13_KEY: &str =
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// Sends `raw`, expects a 400 JSON answer with `code`, and returns it.
async fn refused_400(proxy: &TestProxy, raw: &str, code: &str) -> support::requests::RawResponse {
    let response = support::requests::raw_http(proxy.addr, raw).await;
    assert_eq!(response.status, 400, "{raw:?}: {response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.json()["error"], code, "{raw:?}: {response:?}");
    response
}

#[tokio::test]
async fn asterisk_and_authority_form_upgrades_get_400() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    for target in ["*", "app.example:80", "127.0.0.1:9"] {
        refused_400(&proxy, &upgrade(target, V13_KEY), "bad_request_target").await;
    }
    assert!(
        raw.accept_tcp_within(QUIET).await.is_none(),
        "the upstream was contacted"
    );
}

#[tokio::test]
async fn asterisk_and_authority_form_http_requests_get_400() {
    let mut http = support::requests::HttpUpstream::start().await;
    let proxy = proxy(http.addr).start().await;
    for target in ["*", "app.example:80"] {
        let raw = format!("OPTIONS {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        refused_400(&proxy, &raw, "bad_request_target").await;
    }
    assert!(
        http.request_within(QUIET).await.is_none(),
        "the upstream got a request"
    );
}

/// Absolute-form is accepted and only its path and query are used (token
/// parameters still stripped); origin-form is the usual case.
#[tokio::test]
async fn absolute_and_origin_form_upgrades_are_accepted() {
    use raw::*;
    let upstream = RawUpstream::start().await;
    let proxy = proxy(upstream.addr).start().await;
    for (target, seen) in [
        ("http://app.example/room?x=1&token=t", "/room?x=1"),
        ("ws://app.example:8080/a/b", "/a/b"),
        ("/origin?y=2", "/origin?y=2"),
    ] {
        let request = upgrade_request(proxy.addr, target, "");
        let mut client = raw_client_request(proxy.addr, &request, &hs256("alice", 300), &[]).await;
        let (_up, head) = raw_upstream_accept(&upstream).await;
        assert!(
            head.starts_with(&format!("GET {seen} HTTP/1.1\r\n")),
            "{target}: {head}"
        );
        let host = format!("\r\nhost: {}\r\n", upstream.addr);
        assert!(
            head.to_ascii_lowercase().contains(&host),
            "{target}: {head}"
        );
        assert!(client
            .data_or_close()
            .await
            .text()
            .contains("AUTHENTICATED"));
    }
}

/// RFC 6455 §4.4: a version the server does not speak gets 400 with the
/// versions it does. Two lines or a list are not "13", even when one is.
#[tokio::test]
async fn sec_websocket_version_must_be_exactly_one_13() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for versions in [
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Version: 13, 8\r\n",
        "Sec-WebSocket-Version: 13,13\r\n",
        "Sec-WebSocket-Version: 8\r\n",
        "Sec-WebSocket-Version: 013\r\n",
        "",
    ] {
        let request = upgrade("/chat", &format!("{versions}{key}"));
        let response = refused_400(&proxy, &request, "unsupported_websocket_version").await;
        assert_eq!(
            response.header("sec-websocket-version"),
            Some("13"),
            "{versions:?}"
        );
    }
    assert!(raw.accept_tcp_within(QUIET).await.is_none());
}

#[tokio::test]
async fn duplicated_sec_websocket_key_gets_400() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    for keys in [
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    ] {
        let request = upgrade("/chat", &format!("Sec-WebSocket-Version: 13\r\n{keys}"));
        let response = refused_400(&proxy, &request, "bad_upgrade").await;
        assert_eq!(response.header("sec-websocket-version"), None);
    }
    assert!(raw.accept_tcp_within(QUIET).await.is_none());
}

// ---- close code 1014 ---------------------------------------------------------

/// 1014 (bad gateway) is a registered close code: a close frame carrying it
/// is relayed as it is, from the client to the upstream and back.
#[tokio::test]
async fn close_code_1014_is_relayed_both_ways() {
    use raw::*;
    let close_1014 = [&1014u16.to_be_bytes()[..], b"bad gateway"].concat();
    let upstream = RawUpstream::start().await;
    let proxy = proxy(upstream.addr).start().await;

    let (mut client, mut up) = raw_pair(proxy.addr, &upstream, &hs256("alice", 300)).await;
    client.write(&client_frame(CLOSE, &close_1014)).await;
    let got = up.data_or_close().await;
    assert_eq!((got.opcode, got.payload), (CLOSE, close_1014.clone()));

    let (mut client, mut up) = raw_pair(proxy.addr, &upstream, &hs256("alice", 300)).await;
    up.write(&server_frame(CLOSE, &close_1014)).await;
    let got = client.data_or_close().await;
    assert_eq!((got.opcode, got.payload), (CLOSE, close_1014));
}
