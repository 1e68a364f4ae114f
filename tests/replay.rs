//! Replay protection: `auth.max_connections_per_token` (a token, known by
//! its `jti` or else its hash, opens at most that many live connections;
//! one more gets 1008 `token in use`, a REAUTH with a token in use
//! elsewhere gets `error` `token_in_use`) and `auth.require_jti`.

mod support;
use support::lifecycle::*;
use support::*;

use serde_json::json;

/// The default `[auth]` with extra keys.
fn auth_with(lines: &str) -> String {
    DEFAULT_AUTH.replacen("[auth]\n", &format!("[auth]\n{lines}\n"), 1)
}

/// A proxy allowing `max` live connections per token.
async fn limited(upstream: &Upstream, max: u32, session: &str) -> TestProxy {
    proxy(upstream.addr)
        .auth(&auth_with(&format!("max_connections_per_token = {max}")))
        .session(session)
        .start()
        .await
}

/// Sends the auth frame and expects the connection to be closed with `reason` (1008).
async fn refused(proxy: &TestProxy, token: &str, reason: &str) {
    let mut ws = connect(proxy, "/").await;
    send(&mut ws, auth_frame(token)).await;
    assert_eq!(expect_close(&mut ws).await, (1008, reason.to_owned()));
}

/// Closes the client and waits for the proxy to end the connection.
async fn close_and_wait(mut ws: Ws) {
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws))
        .await
        .expect("the proxy ends the connection")
    {}
}

#[tokio::test]
async fn a_second_socket_with_the_same_token_is_refused_while_the_first_is_live() {
    let mut upstream = Upstream::start(true).await;
    let proxy = limited(&upstream, 1, "").await;
    let (tok, _) = token("alice", 600);
    let mut first = authed(&proxy, "/", &tok).await;
    let _up = upstream.accept().await;
    refused(&proxy, &tok, "token in use").await;
    // Another token of the same user (no jti: known by its hash) is its own.
    let (other, _) = token("alice", 601);
    let mut second = authed(&proxy, "/", &other).await;
    let _up2 = upstream.accept().await;
    round_trip(&mut first, "first still works").await;
    round_trip(&mut second, "second too").await;
    close_and_wait(first).await;
    let mut again = authed(&proxy, "/", &tok).await;
    let _up3 = upstream.accept().await;
    round_trip(&mut again, "the token is free again").await;
}

#[tokio::test]
async fn tokens_are_known_by_their_jti() {
    let mut upstream = Upstream::start(true).await;
    let proxy = limited(&upstream, 1, "").await;
    let (a, _) = token_with("alice", 600, json!({"jti": "j-1"}));
    // Another text (another exp), the same jti: the same token.
    let (same_jti, _) = token_with("alice", 700, json!({"jti": "j-1"}));
    let (other_jti, _) = token_with("alice", 600, json!({"jti": "j-2"}));
    let _first = authed(&proxy, "/", &a).await;
    let _up = upstream.accept().await;
    refused(&proxy, &same_jti, "token in use").await;
    let _second = authed(&proxy, "/", &other_jti).await;
}

#[tokio::test]
async fn max_two_allows_two_sockets_per_token() {
    let mut upstream = Upstream::start(true).await;
    let proxy = limited(&upstream, 2, "").await;
    let (tok, _) = token("alice", 600);
    let _a = authed(&proxy, "/", &tok).await;
    let _up_a = upstream.accept().await;
    let _b = authed(&proxy, "/", &tok).await;
    let _up_b = upstream.accept().await;
    refused(&proxy, &tok, "token in use").await;
}

#[tokio::test]
async fn reauth_with_a_token_in_use_elsewhere_fails_and_a_reauth_moves_the_count() {
    let mut upstream = Upstream::start(true).await;
    let session = "reauth_min_interval = \"0s\"\nmax_reauth_failures = 2\n";
    let proxy = limited(&upstream, 1, session).await;
    let (t1, _) = token("alice", 600);
    let (t2, _) = token("alice", 500);
    let (t3, _) = token("alice", 700);
    let mut a = authed(&proxy, "/", &t1).await;
    let _up_a = upstream.accept().await;
    let mut b = authed(&proxy, "/", &t2).await;
    let _up_b = upstream.accept().await;

    // B presents A's token: refused, and counted as a failed REAUTH.
    send(&mut b, reauth("r1", &t1)).await;
    let v = recv_type(&mut b, "error").await;
    assert_eq!(v["payload"]["code"], "token_in_use", "{v}");
    assert_eq!(v["payload"]["in_reply_to"], "r1", "{v}");
    round_trip(&mut b, "b still relays").await;

    // A moves to t3: t1 is free for a new socket, t3 is not.
    send(&mut a, reauth("r2", &t3)).await;
    let v = recv_type(&mut a, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "r2", "{v}");
    refused(&proxy, &t3, "token in use").await;
    let mut c = authed(&proxy, "/", &t1).await;
    let _up_c = upstream.accept().await;
    round_trip(&mut c, "t1 is c's now").await;

    // B's second failure in a row (c holds t1 now) closes it.
    send(&mut b, reauth("r3", &t1)).await;
    assert_eq!(
        expect_close(&mut b).await,
        (1008, "too many failed reauth".into())
    );
    // A REAUTH with the token the connection already holds is fine.
    send(&mut a, reauth("r4", &t3)).await;
    let v = recv_type(&mut a, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "r4", "{v}");
}

#[tokio::test]
async fn require_jti_refuses_tokens_without_one() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .auth(&auth_with("require_jti = true"))
        .session("reauth_min_interval = \"0s\"")
        .start()
        .await;
    let (plain, _) = token("alice", 600);
    refused(&proxy, &plain, "invalid token").await;
    let (numeric, _) = token_with("alice", 600, json!({"jti": 7}));
    refused(&proxy, &numeric, "invalid token").await;
    let (with, _) = token_with("alice", 600, json!({"jti": "j-1"}));
    let mut ws = authed(&proxy, "/", &with).await;
    let _up = upstream.accept().await;
    let (later, _) = token("alice", 700);
    send(&mut ws, reauth("r1", &later)).await;
    let v = recv_type(&mut ws, "error").await;
    assert_eq!(v["payload"]["code"], "invalid_token", "{v}");
    assert_eq!(
        v["payload"]["message"], "missing or wrong claim: jti",
        "{v}"
    );
}

#[test]
fn zero_connections_per_token_is_a_config_error_naming_the_key() {
    let text = proxy(std::net::SocketAddr::from(([127, 0, 0, 1], 9)))
        .auth(&auth_with("max_connections_per_token = 0"))
        .toml("/nonexistent");
    let config = wsguard::config::Config::parse(&text).expect("parses");
    let error = wsguard::proxy::Proxy::new(&config)
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("auth.max_connections_per_token"), "{error}");
}

/// The real binary with four workers: the count holds across them, and the
/// refusals are counted.
#[tokio::test]
async fn the_count_holds_across_workers() {
    let upstream = Upstream::start(true).await;
    let config = binary_config(upstream.addr, "worker_threads = 4", "");
    let running = admin::run(&config, &[]).await;
    let (tok, _) = token("alice", 600);
    let mut first = running.connect("/").await;
    send(&mut first, auth_frame(&tok)).await;
    assert_eq!(
        recv_type(&mut first, "AUTHENTICATED").await["type"],
        "AUTHENTICATED"
    );
    // Eight more sockets from eight source ports: spread over the workers
    // by the kernel, every one is refused.
    for _ in 0..8 {
        let mut ws = running.connect("/").await;
        send(&mut ws, auth_frame(&tok)).await;
        assert_eq!(expect_close(&mut ws).await, (1008, "token in use".into()));
    }
    let scrape = running.scrape(None).await;
    let closes = scrape.value(
        "wsguard_closes_total",
        &[("reason", "token_in_use"), ("side", "proxy")],
    );
    assert_eq!(closes, 8.0, "{}", scrape.text);
    let failed = scrape.value(
        "wsguard_auth_total",
        &[
            ("kind", "first"),
            ("result", "failed"),
            ("reason", "token_in_use"),
        ],
    );
    assert_eq!(failed, 8.0, "{}", scrape.text);
}

/// Opens a WebSocket with `Authorization: Bearer <token>` on the upgrade.
async fn with_bearer(proxy: &TestProxy, token: &str) -> Ws {
    with_bearer_at(&proxy.url("/"), token).await
}

/// [`with_bearer`] to any `ws://` URL.
async fn with_bearer_at(url: &str, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("request");
    let value = format!("Bearer {token}").parse().expect("header value");
    request.headers_mut().insert("authorization", value);
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}

/// The real binary's configuration: one connection per token, the admin
/// listener, `listener` keys, and `auth` keys or subtables.
fn binary_config(upstream: std::net::SocketAddr, listener: &str, auth: &str) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
{listener}
[upstream]
url = "ws://{upstream}"
[auth]
max_connections_per_token = 1
{auth}
{BINARY_PROVIDER}[admin]
bind = "127.0.0.1:0"
"#
    )
}

#[tokio::test]
async fn an_upgrade_request_token_counts_too() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .auth(&auth_with("max_connections_per_token = 1"))
        .legacy("header = true")
        .start()
        .await;
    let (tok, _) = token("alice", 600);
    let mut first = with_bearer(&proxy, &tok).await;
    let _up = upstream.accept().await;
    round_trip(&mut first, "authenticated at the upgrade").await;
    let mut second = with_bearer(&proxy, &tok).await;
    assert_eq!(
        expect_close(&mut second).await,
        (1008, "token in use".into())
    );
    // The first-message path shares the count.
    refused(&proxy, &tok, "token in use").await;
}

#[tokio::test]
async fn an_upgrade_token_in_use_is_counted_as_in_use_not_ok() {
    let upstream = Upstream::start(true).await;
    let config = binary_config(upstream.addr, "", "[auth.legacy]\nheader = true");
    let running = admin::run(&config, &[]).await;
    let (tok, _) = token("alice", 600);
    let url = format!("ws://{}/", running.proxy);
    let mut first = with_bearer_at(&url, &tok).await;
    round_trip(&mut first, "authenticated at the upgrade").await;
    let mut second = with_bearer_at(&url, &tok).await;
    assert_eq!(
        expect_close(&mut second).await,
        (1008, "token in use".into())
    );
    let scrape = running.scrape(None).await;
    let header = |result: &str, reason: &str| {
        scrape.value(
            "wsguard_auth_total",
            &[("kind", "header"), ("result", result), ("reason", reason)],
        )
    };
    assert_eq!(
        (header("ok", "ok"), header("failed", "token_in_use")),
        (1.0, 1.0),
        "{}",
        scrape.text
    );
}
