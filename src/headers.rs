//! Which request headers go upstream: hop-by-hop and handshake headers are
//! dropped, identity and forwarding headers a client sent are removed (so a
//! client can never spoof them), the verified identity is added, and
//! `X-Forwarded-*` and `X-Request-Id` are set. Shared by the WebSocket and
//! the plain HTTP paths. Also the one hop-by-hop list and the one reader of
//! comma-separated header lists ([`list_items`], [`has_token`]).

use std::net::SocketAddr;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, COOKIE, HOST};
use http::HeaderMap;
use ipnet::IpNet;
use serde_json::Value;

use crate::auth::Identity;
use crate::config::UpstreamConfig;

/// Hop-by-hop headers (RFC 7230 §6.1, plus the non-standard `Keep-Alive`
/// and `Proxy-Connection`): never passed on, in either direction, and
/// neither is any header named in `Connection`.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Client request headers never forwarded besides the hop-by-hop ones: the
/// WebSocket handshake's own (the proxy makes its own handshake), `Expect`
/// (the proxy answers `100 Continue` itself), and `Content-Length` (an
/// upgrade has no body; the pass-through path sets the length hyper parsed,
/// normalized).
const NOT_FORWARDED: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "expect",
    "content-length",
];

/// The items of a comma-separated header list (RFC 7230 §7) over all its
/// header lines, in order (§3.2.2): split on `,`, surrounding whitespace
/// trimmed, empty items skipped. Quoted strings are not parsed: none
/// of the lists read here has commas inside quotes.
pub fn list_items<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|line| line.as_bytes().split(|b| *b == b','))
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// Whether a comma-separated header list holds `token`, case-insensitively
/// (for lists of case-insensitive tokens such as `Connection` and `Upgrade`).
pub fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    list_items(headers, name).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// The header names listed in `Connection` (hop-by-hop for this message).
pub fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    list_items(headers, CONNECTION.as_str())
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect()
}

/// Removes the hop-by-hop headers and those named in `Connection`
/// (used on the upstream's responses).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_listed(headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Name prefixes a client may never send: the proxy's identity namespace and
/// forwarding headers.
const RESERVED_PREFIXES: &[&str] = &["x-auth-", "x-forwarded-"];
/// Other client-address headers a backend might trust.
const RESERVED_NAMES: &[&str] = &["x-real-ip", "true-client-ip", "forwarded", "x-request-id"];

/// Whether a client-sent header is one the client may not set. Names with
/// `_` are refused too: many servers (CGI, WSGI, Rack) read `X_Auth_Subject`
/// as `X-Auth-Subject`.
fn client_may_not_send(name: &str) -> bool {
    name.contains('_')
        || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        || RESERVED_NAMES.contains(&name)
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
const X_REQUEST_ID: &str = "x-request-id";
const FORWARDED: &str = "forwarded";

/// The forwarding rules, built once from the configuration.
#[derive(Debug)]
pub struct HeaderPolicy {
    /// Peers whose forwarding headers are trusted.
    trusted: Vec<IpNet>,
    /// Identity header names (sub, iss, exp, claims, provider) in that
    /// order; `None` = off.
    identity: [Option<HeaderName>; 5],
    /// Claim → header name.
    claim_headers: Vec<(String, HeaderName)>,
    /// Every name a client may not send: identity, claim and forwarding
    /// headers, and `upstream.strip_request_headers`.
    reserved: Vec<HeaderName>,
    /// Pass the client's `Authorization`.
    forward_authorization: bool,
    /// Keep the client's `Host`.
    preserve_host: bool,
    /// The auth cookie (`auth.legacy.cookie`), removed from `Cookie`.
    auth_cookie: Option<String>,
}

/// What the proxy knows of the client's request.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The request headers as received.
    pub headers: HeaderMap,
    /// Path and query as received.
    pub path_and_query: String,
    /// The subprotocol agreed with the client, if any.
    pub subprotocol: Option<HeaderValue>,
    /// The client came over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
}

impl ClientRequest {
    /// `X-Forwarded-Proto` for this client: `https` over TLS, else `http`.
    pub fn proto(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

fn name(s: &str) -> Option<HeaderName> {
    if s.is_empty() {
        return None;
    }
    HeaderName::from_bytes(s.as_bytes()).ok()
}

impl HeaderPolicy {
    /// Builds the rules; header names were checked by [`crate::config::Config::validate`].
    pub fn new(config: &UpstreamConfig, trusted: &[IpNet]) -> HeaderPolicy {
        let ids = &config.identity_headers;
        let identity = [
            name(&ids.subject),
            name(&ids.issuer),
            name(&ids.expires),
            name(&ids.claims),
            name(&ids.provider),
        ];
        let claim_headers: Vec<(String, HeaderName)> = config
            .claim_headers
            .iter()
            .filter_map(|(claim, header)| Some((claim.clone(), name(header)?)))
            .collect();
        let mut reserved: Vec<HeaderName> = identity.iter().flatten().cloned().collect();
        reserved.extend(claim_headers.iter().map(|(_, h)| h.clone()));
        reserved.extend(config.strip_request_headers.iter().filter_map(|h| name(h)));
        for fixed in [
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            X_REQUEST_ID,
            FORWARDED,
        ] {
            reserved.push(HeaderName::from_static(fixed));
        }
        HeaderPolicy {
            trusted: trusted.to_vec(),
            identity,
            claim_headers,
            reserved,
            forward_authorization: config.forward_authorization,
            preserve_host: config.preserve_host,
            auth_cookie: None,
        }
    }

    /// Removes the cookie `name` (the auth cookie) from every `Cookie`
    /// header sent upstream; the other cookies pass.
    pub fn strip_cookie(mut self, name: Option<&str>) -> HeaderPolicy {
        self.auth_cookie = name.map(str::to_owned);
        self
    }

    /// The trusted proxies (`listener.trusted_proxies`).
    pub fn trusted(&self) -> &[IpNet] {
        &self.trusted
    }

    /// Whether the peer is a trusted proxy.
    fn is_trusted(&self, peer: &SocketAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&peer.ip()))
    }

    /// Copies the client's end-to-end headers into `out` and sets the
    /// forwarding headers. `out` already holds what the upstream request
    /// needs for itself (for WebSocket, the handshake headers and `Host`).
    pub fn forward(
        &self,
        client: &ClientRequest,
        request_id: &str,
        proto: &str,
        out: &mut HeaderMap,
    ) {
        let trusted = self.is_trusted(&client.peer);
        let listed = connection_listed(&client.headers);
        for (key, value) in &client.headers {
            if self.not_forwarded(key, &listed) {
                continue;
            }
            if key == HOST {
                if self.preserve_host {
                    out.insert(HOST, value.clone());
                }
                continue;
            }
            if let (true, Some(auth)) = (key == COOKIE, &self.auth_cookie) {
                if let Some(kept) = without_cookie(value, auth) {
                    out.append(COOKIE, kept);
                }
                continue;
            }
            out.append(key.clone(), value.clone());
        }
        let xff = forwarded_for(&client.headers, trusted, client.peer);
        insert(out, X_FORWARDED_FOR, xff);
        // From a trusted proxy, the last item of all lines: the one the
        // nearest hop wrote (a hop that appends a line leaves the client's
        // own line before it).
        let inherited = |n: &str| {
            trusted
                .then(|| list_items(&client.headers, n).last())
                .flatten()
                .and_then(|v| HeaderValue::from_bytes(v).ok())
        };
        match inherited(X_FORWARDED_PROTO) {
            Some(v) => insert(out, X_FORWARDED_PROTO, v),
            None => set(out, X_FORWARDED_PROTO, proto),
        }
        if let Some(v) = inherited(X_FORWARDED_HOST).or_else(|| client.headers.get(HOST).cloned()) {
            insert(out, X_FORWARDED_HOST, v);
        }
        match inherited(X_REQUEST_ID) {
            Some(v) => insert(out, X_REQUEST_ID, v),
            None => set(out, X_REQUEST_ID, request_id),
        }
    }

    /// Whether a client header stays behind: hop-by-hop (or named in
    /// `Connection`, `listed`), the handshake's own, one the client may not
    /// set, one of `upstream.strip_request_headers`, or `Authorization`
    /// unless it is forwarded.
    fn not_forwarded(&self, key: &HeaderName, listed: &[HeaderName]) -> bool {
        let lower = key.as_str();
        HOP_BY_HOP.contains(&lower)
            || NOT_FORWARDED.contains(&lower)
            || client_may_not_send(lower)
            || listed.contains(key)
            || self.reserved.contains(key)
            || (key == AUTHORIZATION && !self.forward_authorization)
    }

    /// Sets the identity headers for a verified identity. The issuer is
    /// sent only when the provider pins one: otherwise whoever holds the
    /// provider's key chooses `iss`. The provider's name is always sent.
    pub fn identity(&self, identity: &Identity, out: &mut HeaderMap) {
        let [sub, iss, exp, claims, provider] = &self.identity;
        if let Some(h) = sub {
            out.insert(h.clone(), encode_value(&identity.sub));
        }
        if let (Some(h), Some(v), true) = (iss, &identity.iss, identity.issuer_pinned) {
            out.insert(h.clone(), encode_value(v));
        }
        if let Some(h) = provider {
            out.insert(h.clone(), encode_value(&identity.provider));
        }
        if let Some(h) = exp {
            out.insert(h.clone(), HeaderValue::from(identity.exp));
        }
        if let Some(h) = claims {
            if let Ok(v) = HeaderValue::from_str(&identity.claims_b64) {
                out.insert(h.clone(), v);
            }
        }
        if self.claim_headers.is_empty() {
            return;
        }
        let all = identity.claims();
        for (claim, header) in &self.claim_headers {
            if let Some(value) = all.get(claim) {
                out.insert(header.clone(), claim_value(value));
            }
        }
    }
}

/// A `Cookie` line without the cookie `name`; `None` when nothing is left.
/// A line that is not text is dropped (it cannot be checked).
fn without_cookie(line: &HeaderValue, name: &str) -> Option<HeaderValue> {
    let text = line.to_str().ok()?;
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| pair.split('=').next().map(str::trim) != Some(name))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

/// `X-Forwarded-For` for the upstream: the peer's address, appended to
/// every `X-Forwarded-For` line a trusted peer sent, joined in order
/// (RFC 7230 §3.2.2), so that no line is lost.
fn forwarded_for(headers: &HeaderMap, trusted: bool, peer: SocketAddr) -> HeaderValue {
    let peer_ip = peer.ip().to_string();
    if !trusted {
        return encode_value(&peer_ip);
    }
    let mut joined: Vec<u8> = Vec::new();
    for item in list_items(headers, X_FORWARDED_FOR) {
        joined.extend_from_slice(item);
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(peer_ip.as_bytes());
    // Items of valid header values joined by ", " form a valid value.
    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| encode_value(&peer_ip))
}

fn set(out: &mut HeaderMap, name: &'static str, value: &str) {
    out.insert(HeaderName::from_static(name), encode_value(value));
}

fn insert(out: &mut HeaderMap, name: &'static str, value: HeaderValue) {
    out.insert(HeaderName::from_static(name), value);
}

/// A claim as a header value: strings as they are, arrays comma-joined,
/// anything else as compact JSON; always through [`encode_value`].
pub fn claim_value(value: &Value) -> HeaderValue {
    let text = match value {
        Value::String(s) => percent_encode(s, false),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => percent_encode(s, true),
                other => percent_encode(&other.to_string(), true),
            })
            .collect::<Vec<_>>()
            .join(","),
        other => percent_encode(&other.to_string(), false),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A string as a header value, percent-encoded where needed.
pub fn encode_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(&percent_encode(s, false))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Percent-encodes `%`, bytes outside printable ASCII, and (in list items)
/// `,`. Printable ASCII without `%` passes unchanged, so ordinary values
/// read as they are, and any value decodes with standard percent-decoding.
pub fn percent_encode(s: &str, list_item: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = (0x20..0x7f).contains(&b) && b != b'%' && !(list_item && b == b',');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reserved_client_headers() {
        for name in [
            "x_auth_subject",
            "x-auth-roles",
            "x-forwarded-port",
            "x-real-ip",
            "forwarded",
        ] {
            assert!(client_may_not_send(name), "{name}");
        }
        for name in ["cookie", "origin", "x-custom", "authorization"] {
            assert!(!client_may_not_send(name), "{name}");
        }
    }

    #[test]
    fn comma_lists_span_lines() {
        let mut h = HeaderMap::new();
        for line in ["keep-alive, ,Upgrade", "", " X-Custom "] {
            h.append(CONNECTION, HeaderValue::from_static(line));
        }
        let items: Vec<&[u8]> = list_items(&h, "connection").collect();
        assert_eq!(items, [&b"keep-alive"[..], b"Upgrade", b"X-Custom"]);
        assert!(has_token(&h, "Connection", "upgrade"));
        assert!(!has_token(&h, "connection", "close"));
        assert_eq!(connection_listed(&h).len(), 3);
    }

    #[test]
    fn auth_cookie_is_removed() {
        let line = HeaderValue::from_static("a=1; sid=secret;b=2");
        assert_eq!(
            without_cookie(&line, "sid"),
            Some(HeaderValue::from_static("a=1; b=2"))
        );
        assert_eq!(
            without_cookie(&HeaderValue::from_static("sid=x"), "sid"),
            None
        );
    }

    #[test]
    fn claim_encoding() {
        assert_eq!(claim_value(&json!("a@b.c")), "a@b.c");
        assert_eq!(claim_value(&json!(["admin", "x,y"])), "admin,x%2Cy");
        assert_eq!(claim_value(&json!("é\r\n100%")), "%C3%A9%0D%0A100%25");
        assert_eq!(claim_value(&json!({"k": 1})), "{\"k\":1}");
        assert_eq!(claim_value(&json!(true)), "true");
    }
}
