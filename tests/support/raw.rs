//! Both ends of a proxied connection at the byte level: a client and an
//! upstream that write frames by hand (so that a test can stop in the middle
//! of a frame) and read every frame the proxy sends, pings included.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::wire::RawUpstream;
use super::{auth_frame, WAIT};

/// Opcodes: continuation frame.
pub const CONTINUATION: u8 = 0x0;
/// Text data frame.
pub const TEXT: u8 = 0x1;
/// Binary data frame.
pub const BINARY: u8 = 0x2;
/// Close frame.
pub const CLOSE: u8 = 0x8;
/// Ping frame.
pub const PING: u8 = 0x9;
/// Pong frame.
pub const PONG: u8 = 0xA;

/// The mask every hand-written client frame uses.
const MASK: [u8; 4] = [0x1f, 0x2e, 0x3d, 0x4c];

/// Reads an HTTP head byte by byte (nothing after it is consumed).
pub async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, tcp.read_u8())
            .await
            .expect("head in time")
            .expect("read head");
        head.push(byte);
    }
    String::from_utf8(head).expect("utf-8 head")
}

/// A frame header: FIN set, `opcode`, `len`, masked when `masked`.
pub fn header(opcode: u8, len: usize, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        h.push(mask_bit | 126);
        h.extend_from_slice(&len.to_be_bytes());
    } else {
        h.push(mask_bit | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        h.extend_from_slice(&MASK);
    }
    h
}

/// Payload bytes masked as they are at `offset` into a client frame's payload.
pub fn mask_at(payload: &[u8], offset: usize) -> Vec<u8> {
    (payload.iter().enumerate())
        .map(|(i, b)| b ^ MASK[(offset + i) % 4])
        .collect()
}

/// A whole client frame (masked).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    [header(opcode, payload.len(), true), mask_at(payload, 0)].concat()
}

/// A whole server frame (unmasked).
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    [header(opcode, payload.len(), false), payload.to_vec()].concat()
}

/// One side of a connection, read frame by frame.
pub struct RawPeer {
    /// The socket.
    pub tcp: TcpStream,
    /// Received, not yet parsed.
    buf: Vec<u8>,
}

/// A received frame: its opcode and (unmasked) payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// FIN bit (always set for frames read with [`RawPeer::frame`]).
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// Payload, unmasked.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The close code, for a close frame with one.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawPeer {
    /// A peer on a socket whose HTTP head was read already.
    pub fn from_tcp(tcp: TcpStream) -> RawPeer {
        RawPeer {
            tcp,
            buf: Vec::new(),
        }
    }

    /// The socket, for a test that reads and writes it concurrently
    /// (nothing may be buffered unparsed).
    pub fn into_tcp(self) -> TcpStream {
        assert!(
            self.buf.is_empty(),
            "{} bytes left unparsed",
            self.buf.len()
        );
        self.tcp
    }

    /// Writes bytes as they are.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write");
    }

    /// The next frame within `wait`, or `None` (time out, or the socket ended).
    /// A frame without FIN fails the test.
    pub async fn frame_within(&mut self, wait: Duration) -> Option<RawFrame> {
        self.next_within(wait, false).await
    }

    /// Like [`RawPeer::frame_within`], but a fragment (no FIN) is returned too.
    pub async fn fragment_within(&mut self, wait: Duration) -> Option<RawFrame> {
        self.next_within(wait, true).await
    }

    /// The next frame, fragments included, within `WAIT`.
    pub async fn fragment(&mut self) -> RawFrame {
        self.fragment_within(WAIT)
            .await
            .expect("no frame in time (or the socket ended)")
    }

    /// Reads until at least `n` bytes are buffered (parsed or not), within
    /// `WAIT`: to know that part of a frame has arrived.
    pub async fn buffer_at_least(&mut self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.buf.len() < n {
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(got)) if got > 0 => self.buf.extend_from_slice(&chunk[..got]),
                Ok(_) => panic!("socket ended with {} of {n} bytes", self.buf.len()),
                Err(_) => panic!("only {} of {n} bytes arrived in time", self.buf.len()),
            }
        }
    }

    /// Every byte received within `wait` (or until the socket ends),
    /// unparsed, the bytes already buffered included.
    pub async fn bytes_within(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return std::mem::take(&mut self.buf),
            }
        }
    }

    async fn next_within(&mut self, wait: Duration, fragments: bool) -> Option<RawFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((frame, used)) = parse(&self.buf, fragments) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// The next frame, within `WAIT`.
    pub async fn frame(&mut self) -> RawFrame {
        self.frame_within(WAIT)
            .await
            .expect("no frame in time (or the socket ended)")
    }

    /// The next frame that is not a ping or pong.
    pub async fn data_or_close(&mut self) -> RawFrame {
        loop {
            let frame = self.frame().await;
            if frame.opcode != PING && frame.opcode != PONG {
                return frame;
            }
        }
    }
}

/// One whole frame at the start of `buf`, and its length.
fn parse(buf: &[u8], fragments: bool) -> Option<(RawFrame, usize)> {
    let [b0, b1, ..] = *buf else { return None };
    assert!(
        fragments || b0 & 0x80 != 0,
        "fragmented frames are not expected here"
    );
    let (len, mut at) = match b1 & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mask: Option<[u8; 4]> = if b1 & 0x80 != 0 {
        let m = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    let payload = buf.get(at..at + len)?;
    let payload = match mask {
        Some(m) => (payload.iter().enumerate())
            .map(|(i, b)| b ^ m[i % 4])
            .collect(),
        None => payload.to_vec(),
    };
    Some((
        RawFrame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        },
        at + len,
    ))
}

/// An upgrade request head for `target` on `proxy`, with `extra` header
/// lines (each ending in `\r\n`) after the usual ones.
pub fn upgrade_request(proxy: SocketAddr, target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {proxy}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A client that authenticates by hand: `request` (a whole upgrade request,
/// see [`upgrade_request`]), its auth frame and `then` in one write, then
/// the 101 read; its `AUTHENTICATED` is left to read.
pub async fn raw_client_request(
    proxy: SocketAddr,
    request: &str,
    token: &str,
    then: &[u8],
) -> RawPeer {
    let mut tcp = TcpStream::connect(proxy).await.expect("connect");
    let mut bytes = request.as_bytes().to_vec();
    let auth = auth_frame(token);
    bytes.extend(client_frame(TEXT, auth.to_text().expect("text").as_bytes()));
    bytes.extend_from_slice(then);
    tcp.write_all(&bytes).await.expect("write");
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    RawPeer {
        tcp,
        buf: Vec::new(),
    }
}

/// A client that authenticates by hand: the upgrade request (for `path`),
/// its auth frame and `then` in one write, then the 101 read; its
/// `AUTHENTICATED` is left to read.
pub async fn raw_client_with(proxy: SocketAddr, path: &str, token: &str, then: &[u8]) -> RawPeer {
    raw_client_request(proxy, &upgrade_request(proxy, path, ""), token, then).await
}

/// [`raw_client_with`] for `/`, with nothing after the auth frame.
pub async fn raw_client(proxy: SocketAddr, token: &str) -> RawPeer {
    raw_client_with(proxy, "/", token, &[]).await
}

/// Accepts the proxy's upstream connection and answers its handshake by
/// hand, writing `then` in the same write as the 101; returns the peer and
/// the request head.
pub async fn raw_upstream_accept_with(upstream: &RawUpstream, then: &[u8]) -> (RawPeer, String) {
    let mut tcp = upstream.accept_tcp().await;
    let head = read_head(&mut tcp).await;
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .expect("key");
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes();
    answer.extend_from_slice(then);
    tcp.write_all(&answer).await.expect("write");
    (
        RawPeer {
            tcp,
            buf: Vec::new(),
        },
        head,
    )
}

/// [`raw_upstream_accept_with`], with nothing after the 101.
pub async fn raw_upstream_accept(upstream: &RawUpstream) -> (RawPeer, String) {
    raw_upstream_accept_with(upstream, &[]).await
}

/// A raw client and a raw upstream, authenticated (`AUTHENTICATED` taken).
pub async fn raw_pair(
    proxy: SocketAddr,
    upstream: &RawUpstream,
    token: &str,
) -> (RawPeer, RawPeer) {
    let mut client = raw_client(proxy, token).await;
    let (up, _) = raw_upstream_accept(upstream).await;
    let first = client.data_or_close().await;
    assert!(first.text().contains("AUTHENTICATED"), "{first:?}");
    (client, up)
}
