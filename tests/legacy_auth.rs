//! Legacy auth methods on the upgrade request (`[auth.legacy]`): a token
//! in `Authorization: Bearer`, a named cookie or a query parameter
//! authenticates the connection at the upgrade; off, they are ignored.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use http::HeaderValue;
use support::lifecycle::{recv_type, send_text, up_silence, up_text};
use support::raw::upgrade_request;
use support::requests::{connect_request, raw_http, ws_request};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use wsguard::auth::legacy::{Method, DEPRECATED_AUTH};

const ORIGIN: &str = "https://app.example.com";

/// All three methods on (the cookie needs an Origin allowlist).
async fn all_on(upstream: &Upstream, extra: &str) -> TestProxy {
    proxy(upstream.addr)
        .legacy(&format!(
            "header = true\ncookie = \"session_token\"\nquery = \"t\"\n{extra}"
        ))
        .http(&format!(
            "allowed_origins = [\"{ORIGIN}\"]\nallow_missing_origin = true"
        ))
        .start()
        .await
}

/// A WebSocket request to `path` with extra headers.
fn request(p: &TestProxy, path: &str, headers: &[(&'static str, String)]) -> http::Request<()> {
    let mut r = ws_request(p, path);
    for (name, value) in headers {
        r.headers_mut()
            .append(*name, HeaderValue::from_str(value).expect("header value"));
    }
    r
}

/// The client's frames are data from the first one, and the upstream's
/// first frame is the client's first frame (no AUTHENTICATED before it).
async fn relays_at_once(ws: &mut Ws, up: &mut UpConn) {
    send_text(ws, "hello").await;
    assert_eq!(up_text(up).await, "hello");
    up.send(Message::text("from upstream"));
    assert_eq!(recv(ws).await, Message::text("from upstream"));
}

#[tokio::test]
async fn bearer_header_authenticates_at_the_upgrade() {
    let mut upstream = Upstream::start(false).await;
    let p = all_on(&upstream, "").await;
    let before = DEPRECATED_AUTH.count(Method::Header);
    let token = hs256("alice", 300);
    let auth = format!("Bearer {token}");
    let mut ws = connect_request(request(&p, "/chat", &[("authorization", auth)])).await;
    let mut up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("alice"));
    assert_eq!(up.header("authorization"), None, "the token went upstream");
    relays_at_once(&mut ws, &mut up).await;
    assert!(DEPRECATED_AUTH.count(Method::Header) > before);
}

#[tokio::test]
async fn cookie_authenticates_and_is_removed_upstream() {
    let mut upstream = Upstream::start(false).await;
    let p = all_on(&upstream, "").await;
    let before = DEPRECATED_AUTH.count(Method::Cookie);
    let token = hs256("carol", 300);
    let cookies = format!("theme=dark; session_token={token}; lang=en");
    let headers = [("cookie", cookies), ("origin", ORIGIN.to_owned())];
    let mut ws = connect_request(request(&p, "/chat", &headers)).await;
    let mut up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("carol"));
    assert_eq!(up.header("cookie").as_deref(), Some("theme=dark; lang=en"));
    relays_at_once(&mut ws, &mut up).await;
    assert!(DEPRECATED_AUTH.count(Method::Cookie) > before);
}

#[tokio::test]
async fn query_token_authenticates_and_is_removed_upstream() {
    let mut upstream = Upstream::start(false).await;
    // `t` is not in upstream.strip_query_params: it is stripped because it is the auth parameter.
    let p = all_on(&upstream, "").await;
    let before = DEPRECATED_AUTH.count(Method::Query);
    let token = hs256("dave", 300);
    let mut ws = connect(&p, &format!("/chat?room=1&%74={token}&b=2")).await;
    let mut up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("dave"));
    assert_eq!(up.path, "/chat?room=1&b=2");
    relays_at_once(&mut ws, &mut up).await;
    assert!(DEPRECATED_AUTH.count(Method::Query) > before);
}

#[tokio::test]
async fn methods_off_are_ignored() {
    let mut upstream = Upstream::start(false).await;
    let p = proxy(upstream.addr).start().await;
    let token = hs256("alice", 300);
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("cookie", format!("session_token={token}")),
    ];
    let mut ws = connect_request(request(&p, &format!("/?t={token}"), &headers)).await;
    send_text(&mut ws, "hello").await;
    assert_eq!(expect_close(&mut ws).await, (1008, "auth required".into()));
    assert!(upstream
        .accept_within(Duration::from_millis(200))
        .await
        .is_none());
    // First-message auth still works on such a request.
    let mut ws = connect_request(request(&p, "/", &headers)).await;
    ws.send(auth_frame(&token)).await.expect("auth");
    recv_type(&mut ws, "AUTHENTICATED").await;
}

#[tokio::test]
async fn an_auth_frame_after_a_header_upgrade_is_a_reauth() {
    let mut upstream = Upstream::start(false).await;
    let p = all_on(&upstream, "").await;
    let first = hs256("alice", 300);
    let second = hs256("alice", 600);
    let mut ws = connect_request(request(
        &p,
        "/",
        &[("authorization", format!("Bearer {first}"))],
    ))
    .await;
    // Sent at once, possibly before the upstream is open.
    ws.send(auth_frame(&second)).await.expect("auth");
    let answer = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(answer["payload"]["in_reply_to"], "a1", "{answer}");
    let exp = answer["payload"]["exp"].as_i64().expect("exp");
    assert!(exp > now() + 400, "the second token's exp: {answer}");
    let mut up = upstream.accept().await;
    up_silence(&mut up, Duration::from_millis(100)).await;
    relays_at_once(&mut ws, &mut up).await;
}

#[tokio::test]
async fn the_first_frame_may_be_of_an_auth_type_that_is_no_reauth_type() {
    let mut upstream = Upstream::start(false).await;
    let p = proxy(upstream.addr)
        .legacy("header = true")
        .dialect("auth = [\"AUTHENTICATE\"]\nreauth = [\"REAUTH\"]")
        .start()
        .await;
    let token = hs256("alice", 300);
    let auth = format!("Bearer {token}");
    let mut ws = connect_request(request(&p, "/", &[("authorization", auth)])).await;
    let mut up = upstream.accept().await;
    let first = support::lifecycle::control("AUTHENTICATE", "f1", &token);
    ws.send(first).await.expect("send");
    let answer = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(answer["payload"]["in_reply_to"], "f1", "{answer}");
    // Only the first message is read as an auth frame; later ones are data.
    let later = support::lifecycle::control("AUTHENTICATE", "f2", &token);
    ws.send(later.clone()).await.expect("send");
    assert_eq!(up.recv().await, later);
}

#[tokio::test]
async fn an_auth_frame_while_the_upstream_opens_waits_for_it() {
    use support::wire::{handshake, next_any, RawUpstream};
    let upstream = RawUpstream::start().await;
    let p = proxy(upstream.addr).legacy("header = true").start().await;
    let token = hs256("alice", 300);
    let auth = format!("Bearer {token}");
    let mut ws = connect_request(request(&p, "/", &[("authorization", auth)])).await;
    // The upstream's TCP is accepted, its handshake not answered yet.
    let tcp = upstream.accept_tcp().await;
    ws.send(auth_frame(&token)).await.expect("auth");
    // Not answered `not_authenticated`: kept until the upstream is open.
    assert_eq!(recv_within(&mut ws, Duration::from_millis(150)).await, None);
    let (mut up, _) = handshake(tcp).await;
    let answer = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(answer["payload"]["in_reply_to"], "a1", "{answer}");
    send_text(&mut ws, "data").await;
    // The auth frame never reached the upstream; the data did.
    assert_eq!(next_any(&mut up).await, Message::text("data"));
}

#[tokio::test]
async fn invalid_legacy_tokens_close_with_1008() {
    let mut upstream = Upstream::start(false).await;
    let p = all_on(&upstream, "").await;
    let expired = hs256("alice", -60);
    let cases = [
        request(&p, "/", &[("authorization", "Bearer not.a.jwt".to_owned())]),
        request(
            &p,
            "/",
            &[
                ("cookie", format!("session_token={expired}")),
                ("origin", ORIGIN.to_owned()),
            ],
        ),
        request(&p, "/?t=garbage", &[]),
    ];
    for r in cases {
        let mut ws = connect_request(r).await;
        assert_eq!(expect_close(&mut ws).await, (1008, "invalid token".into()));
    }
    assert!(upstream
        .accept_within(Duration::from_millis(200))
        .await
        .is_none());
}

#[tokio::test]
async fn reject_with_http_answers_401() {
    let upstream = Upstream::start(false).await;
    let p = all_on(&upstream, "reject_with_http = true").await;
    let expired = hs256("alice", -60);
    for extra in [
        "Authorization: Bearer not.a.jwt\r\n".to_owned(),
        format!("Cookie: session_token={expired}\r\nOrigin: {ORIGIN}\r\n"),
    ] {
        let head = upgrade_request(p.addr, "/", &format!("{extra}Connection: close\r\n"));
        let answer = raw_http(p.addr, &head).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.json()["error"], "token_not_valid", "{answer:?}");
        let challenge = answer.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    let answer = raw_http(
        p.addr,
        &upgrade_request(p.addr, "/?t=x", "Connection: close\r\n"),
    )
    .await;
    assert_eq!(answer.json()["message"], "malformed token", "{answer:?}");
}

#[tokio::test]
async fn the_first_present_method_decides() {
    let mut upstream = Upstream::start(false).await;
    let p = all_on(&upstream, "").await;
    let (alice, bob, carol) = (hs256("alice", 300), hs256("bob", 300), hs256("carol", 300));
    let with_origin = |cookie: String| [("cookie", cookie), ("origin", ORIGIN.to_owned())];
    // Header before cookie before query.
    let mut headers = with_origin(format!("session_token={bob}")).to_vec();
    headers.push(("authorization", format!("Bearer {alice}")));
    let _ws = connect_request(request(&p, &format!("/?t={carol}"), &headers)).await;
    assert_eq!(
        upstream.accept().await.header("x-auth-subject").as_deref(),
        Some("alice")
    );
    // Cookie before query.
    let headers = with_origin(format!("session_token={bob}"));
    let _ws = connect_request(request(&p, &format!("/?t={carol}"), &headers)).await;
    assert_eq!(
        upstream.accept().await.header("x-auth-subject").as_deref(),
        Some("bob")
    );
    // An invalid header token decides, even with a valid cookie.
    let mut headers = with_origin(format!("session_token={bob}")).to_vec();
    headers.push(("authorization", "Bearer bad".to_owned()));
    let mut ws = connect_request(request(&p, "/", &headers)).await;
    assert_eq!(expect_close(&mut ws).await, (1008, "invalid token".into()));
}

/// A configuration file with every legacy method on, in a fresh folder.
fn config_file(
    upstream: std::net::SocketAddr,
    http: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), SECRET).expect("secret");
    let path = dir.path().join("wsguard.toml");
    let text = format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[upstream]
url = "ws://{upstream}"
{BINARY_PROVIDER}[auth.legacy]
header = true
cookie = "session_token"
query = "t"
[admin]
bind = ""
[http]
{http}
"#
    );
    std::fs::write(&path, text).expect("config");
    (dir, path)
}

#[tokio::test]
async fn check_refuses_cookie_auth_without_origins() {
    let upstream = Upstream::unused_addr().await;
    let (_dir, path) = config_file(upstream, "");
    let out = support::cli::wsguard_child()
        .args(["check", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .expect("run check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("auth.legacy.cookie:"), "{err}");
    let (_dir, path) = config_file(upstream, &format!("allowed_origins = [\"{ORIGIN}\"]"));
    let out = support::cli::wsguard_child()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("run check");
    assert!(out.status.success());
}

#[tokio::test]
async fn legacy_tokens_never_reach_the_log() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut upstream = Upstream::start(false).await;
    let http = format!("allowed_origins = [\"{ORIGIN}\"]\nallow_missing_origin = true");
    let (_dir, path) = config_file(upstream.addr, &http);
    let mut child = support::cli::wsguard_child()
        .env("RUST_LOG", "trace")
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wsguard");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    let addr = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push(line.clone());
            let listening = line.contains("wsguard listening");
            if let Some(at) = line.split("addr=").nth(1).filter(|_| listening) {
                return at.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("listening line in time")
    .expect("a listening line");
    let (by_cookie, by_query, by_header) =
        (hs256("carol", 300), hs256("dave", 300), hs256("erin", 300));
    let url = format!("ws://{addr}/chat?t={by_query}");
    let mut r = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
        .expect("request");
    let cookie = format!("session_token={by_cookie}");
    r.headers_mut()
        .insert("cookie", HeaderValue::from_str(&cookie).expect("cookie"));
    r.headers_mut()
        .insert("origin", HeaderValue::from_static(ORIGIN));
    let (mut ws, _) = tokio_tungstenite::connect_async(r).await.expect("connect");
    let mut up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("carol"));
    relays_at_once(&mut ws, &mut up).await;
    let url = format!("ws://{addr}/chat");
    let mut r = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
        .expect("request");
    let bearer = format!("Bearer {by_header}");
    r.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&bearer).expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(r).await.expect("connect");
    let mut up = upstream.accept().await;
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("erin"));
    relays_at_once(&mut ws, &mut up).await;
    for _ in 0..2 {
        let url = format!("ws://{addr}/chat?t={by_query}");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let mut up = upstream.accept().await;
        assert_eq!(up.header("x-auth-subject").as_deref(), Some("dave"));
        relays_at_once(&mut ws, &mut up).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut finished = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            finished += usize::from(line.contains("connection finished"));
            log.push(line);
            if finished == 2 {
                break;
            }
        }
    })
    .await;
    child.kill().await.expect("kill");
    // Once per method per process at warn; per connection at debug.
    let count = |what: &str, method: &str| {
        let method = format!("method=\"{method}\"");
        log.iter()
            .filter(|l| l.contains(what) && l.contains(&method))
            .count()
    };
    assert_eq!(count("WARN", "query"), 1, "{log:#?}");
    assert_eq!(count("WARN", "cookie"), 1, "{log:#?}");
    assert_eq!(count("WARN", "header"), 1, "{log:#?}");
    assert_eq!(count("DEBUG", "query"), 2, "{log:#?}");
    let signature = |t: &str| t.rsplit('.').next().unwrap_or_default().to_owned();
    for line in &log {
        for secret in [
            signature(&by_cookie),
            signature(&by_query),
            signature(&by_header),
        ] {
            assert!(!line.contains(&secret), "token logged: {line}");
        }
    }
}
