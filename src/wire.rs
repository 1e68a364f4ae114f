//! The WebSocket wire format (RFC 6455 §5) for the byte-level relay.
//!
//! Frames are not decoded into messages and re-encoded: a [`Decoder`] parses
//! frame headers only, and hands on the bytes of data frames exactly as they
//! arrived ([`Inbound::Data`]). A client's frames are masked, as frames to an
//! upstream must be; an upstream's frames are unmasked, as frames to a client
//! must be; so both directions pass through untouched. Only three things are
//! looked into:
//!
//! - control frames (ping, pong, close), which belong to one leg;
//! - small text messages when the decoder inspects text (the client leg: a
//!   text message of at most `inspect_limit` bytes may be a control frame of
//!   the dialect, so it is unmasked into its own buffer and checked for UTF-8);
//! - the first bytes of larger text messages on the client leg, held until
//!   the dialect ([`Sniff`]) tells from their first member whether they are
//!   data (relayed, the held bytes first) or a control frame (dropped:
//!   [`Inbound::Refused`]);
//! - headers, for the protocol rules and the size limits.
//!
//! Frame headers are parsed and written by tungstenite's [`FrameHeader`]; the
//! proxy's own frames are encoded by [`encode`].

use bytes::{Bytes, BytesMut};
use std::io::Cursor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Longest frame header (2 + 8 length + 4 mask).
const MAX_HEADER: usize = 14;

/// Longest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Most frames an inspected message is collected in: past them it is relayed
/// uninspected, so that the headers held stay bounded (empty fragments have
/// headers but add nothing to the message's length).
const MAX_INSPECTED_FRAMES: usize = 8;

/// Most payload bytes of a text message too large to inspect that are held
/// while its first member is read ([`Sniff`]): a message whose first bytes
/// still do not tell by then (whitespace padding) is refused, not relayed.
pub const SNIFF_BYTES: usize = 256;

/// Most frames held while the first member of such a message is read.
const MAX_SNIFF_FRAMES: usize = 2 * MAX_INSPECTED_FRAMES;

/// Decides from a text message's first bytes whether it is a control
/// frame (the client leg's dialect; see [`crate::protocol::scan::first_member`]).
/// Used for text messages too large, or in too many frames, to inspect whole.
pub trait Sniff: Send + Sync + std::fmt::Debug {
    /// What `prefix` (the message's first payload bytes, unmasked) says.
    fn first_member(&self, prefix: &[u8]) -> Prefix;
}

/// What the first bytes of a text message say about it ([`Sniff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// Not a control frame: relay it.
    Data,
    /// A control frame (or undecidable): refuse it.
    Control,
    /// More bytes are needed to tell.
    NeedMore,
}

/// Most control frames decoded by one [`Decoder::feed_some`]: a read full of
/// tiny pings stops there, so that what one read produces stays bounded (the
/// rest of the input waits until these are answered).
pub const MAX_CONTROL_PER_FEED: usize = 16;

/// Which end of the WebSocket the proxy is on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The proxy is the server (client leg): the peer's frames must be masked, ours are not.
    Server,
    /// The proxy is the client (upstream leg): the peer's frames must be unmasked, ours are masked.
    Client,
}

/// Where a run of relayed bytes ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Inside a frame: nothing else may be written to the peer until the frame's rest.
    InFrame,
    /// Between frames of a fragmented message: only control frames may come next.
    InMessage,
    /// Between messages: anything may come next.
    Message,
}

/// What the decoder found in the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A whole text message small enough to inspect.
    Text {
        /// The payload, unmasked and valid UTF-8.
        text: String,
        /// The message's frames exactly as received, to relay unchanged.
        raw: Bytes,
        /// Frames in `raw`.
        frames: usize,
    },
    /// Bytes of data frames, headers included, exactly as received. One
    /// item never reaches past the end of the frame it starts inside, nor
    /// past the end of the message it starts inside, so that the rest of a
    /// frame or message can be relayed on its own (see [`Inbound::Data::start`]).
    Data {
        /// The bytes.
        raw: Bytes,
        /// Where the stream stood before these bytes: `InFrame` means they
        /// are the rest (or more) of one frame and nothing else; `InMessage`,
        /// continuation frames of one message and nothing else.
        start: Boundary,
        /// The message these bytes start in is a text message.
        text: bool,
        /// Frames that begin in these bytes.
        frames: usize,
        /// Where the bytes end.
        boundary: Boundary,
    },
    /// A ping, with its (unmasked) payload.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame (`None` when it carried no code).
    Close(Option<CloseFrame>),
    /// A text message too large to inspect whose first member makes it a
    /// control frame (or whose first bytes could not tell): it is dropped,
    /// none of its bytes are relayed. Handed out once, when that is known.
    Refused,
}

/// Why a stream of frames was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A rule of RFC 6455 was broken.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or close reason is not UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    Utf8,
    /// A frame is larger than the frame limit.
    #[error("frame of {size} bytes over the limit of {max}")]
    FrameTooLong {
        /// Announced payload size.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message is larger than the message limit.
    #[error("message of {size} bytes over the limit of {max}")]
    MessageTooLong {
        /// Size so far.
        size: u64,
        /// The limit.
        max: usize,
    },
}

/// Size limits and inspection of one leg's decoder.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame payload.
    pub max_frame: usize,
    /// Largest message (all fragments).
    pub max_message: usize,
    /// Text messages up to this many bytes are inspected ([`Inbound::Text`]); 0 = none.
    pub inspect_limit: usize,
}

/// The frame being received.
#[derive(Debug)]
struct FrameState {
    /// Its opcode.
    opcode: OpCode,
    /// Last frame of its message.
    fin: bool,
    /// Its masking key, if masked.
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes seen (the mask's phase).
    seen: usize,
    /// What happens to the payload.
    kind: FrameKind,
}

/// What happens to a frame's payload.
#[derive(Debug)]
enum FrameKind {
    /// Relayed as it comes.
    Pass,
    /// Collected into the inspected message.
    Collect,
    /// A control frame: collected here (at most 125 bytes).
    Control(Vec<u8>),
    /// Held while the message's first member is read ([`Sniffing`]).
    Sniff,
    /// Dropped: the message was refused.
    Drop,
}

/// A text message too large to inspect, held until its first bytes tell
/// whether it may be relayed.
#[derive(Debug, Default)]
struct Sniffing {
    /// Its frames as received, so far.
    raw: Vec<u8>,
    /// The first payload bytes, unmasked (at most [`SNIFF_BYTES`]).
    prefix: Vec<u8>,
    /// Frames in `raw`.
    frames: usize,
}

/// An inspected text message being collected.
#[derive(Debug, Default)]
struct Collected {
    /// Its frames as received.
    raw: Vec<u8>,
    /// Its payload, unmasked.
    text: Vec<u8>,
    /// Frames in `raw`.
    frames: usize,
}

/// The data message being received (between its first and final frame).
#[derive(Debug)]
struct MessageState {
    /// A text message.
    text: bool,
    /// Payload bytes announced so far.
    len: u64,
    /// Collected for inspection, while it is small enough.
    collected: Option<Collected>,
    /// Held while its first member is read (a text message too large to inspect).
    sniffing: Option<Sniffing>,
    /// Refused: its frames are dropped.
    refused: bool,
}

/// An incremental frame decoder for one leg. It keeps only a partial header
/// (at most 14 bytes), an inspected message being collected, and the first
/// bytes of a large text message being sniffed; everything else is handed
/// out by [`Decoder::feed`] as soon as it arrives.
#[derive(Debug)]
pub struct Decoder {
    /// The peer's frames must be masked (we are the server).
    expect_masked: bool,
    /// Limits and inspection.
    limits: Limits,
    /// A header split across reads.
    head: [u8; MAX_HEADER],
    /// Bytes in `head`.
    head_len: usize,
    /// The frame being received.
    frame: Option<FrameState>,
    /// The data message being received.
    message: Option<MessageState>,
    /// Reads the first member of text messages too large to inspect (the
    /// client leg); `None` relays them unread.
    sniff: Option<std::sync::Arc<dyn Sniff>>,
    /// Before the first message (the auth frame) has been taken: a text
    /// message too large to be one is refused as soon as its header
    /// arrives, and decoding stops after the first message, so that the
    /// session ends this mode before anything after it is decoded.
    pre_auth: bool,
    /// In `pre_auth`, the first message has been decoded.
    first_done: bool,
}

/// Relayed bytes gathered during one [`Decoder::feed`].
struct Run {
    /// The bytes.
    bytes: BytesMut,
    /// Where the stream stood before them.
    start: Boundary,
    /// The message they start in is text.
    text: bool,
    /// Frame headers among the bytes.
    frames: usize,
}

impl Decoder {
    /// A decoder for a leg on which the proxy plays `role`.
    pub fn new(role: Role, limits: Limits) -> Decoder {
        Decoder {
            expect_masked: role == Role::Server,
            limits,
            head: [0; MAX_HEADER],
            head_len: 0,
            frame: None,
            message: None,
            sniff: None,
            pre_auth: false,
            first_done: false,
        }
    }

    /// Turns the pre-auth mode on or off (see [`Decoder::feed_some`]).
    pub fn set_pre_auth(&mut self, on: bool) {
        self.pre_auth = on;
        self.first_done = false;
    }

    /// Reads the first member of text messages too large to inspect with
    /// `sniff` (see [`Inbound::Refused`]).
    pub fn set_sniff(&mut self, sniff: std::sync::Arc<dyn Sniff>) {
        self.sniff = Some(sniff);
    }

    /// Bytes held between reads (a partial header and a collected message).
    pub fn held_bytes(&self) -> usize {
        let collected = self
            .message
            .as_ref()
            .and_then(|m| m.collected.as_ref())
            .map_or(0, |c| c.raw.len() + c.text.len());
        let sniffing = self
            .message
            .as_ref()
            .and_then(|m| m.sniffing.as_ref())
            .map_or(0, |s| s.raw.len() + s.prefix.len());
        let control = match &self.frame {
            Some(FrameState {
                kind: FrameKind::Control(p),
                ..
            }) => p.len(),
            _ => 0,
        };
        self.head_len + collected + sniffing + control
    }

    /// Where the bytes decoded so far end. A partial header held back has
    /// not been handed out: the bytes handed out end before it.
    pub fn boundary(&self) -> Boundary {
        if self.frame.is_some() {
            Boundary::InFrame
        } else if self.message.is_some() {
            Boundary::InMessage
        } else {
            Boundary::Message
        }
    }

    /// Decodes all of `input`, appending what it holds to `out` in order.
    /// After an error the decoder must not be fed again.
    /// Bytes relayed before a bad frame are handed out before the error.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Inbound>) -> Result<(), WireError> {
        while !input.is_empty() {
            let used = self.feed_some(input, out)?;
            if used == 0 {
                // Stopped after the first message in the pre-auth mode.
                self.set_pre_auth(false);
            }
            input = &input[used..];
        }
        Ok(())
    }

    /// Decodes `input` up to the [`MAX_CONTROL_PER_FEED`]th control frame,
    /// or in the pre-auth mode up to the end of the first message (or all
    /// of it), appending what it holds to `out` in order; returns the bytes
    /// used. The rest must be fed again later.
    /// After an error the decoder must not be fed again.
    /// Bytes relayed before a bad frame are handed out before the error.
    pub fn feed_some(&mut self, input: &[u8], out: &mut Vec<Inbound>) -> Result<usize, WireError> {
        let mut run: Option<Run> = None;
        let result = self.decode(input, &mut run, out);
        if let Some(run) = run.take() {
            self.emit(run, out);
        }
        result
    }

    fn decode(
        &mut self,
        input: &[u8],
        run: &mut Option<Run>,
        out: &mut Vec<Inbound>,
    ) -> Result<usize, WireError> {
        let total = input.len();
        let mut input = input;
        let mut controls = 0;
        while !input.is_empty() {
            if controls >= MAX_CONTROL_PER_FEED || (self.pre_auth && self.first_done) {
                break;
            }
            if self.frame.is_none() {
                let Some(consumed) = self.header(input, run, out)? else {
                    // All of it went into the partial header.
                    input = &[];
                    break;
                };
                input = &input[consumed..];
                if self.frame.as_ref().is_some_and(|f| f.remaining > 0) {
                    continue;
                }
            } else {
                let consumed = self.payload(input, run, out);
                input = &input[consumed..];
            }
            if self.frame.as_ref().is_some_and(|f| f.remaining == 0) {
                if self
                    .frame
                    .as_ref()
                    .is_some_and(|f| matches!(f.kind, FrameKind::Control(_)))
                {
                    controls += 1;
                }
                self.end_frame(run, out)?;
            }
        }
        Ok(total - input.len())
    }

    /// Reads a header from `input` (completing one split across reads).
    /// Returns the input bytes used, or `None` when all were taken into the
    /// partial header.
    fn header(
        &mut self,
        input: &[u8],
        run: &mut Option<Run>,
        out: &mut Vec<Inbound>,
    ) -> Result<Option<usize>, WireError> {
        let mut raw = [0u8; MAX_HEADER];
        let (parsed, raw_len, consumed) = if self.head_len == 0 {
            let mut cursor = Cursor::new(input);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => {
                    let n = cursor.position() as usize;
                    raw[..n].copy_from_slice(&input[..n]);
                    (parsed, n, n)
                }
                Ok(None) => {
                    // parse needs at most MAX_HEADER bytes, so fewer are here.
                    let n = input.len().min(MAX_HEADER);
                    self.head[..n].copy_from_slice(&input[..n]);
                    self.head_len = n;
                    return Ok(None);
                }
                Err(_) => return Err(WireError::Protocol("invalid frame header")),
            }
        } else {
            let old = self.head_len;
            let take = input.len().min(MAX_HEADER - old);
            self.head[old..old + take].copy_from_slice(&input[..take]);
            let mut cursor = Cursor::new(&self.head[..old + take]);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => {
                    let n = cursor.position() as usize;
                    raw[..n].copy_from_slice(&self.head[..n]);
                    self.head_len = 0;
                    (parsed, n, n - old)
                }
                Ok(None) => {
                    self.head_len = old + take;
                    return Ok(None);
                }
                Err(_) => return Err(WireError::Protocol("invalid frame header")),
            }
        };
        let (header, len) = parsed;
        self.start_frame(header, len, &raw[..raw_len], run, out)?;
        Ok(Some(consumed))
    }

    /// Checks a header against the rules and limits and starts its frame.
    fn start_frame(
        &mut self,
        header: FrameHeader,
        len: u64,
        header_bytes: &[u8],
        run: &mut Option<Run>,
        out: &mut Vec<Inbound>,
    ) -> Result<(), WireError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(WireError::Protocol("reserved bits set"));
        }
        // An item ends where the frame, or the message, it started inside ends.
        let before = self.boundary();
        let new_message = matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary));
        if run.as_ref().is_some_and(|r| {
            r.start == Boundary::InFrame || (r.start == Boundary::InMessage && new_message)
        }) {
            if let Some(r) = run.take() {
                self.emit_at(r, before, out);
            }
        }
        if header.mask.is_some() != self.expect_masked {
            return Err(WireError::Protocol(if self.expect_masked {
                "client frame not masked"
            } else {
                "server frame masked"
            }));
        }
        let kind = match header.opcode {
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(WireError::Protocol("reserved opcode"))
            }
            OpCode::Control(_) => {
                if !header.is_final {
                    return Err(WireError::Protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL_PAYLOAD {
                    return Err(WireError::Protocol("control frame too long"));
                }
                // Relayed bytes before a control frame go out first.
                if let Some(r) = run.take() {
                    self.emit(r, out);
                }
                FrameKind::Control(Vec::with_capacity(len as usize))
            }
            OpCode::Data(data) => {
                let kind = self.start_data(data, len, run)?;
                if let (Data::Text, FrameKind::Collect | FrameKind::Sniff) = (data, &kind) {
                    // Relayed bytes before an inspected message go out first.
                    if let Some(r) = run.take() {
                        self.emit_at(r, Boundary::Message, out);
                    }
                }
                kind
            }
        };
        if let FrameKind::Pass = kind {
            push_run(run, header_bytes, self.message_is_text(), before).frames += 1;
        } else if let FrameKind::Collect = kind {
            if let Some(c) = self.collected_mut() {
                c.raw.extend_from_slice(header_bytes);
                c.frames += 1;
            }
        } else if let FrameKind::Sniff = kind {
            if let Some(s) = self.sniffing_mut() {
                s.raw.extend_from_slice(header_bytes);
                s.frames += 1;
            }
        }
        let sniffing = matches!(kind, FrameKind::Sniff);
        self.frame = Some(FrameState {
            opcode: header.opcode,
            fin: header.is_final,
            mask: header.mask,
            remaining: len,
            seen: 0,
            kind,
        });
        if sniffing {
            // What was collected before may tell already.
            self.decide(false, &[], run, out);
        }
        Ok(())
    }

    /// Reads the first member of the message being sniffed: relays what
    /// was held and `tail` (data), refuses the message (control frame, or
    /// no answer within [`SNIFF_BYTES`] or [`MAX_SNIFF_FRAMES`]), or holds
    /// `tail` too and waits for more. `tail`: payload bytes just received,
    /// already in the prefix but not yet held. `ended`: the message is
    /// complete, so waiting is over. Before the first message has been
    /// taken (`pre_auth`), every such message is refused at once: it is
    /// larger than an auth frame may be.
    fn decide(&mut self, ended: bool, tail: &[u8], run: &mut Option<Run>, out: &mut Vec<Inbound>) {
        let (Some(sniff), Some(message)) = (&self.sniff, self.message.as_mut()) else {
            return;
        };
        let Some(held) = &mut message.sniffing else {
            return;
        };
        let verdict = match sniff.first_member(&held.prefix) {
            _ if self.pre_auth => Prefix::Control,
            Prefix::NeedMore if ended => Prefix::Data,
            Prefix::NeedMore
                if held.prefix.len() >= SNIFF_BYTES || held.frames > MAX_SNIFF_FRAMES =>
            {
                Prefix::Control
            }
            verdict => verdict,
        };
        let kind = match verdict {
            Prefix::NeedMore => {
                held.raw.extend_from_slice(tail);
                return;
            }
            Prefix::Data => {
                let r = push_run(run, &held.raw, true, Boundary::Message);
                r.frames += held.frames;
                r.bytes.extend_from_slice(tail);
                message.sniffing = None;
                FrameKind::Pass
            }
            Prefix::Control => {
                message.sniffing = None;
                message.refused = true;
                self.first_done = true;
                out.push(Inbound::Refused);
                FrameKind::Drop
            }
        };
        if let Some(frame) = self.frame.as_mut() {
            if let FrameKind::Sniff = frame.kind {
                frame.kind = kind;
            }
        }
    }

    /// Checks a data frame's place in its message and decides whether it is collected.
    fn start_data(
        &mut self,
        data: Data,
        len: u64,
        run: &mut Option<Run>,
    ) -> Result<FrameKind, WireError> {
        if len > self.limits.max_frame as u64 {
            return Err(WireError::FrameTooLong {
                size: len,
                max: self.limits.max_frame,
            });
        }
        let inspect = self.limits.inspect_limit as u64;
        let sniffs = self.sniff.is_some();
        match data {
            Data::Continue => {
                let Some(message) = self.message.as_mut() else {
                    return Err(WireError::Protocol("continuation without a message"));
                };
                message.len += len;
                if message.len > self.limits.max_message as u64 {
                    return Err(WireError::MessageTooLong {
                        size: message.len,
                        max: self.limits.max_message,
                    });
                }
                let too_many = message
                    .collected
                    .as_ref()
                    .is_some_and(|c| c.frames >= MAX_INSPECTED_FRAMES);
                if message.collected.is_some() && (message.len > inspect || too_many) {
                    // Too long (or in too many pieces) to inspect whole after
                    // all: read its first member, or relay what was collected.
                    if let Some(c) = message.collected.take() {
                        if sniffs {
                            let mut prefix = c.text;
                            prefix.truncate(SNIFF_BYTES);
                            message.sniffing = Some(Sniffing {
                                raw: c.raw,
                                prefix,
                                frames: c.frames,
                            });
                        } else {
                            let text = message.text;
                            push_run(run, &c.raw, text, Boundary::Message).frames += c.frames;
                        }
                    }
                }
                Ok(if message.refused {
                    FrameKind::Drop
                } else if message.collected.is_some() {
                    FrameKind::Collect
                } else if message.sniffing.is_some() {
                    FrameKind::Sniff
                } else {
                    FrameKind::Pass
                })
            }
            Data::Text | Data::Binary => {
                if self.message.is_some() {
                    return Err(WireError::Protocol("new message inside a fragmented one"));
                }
                if len > self.limits.max_message as u64 {
                    return Err(WireError::MessageTooLong {
                        size: len,
                        max: self.limits.max_message,
                    });
                }
                let text = data == Data::Text;
                let collect = text && inspect > 0 && len <= inspect;
                let sniff = text && !collect && sniffs;
                self.message = Some(MessageState {
                    text,
                    len,
                    collected: collect.then(Collected::default),
                    sniffing: sniff.then(Sniffing::default),
                    refused: false,
                });
                Ok(if collect {
                    FrameKind::Collect
                } else if sniff {
                    FrameKind::Sniff
                } else {
                    FrameKind::Pass
                })
            }
            Data::Reserved(_) => Err(WireError::Protocol("reserved opcode")),
        }
    }

    /// Takes payload bytes of the current frame; returns how many were used.
    fn payload(&mut self, input: &[u8], run: &mut Option<Run>, out: &mut Vec<Inbound>) -> usize {
        let text = self.message_is_text();
        let Some(frame) = self.frame.as_mut() else {
            return 0;
        };
        let n = (frame.remaining.min(input.len() as u64)) as usize;
        let bytes = &input[..n];
        match &mut frame.kind {
            FrameKind::Pass => {
                push_run(run, bytes, text, Boundary::InFrame);
            }
            FrameKind::Control(payload) => {
                let start = payload.len();
                payload.extend_from_slice(bytes);
                if let Some(mask) = frame.mask {
                    unmask(&mut payload[start..], mask, frame.seen);
                }
            }
            FrameKind::Collect => {
                if let Some(c) = self.message.as_mut().and_then(|m| m.collected.as_mut()) {
                    c.raw.extend_from_slice(bytes);
                    let start = c.text.len();
                    c.text.extend_from_slice(bytes);
                    if let Some(mask) = frame.mask {
                        unmask(&mut c.text[start..], mask, frame.seen);
                    }
                }
            }
            FrameKind::Sniff => {
                // Held (in `decide`) only while the first bytes do not tell.
                if let Some(s) = self.message.as_mut().and_then(|m| m.sniffing.as_mut()) {
                    let start = s.prefix.len();
                    let wanted = &bytes[..bytes.len().min(SNIFF_BYTES - start)];
                    s.prefix.extend_from_slice(wanted);
                    if let Some(mask) = frame.mask {
                        unmask(&mut s.prefix[start..], mask, frame.seen);
                    }
                }
            }
            FrameKind::Drop => {}
        }
        let sniffing = matches!(frame.kind, FrameKind::Sniff);
        frame.remaining -= n as u64;
        frame.seen += n;
        if sniffing {
            self.decide(false, bytes, run, out);
        }
        n
    }

    /// Finishes the current frame (all its payload has arrived).
    fn end_frame(
        &mut self,
        run: &mut Option<Run>,
        out: &mut Vec<Inbound>,
    ) -> Result<(), WireError> {
        let Some(frame) = self.frame.take() else {
            return Ok(());
        };
        match frame.kind {
            FrameKind::Control(payload) => {
                let payload = Bytes::from(payload);
                out.push(match frame.opcode {
                    OpCode::Control(Control::Ping) => Inbound::Ping(payload),
                    OpCode::Control(Control::Pong) => Inbound::Pong(payload),
                    _ => Inbound::Close(parse_close(&payload)?),
                });
            }
            FrameKind::Pass | FrameKind::Drop => {
                if frame.fin {
                    self.message = None;
                    self.first_done = true;
                }
            }
            FrameKind::Sniff => {
                if frame.fin {
                    // Ended before its first bytes told: nothing read it as a control frame.
                    self.decide(true, &[], run, out);
                    self.message = None;
                    self.first_done = true;
                }
            }
            FrameKind::Collect => {
                if frame.fin {
                    if let Some(c) = self.message.take().and_then(|m| m.collected) {
                        let text = String::from_utf8(c.text).map_err(|_| WireError::Utf8)?;
                        if let Some(r) = run.take() {
                            self.emit(r, out);
                        }
                        out.push(Inbound::Text {
                            text,
                            raw: Bytes::from(c.raw),
                            frames: c.frames,
                        });
                        self.first_done = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Hands out relayed bytes gathered so far, ending where decoding is now.
    fn emit(&self, run: Run, out: &mut Vec<Inbound>) {
        self.emit_at(run, self.boundary(), out);
    }

    /// Hands out relayed bytes gathered so far, ending at `boundary`.
    fn emit_at(&self, run: Run, boundary: Boundary, out: &mut Vec<Inbound>) {
        if run.bytes.is_empty() {
            return;
        }
        out.push(Inbound::Data {
            raw: run.bytes.freeze(),
            start: run.start,
            text: run.text,
            frames: run.frames,
            boundary,
        });
    }

    fn message_is_text(&self) -> bool {
        self.message.as_ref().is_some_and(|m| m.text)
    }

    fn collected_mut(&mut self) -> Option<&mut Collected> {
        self.message.as_mut().and_then(|m| m.collected.as_mut())
    }

    fn sniffing_mut(&mut self) -> Option<&mut Sniffing> {
        self.message.as_mut().and_then(|m| m.sniffing.as_mut())
    }
}

/// Appends relayed bytes to the run, starting one (at `start`) if needed.
fn push_run<'a>(
    run: &'a mut Option<Run>,
    bytes: &[u8],
    text: bool,
    start: Boundary,
) -> &'a mut Run {
    let run = run.get_or_insert_with(|| Run {
        bytes: BytesMut::new(),
        start,
        text,
        frames: 0,
    });
    run.bytes.extend_from_slice(bytes);
    run
}

/// 1014, bad gateway: a registered close code that tungstenite's
/// `is_allowed` does not know; a peer may send it (the proxy never does).
const BAD_GATEWAY: u16 = 1014;

/// Reads a close frame's payload: empty, or a code and a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Option<CloseFrame>, WireError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WireError::Protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            let raw = u16::from_be_bytes([*hi, *lo]);
            let code = CloseCode::from(raw);
            // 1014 (bad gateway) is registered but unknown to tungstenite.
            if !code.is_allowed() && raw != BAD_GATEWAY {
                return Err(WireError::Protocol("close code not allowed"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WireError::Utf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned().into(),
            }))
        }
    }
}

/// XORs `buf` with the masking key, `offset` bytes into the payload.
pub fn unmask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) & 3];
    }
}

/// One of the proxy's own frames, ready to write: unmasked as a server,
/// masked with a fresh random key as a client.
pub fn encode(role: Role, opcode: OpCode, payload: &[u8]) -> Bytes {
    let mask = (role == Role::Client).then(rand::random::<[u8; 4]>);
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
    };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(len, &mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        unmask(&mut out[start..], mask, 0);
    }
    Bytes::from(out)
}

/// A close frame of the proxy's own.
pub fn encode_close(role: Role, frame: Option<&CloseFrame>) -> Bytes {
    let mut payload = Vec::new();
    if let Some(f) = frame {
        payload.extend_from_slice(&u16::from(f.code).to_be_bytes());
        // A close payload is at most 125 bytes; cut the reason on a char boundary.
        let mut reason: &str = &f.reason;
        while reason.len() > 123 {
            let mut cut = 123.min(reason.len() - 1);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason = &reason[..cut];
        }
        payload.extend_from_slice(reason.as_bytes());
    }
    encode(role, OpCode::Control(Control::Close), &payload)
}

#[cfg(test)]
mod tests;
