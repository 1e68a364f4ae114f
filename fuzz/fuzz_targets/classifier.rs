//! The first-frame/REAUTH classifier never panics and never lets a control
//! frame through as data: a text that strict JSON reads as an object whose
//! `type` is a dialect name is never `Data`; the large-message sniffer
//! (first member of a prefix) never changes its verdict as bytes arrive,
//! and a `Control` verdict is never `Data` for the whole message.
//!
//! Input: a selector byte (bit 0: the identity notice is reserved; bit 1:
//! a second dialect with other names), then the text (lossy UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wsguard::config::DialectConfig;
use wsguard::protocol::{ClientFrame, Dialect};
use wsguard::wire::{Prefix, Sniff};

/// The default dialect, or one with other names (a dotted token path too).
fn dialect_config(other: bool) -> DialectConfig {
    let mut config = DialectConfig::default();
    if other {
        config.auth = vec!["hello".into()];
        config.reauth = vec!["re.auth:v2".into(), "hello".into()];
        config.identity_refreshed = "whoami".into();
        config.token_path = "a.b.c".into();
    }
    config
}

/// The top-level `type` strict JSON reads (the last one, as serde_json keeps it).
fn strict_type(text: &str) -> Option<String> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Object(mut map) => match map.remove("type")? {
            Value::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fuzz_target!(|input: &[u8]| {
    let [flags, bytes @ ..] = input else {
        return;
    };
    let config = dialect_config(flags & 2 != 0);
    let reserve = flags & 1 != 0;
    let dialect = Dialect::new(&config, reserve);
    let text = String::from_utf8_lossy(bytes);
    let first = dialect.classify_first(&text);
    let later = dialect.classify_later(&text);

    if let Some(kind) = strict_type(&text) {
        let reserved = reserve && kind == config.identity_refreshed;
        if config.auth.contains(&kind) || reserved {
            assert_ne!(
                first,
                ClientFrame::Data,
                "first frame of type {kind:?} taken as data"
            );
        }
        if config.reauth.contains(&kind) || reserved {
            assert_ne!(
                later,
                ClientFrame::Data,
                "REAUTH of type {kind:?} taken as data"
            );
        }
    }

    // The sniffer, fed the message's bytes as they arrive, settles once.
    let raw = text.as_bytes();
    let mut settled: Option<(usize, Prefix)> = None;
    for end in 0..=raw.len().min(512) {
        let verdict = dialect.first_member(&raw[..end]);
        match (settled, verdict) {
            (None, Prefix::NeedMore) => {}
            (None, v) => settled = Some((end, v)),
            (Some((_, was)), v) => assert_eq!(v, was, "verdict changed at {end} bytes"),
        }
    }
    if let Some((_, Prefix::Control)) = settled {
        assert_ne!(
            later,
            ClientFrame::Data,
            "sniffed as control, classified as data"
        );
    }
});
