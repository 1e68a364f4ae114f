//! Tests of the frame decoder and encoder, with tungstenite as the reference:
//! streams are encoded by tungstenite, cut at arbitrary points, decoded, and
//! the relayed bytes are read back by tungstenite.

use super::*;
use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::io::{Read, Write};
use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{Role as TgRole, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

fn limits(inspect: usize) -> Limits {
    Limits {
        max_frame: 1 << 20,
        max_message: 1 << 20,
        inspect_limit: inspect,
    }
}

/// A stream tungstenite reads from; what it writes (pongs, close replies) is dropped.
struct Input<'a>(&'a [u8]);

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Input<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// All messages tungstenite, playing the peer of `role`, reads from `bytes`.
fn tungstenite_reads(bytes: &[u8], role: Role) -> Vec<Message> {
    let role = if role == Role::Server {
        TgRole::Server
    } else {
        TgRole::Client
    };
    let config = WebSocketConfig::default()
        .max_frame_size(None)
        .max_message_size(None);
    let mut ws = WebSocket::from_raw_socket(Input(bytes), role, Some(config));
    let mut messages = Vec::new();
    loop {
        match ws.read() {
            Ok(m) => messages.push(m),
            Err(Error::ConnectionClosed)
            | Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => return messages,
            Err(e) => panic!("tungstenite refused the bytes after {messages:?}: {e}"),
        }
    }
}

/// Decoder events made comparable: relayed bytes are merged, whatever event carried them.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Bytes(Vec<u8>),
    Text(String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
    Refused,
}

fn push_ev(log: &mut Vec<Ev>, ev: Ev) {
    match (log.last_mut(), ev) {
        (_, Ev::Bytes(b)) if b.is_empty() => {}
        (Some(Ev::Bytes(last)), Ev::Bytes(b)) => last.extend_from_slice(&b),
        (_, ev) => log.push(ev),
    }
}

fn normalize(out: &[Inbound]) -> Vec<Ev> {
    let mut log = Vec::new();
    for ev in out {
        match ev {
            Inbound::Data { raw, .. } => push_ev(&mut log, Ev::Bytes(raw.to_vec())),
            Inbound::Text { text, raw, .. } => {
                push_ev(&mut log, Ev::Bytes(raw.to_vec()));
                log.push(Ev::Text(text.clone()));
            }
            Inbound::Refused => log.push(Ev::Refused),
            Inbound::Ping(p) => log.push(Ev::Ping(p.to_vec())),
            Inbound::Pong(p) => log.push(Ev::Pong(p.to_vec())),
            Inbound::Close(c) => {
                let c = c
                    .as_ref()
                    .map(|c| (u16::from(c.code), c.reason.to_string()));
                log.push(Ev::Close(c));
            }
        }
    }
    log
}

/// Feeds `input` in chunks of the given sizes (cycled), checking `held_bytes` on the way.
fn decode(
    d: &mut Decoder,
    input: &[u8],
    chunks: &[usize],
    max_held: usize,
) -> Result<Vec<Inbound>, WireError> {
    let mut out = Vec::new();
    let mut rest = input;
    for &size in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        d.feed(chunk, &mut out)?;
        assert!(d.held_bytes() <= max_held, "{} bytes held", d.held_bytes());
        rest = tail;
    }
    Ok(out)
}

/// A ping (`false`) or a pong (`true`) and its payload.
type Ctl = (bool, Vec<u8>);

#[derive(Debug, Clone)]
struct MsgCase {
    text: bool,
    payload: Vec<u8>,
    /// Fragment boundaries.
    cuts: Vec<Index>,
    /// Control frames after the fragments (not after the last).
    between: Vec<Option<Ctl>>,
    before: Option<Ctl>,
}

#[derive(Debug, Clone)]
struct Case {
    msgs: Vec<MsgCase>,
    /// A final close frame, with or without a code and reason.
    close: Option<Option<(u16, String)>>,
    mask_seed: u32,
}

/// A relayed data frame, in offsets of the relayed bytes.
struct Span {
    start: usize,
    end: usize,
    text: bool,
    fin: bool,
}

/// A case encoded by tungstenite, and what decoding it must give.
#[derive(Default)]
struct Built {
    input: Vec<u8>,
    relayed: Vec<u8>,
    expected: Vec<Ev>,
    spans: Vec<Span>,
    messages: Vec<Message>,
    mask_seed: Option<u32>,
}

impl Built {
    fn new(case: &Case, role: Role, inspect: usize) -> Built {
        let seed = (role == Role::Server).then_some(case.mask_seed);
        let mut b = Built {
            mask_seed: seed,
            ..Built::default()
        };
        for m in &case.msgs {
            b.control(&m.before);
            let len = m.payload.len();
            let mut cuts: Vec<usize> = m.cuts.iter().map(|i| i.index(len + 1)).collect();
            cuts.sort_unstable();
            cuts.push(len);
            // Collected while the message is short enough and in few enough frames.
            let mut collecting = m.text && inspect > 0 && cuts[0] <= inspect;
            let mut held = Vec::new();
            let mut start = 0;
            for (i, &end) in cuts.iter().enumerate() {
                let fin = i + 1 == cuts.len();
                let opcode = match (i, m.text) {
                    (0, true) => Data::Text,
                    (0, false) => Data::Binary,
                    _ => Data::Continue,
                };
                let frame =
                    Frame::message(m.payload[start..end].to_vec(), OpCode::Data(opcode), fin);
                let bytes = b.format(frame);
                let at = b.relayed.len();
                b.relayed.extend_from_slice(&bytes);
                b.spans.push(Span {
                    start: at,
                    end: b.relayed.len(),
                    text: m.text,
                    fin,
                });
                if collecting && (end > inspect || i == MAX_INSPECTED_FRAMES) {
                    collecting = false;
                    push_ev(&mut b.expected, Ev::Bytes(std::mem::take(&mut held)));
                }
                if collecting {
                    held.extend_from_slice(&bytes);
                } else {
                    push_ev(&mut b.expected, Ev::Bytes(bytes));
                }
                if !fin {
                    b.control(m.between.get(i).unwrap_or(&None));
                }
                start = end;
            }
            let text = String::from_utf8(m.payload.clone());
            if collecting {
                push_ev(&mut b.expected, Ev::Bytes(held));
                b.expected.push(Ev::Text(text.clone().unwrap()));
            }
            b.messages.push(match text {
                Ok(text) if m.text => Message::text(text),
                _ => Message::binary(m.payload.clone()),
            });
        }
        if let Some(close) = &case.close {
            let frame = close.as_ref().map(|(code, reason)| CloseFrame {
                code: CloseCode::from(*code),
                reason: reason.as_str().into(),
            });
            b.format(Frame::close(frame));
            b.expected.push(Ev::Close(close.clone()));
        }
        b
    }

    /// Appends a frame to the input, masked when sent by a client.
    fn format(&mut self, mut frame: Frame) -> Vec<u8> {
        if let Some(seed) = self.mask_seed.as_mut() {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            frame.header_mut().mask = Some(seed.to_be_bytes());
        }
        let mut bytes = Vec::new();
        frame.format(&mut bytes).unwrap();
        self.input.extend_from_slice(&bytes);
        bytes
    }

    fn control(&mut self, c: &Option<Ctl>) {
        let Some((pong, p)) = c else { return };
        let (frame, ev) = match pong {
            false => (Frame::ping(p.clone()), Ev::Ping(p.clone())),
            true => (Frame::pong(p.clone()), Ev::Pong(p.clone())),
        };
        self.format(frame);
        self.expected.push(ev);
    }

    /// Where the relayed bytes up to `offset` end.
    fn boundary_at(&self, offset: usize) -> Boundary {
        let i = self.spans.partition_point(|s| s.end < offset);
        match self.spans.get(i) {
            Some(s) if s.start < offset && offset < s.end => Boundary::InFrame,
            Some(s) if s.end == offset && !s.fin => Boundary::InMessage,
            _ => Boundary::Message,
        }
    }
}

/// Decodes a built case and checks everything against it.
fn check(case: &Case, role: Role, inspect: usize, chunks: &[usize]) -> Result<(), TestCaseError> {
    check_with(case, role, inspect, chunks, false)
}

/// [`check`], with the first-member check of large text messages on or off
/// (random payloads are never a `REAUTH` frame, so everything is relayed).
fn check_with(
    case: &Case,
    role: Role,
    inspect: usize,
    chunks: &[usize],
    sniff: bool,
) -> Result<(), TestCaseError> {
    let b = Built::new(case, role, inspect);
    let mut decoder = if sniff {
        sniffing(inspect)
    } else {
        Decoder::new(role, limits(inspect))
    };
    // A partial header or a control frame, and a collected message's frames and text.
    let max_held = if sniff {
        sniff_held(inspect)
    } else {
        125 + 2 * inspect + MAX_INSPECTED_FRAMES * MAX_HEADER
    };
    let out = decode(&mut decoder, &b.input, chunks, max_held).expect("valid stream refused");
    prop_assert_eq!(decoder.boundary(), Boundary::Message);
    prop_assert_eq!(decoder.held_bytes(), 0);
    // (a), (c), (d): the relayed bytes, control frames and inspected texts, in order.
    // While a large text message is sniffed its first bytes are held, so a
    // control frame between its fragments (answered by the proxy, never
    // relayed) may come out before them: then each kind keeps its order.
    if sniff {
        let split = |log: Vec<Ev>| -> (Vec<Ev>, Vec<Ev>) {
            let mut data = Vec::new();
            let mut control = Vec::new();
            for ev in log {
                match ev {
                    Ev::Ping(_) | Ev::Pong(_) | Ev::Close(_) => control.push(ev),
                    ev => push_ev(&mut data, ev),
                }
            }
            (data, control)
        };
        prop_assert_eq!(split(normalize(&out)), split(b.expected.clone()));
    } else {
        prop_assert_eq!(normalize(&out), b.expected.clone());
    }
    // (e): every run of relayed bytes knows where it ends, what it starts in, and its frames.
    let mut offset = 0;
    for ev in &out {
        if let Inbound::Data {
            raw,
            start,
            text,
            frames,
            boundary,
        } = ev
        {
            prop_assert_eq!(*start, b.boundary_at(offset), "start at {}", offset);
            let first = b.spans.partition_point(|s| s.end <= offset);
            // An item begun inside a frame is that frame's rest only; one
            // begun inside a message holds no frame of another message.
            let range = offset..offset + raw.len();
            let begun = |s: &&Span| range.contains(&s.start);
            match start {
                Boundary::InFrame => prop_assert_eq!(*frames, 0, "frames after {}", offset),
                Boundary::InMessage => {
                    for (i, s) in b.spans.iter().enumerate().filter(|(_, s)| begun(s)) {
                        prop_assert!(i > 0 && !b.spans[i - 1].fin, "new message at {}", s.start);
                    }
                }
                Boundary::Message => {}
            }
            prop_assert_eq!(*text, b.spans[first].text, "text flag at {}", offset);
            let starts = b
                .spans
                .iter()
                .filter(|s| (offset..offset + raw.len()).contains(&s.start));
            prop_assert_eq!(*frames, starts.count(), "frames at {}", offset);
            offset += raw.len();
            prop_assert_eq!(*boundary, b.boundary_at(offset), "boundary at {}", offset);
        } else if let Inbound::Text { raw, frames, .. } = ev {
            let starts = b
                .spans
                .iter()
                .filter(|s| (offset..offset + raw.len()).contains(&s.start));
            prop_assert_eq!(*frames, starts.count(), "text frames at {}", offset);
            offset += raw.len();
        }
    }
    // (b): the peer reads the original messages from the relayed bytes.
    let relayed: Vec<u8> = (out.iter())
        .flat_map(|ev| match ev {
            Inbound::Data { raw, .. } | Inbound::Text { raw, .. } => raw.to_vec(),
            _ => Vec::new(),
        })
        .collect();
    prop_assert!(
        relayed == b.relayed,
        "relayed bytes differ from the data frames"
    );
    prop_assert_eq!(tungstenite_reads(&relayed, role), b.messages.clone());
    Ok(())
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => vec(any::<u8>(), 0..20),
        4 => vec(any::<u8>(), 120..300),
        1 => vec(any::<u8>(), 65_530..66_000),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "\\PC{0,20}",
        4 => "[a-zé€😀 ]{40,150}",
        1 => "\\PC{1,10}".prop_map(|s| s.repeat(65_540 / s.len() + 1)),
    ]
}

fn ctl() -> impl Strategy<Value = Option<Ctl>> {
    weighted(0.3, (any::<bool>(), vec(any::<u8>(), 0..=125)))
}

prop_compose! {
    fn msg()(
        (text, payload) in prop_oneof![text().prop_map(|s| (true, s.into_bytes())), payload().prop_map(|p| (false, p))],
        cuts in prop_oneof![8 => vec(any::<Index>(), 0..4), 1 => vec(any::<Index>(), 6..12)],
        between in vec(ctl(), 0..12),
        before in ctl(),
    ) -> MsgCase {
        MsgCase { text, payload, cuts, between, before }
    }
}

const CLOSE_CODES: [u16; 7] = [1000, 1001, 1002, 1008, 1011, 3000, 4999];

prop_compose! {
    fn case()(
        msgs in vec(msg(), 0..8),
        close in proptest::option::of(proptest::option::of((select(&CLOSE_CODES[..]), "\\PC{0,20}"))),
        mask_seed in any::<u32>(),
    ) -> Case {
        Case { msgs, close, mask_seed }
    }
}

/// Chunk sizes, cycled: many tiny ones (splits inside headers), some large.
fn chunks() -> impl Strategy<Value = Vec<usize>> {
    vec(
        prop_oneof![4 => 1usize..4, 2 => 1usize..40, 1 => 1usize..5000],
        1..40,
    )
}

fn peer(client: bool) -> (Role, Role) {
    if client {
        (Role::Client, Role::Server)
    } else {
        (Role::Server, Role::Client)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn server_decodes_client_streams(case in case(), chunks in chunks(), inspect in prop_oneof![Just(0usize), 1usize..200]) {
        check(&case, Role::Server, inspect, &chunks)?;
    }

    #[test]
    fn sniffing_server_relays_client_streams(case in case(), chunks in chunks(), inspect in 1usize..200) {
        check_with(&case, Role::Server, inspect, &chunks, true)?;
    }

    #[test]
    fn client_decodes_server_streams(case in case(), chunks in chunks()) {
        check(&case, Role::Client, 0, &chunks)?;
    }

    #[test]
    fn encode_is_read_by_tungstenite(client in any::<bool>(), kind in 0..4u8, bin in payload(), s in text()) {
        let (role, peer) = peer(client);
        let control = bin[..bin.len().min(125)].to_vec();
        let (opcode, payload, message) = match kind {
            0 => (OpCode::Data(Data::Text), s.clone().into_bytes(), Message::text(s)),
            1 => (OpCode::Data(Data::Binary), bin.clone(), Message::binary(bin)),
            2 => (OpCode::Control(Control::Ping), control.clone(), Message::Ping(control.into())),
            _ => (OpCode::Control(Control::Pong), control.clone(), Message::Pong(control.into())),
        };
        let bytes = encode(role, opcode, &payload);
        prop_assert_eq!(bytes[1] & 0x80 != 0, client, "masked iff we are the client");
        prop_assert_eq!(tungstenite_reads(&bytes, peer), vec![message]);
    }

    #[test]
    fn encode_close_is_read_by_tungstenite(client in any::<bool>(), code in select(&CLOSE_CODES[..]), reason in "\\PC{0,80}", empty in any::<bool>()) {
        let (role, peer) = peer(client);
        let frame = CloseFrame { code: code.into(), reason: reason.as_str().into() };
        let bytes = encode_close(role, (!empty).then_some(&frame));
        prop_assert_eq!(bytes[1] & 0x80 != 0, client, "masked iff we are the client");
        let read = tungstenite_reads(&bytes, peer);
        let Some(Message::Close(close)) = read.first() else { panic!("not a close: {read:?}") };
        prop_assert_eq!(read.len(), 1);
        prop_assert_eq!(close.is_none(), empty);
        if let Some(f) = close {
            prop_assert_eq!(u16::from(f.code), code);
            // The longest prefix of at most 123 bytes ending on a char boundary.
            let cut: &str = &f.reason;
            prop_assert!(reason.starts_with(cut) && cut.len() <= 123);
            let next = reason[cut.len()..].chars().next();
            prop_assert!(next.is_none_or(|c| cut.len() + c.len_utf8() > 123), "cut at {}", cut.len());
        }
    }
}

#[test]
fn own_frames_decode_back() {
    let frame = encode(Role::Client, OpCode::Data(Data::Text), b"hello");
    let mut decoder = Decoder::new(Role::Server, limits(64));
    let mut out = Vec::new();
    decoder.feed(&frame, &mut out).unwrap();
    assert_eq!(
        out,
        vec![Inbound::Text {
            text: "hello".into(),
            raw: frame,
            frames: 1
        }]
    );
}

// Unit tests on hand-made frames.

const FIN: u8 = 0x80;
const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BIN: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

/// A header: `b0` is FIN, RSV and opcode.
fn head(b0: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    match len {
        0..=125 => out.push(m | len as u8),
        126..=0xffff => out.extend([m | 126].into_iter().chain((len as u16).to_be_bytes())),
        _ => out.extend([m | 127].into_iter().chain(len.to_be_bytes())),
    }
    out.extend(mask.into_iter().flatten());
    out
}

fn frame(b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = head(b0, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        unmask(&mut out[start..], mask, 0);
    }
    out
}

/// The error a stream gives, fed at once and byte by byte (the same both ways).
fn error(role: Role, limits: Limits, input: &[u8]) -> WireError {
    let whole = Decoder::new(role, limits).feed(input, &mut Vec::new());
    let whole = whole.expect_err("stream accepted");
    let bytewise = decode(&mut Decoder::new(role, limits), input, &[1], usize::MAX);
    assert_eq!(bytewise.expect_err("stream accepted byte by byte"), whole);
    whole
}

/// What a stream fed at once decodes to.
fn decoded(role: Role, limits: Limits, input: &[u8]) -> Vec<Inbound> {
    let mut out = Vec::new();
    Decoder::new(role, limits).feed(input, &mut out).unwrap();
    out
}

#[test]
fn refuses_protocol_errors() {
    let (s, c, p) = (Role::Server, Role::Client, WireError::Protocol);
    let x = |b0, mask| frame(b0, mask, b"x");
    let start = x(BIN, MASK);
    let mut cases = vec![
        (c, head(FIN | PING, None, 126), p("control frame too long")),
        (
            s,
            frame(FIN | PING, MASK, &[0; 126]),
            p("control frame too long"),
        ),
        (s, x(PING, MASK), p("fragmented control frame")),
        (s, x(FIN | BIN, None), p("client frame not masked")),
        (s, x(FIN | PING, None), p("client frame not masked")),
        (c, x(FIN | BIN, MASK), p("server frame masked")),
        (s, x(FIN | CONT, MASK), p("continuation without a message")),
        (
            s,
            [x(FIN | BIN, MASK), x(FIN | CONT, MASK)].concat(),
            p("continuation without a message"),
        ),
        (
            s,
            [start.clone(), x(FIN | TEXT, MASK)].concat(),
            p("new message inside a fragmented one"),
        ),
        (
            s,
            [start.clone(), x(BIN, MASK)].concat(),
            p("new message inside a fragmented one"),
        ),
        (
            s,
            x(FIN | CLOSE, MASK),
            p("close frame with a 1-byte payload"),
        ),
        (
            s,
            frame(FIN | CLOSE, MASK, b"\x03\xe8a\xc3"),
            WireError::Utf8,
        ),
        (s, frame(FIN | TEXT, MASK, b"\xff"), WireError::Utf8),
    ];
    for rsv in [0x40, 0x20, 0x10] {
        cases.push((s, x(FIN | rsv | BIN, MASK), p("reserved bits set")));
    }
    for op in [0x3, 0x7, 0xb, 0xf] {
        cases.push((s, x(FIN | op, MASK), p("invalid frame header")));
        cases.push((c, x(FIN | op, None), p("invalid frame header")));
    }
    for code in [1005u16, 1006, 999, 1015, 0, 1004, 2999] {
        let close = frame(FIN | CLOSE, MASK, &code.to_be_bytes());
        cases.push((s, close, p("close code not allowed")));
    }
    for (role, input, expected) in cases {
        assert_eq!(error(role, limits(64), &input), expected, "{input:x?}");
    }
}

#[test]
fn refuses_oversized_frames_and_messages() {
    let small = Limits {
        max_frame: 100,
        max_message: 250,
        inspect_limit: 0,
    };
    let frame_too_long = |size| WireError::FrameTooLong { size, max: 100 };
    let input = frame(FIN | BIN, None, &[0; 101]);
    assert_eq!(error(Role::Client, small, &input), frame_too_long(101));
    // Announced lengths count, before the payload arrives.
    let huge = head(FIN | BIN, None, u64::MAX);
    assert_eq!(error(Role::Client, small, &huge), frame_too_long(u64::MAX));
    let too_long = WireError::MessageTooLong {
        size: 251,
        max: 250,
    };
    let wide = Limits {
        max_frame: 300,
        ..small
    };
    assert_eq!(
        error(Role::Client, wide, &frame(FIN | BIN, None, &[0; 251])),
        too_long
    );
    let frags = [
        frame(TEXT, None, &[b'a'; 100]),
        frame(CONT, None, &[b'a'; 100]),
    ]
    .concat();
    let input = [&frags[..], &frame(FIN | CONT, None, &[b'a'; 51])].concat();
    assert_eq!(error(Role::Client, small, &input), too_long);
    let input = [&frags[..], &frame(FIN | CONT, None, &[b'a'; 50])].concat();
    decoded(Role::Client, small, &input);
}

#[test]
fn checks_utf8_of_inspected_text_only() {
    let bad = frame(FIN | TEXT, MASK, b"ok \xff");
    assert_eq!(error(Role::Server, limits(64), &bad), WireError::Utf8);
    // A char split across fragments is fine; a broken one is not.
    let euro = "€".as_bytes();
    let split = [
        frame(TEXT, MASK, &euro[..1]),
        frame(FIN | CONT, MASK, &euro[1..]),
    ]
    .concat();
    let out = decoded(Role::Server, limits(64), &split);
    assert!(matches!(&out[..], [Inbound::Text { text, .. }] if text == "€"));
    let broken = [
        frame(TEXT, MASK, &euro[..1]),
        frame(FIN | CONT, MASK, b"ab"),
    ]
    .concat();
    assert_eq!(error(Role::Server, limits(64), &broken), WireError::Utf8);
    // Above the inspection limit text is relayed unread.
    decoded(Role::Server, limits(2), &bad);
}

#[test]
fn decodes_close_frames() {
    let good = [
        frame(FIN | CLOSE, MASK, b"\x0b\xb8bye"),
        frame(FIN | CLOSE, MASK, b""),
    ];
    let out = decoded(Role::Server, limits(0), &good.concat());
    let bye = CloseFrame {
        code: CloseCode::from(3000),
        reason: "bye".into(),
    };
    assert_eq!(out, vec![Inbound::Close(Some(bye)), Inbound::Close(None)]);
}

#[test]
fn relays_bytes_before_a_bad_frame() {
    let good = frame(FIN | BIN, None, b"abc");
    let input = [good.clone(), frame(FIN | BIN, MASK, b"x")].concat();
    let mut out = Vec::new();
    assert!(Decoder::new(Role::Client, limits(0))
        .feed(&input, &mut out)
        .is_err());
    assert!(matches!(&out[..], [Inbound::Data { raw, .. }] if raw[..] == good[..]));
}

#[test]
fn holds_only_a_partial_header_between_frames() {
    let header = head(FIN | BIN, MASK, 70_000);
    assert_eq!(header.len(), 14);
    let mut decoder = Decoder::new(Role::Server, limits(64));
    let mut out = Vec::new();
    for (i, byte) in header[..13].iter().enumerate() {
        decoder.feed(&[*byte], &mut out).unwrap();
        assert_eq!(decoder.held_bytes(), i + 1);
    }
    assert!(out.is_empty());
    decoder.feed(&header[13..], &mut out).unwrap();
    assert_eq!(decoder.held_bytes(), 0);
    decoder.feed(&[0; 70_000], &mut out).unwrap();
    let input = [
        frame(BIN, MASK, b"ab"),
        frame(FIN | PING, MASK, b"p"),
        frame(FIN | CONT, MASK, b""),
    ];
    for f in &input {
        decoder.feed(f, &mut out).unwrap();
        assert_eq!(decoder.held_bytes(), 0);
    }
    // A text message being inspected is held (frames and text) until its end.
    decoder.feed(&frame(TEXT, MASK, b"abc"), &mut out).unwrap();
    assert_eq!(decoder.held_bytes(), 9 + 3);
    decoder
        .feed(&frame(FIN | CONT, MASK, b""), &mut out)
        .unwrap();
    assert_eq!(decoder.held_bytes(), 0);
}

/// Regression: bytes relayed up to the end of a frame end there, even when the
/// next frame's header has begun (a close frame from the peer must not wait
/// behind a frame that seems unfinished).
#[test]
fn partial_next_header_does_not_hold_the_boundary() {
    for (first, end) in [(FIN | BIN, Boundary::Message), (BIN, Boundary::InMessage)] {
        let mut decoder = Decoder::new(Role::Client, limits(0));
        let mut out = Vec::new();
        let input = [&frame(first, None, b"data")[..], &[FIN | CLOSE]].concat();
        decoder.feed(&input, &mut out).unwrap();
        assert!(
            matches!(out[..], [Inbound::Data { boundary, .. }] if boundary == end),
            "{out:?}"
        );
        assert_eq!(decoder.boundary(), end);
        decoder.feed(&[0], &mut out).unwrap();
        assert_eq!(out[1], Inbound::Close(None));
    }
}

/// Regression: empty fragments of an inspected text message add headers but
/// no length; past a few frames the message is relayed, not held without bound.
#[test]
fn empty_fragments_are_not_held_without_bound() {
    let mut decoder = Decoder::new(Role::Server, limits(64));
    let mut out = Vec::new();
    decoder.feed(&frame(TEXT, MASK, b"a"), &mut out).unwrap();
    for _ in 0..10_000 {
        decoder.feed(&frame(CONT, MASK, b""), &mut out).unwrap();
        assert!(decoder.held_bytes() <= 1 + 1 + MAX_INSPECTED_FRAMES * 6);
    }
    decoder
        .feed(&frame(FIN | CONT, MASK, b""), &mut out)
        .unwrap();
    let frames: usize = (out.iter())
        .map(|ev| match ev {
            Inbound::Data {
                text: true, frames, ..
            } => *frames,
            other => panic!("not text data: {other:?}"),
        })
        .sum();
    assert_eq!(frames, 10_002);
    assert_eq!(decoder.boundary(), Boundary::Message);
}

/// The rest of a frame (or of a fragmented message) comes as an item of its
/// own, so that a closing leg can take exactly that rest and nothing after it.
#[test]
fn the_rest_of_a_frame_or_message_is_an_item_of_its_own() {
    let mut decoder = Decoder::new(Role::Client, limits(0));
    let mut out = Vec::new();
    let big = frame(FIN | BIN, None, &[7; 300]);
    decoder.feed(&big[..100], &mut out).unwrap();
    out.clear();
    // The rest of the frame, a whole frame and the first fragment of a
    // message, then (next read) its last fragment and a new message.
    let input = [
        &big[100..],
        &frame(FIN | BIN, None, b"x")[..],
        &frame(TEXT, None, b"a")[..],
    ]
    .concat();
    decoder.feed(&input, &mut out).unwrap();
    let input = [
        &frame(FIN | CONT, None, b"b")[..],
        &frame(FIN | BIN, None, b"y")[..],
    ]
    .concat();
    decoder.feed(&input, &mut out).unwrap();
    let items: Vec<(Boundary, usize, usize, Boundary)> = (out.iter())
        .map(|ev| match ev {
            Inbound::Data {
                raw,
                start,
                frames,
                boundary,
                ..
            } => (*start, raw.len(), *frames, *boundary),
            other => panic!("not data: {other:?}"),
        })
        .collect();
    use Boundary::*;
    assert_eq!(
        items,
        vec![
            (InFrame, big.len() - 100, 0, Message),
            (Message, 6, 2, InMessage),
            (InMessage, 3, 1, Message),
            (Message, 3, 1, Message),
        ]
    );
}

/// A read full of tiny pings is decoded a bounded number at a time.
#[test]
fn control_frames_per_feed_are_bounded() {
    let ping = frame(FIN | PING, MASK, b"");
    let input: Vec<u8> = [ping.repeat(100), frame(FIN | TEXT, MASK, b"hi")].concat();
    let mut decoder = Decoder::new(Role::Server, limits(64));
    let mut out = Vec::new();
    let used = decoder.feed_some(&input, &mut out).unwrap();
    assert_eq!(used, MAX_CONTROL_PER_FEED * ping.len());
    assert_eq!(out.len(), MAX_CONTROL_PER_FEED);
    assert!(out.iter().all(|ev| *ev == Inbound::Ping(Bytes::new())));
    out.clear();
    decoder.feed(&input[used..], &mut out).unwrap();
    assert_eq!(out.len(), 100 - MAX_CONTROL_PER_FEED + 1);
    assert!(matches!(out.last(), Some(Inbound::Text { text, .. }) if text == "hi"));
}

/// The first-member check of the client leg, for the name `REAUTH`.
#[derive(Debug)]
struct Reauth;

impl Sniff for Reauth {
    fn first_member(&self, prefix: &[u8]) -> Prefix {
        crate::protocol::scan::first_member(prefix, &[b"REAUTH"])
    }
}

fn sniffing(inspect: usize) -> Decoder {
    let mut decoder = Decoder::new(Role::Server, limits(inspect));
    decoder.set_sniff(std::sync::Arc::new(Reauth));
    decoder
}

/// `payload` as a text message in `n` masked fragments.
fn fragments(payload: &[u8], n: usize) -> Vec<u8> {
    let size = payload.len().div_ceil(n).max(1);
    let pieces: Vec<&[u8]> = payload.chunks(size).collect();
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { TEXT } else { CONT };
        let fin = if i + 1 == pieces.len() { FIN } else { 0 };
        out.extend(frame(fin | op, MASK, piece));
    }
    out
}

/// Most a sniffing decoder with inspection limit `inspect` holds.
fn sniff_held(inspect: usize) -> usize {
    125 + 2 * inspect + SNIFF_BYTES + (MAX_SNIFF_FRAMES + 1) * MAX_HEADER
}

#[test]
fn large_control_frames_are_refused_from_their_first_member() {
    let token = "t".repeat(300);
    let reauth = format!(r#"{{"type":"REAUTH","payload":{{"token":"{token}"}}}}"#);
    let after = frame(FIN | TEXT, MASK, b"next");
    for input in [
        frame(FIN | TEXT, MASK, reauth.as_bytes()),
        fragments(reauth.as_bytes(), 15),
        fragments(br#"{"type":"REAUTH","payload":{"token":"small"}}"#, 12),
        frame(
            FIN | TEXT,
            MASK,
            format!(r#" {{ "TYPE" : "RE\u0041UTH", "x":"{token}"}}"#).as_bytes(),
        ),
        frame(
            FIN | TEXT,
            MASK,
            format!("{{{}\"x\":1}}", " ".repeat(300)).as_bytes(),
        ),
    ] {
        let stream = [input.clone(), after.clone()].concat();
        for chunk in [1, 5, 64, 100_000] {
            let mut d = sniffing(32);
            let out = decode(&mut d, &stream, &[chunk], sniff_held(32)).unwrap();
            let next = vec![Ev::Bytes(after.clone()), Ev::Text("next".into())];
            assert_eq!(
                normalize(&out),
                [vec![Ev::Refused], next].concat(),
                "chunks of {chunk}"
            );
            assert_eq!(d.boundary(), Boundary::Message);
            assert_eq!(d.held_bytes(), 0);
        }
    }
}

#[test]
fn large_data_is_relayed_unchanged_once_its_first_member_tells() {
    let long = "x".repeat(400);
    for payload in [
        format!(r#"{{"text":"{long}","type":"REAUTH"}}"#),
        format!(r#"{{"type":"chat","text":"{long}"}}"#),
        format!("plain text {long}"),
        format!(r#"{{"type":"REAUTHOR","x":"{long}"}}"#),
        // Ends before its first member tells: nothing reads it as a control frame.
        r#"{"type":"REAU"#.to_owned(),
    ] {
        for input in [
            frame(FIN | TEXT, MASK, payload.as_bytes()),
            fragments(payload.as_bytes(), 20),
        ] {
            for chunk in [1, 3, 100_000] {
                let mut d = sniffing(8);
                let out = decode(&mut d, &input, &[chunk], sniff_held(8)).unwrap();
                assert_eq!(normalize(&out), vec![Ev::Bytes(input.clone())], "{payload}");
                assert_eq!(d.held_bytes(), 0);
            }
        }
    }
}

#[test]
fn pings_inside_a_sniffed_message_are_still_answered() {
    let mut input = frame(TEXT, MASK, br#"{"ty"#);
    input.extend(frame(FIN | 0x9, MASK, b"p"));
    input.extend(frame(FIN | CONT, MASK, br#"pe":"REAUTH","payload":{}}"#));
    let mut d = sniffing(4);
    let out = decode(&mut d, &input, &[100], sniff_held(4)).unwrap();
    assert_eq!(normalize(&out), vec![Ev::Ping(b"p".to_vec()), Ev::Refused]);
}

#[test]
fn before_the_first_message_a_large_text_is_refused_at_its_header() {
    let mut d = sniffing(32);
    d.set_pre_auth(true);
    let mut out = Vec::new();
    // The header of a 100 KB text frame and its first bytes, nothing more.
    let mut input = head(FIN | TEXT, MASK, 100_000);
    input.extend(b"{\"type\":\"REA");
    d.feed_some(&input, &mut out).unwrap();
    assert_eq!(normalize(&out), vec![Ev::Refused]);
    assert_eq!(d.held_bytes(), 0);
}

#[test]
fn before_the_first_message_decoding_stops_after_it() {
    let mut d = sniffing(64);
    d.set_pre_auth(true);
    let first = frame(FIN | TEXT, MASK, br#"{"type":"auth"}"#);
    let big = format!(r#"{{"type":"REAUTH","pad":"{}"}}"#, "x".repeat(100));
    let second = frame(FIN | TEXT, MASK, big.as_bytes());
    let input = [first.clone(), second.clone()].concat();
    let mut out = Vec::new();
    let used = d.feed_some(&input, &mut out).unwrap();
    assert_eq!(used, first.len(), "stops after the first message");
    assert_eq!(
        normalize(&out),
        vec![
            Ev::Bytes(first.clone()),
            Ev::Text(r#"{"type":"auth"}"#.into())
        ]
    );
    // Nothing more until the session ends the mode ...
    assert_eq!(d.feed_some(&input[used..], &mut Vec::new()).unwrap(), 0);
    // ... then the rest is sniffed as after authentication (refused: REAUTH first).
    d.set_pre_auth(false);
    let mut rest = Vec::new();
    d.feed(&input[used..], &mut rest).unwrap();
    assert_eq!(normalize(&rest), vec![Ev::Refused]);
}

#[test]
fn a_first_member_hidden_behind_many_empty_frames_is_refused() {
    let mut d = sniffing(8);
    let mut out = Vec::new();
    d.feed(&frame(TEXT, MASK, b"{"), &mut out).unwrap();
    for _ in 0..100 {
        d.feed(&frame(CONT, MASK, b""), &mut out).unwrap();
        assert!(d.held_bytes() <= sniff_held(8), "{} held", d.held_bytes());
    }
    d.feed(&frame(FIN | CONT, MASK, b"}"), &mut out).unwrap();
    assert_eq!(normalize(&out), vec![Ev::Refused]);
    assert_eq!(d.held_bytes(), 0);
    assert_eq!(d.boundary(), Boundary::Message);
}

proptest! {
    /// A large REAUTH, fragmented anywhere, with pings between its
    /// fragments and fed in any chunks, is refused once and none of its
    /// bytes are relayed; the messages around it pass whole.
    #[test]
    fn a_large_control_frame_is_refused_however_it_arrives(
        cuts in vec(any::<Index>(), 0..12),
        pings in vec(any::<bool>(), 12),
        chunks in chunks(),
        pad in 40usize..400,
    ) {
        let text = format!(r#"{{"type":"REAUTH","payload":{{"token":"{}"}}}}"#, "t".repeat(pad));
        let bytes = text.as_bytes();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len())).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        points.dedup();
        let before = frame(FIN | BIN, MASK, b"before");
        let after = frame(FIN | BIN, MASK, b"after");
        let mut input = before.clone();
        let mut expected_pings = 0;
        for (k, w) in points.windows(2).enumerate() {
            let op = if k == 0 { TEXT } else { CONT };
            let fin = if w[1] == bytes.len() { FIN } else { 0 };
            input.extend(frame(fin | op, MASK, &bytes[w[0]..w[1]]));
            if fin == 0 && pings[k % pings.len()] {
                input.extend(frame(FIN | PING, MASK, b"p"));
                expected_pings += 1;
            }
        }
        input.extend(after.clone());
        let mut d = sniffing(32);
        let out = decode(&mut d, &input, &chunks, sniff_held(32)).expect("valid stream");
        let log = normalize(&out);
        let refused = log.iter().filter(|e| **e == Ev::Refused).count();
        prop_assert_eq!(refused, 1);
        let relayed: Vec<u8> = log.iter().flat_map(|e| match e {
            Ev::Bytes(b) => b.clone(),
            _ => Vec::new(),
        }).collect();
        prop_assert_eq!(relayed, [before, after].concat());
        prop_assert_eq!(log.iter().filter(|e| matches!(e, Ev::Ping(_))).count(), expected_pings);
        prop_assert_eq!(d.held_bytes(), 0);
    }
}
