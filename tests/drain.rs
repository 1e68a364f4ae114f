//! Graceful drain on the real binary: SIGTERM, SIGINT, `POST /drain` and
//! `GET /drain?wait=true`; the reconnect hint, 1001 `going away` on both
//! legs, the listening socket closed at once, the exit status.

mod support;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use support::admin::{run, Running};
use support::lifecycle::{recv_type, token, up_close};
use support::requests::raw_http;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// Spread of the hints, close after, timeout: short, so the tests are quick.
const FAST: &str =
    "[drain]\nreconnect_spread = \"300ms\"\nclose_after = \"700ms\"\ntimeout = \"4s\"\n";

/// One worker, the test HMAC key, the admin listener on a free port, and `extra`.
fn config(upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 2
[upstream]
url = "ws://{upstream}"
{BINARY_PROVIDER}{extra}
[admin]
bind = "127.0.0.1:0"
upstream_check_interval = "100ms"
"#
    )
}

/// Sends `signal` (`TERM`, `INT`) to the running binary.
fn signal(proxy: &Running, signal: &str) {
    let pid = proxy.child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// The exit status, within `wait`.
async fn exit_within(proxy: &mut Running, wait: Duration) -> ExitStatus {
    tokio::time::timeout(wait, proxy.child.wait())
        .await
        .unwrap_or_else(|_| panic!("did not exit within {wait:?}: {:?}", proxy.lines()))
        .expect("wait")
}

/// An admin request with a method (`POST /drain`), no body.
async fn admin(
    proxy: &Running,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> requests::RawResponse {
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: admin\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    raw_http(proxy.admin, &raw).await
}

/// Connects and authenticates; the upstream's side of it.
async fn open(proxy: &Running, upstream: &mut Upstream, sub: &str) -> (Ws, UpConn) {
    let mut ws = proxy.connect("/").await;
    ws.send(auth_frame(&token(sub, 300).0)).await.expect("auth");
    let up = upstream.accept().await;
    recv_type(&mut ws, "AUTHENTICATED").await;
    (ws, up)
}

/// The reconnect hint, then 1001 `going away`; returns the hint's `after_ms`.
async fn hinted_then_closed(ws: &mut Ws) -> u64 {
    let hint = recv_type(ws, "reconnect").await;
    let after = hint["payload"]["after_ms"].as_u64().expect("after_ms");
    assert_eq!(expect_close(ws).await, (1001, "going away".into()));
    after
}

/// Whether a TCP connection to `addr` is refused now.
async fn refused(addr: std::net::SocketAddr) -> bool {
    matches!(
        tokio::net::TcpStream::connect(addr).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test]
async fn sigterm_hints_every_connection_then_closes_both_legs_and_exits_0() {
    let mut upstream = Upstream::start(false).await;
    let extra =
        format!("{FAST}[session]\ngrace = \"30s\"\nreauth_lead = \"0s\"\nreauth_jitter = \"0s\"\n");
    let mut proxy = run(&config(upstream.addr, &extra), &[]).await;
    let mut legs = Vec::new();
    for sub in ["alice", "bob"] {
        legs.push(open(&proxy, &mut upstream, sub).await);
    }
    // A suspended one: its token expired, the grace runs.
    let mut ws = proxy.connect("/").await;
    ws.send(auth_frame(&token("carol", 1).0))
        .await
        .expect("auth");
    let up = upstream.accept().await;
    recv_type(&mut ws, "AUTHENTICATED").await;
    recv_type(&mut ws, "auth_required").await;
    recv_type(&mut ws, "TOKEN_EXPIRED").await;
    legs.push((ws, up));
    // One still authenticating when the drain begins.
    let mut late = proxy.connect("/").await;
    for (i, (ws, up)) in legs.iter_mut().take(2).enumerate() {
        ws.send(Message::text(format!("before-{i}")))
            .await
            .expect("send");
        up.send(Message::text(format!("down-{i}")));
    }
    let signalled = Instant::now();
    signal(&proxy, "TERM");
    // Sent just before the signal: they all arrive, both ways (the
    // upstream's may come after the hint: it writes when it gets to it).
    for (i, (ws, up)) in legs.iter_mut().take(2).enumerate() {
        assert_eq!(up.recv().await, Message::text(format!("before-{i}")));
        let got = [recv(ws).await, recv(ws).await];
        assert!(got.contains(&Message::text(format!("down-{i}"))), "{got:?}");
        let hint = got
            .iter()
            .find_map(|m| serde_json::from_str::<serde_json::Value>(m.to_text().ok()?).ok())
            .unwrap_or_else(|| panic!("no hint in {got:?}"));
        assert_eq!(hint["type"], "reconnect", "{hint}");
        assert!(
            hint["payload"]["after_ms"]
                .as_u64()
                .is_some_and(|a| a <= 300),
            "{hint}"
        );
    }
    let deadline = Instant::now() + WAIT;
    while !refused(proxy.proxy).await {
        assert!(Instant::now() < deadline, "new connections still accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        signalled.elapsed() < Duration::from_millis(700),
        "refused only after {:?}",
        signalled.elapsed()
    );
    let ready = proxy.get("/readyz", None).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("draining"), "{}", ready.body);
    late.send(auth_frame(&token("dave", 300).0))
        .await
        .expect("auth");
    let late_up = upstream.accept().await;
    recv_type(&mut late, "AUTHENTICATED").await;
    legs.push((late, late_up));
    for (i, (ws, up)) in legs.iter_mut().enumerate() {
        if i < 2 {
            assert_eq!(expect_close(ws).await, (1001, "going away".into()));
        } else {
            let after = hinted_then_closed(ws).await;
            assert!(after <= 300, "after_ms {after} over the spread");
        }
        assert_eq!(up_close(up).await, (1001, "going away".into()));
    }
    drop(legs);
    let status = exit_within(&mut proxy, Duration::from_secs(4)).await;
    assert_eq!(status.code(), Some(0), "{:?}", proxy.lines());
}

#[tokio::test]
async fn a_second_signal_ends_at_once_with_its_status() {
    let mut upstream = Upstream::start(false).await;
    let slow = "[drain]\nreconnect_spread = \"1s\"\nclose_after = \"20s\"\ntimeout = \"30s\"\n";
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let mut proxy = run(&config(upstream.addr, slow), &[]).await;
        let (mut ws, _up) = open(&proxy, &mut upstream, "alice").await;
        signal(&proxy, sig);
        recv_type(&mut ws, "reconnect").await;
        let second = Instant::now();
        signal(&proxy, sig);
        let status = exit_within(&mut proxy, Duration::from_secs(2)).await;
        assert_eq!(status.code(), Some(code), "SIG{sig}: {:?}", proxy.lines());
        assert!(second.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn get_drain_wait_answers_when_the_last_connection_is_gone() {
    let mut upstream = Upstream::start(false).await;
    let extra = "[drain]\nreconnect_spread = \"0s\"\nclose_after = \"20s\"\ntimeout = \"30s\"\n";
    let admin_token = "admin-token-0123456789abcdef";
    let text = config(upstream.addr, extra).replace(
        "[admin]\n",
        "[admin]\ntoken_env = \"DRAIN_TEST_TOKEN\"\ndrain_without_token = true\n",
    );
    let mut proxy = run(&text, &[("DRAIN_TEST_TOKEN", admin_token)]).await;
    let (mut ws, _up) = open(&proxy, &mut upstream, "alice").await;
    // POST needs the token; the waiting GET does not (drain_without_token).
    assert_eq!(admin(&proxy, "POST", "/drain", None).await.status, 401);
    let status = proxy.get("/drain", Some(admin_token)).await.json();
    assert_eq!(status["draining"], false, "{status}");
    let addr = proxy.admin;
    let waiting = tokio::spawn(async move {
        let raw = "GET /drain?wait=true HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n";
        let read = async {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tcp.write_all(raw.as_bytes()).await.expect("write");
            let mut buf = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("answer");
        (answer, Instant::now())
    });
    let hint = recv_type(&mut ws, "reconnect").await;
    assert_eq!(hint["payload"]["after_ms"], 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "answered while a connection is open"
    );
    let status = proxy.get("/drain", Some(admin_token)).await.json();
    assert_eq!(
        (status["draining"].clone(), status["connections"].clone()),
        (true.into(), 1.into()),
        "{status}"
    );
    let closed = Instant::now();
    ws.close(None).await.expect("close");
    let (answer, at) = waiting.await.expect("join");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"drained\":true"), "{answer}");
    assert!(at >= closed);
    let status = exit_within(&mut proxy, Duration::from_secs(3)).await;
    assert_eq!(status.code(), Some(0), "{:?}", proxy.lines());
}

#[tokio::test]
async fn drain_timeout_ends_the_drain_with_a_connection_left() {
    let mut upstream = Upstream::start(false).await;
    let extra = "[drain]\nreconnect_spread = \"0s\"\nclose_after = \"300ms\"\ntimeout = \"1s\"\n[session]\nauth_timeout = \"30s\"\n";
    let mut proxy = run(&config(upstream.addr, extra), &[]).await;
    let (mut ws, mut up) = open(&proxy, &mut upstream, "alice").await;
    // Never authenticates: only drain.timeout ends the wait for it.
    let _silent = proxy.connect("/").await;
    let started = Instant::now();
    let drained = admin(&proxy, "POST", "/drain", None).await;
    assert_eq!(drained.status, 202, "{}", drained.body);
    assert_eq!(drained.json()["draining"], true, "{}", drained.body);
    assert_eq!(hinted_then_closed(&mut ws).await, 0);
    assert_eq!(up_close(&mut up).await, (1001, "going away".into()));
    assert!(started.elapsed() < Duration::from_millis(900));
    let status = exit_within(&mut proxy, Duration::from_secs(4)).await;
    assert_eq!(status.code(), Some(0), "{:?}", proxy.lines());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(
        proxy
            .lines()
            .iter()
            .any(|l| l.contains("drain.timeout reached")),
        "{:?}",
        proxy.lines()
    );
}

#[tokio::test]
async fn a_connection_inside_a_relayed_message_closes_after_its_frame() {
    let upstream = wire::RawUpstream::start().await;
    let extra = "[drain]\nreconnect_spread = \"0s\"\nclose_after = \"200ms\"\ntimeout = \"5s\"\n";
    let mut proxy = run(&config(upstream.addr, extra), &[]).await;
    let mut ws = proxy.connect("/").await;
    ws.send(auth_frame(&token("alice", 300).0))
        .await
        .expect("auth");
    // The admin listener's upstream probe connects too, and sends nothing.
    let tcp = loop {
        let tcp = upstream.accept_tcp().await;
        if tcp.peek(&mut [0u8; 1]).await.is_ok_and(|n| n > 0) {
            break tcp;
        }
    };
    let (mut up, _) = wire::handshake(tcp).await;
    recv_type(&mut ws, "AUTHENTICATED").await;
    let payload: Vec<u8> = (0..100u8).collect();
    let frame = [
        raw::header(raw::BINARY, payload.len(), false),
        payload.clone(),
    ]
    .concat();
    up.get_mut()
        .write_all(&frame[..52])
        .await
        .expect("first half");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(admin(&proxy, "POST", "/drain", None).await.status, 202);
    // Past close_after, the frame still unfinished.
    tokio::time::sleep(Duration::from_millis(400)).await;
    up.get_mut()
        .write_all(&frame[52..])
        .await
        .expect("second half");
    // The hint (a data frame of the proxy's) waited for the message's end,
    // which came after the close was due: the close follows the frame, the
    // hint is dropped.
    assert_eq!(recv(&mut ws).await, Message::binary(payload));
    assert_eq!(expect_close(&mut ws).await, (1001, "going away".into()));
    drop(ws);
    let status = exit_within(&mut proxy, Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{:?}", proxy.lines());
}

#[tokio::test]
async fn plain_http_in_flight_finishes_then_its_connection_closes() {
    let mut upstream = requests::HttpUpstream::start().await;
    let mut proxy = run(&config(upstream.addr, FAST), &[]).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.proxy)
        .await
        .expect("connect");
    // Keep-alive (no `connection: close`); the body is half sent.
    let head = "POST /api HTTP/1.1\r\nhost: app\r\ncontent-length: 10\r\n\r\n12345";
    tcp.write_all(head.as_bytes()).await.expect("head");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(admin(&proxy, "POST", "/drain", None).await.status, 202);
    let drained = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(refused(proxy.proxy).await, "the listener is closed");
    tcp.write_all(b"67890").await.expect("rest of the body");
    let mut answer = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut answer);
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the connection ends")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.ends_with(requests::HTTP_UPSTREAM_BODY), "{answer}");
    assert_eq!(upstream.request().await.body, b"1234567890");
    // Closed after its answer, not when the process ends (drain.timeout, 4 s).
    assert!(
        drained.elapsed() < Duration::from_secs(2),
        "{:?}",
        drained.elapsed()
    );
    let status = exit_within(&mut proxy, Duration::from_secs(2)).await;
    assert_eq!(status.code(), Some(0), "{:?}", proxy.lines());
}
