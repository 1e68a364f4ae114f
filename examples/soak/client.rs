//! One client slot: connects, authenticates with a short-lived token,
//! sends numbered frames, checks the upstream's, answers `auth_required`
//! with a REAUTH, hands its connection to a fault when one asks for it, and
//! at the end exchanges `fin` counts and closes with 1000; then it connects
//! again, until the run ends.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::frames::{numbered, parse_numbered, FIN};
use crate::upstream::lock;
use crate::World;

/// A live authenticated connection, handed to a fault.
pub struct Conn {
    /// The client's socket.
    pub ws: WebSocketStream<TcpStream>,
    /// Its connection id (the path `/s/<id>`).
    pub id: u64,
}

/// How a fault asks a slot for its connection.
pub type Take = oneshot::Sender<Conn>;

/// An HS256 token for `sub` that lives `ttl` seconds.
pub fn token(sub: &str, ttl: u64) -> String {
    token_signed(sub, ttl, crate::proxy::SECRET)
}

/// [`token`] signed with `secret`.
pub fn token_signed(sub: &str, ttl: u64, secret: &str) -> String {
    let now = now_secs();
    let claims = json!({"sub": sub, "iat": now, "exp": now + ttl});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap_or_default()
}

fn control(kind: &str, id: &str, token: &str) -> Message {
    Message::text(json!({"type": kind, "id": id, "payload": {"token": token}}).to_string())
}

/// Runs slot `i` until the run ends.
pub async fn slot(world: Arc<World>, i: usize) {
    // Staggered lifetimes: 5 to 10 s (times `--scale`), so that notices and REAUTHs spread out.
    let ttl = (5 + (i % 6) as u64) * u64::from(world.args.scale);
    while !world.stopping.load(SeqCst) {
        if let Err(e) = connection(&world, i, ttl).await {
            lock(&world.stats).problem(format!("slot {i}: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(50 + (i % 200) as u64)).await;
    }
}

/// One connection's counts.
#[derive(Default)]
struct Counts {
    sent: u64,
    received: u64,
    disorder: u64,
    pending: Vec<String>,
    reauths: u64,
}

/// Whether the upstream restarted since generation `start` (or is down now).
pub fn restarted_since(world: &World, start: u64) -> bool {
    let now = world.up.generation.load(SeqCst);
    now != start || now % 2 == 1
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A slot whose subject was revoked waits for the revocation's answer,
/// then until a token issued now has an `iat` after the revocation's second.
async fn after_revocation(world: &World, i: usize) {
    loop {
        match *lock(&world.revoked[i]) {
            Some(r) if !r.done || now_secs() <= r.at => {}
            _ => return,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a close is the revocation's: 1008 (4403 in distinct mode) `token revoked`.
fn is_revoked_close(code: u16, reason: &str) -> bool {
    matches!(code, 1008 | 4403) && reason == "token revoked"
}

async fn connection(world: &Arc<World>, i: usize, ttl: u64) -> anyhow::Result<()> {
    after_revocation(world, i).await;
    let id = world.next_id.fetch_add(1, Relaxed);
    let generation = world.up.generation.load(SeqCst);
    let tcp = crate::net::connect(crate::net::slot(i), world.proxy).await?;
    let url = format!("ws://{}/s/{id}", world.proxy);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    let sub = format!("soak-{i}");
    ws.send(control("auth", "a", &token(&sub, ttl))).await?;
    match first_answer(&mut ws).await {
        Some(Ok(())) => {}
        Some(Err((1013, reason))) if reason == "upstream unavailable" => {
            let ok = restarted_since(world, generation);
            lock(&world.stats).fault("upstream_restart: refused 1013", ok, || {
                format!("connection {id}: 1013 without a restart")
            });
            return Ok(());
        }
        Some(Err((code, reason)))
            if is_revoked_close(code, &reason) && lock(&world.revoked[i]).is_some() =>
        {
            // It connected with a token issued before a revocation of its subject.
            lock(&world.stats).fault("revoke: refused 1008", true, String::new);
            return Ok(());
        }
        Some(Err((code, reason))) => {
            anyhow::bail!("connection {id}: first answer {code} {reason:?}")
        }
        None => anyhow::bail!("connection {id}: no AUTHENTICATED"),
    }
    if lock(&world.revoked[i]).is_some_and(|r| r.done) {
        // Back in after its revocation, with a token issued later.
        lock(&world.revoked[i]).take();
        lock(&world.stats).fault("revoke: back in with a later token", true, String::new);
    }
    let open = world.open.fetch_add(1, SeqCst) + 1;
    {
        let mut stats = lock(&world.stats);
        stats.connections += 1;
        stats.peak_open = stats.peak_open.max(open);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    *lock(&world.slots[i]) = Some(tx);
    let mut c = Counts::default();
    let result = relay(world, &mut ws, &mut c, rx, (&sub, ttl), (i, id), generation).await;
    lock(&world.slots[i]).take();
    world.open.fetch_sub(1, SeqCst);
    let mut stats = lock(&world.stats);
    stats.frames_down += c.received;
    stats.disorder += c.disorder;
    stats.reauths += c.reauths;
    stats.reauths_answered += c.reauths - c.pending.len() as u64;
    // A REAUTH still unanswered when a fault ends the connection is not
    // counted (a healthy connection ends only once every one is answered).
    stats.reauths -= c.pending.len() as u64;
    match result {
        Ok(Some(take)) => {
            drop(stats);
            let _ = take.send(Conn { ws, id });
        }
        Ok(None) => {}
        Err(e) => stats.problem(format!("connection {id}: {e}")),
    }
    Ok(())
}

/// `AUTHENTICATED`, or the close that came instead.
pub async fn first_answer(
    ws: &mut WebSocketStream<TcpStream>,
) -> Option<Result<(), (u16, String)>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).ok()?;
                return (v["type"] == "AUTHENTICATED").then_some(Ok(()));
            }
            Ok(Message::Close(f)) => {
                return Some(Err(f.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                })))
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Relays until the run ends (`Ok(None)` after the `fin` exchange), a fault
/// takes the connection (`Ok(Some)`), or the proxy closes it.
async fn relay(
    world: &Arc<World>,
    ws: &mut WebSocketStream<TcpStream>,
    c: &mut Counts,
    mut takes: mpsc::UnboundedReceiver<Take>,
    (sub, ttl): (&str, u64),
    (i, id): (usize, u64),
    generation: u64,
) -> anyhow::Result<Option<Take>> {
    let every = Duration::from_millis(world.args.interval_ms);
    let first = tokio::time::Instant::now() + every.mul_f64(rand::random::<f64>());
    let mut tick = tokio::time::interval_at(first, every);
    let mut fin: Option<(u64, tokio::time::Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick(), if fin.is_none() => {
                if world.stopping.load(SeqCst) {
                    ws.send(Message::text(format!("{FIN}{}", c.sent))).await?;
                    fin = Some((u64::MAX, tokio::time::Instant::now() + Duration::from_secs(10)));
                    continue;
                }
                let pad = (c.sent % 5) as usize * 60;
                ws.send(numbered('c', c.sent, c.sent % 2 == 1, pad)).await?;
                c.sent += 1;
            }
            take = takes.recv() => {
                if let Some(take) = take {
                    return Ok(Some(take));
                }
            }
            _ = tokio::time::sleep_until(fin.map_or_else(far, |f| f.1)), if fin.is_some() => {
                anyhow::bail!("no fin answer in 10 s (pending REAUTHs {:?})", c.pending);
            }
            m = ws.next() => {
                let m = match m {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => anyhow::bail!("read: {e}"),
                    None => anyhow::bail!("the socket ended without a close"),
                };
                if let Some(done) = on_frame(world, ws, c, m, (sub, ttl), &mut fin, generation, (i, id)).await? {
                    return Ok(done);
                }
                if let Some((n, _)) = fin {
                    if n != u64::MAX && c.pending.is_empty() {
                        finish(world, ws, c, n, id).await?;
                        return Ok(None);
                    }
                }
            }
        }
    }
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// Handles one received frame; `Some` ends the connection.
#[allow(clippy::too_many_arguments)]
async fn on_frame(
    world: &Arc<World>,
    ws: &mut WebSocketStream<TcpStream>,
    c: &mut Counts,
    m: Message,
    (sub, ttl): (&str, u64),
    fin: &mut Option<(u64, tokio::time::Instant)>,
    generation: u64,
    (i, id): (usize, u64),
) -> anyhow::Result<Option<Option<Take>>> {
    match &m {
        Message::Text(t) if t.starts_with('{') => {
            let v: Value = serde_json::from_str(t)?;
            match v["type"].as_str() {
                Some("auth_required") => {
                    c.reauths += 1;
                    let rid = format!("r{}", c.reauths);
                    ws.send(control("REAUTH", &rid, &token(sub, ttl))).await?;
                    c.pending.push(rid);
                }
                Some("AUTHENTICATED") => {
                    let to = v["payload"]["in_reply_to"].as_str().unwrap_or_default();
                    c.pending.retain(|p| p != to);
                }
                _ => anyhow::bail!("unexpected control frame {t}"),
            }
        }
        Message::Text(t) if t.starts_with(FIN) => {
            let n = t[FIN.len()..].parse()?;
            if let Some(f) = fin.as_mut() {
                f.0 = n;
            }
        }
        Message::Text(_) | Message::Binary(_) => match parse_numbered(&m, 'u') {
            Some(seq) if seq == c.received => c.received += 1,
            _ => c.disorder += 1,
        },
        Message::Close(f) => {
            let (code, reason) = f.as_ref().map_or((1005, String::new()), |f| {
                (u16::from(f.code), f.reason.to_string())
            });
            if is_revoked_close(code, &reason) {
                revoked_close(world, (i, id), generation).await;
                return Ok(Some(None));
            }
            let restart = restarted_since(world, generation);
            let ok = restart && code == 1011 && reason == "upstream gone";
            lock(&world.stats).fault("upstream_restart: closed 1011", ok, || {
                format!("connection {id}: closed {code} {reason:?} (restart: {restart})")
            });
            return Ok(Some(None));
        }
        _ => {}
    }
    Ok(None)
}

/// A live connection closed with `token revoked`: its subject must have
/// been revoked, and its upstream leg must end with 1001 `token revoked`
/// (unless the upstream restarted meanwhile).
async fn revoked_close(world: &World, (i, id): (usize, u64), generation: u64) {
    let marked = lock(&world.revoked[i]).is_some();
    let rec = crate::faults::upstream_end(world, id, Duration::from_secs(5)).await;
    let end = rec.and_then(|r| r.end);
    let leg = end == Some((1001, "token revoked".to_owned())) || restarted_since(world, generation);
    lock(&world.stats).fault("revoke: closed 1008", marked && leg, || {
        format!("connection {id}: revoked (subject revoked: {marked}), upstream saw {end:?}")
    });
}

/// After the `fin` exchange: checks the counts on both sides, closes with 1000.
async fn finish(
    world: &Arc<World>,
    ws: &mut WebSocketStream<TcpStream>,
    c: &Counts,
    upstream_sent: u64,
    id: u64,
) -> anyhow::Result<()> {
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    };
    ws.close(Some(close)).await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    let rec = crate::faults::upstream_end(world, id, Duration::from_secs(5)).await;
    let mut stats = lock(&world.stats);
    let Some(rec) = rec else {
        stats.problem(format!("connection {id}: the upstream saw no end"));
        return Ok(());
    };
    let lost = c.sent.saturating_sub(rec.received) + upstream_sent.saturating_sub(c.received);
    stats.lost += lost;
    let clean = lost == 0
        && rec.fin == Some(c.sent)
        && c.disorder == 0
        && rec.disorder == 0
        && rec.end == Some((1000, "done".to_owned()));
    if clean {
        stats.healthy += 1;
    } else {
        stats.problem(format!(
            "connection {id}: sent {} received {} (upstream {:?}, sent {upstream_sent})",
            c.sent, c.received, rec
        ));
    }
    Ok(())
}
