//! `session.frame_stall_timeout` on raw sockets at both ends: a peer that
//! stops in the middle of a relayed frame gets its close frame (client:
//! 1008 `frame stalled`; upstream: 1001 `frame stalled`) and the other leg,
//! inside the half-relayed frame, is dropped without one; a slow frame
//! that keeps coming is not a stall.

mod support;
use support::raw::*;
use support::wire::RawUpstream;
use support::*;

use std::time::Duration;

use tokio::time::Instant;

/// A frame of this length, of which only [`SENT`] payload bytes are sent.
const LEN: usize = 1000;
const SENT: usize = 10;

async fn stall_proxy(upstream: &RawUpstream) -> TestProxy {
    proxy(upstream.addr)
        .session(
            "frame_stall_timeout = \"300ms\"\nping_interval = \"0s\"\nclose_timeout = \"500ms\"",
        )
        .start()
        .await
}

/// Reads what is left on `peer` until its socket ends (within `WAIT`).
async fn until_dropped(peer: &mut RawPeer) -> Vec<u8> {
    let started = Instant::now();
    let rest = peer.bytes_within(WAIT).await;
    assert!(started.elapsed() < WAIT, "the socket was not dropped");
    rest
}

#[tokio::test]
async fn a_client_that_stops_inside_a_frame_is_closed() {
    let raw = RawUpstream::start().await;
    let proxy = stall_proxy(&raw).await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 600)).await;
    let data = vec![7u8; LEN];
    let mut part = header(BINARY, LEN, true);
    part.extend(mask_at(&data[..SENT], 0));
    let started = Instant::now();
    client.write(&part).await;
    up.buffer_at_least(part.len()).await;
    let close = client.frame().await;
    assert_eq!(close.close_code(), Some(1008), "{}", close.text());
    assert_eq!(&close.payload[2..], b"frame stalled");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // The upstream got the part and nothing after it: no close inside the frame.
    let rest = until_dropped(&mut up).await;
    assert_eq!(rest, part, "the upstream got more than the partial frame");
}

#[tokio::test]
async fn an_upstream_that_stops_inside_a_frame_is_closed() {
    let raw = RawUpstream::start().await;
    let proxy = stall_proxy(&raw).await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 600)).await;
    let mut part = header(BINARY, LEN, false);
    part.extend_from_slice(&[9u8; SENT]);
    let started = Instant::now();
    up.write(&part).await;
    client.buffer_at_least(part.len()).await;
    let close = up.frame().await;
    assert_eq!(close.close_code(), Some(1001), "{}", close.text());
    assert_eq!(&close.payload[2..], b"frame stalled");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let rest = until_dropped(&mut client).await;
    assert_eq!(rest, part, "the client got more than the partial frame");
}

#[tokio::test]
async fn a_slow_frame_that_keeps_coming_is_not_a_stall() {
    let raw = RawUpstream::start().await;
    let proxy = stall_proxy(&raw).await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 600)).await;
    let data = vec![5u8; LEN];
    client.write(&header(BINARY, LEN, true)).await;
    // 10 pieces, 100 ms apart: a second in all, never 300 ms without bytes.
    for i in 0..10 {
        let piece = &data[i * 100..(i + 1) * 100];
        client.write(&mask_at(piece, i * 100)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let frame = up.frame().await;
    assert_eq!((frame.opcode, frame.payload.len()), (BINARY, LEN));
    assert!(client
        .frame_within(Duration::from_millis(100))
        .await
        .is_none());
}
