//! Edges of the byte-level relay, driven frame by frame from raw sockets on
//! both ends (tests/support/raw.rs), so that a test can stop in the middle
//! of a frame and see every byte the proxy sends: a close that comes in the
//! middle of a relayed frame (the rest of that frame goes, nothing after
//! it), heartbeats while a long frame is being relayed, suspension in the
//! middle of an upstream message, floods of pings in one write (answered
//! with backpressure, none dropped), and the path prefix of `upstream.url`.

mod support;
use support::lifecycle::{reauth, token, unix_now_f64};
use support::raw::*;
use support::wire::RawUpstream;
use support::*;

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// A frame this large needs a 64-bit length and many reads on each leg.
const BIG: usize = 200_000;

/// A payload whose bytes say where they are.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The payload of a close frame with code 1000 and no reason.
const NORMAL: [u8; 2] = 1000u16.to_be_bytes();

/// A short description of a frame (large payloads are not printed).
fn show(frame: &RawFrame) -> String {
    let end = frame.payload.len().min(80);
    format!(
        "opcode {:#x}, fin {}, {} bytes: {:?}",
        frame.opcode,
        frame.fin,
        frame.payload.len(),
        String::from_utf8_lossy(&frame.payload[..end])
    )
}

/// Asserts that `frame` is one whole binary frame carrying exactly `data`.
fn assert_whole(frame: &RawFrame, data: &[u8], fin: bool, who: &str) {
    assert_eq!(
        (frame.opcode, frame.fin, frame.payload.len()),
        (BINARY, fin, data.len()),
        "{who} expected the whole binary frame, got {}",
        show(frame)
    );
    if let Some(at) = (0..data.len()).find(|&i| frame.payload[i] != data[i]) {
        panic!("{who}: the frame arrived altered from byte {at} on");
    }
}

/// Asserts that `frame` is a close frame with code 1000.
fn assert_close_1000(frame: &RawFrame, who: &str) {
    assert_eq!(
        frame.close_code(),
        Some(1000),
        "{who} expected close 1000, got {}",
        show(frame)
    );
}

/// Asserts that nothing at all (not even part of a frame) arrives within 500 ms.
async fn assert_nothing_more(peer: &mut RawPeer, who: &str) {
    let more = peer.bytes_within(Duration::from_millis(500)).await;
    assert!(
        more.is_empty(),
        "{who} got {} more bytes: {:?}",
        more.len(),
        String::from_utf8_lossy(&more[..more.len().min(80)])
    );
}

/// A text frame holding JSON, parsed.
fn json_of(frame: &RawFrame) -> Value {
    assert_eq!(
        frame.opcode,
        TEXT,
        "expected a text frame, got {}",
        show(frame)
    );
    serde_json::from_slice(&frame.payload).unwrap_or_else(|e| panic!("{e}: {}", show(frame)))
}

/// The scenario of the four `close_inside_*_frame` tests. The sender (the
/// client when `from_client`, else the upstream) sends half of a 200 KB
/// binary frame; once the receiver has that half, the receiver closes
/// (1000) and the sender gets the close; the sender then sends the rest of
/// its frame (with `extra`: the rest, one more small binary frame and its
/// close reply, in one write; without: the rest, and its close reply once
/// the frame has arrived). The receiver must get the whole frame, then one
/// close frame, then nothing.
async fn close_inside_a_frame(from_client: bool, extra: bool) {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"")
        .start()
        .await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let (sender, receiver, name) = if from_client {
        (&mut client, &mut up, "the upstream")
    } else {
        (&mut up, &mut client, "the client")
    };
    // Frames as the sender and the receiver write them (a client's are masked).
    let sent = |opcode, payload: &[u8]| {
        if from_client {
            client_frame(opcode, payload)
        } else {
            server_frame(opcode, payload)
        }
    };
    let reply = |opcode, payload: &[u8]| {
        if from_client {
            server_frame(opcode, payload)
        } else {
            client_frame(opcode, payload)
        }
    };
    let body = |bytes: &[u8], offset| {
        if from_client {
            mask_at(bytes, offset)
        } else {
            bytes.to_vec()
        }
    };
    let big = payload(BIG);
    let half = BIG / 2;
    let head = header(BINARY, BIG, from_client);
    assert_eq!(head[1] & 0x7f, 127, "the frame should have a 64-bit length");
    sender
        .write(&[head.clone(), body(&big[..half], 0)].concat())
        .await;
    // Relayed as it came: the receiver gets a header as long as the sender's.
    receiver.buffer_at_least(head.len() + half).await;
    receiver.write(&reply(CLOSE, &NORMAL)).await;
    assert_close_1000(&sender.frame().await, "the sender");
    let rest = body(&big[half..], half);
    if extra {
        let after = [
            sent(BINARY, b"a frame begun after the close"),
            sent(CLOSE, &NORMAL),
        ]
        .concat();
        sender.write(&[rest, after].concat()).await;
        assert_whole(&receiver.frame().await, &big, true, name);
    } else {
        sender.write(&rest).await;
        assert_whole(&receiver.frame().await, &big, true, name);
        sender.write(&sent(CLOSE, &NORMAL)).await;
    }
    assert_close_1000(
        &receiver.frame().await,
        &format!("{name}, after the frame,"),
    );
    assert_nothing_more(receiver, &format!("after the close, {name}")).await;
}

/// Defends against a close decided in the middle of a relayed client frame
/// cutting that frame short (a partial frame upstream) or holding its rest
/// back: the upstream closes while a 200 KB client frame is half-way
/// through; the rest still reaches the upstream, whole, then the close.
#[tokio::test]
async fn close_inside_a_client_frame_relays_its_rest() {
    close_inside_a_frame(true, false).await;
}

/// Defends against frames that begin after a close slipping through: the
/// client sends the rest of its frame, a new small frame and its close in
/// one write; the upstream gets the big frame whole and the close, and not
/// the small frame (once closing, only the rest of a frame already begun is
/// relayed).
#[tokio::test]
async fn close_inside_a_client_frame_relays_nothing_after_it() {
    close_inside_a_frame(true, true).await;
}

/// Defends against a client close cutting short an upstream frame that is
/// half-way to the client, or holding its rest back: the client gets the
/// rest as soon as the upstream sends it, the whole frame, then the close.
#[tokio::test]
async fn close_inside_an_upstream_frame_relays_its_rest() {
    close_inside_a_frame(false, false).await;
}

/// Defends against upstream frames that begin after the client's close
/// slipping through: the upstream sends the rest of its frame, a new small
/// frame and its close in one write; the client gets the big frame whole
/// and the close, and not the small frame.
#[tokio::test]
async fn close_inside_an_upstream_frame_relays_nothing_after_it() {
    close_inside_a_frame(false, true).await;
}

/// Pings each end answered in [`attend`].
#[derive(Default)]
struct Pings {
    client: usize,
    up: usize,
}

/// Reads both ends for `wait`, answering every ping with a pong; returns
/// the first other frame and which end got it ("client" or "upstream"),
/// or `None` when the time is up.
async fn attend(
    client: &mut RawPeer,
    up: &mut RawPeer,
    wait: Duration,
    pings: &mut Pings,
) -> Option<(&'static str, RawFrame)> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        tokio::select! {
            frame = client.frame_within(left) => match frame {
                Some(f) if f.opcode == PING => {
                    pings.client += 1;
                    client.write(&client_frame(PONG, &f.payload)).await;
                }
                Some(f) => return Some(("client", f)),
                None if Instant::now() < deadline => panic!("the client socket ended"),
                None => return None,
            },
            frame = up.frame_within(left) => match frame {
                Some(f) if f.opcode == PING => {
                    pings.up += 1;
                    up.write(&server_frame(PONG, &f.payload)).await;
                }
                Some(f) => return Some(("upstream", f)),
                None if Instant::now() < deadline => panic!("the upstream socket ended"),
                None => return None,
            },
        }
    }
}

/// The next data frame at `end` ("client" or "upstream") is `text`
/// (both ends answer pings meanwhile).
async fn expect_text(client: &mut RawPeer, up: &mut RawPeer, end: &str, text: &str) {
    match attend(client, up, WAIT, &mut Pings::default()).await {
        Some((at, f)) if at == end && f.opcode == TEXT && f.text() == text => {}
        Some((at, f)) => panic!("expected {text:?} at the {end}, the {at} got {}", show(&f)),
        None => panic!("{text:?} did not reach the {end} in time"),
    }
}

/// Defends against heartbeats counting a silence the proxy caused, and
/// against a ping inside a relayed frame: while a 64 KiB client frame
/// trickles upstream for ~1.5 s (16 pieces, 100 ms apart; pings every
/// 200 ms, 2 missed close the leg), the proxy's ping to the upstream cannot
/// be sent, so the upstream (which answers every ping it sees) must not be
/// counted silent. The upstream gets the frame whole, then pings again, and
/// the connection stays open and relaying both ways. The client leg sends
/// bytes every 100 ms during the upload, and answers pings afterwards.
#[tokio::test]
async fn a_slow_long_upload_is_not_a_missed_heartbeat() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"200ms\"\nmax_missed_pongs = 2")
        .start()
        .await;
    let (client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let big = payload(64 * 1024);
    let pieces = 16;
    let piece = big.len() / pieces;
    let upload = {
        let big = big.clone();
        tokio::spawn(async move {
            let mut client = client;
            client.write(&header(BINARY, big.len(), true)).await;
            for i in 0..pieces {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let part = &big[i * piece..(i + 1) * piece];
                client.write(&mask_at(part, i * piece)).await;
            }
            client
        })
    };
    // The upstream answers every ping until the frame has arrived (a ping
    // inside the frame would show as an altered payload).
    let frame = loop {
        let frame = up.frame().await;
        if frame.opcode != PING {
            break frame;
        }
        up.write(&server_frame(PONG, &frame.payload)).await;
    };
    assert_whole(&frame, &big, true, "the upstream");
    let mut client = upload.await.expect("upload task");
    // Both ends answer pings for four intervals: no close comes, and the
    // upstream is pinged again.
    let mut pings = Pings::default();
    let wait = Duration::from_millis(800);
    if let Some((end, f)) = attend(&mut client, &mut up, wait, &mut pings).await {
        panic!("expected no data or close, the {end} got {}", show(&f));
    }
    assert!(
        pings.up >= 1,
        "no ping reached the upstream after the frame"
    );
    client.write(&client_frame(TEXT, b"still here")).await;
    expect_text(&mut client, &mut up, "upstream", "still here").await;
    up.write(&server_frame(TEXT, b"and back")).await;
    expect_text(&mut client, &mut up, "client", "and back").await;
}

/// The scenario of the two `suspension_inside_an_upstream` tests: the
/// upstream begins a 200 KB binary frame (with `fragmented`, the first
/// fragment of a message) before `exp` and sends its rest after `exp`,
/// followed (with `fragmented`) by the message's last fragment and then by
/// a new message. The client must get the frame (and the last fragment),
/// then TOKEN_EXPIRED, and nothing else until its REAUTH: then
/// AUTHENTICATED, the new message, and relaying both ways.
async fn suspension_inside_an_upstream_message(fragmented: bool) {
    let raw = RawUpstream::start().await;
    // auth_required at once (the lead is longer than the token's life).
    let proxy = proxy(raw.addr)
        .session("reauth_lead = \"10s\"\ngrace = \"5s\"\nreauth_min_interval = \"0s\"")
        .start()
        .await;
    let (first, exp) = token("alice", 2);
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &first).await;
    assert_eq!(json_of(&client.frame().await)["type"], "auth_required");
    let big = payload(BIG);
    let half = BIG / 2;
    let mut head = header(BINARY, BIG, false);
    if fragmented {
        head[0] &= 0x7f; // no FIN: the first fragment of a message
    }
    up.write(&[head.clone(), big[..half].to_vec()].concat())
        .await;
    client.buffer_at_least(head.len() + half).await;
    assert!(
        unix_now_f64() < exp as f64,
        "the machine is too slow: the frame began after exp"
    );
    let until_past_exp = exp as f64 + 0.5 - unix_now_f64();
    tokio::time::sleep(Duration::from_secs_f64(until_past_exp.max(0.0))).await;
    let mut rest = big[half..].to_vec();
    if fragmented {
        rest.extend(server_frame(CONTINUATION, b"end of the message"));
    }
    rest.extend(server_frame(TEXT, b"sent while suspended"));
    up.write(&rest).await;
    assert_whole(&client.fragment().await, &big, !fragmented, "the client");
    if fragmented {
        let last = client.fragment().await;
        assert_eq!(
            (last.opcode, last.fin, last.text().as_str()),
            (CONTINUATION, true, "end of the message"),
            "{}",
            show(&last)
        );
    }
    assert_eq!(json_of(&client.frame().await)["type"], "TOKEN_EXPIRED");
    assert_nothing_more(&mut client, "while suspended, the client").await;
    let (fresh, _) = token("alice", 300);
    let again = reauth("r1", &fresh);
    client
        .write(&client_frame(
            TEXT,
            again.to_text().expect("text").as_bytes(),
        ))
        .await;
    let answer = client
        .frame_within(Duration::from_secs(2))
        .await
        .expect("no answer to the REAUTH within 2 s");
    let answer = json_of(&answer);
    assert_eq!(answer["type"], "AUTHENTICATED", "{answer}");
    assert_eq!(answer["payload"]["in_reply_to"], "r1", "{answer}");
    let held = client.frame().await;
    assert_eq!(held.text(), "sent while suspended", "{}", show(&held));
    client.write(&client_frame(TEXT, b"resumed")).await;
    assert_eq!(up.data_or_close().await.text(), "resumed");
    up.write(&server_frame(TEXT, b"and back")).await;
    assert_eq!(client.data_or_close().await.text(), "and back");
}

/// Defends against a suspension that starts in the middle of an upstream
/// frame cutting the frame short, wedging the connection (the rest never
/// relayed) or putting TOKEN_EXPIRED inside the frame; and against a
/// message the upstream sends while suspended being delivered before the
/// REAUTH, or lost.
#[tokio::test]
async fn suspension_inside_an_upstream_frame_finishes_the_frame() {
    suspension_inside_an_upstream_message(false).await;
}

/// The same for a fragmented message begun before `exp`: the rest of its
/// frame and its last fragment are relayed while suspended (TOKEN_EXPIRED
/// after them), the next message only after the REAUTH.
#[tokio::test]
async fn suspension_inside_an_upstream_message_finishes_the_message() {
    suspension_inside_an_upstream_message(true).await;
}

/// Defends against one read of many control frames making an unbounded
/// queue or closing the connection: 10,000 empty pings and a text message
/// in one write; the client gets exactly 10,000 empty pongs (the answer to
/// a later ping comes right after them), the text reaches the upstream,
/// and the connection stays open.
#[tokio::test]
async fn ten_thousand_pings_in_one_write_are_all_answered() {
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"")
        .start()
        .await;
    let (mut client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let count = 10_000;
    let mut burst = client_frame(PING, b"").repeat(count);
    burst.extend(client_frame(TEXT, b"after the pings"));
    client.write(&burst).await;
    for i in 0..count {
        let frame = client.frame().await;
        assert!(
            frame.opcode == PONG && frame.payload.is_empty(),
            "answer {i} of {count}: {}",
            show(&frame)
        );
    }
    assert_eq!(up.data_or_close().await.text(), "after the pings");
    client.write(&client_frame(PING, b"last")).await;
    let last = client.frame().await;
    assert_eq!(
        (last.opcode, last.text().as_str()),
        (PONG, "last"),
        "{}",
        show(&last)
    );
}

/// Defends against answers being dropped, reordered or given up on (a
/// close) when the client pings faster than it reads: 40,000 numbered
/// pings of 125 bytes and a text message, written in one write by a task
/// while the client, its receive buffer set to 64 KiB, reads nothing for
/// 300 ms. The 5 MB of pongs cannot all wait in the sockets, so the proxy
/// must hold back (stop reading the client) rather than drop or close: the
/// client then reads exactly the 40,000 pongs, byte for byte and in order,
/// and the text reaches the upstream.
#[tokio::test]
async fn pings_faster_than_the_client_reads_are_all_answered_in_order() {
    use tokio::io::AsyncWriteExt;
    let raw = RawUpstream::start().await;
    let proxy = proxy(raw.addr)
        .session("ping_interval = \"0s\"")
        .start()
        .await;
    let (client, mut up) = raw_pair(proxy.addr, &raw, &hs256("alice", 300)).await;
    let tcp = client.into_tcp();
    let rcvbuf = socket2::SockRef::from(&tcp).set_recv_buffer_size(64 * 1024);
    rcvbuf.expect("SO_RCVBUF");
    let (mut rd, mut wr) = tcp.into_split();
    let count = 40_000u32;
    let body = |i: u32| [i.to_be_bytes().to_vec(), vec![(i % 251) as u8; 121]].concat();
    let mut burst: Vec<u8> = (0..count)
        .flat_map(|i| client_frame(PING, &body(i)))
        .collect();
    burst.extend(client_frame(TEXT, b"after the pings"));
    let writer = tokio::spawn(async move {
        wr.write_all(&burst).await.expect("write the pings");
        wr
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expected: Vec<u8> = (0..count)
        .flat_map(|i| server_frame(PONG, &body(i)))
        .collect();
    let got = read_up_to(&mut rd, expected.len()).await;
    let pong = server_frame(PONG, &body(0)).len();
    match (0..got.len()).find(|&i| got[i] != expected[i]) {
        Some(at) => panic!("the answers differ from byte {at} on (pong {})", at / pong),
        None => assert_eq!(
            got.len(),
            expected.len(),
            "only {} pongs came",
            got.len() / pong
        ),
    }
    let mut wr = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the writer did not finish")
        .expect("writer task");
    assert_eq!(up.data_or_close().await.text(), "after the pings");
    // Nothing else was queued: the answer to the next ping comes next.
    wr.write_all(&client_frame(PING, b"last"))
        .await
        .expect("write");
    let expected = server_frame(PONG, b"last");
    assert_eq!(read_up_to(&mut rd, expected.len()).await, expected);
}

/// Up to `n` bytes: fewer if the socket ends or `WAIT` passes first.
async fn read_up_to(rd: &mut tokio::net::tcp::OwnedReadHalf, n: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + WAIT;
    let mut got = vec![0u8; n];
    let mut len = 0;
    while len < n {
        match tokio::time::timeout_at(deadline, rd.read(&mut got[len..])).await {
            Ok(Ok(k)) if k > 0 => len += k,
            _ => break,
        }
    }
    got.truncate(len);
    got
}

/// Defends against the path of `upstream.url` being dropped or doubled:
/// with `ws://host/base` (or `/base/`), a client asking for `/chat?room=1`
/// makes the upstream see `/base/chat?room=1`.
#[tokio::test]
async fn the_upstream_url_path_prefixes_the_client_path() {
    for base in ["/base", "/base/"] {
        let mut upstream = Upstream::start(false).await;
        let proxy = proxy(upstream.addr)
            .upstream_url(&format!("ws://{}{base}", upstream.addr))
            .start()
            .await;
        let _ws = authed(&proxy, "/chat?room=1", &hs256("alice", 300)).await;
        let up = upstream.accept().await;
        assert_eq!(up.path, "/base/chat?room=1", "upstream.url path {base:?}");
    }
}
