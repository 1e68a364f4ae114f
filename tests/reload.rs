//! Configuration reload on the real binary: SIGHUP and `POST /reload`.
//! New keys, limits for new connections only, live connections kept (and
//! sent through `on_key_removed` when their key went), broken files
//! refused whole with the key named, restart-only keys reported and kept.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use jsonwebtoken::EncodingKey;
use support::admin::{run, Running};
use support::lifecycle::{recv_type, token};
use support::requests::raw_http;
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// A second HMAC secret (the reloaded key).
const NEW_SECRET: &str = "wsguard-reloaded-secret-0123456789abcdef";

/// One worker, the HMAC key in `key_file`, the admin listener, and `extra`.
fn config(upstream: std::net::SocketAddr, key_file: &str, extra: &str) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[upstream]
url = "ws://{upstream}"
[[auth.providers]]
name = "test"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "{key_file}"
[admin]
bind = "127.0.0.1:0"
upstream_check_interval = "100ms"
{extra}
"#
    )
}

/// An HS256 token for `sub` signed with `secret`.
fn token_with_secret(sub: &str, secret: &str) -> String {
    let claims = claims(sub, 300, serde_json::json!({}));
    sign(
        jsonwebtoken::Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
        &claims,
    )
}

/// Rewrites the configuration file.
fn rewrite(proxy: &Running, text: &str) {
    std::fs::write(&proxy.config, text).expect("rewrite config");
}

/// Sends SIGHUP and waits for the log line containing `wanted`.
async fn sighup(proxy: &Running, wanted: &str) -> String {
    let before = proxy.lines().len();
    let pid = proxy.child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    log_line(proxy, before, wanted).await
}

/// The first log line from `from` on containing `wanted`, within `WAIT`.
async fn log_line(proxy: &Running, from: usize, wanted: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = proxy.lines()[from..].iter().find(|l| l.contains(wanted)) {
            return line.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {wanted:?} in {:?}",
            proxy.lines()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `POST /reload` on the admin listener.
async fn post_reload(proxy: &Running) -> requests::RawResponse {
    let raw =
        "POST /reload HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    raw_http(proxy.admin, raw).await
}

/// Connects and authenticates with `token`; the upstream's side.
async fn open(proxy: &Running, upstream: &mut Upstream, token: &str) -> (Ws, UpConn) {
    let mut ws = proxy.connect("/").await;
    ws.send(auth_frame(token)).await.expect("auth");
    let up = upstream.accept().await;
    recv_type(&mut ws, "AUTHENTICATED").await;
    (ws, up)
}

/// A message from the client reaches the upstream.
async fn relays(ws: &mut Ws, up: &mut UpConn, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    assert_eq!(up.recv().await, Message::text(text));
}

#[tokio::test]
async fn sighup_with_a_new_hmac_key_lets_its_tokens_in_and_old_ones_follow_on_key_removed() {
    let mut upstream = Upstream::start(false).await;
    let session = "[session]\ngrace = \"1s\"\nreauth_jitter = \"0s\"\n";
    let mut proxy = run(&config(upstream.addr, "secret", session), &[]).await;
    let (mut old, mut old_up) = open(&proxy, &mut upstream, &token("alice", 300).0).await;
    let dir = proxy.config.parent().expect("dir").to_owned();
    std::fs::write(dir.join("secret2"), NEW_SECRET).expect("secret2");
    rewrite(&proxy, &config(upstream.addr, "secret2", session));
    let reloaded = sighup(&proxy, "configuration reloaded").await;
    assert!(reloaded.contains("key_removed=1"), "{reloaded}");
    // The new key lets its tokens in; the removed one no longer does.
    let (mut new, mut new_up) =
        open(&proxy, &mut upstream, &token_with_secret("bob", NEW_SECRET)).await;
    relays(&mut new, &mut new_up, "new key").await;
    let mut refused = proxy.connect("/").await;
    refused
        .send(auth_frame(&token("carol", 300).0))
        .await
        .expect("auth");
    assert_eq!(
        expect_close(&mut refused).await,
        (1008, "invalid token".into())
    );
    // The old connection is asked to re-authenticate, and relays meanwhile.
    recv_type(&mut old, "auth_required").await;
    relays(&mut old, &mut old_up, "still relayed").await;
    recv_type(&mut old, "TOKEN_EXPIRED").await;
    assert_eq!(expect_close(&mut old).await, (1008, "key revoked".into()));
    relays(&mut new, &mut new_up, "untouched").await;
    drop(proxy.child.kill().await);
}

#[tokio::test]
async fn a_reauth_after_a_reload_uses_the_new_verifier() {
    let mut upstream = Upstream::start(false).await;
    let session = "[session]\ngrace = \"5s\"\nreauth_jitter = \"0s\"\n";
    let proxy = run(&config(upstream.addr, "secret", session), &[]).await;
    let (mut ws, mut up) = open(&proxy, &mut upstream, &token("alice", 300).0).await;
    let dir = proxy.config.parent().expect("dir").to_owned();
    std::fs::write(dir.join("secret2"), NEW_SECRET).expect("secret2");
    rewrite(&proxy, &config(upstream.addr, "secret2", session));
    sighup(&proxy, "configuration reloaded").await;
    recv_type(&mut ws, "auth_required").await;
    ws.send(support::lifecycle::reauth(
        "r1",
        &token_with_secret("alice", NEW_SECRET),
    ))
    .await
    .expect("reauth");
    let v = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "r1");
    // No longer on the removed key's deadline.
    support::lifecycle::expect_silence(&mut ws, Duration::from_millis(1500)).await;
    relays(&mut ws, &mut up, "after the reauth").await;
}

#[tokio::test]
async fn a_changed_limit_applies_to_new_connections_only() {
    let mut upstream = Upstream::start(false).await;
    let proxy = run(&config(upstream.addr, "secret", ""), &[]).await;
    let (mut old, mut old_up) = open(&proxy, &mut upstream, &token("alice", 300).0).await;
    rewrite(
        &proxy,
        &config(
            upstream.addr,
            "secret",
            "[websocket]\nmax_message_bytes = 20000\nmax_frame_bytes = 20000\n",
        ),
    );
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let big = "x".repeat(30_000);
    relays(&mut old, &mut old_up, &big).await;
    let (mut new, _new_up) = open(&proxy, &mut upstream, &token("bob", 300).0).await;
    new.send(Message::text(big)).await.expect("send");
    assert_eq!(
        expect_close(&mut new).await,
        (1009, "message too large".into())
    );
    relays(&mut old, &mut old_up, "the old one goes on").await;
}

#[tokio::test]
async fn a_broken_file_keeps_the_old_settings_and_logs_the_key() {
    let mut upstream = Upstream::start(false).await;
    let proxy = run(&config(upstream.addr, "secret", ""), &[]).await;
    let (mut ws, mut up) = open(&proxy, &mut upstream, &token("alice", 300).0).await;
    rewrite(
        &proxy,
        &config(upstream.addr, "secret", "[dialect]\nauth = []\n"),
    );
    let line = sighup(&proxy, "reload refused").await;
    assert!(line.contains("dialect.auth"), "{line}");
    assert!(!line.contains(SECRET), "{line}");
    relays(&mut ws, &mut up, "still here").await;
    // The old dialect still takes `auth` first frames.
    let (mut other, mut other_up) = open(&proxy, &mut upstream, &token("bob", 300).0).await;
    relays(&mut other, &mut other_up, "old settings").await;
    // `POST /reload` answers the same error as JSON.
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["error"], "reload_refused", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("dialect.auth:")),
        "{body}"
    );
}

#[tokio::test]
async fn a_changed_listener_address_is_reported_and_ignored() {
    let mut upstream = Upstream::start(false).await;
    let proxy = run(&config(upstream.addr, "secret", ""), &[]).await;
    let moved = config(upstream.addr, "secret", "")
        .replace(
            "bind = \"127.0.0.1:0\"\nworker_threads = 1",
            "bind = \"127.0.0.1:1\"\nworker_threads = 3",
        )
        .replace("[upstream]\n", "[upstream]\nresolve_interval = \"7s\"\n")
        + "[revocation]\nmax_entries = 10\n[limits]\nmax_connections = 7\n";
    rewrite(&proxy, &moved);
    let before = proxy.lines().len();
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["ignored"],
        serde_json::json!([
            "listener.bind",
            "listener.worker_threads",
            "upstream.resolve_interval",
            "limits",
            "revocation"
        ])
    );
    let line = log_line(&proxy, before, "need a restart").await;
    assert!(
        line.contains("listener.bind")
            && line.contains("listener.worker_threads")
            && line.contains("limits")
            && line.contains("revocation"),
        "{line}"
    );
    // Still served where it was.
    let (mut ws, mut up) = open(&proxy, &mut upstream, &token("alice", 300).0).await;
    relays(&mut ws, &mut up, "same address").await;
}

/// One discovery provider `idp` for `idp` (ES256), refreshed every 100 ms.
fn idp_config(upstream: std::net::SocketAddr, idp: &support::idp::Idp) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[upstream]
url = "ws://{upstream}"
[auth.jwks]
startup_timeout = "1s"
refresh_interval = "100ms"
min_refresh = "50ms"
[[auth.providers]]
name = "idp"
issuer = "{}"
discovery = true
ca_file = "{}"
algorithms = ["ES256"]
[admin]
bind = "127.0.0.1:0"
upstream_check_interval = "100ms"
"#,
        idp.issuer(),
        idp.ca_file
    )
}

/// A token of `idp`'s issuer signed by `kid-a`.
fn idp_token(idp: &support::idp::Idp, sub: &str) -> String {
    jwks_a_as(
        Some("kid-a"),
        &claims(sub, 600, serde_json::json!({"iss": idp.issuer()})),
    )
}

#[tokio::test]
async fn jwks_keys_are_fetched_before_the_swap_and_the_old_refresh_stops() {
    use support::idp::{Answer, Idp};
    let mut upstream = Upstream::start(false).await;
    let first = Idp::start(vec![jwk("kid-a")]).await;
    let proxy = run(&idp_config(upstream.addr, &first), &[]).await;
    let (mut ws, mut up) = open(&proxy, &mut upstream, &idp_token(&first, "alice")).await;
    // A provider whose keys cannot be loaded refuses the reload whole.
    let down = Idp::start(vec![jwk("kid-a")]).await;
    down.answer(Answer::Down);
    rewrite(&proxy, &idp_config(upstream.addr, &down));
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let message = answer.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.starts_with("auth.providers: provider \"idp\""),
        "{message}"
    );
    let (mut still, _still_up) = open(&proxy, &mut upstream, &idp_token(&first, "bob")).await;
    // Another IdP with the same key: reloaded; the first one is no longer polled.
    let next = Idp::start(vec![jwk("kid-a")]).await;
    rewrite(&proxy, &idp_config(upstream.addr, &next));
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["key_removed"],
        0,
        "the same key stays: nobody is told"
    );
    assert!(next.fetches() >= 1, "fetched before the swap");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let polled = first.fetches();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        first.fetches(),
        polled,
        "the old verifier's refresh task stopped"
    );
    assert!(next.fetches() > 1, "the new one refreshes");
    let (mut fresh, mut fresh_up) = open(&proxy, &mut upstream, &idp_token(&next, "carol")).await;
    relays(&mut fresh, &mut fresh_up, "new issuer").await;
    relays(&mut ws, &mut up, "live connections are kept").await;
    support::lifecycle::expect_silence(&mut still, Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_changed_log_level_applies_at_once() {
    let mut upstream = Upstream::start(false).await;
    let quiet = "[log]\nlevel = \"info,wsguard::audit=off\"\n";
    let proxy = run(&config(upstream.addr, "secret", quiet), &[]).await;
    let _before = open(&proxy, &mut upstream, &token("alice", 300).0).await;
    assert!(
        !proxy
            .lines()
            .iter()
            .any(|l| l.contains("connection opened")),
        "{:?}",
        proxy.lines()
    );
    rewrite(
        &proxy,
        &config(upstream.addr, "secret", "[log]\nlevel = \"info\"\n"),
    );
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let from = proxy.lines().len();
    let _after = open(&proxy, &mut upstream, &token("bob", 300).0).await;
    log_line(&proxy, from, "connection opened").await;
}

/// A reload to another upstream host resolves it before the swap (new
/// connections go there, with no lookup of their own); a host that does
/// not resolve refuses the reload, naming `upstream.url`.
#[tokio::test]
async fn a_changed_upstream_host_is_resolved_before_the_swap() {
    let first = Upstream::start(false).await;
    let mut second = Upstream::start(false).await;
    let proxy = run(&config(first.addr, "secret", ""), &[]).await;
    let by_name = config(first.addr, "secret", "").replace(
        &format!("ws://{}", first.addr),
        &format!("ws://localhost:{}", second.addr.port()),
    );
    rewrite(&proxy, &by_name);
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (mut ws, mut up) = open(&proxy, &mut second, &token("alice", 300).0).await;
    relays(&mut ws, &mut up, "to the second upstream").await;

    let unknown = config(first.addr, "secret", "").replace(
        &format!("ws://{}", first.addr),
        "ws://wsguard-reload-test.invalid:9",
    );
    rewrite(&proxy, &unknown);
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.json()["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("upstream.url: cannot resolve")),
        "{}",
        answer.body
    );
    // The configuration in force stays: still the second upstream.
    let (mut ws, mut up) = open(&proxy, &mut second, &token("bob", 300).0).await;
    relays(&mut ws, &mut up, "still the second").await;
}

/// In process: once a reload swapped the proxy, the listener holds nothing
/// of the one it started with (its upstream addresses, their refresh), so
/// that proxy goes with its last connection.
#[tokio::test]
async fn the_listener_keeps_no_proxy_of_its_own_after_a_swap() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let started_with = proxy.process.proxy.load_full().expect("a current proxy");
    let weak = std::sync::Arc::downgrade(&started_with);
    drop(started_with);
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let text = format!(
        "[upstream]\nurl = \"ws://{}\"\n{}",
        upstream.addr,
        DEFAULT_AUTH.replace("@SECRET_FILE@", &secret.display().to_string())
    );
    let config = wsguard::config::Config::parse(&text).expect("config");
    let next = wsguard::proxy::Proxy::new(&config).expect("proxy");
    drop(proxy.process.proxy.swap(next));
    // A connection accepted after the swap runs on the new proxy.
    let mut ws = authed(&proxy, "/", &hs256("alice", 600)).await;
    let _up = upstream.accept().await;
    support::lifecycle::round_trip(&mut ws, "on the new proxy").await;
    assert!(weak.upgrade().is_none(), "the start-up proxy is still held");
}
