//! One leg of a proxied connection (client or upstream): its socket, the
//! bytes waiting to be written to it, and what the heartbeat and the
//! slow-consumer check need to know. Also the bounded queue that holds
//! client bytes while they may not go upstream.
//!
//! The relay works on bytes, not messages ([`crate::wire`]): what one leg's
//! decoder hands on as [`Inbound::Data`] is written to the other leg as it
//! is. Reads go into a buffer on the stack, so a leg holds no read buffer
//! between reads; the proxy's own frames (answers, notices, pings, close)
//! wait in the leg until the relayed bytes reach a point where a frame may
//! be inserted.
//!
//! Backpressure: a leg's queue is only fed while the leg accepts writes
//! ([`Leg::accepts`]); the session stops reading the other leg otherwise, so
//! a slow peer makes the fast one wait in its socket, not in our memory.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::wire::{self, Boundary, Decoder, Inbound, Limits, Role, WireError};

/// Largest single read (the stack buffer reads go into).
pub const MAX_READ: usize = 64 * 1024;

/// Why a leg's read side failed.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[source] io::Error),
    /// The peer broke the WebSocket protocol or a size limit.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// One of the proxy's own frames, waiting for a point where it may be written.
struct Own {
    /// The encoded frame.
    bytes: Bytes,
    /// A control frame (may go between the fragments of a relayed message).
    control: bool,
}

/// Bytes to write, and where the relayed stream stands after them.
struct Chunk {
    /// The bytes.
    bytes: Bytes,
    /// Where the stream ends after them.
    end: Boundary,
    /// One of the proxy's own frames.
    own: bool,
}

/// One WebSocket leg.
pub struct Leg<S> {
    /// The socket.
    io: S,
    /// The proxy's role on this leg (masking of its own frames).
    role: Role,
    /// Frame decoder of what the peer sends.
    decoder: Decoder,
    /// Largest single read.
    read_limit: usize,
    /// Decoded, not yet taken by the session.
    inbound: Vec<Inbound>,
    /// Index of the next item of `inbound` to hand out.
    next: usize,
    /// A decoding error to report once `inbound` is taken.
    failed: Option<WireError>,
    /// Received bytes not decoded yet (a read of many control frames is
    /// decoded a few at a time); empty, and without memory, otherwise.
    undecoded: Vec<u8>,
    /// How much of `undecoded` has been decoded.
    undecoded_at: usize,
    /// Bytes to write, in order.
    out: VecDeque<Chunk>,
    /// Bytes of the first chunk already written.
    written: usize,
    /// Where the written stream ends (after the last fully written chunk).
    written_end: Boundary,
    /// Where the stream ends after everything in `out`.
    tail: Boundary,
    /// Own frames waiting for `tail` to reach a point where they may go.
    own: VecDeque<Own>,
    /// Own frames moved into `out` and not completely written yet.
    own_in_out: usize,
    /// Bytes were written since the last completed flush.
    unflushed: bool,
    /// Since when the socket has refused our writes.
    blocked_since: Option<Instant>,
    /// When the last relayed bytes queued here were written, if they stop
    /// inside a frame: from then on the rest is awaited from the other leg
    /// (the frame-stall clock; taken once per write that drains the queue
    /// in the middle of a frame, nothing per message otherwise).
    drained_in_frame: Option<Instant>,
    /// A frame arrived since the last heartbeat.
    pub heard: bool,
    /// Heartbeats in a row without a frame from the peer.
    pub missed: u32,
    /// The read side has ended (close frame received, or the socket is gone).
    pub read_done: bool,
    /// The write side has failed or been closed by us.
    pub write_done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Leg<S> {
    /// Wraps an open socket on which the proxy plays `role`.
    pub fn new(io: S, role: Role, limits: Limits, read_limit: usize) -> Self {
        Leg {
            io,
            role,
            decoder: Decoder::new(role, limits),
            read_limit: read_limit.clamp(1, MAX_READ),
            inbound: Vec::new(),
            next: 0,
            failed: None,
            undecoded: Vec::new(),
            undecoded_at: 0,
            out: VecDeque::new(),
            written: 0,
            written_end: Boundary::Message,
            tail: Boundary::Message,
            own: VecDeque::new(),
            own_in_out: 0,
            unflushed: false,
            blocked_since: None,
            drained_in_frame: None,
            heard: false,
            missed: 0,
            read_done: false,
            write_done: false,
        }
    }

    /// Reads the first member of text messages too large to inspect (see
    /// [`wire::Sniff`]): the client leg, which starts in the pre-auth mode
    /// ([`Leg::authenticated`] ends it).
    pub fn sniff(&mut self, sniff: std::sync::Arc<dyn wire::Sniff>) {
        self.decoder.set_sniff(sniff);
        self.decoder.set_pre_auth(true);
    }

    /// The first message (the auth frame) was taken, or the connection is
    /// closing: what follows it is decoded as after authentication (see
    /// [`wire::Decoder::set_pre_auth`]).
    pub fn end_pre_auth(&mut self) {
        self.decoder.set_pre_auth(false);
    }

    /// Bytes already received from the peer outside this leg (read past an
    /// HTTP handshake): decoded before anything is read from the socket.
    pub fn received(&mut self, bytes: &[u8]) {
        self.undecoded.extend_from_slice(bytes);
    }

    /// Whether the leg takes more relayed bytes now (nothing queued, nothing stuck).
    pub fn accepts(&self) -> bool {
        self.out.is_empty() && self.blocked_since.is_none()
    }

    /// The socket.
    pub fn io_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Own frames (answers, notices, pings, pongs) not completely written yet.
    pub fn own_unsent(&self) -> usize {
        self.own.len() + self.own_in_out
    }

    /// Since when writes have been refused, if they are.
    pub fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    /// Whether everything queued (a close frame included) has been written and flushed, or given up.
    pub fn flushed(&self) -> bool {
        self.out.is_empty() && self.own.is_empty() && !self.unflushed
    }

    /// While closing: whether reading the other leg is safe now, because
    /// this leg takes relayed bytes, or because its close is queued and it
    /// will drop them (it is not waiting for the rest of a frame).
    pub fn takes_or_drops(&self) -> bool {
        self.accepts() || (self.write_done && !self.in_frame())
    }

    /// Since when this leg has waited, taking writes, for the rest of a
    /// relayed frame from the other leg (see `session.frame_stall_timeout`).
    pub fn awaiting_frame_since(&self) -> Option<Instant> {
        self.drained_in_frame
            .filter(|_| self.in_frame() && self.accepts())
    }

    /// Whether the bytes relayed to this leg stop inside a frame.
    pub fn in_frame(&self) -> bool {
        self.tail == Boundary::InFrame
    }

    /// Where the bytes relayed to this leg stop.
    pub fn tail(&self) -> Boundary {
        self.tail
    }

    /// Queues relayed bytes that begin where the stream stands at `start`
    /// and end at `end`. Once the write side is done, only the rest of a
    /// frame already begun is taken (the close frame waits behind it);
    /// anything else is dropped.
    pub fn forward(&mut self, bytes: Bytes, start: Boundary, end: Boundary) {
        let rest_of_frame = start == Boundary::InFrame && self.tail == Boundary::InFrame;
        if bytes.is_empty() || (self.write_done && !rest_of_frame) {
            return;
        }
        self.out.push_back(Chunk {
            bytes,
            end,
            own: false,
        });
        self.tail = end;
        self.release_own();
    }

    /// The relayed frame begun on this leg will never be completed (its
    /// source ended): drop the frames waiting for it (a close frame among
    /// them), and expect no close handshake, so that the socket is closed
    /// once what is queued is written.
    pub fn give_up_frame(&mut self) {
        if self.tail == Boundary::InFrame && !self.own.is_empty() {
            self.own.clear();
            self.write_done = true;
            self.read_done = true;
        }
    }

    /// Queues a text frame of the proxy's own.
    pub fn push_text(&mut self, text: &str) {
        self.push_own(OpCode::Data(Data::Text), text.as_bytes());
    }

    /// Queues a ping of the proxy's own.
    pub fn push_ping(&mut self) {
        self.push_own(OpCode::Control(Control::Ping), &[]);
    }

    fn push_own(&mut self, opcode: OpCode, payload: &[u8]) {
        if self.write_done {
            return;
        }
        self.own.push_back(Own {
            bytes: wire::encode(self.role, opcode, payload),
            control: matches!(opcode, OpCode::Control(_)),
        });
        self.release_own();
    }

    /// Moves own frames into the write queue while the relayed stream allows it.
    fn release_own(&mut self) {
        while let Some(front) = self.own.front() {
            let allowed = match self.tail {
                Boundary::Message => true,
                Boundary::InMessage => front.control,
                Boundary::InFrame => false,
            };
            if !allowed {
                return;
            }
            if let Some(own) = self.own.pop_front() {
                self.own_in_out += 1;
                self.out.push_back(Chunk {
                    bytes: own.bytes,
                    end: self.tail,
                    own: true,
                });
            }
        }
    }

    /// Queues a close frame after what is already queued; nothing of our own
    /// is queued after it. Inside a relayed frame it waits for the frame's
    /// end. Inside a relayed fragmented message, our own text frames waiting
    /// for the message's end are dropped: the message is not relayed further
    /// once closing, so they could never go, and the close must.
    pub fn close(&mut self, frame: Option<CloseFrame>) {
        if self.write_done {
            return;
        }
        if self.tail != Boundary::Message {
            self.own.retain(|own| own.control);
        }
        self.own.push_back(Own {
            bytes: wire::encode_close(self.role, frame.as_ref()),
            control: true,
        });
        self.release_own();
        self.write_done = true;
    }

    /// Drives queued bytes into the socket. Ready(Ok) once all are written and flushed.
    pub fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(front) = self.out.front() else {
                if self.unflushed {
                    match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(result) => {
                            self.unflushed = false;
                            result?;
                        }
                        Poll::Pending => return self.blocked(),
                    }
                }
                self.blocked_since = None;
                if self.out.capacity() > 0 {
                    // An idle leg keeps no queue memory.
                    self.out = VecDeque::new();
                }
                return Poll::Ready(Ok(()));
            };
            match Pin::new(&mut self.io).poll_write(cx, &front.bytes[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.unflushed = true;
                    self.written += n;
                    if self.written >= front.bytes.len() {
                        self.written_end = front.end;
                        self.written = 0;
                        if front.own {
                            self.own_in_out -= 1;
                        }
                        self.out.pop_front();
                        if self.out.is_empty() {
                            self.drained_in_frame =
                                (self.written_end == Boundary::InFrame).then(Instant::now);
                        }
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.blocked(),
            }
        }
    }

    fn blocked(&mut self) -> Poll<io::Result<()>> {
        if self.blocked_since.is_none() {
            self.blocked_since = Some(Instant::now());
        }
        Poll::Pending
    }

    /// Reads the next item; `None` when the read side has ended.
    /// Pings are answered and a close frame is echoed here.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Inbound, LegError>>> {
        loop {
            if let Some(item) = self.inbound.get_mut(self.next) {
                let item = std::mem::replace(item, Inbound::Pong(Bytes::new()));
                self.next += 1;
                if self.next == self.inbound.len() {
                    self.inbound = Vec::new();
                    self.next = 0;
                }
                self.heard = true;
                self.react(&item);
                return Poll::Ready(Some(Ok(item)));
            }
            if let Some(e) = self.failed.take() {
                self.read_done = true;
                return Poll::Ready(Some(Err(LegError::Wire(e))));
            }
            if self.read_done {
                return Poll::Ready(None);
            }
            if self.undecoded_at < self.undecoded.len() {
                let rest = &self.undecoded[self.undecoded_at..];
                match self.decoder.feed_some(rest, &mut self.inbound) {
                    // Stopped after the first message in the pre-auth mode,
                    // and read again without the session ending it (it
                    // always does, or closes): end it rather than spin.
                    Ok(0) if self.inbound.is_empty() => self.decoder.set_pre_auth(false),
                    Ok(used) => self.undecoded_at += used,
                    Err(e) => self.failed = Some(e),
                }
                if self.undecoded_at >= self.undecoded.len() || self.failed.is_some() {
                    self.undecoded = Vec::new();
                    self.undecoded_at = 0;
                }
                continue;
            }
            let mut buf = [const { MaybeUninit::<u8>::uninit() }; MAX_READ];
            let mut read = ReadBuf::uninit(&mut buf[..self.read_limit]);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.read_done = true;
                    return Poll::Ready(Some(Err(LegError::Io(e))));
                }
                Poll::Ready(Ok(())) => {}
            }
            let received = read.filled();
            if received.is_empty() {
                self.read_done = true;
                return Poll::Ready(None);
            }
            self.decode(received);
        }
    }

    /// Decodes received bytes into `inbound`, a bounded number of control
    /// frames at a time; keeps what is left (decoded from where it stopped,
    /// without copying it again) for the next calls.
    fn decode(&mut self, received: &[u8]) {
        match self.decoder.feed_some(received, &mut self.inbound) {
            Ok(used) if used < received.len() => {
                self.undecoded.extend_from_slice(&received[used..]);
            }
            Ok(_) => {}
            Err(e) => self.failed = Some(e),
        }
    }

    /// What the leg does by itself on a received frame: pong a ping, echo a
    /// close (the session passes the close on to the other leg).
    fn react(&mut self, item: &Inbound) {
        match item {
            Inbound::Ping(payload) => {
                let payload = payload.clone();
                self.push_own(OpCode::Control(Control::Pong), &payload);
            }
            Inbound::Close(frame) => {
                self.read_done = true;
                // Echoed whole, as tungstenite does.
                self.close(frame.clone());
            }
            _ => {}
        }
    }

    /// Drops what is queued (the peer is too slow to take it and is about to
    /// be closed), except a frame already partly written, which is kept
    /// whole so that a close frame can follow it.
    pub fn discard_queued(&mut self) {
        let mut must_keep = self.written > 0 || self.written_end == Boundary::InFrame;
        let mut keep = 0;
        for chunk in &self.out {
            if !must_keep {
                break;
            }
            keep += 1;
            must_keep = chunk.end == Boundary::InFrame;
        }
        self.out.truncate(keep);
        self.own.clear();
        self.own_in_out = self.out.iter().filter(|c| c.own).count();
        self.tail = self.out.back().map_or(self.written_end, |c| c.end);
    }

    /// Clears the queue and marks both sides done (the socket failed).
    pub fn abandon(&mut self) {
        self.out.clear();
        self.own.clear();
        self.own_in_out = 0;
        self.written = 0;
        self.unflushed = false;
        self.blocked_since = None;
        self.write_done = true;
        self.read_done = true;
    }
}

/// Client bytes held back from the upstream, bounded in frames and bytes.
#[derive(Debug)]
pub struct Held {
    /// The pieces, oldest first.
    pieces: VecDeque<Piece>,
    /// Bytes held (frame headers included).
    bytes: usize,
    /// Frames held (begun in the held bytes).
    frames: usize,
    /// Most frames allowed.
    max_frames: usize,
    /// Most bytes allowed.
    max_bytes: usize,
}

/// Held bytes, with where the stream stands before and after them.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece {
    /// The bytes.
    pub bytes: Bytes,
    /// Where the stream stands before them.
    pub start: Boundary,
    /// Where the stream stands after them.
    pub end: Boundary,
}

/// The holding queue is full.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

impl Held {
    /// An empty queue with its bounds.
    pub fn new(max_frames: usize, max_bytes: usize) -> Held {
        Held {
            pieces: VecDeque::new(),
            bytes: 0,
            frames: 0,
            max_frames,
            max_bytes,
        }
    }

    /// Sets new bounds (the pre-auth queue and the suspension hold have their own).
    pub fn set_bounds(&mut self, max_frames: usize, max_bytes: usize) {
        self.max_frames = max_frames;
        self.max_bytes = max_bytes;
    }

    /// Holds relayed bytes in which `frames` frames begin, or reports that
    /// the bounds would be exceeded.
    pub fn push(&mut self, piece: Piece, frames: usize) -> Result<(), Overflow> {
        let len = piece.bytes.len();
        if self.frames + frames > self.max_frames || self.bytes + len > self.max_bytes {
            return Err(Overflow);
        }
        self.bytes += len;
        self.frames += frames;
        self.pieces.push_back(piece);
        Ok(())
    }

    /// Takes everything held, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Piece> + '_ {
        self.bytes = 0;
        self.frames = 0;
        self.pieces.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_is_bounded_by_pieces_and_bytes() {
        let mut held = Held::new(2, 10);
        let piece = |s: &'static str, end| Piece {
            bytes: Bytes::from_static(s.as_bytes()),
            start: Boundary::Message,
            end,
        };
        assert_eq!(held.push(piece("12345", Boundary::Message), 1), Ok(()));
        assert_eq!(
            held.push(piece("123456", Boundary::Message), 1),
            Err(Overflow)
        );
        assert_eq!(held.push(piece("1234", Boundary::InFrame), 1), Ok(()));
        assert_eq!(held.push(piece("5", Boundary::Message), 0), Ok(()));
        assert_eq!(held.push(piece("", Boundary::Message), 1), Err(Overflow));
        let pieces: Vec<Piece> = held.drain().collect();
        assert_eq!(
            pieces,
            vec![
                piece("12345", Boundary::Message),
                piece("1234", Boundary::InFrame),
                piece("5", Boundary::Message)
            ]
        );
        assert_eq!(held.push(piece("1234567890", Boundary::Message), 2), Ok(()));
    }
}
