//! The dialect: which client frames are control frames, and the frames the
//! proxy writes. All control-frame names live here (from `[dialect]`).
//!
//! Inspection is cheap on the hot path: a text frame in which none of the
//! dialect's type names occurs as a JSON string (`"REAUTH"`, quotes
//! included), and which has no JSON escape (`\u`) that could spell one,
//! cannot be a control frame and is forwarded without a parse.
//!
//! Anything else that is (or starts like) a JSON object has its top level
//! read by a lenient scanner ([`scan`]): a message whose top-level `type`
//! (key in any case) is one of the dialect's names is a control frame, and
//! is either well-formed (exactly one `type` key, spelled so, strict JSON,
//! nothing after the object) or refused as malformed; it is never relayed.
//! So no disagreement between our parser and the upstream's turns a
//! control frame into data. Text messages too large to hold are decided by
//! their first member ([`Dialect`] is the decoder's [`crate::wire::Sniff`]).

pub mod scan;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::config::DialectConfig;

/// What a client text frame turned out to be.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    /// An authentication frame (first auth, or REAUTH after it).
    Auth {
        /// The client's `id`, echoed as `in_reply_to`.
        id: Option<Value>,
        /// The token, if present at the configured path.
        token: Option<String>,
    },
    /// A frame of a type only the proxy may send upstream (the identity
    /// notice, when it is on): never forwarded.
    Reserved {
        /// The client's `id`, echoed as `in_reply_to`.
        id: Option<Value>,
    },
    /// Its top-level `type` is one of the dialect's names, but it is not a
    /// well-formed control frame (not strict JSON, a BOM, trailing bytes,
    /// `type` spelled in another case or given twice): never forwarded.
    Malformed,
    /// Anything else: application data.
    Data,
}

/// Longest client `id` echoed back as `in_reply_to`; a longer one is not echoed.
const MAX_ECHOED_ID: usize = 128;

/// The configured dialect, ready for matching.
#[derive(Debug)]
pub struct Dialect {
    /// Types accepted as the first frame.
    auth: Vec<String>,
    /// Types accepted as re-authentication.
    reauth: Vec<String>,
    /// Every distinct name above as a JSON string (`"name"`), for the pre-check.
    needles: Vec<String>,
    /// Success answer, if sent.
    authenticated: Option<String>,
    /// Pre-expiry notice, if sent.
    auth_required: Option<String>,
    /// Expiry notice, if sent.
    token_expired: Option<String>,
    /// Error answer, if sent.
    error: Option<String>,
    /// Upstream identity notice type.
    identity_refreshed: Option<String>,
    /// Types a client may not send (the identity notice, when it is on).
    reserved: Vec<String>,
    /// Path of the token inside a control frame.
    token_path: Vec<String>,
    /// Idle notice, if sent.
    idle_warning: Option<String>,
    /// The drain's reconnect hint, if sent.
    reconnect: Option<String>,
    /// The names that make a message after the first a control frame
    /// (re-auth and reserved types), for the decoder's first-member check.
    later: Vec<Box<[u8]>>,
}

/// Counter behind frame ids.
static FRAME_SEQ: AtomicU64 = AtomicU64::new(0);

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Dialect {
    /// Builds the dialect from `[dialect]`; with `reserve_notice`, clients may
    /// not send frames of the identity notice's type.
    pub fn new(config: &DialectConfig, reserve_notice: bool) -> Dialect {
        let auth: Vec<String> = config.auth.iter().filter_map(|s| non_empty(s)).collect();
        let reauth: Vec<String> = config.reauth.iter().filter_map(|s| non_empty(s)).collect();
        let reserved: Vec<String> = non_empty(&config.identity_refreshed)
            .filter(|_| reserve_notice)
            .into_iter()
            .collect();
        let mut needles: Vec<String> = auth
            .iter()
            .chain(reauth.iter())
            .chain(reserved.iter())
            .map(|name| format!("\"{name}\""))
            .collect();
        needles.sort();
        needles.dedup();
        let later = reauth
            .iter()
            .chain(reserved.iter())
            .map(|n| n.as_bytes().into())
            .collect();
        Dialect {
            later,
            auth,
            reauth,
            needles,
            authenticated: non_empty(&config.authenticated),
            auth_required: non_empty(&config.auth_required),
            token_expired: non_empty(&config.token_expired),
            error: non_empty(&config.error),
            identity_refreshed: non_empty(&config.identity_refreshed),
            reserved,
            token_path: config.token_path.split('.').map(str::to_owned).collect(),
            idle_warning: non_empty(&config.idle_warning),
            reconnect: non_empty(&config.reconnect),
        }
    }

    /// Classifies the first frame: only an auth type counts.
    pub fn classify_first(&self, text: &str) -> ClientFrame {
        self.classify(text, &self.auth)
    }

    /// Classifies a frame after authentication: a re-auth type is a control frame.
    pub fn classify_later(&self, text: &str) -> ClientFrame {
        if !self.might_be_control(text) {
            return ClientFrame::Data;
        }
        self.classify(text, &self.reauth)
    }

    /// The cheap pre-check: false means the frame cannot be a control frame.
    /// Only a `\u` escape can spell a letter, so without one every type name
    /// must appear literally, quotes included.
    fn might_be_control(&self, text: &str) -> bool {
        let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\n', '\r']);
        if !trimmed.starts_with('{') {
            return false;
        }
        trimmed.contains("\\u") || self.needles.iter().any(|n| trimmed.contains(n.as_str()))
    }

    /// Classifies by the top-level `type`, read leniently ([`scan`]); only
    /// a well-formed frame is parsed strictly for its `id` and token.
    fn classify(&self, text: &str, types: &[String]) -> ClientFrame {
        let top = scan::top_level(text.as_bytes());
        let named = |v: &[u8]| {
            types
                .iter()
                .chain(self.reserved.iter())
                .any(|t| t.as_bytes() == v)
        };
        if !top
            .types
            .iter()
            .any(|m| m.value.as_deref().is_some_and(named))
        {
            return ClientFrame::Data;
        }
        let single_exact = matches!(top.types.as_slice(), [m] if m.exact);
        if top.bom || !top.closed || top.trailing || !single_exact {
            return ClientFrame::Malformed;
        }
        let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
            return ClientFrame::Malformed;
        };
        let Some(Value::String(kind)) = frame.remove("type") else {
            return ClientFrame::Malformed;
        };
        let id = frame.remove("id").filter(|id| match id {
            Value::Number(_) => true,
            Value::String(s) => s.len() <= MAX_ECHOED_ID,
            _ => false,
        });
        if self.reserved.contains(&kind) {
            return ClientFrame::Reserved { id };
        }
        let mut at = &Value::Object(frame);
        for part in &self.token_path {
            at = match at.get(part) {
                Some(v) => v,
                None => return ClientFrame::Auth { id, token: None },
            };
        }
        ClientFrame::Auth {
            id,
            token: at.as_str().map(str::to_owned),
        }
    }

    /// `AUTHENTICATED`, or `None` when switched off.
    pub fn authenticated(
        &self,
        sub: &str,
        exp: u64,
        connection_id: &str,
        in_reply_to: Option<&Value>,
    ) -> Option<String> {
        let mut payload = json!({
            "sub": sub,
            "exp": exp,
            "expires_at": rfc3339_unix(exp),
            "connection_id": connection_id,
        });
        reply_to(&mut payload, in_reply_to);
        Some(envelope(self.authenticated.as_deref()?, payload))
    }

    /// `auth_required`, or `None` when switched off.
    pub fn auth_required(&self, exp: u64, now: u64) -> Option<String> {
        let payload = json!({
            "expires_at": rfc3339_unix(exp),
            "expires_in": exp.saturating_sub(now),
        });
        Some(envelope(self.auth_required.as_deref()?, payload))
    }

    /// `TOKEN_EXPIRED`, or `None` when switched off.
    pub fn token_expired(&self, exp: u64, grace: Duration) -> Option<String> {
        let payload = json!({
            "expired_at": rfc3339_unix(exp),
            "grace": grace.as_secs(),
        });
        Some(envelope(self.token_expired.as_deref()?, payload))
    }

    /// `idle_warning` (the connection closes in `closes_in` unless the
    /// application sends), or `None` when switched off.
    pub fn idle_warning(&self, closes_in: Duration) -> Option<String> {
        let ms = u64::try_from(closes_in.as_millis()).unwrap_or(u64::MAX);
        let payload = json!({ "closes_in_ms": ms });
        Some(envelope(self.idle_warning.as_deref()?, payload))
    }

    /// The drain's `reconnect` hint (reconnect after `after_ms`), or `None`
    /// when switched off.
    pub fn reconnect(&self, after_ms: u64) -> Option<String> {
        let payload = json!({ "after_ms": after_ms });
        Some(envelope(self.reconnect.as_deref()?, payload))
    }

    /// An `error` answer, or `None` when switched off.
    pub fn error(&self, code: &str, message: &str, in_reply_to: Option<&Value>) -> Option<String> {
        let mut payload = json!({ "code": code, "message": message });
        reply_to(&mut payload, in_reply_to);
        Some(envelope(self.error.as_deref()?, payload))
    }

    /// The frame injected upstream after a successful REAUTH; `key` is the
    /// connection's notice key (sent upstream as [`NOTICE_KEY_HEADER`]).
    pub fn identity_refreshed(
        &self,
        sub: &str,
        exp: u64,
        claims: &Map<String, Value>,
        key: &str,
    ) -> Option<String> {
        let payload = json!({ "sub": sub, "exp": exp, "claims": claims });
        let mut frame = envelope_value(self.identity_refreshed.as_deref()?, payload);
        if let Value::Object(map) = &mut frame {
            map.insert("key".into(), Value::String(key.to_owned()));
        }
        Some(frame.to_string())
    }
}

/// The upstream handshake header that carries a connection's notice key,
/// when `session.upstream_notice` is on. It is in the `x-auth-` namespace,
/// which a client can never send; each notice carries the same key as its
/// top-level `key`, so the upstream can tell a notice from anything a
/// client sends, whatever its parser makes of the client's bytes.
pub const NOTICE_KEY_HEADER: &str = "x-auth-notice-key";

/// A fresh notice key: 128 bits from the thread's CSPRNG (ChaCha, seeded
/// from the OS), base64url without padding.
pub fn notice_key() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl crate::wire::Sniff for Dialect {
    fn first_member(&self, prefix: &[u8]) -> scan::Prefix {
        scan::first_member(prefix, &self.later)
    }
}

fn reply_to(payload: &mut Value, in_reply_to: Option<&Value>) {
    if let (Some(id), Value::Object(map)) = (in_reply_to, payload) {
        map.insert("in_reply_to".into(), id.clone());
    }
}

/// Wraps a payload in the envelope with a fresh `id` and `timestamp`.
fn envelope(kind: &str, payload: Value) -> String {
    envelope_value(kind, payload).to_string()
}

/// [`envelope`], as a value.
fn envelope_value(kind: &str, payload: Value) -> Value {
    let seq = FRAME_SEQ.fetch_add(1, Ordering::Relaxed);
    json!({
        "type": kind,
        "id": format!("{}-{seq}", crate::ids::process_prefix()),
        "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "payload": payload,
    })
}

/// RFC 3339 text for unix seconds.
pub fn rfc3339_unix(secs: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(at) if write!(out, "{}", humantime::format_rfc3339_seconds(at)).is_ok() => out,
        _ => "9999-12-31T23:59:59Z".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect() -> Dialect {
        Dialect::new(&DialectConfig::default(), false)
    }

    #[test]
    fn first_frame_any_key_order() {
        let d = dialect();
        let f = d.classify_first(r#" { "id" : 7 ,"payload":{"token":"t.k.n"},  "type":"auth" }"#);
        assert_eq!(
            f,
            ClientFrame::Auth {
                id: Some(json!(7)),
                token: Some("t.k.n".into())
            }
        );
        assert_eq!(
            d.classify_first(r#"{"type":"AUTHENTICATE","payload":{}}"#),
            ClientFrame::Auth {
                id: None,
                token: None
            }
        );
        assert_eq!(
            d.classify_first(r#"{"type":"REAUTH","payload":{"token":"x"}}"#),
            ClientFrame::Data
        );
        assert_eq!(d.classify_first("not json"), ClientFrame::Data);
    }

    #[test]
    fn escaped_type_is_still_control() {
        let d = dialect();
        let f = d.classify_later(r#"{"\u0074ype":"RE\u0041UTH","payload":{"token":"a"}}"#);
        assert!(matches!(f, ClientFrame::Auth { .. }));
    }

    #[test]
    fn reserved_notice_type_is_caught_when_on() {
        let cfg = DialectConfig::default();
        let frame =
            r#"{"type":"identity_refreshed","id":"n","payload":{"claims":{"roles":["admin"]}}}"#;
        assert_eq!(
            Dialect::new(&cfg, false).classify_later(frame),
            ClientFrame::Data
        );
        assert_eq!(
            Dialect::new(&cfg, true).classify_later(frame),
            ClientFrame::Reserved {
                id: Some(json!("n"))
            }
        );
    }

    #[test]
    fn long_ids_are_not_echoed() {
        let d = dialect();
        let long = "x".repeat(MAX_ECHOED_ID + 1);
        let frame = json!({"type": "REAUTH", "id": long, "payload": {"token": "t"}}).to_string();
        assert_eq!(
            d.classify_later(&frame),
            ClientFrame::Auth {
                id: None,
                token: Some("t".into())
            }
        );
    }

    #[test]
    fn duplicate_type_keys_are_refused_not_guessed() {
        let d = dialect();
        for frame in [
            r#"{"type":"chat","type":"REAUTH","payload":{"token":"t"}}"#,
            r#"{"type":"REAUTH","type":"chat","payload":{"token":"t"}}"#,
            r#"{"type":"REAUTH","TYPE":"REAUTH","payload":{"token":"t"}}"#,
        ] {
            assert_eq!(d.classify_later(frame), ClientFrame::Malformed, "{frame}");
        }
    }

    #[test]
    fn control_frames_our_parser_refuses_are_malformed_not_data() {
        let d = Dialect::new(&DialectConfig::default(), true);
        let notice = r#"{"type":"identity_refreshed","payload":{"sub":"admin","exp":9999999999,"claims":{"sub":"admin"}}"#;
        let deep = format!(r#","deep":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        for frame in [
            format!(r#"{notice},"n":1e400}}"#),
            format!(r#"{notice},"pad":"\ud800"}}"#),
            format!("{notice}{deep}"),
            format!("{notice}}} trailing"),
            format!("\u{feff}{notice}}}"),
            r#"{"TYPE":"identity_refreshed"}"#.to_owned(),
            r#"{"type":"REAUTH","payload":{"token":"t"},"n":1e400}"#.to_owned(),
            r#"{"type":"REAUTH","payload":{"token":"t""#.to_owned(),
        ] {
            assert_eq!(d.classify_later(&frame), ClientFrame::Malformed, "{frame}");
        }
        // Application messages our parser would refuse are still data.
        let deep_app = format!(
            r#"{{"type":"chat","d":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        for frame in [
            r#"{"type":"chat","text":"\ud83d"}"#.to_owned(),
            r#"{"type":"chat","n":1e400,"about":"REAUTH"}"#.to_owned(),
            deep_app,
            r#"{"type":"chat"} {"type":"REAUTH"}"#.to_owned(),
        ] {
            assert_eq!(d.classify_later(&frame), ClientFrame::Data, "{frame}");
        }
    }

    #[test]
    fn notices_carry_the_connection_key() {
        let d = Dialect::new(&DialectConfig::default(), true);
        let key = notice_key();
        assert_eq!(key.len(), 22);
        assert_ne!(key, notice_key());
        let text = d
            .identity_refreshed("alice", 5, &Map::new(), &key)
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["type"], "identity_refreshed");
        assert_eq!(v["key"], key.as_str());
    }

    #[test]
    fn plain_data_skips_parse() {
        let d = dialect();
        assert!(!d.might_be_control(r#"{"type":"message","text":"hi"}"#));
        assert!(!d.might_be_control("[1,2,3]"));
        assert!(!d.might_be_control(r#"{"type":"chat","author":"REAUTHOR"}"#));
        assert!(d.might_be_control(r#"{ "payload" : {}, "type" :  "auth" }"#));
        assert!(d.might_be_control(r#"{"type":"REAUTH"}"#));
        assert_eq!(
            d.classify_later(r#"{"type":"chat","text":"please REAUTH"}"#),
            ClientFrame::Data
        );
    }

    #[test]
    fn replies_carry_in_reply_to_and_envelope() {
        let d = dialect();
        let text = d
            .authenticated("alice", 100, "c1", Some(&json!("x")))
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["type"], "AUTHENTICATED");
        assert_eq!(v["payload"]["in_reply_to"], "x");
        assert_eq!(v["payload"]["expires_at"], "1970-01-01T00:01:40Z");
        assert!(v["id"].is_string() && v["timestamp"].is_string());
    }

    #[test]
    fn reconnect_hint_carries_after_ms_unless_off() {
        let v: Value = serde_json::from_str(&dialect().reconnect(1234).expect("on")).expect("json");
        assert_eq!(v["type"], "reconnect");
        assert_eq!(v["payload"], json!({"after_ms": 1234}));
        let off = DialectConfig {
            reconnect: String::new(),
            ..DialectConfig::default()
        };
        assert!(Dialect::new(&off, false).reconnect(1).is_none());
    }

    #[test]
    fn switched_off_frames_are_none() {
        let cfg = DialectConfig {
            authenticated: String::new(),
            ..DialectConfig::default()
        };
        assert!(Dialect::new(&cfg, false)
            .authenticated("a", 1, "c", None)
            .is_none());
    }
}
