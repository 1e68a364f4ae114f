//! Token lifecycle on live connections: auth_required, REAUTH (swap in place, mismatch, errors, rate limit), TOKEN_EXPIRED and the grace, heartbeats, distinct close codes, upstream notice, max lifetime.

mod support;
use support::lifecycle::*;
use support::*;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// REAUTH is not rate limited unless a test is about the rate limit.
const NO_RATE_LIMIT: &str = "reauth_min_interval = \"0s\"\n";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An `error` frame's payload, checked for its code and `in_reply_to`.
async fn expect_error(ws: &mut Ws, code: &str, in_reply_to: Value) -> Value {
    let v = recv_type(ws, "error").await;
    assert_eq!(v["payload"]["code"], code, "{v}");
    assert_eq!(v["payload"]["in_reply_to"], in_reply_to, "{v}");
    assert!(
        v["payload"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without a message: {v}"
    );
    v
}

/// An `AUTHENTICATED` answer to a REAUTH, checked for `in_reply_to` and the new `exp`.
async fn expect_reauthenticated(ws: &mut Ws, in_reply_to: &str, exp: i64) {
    let v = recv_type(ws, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], in_reply_to, "{v}");
    assert_eq!(v["payload"]["exp"], exp, "{v}");
    assert_eq!(v["payload"]["expires_at"], rfc3339(exp), "{v}");
}

#[tokio::test]
async fn auth_required_arrives_at_exp_minus_lead_once() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session("reauth_lead = \"2s\"")
        .start()
        .await;
    let (tok, exp) = token("alice", 4);
    let mut ws = authed(&proxy, "/", &tok).await;
    let _up = upstream.accept().await;

    let v = recv_type(&mut ws, "auth_required").await;
    let at = unix_now_f64();
    let due = (exp - 2) as f64;
    assert!(
        at >= due - 0.25 && at <= due + 1.5,
        "auth_required at {at}, due at {due}"
    );
    assert_eq!(v["payload"]["expires_at"], rfc3339(exp), "{v}");
    let expires_in = v["payload"]["expires_in"].as_i64().expect("expires_in");
    assert!((1..=3).contains(&expires_in), "expires_in {expires_in}");
    // Once per token: nothing else before exp (still ≥ 1 s away).
    expect_silence(&mut ws, ms(1000)).await;
}

#[tokio::test]
async fn auth_required_is_not_repeated_for_the_same_token() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session(&format!("reauth_lead = \"2s\"\n{NO_RATE_LIMIT}"))
        .start()
        .await;
    let (tok, exp) = token("alice", 4);
    let mut ws = authed(&proxy, "/", &tok).await;
    let _up = upstream.accept().await;
    recv_type(&mut ws, "auth_required").await;
    // Answering with the very same token changes nothing: no new notice for it.
    send(&mut ws, reauth("same", &tok)).await;
    expect_reauthenticated(&mut ws, "same", exp).await;
    let v = recv_type(&mut ws, "TOKEN_EXPIRED").await;
    assert_eq!(v["payload"]["expired_at"], rfc3339(exp), "{v}");
}

#[tokio::test]
async fn auth_required_is_immediate_inside_the_window() {
    let mut upstream = Upstream::start(true).await;
    // Default lead (60 s) is longer than the token's life.
    let proxy = proxy(upstream.addr).start().await;
    let (tok, exp) = token("alice", 10);
    let mut ws = authed(&proxy, "/", &tok).await;
    let authenticated = Instant::now();
    let _up = upstream.accept().await;
    let v = recv_type(&mut ws, "auth_required").await;
    // Immediate, not at exp (≥ 9 s away).
    assert!(
        authenticated.elapsed() < Duration::from_secs(3),
        "not immediate"
    );
    assert_eq!(v["payload"]["expires_at"], rfc3339(exp), "{v}");
    let expires_in = v["payload"]["expires_in"].as_i64().expect("expires_in");
    assert!((8..=10).contains(&expires_in), "expires_in {expires_in}");
    round_trip(&mut ws, "still relaying").await;
}

#[tokio::test]
async fn reauth_mid_stream_swaps_token_without_touching_upstream() {
    const N: usize = 300;
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).session(NO_RATE_LIMIT).start().await;
    let (t1, _) = token("alice", 600);
    let (t2, exp2) = token("alice", 1200);
    let ws = authed(&proxy, "/", &t1).await;
    let UpConn { mut rx, tx, .. } = upstream.accept().await;
    let (mut sink, mut stream) = ws.split();

    let client_sender = tokio::spawn(async move {
        for i in 1..=N {
            sink.send(Message::text(format!("c{i}")))
                .await
                .expect("client send");
            if i == N / 2 {
                sink.send(reauth("r-mid", &t2)).await.expect("send REAUTH");
            }
            tokio::time::sleep(ms(2)).await;
        }
        sink
    });
    let upstream_sender = tokio::spawn(async move {
        for i in 1..=N {
            tx.send(Cmd::Send(Message::text(format!("u{i}"))))
                .expect("upstream command");
            tokio::time::sleep(ms(2)).await;
        }
        tx
    });

    let mut from_upstream = Vec::new();
    let mut control = Vec::new();
    while from_upstream.len() < N {
        let m = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("client got no frame in time")
            .expect("client stream ended")
            .expect("client read error");
        match m {
            Message::Text(t) if t.starts_with('u') => from_upstream.push(t.to_string()),
            Message::Text(t) => control.push(serde_json::from_str::<Value>(&t).expect("JSON")),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("client got {other:?}"),
        }
    }
    let mut from_client = Vec::new();
    while from_client.len() < N {
        let m = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("upstream got no frame in time")
            .expect("upstream connection ended");
        match m {
            Message::Text(t) => from_client.push(t.to_string()),
            other => panic!("upstream got {other:?}"),
        }
    }
    let _sink = client_sender.await.expect("client sender");
    let _tx = upstream_sender.await.expect("upstream sender");

    let expected_c: Vec<String> = (1..=N).map(|i| format!("c{i}")).collect();
    let expected_u: Vec<String> = (1..=N).map(|i| format!("u{i}")).collect();
    assert_eq!(from_client, expected_c, "client → upstream frames");
    assert_eq!(from_upstream, expected_u, "upstream → client frames");
    assert_eq!(control.len(), 1, "control frames: {control:?}");
    assert_eq!(control[0]["type"], "AUTHENTICATED", "{}", control[0]);
    assert_eq!(control[0]["payload"]["in_reply_to"], "r-mid");
    assert_eq!(control[0]["payload"]["exp"], exp2);
    // Nothing else reached the upstream (no REAUTH, no notice by default)…
    assert!(
        tokio::time::timeout(ms(300), rx.recv())
            .await
            .ok()
            .flatten()
            .is_none(),
        "upstream got an extra frame"
    );
    // …and the proxy never reconnected.
    assert!(upstream.accept_within(ms(300)).await.is_none());
}

#[tokio::test]
async fn three_reauths_across_three_token_lifetimes() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session(&format!("reauth_lead = \"2s\"\n{NO_RATE_LIMIT}"))
        .start()
        .await;
    let (t1, first_exp) = token("alice", 4);
    let mut ws = authed(&proxy, "/", &t1).await;
    let _up = upstream.accept().await;
    let mut exp = first_exp;
    for round in 1..=3 {
        // If the previous token had not been swapped in, TOKEN_EXPIRED would come instead.
        let v = recv_type(&mut ws, "auth_required").await;
        assert_eq!(
            v["payload"]["expires_at"],
            rfc3339(exp),
            "round {round}: {v}"
        );
        let (next, next_exp) = token("alice", 4);
        assert!(next_exp >= exp);
        let id = format!("r{round}");
        send(&mut ws, reauth(&id, &next)).await;
        expect_reauthenticated(&mut ws, &id, next_exp).await;
        round_trip(&mut ws, &format!("after {id}")).await;
        exp = next_exp;
    }
    // The first two tokens are past their exp; the connection lives on the fourth.
    assert!(now() > first_exp + 1, "the test did not outlive its tokens");
    round_trip(&mut ws, "still here").await;
    assert!(
        upstream.accept_within(ms(200)).await.is_none(),
        "reconnected"
    );
}

#[tokio::test]
async fn reauth_synonyms_and_odd_formatting_are_consumed_not_forwarded() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).session(NO_RATE_LIMIT).start().await;
    let (t1, _) = token("alice", 600);
    let (t2, exp2) = token("alice", 1200);
    let mut ws = authed(&proxy, "/", &t1).await;
    let mut up = upstream.accept().await;

    send(&mut ws, control("auth", "s1", &t2)).await;
    expect_reauthenticated(&mut ws, "s1", exp2).await;
    send(&mut ws, control("AUTHENTICATE", "s2", &t2)).await;
    expect_reauthenticated(&mut ws, "s2", exp2).await;
    let odd = format!(
        "\n\t{{ \"id\" :\"s3\" ,\r\n  \"payload\":{{ \"token\" :   \"{t2}\" }}   ,\"type\"  :\t \"REAUTH\"\n}}  "
    );
    send_text(&mut ws, &odd).await;
    expect_reauthenticated(&mut ws, "s3", exp2).await;
    let escaped =
        format!(r#"{{"id":"s4","\u0074ype":"RE\u0041UTH","payload":{{"token":"{t2}"}}}}"#);
    send_text(&mut ws, &escaped).await;
    expect_reauthenticated(&mut ws, "s4", exp2).await;
    // A numeric id is echoed as a number; a bad token with odd layout is still consumed.
    send_text(
        &mut ws,
        "  {\"id\": 7,  \"type\":\"REAUTH\" , \"payload\" : {\"token\":\"nope\"}}",
    )
    .await;
    expect_error(&mut ws, "invalid_token", json!(7)).await;

    send_text(&mut ws, "marker").await;
    assert_eq!(
        up_text(&mut up).await,
        "marker",
        "a control frame leaked upstream"
    );
    up_silence(&mut up, ms(300)).await;
}

#[tokio::test]
async fn reauth_with_another_identity_closes_1008() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).session(NO_RATE_LIMIT).start().await;

    // Another sub.
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;
    send(&mut ws, reauth("m1", &token("bob", 1200).0)).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "identity mismatch".into())
    );
    assert_eq!(up_close(&mut up).await, (1001, "identity mismatch".into()));

    // Same sub, another iss.
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;
    let (other_iss, _) = token_with("alice", 1200, json!({"iss": "https://other.example"}));
    send(&mut ws, reauth("m2", &other_iss)).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "identity mismatch".into())
    );
    assert_eq!(up_close(&mut up).await, (1001, "identity mismatch".into()));
}

#[tokio::test]
async fn invalid_reauth_answers_error_and_connection_continues() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session(&format!("max_reauth_failures = 10\n{NO_RATE_LIMIT}"))
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;

    let wrong_key = sign(
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-not-the-secret-00"),
        None,
        &claims("alice", 120, json!({})),
    );
    let bad: [(&str, Message); 5] = [
        ("garbage", reauth("garbage", "not.a.jwt")),
        ("expired", reauth("expired", &token("alice", -60).0)),
        (
            "just-expired",
            reauth("just-expired", &token("alice", -1).0),
        ),
        ("wrong-key", reauth("wrong-key", &wrong_key)),
        (
            "no-token",
            Message::text(json!({"type": "REAUTH", "id": "no-token", "payload": {}}).to_string()),
        ),
    ];
    for (id, frame) in bad {
        let text = frame.to_text().expect("text").to_owned();
        send(&mut ws, frame).await;
        let v = expect_error(&mut ws, "invalid_token", json!(id)).await;
        let message = v["payload"]["message"].as_str().unwrap_or_default();
        if let Some(tok) =
            serde_json::from_str::<Value>(&text).expect("json")["payload"]["token"].as_str()
        {
            assert!(!message.contains(tok), "error message leaks the token");
        }
        round_trip(&mut ws, &format!("data after {id}")).await;
        assert_eq!(up_text(&mut up).await, format!("data after {id}"));
    }
}

#[tokio::test]
async fn too_many_failed_reauths_close_1008_and_success_resets() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).session(NO_RATE_LIMIT).start().await;
    let (t1, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &t1).await;
    let mut up = upstream.accept().await;

    send(&mut ws, reauth("f1", "bad")).await;
    expect_error(&mut ws, "invalid_token", json!("f1")).await;
    send(&mut ws, reauth("f2", "bad")).await;
    expect_error(&mut ws, "invalid_token", json!("f2")).await;
    // A success resets the count.
    let (t2, exp2) = token("alice", 1200);
    send(&mut ws, reauth("ok", &t2)).await;
    expect_reauthenticated(&mut ws, "ok", exp2).await;
    // A stale token is a failure too.
    send(&mut ws, reauth("f3", &token("alice", 300).0)).await;
    expect_error(&mut ws, "stale_token", json!("f3")).await;
    send(&mut ws, reauth("f4", "bad")).await;
    expect_error(&mut ws, "invalid_token", json!("f4")).await;
    round_trip(&mut ws, "two failures in a row are fine").await;
    send(&mut ws, reauth("f5", "bad")).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (1008, "too many failed reauth".into())
    );
    assert_eq!(
        up_text(&mut up).await,
        "two failures in a row are fine",
        "only data reaches the upstream"
    );
    assert_eq!(
        up_close(&mut up).await,
        (1001, "too many failed reauth".into())
    );
}

#[tokio::test]
async fn reauth_with_an_earlier_exp_is_stale() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).session(NO_RATE_LIMIT).start().await;
    let (t1, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &t1).await;
    let _up = upstream.accept().await;

    send(&mut ws, reauth("old", &token("alice", 300).0)).await;
    expect_error(&mut ws, "stale_token", json!("old")).await;
    round_trip(&mut ws, "still open").await;
    // The current token is still in force: a later one is accepted.
    let (t2, exp2) = token("alice", 900);
    send(&mut ws, reauth("new", &t2)).await;
    expect_reauthenticated(&mut ws, "new", exp2).await;
    // And now the first token's exp is earlier than the current one.
    send(&mut ws, reauth("back", &t1)).await;
    expect_error(&mut ws, "stale_token", json!("back")).await;
}

#[tokio::test]
async fn reauth_is_rate_limited_and_that_is_not_a_failure() {
    let mut upstream = Upstream::start(true).await;
    // Default reauth_min_interval (1 s); two failures would close.
    let proxy = proxy(upstream.addr)
        .session("max_reauth_failures = 2")
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;
    let (t2, exp2) = token("alice", 1200);

    let sent = Instant::now();
    send(&mut ws, reauth("x1", "bad")).await;
    expect_error(&mut ws, "invalid_token", json!("x1")).await;
    // The proxy took x1 between `sent` and now.
    let answered = Instant::now();
    for id in ["x2", "x3", "x4"] {
        send(&mut ws, reauth(id, &t2)).await;
        expect_error(&mut ws, "rate_limited", json!(id)).await;
    }
    // Precondition, not a speed assertion: x2..x4 went within the interval.
    assert!(sent.elapsed() < ms(900), "too slow to test the rate limit");
    round_trip(&mut ws, "rate limiting does not close").await;

    tokio::time::sleep_until((answered + ms(1100)).into()).await;
    send(&mut ws, reauth("x5", &t2)).await;
    expect_reauthenticated(&mut ws, "x5", exp2).await;
    // A success is an attempt too: the next one right after it is rate limited.
    send(&mut ws, reauth("x6", &t2)).await;
    expect_error(&mut ws, "rate_limited", json!("x6")).await;
    round_trip(&mut ws, "still open").await;
    // Not even a rate-limited REAUTH reaches the upstream.
    assert_eq!(up_text(&mut up).await, "rate limiting does not close");
    assert_eq!(up_text(&mut up).await, "still open");
}

#[tokio::test]
async fn without_reauth_token_expires_then_closes_after_grace() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("reauth_lead = \"1s\"\ngrace = \"2s\"")
        .start()
        .await;
    let (tok, exp) = token("alice", 2);
    let mut ws = authed(&proxy, "/", &tok).await;
    let mut up = upstream.accept().await;

    let v = recv_type(&mut ws, "auth_required").await;
    assert_eq!(v["payload"]["expires_at"], rfc3339(exp), "{v}");
    // Next comes TOKEN_EXPIRED (no second auth_required).
    let v = recv_type(&mut ws, "TOKEN_EXPIRED").await;
    let expired_at = Instant::now();
    let at = unix_now_f64();
    assert!(
        at >= exp as f64 - 0.25 && at <= exp as f64 + 1.5,
        "TOKEN_EXPIRED at {at}, exp {exp}"
    );
    assert_eq!(v["payload"]["expired_at"], rfc3339(exp), "{v}");
    assert_eq!(v["payload"]["grace"], 2, "{v}");

    // Suspended: nothing goes upstream.
    send_text(&mut ws, "held, never delivered").await;
    up_silence(&mut up, ms(500)).await;

    assert_eq!(expect_close(&mut ws).await, (1008, "token expired".into()));
    let waited = expired_at.elapsed();
    assert!(waited >= ms(1500), "closed {waited:?} after TOKEN_EXPIRED");
    assert_eq!(up_close(&mut up).await, (1001, "token expired".into()));
}

#[tokio::test]
async fn reauth_inside_grace_resumes_and_delivers_held_frames_in_order() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session(&format!(
            "reauth_lead = \"1s\"\ngrace = \"4s\"\n{NO_RATE_LIMIT}"
        ))
        .start()
        .await;
    let (tok, _) = token("alice", 2);
    let mut ws = authed(&proxy, "/", &tok).await;
    let mut up = upstream.accept().await;
    recv_type(&mut ws, "auth_required").await;
    recv_type(&mut ws, "TOKEN_EXPIRED").await;

    let held: Vec<String> = (1..=5).map(|i| format!("h{i}")).collect();
    for h in &held {
        send_text(&mut ws, h).await;
    }
    up_silence(&mut up, ms(400)).await;
    expect_silence(&mut ws, ms(100)).await;

    let (t2, exp2) = token("alice", 600);
    send(&mut ws, reauth("g1", &t2)).await;
    // AUTHENTICATED first, then the echoes of the held frames, in order.
    expect_reauthenticated(&mut ws, "g1", exp2).await;
    for h in &held {
        assert_eq!(&recv_text(&mut ws).await, h);
    }
    for h in &held {
        assert_eq!(
            &up_text(&mut up).await,
            h,
            "held frames reach the upstream in order"
        );
    }
    round_trip(&mut ws, "after resume").await;
    assert_eq!(up_text(&mut up).await, "after resume");
    assert!(
        upstream.accept_within(ms(200)).await.is_none(),
        "reconnected"
    );
}

#[tokio::test]
async fn upstream_frames_wait_while_suspended() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session(&format!(
            "reauth_lead = \"1s\"\ngrace = \"4s\"\n{NO_RATE_LIMIT}"
        ))
        .start()
        .await;
    let (tok, _) = token("alice", 2);
    let mut ws = authed(&proxy, "/", &tok).await;
    let up = upstream.accept().await;
    recv_type(&mut ws, "auth_required").await;
    recv_type(&mut ws, "TOKEN_EXPIRED").await;

    up.send(Message::text("u1"));
    up.send(Message::text("u2"));
    expect_silence(&mut ws, ms(600)).await;

    let (t2, exp2) = token("alice", 600);
    send(&mut ws, reauth("g2", &t2)).await;
    expect_reauthenticated(&mut ws, "g2", exp2).await;
    assert_eq!(recv_text(&mut ws).await, "u1");
    assert_eq!(recv_text(&mut ws).await, "u2");
}

#[tokio::test]
async fn hold_overflow_during_grace_closes_buffer_full() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("reauth_lead = \"1s\"\ngrace = \"5s\"\nhold_max_frames = 3\nhold_max_bytes = 64")
        .start()
        .await;
    let (tok, _) = token("alice", 2);
    let mut by_count = authed(&proxy, "/", &tok).await;
    let mut up_count = upstream.accept().await;
    let mut by_bytes = authed(&proxy, "/", &tok).await;
    let mut up_bytes = upstream.accept().await;

    let count = async {
        recv_type(&mut by_count, "auth_required").await;
        recv_type(&mut by_count, "TOKEN_EXPIRED").await;
        for i in 1..=3 {
            send_text(&mut by_count, &format!("f{i}")).await;
        }
        expect_silence(&mut by_count, ms(300)).await;
        send_text(&mut by_count, "f4").await;
        assert_eq!(
            expect_close(&mut by_count).await,
            (1008, "buffer full".into())
        );
        assert_eq!(up_close(&mut up_count).await, (1001, "buffer full".into()));
    };
    let bytes = async {
        recv_type(&mut by_bytes, "auth_required").await;
        recv_type(&mut by_bytes, "TOKEN_EXPIRED").await;
        send_text(&mut by_bytes, &"x".repeat(40)).await;
        expect_silence(&mut by_bytes, ms(300)).await;
        send_text(&mut by_bytes, &"y".repeat(40)).await;
        assert_eq!(
            expect_close(&mut by_bytes).await,
            (1008, "buffer full".into())
        );
        assert_eq!(up_close(&mut up_bytes).await, (1001, "buffer full".into()));
    };
    tokio::join!(count, bytes);
}

#[tokio::test]
async fn proxy_pings_the_client_every_interval() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session("ping_interval = \"200ms\"")
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let _up = upstream.accept().await;
    let until = tokio::time::Instant::now() + ms(1100);
    let mut pings = 0;
    while let Ok(m) = tokio::time::timeout_at(until, ws.next()).await {
        match m.expect("stream ended").expect("read error") {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // About 5 at 200 ms; without heartbeats, none.
    assert!((2..=8).contains(&pings), "{pings} pings in 1.1 s");
    round_trip(&mut ws, "alive").await;
}

#[tokio::test]
async fn client_that_stops_answering_pings_is_closed() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session("ping_interval = \"200ms\"\nmax_missed_pongs = 2")
        .start()
        .await;
    let tok = token("alice", 600).0;
    let mut silent = authed(&proxy, "/", &tok).await;
    let mut silent_up = upstream.accept().await;
    let mut lively = authed(&proxy, "/", &tok).await;
    let _lively_up = upstream.accept().await;

    // `silent` is simply not polled, so tungstenite never answers the pings.
    let (closed, ()) = tokio::join!(up_close(&mut silent_up), async {
        // A client that reads (and so answers pings) stays.
        expect_silence(&mut lively, ms(1500)).await;
    });
    assert_eq!(closed, (1001, "client gone".into()));
    assert_eq!(
        expect_close(&mut silent).await,
        (1001, "ping timeout".into())
    );
    round_trip(&mut lively, "alive").await;
}

#[tokio::test]
async fn upstream_that_stops_answering_pings_closes_client_1011() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session("ping_interval = \"200ms\"\nmax_missed_pongs = 2")
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let up = upstream.accept().await;
    // While the upstream answers, several intervals pass quietly.
    expect_silence(&mut ws, ms(1000)).await;
    round_trip(&mut ws, "alive").await;
    let _ = up.tx.send(Cmd::StopReading);
    assert_eq!(expect_close(&mut ws).await, (1011, "upstream gone".into()));
}

#[tokio::test]
async fn application_json_pings_are_relayed_like_data() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session("ping_interval = \"200ms\"")
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;
    send_text(&mut ws, r#"{"type":"ping"}"#).await;
    assert_eq!(up_text(&mut up).await, r#"{"type":"ping"}"#);
    up.send(Message::text(r#"{"type":"pong"}"#));
    assert_eq!(recv_text(&mut ws).await, r#"{"type":"pong"}"#);
    up.send(Message::text(r#"{"type":"ping","id":3}"#));
    assert_eq!(recv_text(&mut ws).await, r#"{"type":"ping","id":3}"#);
    send_text(&mut ws, r#"{"type":"pong","id":3}"#).await;
    assert_eq!(up_text(&mut up).await, r#"{"type":"pong","id":3}"#);
}

#[tokio::test]
async fn distinct_close_codes() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session(&format!(
            "close_codes = \"distinct\"\nauth_timeout = \"500ms\"\nreauth_lead = \"1s\"\ngrace = \"1s\"\nmax_reauth_failures = 1\n{NO_RATE_LIMIT}"
        ))
        .start()
        .await;

    // Started first so that its expiry runs while the others are checked.
    let mut expiring = authed(&proxy, "/", &token("alice", 2).0).await;
    let mut expiring_up = upstream.accept().await;

    let mut ws = connect(&proxy, "/").await;
    send_text(&mut ws, "hello").await;
    assert_eq!(expect_close(&mut ws).await, (4400, "auth required".into()));

    let mut ws = connect(&proxy, "/").await;
    send(&mut ws, auth_frame("not.a.jwt")).await;
    assert_eq!(expect_close(&mut ws).await, (4401, "invalid token".into()));

    let mut ws = connect(&proxy, "/").await;
    assert_eq!(expect_close(&mut ws).await, (4408, "auth timeout".into()));

    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;
    send(&mut ws, reauth("m", &token("bob", 600).0)).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (4403, "identity mismatch".into())
    );
    assert_eq!(up_close(&mut up).await, (1001, "identity mismatch".into()));

    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;
    send(&mut ws, reauth("f", "bad")).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (4403, "too many failed reauth".into())
    );
    assert_eq!(
        up_close(&mut up).await,
        (1001, "too many failed reauth".into())
    );

    assert_eq!(
        expect_close(&mut expiring).await,
        (4419, "token expired".into())
    );
    assert_eq!(
        up_close(&mut expiring_up).await,
        (1001, "token expired".into())
    );
}

#[tokio::test]
async fn upstream_notice_after_reauth_when_enabled() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr)
        .session(&format!("upstream_notice = true\n{NO_RATE_LIMIT}"))
        .start()
        .await;
    let (t1, _) = token_with("alice", 600, json!({"role": "member"}));
    let mut ws = authed(&proxy, "/", &t1).await;
    let mut up = upstream.accept().await;

    // A failed REAUTH tells the upstream nothing.
    send(&mut ws, reauth("bad", "not.a.jwt")).await;
    expect_error(&mut ws, "invalid_token", json!("bad")).await;
    up_silence(&mut up, ms(300)).await;

    let (t2, exp2) = token_with("alice", 1200, json!({"role": "owner"}));
    send(&mut ws, reauth("n1", &t2)).await;
    expect_reauthenticated(&mut ws, "n1", exp2).await;
    let text = up_text(&mut up).await;
    let v: Value = serde_json::from_str(&text).expect("notice is JSON");
    assert_eq!(v["type"], "identity_refreshed", "{v}");
    assert_eq!(v["payload"]["sub"], "alice", "{v}");
    assert_eq!(v["payload"]["exp"], exp2, "{v}");
    assert_eq!(v["payload"]["claims"]["role"], "owner", "{v}");
    assert_eq!(v["payload"]["claims"]["sub"], "alice", "{v}");
    assert!(
        !text.contains(t2.as_str()),
        "the notice must not carry the token"
    );
    send_text(&mut ws, "after").await;
    assert_eq!(up_text(&mut up).await, "after");
}

#[tokio::test]
async fn max_connection_lifetime_closes_1001() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .session("max_connection_lifetime = \"1s\"")
        .start()
        .await;
    let started = Instant::now();
    let mut ws = authed(&proxy, "/", &token("alice", 600).0).await;
    let mut up = upstream.accept().await;
    round_trip(&mut ws, "hi").await;
    assert_eq!(up_text(&mut up).await, "hi");
    assert_eq!(expect_close(&mut ws).await, (1001, "max lifetime".into()));
    assert!(started.elapsed() >= ms(900), "closed too early");
    assert_eq!(up_close(&mut up).await, (1001, "max lifetime".into()));
}
