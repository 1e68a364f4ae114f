//! `[limits]` on real sockets: each limit at and over its value (the
//! documented answer) and recovery afterwards; the trusted-proxy address
//! rule; the per-subject cap both ways; a spray over 127.0.0.0/8 bounded by
//! the cache's capacity.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::SinkExt;
use support::raw::{read_head, upgrade_request};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// An upgrade from `from` (an address of 127.0.0.0/8) with `extra` header
/// lines; the socket and the response head.
async fn upgrade_from(proxy: SocketAddr, from: IpAddr, extra: &str) -> (TcpStream, String) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    let mut tcp = tokio::time::timeout(WAIT, socket.connect(proxy))
        .await
        .expect("connect in time")
        .expect("connect");
    let request = upgrade_request(proxy, "/", extra);
    tcp.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut tcp).await;
    (tcp, head)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"))
}

/// Retries an upgrade until it gets 101 (a limit recovering), within `WAIT`.
async fn upgrade_until_101(proxy: SocketAddr, from: IpAddr) -> TcpStream {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (tcp, head) = upgrade_from(proxy, from, "").await;
        if status(&head) == 101 {
            return tcp;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {head}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A refusal's status, with `Retry-After: 1` and a JSON body.
fn assert_refused(head: &str, status_code: u16) {
    assert_eq!(status(head), status_code, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1\r\n"), "{head}");
    assert!(lower.contains("application/json"), "{head}");
}

/// The JSON `error` of a refused upgrade (its body follows the head).
async fn error_code(tcp: &mut TcpStream, head: &str) -> String {
    use tokio::io::AsyncReadExt;
    let lower = head.to_ascii_lowercase();
    let len: usize = lower
        .split("content-length: ")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0; len];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    v["error"].as_str().unwrap_or_default().to_owned()
}

const LOCAL: &str = "127.0.0.1";

#[tokio::test]
async fn max_connections_answers_503_and_recovers() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("max_connections = 2\nretry_after = \"1s\"")
        .start()
        .await;
    let (a, head) = upgrade_from(proxy.addr, ip(LOCAL), "").await;
    assert_eq!(status(&head), 101, "{head}");
    let (_b, head) = upgrade_from(proxy.addr, ip("127.0.0.2"), "").await;
    assert_eq!(status(&head), 101, "{head}");
    let (mut c, head) = upgrade_from(proxy.addr, ip("127.0.0.3"), "").await;
    assert_refused(&head, 503);
    assert_eq!(error_code(&mut c, &head).await, "over_capacity");
    drop(a);
    upgrade_until_101(proxy.addr, ip("127.0.0.3")).await;
}

#[tokio::test]
async fn max_unauthenticated_counts_only_until_auth() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("max_unauthenticated = 1\nretry_after = \"1s\"")
        .start()
        .await;
    let mut first = connect(&proxy, "/").await;
    let (mut refused, head) = upgrade_from(proxy.addr, ip(LOCAL), "").await;
    assert_refused(&head, 503);
    assert_eq!(error_code(&mut refused, &head).await, "over_capacity");
    first
        .send(auth_frame(&hs256("alice", 600)))
        .await
        .expect("auth");
    assert_eq!(recv_json(&mut first).await["type"], "AUTHENTICATED");
    // Authenticated, it no longer counts: another may wait for its first frame.
    let (_second, head) = upgrade_from(proxy.addr, ip(LOCAL), "").await;
    assert_eq!(status(&head), 101, "{head}");
}

#[tokio::test]
async fn per_address_rate_answers_429_and_recovers() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("per_address_rate = 4\nper_address_burst = 2\nretry_after = \"1s\"")
        .start()
        .await;
    let from = ip("127.0.0.5");
    for _ in 0..2 {
        let (_tcp, head) = upgrade_from(proxy.addr, from, "").await;
        assert_eq!(status(&head), 101, "{head}");
    }
    let (mut tcp, head) = upgrade_from(proxy.addr, from, "").await;
    assert_refused(&head, 429);
    assert_eq!(error_code(&mut tcp, &head).await, "rate_limited");
    // Another address has its own rate.
    let (_tcp, head) = upgrade_from(proxy.addr, ip("127.0.0.6"), "").await;
    assert_eq!(status(&head), 101, "{head}");
    // One more per 250 ms.
    upgrade_until_101(proxy.addr, from).await;
}

#[tokio::test]
async fn per_address_connections_answers_429_until_one_closes() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("per_address_connections = 2\nper_address_rate = 0\nretry_after = \"1s\"")
        .start()
        .await;
    let from = ip("127.0.0.7");
    let (a, _) = upgrade_from(proxy.addr, from, "").await;
    let (_b, head) = upgrade_from(proxy.addr, from, "").await;
    assert_eq!(status(&head), 101, "{head}");
    let (mut tcp, head) = upgrade_from(proxy.addr, from, "").await;
    assert_refused(&head, 429);
    assert_eq!(error_code(&mut tcp, &head).await, "rate_limited");
    let (_other, head) = upgrade_from(proxy.addr, ip("127.0.0.8"), "").await;
    assert_eq!(status(&head), 101, "{head}");
    drop(a);
    upgrade_until_101(proxy.addr, from).await;
    // The count's entry is removed at zero: only open connections are kept.
    assert_eq!(proxy.process.limits.addresses_with_connections(), 2);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_counts() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("trusted_proxies = [\"127.0.0.1/32\"]")
        .limits("per_address_connections = 1\nper_address_rate = 0\nretry_after = \"1s\"")
        .start()
        .await;
    let xff = |client: &str| format!("X-Forwarded-For: {client}\r\n");
    let (_a, head) = upgrade_from(proxy.addr, ip(LOCAL), &xff("198.51.100.1")).await;
    assert_eq!(status(&head), 101, "{head}");
    // Another client behind the same proxy; a spoofed first entry is not the client.
    let (_b, head) = upgrade_from(proxy.addr, ip(LOCAL), &xff("198.51.100.1, 198.51.100.2")).await;
    assert_eq!(status(&head), 101, "{head}");
    let (_c, head) = upgrade_from(proxy.addr, ip(LOCAL), &xff("203.0.113.9, 198.51.100.1")).await;
    assert_eq!(status(&head), 429, "{head}");
    // A peer that is not trusted is counted by its own address, whatever it claims.
    let (_d, head) = upgrade_from(proxy.addr, ip("127.0.0.9"), &xff("192.0.2.1")).await;
    assert_eq!(status(&head), 101, "{head}");
    let (_e, head) = upgrade_from(proxy.addr, ip("127.0.0.9"), &xff("192.0.2.2")).await;
    assert_eq!(status(&head), 429, "{head}");
}

/// A connection that sends an auth frame with `token`: authenticated, or its close frame.
async fn try_auth(proxy: &TestProxy, token: &str) -> Result<Ws, (u16, String)> {
    let mut ws = connect(proxy, "/").await;
    ws.send(auth_frame(token)).await.expect("send auth");
    match recv(&mut ws).await {
        tokio_tungstenite::tungstenite::Message::Text(t) if t.contains("AUTHENTICATED") => Ok(ws),
        tokio_tungstenite::tungstenite::Message::Close(Some(f)) => {
            Err((u16::from(f.code), f.reason.to_string()))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn failed_auths_start_a_cool_down_at_the_first_frame() {
    let upstream = Upstream::start(true).await;
    for (codes, code) in [("policy", 1008), ("distinct", 4429)] {
        let proxy = proxy(upstream.addr)
            .session(&format!("close_codes = \"{codes}\""))
            .limits("failed_auth_max = 2\nfailed_auth_window = \"1h\"\nfailed_auth_cooldown = \"600ms\"")
            .start()
            .await;
        let bad = hs256_claims(&claims("mallory", -120, serde_json::json!({})));
        for _ in 0..3 {
            let (_, reason) = try_auth(&proxy, &bad).await.expect_err("refused");
            assert_eq!(reason, "invalid token");
        }
        // Refused even with a valid token, during the cool-down.
        let good = hs256("alice", 600);
        assert_eq!(
            try_auth(&proxy, &good).await.err(),
            Some((code, "too many attempts".to_owned()))
        );
        // After it, the token is verified again.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match try_auth(&proxy, &good).await {
                Ok(_) => break,
                Err((_, reason)) => assert_eq!(reason, "too many attempts"),
            }
            assert!(tokio::time::Instant::now() < deadline, "no recovery");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn the_per_subject_cap_refuses_the_new_connection() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("max_connections_per_subject = 1")
        .start()
        .await;
    let first = authed(&proxy, "/", &hs256("alice", 600)).await;
    assert_eq!(
        try_auth(&proxy, &hs256("alice", 600)).await.err(),
        Some((1008, "too many connections".to_owned()))
    );
    let _bob = authed(&proxy, "/", &hs256("bob", 600)).await;
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    while try_auth(&proxy, &hs256("alice", 600)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_per_subject_cap_can_evict_the_oldest() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("max_connections_per_subject = 1\nevict = \"oldest\"")
        .start()
        .await;
    let mut oldest = authed(&proxy, "/", &hs256("alice", 600)).await;
    let mut newest = authed(&proxy, "/", &hs256("alice", 600)).await;
    assert_eq!(
        expect_close(&mut oldest).await,
        (1008, "too many connections".to_owned())
    );
    support::lifecycle::round_trip(&mut newest, "still here").await;
}

#[tokio::test]
async fn a_burst_over_the_per_subject_cap_evicts_down_to_the_cap() {
    use tokio_tungstenite::tungstenite::Message;
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("max_connections_per_subject = 2\nevict = \"oldest\"")
        .start()
        .await;
    let token = hs256("alice", 600);
    let mut all = vec![
        authed(&proxy, "/", &token).await,
        authed(&proxy, "/", &token).await,
    ];
    // A burst of four: upgraded first, then their auth frames at once.
    let mut burst = Vec::new();
    for _ in 0..4 {
        burst.push(connect(&proxy, "/").await);
    }
    for ws in &mut burst {
        ws.send(auth_frame(&token)).await.expect("send auth");
    }
    let too_many = |m: &Option<Message>| match m {
        Some(Message::Close(Some(f))) => {
            assert_eq!(
                (u16::from(f.code), f.reason.as_str()),
                (1008, "too many connections")
            );
            true
        }
        _ => false,
    };
    // Each is answered, or evicted before its answer; a connection sends
    // its evictions before its answer, so every one is sent by now.
    let mut closed = 0;
    let mut answered = Vec::new();
    for mut ws in burst {
        let first = recv_within(&mut ws, WAIT).await;
        if too_many(&first) {
            closed += 1;
        } else {
            assert!(
                matches!(&first, Some(Message::Text(t)) if t.contains("AUTHENTICATED")),
                "{first:?}"
            );
            answered.push(ws);
        }
    }
    all.extend(answered);
    let registry = &proxy.process.registry;
    let staying = registry.find(|e| e.identity.sub == "alice" && !e.mailbox.closing());
    assert_eq!(staying.len(), 2, "{staying:?}");
    // The evicted get their close at once; the others relay.
    let mut relaying = 0;
    for ws in &mut all {
        let next = recv_within(ws, Duration::from_millis(300)).await;
        if too_many(&next) {
            closed += 1;
        } else {
            assert!(next.is_none(), "{next:?}");
            support::lifecycle::round_trip(ws, "still here").await;
            relaying += 1;
        }
    }
    assert_eq!((closed, relaying), (4, 2));
}

#[tokio::test]
async fn an_address_spray_is_bounded_by_the_cache_capacity() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .limits("address_capacity = 50\nper_address_rate = 100")
        .start()
        .await;
    for i in 0..400u32 {
        let from = IpAddr::from([127, 1, (i / 250) as u8, (i % 250 + 1) as u8]);
        let (tcp, head) = upgrade_from(proxy.addr, from, "").await;
        assert_eq!(status(&head), 101, "{head}");
        drop(tcp);
    }
    let remembered = proxy.process.limits.remembered_addresses();
    assert!(remembered <= 50, "{remembered} addresses remembered");
}

#[tokio::test]
async fn failed_upgrade_tokens_count_too() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .legacy("header = true")
        .limits("failed_auth_max = 1\nfailed_auth_window = \"1h\"\nfailed_auth_cooldown = \"1h\"")
        .start()
        .await;
    let with_token = |token: &str| {
        let mut r = support::requests::ws_request(&proxy, "/");
        r.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        r
    };
    let bad = hs256_claims(&claims("mallory", -120, serde_json::json!({})));
    for _ in 0..2 {
        let mut ws = support::requests::connect_request(with_token(&bad)).await;
        assert_eq!(
            expect_close(&mut ws).await,
            (1008, "invalid token".to_owned())
        );
    }
    // Cooling down: even a valid header token is refused, and so is a first frame.
    let mut ws = support::requests::connect_request(with_token(&hs256("alice", 600))).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "too many attempts".to_owned())
    );
    assert_eq!(
        try_auth(&proxy, &hs256("alice", 600)).await.err(),
        Some((1008, "too many attempts".to_owned()))
    );
}

#[tokio::test]
async fn upgrade_tokens_refused_with_401_count_and_a_cool_down_answers_429() {
    use support::requests::raw_http;
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .legacy("header = true\nreject_with_http = true")
        .limits("failed_auth_max = 1\nfailed_auth_window = \"1h\"\nfailed_auth_cooldown = \"1h\"")
        .start()
        .await;
    let upgrade = |token: &str| {
        upgrade_request(
            proxy.addr,
            "/",
            &format!("Authorization: Bearer {token}\r\nConnection: close\r\n"),
        )
    };
    let bad = hs256_claims(&claims("mallory", -120, serde_json::json!({})));
    for _ in 0..2 {
        assert_eq!(raw_http(proxy.addr, &upgrade(&bad)).await.status, 401);
    }
    // Cooling down: a valid upgrade token gets 429, a first frame 1008.
    let refused = raw_http(proxy.addr, &upgrade(&hs256("alice", 600))).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("3600"));
    assert_eq!(refused.json()["error"], "too_many_attempts");
    assert_eq!(
        try_auth(&proxy, &hs256("alice", 600)).await.err(),
        Some((1008, "too many attempts".to_owned()))
    );
}

#[tokio::test]
async fn protected_http_routes_count_and_answer_429() {
    use support::requests::{raw_http, HttpUpstream};
    let upstream = HttpUpstream::start().await;
    let proxy = proxy(upstream.addr)
        .http("protect = true")
        .limits("failed_auth_max = 1\nfailed_auth_window = \"1h\"\nfailed_auth_cooldown = \"1h\"")
        .start()
        .await;
    let get = |token: &str| {
        format!(
            "GET /api HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
    };
    let bad = hs256_claims(&claims("mallory", -120, serde_json::json!({})));
    for _ in 0..2 {
        assert_eq!(raw_http(proxy.addr, &get(&bad)).await.status, 401);
    }
    let refused = raw_http(proxy.addr, &get(&hs256("alice", 600))).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("3600"));
    assert_eq!(refused.json()["error"], "too_many_attempts");
}
