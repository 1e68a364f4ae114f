//! What the upstream is told: identity headers (X-Auth-*), configured claim
//! headers and their encoding, X-Forwarded-* and X-Request-Id (with and
//! without trusted proxies), spoofing by the client, end-to-end headers,
//! Authorization/Host/token forwarding options, token query parameters,
//! and the plain HTTP path (pass-through, bad upgrade, upstream down).

mod support;
use support::requests::*;
use support::*;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::SinkExt;
use http::HeaderValue;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::client::Request;

/// How long to watch for an upstream request that must not come.
const NOTHING: Duration = Duration::from_millis(400);

/// Sets a header on a client request (replacing one of the same name).
fn with(mut request: Request, name: &'static str, value: &str) -> Request {
    request
        .headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("header value"));
    request
}

/// Sends the auth frame on `ws` and returns the `AUTHENTICATED` payload.
async fn authenticate(ws: &mut Ws, token: &str) -> Value {
    ws.send(auth_frame(token)).await.expect("send auth");
    let v = recv_json(ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    v["payload"].clone()
}

/// All values of a header at the upstream.
fn all(up: &UpConn, name: &str) -> Vec<String> {
    up.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii header").to_owned())
        .collect()
}

// ---- identity headers -----------------------------------------------------

/// `[auth]` with one HS256 provider that pins `https://idp.example`.
const PINNED_AUTH: &str = r#"
[auth]
leeway = "2s"
[[auth.providers]]
name = "corp-idp"
issuer = "https://idp.example"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "@SECRET_FILE@"
"#;

#[tokio::test]
async fn identity_and_forwarding_headers_have_exact_values() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).auth(PINNED_AUTH).start().await;
    let c = claims(
        "alice",
        300,
        json!({"iss": "https://idp.example", "scope": "chat read", "roles": ["a", "b"]}),
    );
    let token = hs256_claims(&c);
    let mut ws = connect(&proxy, "/chat").await;
    let authed = authenticate(&mut ws, &token).await;
    let up = upstream.accept().await;

    assert_eq!(all(&up, "x-auth-subject"), ["alice"]);
    assert_eq!(all(&up, "x-auth-issuer"), ["https://idp.example"]);
    assert_eq!(all(&up, "x-auth-provider"), ["corp-idp"]);
    assert_eq!(all(&up, "x-auth-expires"), [c["exp"].to_string()]);
    let b64 = up.header("x-auth-claims").expect("x-auth-claims");
    assert_eq!(b64, token.split('.').nth(1).expect("payload segment"));
    assert!(!b64.contains('='), "padded: {b64}");
    let decoded: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&b64).expect("base64url")).expect("json");
    assert_eq!(decoded, c);

    assert_eq!(all(&up, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(all(&up, "x-forwarded-proto"), ["http"]);
    assert_eq!(all(&up, "x-forwarded-host"), [proxy.addr.to_string()]);
    assert_eq!(
        all(&up, "x-request-id"),
        [authed["connection_id"].as_str().expect("connection_id")]
    );
    assert_eq!(all(&up, "host"), [upstream.addr.to_string()]);
}

#[tokio::test]
async fn issuer_header_is_absent_without_iss() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let _ws = authed(&proxy, "/chat", &hs256("bob", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("bob"));
    assert_eq!(up.header("x-auth-issuer"), None);
}

/// A provider without a pinned `issuer` takes any `iss` its key signs: the
/// upstream must not be told that `iss` as if it were vouched for.
#[tokio::test]
async fn issuer_header_is_sent_only_when_the_provider_pins_one() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let c = claims("alice", 300, json!({"iss": "https://chosen-by-key-holder"}));
    let _ws = authed(&proxy, "/chat", &hs256_claims(&c)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-auth-subject"), ["alice"]);
    assert_eq!(all(&up, "x-auth-issuer"), Vec::<String>::new());
    assert_eq!(all(&up, "x-auth-provider"), ["test"]);
}

#[tokio::test]
async fn provider_header_is_renamed_switched_off_and_never_taken_from_the_client() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream("[upstream.identity_headers]\nprovider = \"X-Idp\"")
        .start()
        .await;
    let r = with(ws_request(&proxy, "/chat"), "x-idp", "forged");
    let r = with(r, "x-auth-provider", "forged");
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-idp"), ["test"]);
    assert_eq!(all(&up, "x-auth-provider"), Vec::<String>::new());

    // Switched off: no provider header at all.
    let proxy = support::proxy(upstream.addr)
        .upstream("[upstream.identity_headers]\nprovider = \"\"")
        .start()
        .await;
    let _ws = authed(&proxy, "/chat", &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-auth-provider"), Vec::<String>::new());
    assert_eq!(all(&up, "x-auth-subject"), ["alice"]);
}

#[tokio::test]
async fn renamed_and_disabled_identity_headers() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream("[upstream.identity_headers]\nsubject = \"X-User\"\nclaims = \"\"")
        .start()
        .await;
    let _ws = authed(&proxy, "/chat", &hs256("carol", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.header("x-user").as_deref(), Some("carol"));
    assert_eq!(up.header("x-auth-subject"), None);
    assert_eq!(up.header("x-auth-claims"), None);
    assert!(up.header("x-auth-expires").is_some());
}

// ---- spoofing and trusted proxies -----------------------------------------

/// A request carrying every identity and forwarding header a client might forge.
fn spoofing_request(proxy: &TestProxy) -> Request {
    let mut r = ws_request(proxy, "/chat");
    for (name, value) in [
        ("x-auth-subject", "root"),
        ("x-auth-issuer", "https://evil.example"),
        ("x-auth-expires", "99999999999"),
        ("x-auth-claims", "eyJzdWIiOiJyb290In0"),
        ("x-auth-email", "root@example.com"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "chat.example"),
        ("x-request-id", "req-from-client"),
        ("forwarded", "for=198.51.100.1;proto=https"),
    ] {
        r = with(r, name, value);
    }
    r
}

#[tokio::test]
async fn client_cannot_spoof_identity_or_forwarding_headers() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream("[upstream.claim_headers]\nemail = \"X-Auth-Email\"")
        .start()
        .await;
    let mut ws = connect_request(spoofing_request(&proxy)).await;
    let authed = authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-auth-subject"), ["alice"]);
    assert_eq!(all(&up, "x-auth-issuer"), Vec::<String>::new());
    assert_eq!(all(&up, "x-auth-email"), Vec::<String>::new());
    assert_eq!(all(&up, "x-auth-claims").len(), 1);
    assert_ne!(
        up.header("x-auth-claims").as_deref(),
        Some("eyJzdWIiOiJyb290In0")
    );
    assert_eq!(all(&up, "x-auth-expires").len(), 1);
    assert_ne!(up.header("x-auth-expires").as_deref(), Some("99999999999"));
    assert_eq!(all(&up, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(all(&up, "x-forwarded-proto"), ["http"]);
    assert_eq!(all(&up, "x-forwarded-host"), [proxy.addr.to_string()]);
    assert_eq!(
        all(&up, "x-request-id"),
        [authed["connection_id"].as_str().expect("connection_id")]
    );
    assert_eq!(all(&up, "forwarded"), Vec::<String>::new());
}

#[tokio::test]
async fn trusted_proxy_forwarding_headers_are_appended_and_kept() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("trusted_proxies = [\"127.0.0.0/8\"]")
        .upstream("[upstream.claim_headers]\nemail = \"X-Auth-Email\"")
        .start()
        .await;
    let mut ws = connect_request(spoofing_request(&proxy)).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(all(&up, "x-request-id"), ["req-from-client"]);
    assert_eq!(all(&up, "x-forwarded-proto"), ["https"]);
    assert_eq!(all(&up, "x-forwarded-host"), ["chat.example"]);
    // Identity is never taken from a client, trusted or not.
    assert_eq!(all(&up, "x-auth-subject"), ["alice"]);
    assert_eq!(all(&up, "x-auth-issuer"), Vec::<String>::new());
    assert_eq!(all(&up, "x-auth-email"), Vec::<String>::new());
}

/// HAProxy and some ingresses send one `X-Forwarded-For` line per hop: every
/// line of a trusted peer is kept, in order, before the peer's address.
#[tokio::test]
async fn trusted_proxy_x_forwarded_for_lines_are_all_kept_in_order() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("trusted_proxies = [\"127.0.0.0/8\"]")
        .start()
        .await;
    let extra = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.2,  10.0.0.1\r\n";
    let request = raw::upgrade_request(proxy.addr, "/chat", extra);
    let _client = raw::raw_client_request(proxy.addr, &request, &hs256("alice", 300), &[]).await;
    let up = upstream.accept().await;
    assert_eq!(
        all(&up, "x-forwarded-for"),
        ["203.0.113.7, 198.51.100.2, 10.0.0.1, 127.0.0.1"]
    );

    // The same on the plain HTTP path.
    let mut http = HttpUpstream::start().await;
    let proxy = support::proxy(http.addr)
        .listener("trusted_proxies = [\"127.0.0.0/8\"]")
        .start()
        .await;
    raw_http(
        proxy.addr,
        &format!("GET /api HTTP/1.1\r\nHost: app.example\r\n{extra}Connection: close\r\n\r\n"),
    )
    .await;
    let seen = http.request().await;
    assert_eq!(seen.count("x-forwarded-for"), 1);
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 198.51.100.2, 10.0.0.1, 127.0.0.1")
    );
}

#[tokio::test]
async fn trusted_proxy_forwarding_lines_take_the_nearest_hops_value() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("trusted_proxies = [\"127.0.0.0/8\"]")
        .start()
        .await;
    // The client's own lines first, the trusted hop's appended after them.
    let extra = "X-Forwarded-Proto: http\r\nX-Forwarded-Proto: https\r\n\
                 X-Forwarded-Host: evil.example\r\nX-Forwarded-Host: app.example\r\n\
                 X-Request-Id: client-chosen\r\nX-Request-Id: hop-1\r\n";
    let request = raw::upgrade_request(proxy.addr, "/chat", extra);
    let _client = raw::raw_client_request(proxy.addr, &request, &hs256("alice", 300), &[]).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-forwarded-proto"), ["https"]);
    assert_eq!(all(&up, "x-forwarded-host"), ["app.example"]);
    assert_eq!(all(&up, "x-request-id"), ["hop-1"]);
}

#[tokio::test]
async fn trusted_proxy_without_headers_gets_the_defaults() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("trusted_proxies = [\"127.0.0.0/8\"]")
        .start()
        .await;
    let mut ws = connect(&proxy, "/chat").await;
    let authed = authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        all(&up, "x-request-id"),
        [authed["connection_id"].as_str().expect("connection_id")]
    );
}

#[tokio::test]
async fn peer_outside_trusted_ranges_is_not_trusted() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("trusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]")
        .start()
        .await;
    let mut ws = connect_request(spoofing_request(&proxy)).await;
    let authed = authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        all(&up, "x-request-id"),
        [authed["connection_id"].as_str().expect("connection_id")]
    );
}

// ---- claim headers --------------------------------------------------------

#[tokio::test]
async fn claim_headers_are_encoded() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream(
            "[upstream.claim_headers]\n\
             email = \"X-Auth-Email\"\n\
             roles = \"X-Auth-Roles\"\n\
             name = \"X-Auth-Name\"\n\
             level = \"X-Auth-Level\"\n\
             admin = \"X-Auth-Admin\"\n\
             meta = \"X-Auth-Meta\"\n\
             note = \"X-Auth-Note\"\n\
             absent = \"X-Auth-Absent\"",
        )
        .start()
        .await;
    let c = claims(
        "alice",
        300,
        json!({
            "email": "alice@example.com",
            "roles": ["admin", "ops,eu", "zoë"],
            "name": "Zoë 100%",
            "level": 3,
            "admin": true,
            "meta": {"a": 1, "b": [true, null]},
            "note": "line\r\nX-Injected: 1",
        }),
    );
    let _ws = authed(&proxy, "/chat", &hs256_claims(&c)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "x-auth-email"), ["alice@example.com"]);
    assert_eq!(all(&up, "x-auth-roles"), ["admin,ops%2Ceu,zo%C3%AB"]);
    assert_eq!(all(&up, "x-auth-name"), ["Zo%C3%AB 100%25"]);
    assert_eq!(all(&up, "x-auth-level"), ["3"]);
    assert_eq!(all(&up, "x-auth-admin"), ["true"]);
    assert_eq!(all(&up, "x-auth-meta"), [r#"{"a":1,"b":[true,null]}"#]);
    assert_eq!(all(&up, "x-auth-note"), ["line%0D%0AX-Injected: 1"]);
    assert_eq!(up.header("x-injected"), None);
    assert_eq!(up.header("x-auth-absent"), None);
}

// ---- end-to-end headers and forwarding options ----------------------------

#[tokio::test]
async fn end_to_end_headers_pass_and_authorization_is_dropped() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut r = ws_request(&proxy, "/chat");
    r = with(r, "cookie", "session=abc; theme=dark");
    r = with(r, "origin", "https://app.example");
    r = with(r, "user-agent", "wsguard-test/1.0");
    r = with(r, "x-custom", "hello");
    r = with(r, "authorization", "Bearer client-token");
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "cookie"), ["session=abc; theme=dark"]);
    assert_eq!(all(&up, "origin"), ["https://app.example"]);
    assert_eq!(all(&up, "user-agent"), ["wsguard-test/1.0"]);
    assert_eq!(all(&up, "x-custom"), ["hello"]);
    assert_eq!(all(&up, "authorization"), Vec::<String>::new());
}

#[tokio::test]
async fn authorization_is_kept_when_configured() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream("forward_authorization = true")
        .start()
        .await;
    let r = with(
        ws_request(&proxy, "/chat"),
        "authorization",
        "Basic dXNlcjpwYXNz",
    );
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "authorization"), ["Basic dXNlcjpwYXNz"]);
}

#[tokio::test]
async fn forward_token_sends_the_verified_token_as_bearer() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream("forward_token = true")
        .start()
        .await;
    let token = hs256("alice", 300);
    let r = with(
        ws_request(&proxy, "/chat"),
        "authorization",
        "Bearer client-token",
    );
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &token).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "authorization"), [format!("Bearer {token}")]);
}

#[tokio::test]
async fn token_is_not_forwarded_by_default() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let _ws = authed(&proxy, "/chat", &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.header("authorization"), None);
}

#[tokio::test]
async fn host_is_the_upstreams_by_default() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let r = with(ws_request(&proxy, "/chat"), "host", "chat.example");
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "host"), [upstream.addr.to_string()]);
    assert_eq!(all(&up, "x-forwarded-host"), ["chat.example"]);
}

#[tokio::test]
async fn preserve_host_keeps_the_clients_host() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .upstream("preserve_host = true")
        .start()
        .await;
    let r = with(ws_request(&proxy, "/chat"), "host", "chat.example");
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "host"), ["chat.example"]);
    assert_eq!(all(&up, "x-forwarded-host"), ["chat.example"]);
}

#[tokio::test]
async fn token_query_parameters_are_stripped() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let _ws = authed(
        &proxy,
        "/room/7?token=abc&x=1&access_token=def&y=&token=again",
        &hs256("alice", 300),
    )
    .await;
    let up = upstream.accept().await;
    assert_eq!(up.path, "/room/7?x=1&y=");
}

/// Names are compared percent-decoded and case-insensitively; a name that
/// does not decode is dropped; everything else stays as written, in order.
const SPELLED_QUERY: &str = "/room?Token=a&TOKEN=b&%74oken=c&access%5Ftoken=d&ACCESS%5fTOKEN=e\
                             &x%zz=f&%FF=g&y%2=h&q=a%20b+c&to+ken=i&z=%41%zz\
                             &k=1;token=j&access.token=l&access+token=m&token[]=n";
/// What is left of [`SPELLED_QUERY`].
const SPELLED_KEPT: &str = "/room?q=a%20b+c&to+ken=i&z=%41%zz&k=1";

#[tokio::test]
async fn token_query_parameters_are_stripped_by_any_spelling() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let _ws = authed(&proxy, SPELLED_QUERY, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.path, SPELLED_KEPT);

    let mut http = HttpUpstream::start().await;
    let proxy = support::proxy(http.addr).start().await;
    raw_http(
        proxy.addr,
        &format!("GET {SPELLED_QUERY} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(http.request().await.path, SPELLED_KEPT);
}

#[tokio::test]
async fn query_with_only_a_token_becomes_a_bare_path() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let _ws = authed(&proxy, "/chat?access_token=abc", &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.path, "/chat");
}

// ---- plain HTTP -----------------------------------------------------------

#[tokio::test]
async fn http_requests_are_passed_through_with_header_rules() {
    let mut http = HttpUpstream::start().await;
    let proxy = proxy(http.addr)
        .upstream("[upstream.claim_headers]\nemail = \"X-Auth-Email\"")
        .start()
        .await;
    let body = "{\"name\":\"widget\"}";
    let raw = format!(
        "POST /api/items?token=abc&page=2 HTTP/1.1\r\n\
         Host: app.example\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\
         Cookie: session=abc\r\n\
         X-Custom: hello\r\n\
         Authorization: Bearer client-token\r\n\
         X-Auth-Subject: root\r\n\
         X-Auth-Email: root@example.com\r\n\
         X-Forwarded-For: 203.0.113.7\r\n\
         X-Request-Id: req-from-client\r\n\
         Connection: close\r\n\
         \r\n{body}",
        body.len()
    );
    let response = raw_http(proxy.addr, &raw).await;

    let seen = http.request().await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/api/items?page=2");
    assert_eq!(String::from_utf8_lossy(&seen.body), body);
    assert_eq!(
        seen.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(seen.header("cookie").as_deref(), Some("session=abc"));
    assert_eq!(seen.header("x-custom").as_deref(), Some("hello"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-auth-subject"), None);
    assert_eq!(seen.header("x-auth-email"), None);
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.count("x-forwarded-for"), 1);
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("app.example")
    );
    let request_id = seen.header("x-request-id").expect("x-request-id");
    assert!(!request_id.is_empty());
    assert_ne!(request_id, "req-from-client");
    assert_eq!(seen.header("host"), Some(http.addr.to_string()));

    assert_eq!(response.status, HTTP_UPSTREAM_STATUS);
    assert_eq!(response.body, HTTP_UPSTREAM_BODY);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-upstream"), Some("yes"));
    assert_eq!(response.header("set-cookie"), Some("sid=abc; Path=/"));
}

#[tokio::test]
async fn http_url_prefix_is_used_for_plain_requests() {
    let mut http = HttpUpstream::start().await;
    let ws_upstream = Upstream::start(true).await;
    let proxy = proxy(ws_upstream.addr)
        .upstream(&format!("http_url = \"http://{}/v1\"", http.addr))
        .start()
        .await;
    let response = raw_http(
        proxy.addr,
        "GET /status?x=1 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    let seen = http.request().await;
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/v1/status?x=1");
    assert_eq!(response.status, HTTP_UPSTREAM_STATUS);
}

#[tokio::test]
async fn bad_upgrade_gets_400_json_and_is_not_forwarded() {
    let mut http = HttpUpstream::start().await;
    let proxy = proxy(http.addr).start().await;
    for raw in [
        // No Sec-WebSocket-Key.
        "GET /chat HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n",
        // A wrong version has its own answer: see tests/handshake.rs.
        // A key that is not 16 bytes.
        "GET /chat HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n",
        // Not WebSocket at all.
        "GET /chat HTTP/1.1\r\nHost: app.example\r\nUpgrade: h2c\r\n\
         Connection: Upgrade, close\r\n\r\n",
        // Not a GET.
        "POST /chat HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n",
    ] {
        let response = raw_http(proxy.addr, raw).await;
        assert_eq!(response.status, 400, "{raw:?}: {response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{raw:?}"
        );
        let v = response.json();
        assert_eq!(v["error"], "bad_upgrade", "{raw:?}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    assert!(
        http.request_within(NOTHING).await.is_none(),
        "a bad upgrade reached the upstream"
    );
}

#[tokio::test]
async fn http_upstream_down_gets_502_json() {
    let dead = Upstream::unused_addr().await;
    let proxy = proxy(dead).start().await;
    let response = raw_http(
        proxy.addr,
        "GET /api HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    let v = response.json();
    assert_eq!(v["error"], "upstream_unavailable", "{v}");
}

// ---- request framing and Expect ---------------------------------------------

/// An upgrade has no body: its `Content-Length` (and `Transfer-Encoding`)
/// must not reach the upstream's handshake, nor its `Expect`.
#[tokio::test]
async fn upgrade_framing_and_expect_headers_are_not_forwarded() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let extra = "Content-Length: 0\r\nExpect: 100-continue\r\nX-Custom: kept\r\n";
    let request = raw::upgrade_request(proxy.addr, "/chat", extra);
    let mut client = raw::raw_client_request(proxy.addr, &request, &hs256("alice", 300), &[]).await;
    let mut up = upstream.accept().await;
    assert_eq!(all(&up, "content-length"), Vec::<String>::new());
    assert_eq!(all(&up, "transfer-encoding"), Vec::<String>::new());
    assert_eq!(all(&up, "expect"), Vec::<String>::new());
    assert_eq!(all(&up, "x-custom"), ["kept"]);
    assert!(client
        .data_or_close()
        .await
        .text()
        .contains("AUTHENTICATED"));
    client
        .write(&raw::client_frame(raw::TEXT, b"after the upgrade"))
        .await;
    assert_eq!(
        up.recv().await,
        tokio_tungstenite::tungstenite::Message::text("after the upgrade")
    );
}

/// An upgrade sent with a (chunked, empty) body: `Transfer-Encoding` is
/// hop-by-hop and never reaches the upstream's handshake.
#[tokio::test]
async fn upgrade_with_a_chunked_body_sends_no_transfer_encoding_upstream() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let extra = "Transfer-Encoding: chunked\r\n";
    let request = raw::upgrade_request(proxy.addr, "/chat", extra) + "0\r\n\r\n";
    let mut client = raw::raw_client_request(proxy.addr, &request, &hs256("alice", 300), &[]).await;
    let up = upstream.accept().await;
    assert_eq!(all(&up, "transfer-encoding"), Vec::<String>::new());
    assert!(client
        .data_or_close()
        .await
        .text()
        .contains("AUTHENTICATED"));
}

/// wsguard answers `100 Continue` itself, so `Expect` is not forwarded on
/// the pass-through path either; the body still arrives.
#[tokio::test]
async fn expect_is_not_forwarded_on_the_pass_through_path() {
    let mut http = HttpUpstream::start().await;
    let proxy = proxy(http.addr).start().await;
    let response = raw_http(
        proxy.addr,
        "POST /api HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\
         Connection: close\r\n\r\nhello",
    )
    .await;
    let seen = http.request().await;
    assert_eq!(seen.header("expect"), None);
    assert_eq!(seen.body, b"hello");
    assert_eq!(response.status, HTTP_UPSTREAM_STATUS);
}

/// `Content-Length` goes upstream as the number hyper parsed, not as
/// written; lengths hyper refuses get its 400 and are not forwarded.
#[tokio::test]
async fn pass_through_content_length_is_normalized() {
    let mut http = HttpUpstream::start().await;
    let proxy = proxy(http.addr).start().await;
    for lengths in [
        "Content-Length: 005\r\n",
        "Content-Length: 5\r\nContent-Length: 05\r\n",
    ] {
        let response = raw_http(
            proxy.addr,
            &format!("POST /api HTTP/1.1\r\nHost: a\r\n{lengths}Connection: close\r\n\r\nhello"),
        )
        .await;
        assert_eq!(response.status, HTTP_UPSTREAM_STATUS, "{lengths:?}");
        let seen = http.request().await;
        assert_eq!(seen.headers.get_all("content-length").iter().count(), 1);
        assert_eq!(
            seen.header("content-length").as_deref(),
            Some("5"),
            "{lengths:?}"
        );
        assert_eq!(seen.body, b"hello");
    }
    for lengths in [
        "Content-Length: +5\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 0x5\r\n",
    ] {
        let response = raw_http(
            proxy.addr,
            &format!("POST /api HTTP/1.1\r\nHost: a\r\n{lengths}Connection: close\r\n\r\nhello"),
        )
        .await;
        assert_eq!(response.status, 400, "{lengths:?}");
    }
    assert!(http.request_within(NOTHING).await.is_none());
}

// ---- upstream.strip_request_headers ---------------------------------------

/// The CDN headers of the issue, listed in any case, stripped on both paths.
const STRIP: &str =
    "strip_request_headers = [\"x-client-ip\", \"CF-Connecting-IP\", \"X-Original-URL\"]";
/// Client headers the list above must remove (or, for `X-Other`, keep).
const CDN_HEADERS: [(&str, &str); 4] = [
    ("X-Client-IP", "203.0.113.9"),
    ("cf-connecting-ip", "203.0.113.9"),
    ("X-ORIGINAL-URL", "/admin"),
    ("X-Other", "kept"),
];

#[tokio::test]
async fn strip_request_headers_removes_listed_headers_on_both_paths() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).upstream(STRIP).start().await;
    let mut r = ws_request(&proxy, "/chat");
    for (name, value) in CDN_HEADERS {
        r = with(r, name, value);
    }
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    for (name, _) in &CDN_HEADERS[..3] {
        assert_eq!(all(&up, name), Vec::<String>::new(), "{name}");
    }
    assert_eq!(all(&up, "x-other"), ["kept"]);

    let mut http = HttpUpstream::start().await;
    let proxy = support::proxy(http.addr).upstream(STRIP).start().await;
    let lines: String = CDN_HEADERS
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    raw_http(
        proxy.addr,
        &format!("GET /api HTTP/1.1\r\nHost: a\r\n{lines}Connection: close\r\n\r\n"),
    )
    .await;
    let seen = http.request().await;
    for (name, _) in &CDN_HEADERS[..3] {
        assert_eq!(seen.header(name), None, "{name}");
    }
    assert_eq!(seen.header("x-other").as_deref(), Some("kept"));
}

/// Without the setting, such headers pass (the documented default).
#[tokio::test]
async fn unlisted_cdn_headers_pass_by_default() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let mut r = ws_request(&proxy, "/chat");
    for (name, value) in CDN_HEADERS {
        r = with(r, name, value);
    }
    let mut ws = connect_request(r).await;
    authenticate(&mut ws, &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    for (name, value) in CDN_HEADERS {
        assert_eq!(all(&up, name), [value], "{name}");
    }
}

#[test]
fn invalid_header_names_are_config_errors_naming_the_key() {
    for (lines, key) in [
        (
            "strip_request_headers = [\"X-Ok\", \"bad header\"]",
            "upstream.strip_request_headers[1]:",
        ),
        (
            "strip_request_headers = [\"\"]",
            "upstream.strip_request_headers[0]:",
        ),
        (
            "[upstream.identity_headers]\nprovider = \"X:Idp\"",
            "upstream.identity_headers.provider:",
        ),
    ] {
        let text = proxy("127.0.0.1:9".parse().expect("addr"))
            .upstream(lines)
            .toml("/nonexistent");
        // Checked where every key is checked: when the proxy is built.
        let config = wsguard::config::Config::parse(&text).expect("schema");
        let err = wsguard::proxy::Proxy::new(&config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with(key), "{lines}: {err:?}");
    }
}
