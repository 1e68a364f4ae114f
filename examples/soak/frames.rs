//! The soak's data frames: `<side>:<seq>:` and padding, as text or binary
//! (the same bytes), and the `fin:<count>` frame that ends a connection.

use tokio_tungstenite::tungstenite::Message;

/// Prefix of the frame that ends a connection: `fin:<numbered frames sent>`.
pub const FIN: &str = "fin:";

/// A numbered frame from `side` (`c` client, `u` upstream) with `pad` bytes of padding.
pub fn numbered(side: char, seq: u64, binary: bool, pad: usize) -> Message {
    let mut text = format!("{side}:{seq}:");
    text.extend(std::iter::repeat_n('x', pad));
    if binary {
        Message::binary(text.into_bytes())
    } else {
        Message::text(text)
    }
}

/// The sequence number of a numbered frame from `side`.
pub fn parse_numbered(m: &Message, side: char) -> Option<u64> {
    let bytes: &[u8] = match m {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        _ => return None,
    };
    let rest = bytes.strip_prefix(&[side as u8, b':'][..])?;
    let end = rest.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}
