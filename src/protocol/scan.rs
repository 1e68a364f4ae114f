//! A lenient reader of a JSON text's top level, for classification only.
//!
//! Parsers disagree on JSON that is not quite JSON: numbers out of range, lone
//! surrogate escapes, nesting deeper than a recursion limit, trailing bytes,
//! keys that differ only in case, duplicate keys, a byte-order mark. So
//! whether a client message *means* to be a control frame is not decided by
//! our strict parser succeeding: this reader finds the top-level members
//! whose key is `type` in any ASCII case (Go's `encoding/json` matches keys
//! case-insensitively) while skipping every other value by its brackets and
//! quotes alone, without recursion and without looking inside numbers or
//! strings. It never fails: where the structure breaks it stops and reports
//! what it found so far.
//!
//! [`first_member`] reads only the first member of a message's first bytes,
//! for text messages too large to hold whole (see `docs/protocol.md`).

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A top-level member whose key is `type` in some ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMember {
    /// The key is exactly `type` once its escapes are decoded (not another case).
    pub exact: bool,
    /// The value, decoded leniently, when it is a string.
    pub value: Option<Vec<u8>>,
}

/// What the top level of a text holds, as far as it could be followed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopLevel {
    /// The text starts with a byte-order mark.
    pub bom: bool,
    /// The text is (the start of) an object.
    pub object: bool,
    /// Members whose key is `type` in some case, in order.
    pub types: Vec<TypeMember>,
    /// The object's closing brace was reached through well-placed members.
    pub closed: bool,
    /// Something other than whitespace follows the closing brace.
    pub trailing: bool,
}

/// Reads the top level of `text`.
pub fn top_level(text: &[u8]) -> TopLevel {
    let mut out = TopLevel::default();
    let mut at = 0;
    if text.starts_with(BOM) {
        out.bom = true;
        at = BOM.len();
    }
    at = skip_ws(text, at);
    if text.get(at) != Some(&b'{') {
        return out;
    }
    out.object = true;
    let Some(end) = members(text, at + 1, &mut out.types) else {
        return out;
    };
    out.closed = true;
    out.trailing = skip_ws(text, end) < text.len();
    out
}

/// Reads members from `at` (just after `{`) to the closing brace; returns
/// the index after it, or `None` where the structure breaks.
fn members(text: &[u8], mut at: usize, types: &mut Vec<TypeMember>) -> Option<usize> {
    let mut key = Vec::new();
    loop {
        at = skip_ws(text, at);
        match text.get(at)? {
            b'}' => return Some(at + 1),
            b'"' => {}
            _ => return None,
        }
        key.clear();
        at = string(text, at, &mut key, KEY_CAP).done()?;
        at = skip_ws(text, at);
        if text.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(text, at + 1);
        if key.len() == 4 && key.eq_ignore_ascii_case(b"type") {
            let exact = key == b"type";
            if text.get(at) == Some(&b'"') {
                let mut value = Vec::new();
                at = string(text, at, &mut value, usize::MAX).done()?;
                types.push(TypeMember {
                    exact,
                    value: Some(value),
                });
            } else {
                types.push(TypeMember { exact, value: None });
                at = skip_value(text, at)?;
            }
        } else {
            at = skip_value(text, at)?;
        }
        at = skip_ws(text, at);
        match text.get(at)? {
            b',' => at += 1,
            b'}' => return Some(at + 1),
            _ => return None,
        }
    }
}

/// Keys are decoded only far enough to tell `type` from anything else.
const KEY_CAP: usize = 5;

/// How reading a string ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Str {
    /// At its closing quote; the index after it.
    Done(usize),
    /// The input ended first (inside the string or an escape).
    Unterminated,
    /// An escape that JSON does not have (`\R`): no JSON parser reads
    /// this string, so nothing it could spell counts.
    Broken,
}

impl Str {
    fn done(self) -> Option<usize> {
        match self {
            Str::Done(at) => Some(at),
            Str::Unterminated | Str::Broken => None,
        }
    }
}

/// Decodes the string starting at the quote at `at` into `out` (at most
/// `cap` bytes are kept; more than `cap` shows as `cap + 1` bytes, so that a
/// longer string never equals a shorter name). Escapes are decoded
/// leniently where parsers differ (a lone surrogate becomes U+FFFD) and
/// strictly where none does: an escape JSON does not have breaks the
/// string. So only `\u` can spell a letter, as the pre-check assumes.
fn string(text: &[u8], at: usize, out: &mut Vec<u8>, cap: usize) -> Str {
    let mut i = at + 1;
    let keep = |out: &mut Vec<u8>, bytes: &[u8]| {
        let room = cap.saturating_add(1).saturating_sub(out.len());
        out.extend_from_slice(&bytes[..bytes.len().min(room)]);
    };
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => return Str::Done(i + 1),
            b'\\' => {
                let Some(&e) = text.get(i + 1) else {
                    return Str::Unterminated;
                };
                if e == b'u' {
                    let Some(escape) = unicode_escape(&text[i..]) else {
                        return Str::Unterminated;
                    };
                    let Some((c, used)) = escape else {
                        return Str::Broken;
                    };
                    let mut buf = [0; 4];
                    keep(out, c.encode_utf8(&mut buf).as_bytes());
                    i += used;
                    continue;
                }
                let c = match e {
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'"' | b'\\' | b'/' => e,
                    _ => return Str::Broken,
                };
                keep(out, &[c]);
                i += 2;
            }
            _ => {
                keep(out, &[b]);
                i += 1;
            }
        }
    }
    Str::Unterminated
}

/// Reads `\uXXXX` (and a low surrogate's `\uXXXX` after a high one) at the
/// start of `text`: the character and the bytes used; `Some(None)` when
/// the digits are not hex (no JSON parser reads that); `None` when the
/// input ends inside the escape. A lone surrogate reads as U+FFFD.
fn unicode_escape(text: &[u8]) -> Option<Option<(char, usize)>> {
    let Some(first) = hex4(text, 0)? else {
        return Some(None);
    };
    if !(0xD800..0xDC00).contains(&first) {
        return Some(Some((
            char::from_u32(u32::from(first)).unwrap_or('\u{FFFD}'),
            6,
        )));
    }
    // A high surrogate: a low one must follow to make a character.
    let next = &text[6..];
    if next.len() < 6 && b"\\u".starts_with(&next[..next.len().min(2)]) {
        return None;
    }
    if next.starts_with(b"\\u") {
        if let Some(second) = hex4(text, 6)? {
            if (0xDC00..0xE000).contains(&second) {
                let c =
                    0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00);
                return Some(Some((char::from_u32(c).unwrap_or('\u{FFFD}'), 12)));
            }
        }
    }
    Some(Some(('\u{FFFD}', 6)))
}

/// The four hex digits of the `\u` escape at `at`: `None` when the input
/// ends first, `Some(None)` when they are not hex digits.
fn hex4(text: &[u8], at: usize) -> Option<Option<u16>> {
    let digits = text.get(at + 2..at + 6)?;
    Some(
        digits
            .iter()
            .all(u8::is_ascii_hexdigit)
            .then(|| std::str::from_utf8(digits).ok())
            .flatten()
            .and_then(|h| u16::from_str_radix(h, 16).ok()),
    )
}

/// Skips the value at `at` by its brackets and quotes alone; returns the
/// index after it, or `None` where the structure breaks.
fn skip_value(text: &[u8], at: usize) -> Option<usize> {
    match text.get(at)? {
        b'"' => string(text, at, &mut Vec::new(), 0).done(),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            while let Some(&b) = text.get(i) {
                match b {
                    b'"' => {
                        i = string(text, i, &mut Vec::new(), 0).done()?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            // A number or a literal: up to the next delimiter.
            let len = text[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(text.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

fn skip_ws(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

pub use crate::wire::Prefix;

/// Reads the first member of a message from its first bytes: a control
/// frame if that member's key is `type` (in some ASCII case) and its value
/// a string equal to one of `names` (escapes decoded).
pub fn first_member<N: AsRef<[u8]>>(prefix: &[u8], names: &[N]) -> Prefix {
    use Prefix::{Control, Data, NeedMore};
    let mut at = 0;
    if prefix.len() < BOM.len() && BOM.starts_with(prefix) {
        return NeedMore;
    }
    if prefix.starts_with(BOM) {
        at = BOM.len();
    }
    // Each step: the input may end (need more) or hold the wrong thing (data).
    let expect = |at: usize, byte: u8| match prefix.get(at) {
        None => Err(NeedMore),
        Some(&b) if b == byte => Ok(at + 1),
        Some(_) => Err(Data),
    };
    let step = || -> Result<Prefix, Prefix> {
        let at = expect(skip_ws(prefix, at), b'{')?;
        let at = skip_ws(prefix, at);
        let mut key = Vec::new();
        let read = string_start(prefix, at, &mut key, KEY_CAP)?;
        let key_ok = key.len() <= 4 && key.eq_ignore_ascii_case(&b"type"[..key.len()]);
        let at = match read {
            Str::Done(at) => at,
            Str::Unterminated if key_ok => return Err(NeedMore),
            Str::Unterminated | Str::Broken => return Err(Data),
        };
        if !(key_ok && key.len() == 4) {
            return Err(Data);
        }
        let at = expect(skip_ws(prefix, at), b':')?;
        let at = skip_ws(prefix, at);
        let longest = names.iter().map(|n| n.as_ref().len()).max().unwrap_or(0);
        let mut value = Vec::new();
        let read = string_start(prefix, at, &mut value, longest)?;
        Ok(match read {
            Str::Done(_) if names.iter().any(|n| n.as_ref() == value.as_slice()) => Control,
            Str::Done(_) => Data,
            Str::Unterminated if names.iter().any(|n| n.as_ref().starts_with(&value)) => NeedMore,
            Str::Unterminated | Str::Broken => Data,
        })
    };
    step().unwrap_or_else(|verdict| verdict)
}

/// [`string`] at `at`, which must be a quote: need more when the input
/// ends first, data when something else stands there.
fn string_start(text: &[u8], at: usize, out: &mut Vec<u8>, cap: usize) -> Result<Str, Prefix> {
    match text.get(at) {
        None => Err(Prefix::NeedMore),
        Some(b'"') => Ok(string(text, at, out, cap)),
        Some(_) => Err(Prefix::Data),
    }
}

#[cfg(test)]
mod tests;
