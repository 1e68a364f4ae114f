//! Revocation across replicas, on the real binary with a real
//! `redis-server`: a revocation on one proxy closes the socket on another
//! within a second and is refused by a proxy started later; Redis stopped
//! and started again (its append-only file kept): a revocation made on one
//! proxy during the outage reaches the other after both reconnect, one made
//! before it survives the restart, and local revocation worked throughout.

mod support;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{json, Value};
use support::admin::{run, Running};
use support::lifecycle::{expect_silence, round_trip, token_with};
use support::redis::Redis;
use support::*;

/// One worker, the test HMAC key, JSON logs, the admin listener on a free
/// port, revocations shared through the Redis in `WSGUARD_TEST_REDIS_URL`
/// (retries at most 200 ms apart).
fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[upstream]
url = "ws://{upstream}"
{BINARY_PROVIDER}[admin]
bind = "127.0.0.1:0"
[log]
format = "json"
[revocation]
redis_url_env = "WSGUARD_TEST_REDIS_URL"
redis_retry_max = "200ms"
"#
    )
}

/// Starts a proxy sharing `redis`, and waits for its link.
async fn replica(upstream: std::net::SocketAddr, redis: &Redis) -> Running {
    let proxy = run(
        &config(upstream),
        &[("WSGUARD_TEST_REDIS_URL", &redis.url())],
    )
    .await;
    redis_up(&proxy, 1.0).await;
    proxy
}

/// Waits until `wsguard_redis_up` is `want`.
async fn redis_up(proxy: &Running, want: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = proxy.scrape(None).await;
        if scrape.has("wsguard_redis_up") && scrape.value("wsguard_redis_up", &[]) == want {
            return;
        }
        assert!(Instant::now() < deadline, "wsguard_redis_up never {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A token of `sub` issued a second ago.
fn old_token(sub: &str) -> String {
    token_with(sub, 300, json!({"iat": now() - 1})).0
}

/// Connects and authenticates.
async fn authed_on(proxy: &Running, token: &str) -> Ws {
    let mut ws = proxy.connect("/").await;
    ws.send(auth_frame(token)).await.expect("send auth");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    ws
}

/// Connects with `token` and expects it refused as revoked.
async fn refused_on(proxy: &Running, token: &str) {
    let mut ws = proxy.connect("/").await;
    ws.send(auth_frame(token)).await.expect("send auth");
    assert_eq!(expect_close(&mut ws).await, (1008, "token revoked".into()));
}

/// `POST /revoke`; the answer's JSON.
async fn revoke(proxy: &Running, body: Value) -> Value {
    let r = proxy.send("POST", "/revoke", &body.to_string(), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn a_revocation_on_one_proxy_closes_the_socket_on_the_other() {
    let redis = Redis::start().await;
    let upstream = Upstream::start(true).await;
    let a = replica(upstream.addr, &redis).await;
    let b = replica(upstream.addr, &redis).await;
    let token = old_token("alice");
    let mut on_b = authed_on(&b, &token).await;
    let mut bob = authed_on(&b, &old_token("bob")).await;

    let started = Instant::now();
    let answer = revoke(&a, json!({"sub": "alice"})).await;
    assert_eq!(
        answer["closed"], 0,
        "nothing of alice's on this one: {answer}"
    );
    let closed = tokio::time::timeout(Duration::from_secs(1), expect_close(&mut on_b))
        .await
        .expect("closed on the other replica within a second");
    assert_eq!(closed, (1008, "token revoked".into()));
    println!(
        "revocation on one replica closed the socket on the other after {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    round_trip(&mut bob, "bob stays").await;
    refused_on(&b, &token).await;
    assert_eq!(
        b.scrape(None)
            .await
            .value("wsguard_revoked_closes_total", &[]),
        1.0
    );

    // A replica started afterwards loads it.
    let c = replica(upstream.addr, &redis).await;
    refused_on(&c, &token).await;
    // Lifted on one: lifted everywhere.
    let lifted = c
        .send("DELETE", "/revoke", r#"{"sub":"alice"}"#, None)
        .await;
    assert_eq!(lifted.status, 200, "{}", lifted.body);
    let deadline = Instant::now() + WAIT;
    while !b.get("/revocations", None).await.json()["revocations"]
        .as_array()
        .is_some_and(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "the lift never reached b");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    authed_on(&b, &token).await;
    let url = redis.url();
    for proxy in [&a, &b, &c] {
        assert!(
            !proxy.lines().iter().any(|l| l.contains(&url)),
            "the Redis URL was logged"
        );
    }
}

#[tokio::test]
async fn revocations_made_while_redis_is_down_reach_the_other_proxy_when_it_is_back() {
    let mut redis = Redis::start().await;
    let upstream = Upstream::start(true).await;
    let a = replica(upstream.addr, &redis).await;
    let b = replica(upstream.addr, &redis).await;
    // Before the outage: kept in Redis's append-only file across its restart.
    revoke(&a, json!({"sub": "carol"})).await;
    let alice = old_token("alice");
    let mut alice_on_b = authed_on(&b, &alice).await;
    let mut bob_on_a = authed_on(&a, &old_token("bob")).await;

    redis.stop().await;
    redis_up(&a, 0.0).await;
    redis_up(&b, 0.0).await;
    // Local revocation works throughout.
    let answer = revoke(&a, json!({"sub": "bob"})).await;
    assert_eq!(answer["closed"], 1, "{answer}");
    assert_eq!(
        expect_close(&mut bob_on_a).await,
        (1008, "token revoked".into())
    );
    revoke(&a, json!({"sub": "alice"})).await;
    expect_silence(&mut alice_on_b, Duration::from_millis(300)).await;

    redis.restart().await;
    redis_up(&a, 1.0).await;
    assert_eq!(
        expect_close(&mut alice_on_b).await,
        (1008, "token revoked".into())
    );
    refused_on(&b, &old_token("bob")).await;
    let fresh = replica(upstream.addr, &redis).await;
    refused_on(&fresh, &old_token("carol")).await;
    refused_on(&fresh, &alice).await;
    for proxy in [&a, &b] {
        let lines = proxy.lines();
        let down = lines
            .iter()
            .filter(|l| l.contains("redis link down"))
            .count();
        assert_eq!(down, 1, "one warning per outage: {lines:#?}");
    }
}
