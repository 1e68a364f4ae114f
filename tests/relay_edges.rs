//! Edges of the byte-level relay, driven frame by frame from raw sockets on
//! both ends: a close that comes in the middle of a relayed frame (the rest
//! of that frame goes, nothing after it), heartbeats while a long frame is
//! being relayed, suspension in the middle of an upstream frame, a flood of
//! pings in one write, and the upstream path prefix.

mod support;
use support::lifecycle::*;
use support::raw::*;
use support::wire::RawUpstream;
use support::*;

use std::time::Duration;

/// A payload whose bytes say where they are.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Defends against a close decided inside a relayed client frame cutting
/// that frame short or letting later frames through: the upstream closes
/// while the client is half-way through a binary frame; the upstream gets
/// the whole frame, then the close, and not the frame the client sent after.
#[tokio::test]
async fn close_inside_a_client_frame_relays_its_rest_and_nothing_after() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let big = payload(1000);
    // A marker and the first half of the big frame, in one write (one read).
    let head = [
        client_frame(TEXT, b"marker"),
        header(BINARY, big.len(), true),
        mask_at(&big[..500], 0),
    ]
    .concat();
    client.write(&head).await;
    assert_eq!(up.data_or_close().await.text(), "marker");
    up.write(&server_frame(CLOSE, &1000u16.to_be_bytes())).await;
    assert_eq!(client.data_or_close().await.close_code(), Some(1000));
    // The rest of the frame, a new frame, and the client's close reply.
    let rest = [
        mask_at(&big[500..], 500),
        client_frame(BINARY, b"too late"),
        client_frame(CLOSE, &1000u16.to_be_bytes()),
    ]
    .concat();
    client.write(&rest).await;
    let frame = up.data_or_close().await;
    assert_eq!((frame.opcode, frame.payload.len()), (BINARY, big.len()));
    assert!(frame.payload == big, "the frame arrived altered");
    assert_eq!(up.data_or_close().await.close_code(), Some(1000));
    assert_eq!(up.frame_within(Duration::from_millis(300)).await, None);
}

/// The same the other way: the client closes while an upstream frame is
/// half-way to it; the client gets the whole frame, then the close, and not
/// the frame the upstream sent after it.
#[tokio::test]
async fn close_inside_an_upstream_frame_relays_its_rest_and_nothing_after() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let big = payload(1000);
    let head = [
        server_frame(TEXT, b"marker"),
        header(BINARY, big.len(), false),
        big[..500].to_vec(),
    ]
    .concat();
    up.write(&head).await;
    assert_eq!(client.data_or_close().await.text(), "marker");
    client
        .write(&client_frame(CLOSE, &1000u16.to_be_bytes()))
        .await;
    assert_eq!(up.data_or_close().await.close_code(), Some(1000));
    let rest = [
        big[500..].to_vec(),
        server_frame(BINARY, b"too late"),
        server_frame(CLOSE, &1000u16.to_be_bytes()),
    ]
    .concat();
    up.write(&rest).await;
    let frame = client.data_or_close().await;
    assert_eq!((frame.opcode, frame.payload.len()), (BINARY, big.len()));
    assert!(frame.payload == big, "the frame arrived altered");
    assert_eq!(client.data_or_close().await.close_code(), Some(1000));
    assert_eq!(client.frame_within(Duration::from_millis(300)).await, None);
}

/// Defends against heartbeats counting a silence the proxy caused: while a
/// long client frame trickles upstream, the upstream's ping cannot be sent
/// (it would land inside the frame), so the upstream's silence must not be
/// counted against it. With `max_missed_pongs = 2` and pings every 300 ms, an
/// upload of over a second would otherwise close the connection.
#[tokio::test]
async fn a_slow_long_upload_is_not_a_missed_heartbeat() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"300ms\"\nmax_missed_pongs = 2")
        .start()
        .await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let big = payload(16 * 1024);
    client.write(&header(BINARY, big.len(), true)).await;
    let pieces = 16;
    let piece = big.len() / pieces;
    for i in 0..pieces {
        client
            .write(&mask_at(&big[i * piece..(i + 1) * piece], i * piece))
            .await;
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    // The upstream got no ping inside the frame (it would not parse), the
    // whole frame, then pings again; it answers one.
    let frame = up.data_or_close().await;
    assert_eq!((frame.opcode, frame.payload.len()), (BINARY, big.len()));
    assert!(frame.payload == big, "the frame arrived altered");
    assert_eq!(up.frame().await.opcode, PING);
    up.write(&server_frame(PONG, b"")).await;
    // Nothing but pings reached the client: no close for a missed heartbeat.
    while let Some(frame) = client.frame_within(Duration::from_millis(50)).await {
        assert_eq!(frame.opcode, PING, "{frame:?}");
        client.write(&client_frame(PONG, &frame.payload)).await;
    }
    client.write(&client_frame(TEXT, b"still here")).await;
    assert_eq!(up.data_or_close().await.text(), "still here");
}

/// Defends against a suspension that starts in the middle of an upstream
/// frame wedging the connection: the rest of the frame must still be relayed
/// (the proxy's TOKEN_EXPIRED and AUTHENTICATED wait behind it), a REAUTH
/// then resumes the connection, and a message the upstream sent while
/// suspended arrives after AUTHENTICATED.
#[tokio::test]
async fn suspension_inside_an_upstream_frame_finishes_the_frame() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("reauth_lead = \"1s\"\ngrace = \"5s\"\nreauth_min_interval = \"0s\"")
        .start()
        .await;
    let (token, exp) = token("alice", 2);
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &token).await;
    // auth_required comes a second before exp; then the upstream begins a frame.
    assert!(client
        .data_or_close()
        .await
        .text()
        .contains("auth_required"));
    let big = payload(1000);
    up.write(&[header(BINARY, big.len(), false), big[..500].to_vec()].concat())
        .await;
    // Past exp: the rest of the frame, then a new message, while suspended.
    let after_exp = exp as f64 + 0.3 - unix_now_f64();
    tokio::time::sleep(Duration::from_secs_f64(after_exp.max(0.0))).await;
    up.write(&[big[500..].to_vec(), server_frame(TEXT, b"later")].concat())
        .await;
    let frame = client.data_or_close().await;
    assert_eq!((frame.opcode, frame.payload.len()), (BINARY, big.len()));
    assert!(frame.payload == big, "the frame arrived altered");
    assert!(client
        .data_or_close()
        .await
        .text()
        .contains("TOKEN_EXPIRED"));
    let (fresh, _) = support::lifecycle::token("alice", 300);
    let reauth = reauth("r1", &fresh);
    client
        .write(&client_frame(
            TEXT,
            reauth.to_text().expect("text").as_bytes(),
        ))
        .await;
    assert!(client
        .data_or_close()
        .await
        .text()
        .contains("AUTHENTICATED"));
    assert_eq!(client.data_or_close().await.text(), "later");
    client.write(&client_frame(TEXT, b"resumed")).await;
    assert_eq!(up.data_or_close().await.text(), "resumed");
}

/// Defends against one read of many control frames making an unbounded
/// queue: 10,000 pings in one write are all answered, in order, and the
/// message after them is relayed; the connection stays open.
#[tokio::test]
async fn a_flood_of_pings_in_one_write_is_answered_in_order() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr).start().await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let count = 10_000u32;
    let mut flood: Vec<u8> = (0..count)
        .flat_map(|i| client_frame(PING, &i.to_be_bytes()))
        .collect();
    flood.extend(client_frame(TEXT, b"after the pings"));
    client.write(&flood).await;
    for i in 0..count {
        let frame = client.frame().await;
        assert_eq!(
            (frame.opcode, frame.payload),
            (PONG, i.to_be_bytes().to_vec())
        );
    }
    assert_eq!(up.data_or_close().await.text(), "after the pings");
    client.write(&client_frame(TEXT, b"open")).await;
    assert_eq!(up.data_or_close().await.text(), "open");
}

/// The path of `upstream.url` comes before the client's path and query.
#[tokio::test]
async fn the_upstream_url_path_prefixes_the_client_path() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .upstream_url(&format!("ws://{}/base/", raw.addr))
        .start()
        .await;
    let mut ws = connect(&proxy, "/chat?room=1").await;
    use futures_util::SinkExt;
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    let (_up, path) = raw.accept().await;
    assert_eq!(path, "/base/chat?room=1");
}
