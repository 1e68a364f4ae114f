//! One leg of a proxied connection (client or upstream): its socket, the
//! frames waiting to be written to it, and what the heartbeat and the
//! slow-consumer check need to know. Also the bounded queue that holds
//! client frames while they may not go upstream.
//!
//! Backpressure: a leg's queue is only fed while the leg accepts writes
//! ([`Leg::accepts`]); the session stops reading the other leg otherwise, so
//! a slow peer makes the fast one wait in its socket, not in our memory.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// One WebSocket leg.
pub struct Leg<S> {
    /// The socket.
    ws: WebSocketStream<S>,
    /// Frames accepted for this leg, not yet handed to the socket.
    out: VecDeque<Message>,
    /// Frames were handed to the socket since its last completed flush.
    unflushed: bool,
    /// Since when the socket has refused our writes.
    blocked_since: Option<Instant>,
    /// A frame arrived since the last heartbeat.
    pub heard: bool,
    /// Heartbeats in a row without a frame from the peer.
    pub missed: u32,
    /// The read side has ended (close handshake done, or the socket is gone).
    pub read_done: bool,
    /// The write side has failed or been closed by us.
    pub write_done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Leg<S> {
    /// Wraps an open socket.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Leg {
            ws,
            out: VecDeque::new(),
            unflushed: false,
            blocked_since: None,
            heard: false,
            missed: 0,
            read_done: false,
            write_done: false,
        }
    }

    /// Whether the leg takes more frames now (nothing queued, nothing stuck).
    pub fn accepts(&self) -> bool {
        self.out.is_empty() && self.blocked_since.is_none()
    }

    /// The socket under the WebSocket.
    pub fn io_mut(&mut self) -> &mut S {
        self.ws.get_mut()
    }

    /// Frames queued and not yet handed to the socket.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Since when writes have been refused, if they are.
    pub fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    /// Whether everything queued (a close frame included) has been written and flushed, or given up.
    pub fn flushed(&self) -> bool {
        self.out.is_empty() && !self.unflushed
    }

    /// Queues a frame. Ignored once the write side is done.
    pub fn push(&mut self, message: Message) {
        if !self.write_done {
            self.out.push_back(message);
        }
    }

    /// Queues a close frame after what is already queued; nothing is queued after it.
    pub fn close(&mut self, frame: Option<CloseFrame>) {
        if !self.write_done {
            self.out.push_back(Message::Close(frame));
            self.write_done = true;
        }
    }

    /// Drives queued frames into the socket. Ready(Ok) once all are written and flushed.
    pub fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        loop {
            if self.out.is_empty() {
                if !self.unflushed {
                    self.blocked_since = None;
                    return Poll::Ready(Ok(()));
                }
                return match Pin::new(&mut self.ws).poll_flush(cx) {
                    Poll::Ready(result) => {
                        self.unflushed = false;
                        self.blocked_since = None;
                        Poll::Ready(result)
                    }
                    Poll::Pending => self.blocked(),
                };
            }
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.blocked(),
            }
            if let Some(message) = self.out.pop_front() {
                Pin::new(&mut self.ws).start_send(message)?;
                self.unflushed = true;
            }
        }
    }

    fn blocked(&mut self) -> Poll<Result<(), WsError>> {
        if self.blocked_since.is_none() {
            self.blocked_since = Some(Instant::now());
        }
        Poll::Pending
    }

    /// Reads the next frame; `None` when the read side has ended.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        let polled = Pin::new(&mut self.ws).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => self.heard = true,
            Poll::Ready(_) => self.read_done = true,
            Poll::Pending => {}
        }
        polled
    }

    /// Drops frames not yet handed to the socket (the peer is too slow to
    /// take them and is about to be closed); what the socket holds stays.
    pub fn discard_queued(&mut self) {
        self.out.clear();
    }

    /// Clears the queue and marks both sides done (the socket failed).
    pub fn abandon(&mut self) {
        self.out.clear();
        self.unflushed = false;
        self.blocked_since = None;
        self.write_done = true;
        self.read_done = true;
    }
}

/// Frames held back from the upstream, bounded in count and bytes.
#[derive(Debug)]
pub struct Held {
    /// The frames, oldest first.
    frames: VecDeque<Message>,
    /// Payload bytes held.
    bytes: usize,
    /// Most frames allowed.
    max_frames: usize,
    /// Most payload bytes allowed.
    max_bytes: usize,
}

/// The holding queue is full.
#[derive(Debug, PartialEq, Eq)]
pub struct Overflow;

impl Held {
    /// An empty queue with its bounds.
    pub fn new(max_frames: usize, max_bytes: usize) -> Held {
        Held {
            frames: VecDeque::new(),
            bytes: 0,
            max_frames,
            max_bytes,
        }
    }

    /// Sets new bounds (the pre-auth queue and the suspension hold have their own).
    pub fn set_bounds(&mut self, max_frames: usize, max_bytes: usize) {
        self.max_frames = max_frames;
        self.max_bytes = max_bytes;
    }

    /// Holds a frame, or reports that the bounds would be exceeded.
    pub fn push(&mut self, message: Message) -> Result<(), Overflow> {
        let len = message.len();
        if self.frames.len() >= self.max_frames || self.bytes + len > self.max_bytes {
            return Err(Overflow);
        }
        self.bytes += len;
        self.frames.push_back(message);
        Ok(())
    }

    /// Takes every held frame, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Message> + '_ {
        self.bytes = 0;
        self.frames.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_is_bounded_by_frames_and_bytes() {
        let mut held = Held::new(2, 10);
        assert_eq!(held.push(Message::text("12345")), Ok(()));
        assert_eq!(held.push(Message::text("123456")), Err(Overflow));
        assert_eq!(held.push(Message::text("1234")), Ok(()));
        assert_eq!(held.push(Message::text("")), Err(Overflow));
        let texts: Vec<Message> = held.drain().collect();
        assert_eq!(texts, vec![Message::text("12345"), Message::text("1234")]);
        assert_eq!(held.push(Message::text("1234567890")), Ok(()));
    }
}
