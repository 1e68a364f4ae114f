//! The header policy never lets a client's identity or forwarding header
//! through and never drops one that must pass: for any set of client
//! request headers, what goes upstream holds exactly the proxy's identity
//! headers and its own forwarding headers (inherited only from a trusted
//! peer), no hop-by-hop, handshake, reserved or stripped header, and every
//! other client header with all its values in order.
//!
//! Input: a flags byte (bit 0: the peer is a trusted proxy; bit 1:
//! `forward_authorization`; bit 2: `preserve_host`; bit 3: an auth cookie
//! `sid` is stripped), then header lines `name: value` separated by `\n`.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use wsguard::auth::Identity;
use wsguard::config::Config;
use wsguard::headers::{ClientRequest, HeaderPolicy};

const CONFIG: &str = r#"
[listener]
trusted_proxies = ["10.0.0.0/8"]
[upstream]
url = "ws://127.0.0.1:9"
strip_request_headers = ["X-Cdn-Secret"]
[upstream.identity_headers]
subject = "X-Who"
[upstream.claim_headers]
email = "X-User-Email"
[auth]
providers = []
"#;

/// The headers the proxy itself sets for a verified identity, with their values.
const IDENTITY: &[(&str, &str)] = &[
    ("x-who", "alice"),
    ("x-auth-issuer", "https://iss.example"),
    ("x-auth-expires", "4102444800"),
    ("x-auth-claims", "eyJlbWFpbCI6ImVAeCJ9"),
    ("x-auth-provider", "main"),
    ("x-user-email", "e@x"),
];

/// Forwarding headers: set by the proxy, inherited only from a trusted peer.
const FORWARDING: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Never forwarded from a client, whatever the configuration (the spec,
/// written out independently of `src/headers.rs`).
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "expect",
    "content-length",
    "x-real-ip",
    "true-client-ip",
    "forwarded",
    "x-request-id",
    "x-who",
    "x-user-email",
    "x-cdn-secret",
];

/// Header lines of the input; lines that are not a valid header are skipped.
fn headers(bytes: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in bytes.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// Names the client listed in `Connection` (comma lists over all lines).
fn connection_listed(map: &HeaderMap) -> Vec<String> {
    map.get_all("connection")
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|item| std::str::from_utf8(item).ok())
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

/// Whether the spec says a client header never goes upstream.
fn dropped(name: &str, listed: &[String], forward_authorization: bool) -> bool {
    DROPPED.contains(&name)
        || name.starts_with("x-auth-")
        || name.starts_with("x-forwarded-")
        || name.contains('_')
        || listed.iter().any(|l| l == name)
        || (name == "authorization" && !forward_authorization)
}

/// The cookie pairs of textual `Cookie` lines, other than `sid` when it is stripped.
fn cookie_pairs(map: &HeaderMap, strip_sid: bool) -> Vec<String> {
    map.get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !strip_sid || pair.split('=').next().map(str::trim) != Some("sid"))
        .map(str::to_owned)
        .collect()
}

fn values<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    map.get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let [flags, lines @ ..] = input else {
        return;
    };
    let (trusted, forward_auth, preserve_host, strip_sid) = (
        flags & 1 != 0,
        flags & 2 != 0,
        flags & 4 != 0,
        flags & 8 != 0,
    );
    let Ok(mut config) = Config::parse(CONFIG) else {
        panic!("the fixed configuration does not parse");
    };
    config.upstream.forward_authorization = forward_auth;
    config.upstream.preserve_host = preserve_host;
    let policy = HeaderPolicy::new(&config.upstream, &config.listener.trusted_proxies)
        .strip_cookie(strip_sid.then_some("sid"));
    let peer: SocketAddr = if trusted {
        ([10, 1, 2, 3], 5000).into()
    } else {
        ([192, 0, 2, 7], 5000).into()
    };
    let client = ClientRequest {
        peer,
        headers: headers(lines),
        path_and_query: "/".into(),
        subprotocol: None,
        tls: false,
    };
    let identity = Identity {
        sub: "alice".into(),
        iss: Some("https://iss.example".into()),
        exp: 4_102_444_800,
        claims_b64: "eyJlbWFpbCI6ImVAeCJ9".into(),
        provider: Arc::from("main"),
        issuer_pinned: true,
        kid: None,
    };
    let mut out = HeaderMap::new();
    policy.forward(&client, "rid", "http", &mut out);
    policy.identity(&identity, &mut out);

    // Identity headers: exactly the proxy's, once each.
    for (name, value) in IDENTITY {
        assert_eq!(values(&out, name), [value.as_bytes()], "{name}");
    }
    // Forwarding headers: once each; the proxy's own unless the peer is trusted.
    for name in FORWARDING {
        assert!(out.get_all(*name).iter().count() <= 1, "{name} twice");
    }
    let xff = out.get("x-forwarded-for").map(HeaderValue::as_bytes);
    if trusted {
        assert!(xff.is_some_and(|v| v.ends_with(b"10.1.2.3")), "{xff:?}");
    } else {
        assert_eq!(xff, Some(&b"192.0.2.7"[..]));
        assert_eq!(values(&out, "x-forwarded-proto"), [b"http"]);
        assert_eq!(values(&out, "x-request-id"), [b"rid"]);
        let host = client.headers.get("host").map(HeaderValue::as_bytes);
        assert_eq!(out.get("x-forwarded-host").map(HeaderValue::as_bytes), host);
    }
    // Host: the client's last line when preserved, else none (the upstream's own is set later).
    let client_host = client.headers.get_all("host").iter().last();
    let expected_host = if preserve_host { client_host } else { None };
    assert_eq!(out.get("host"), expected_host);

    let listed = connection_listed(&client.headers);
    let own = |name: &str| IDENTITY.iter().any(|(n, _)| *n == name) || FORWARDING.contains(&name);
    // Nothing the spec drops goes upstream (besides what the proxy set itself).
    for name in out.keys() {
        let name = name.as_str();
        if own(name) || name == "host" {
            continue;
        }
        assert!(
            !dropped(name, &listed, forward_auth),
            "{name} was forwarded"
        );
    }
    // Everything else passes, every value in order.
    for name in client.headers.keys() {
        let n = name.as_str();
        if dropped(n, &listed, forward_auth) || own(n) || n == "host" || n == "cookie" {
            continue;
        }
        assert_eq!(values(&out, n), values(&client.headers, n), "{n}");
    }
    // Cookies: every pair passes, except the auth cookie when it is stripped.
    if !listed.iter().any(|l| l == "cookie") {
        assert_eq!(
            cookie_pairs(&out, false),
            cookie_pairs(&client.headers, strip_sid),
            "cookies"
        );
    }
});
