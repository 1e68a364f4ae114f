//! Relay properties end to end, over real sockets (proptest): any sequence of
//! text, binary, fragmented and ping frames from either side, written in
//! arbitrary TCP chunks, with REAUTHs interleaved between the client's
//! messages, arrives unchanged (frame by frame: opcode, FIN, payload) and in
//! order on the other side; every ping is answered with its payload, and
//! every REAUTH with an `AUTHENTICATED` carrying its id. Control frames are
//! answered, never relayed, so each kind's order is compared on its own.
//! `session.max_auth_frame_bytes` is small, so that larger texts take the
//! first-member (sniffing) path and smaller ones are inspected whole.
//! Shrunk failures are kept in `proptest-regressions/relay_props.txt`.

mod support;
use support::raw::*;
use support::wire::RawUpstream;
use support::*;

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, FileFailurePersistence};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Text messages over this are judged by their first member, not inspected whole.
const INSPECT: usize = 200;

/// One thing a side writes.
#[derive(Debug, Clone)]
enum Item {
    /// One text frame.
    Text(String),
    /// One binary frame.
    Binary(Vec<u8>),
    /// A message in several frames, a ping after fragment `ping_after` (if any).
    Fragmented {
        /// Text (else binary).
        text: bool,
        /// The fragments' payloads; a text message's bytes split anywhere.
        parts: Vec<Vec<u8>>,
        /// The fragment after which a ping comes.
        ping_after: Option<usize>,
    },
    /// A ping with this payload.
    Ping(Vec<u8>),
    /// A REAUTH (client only) with the same token.
    Reauth,
}

/// A frame as it goes on the wire: FIN, opcode, payload.
type Frame = (bool, u8, Vec<u8>);

fn text_body() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just(String::new()),
        Just("{\"type\":\"chat\",\"m\":\"".to_owned()),
        Just("{\"id\":7,\"type\":\"msg\"} ".to_owned()),
        Just(" {\"TYPE\":\"note\"".to_owned()),
    ];
    let body = prop_oneof![
        "[a-z0-9 é€]{0,40}",
        "[a-z ]{150,260}",
        "[a-z0-9 é]{300,700}",
    ];
    (prefix, body).prop_map(|(p, b)| p + &b)
}

/// Splits `bytes` at the given cut points (sorted, deduplicated).
fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut parts = Vec::new();
    let mut from = 0;
    for cut in at {
        parts.push(bytes[from..cut].to_vec());
        from = cut;
    }
    parts.push(bytes[from..].to_vec());
    parts
}

fn fragmented() -> impl Strategy<Value = Item> {
    let content = prop_oneof![
        text_body().prop_map(|t| (true, t.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(|b| (false, b)),
    ];
    let cuts = proptest::collection::vec(any::<usize>(), 1..5);
    (content, cuts, proptest::option::of(0usize..4)).prop_map(|((text, bytes), cuts, ping)| {
        let parts = split(&bytes, &cuts);
        let ping_after = ping.filter(|&p| p + 1 < parts.len());
        Item::Fragmented {
            text,
            parts,
            ping_after,
        }
    })
}

fn item(client: bool) -> impl Strategy<Value = Item> {
    let reauth_weight = if client { 2 } else { 0 };
    prop_oneof![
        3 => text_body().prop_map(Item::Text),
        2 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Item::Binary),
        2 => fragmented(),
        1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Item::Ping),
        reauth_weight => Just(Item::Reauth),
    ]
}

/// A frame header: `fin`, `opcode`, `len`, masked (with a fixed key) when `masked`.
fn frame_bytes(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut head = header(opcode, payload.len(), masked);
    if !fin {
        head[0] &= 0x7f;
    }
    let body = if masked {
        mask_at(payload, 0)
    } else {
        payload.to_vec()
    };
    [head, body].concat()
}

/// What one side writes, and what the other side must see of it.
#[derive(Default)]
struct Script {
    /// Every byte it writes, in order.
    bytes: Vec<u8>,
    /// The data frames the other side must receive, in order.
    data: Vec<Frame>,
    /// The pings' payloads, in order (each answered with a pong).
    pings: Vec<Vec<u8>>,
    /// The REAUTHs' ids, in order.
    reauths: Vec<String>,
}

impl Script {
    fn push(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        self.bytes.extend(frame_bytes(fin, opcode, payload, masked));
        if opcode == PING {
            self.pings.push(payload.to_vec());
        } else {
            self.data.push((fin, opcode, payload.to_vec()));
        }
    }

    /// The script of `items`, ending with a binary `end` marker.
    fn new(items: &[Item], masked: bool, token: &str, end: &[u8]) -> Script {
        let mut s = Script::default();
        for it in items {
            match it {
                Item::Text(t) => s.push(true, TEXT, t.as_bytes(), masked),
                Item::Binary(b) => s.push(true, BINARY, b, masked),
                Item::Ping(p) => s.push(true, PING, p, masked),
                Item::Fragmented {
                    text,
                    parts,
                    ping_after,
                } => {
                    for (i, part) in parts.iter().enumerate() {
                        let opcode = match (i, text) {
                            (0, true) => TEXT,
                            (0, false) => BINARY,
                            _ => CONTINUATION,
                        };
                        s.push(i + 1 == parts.len(), opcode, part, masked);
                        if *ping_after == Some(i) {
                            s.push(true, PING, format!("p{i}").as_bytes(), masked);
                        }
                    }
                }
                Item::Reauth => {
                    let id = format!("r{}", s.reauths.len());
                    let frame = reauth_text(&id, token);
                    s.bytes
                        .extend(frame_bytes(true, TEXT, frame.as_bytes(), masked));
                    s.reauths.push(id);
                }
            }
        }
        s.push(true, BINARY, end, masked);
        s
    }
}

fn reauth_text(id: &str, token: &str) -> String {
    serde_json::json!({"type": "REAUTH", "id": id, "payload": {"token": token}}).to_string()
}

/// Writes `bytes` in chunks of the given sizes (cycled), each its own write.
async fn write_chunked(peer: &mut RawPeer, bytes: &[u8], sizes: &[usize]) {
    peer.tcp.set_nodelay(true).expect("nodelay");
    let mut rest = bytes;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        peer.tcp.write_all(chunk).await.expect("write chunk");
        rest = tail;
        tokio::task::yield_now().await;
    }
}

/// What a side received: data frames, pong payloads, `AUTHENTICATED` ids.
#[derive(Debug, Default)]
struct Seen {
    data: Vec<Frame>,
    pongs: Vec<Vec<u8>>,
    authenticated: Vec<String>,
}

/// Reads until the binary `end` marker and the expected answers have come.
async fn read_until(peer: &mut RawPeer, end: &[u8], pongs: usize, answers: usize) -> Seen {
    let mut seen = Seen::default();
    let done = |s: &Seen| {
        s.data
            .last()
            .is_some_and(|(_, op, p)| *op == BINARY && p == end)
            && s.pongs.len() >= pongs
            && s.authenticated.len() >= answers
    };
    while !done(&seen) {
        let Some(frame) = peer.fragment_within(WAIT).await else {
            panic!("stopped after {seen:?}");
        };
        match frame.opcode {
            PONG => seen.pongs.push(frame.payload),
            PING => {}
            TEXT if is_authenticated(&frame.payload) => {
                let v: Value = serde_json::from_slice(&frame.payload).expect("json");
                let id = v["payload"]["in_reply_to"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned();
                seen.authenticated.push(id);
            }
            _ => seen.data.push((frame.fin, frame.opcode, frame.payload)),
        }
    }
    seen
}

fn is_authenticated(payload: &[u8]) -> bool {
    serde_json::from_slice::<Value>(payload).is_ok_and(|v| v["type"] == "AUTHENTICATED")
}

/// One case: a fresh proxy and connection, both scripts written at once.
async fn run_case(client_items: Vec<Item>, up_items: Vec<Item>, sizes: (Vec<usize>, Vec<usize>)) {
    let upstream = RawUpstream::start().await;
    let proxy = proxy(upstream.addr)
        .session(&format!(
            "reauth_min_interval = \"0s\"\nmax_auth_frame_bytes = {INSPECT}"
        ))
        .start()
        .await;
    let token = hs256("props", 600);
    let (mut client, mut up) = raw_pair(proxy.addr, &upstream, &token).await;
    let from_client = Script::new(&client_items, true, &token, b"END-C");
    let from_up = Script::new(&up_items, false, &token, b"END-U");

    let client_side = async {
        write_chunked(&mut client, &from_client.bytes, &sizes.0).await;
        let (pongs, answers) = (from_client.pings.len(), from_client.reauths.len());
        read_until(&mut client, b"END-U", pongs, answers).await
    };
    let up_side = async {
        write_chunked(&mut up, &from_up.bytes, &sizes.1).await;
        read_until(&mut up, b"END-C", from_up.pings.len(), 0).await
    };
    let (at_client, at_up) = tokio::join!(client_side, up_side);

    assert_eq!(at_up.data, from_client.data, "client → upstream data");
    assert_eq!(at_client.data, from_up.data, "upstream → client data");
    assert_eq!(
        at_client.pongs, from_client.pings,
        "the client's pings answered"
    );
    assert_eq!(at_up.pongs, from_up.pings, "the upstream's pings answered");
    assert_eq!(
        at_client.authenticated, from_client.reauths,
        "REAUTHs answered"
    );
    assert!(
        at_up.authenticated.is_empty(),
        "AUTHENTICATED went upstream"
    );
}

proptest! {
    #![proptest_config(PropConfig {
        cases: 96,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/relay_props.txt",
        ))),
        ..PropConfig::default()
    })]

    #[test]
    fn frames_arrive_unchanged_and_in_order_and_reauths_are_answered(
        client_items in proptest::collection::vec(item(true), 0..10),
        up_items in proptest::collection::vec(item(false), 0..10),
        client_chunks in proptest::collection::vec(1usize..64, 1..8),
        up_chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run_case(client_items, up_items, (client_chunks, up_chunks)));
    }
}
