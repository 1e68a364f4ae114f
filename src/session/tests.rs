//! Timer logic of the state machine under tokio's paused clock: a real
//! session over an in-memory client pipe, deadlines checked to the
//! millisecond without waiting for them. Socket-level behaviour is covered
//! by the integration tests in `tests/`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::Session;
use crate::config::Config;
use crate::headers::ClientRequest;
use crate::process::Local;
use crate::proxy::Proxy;
use crate::registry::Command;
use crate::rescue::CloseCause;

const SECRET: &str = "unit-test-secret-0123456789abcdef0123";

type Client = WebSocketStream<DuplexStream>;

fn proxy(dir: &Path, upstream: &str, session: &str) -> Arc<Proxy> {
    // Notices exactly `reauth_lead` before exp, unless a test asks for jitter.
    let jitter = if session.contains("reauth_jitter") {
        ""
    } else {
        "reauth_jitter = \"0s\"\n"
    };
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let text = format!(
        "[upstream]\nurl = \"ws://{upstream}\"\n[auth]\n[[auth.providers]]\nname = \"t\"\n\
         algorithms = [\"HS256\"]\n[[auth.providers.keys]]\nkind = \"hmac\"\nsecret_file = \"{}\"\n\
         [session]\n{jitter}{session}\n",
        secret.display()
    );
    Proxy::new(&Config::parse(&text).expect("config")).expect("proxy")
}

/// Starts a session on an in-memory pipe and returns the client's end.
async fn start(proxy: Arc<Proxy>) -> Client {
    start_in(proxy, Default::default()).await
}

/// [`start`], registering in `local`.
async fn start_in(proxy: Arc<Proxy>, local: Local) -> Client {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let server = crate::budget::Budgeted::new(server, 64 * 1024);
    let request = ClientRequest {
        peer: ([127, 0, 0, 1], 1).into(),
        headers: http::HeaderMap::new(),
        path_and_query: "/".into(),
        subprotocol: None,
        tls: false,
    };
    tokio::spawn(Session::new(proxy, local, "unit".into(), request, server, &[]).run());
    WebSocketStream::from_raw_socket(client, Role::Client, None).await
}

/// An upstream that accepts and echoes (answers pings while reading).
async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_text() && ws.send(m).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn token(sub: &str, ttl: u64) -> String {
    crate::token::mint_hs256(
        SECRET.as_bytes(),
        sub,
        Duration::from_secs(ttl),
        &Default::default(),
    )
    .expect("mint")
}

/// Lets every ready task run, then takes the frame that is waiting, if any.
async fn ready_frame(client: &mut Client) -> Option<Message> {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    client.next().now_or_never().flatten().and_then(Result::ok)
}

/// Lets every ready task run, then says whether no frame is waiting.
async fn nothing_waiting(client: &mut Client) -> bool {
    ready_frame(client).await.is_none()
}

async fn next_type(client: &mut Client) -> (String, serde_json::Value) {
    let Some(Ok(frame)) = client.next().await else {
        panic!("the client leg ended");
    };
    type_of(frame)
}

fn type_of(frame: Message) -> (String, serde_json::Value) {
    let Message::Text(text) = frame else {
        panic!("expected a text frame, got {frame:?}");
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    (v["type"].as_str().unwrap_or_default().to_owned(), v)
}

async fn next_close(client: &mut Client) -> (u16, String) {
    match client.next().await {
        Some(Ok(Message::Close(Some(f)))) => (u16::from(f.code), f.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Authenticates in real time, then freezes the clock.
async fn authenticated(session: &str, ttl: u64) -> (Client, tempfile::TempDir) {
    authenticated_in(session, ttl, Default::default()).await
}

/// [`authenticated`], registered in `local`.
async fn authenticated_in(session: &str, ttl: u64, local: Local) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = upstream().await;
    let mut client = start_in(proxy(dir.path(), &addr, session), local).await;
    let auth = serde_json::json!({"type": "auth", "payload": {"token": token("alice", ttl)}});
    client
        .send(Message::text(auth.to_string()))
        .await
        .expect("send");
    assert_eq!(next_type(&mut client).await.0, "AUTHENTICATED");
    tokio::time::pause();
    (client, dir)
}

#[tokio::test(start_paused = true)]
async fn auth_timeout_fires_at_its_deadline_not_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let session = "auth_timeout = \"5s\"\nping_interval = \"0s\"";
    let mut client = start(proxy(dir.path(), "127.0.0.1:9", session)).await;
    tokio::time::sleep(Duration::from_millis(4_990)).await;
    assert!(
        nothing_waiting(&mut client).await,
        "closed before the auth timeout"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(next_close(&mut client).await, (1008, "auth timeout".into()));
}

#[tokio::test]
async fn auth_required_then_expiry_then_grace_on_one_timer() {
    // exp is whole seconds: auth_required is due between 39 s and 40 s from now.
    let session = "reauth_lead = \"60s\"\ngrace = \"10s\"\nping_interval = \"0s\"";
    let (mut client, _dir) = authenticated(session, 100).await;
    tokio::time::sleep(Duration::from_secs(38)).await;
    assert!(
        nothing_waiting(&mut client).await,
        "auth_required came early"
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (kind, v) = next_type(&mut client).await;
    assert_eq!(kind, "auth_required", "{v}");
    tokio::time::sleep(Duration::from_secs(57)).await;
    assert!(nothing_waiting(&mut client).await, "suspended before exp");
    // Step in 20 ms so that the grace below is measured from the moment of expiry.
    let mut waited = Duration::ZERO;
    let frame = loop {
        if let Some(frame) = ready_frame(&mut client).await {
            break frame;
        }
        assert!(waited < Duration::from_secs(4), "no TOKEN_EXPIRED at exp");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    };
    let (kind, v) = type_of(frame);
    assert_eq!(kind, "TOKEN_EXPIRED", "{v}");
    assert_eq!(v["payload"]["grace"], 10);
    tokio::time::sleep(Duration::from_millis(9_950)).await;
    assert!(
        nothing_waiting(&mut client).await,
        "closed before the grace ended"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        next_close(&mut client).await,
        (1008, "token expired".into())
    );
}

#[tokio::test]
async fn reauth_rearms_the_timers() {
    let session = "reauth_lead = \"60s\"\nping_interval = \"0s\"";
    let (mut client, _dir) = authenticated(session, 100).await;
    tokio::time::sleep(Duration::from_secs(41)).await;
    assert_eq!(next_type(&mut client).await.0, "auth_required");
    // The wall clock has not moved: this token expires 300 s after the
    // paused clock's now, so its auth_required is ~240 s away.
    let reauth = serde_json::json!({"type": "REAUTH", "payload": {"token": token("alice", 300)}});
    client
        .send(Message::text(reauth.to_string()))
        .await
        .expect("send");
    assert_eq!(next_type(&mut client).await.0, "AUTHENTICATED");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(
        nothing_waiting(&mut client).await,
        "the old token's expiry still fired"
    );
    tokio::time::sleep(Duration::from_secs(125)).await;
    assert_eq!(next_type(&mut client).await.0, "auth_required");
}

#[tokio::test]
async fn lifetime_limit_closes_on_time() {
    let session = "max_connection_lifetime = \"30m\"\nping_interval = \"0s\"";
    let (mut client, _dir) = authenticated(session, 7200).await;
    tokio::time::sleep(Duration::from_secs(29 * 60 + 58)).await;
    assert!(
        nothing_waiting(&mut client).await,
        "closed before max lifetime"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(next_close(&mut client).await, (1001, "max lifetime".into()));
}

#[tokio::test]
async fn auth_required_notices_spread_over_the_jitter() {
    // exp is whole seconds, 99 to 100 s away: each notice is due 60 s + a
    // random part of 20 s before it, so between 19 s and 40 s from now.
    let session = "reauth_lead = \"60s\"\nreauth_jitter = \"20s\"\nping_interval = \"0s\"";
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = upstream().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = start(proxy(dir.path(), &addr, session)).await;
        let auth = serde_json::json!({"type": "auth", "payload": {"token": token("alice", 100)}});
        client
            .send(Message::text(auth.to_string()))
            .await
            .expect("send");
        assert_eq!(next_type(&mut client).await.0, "AUTHENTICATED");
        clients.push(client);
    }
    tokio::time::pause();
    let step = Duration::from_millis(100);
    let mut elapsed = Duration::ZERO;
    let mut due: Vec<Option<Duration>> = vec![None; clients.len()];
    while due.iter().any(Option::is_none) {
        assert!(
            elapsed <= Duration::from_secs(41),
            "notices missing: {due:?}"
        );
        for (client, at) in clients.iter_mut().zip(due.iter_mut()) {
            if let Some(frame) = ready_frame(client).await {
                assert!(at.is_none(), "two frames");
                assert_eq!(type_of(frame).0, "auth_required");
                *at = Some(elapsed);
            }
        }
        tokio::time::sleep(step).await;
        elapsed += step;
    }
    let due: Vec<Duration> = due.into_iter().flatten().collect();
    for at in &due {
        assert!(
            *at >= Duration::from_secs(18) && *at <= Duration::from_secs(41),
            "{due:?}"
        );
    }
    let (first, last) = (due.iter().min(), due.iter().max());
    assert!(
        last.zip(first)
            .is_some_and(|(l, f)| *l - *f > Duration::from_millis(300)),
        "4 notices within 300 ms: not spread ({due:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeats_fall_on_the_shared_grid() {
    use super::beat_after;
    use tokio::time::Instant;
    let epoch = Instant::now();
    let interval = Duration::from_secs(15);
    // Grid of 15 s / 16 = 937.5 ms.
    let grid = Duration::from_micros(937_500);
    for offset_ms in [0u64, 1, 937, 938, 5_000, 59_999] {
        let at = epoch + Duration::from_millis(offset_ms);
        let beat = beat_after(epoch, at, interval);
        assert!(beat >= at, "{offset_ms}: before its time");
        assert!(beat - at < grid, "{offset_ms}: more than a grid step late");
        let steps = (beat - epoch).as_nanos() % grid.as_nanos();
        assert_eq!(steps, 0, "{offset_ms}: off the grid");
    }
    // Short intervals get a fine grid, long ones at most 1 s.
    let at = epoch + Duration::from_millis(1);
    assert!(beat_after(epoch, at, Duration::from_millis(160)) - at < Duration::from_millis(10));
    let at = epoch + Duration::from_millis(10);
    assert_eq!(
        beat_after(epoch, at, Duration::from_secs(3600)),
        epoch + Duration::from_secs(1)
    );
}

/// Heartbeats keep their interval: each is scheduled from the beat that was
/// due, so the grid's rounding does not add up (15 s apart, not 15.9 s).
#[tokio::test]
async fn heartbeats_do_not_drift() {
    let (mut client, _dir) = authenticated("ping_interval = \"15s\"", 3600).await;
    let mut at = Vec::new();
    while at.len() < 6 {
        match client.next().await {
            Some(Ok(Message::Ping(_))) => at.push(tokio::time::Instant::now()),
            Some(Ok(_)) => {}
            other => panic!("the client leg ended: {other:?}"),
        }
    }
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap.abs_diff(Duration::from_secs(15)) <= Duration::from_millis(1),
            "heartbeats {gap:?} apart"
        );
    }
}

#[tokio::test]
async fn a_reauth_command_asks_at_once_and_shortens_the_token() {
    let local = Local::default();
    let shard = local.shard.clone();
    let session =
        "reauth_lead = \"60s\"\ngrace = \"3s\"\nping_interval = \"0s\"\nreauth_jitter = \"500ms\"";
    let (mut client, _dir) = authenticated_in(session, 3600, local).await;
    assert_eq!(shard.len(), 1, "an authenticated connection is listed");
    let sent = shard.send_where(
        |e| e.identity.sub == "alice",
        Command::Reauth {
            within: Duration::from_secs(2),
            cause: CloseCause::MaxLifetime,
        },
    );
    assert_eq!(sent, 1);
    // auth_required within the jitter, not 60 s before an exp an hour away.
    tokio::time::sleep(Duration::from_millis(510)).await;
    let (kind, v) = type_of(ready_frame(&mut client).await.expect("auth_required"));
    assert_eq!(kind, "auth_required", "{v}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (kind, v) = type_of(ready_frame(&mut client).await.expect("TOKEN_EXPIRED"));
    assert_eq!(kind, "TOKEN_EXPIRED", "{v}");
    tokio::time::sleep(Duration::from_millis(3_010)).await;
    // The command's cause is the close reason, not `token expired`.
    assert_eq!(next_close(&mut client).await, (1001, "max lifetime".into()));
    drop(client);
    // Past session.close_timeout: the task has ended.
    tokio::time::sleep(Duration::from_secs(30)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(shard.len(), 0, "a finished connection leaves the registry");
}

#[tokio::test]
async fn a_reauth_after_the_command_resumes_as_usual() {
    let local = Local::default();
    let shard = local.shard.clone();
    let session = "grace = \"3s\"\nping_interval = \"0s\"\nreauth_min_interval = \"0s\"";
    let (mut client, _dir) = authenticated_in(session, 3600, local).await;
    shard.send_where(
        |_| true,
        Command::Reauth {
            within: Duration::from_secs(2),
            cause: CloseCause::MaxLifetime,
        },
    );
    assert_eq!(next_type(&mut client).await.0, "auth_required");
    tokio::time::resume();
    let reauth = serde_json::json!({"type": "REAUTH", "payload": {"token": token("alice", 7200)}});
    client
        .send(Message::text(reauth.to_string()))
        .await
        .expect("send");
    assert_eq!(next_type(&mut client).await.0, "AUTHENTICATED");
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        nothing_waiting(&mut client).await,
        "the new token is good for two hours"
    );
}

#[tokio::test]
async fn a_close_command_closes_both_legs_with_its_cause() {
    let local = Local::default();
    let shard = local.shard.clone();
    let (mut client, _dir) = authenticated_in("ping_interval = \"0s\"", 3600, local).await;
    shard.send_where(|_| true, Command::Close(CloseCause::MaxLifetime));
    assert_eq!(next_close(&mut client).await, (1001, "max lifetime".into()));
}

#[tokio::test]
async fn idle_deadline_follows_the_last_message_warning_then_close() {
    let session = "idle_timeout = \"60s\"\nidle_warning = \"10s\"\nping_interval = \"0s\"";
    let (mut client, _dir) = authenticated(session, 3600).await;
    // 300 s of a binary message every 30 s (not echoed): never idle.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        client
            .send(Message::binary(vec![1u8; 8]))
            .await
            .expect("send");
        assert!(nothing_waiting(&mut client).await, "warned while active");
    }
    // Quiet now: the warning 50 s after the last message, the close 10 s later.
    tokio::time::sleep(Duration::from_millis(49_900)).await;
    assert!(nothing_waiting(&mut client).await, "warned early");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (kind, v) = next_type(&mut client).await;
    assert_eq!(kind, "idle_warning", "{v}");
    let closes_in = v["payload"]["closes_in_ms"].as_u64().expect("closes_in_ms");
    assert!((9_700..=10_000).contains(&closes_in), "{v}");
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    assert!(nothing_waiting(&mut client).await, "closed early");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(next_close(&mut client).await, (1001, "idle timeout".into()));
}
