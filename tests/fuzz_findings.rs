//! Inputs the fuzz targets crashed on (`fuzz/findings/`), replayed through
//! what they exposed (docs/reliability.md, "Fuzzing").

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role as TgRole, WebSocket};
use tokio_tungstenite::tungstenite::{Error, Message};
use wsguard::wire::{Decoder, Inbound, Limits, Role};

/// A finding's bytes: the target's flags byte and chunk seed, then the stream.
fn finding(name: &str) -> Vec<u8> {
    let path = format!("{}/fuzz/findings/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What a `role` leg's decoder makes of `stream`, fed `chunk` bytes at a
/// time, until the end or the error it refuses the stream with.
fn decode(role: Role, stream: &[u8], chunk: usize) -> (Vec<Inbound>, bool) {
    let limits = Limits {
        max_frame: 1 << 16,
        max_message: 1 << 18,
        inspect_limit: 128,
    };
    let mut decoder = Decoder::new(role, limits);
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        if decoder.feed(piece, &mut out).is_err() {
            return (out, false);
        }
    }
    (out, true)
}

/// A stream tungstenite reads; what it writes is dropped.
struct Input<'a>(&'a [u8]);

impl std::io::Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for Input<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Two pings, then a close with code 1014 (bad gateway) and a 3-byte
/// reason, then the start of a frame. The decoder reads 1014 as sent (it is
/// registered); tungstenite returns 1002 "Protocol violation" for it, as for
/// any code its `is_allowed` does not know. The target compared the two
/// unchanged and crashed; it now compares what tungstenite would return.
#[test]
fn a_close_with_code_1014_is_read_as_sent() {
    let input = finding("wire_decoder-close-after-pings");
    let stream = &input[2..];
    for chunk in [1, 3, 7, stream.len()] {
        let (out, accepted) = decode(Role::Server, stream, chunk);
        assert!(accepted, "{out:?}");
        assert!(
            matches!(&out[0], Inbound::Ping(p) if p.len() == 17),
            "{out:?}"
        );
        assert!(
            matches!(&out[1], Inbound::Ping(p) if &p[..] == b"hi"),
            "{out:?}"
        );
        let Inbound::Close(Some(close)) = &out[2] else {
            panic!("{out:?}");
        };
        assert_eq!(u16::from(close.code), 1014);
        assert_eq!(close.reason.as_str(), "by\u{1e}");
        assert_eq!(
            out.len(),
            3,
            "the frame after the close is not complete: {out:?}"
        );
    }

    let mut ws = WebSocket::from_raw_socket(Input(stream), TgRole::Server, None);
    let mut read = Vec::new();
    loop {
        match ws.read() {
            Ok(m) => read.push(m),
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let Some(Message::Close(Some(close))) = read.get(2) else {
        panic!("{read:?}");
    };
    assert_eq!(
        close.code,
        CloseCode::Protocol,
        "tungstenite now knows 1014?"
    );
}

/// Every kept finding goes through a decoder of either role, in any chunking,
/// without a panic.
#[test]
fn every_finding_decodes_without_a_panic() {
    let dir = format!("{}/fuzz/findings", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/findings") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("finding");
        let stream = bytes.get(2..).unwrap_or_default();
        for role in [Role::Server, Role::Client] {
            for chunk in [1, 5, stream.len()] {
                decode(role, stream, chunk);
            }
        }
        seen += 1;
    }
    assert!(seen > 0, "no finding in {dir}");
}
