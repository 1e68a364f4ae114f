//! The inactivity timeout (`session.idle_timeout`): `idle_warning` and the
//! 1001 `idle timeout` close for connections that carry no application
//! message; pings and REAUTH do not count, any application message resets
//! the clock, and with `idle_counts = "both"` the upstream's messages count.

mod support;
use support::lifecycle::*;
use support::*;

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Message;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 800 ms of inactivity closes; the warning comes 400 ms before.
const IDLE: &str =
    "idle_timeout = \"800ms\"\nidle_warning = \"400ms\"\nreauth_min_interval = \"0s\"\n";

/// Sends pings (and reads: pongs are skipped) until the next data or close
/// frame arrives, which is returned with the time it took.
async fn ping_until_frame(ws: &mut Ws) -> (Message, Duration) {
    let started = Instant::now();
    loop {
        send(ws, Message::Ping(b"hb".to_vec().into())).await;
        if let Some(m) = recv_within(ws, ms(100)).await {
            return (m, started.elapsed());
        }
        assert!(started.elapsed() < WAIT, "no frame while pinging");
    }
}

/// The frame is an `idle_warning` (checked against its schema on receipt)
/// announcing a close within the warning lead.
fn assert_warning(m: &Message) -> u64 {
    let Message::Text(t) = m else {
        panic!("expected idle_warning, got {m:?}")
    };
    let v: serde_json::Value = serde_json::from_str(t).expect("JSON");
    assert_eq!(v["type"], "idle_warning", "{v}");
    let closes_in = v["payload"]["closes_in_ms"].as_u64().expect("closes_in_ms");
    assert!(closes_in > 0 && closes_in <= 400, "{v}");
    closes_in
}

#[tokio::test]
async fn pings_alone_get_idle_warning_then_1001_idle_timeout() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).session(IDLE).start().await;
    let (tok, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &tok).await;
    let mut up = upstream.accept().await;
    let (m, at) = ping_until_frame(&mut ws).await;
    assert_warning(&m);
    assert!(at >= ms(300), "warning after {at:?}, due at about 400 ms");
    let (m, at) = ping_until_frame(&mut ws).await;
    let Message::Close(Some(f)) = m else {
        panic!("expected the close, got {m:?}")
    };
    assert_eq!(
        (u16::from(f.code), f.reason.as_str()),
        (1001, "idle timeout")
    );
    assert!(at >= ms(250), "closed {at:?} after the warning");
    assert_eq!(up_close(&mut up).await, (1001, "idle timeout".into()));
}

#[tokio::test]
async fn distinct_codes_close_idle_connections_with_4440() {
    let mut upstream = Upstream::start(true).await;
    let session = format!("{IDLE}close_codes = \"distinct\"\n");
    let proxy = proxy(upstream.addr)
        .session(&session)
        .dialect("idle_warning = \"\"")
        .start()
        .await;
    let (tok, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &tok).await;
    let _up = upstream.accept().await;
    // With the warning switched off, the close is the first frame.
    let (m, at) = ping_until_frame(&mut ws).await;
    let Message::Close(Some(f)) = m else {
        panic!("expected the close, got {m:?}")
    };
    assert_eq!(
        (u16::from(f.code), f.reason.as_str()),
        (4440, "idle timeout")
    );
    assert!(at >= ms(700), "closed after {at:?}, due at 800 ms");
}

#[tokio::test]
async fn a_message_just_before_the_warning_keeps_the_connection_open() {
    let mut upstream = Upstream::start(true).await;
    // Wider than IDLE, for margins on a loaded machine: warning at 600 ms, close at 1200 ms.
    let session = "idle_timeout = \"1200ms\"\nidle_warning = \"600ms\"\n";
    let proxy = proxy(upstream.addr).session(session).start().await;
    let (tok, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &tok).await;
    let _up = upstream.accept().await;
    let started = Instant::now();
    // 300 ms in: before the warning (due at 600 ms).
    expect_silence(&mut ws, ms(300)).await;
    round_trip(&mut ws, "still here").await;
    let sent = started.elapsed();
    assert!(
        sent < ms(600),
        "sent after {sent:?}: too late for this test"
    );
    // No warning at the old time: the clock runs from the message, so the
    // warning comes at about sent + 600 ms ...
    let m = recv(&mut ws).await;
    assert!(
        matches!(&m, Message::Text(t) if t.contains("idle_warning")),
        "{m:?}"
    );
    let at = started.elapsed();
    assert!(
        at >= sent + ms(550),
        "warning at {at:?}, message at {sent:?}"
    );
    // ... and the old close (1200 ms) passes without one.
    expect_silence(&mut ws, ms(1300).saturating_sub(started.elapsed())).await;
    round_trip(&mut ws, "and again").await;
}

#[tokio::test]
async fn with_idle_counts_both_upstream_traffic_keeps_it_open() {
    let mut upstream = Upstream::start(false).await;
    let session = format!("{IDLE}idle_counts = \"both\"\n");
    let proxy = proxy(upstream.addr).session(&session).start().await;
    let (tok, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &tok).await;
    let up = upstream.accept().await;
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < ms(2000) {
        up.send(Message::text(format!("tick {n}")));
        assert_eq!(recv_text(&mut ws).await, format!("tick {n}"));
        n += 1;
        tokio::time::sleep(ms(150)).await;
    }
    // Every tick arrived (a close would have failed `recv_text`), for more
    // than twice the timeout.
    expect_silence(&mut ws, ms(100)).await;
}

#[tokio::test]
async fn by_default_upstream_traffic_does_not_count() {
    let mut upstream = Upstream::start(false).await;
    let proxy = proxy(upstream.addr).session(IDLE).start().await;
    let (tok, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &tok).await;
    let up = upstream.accept().await;
    let started = Instant::now();
    let mut n = 0;
    let warning = loop {
        up.send(Message::text(format!("tick {n}")));
        n += 1;
        let m = recv(&mut ws).await;
        if matches!(&m, Message::Text(t) if t.starts_with("tick")) {
            tokio::time::sleep(ms(100)).await;
            assert!(started.elapsed() < WAIT, "no idle_warning");
            continue;
        }
        break m;
    };
    assert_warning(&warning);
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
}

#[tokio::test]
async fn reauth_does_not_count_as_activity() {
    let mut upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).session(IDLE).start().await;
    let (tok, _) = token("alice", 600);
    let mut ws = authed(&proxy, "/", &tok).await;
    let _up = upstream.accept().await;
    let started = Instant::now();
    let mut n = 0;
    let warning = loop {
        n += 1;
        let (fresh, _) = token("alice", 600 + n);
        send(&mut ws, reauth(&format!("r{n}"), &fresh)).await;
        let v = recv_json(&mut ws).await;
        if v["type"] == "AUTHENTICATED" {
            tokio::time::sleep(ms(100)).await;
            assert!(started.elapsed() < WAIT, "no idle_warning");
            continue;
        }
        break v;
    };
    assert_eq!(warning["type"], "idle_warning", "{warning}");
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
}

#[test]
fn a_warning_not_shorter_than_the_timeout_is_a_config_error_naming_the_key() {
    let text = proxy(std::net::SocketAddr::from(([127, 0, 0, 1], 9)))
        .session("idle_timeout = \"30s\"")
        .toml("/nonexistent");
    let config = wsguard::config::Config::parse(&text).expect("parses");
    let error = wsguard::proxy::Proxy::new(&config)
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("session.idle_warning"), "{error}");
}

/// The real binary: the warning and the close are audit events, and the
/// close is counted by its cause.
#[tokio::test]
async fn the_binary_audits_the_warning_and_counts_the_close() {
    let upstream = Upstream::start(true).await;
    let config = format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[upstream]
url = "ws://{}"
{BINARY_PROVIDER}[session]
idle_timeout = "600ms"
idle_warning = "300ms"
[admin]
bind = "127.0.0.1:0"
[log]
format = "json"
"#,
        upstream.addr
    );
    let running = admin::run(&config, &[]).await;
    let mut ws = running.connect("/").await;
    let (tok, _) = token("alice", 600);
    send(&mut ws, support::auth_frame(&tok)).await;
    assert_eq!(
        recv_type(&mut ws, "AUTHENTICATED").await["type"],
        "AUTHENTICATED"
    );
    assert_warning(&recv(&mut ws).await);
    assert_eq!(expect_close(&mut ws).await, (1001, "idle timeout".into()));
    let audited = |event: &str, field: &str, value: &str| {
        running.lines().iter().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
                v["target"] == "wsguard::audit" && v["event"] == event && v[field] == value
            })
        })
    };
    let deadline = Instant::now() + WAIT;
    while !audited("closed", "reason", "idle_timeout") {
        assert!(Instant::now() < deadline, "{:?}", running.lines());
        tokio::time::sleep(ms(20)).await;
    }
    assert!(
        audited("idle_warning", "sub", "\"alice\""),
        "{:?}",
        running.lines()
    );
    let closes = running.scrape(None).await.value(
        "wsguard_closes_total",
        &[("reason", "idle_timeout"), ("side", "proxy")],
    );
    assert_eq!(closes, 1.0);
}
