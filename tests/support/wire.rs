//! Raw pieces for the handshake and relay tests: an upstream whose TCP accept
//! and WebSocket handshake the test drives by hand, an upstream that refuses
//! the handshake with an HTTP status, fragmented frames, a flooding sender,
//! and checks that the proxy dropped a session's sockets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{Ws, WAIT};

/// The upstream's side of a WebSocket, read and written by the test itself.
pub type ServerWs = WebSocketStream<TcpStream>;

/// An upstream that does nothing on its own: the test accepts the TCP
/// connection, decides when (or whether) to answer the handshake, and reads
/// every frame itself, pings included.
pub struct RawUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    listener: TcpListener,
}

impl RawUpstream {
    /// Binds 127.0.0.1:0.
    pub async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw upstream");
        let addr = listener.local_addr().expect("addr");
        RawUpstream { addr, listener }
    }

    /// The next TCP connection, within `WAIT`; no handshake yet.
    pub async fn accept_tcp(&self) -> TcpStream {
        self.accept_tcp_within(WAIT)
            .await
            .expect("proxy did not connect upstream in time")
    }

    /// A TCP connection if one arrives within `wait`.
    pub async fn accept_tcp_within(&self, wait: Duration) -> Option<TcpStream> {
        match tokio::time::timeout(wait, self.listener.accept()).await {
            Ok(Ok((tcp, _))) => Some(tcp),
            Ok(Err(e)) => panic!("raw upstream accept: {e}"),
            Err(_) => None,
        }
    }

    /// The next connection with its handshake answered: the socket and the requested path.
    pub async fn accept(&self) -> (ServerWs, String) {
        handshake(self.accept_tcp().await).await
    }
}

/// Answers the WebSocket handshake on an accepted connection.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
pub async fn handshake(tcp: TcpStream) -> (ServerWs, String) {
    let mut path = String::new();
    let callback =
        |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
         resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            Ok(resp)
        };
    let ws = tokio::time::timeout(WAIT, tokio_tungstenite::accept_hdr_async(tcp, callback))
        .await
        .expect("upstream handshake timed out")
        .expect("upstream handshake failed");
    (ws, path)
}

/// An upstream that answers every request with `status` (for example 403)
/// instead of switching protocols. Returns where it listens.
pub async fn refusing_upstream(status: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind refusing upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// One message as raw frames: the first carries `kind`, the rest are
/// continuations, only the last has FIN set.
pub fn fragments(kind: Data, parts: &[&[u8]]) -> Vec<Message> {
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let opcode = if i == 0 {
                OpCode::Data(kind)
            } else {
                OpCode::Data(Data::Continue)
            };
            Message::Frame(Frame::message(part.to_vec(), opcode, i == last))
        })
        .collect()
}

/// Sends every message of `frames` in order.
pub async fn send_all<S>(ws: &mut WebSocketStream<S>, frames: Vec<Message>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for m in frames {
        ws.send(m).await.expect("send frame");
    }
}

/// The next frame of any kind (pings and pongs included), within `WAIT`.
pub async fn next_any<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(WAIT, ws.next()).await {
        Err(_) => panic!("no frame in time"),
        Ok(None) => panic!("socket ended"),
        Ok(Some(Err(e))) => panic!("read error: {e}"),
        Ok(Some(Ok(m))) => m,
    }
}

/// A close frame with a code and a reason.
pub fn close_frame(code: u16, reason: &str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code: code.into(),
        reason: reason.to_owned().into(),
    })
}

/// The code and reason of a close message (panics on anything else).
pub fn close_of(m: &Message) -> (u16, String) {
    match m {
        Message::Close(Some(f)) => (u16::from(f.code), f.reason.to_string()),
        Message::Close(None) => (1005, String::new()),
        other => panic!("expected a close frame, got {}", describe(other)),
    }
}

/// A short description of a message (large payloads are not printed).
pub fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) if t.len() <= 200 => format!("Text({:?})", t.as_str()),
        Message::Text(t) => format!("Text({} bytes)", t.len()),
        Message::Binary(b) => format!("Binary({} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}

/// Reads the raw socket until the peer has closed it (EOF or reset), within `WAIT`.
pub async fn assert_eof<S: AsyncRead + Unpin>(io: &mut S, what: &str) {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Err(_) => panic!("{what}: the proxy did not drop the socket in time"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
        }
    }
}

/// After a close: reads the client socket to its end (which also sends the
/// close reply) and checks that the proxy dropped it, i.e. the session ended.
pub async fn assert_client_released(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the proxy did not drop the client socket in time"),
            Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// A task that sends numbered binary messages of `size` bytes (the first 8
/// bytes are the big-endian sequence number) as fast as the socket takes
/// them, until it is stopped or a send fails. When stopped it sends
/// `Text("end")`.
pub struct Flood<S> {
    /// Messages whose send (write and flush) completed.
    pub sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<SplitSink<WebSocketStream<S>, Message>>,
}

/// Starts flooding on `ws`; returns the flood and the read half.
pub fn flood<S>(ws: WebSocketStream<S>, size: usize) -> (Flood<S>, SplitStream<WebSocketStream<S>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, stream) = ws.split();
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (sent, stop) = (sent.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seq: u64 = 0;
            while !stop.load(Ordering::SeqCst) {
                if sink
                    .send(Message::Binary(numbered(seq, size).into()))
                    .await
                    .is_err()
                {
                    return sink;
                }
                seq += 1;
                sent.store(seq as usize, Ordering::SeqCst);
            }
            let _ = sink.send(Message::text("end")).await;
            sink
        })
    };
    (Flood { sent, stop, task }, stream)
}

/// The payload of message `seq` of a flood.
pub fn numbered(seq: u64, size: usize) -> Vec<u8> {
    let mut data = vec![(seq % 251) as u8; size];
    data[..8].copy_from_slice(&seq.to_be_bytes());
    data
}

impl<S> Flood<S> {
    /// Messages sent so far.
    pub fn count(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits until the sender has made no progress for `quiet` (its sends
    /// block), within `WAIT`; returns the count then.
    pub async fn stalled(&self, quiet: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = self.count();
        let mut since = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = tokio::time::Instant::now();
            let count = self.count();
            if count != last {
                last = count;
                since = now;
            } else if now - since >= quiet {
                return count;
            }
            assert!(now < deadline, "the sender never blocked (sent {count})");
        }
    }

    /// Asks the sender to stop after its current message (then it sends `Text("end")`).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the sending task has ended.
    pub fn finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the sending task to end (within `WAIT`) and returns the write half.
    pub async fn join(self) -> SplitSink<WebSocketStream<S>, Message> {
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("flood did not end in time")
            .expect("flood task panicked")
    }
}
