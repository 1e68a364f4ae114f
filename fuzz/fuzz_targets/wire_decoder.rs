//! The frame decoder never panics, never relays a byte it did not receive,
//! and agrees with tungstenite on every stream both accept.
//!
//! Input: a flags byte (bit 0: the role; the other bits: the inspection
//! limit of a server leg), a seed for the chunk sizes, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use tungstenite::error::{Error, ProtocolError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role as TgRole, WebSocket, WebSocketConfig};
use tungstenite::Message;
use wsguard::wire::{Boundary, Decoder, Inbound, Limits, Role};

const MAX_FRAME: usize = 1 << 16;
const MAX_MESSAGE: usize = 1 << 18;

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

/// A close frame as tungstenite's `read` returns it: a code its
/// `is_allowed` does not know is replaced by 1002 "Protocol violation".
/// The decoder accepts 1014 (bad gateway, registered), which tungstenite
/// does not know (fuzz/findings/wire_decoder-close-after-pings).
fn as_tungstenite_returns(frame: &Option<CloseFrame>) -> Message {
    Message::Close(frame.as_ref().map(|f| {
        if f.code.is_allowed() {
            f.clone()
        } else {
            CloseFrame {
                code: CloseCode::Protocol,
                reason: "Protocol violation".into(),
            }
        }
    }))
}

/// How tungstenite stopped reading.
#[derive(Debug)]
enum End {
    /// The input ended (possibly inside a frame).
    Eof,
    /// It read a close frame.
    Close,
    /// It refused a frame.
    Refused(Error),
}

/// Data messages and control messages (in order) tungstenite reads from `bytes`.
fn tungstenite(bytes: &[u8], role: TgRole) -> (Vec<Message>, Vec<Message>, End) {
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_MESSAGE));
    let mut ws = WebSocket::from_raw_socket(Input(bytes), role, Some(config));
    let (mut data, mut control) = (Vec::new(), Vec::new());
    let end = loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => data.push(m),
            Ok(m @ Message::Close(_)) => {
                control.push(m);
                break End::Close;
            }
            Ok(m) => control.push(m),
            Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => break End::Eof,
            Err(e) => break End::Refused(e),
        }
    };
    (data, control, end)
}

fuzz_target!(|input: &[u8]| {
    let [flags, seed, stream @ ..] = input else {
        return;
    };
    let (role, tg_role, inspect) = if flags & 1 == 0 {
        (Role::Server, TgRole::Server, usize::from(flags >> 1) * 2)
    } else {
        (Role::Client, TgRole::Client, 0)
    };
    let limits = Limits {
        max_frame: MAX_FRAME,
        max_message: MAX_MESSAGE,
        inspect_limit: inspect,
    };
    let mut decoder = Decoder::new(role, limits);
    let mut out = Vec::new();
    let mut rng = u32::from(*seed).wrapping_mul(2_654_435_761) | 1;
    let mut rest = stream;
    let mut accepted = true;
    while !rest.is_empty() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let size = if rng & 7 == 0 {
            rng >> 3 & 4095
        } else {
            rng >> 3 & 15
        } as usize
            + 1;
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        if decoder.feed(chunk, &mut out).is_err() {
            accepted = false;
            break;
        }
        // A partial header or a control frame, and a collected message (at most 8 frames).
        assert!(decoder.held_bytes() <= 14 + 125 + 2 * inspect + 8 * 14);
    }

    // Relayed bytes are the input's, in order; each item starts where the
    // previous one ended, and one begun inside a frame holds no new frame.
    let mut relayed = Vec::new();
    let mut decoded_control = Vec::new();
    let mut at = Boundary::Message;
    for ev in &out {
        match ev {
            Inbound::Data {
                raw,
                start,
                frames,
                boundary,
                ..
            } => {
                assert_eq!(*start, at, "item does not start where the last ended");
                assert!(*start != Boundary::InFrame || *frames == 0);
                at = *boundary;
                relayed.extend_from_slice(raw);
            }
            Inbound::Text { text, raw, .. } => {
                assert_eq!(at, Boundary::Message, "inspected text inside a message");
                assert!(text.len() <= inspect);
                relayed.extend_from_slice(raw);
            }
            Inbound::Ping(p) => decoded_control.push(Message::Ping(p.clone())),
            Inbound::Pong(p) => decoded_control.push(Message::Pong(p.clone())),
            Inbound::Close(c) => decoded_control.push(as_tungstenite_returns(c)),
            // Only a decoder given a sniffer (the dialect) refuses messages; this one has none.
            Inbound::Refused => panic!("a message refused without a sniffer"),
        }
    }
    let mut received = stream.iter();
    for byte in &relayed {
        assert!(received.any(|b| b == byte), "relayed a byte not received");
    }
    if !accepted {
        return;
    }

    // tungstenite reads the same data messages from the input and from the relayed bytes.
    let (data, control, end) = tungstenite(stream, tg_role);
    let (relayed_data, _, relayed_end) = tungstenite(&relayed, tg_role);
    match end {
        End::Eof => {
            assert!(matches!(relayed_end, End::Eof), "{relayed_end:?}");
            assert_eq!(relayed_data, data);
            assert_eq!(decoded_control, control);
        }
        // The decoder goes on after a close; what comes later is the relay's business.
        End::Close => {
            assert!(relayed_data.starts_with(&data));
            assert!(decoded_control.starts_with(&control));
        }
        // Text above the inspection limit is relayed without a UTF-8 check;
        // text being inspected is checked once it is whole, and held till then.
        End::Refused(Error::Utf8(_)) => {
            match relayed_end {
                End::Refused(Error::Utf8(_)) => {}
                End::Eof => assert!(decoder.held_bytes() > 0),
                other => panic!("{other:?}"),
            }
            assert_eq!(relayed_data, data);
            assert!(decoded_control.starts_with(&control));
        }
        End::Refused(e) => panic!("the decoder accepted what tungstenite refused: {e}"),
    }
});
