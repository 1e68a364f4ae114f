//! The drain that ends the run: every slot connects once more and sends
//! numbered frames, the proxy gets `SIGTERM`, and each client must get the
//! `reconnect` hint, then (its `fin` exchanged, so that every frame sent
//! before the hint is checked) 1001 `going away` on both legs; the process
//! must exit 0 with no connection left (the answer of a `GET
//! /drain?wait=true` written just before the exit).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::frames::{numbered, parse_numbered, FIN};
use crate::proxy::{admin_request, LogScan, Proxy, DRAIN_CLOSE_AFTER};
use crate::upstream::lock;
use crate::World;

/// What one drain client saw.
#[derive(Debug, Default)]
struct Seen {
    sent: u64,
    received: u64,
    disorder: u64,
    hinted: bool,
    upstream_sent: Option<u64>,
    close: Option<(u16, String)>,
}

/// The process's end, as the drain left it.
pub struct Exit {
    /// The log, read to the exit.
    pub log: Arc<std::sync::Mutex<LogScan>>,
    /// The last `wsguard_connections_active` scraped during the drain.
    pub last_active: Option<f64>,
}

/// Runs the drain phase: the clients, `SIGTERM`, the checks.
pub async fn run(world: &Arc<World>, proxy: Proxy) -> anyhow::Result<Exit> {
    *lock(&world.stats)
        .scheduled
        .entry("drain_at_end")
        .or_default() += 1;
    let ready = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    let n = world.args.clients;
    let step = Duration::from_secs(2)
        .checked_div(n.max(1) as u32)
        .unwrap_or_default();
    for i in 0..n {
        clients.spawn(client(world.clone(), i, ready.clone()));
        tokio::time::sleep(step).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ready.load(SeqCst) < n as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few frames each way before the hint.
    tokio::time::sleep(Duration::from_millis(world.args.interval_ms * 3)).await;
    proxy.signal("-TERM").await?;
    let admin = proxy.admin;
    let waiter = tokio::spawn(async move {
        admin_request(
            admin,
            "GET",
            "/drain?wait=true",
            "",
            Duration::from_secs(30),
        )
        .await
    });
    let scraper = tokio::spawn(scrape(admin));
    while clients.join_next().await.is_some() {}
    let (status, log) = proxy.wait_exit(Duration::from_secs(30)).await?;
    let last_active = scraper.await.ok().flatten();
    let answer = waiter.await.context("the drain waiter")?;
    let left = match &answer {
        Ok((200, body)) => serde_json::from_str::<Value>(body)
            .ok()
            .filter(|v| v["drained"] == true)
            .and_then(|v| v["connections"].as_u64()),
        _ => None,
    };
    let ok = status.is_some_and(|s| s.success()) && left == Some(0);
    lock(&world.stats).fault("drain: exit 0, no connection left", ok, || {
        format!("drain: exit status {status:?}, GET /drain?wait=true {answer:?}")
    });
    Ok(Exit { log, last_active })
}

/// Scrapes `wsguard_connections_active` every 50 ms until the admin
/// listener is gone (the exit); the last value read.
async fn scrape(admin: std::net::SocketAddr) -> Option<f64> {
    let mut last = None;
    loop {
        match crate::proxy::active_at(admin).await {
            Ok(v) => last = Some(v),
            Err(_) => return last,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One drain client: connects, sends numbered frames until the hint, then
/// `fin`, and waits for the proxy's close; checks both legs.
async fn client(world: Arc<World>, i: usize, ready: Arc<AtomicU64>) {
    let id = world.next_id.fetch_add(1, SeqCst);
    let mut seen = Seen::default();
    let result = relay(&world, i, id, &ready, &mut seen).await;
    let rec = crate::faults::upstream_end(&world, id, Duration::from_secs(5)).await;
    let mut stats = lock(&world.stats);
    stats.frames_down += seen.received;
    stats.disorder += seen.disorder;
    let rec = rec.unwrap_or_default();
    let lost = match seen.upstream_sent {
        Some(up) => seen.sent.saturating_sub(rec.received) + up.saturating_sub(seen.received),
        None => 0,
    };
    stats.lost += lost;
    let going_away = Some((1001, "going away".to_owned()));
    let ok = result.is_ok()
        && seen.hinted
        && seen.close == going_away
        && rec.end == going_away
        && seen.upstream_sent.is_some()
        && rec.fin == Some(seen.sent)
        && lost == 0
        && seen.disorder == 0
        && rec.disorder == 0;
    stats.fault("drain: hint, then 1001 going away", ok, || {
        format!("connection {id}: {result:?}, saw {seen:?}, upstream {rec:?}")
    });
}

async fn relay(
    world: &World,
    i: usize,
    id: u64,
    ready: &AtomicU64,
    seen: &mut Seen,
) -> anyhow::Result<()> {
    let tcp = crate::net::connect(crate::net::slot(i), world.proxy).await?;
    let url = format!("ws://{}/s/{id}", world.proxy);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    // Long enough that no `auth_required` comes during the drain.
    let ttl = 60 * u64::from(world.args.scale);
    let token = crate::client::token(&format!("soak-drain-{i}"), ttl);
    let auth = json!({"type": "auth", "id": "a", "payload": {"token": token}});
    ws.send(Message::text(auth.to_string())).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
            Some(Ok(Message::Text(t))) if t.contains("\"AUTHENTICATED\"") => break,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => anyhow::bail!("first answer {other:?}"),
        }
    }
    ready.fetch_add(1, SeqCst);
    let every = Duration::from_millis(world.args.interval_ms);
    let mut tick = tokio::time::interval(every);
    // The drain closes within `close_after`; the rest is slack for a loaded machine.
    let end = tokio::time::Instant::now() + Duration::from_secs(40) + DRAIN_CLOSE_AFTER;
    loop {
        tokio::select! {
            _ = tick.tick(), if !seen.hinted => {
                let pad = (seen.sent % 5) as usize * 60;
                ws.send(numbered('c', seen.sent, seen.sent % 2 == 1, pad)).await?;
                seen.sent += 1;
            }
            _ = tokio::time::sleep_until(end) => anyhow::bail!("no close from the drain"),
            m = ws.next() => match m.context("the socket ended without a close")?? {
                Message::Close(f) => {
                    seen.close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return Ok(());
                }
                m => on_frame(&mut ws, seen, m).await?,
            },
        }
    }
}

async fn on_frame(
    ws: &mut WebSocketStream<TcpStream>,
    seen: &mut Seen,
    m: Message,
) -> anyhow::Result<()> {
    match &m {
        Message::Text(t) if t.starts_with('{') => {
            let v: Value = serde_json::from_str(t)?;
            if v["type"] != "reconnect" || seen.hinted {
                anyhow::bail!("unexpected control frame {t}");
            }
            seen.hinted = true;
            ws.send(Message::text(format!("{FIN}{}", seen.sent)))
                .await?;
        }
        Message::Text(t) if t.starts_with(FIN) => {
            seen.upstream_sent = Some(t[FIN.len()..].parse()?);
        }
        Message::Text(_) | Message::Binary(_) => match parse_numbered(&m, 'u') {
            Some(seq) if seq == seen.received => seen.received += 1,
            _ => seen.disorder += 1,
        },
        _ => {}
    }
    Ok(())
}
