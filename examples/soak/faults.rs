//! The faults, one small function each, in one list ([`FAULTS`]). A fault
//! injects itself and checks that what it hit ended as it should, counting
//! into `Stats::faults` under its name. The drain at the end is not in the
//! list: it ends the run (`drain.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::client::now_secs;
use crate::client::Conn;
use crate::proxy::{admin_request, AUTH_TIMEOUT, HEADER_TIMEOUT, MISSED_PONGS};
use crate::upstream::{lock, UpRecord};
use crate::World;

/// A fault's future.
pub type Run = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One kind of fault.
pub struct Fault {
    /// Its name in the table.
    pub name: &'static str,
    /// How often it is picked, relative to the others.
    pub weight: u32,
    /// Least time between two of them.
    pub min_gap: Duration,
    /// Injects it (with a seed for its random choices) and checks the outcome.
    pub run: fn(Arc<World>, u64) -> Run,
}

/// Every fault the soak injects.
pub const FAULTS: &[Fault] = &[
    Fault {
        name: "kill_mid_frame",
        weight: 4,
        min_gap: Duration::ZERO,
        run: |w, s| Box::pin(kill_mid_frame(w, s)),
    },
    Fault {
        name: "half_open",
        weight: 2,
        min_gap: Duration::ZERO,
        run: |w, s| Box::pin(half_open(w, s)),
    },
    Fault {
        name: "garbage_frames",
        weight: 2,
        min_gap: Duration::ZERO,
        run: |w, s| Box::pin(garbage_frames(w, s)),
    },
    Fault {
        name: "flood_unauthenticated",
        weight: 1,
        min_gap: Duration::from_secs(2),
        run: |w, s| Box::pin(flood_unauthenticated(w, s)),
    },
    Fault {
        name: "half_open_http",
        weight: 1,
        min_gap: Duration::from_secs(1),
        run: |w, s| Box::pin(half_open_http(w, s)),
    },
    Fault {
        name: "garbage_http",
        weight: 1,
        min_gap: Duration::from_secs(1),
        run: |w, s| Box::pin(garbage_http(w, s)),
    },
    Fault {
        name: "upstream_restart",
        weight: 1,
        min_gap: Duration::from_secs(15),
        run: |w, s| Box::pin(upstream_restart(w, s)),
    },
    Fault {
        name: "revoke",
        weight: 2,
        min_gap: Duration::ZERO,
        run: |w, s| Box::pin(revoke(w, s)),
    },
    Fault {
        name: "reload",
        weight: 1,
        min_gap: Duration::from_secs(5),
        run: |w, s| Box::pin(reload(w, s)),
    },
    Fault {
        name: "spray",
        weight: 1,
        min_gap: Duration::from_secs(10),
        run: |w, s| Box::pin(crate::spray::spray(w, s)),
    },
];

/// A revocation of a slot's subject: made at `at` (seconds since the
/// epoch, the proxy's clock being the same), its answer in once `done`.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    /// The second the revocation was made in (its answer's, once `done`).
    pub at: u64,
    /// Whether `POST /revoke` has answered.
    pub done: bool,
}

/// Takes the connection of a random slot that has one (within 2 s).
async fn take(world: &World, seed: u64) -> Option<Conn> {
    let n = world.slots.len();
    let start = (seed as usize) % n.max(1);
    let sender = (0..n).find_map(|k| lock(&world.slots[(start + k) % n]).take())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    sender.send(tx).ok()?;
    tokio::time::timeout(Duration::from_secs(2), rx)
        .await
        .ok()?
        .ok()
}

/// The upstream's record of connection `id` once it has ended, within `wait`.
pub async fn upstream_end(world: &World, id: u64, wait: Duration) -> Option<UpRecord> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(rec) = world.up.record(id).filter(|r| r.end.is_some()) {
            return Some(rec);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn end_of(rec: &Option<UpRecord>) -> Option<(u16, String)> {
    rec.as_ref().and_then(|r| r.end.clone())
}

/// Whether an upstream restart may have ended connection `id`: one was
/// under way when `generation` was read or began since, or it dropped `id`
/// (whose upstream record then never gets an end).
pub fn restart_hit(world: &World, generation: u64, id: u64) -> bool {
    generation % 2 == 1
        || world.up.generation.load(SeqCst) != generation
        || lock(&world.up.restarted).contains(&id)
}

/// A client dies in the middle of a frame: the upstream sees the socket
/// dropped (1006: part of the frame was relayed) or 1001 `client gone`.
async fn kill_mid_frame(world: Arc<World>, seed: u64) {
    let generation = world.up.generation.load(SeqCst);
    let Some(mut conn) = take(&world, seed).await else {
        return;
    };
    // A masked binary frame header announcing 1000 bytes, the mask, 10 of them.
    let mut bytes = vec![0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4];
    bytes.extend_from_slice(&[0x55; 10]);
    let _ = conn.ws.get_mut().write_all(&bytes).await;
    drop(conn.ws);
    let killed = tokio::time::Instant::now();
    let mut end = end_of(&upstream_end(&world, conn.id, Duration::from_secs(5)).await);
    if end.is_none() && !restart_hit(&world, generation, conn.id) {
        // Finding (a) of docs/reliability.md: how late, if at all, does it end?
        let more = Duration::from_millis(world.args.ping_ms) * (MISSED_PONGS + 1);
        end = end_of(&upstream_end(&world, conn.id, more + Duration::from_secs(5)).await);
        if restart_hit(&world, generation, conn.id) {
            return;
        }
        let after = killed.elapsed();
        lock(&world.stats).fault("kill_mid_frame: ended after 5 s", false, || {
            format!(
                "connection {}: upstream saw {end:?} {after:?} after the kill",
                conn.id
            )
        });
        return;
    }
    let ok = matches!(&end, Some((1006, _))) || end == Some((1001, "client gone".into()));
    if restart_hit(&world, generation, conn.id) {
        return;
    }
    lock(&world.stats).fault("kill_mid_frame", ok, || {
        format!("connection {}: upstream saw {end:?}", conn.id)
    });
}

/// A client goes silent (reads and writes nothing, keeps the socket): it
/// misses its heartbeats, and the upstream gets 1001 `client gone`.
async fn half_open(world: Arc<World>, seed: u64) {
    let generation = world.up.generation.load(SeqCst);
    let Some(conn) = take(&world, seed).await else {
        return;
    };
    let wait =
        Duration::from_millis(world.args.ping_ms) * (MISSED_PONGS + 3) + Duration::from_secs(2);
    let end = end_of(&upstream_end(&world, conn.id, wait).await);
    drop(conn.ws);
    if restart_hit(&world, generation, conn.id) {
        return;
    }
    let ok = end == Some((1001, "client gone".into()));
    lock(&world.stats).fault("half_open", ok, || {
        format!("connection {}: upstream saw {end:?}", conn.id)
    });
}

/// A client writes bytes that are no WebSocket frame (reserved bits and
/// opcode set): it gets 1002 `protocol error`, the upstream 1001 `client gone`.
async fn garbage_frames(world: Arc<World>, seed: u64) {
    let generation = world.up.generation.load(SeqCst);
    let Some(mut conn) = take(&world, seed).await else {
        return;
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bytes = vec![0xff, 0x85];
    bytes.extend((0..rng.random_range(4..64)).map(|_| rng.random::<u8>()));
    let _ = conn.ws.get_mut().write_all(&bytes).await;
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = conn.ws.next().await {
            if let Message::Close(f) = m {
                return f.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let end = end_of(&upstream_end(&world, conn.id, Duration::from_secs(5)).await);
    if restart_hit(&world, generation, conn.id) {
        return;
    }
    let ok =
        got == Some((1002, "protocol error".into())) && end == Some((1001, "client gone".into()));
    lock(&world.stats).fault("garbage_frames", ok, || {
        format!(
            "connection {}: client got {got:?}, upstream {end:?}",
            conn.id
        )
    });
}

/// Connections that complete the WebSocket handshake and never
/// authenticate: each gets 1008 `auth timeout`.
async fn flood_unauthenticated(world: Arc<World>, _seed: u64) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..world.args.flood {
        let (addr, scale) = (world.proxy, world.args.scale);
        set.spawn(async move {
            let tcp = crate::net::connect(crate::net::hostile(), addr)
                .await
                .ok()?;
            let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/s/flood"), tcp)
                .await
                .ok()?;
            let wait = AUTH_TIMEOUT * scale + Duration::from_secs(5);
            tokio::time::timeout(wait, async {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Close(f) = m {
                        return f.map(|f| (u16::from(f.code), f.reason.to_string()));
                    }
                }
                None
            })
            .await
            .ok()
            .flatten()
        });
    }
    while let Some(got) = set.join_next().await {
        let got = got.ok().flatten();
        let ok = got == Some((1008, "auth timeout".into()));
        lock(&world.stats).fault("flood_unauthenticated", ok, || {
            format!("closed with {got:?}")
        });
    }
}

/// Whether the proxy closes `tcp` within `wait` (after any answer it writes).
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Sockets that send half a request head and stop: each is closed after
/// `listener.header_read_timeout`.
async fn half_open_http(world: Arc<World>, _seed: u64) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (addr, scale) = (world.proxy, world.args.scale);
        set.spawn(async move {
            let mut tcp = crate::net::connect(crate::net::hostile(), addr)
                .await
                .ok()?;
            tcp.write_all(b"GET /s/half HTTP/1.1\r\nHost: soak\r\nUpgr")
                .await
                .ok()?;
            Some(closed_within(&mut tcp, HEADER_TIMEOUT * scale + Duration::from_secs(5)).await)
        });
    }
    while let Some(got) = set.join_next().await {
        let ok = matches!(got, Ok(Some(true)));
        lock(&world.stats).fault("half_open_http", ok, || {
            "not closed after the header timeout".into()
        });
    }
}

/// Sockets that send random bytes instead of a request: each is answered
/// (400) or closed, within the header timeout.
async fn garbage_http(world: Arc<World>, seed: u64) {
    let mut set = tokio::task::JoinSet::new();
    for k in 0..10 {
        let (addr, scale) = (world.proxy, world.args.scale);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ k);
        let bytes: Vec<u8> = (0..rng.random_range(1..600))
            .map(|_| rng.random())
            .collect();
        set.spawn(async move {
            let mut tcp = crate::net::connect(crate::net::hostile(), addr)
                .await
                .ok()?;
            tcp.write_all(&bytes).await.ok()?;
            Some(closed_within(&mut tcp, HEADER_TIMEOUT * scale + Duration::from_secs(5)).await)
        });
    }
    while let Some(got) = set.join_next().await {
        let ok = matches!(got, Ok(Some(true)));
        lock(&world.stats).fault("garbage_http", ok, || "not closed after garbage".into());
    }
}

/// The upstream drops every connection and its port for 300 ms: its
/// clients get 1011 `upstream gone`, those connecting meanwhile 1013
/// `upstream unavailable` (counted by the clients, under this name).
async fn upstream_restart(world: Arc<World>, _seed: u64) {
    let result = world.up.restart(Duration::from_millis(300)).await;
    let ok = result.is_ok();
    lock(&world.stats).fault("upstream_restart", ok, || {
        format!("restart failed: {result:?}")
    });
}

/// `POST /revoke` of the subject of a slot with a live connection: the
/// proxy answers 200 with the connections it closed; the client counts its
/// close (1008 `token revoked`, upstream leg 1001) and comes back with a
/// token issued after the revocation (`client.rs`).
async fn revoke(world: Arc<World>, seed: u64) {
    let n = world.slots.len();
    let start = (seed as usize) % n.max(1);
    let Some(i) = (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| lock(&world.slots[i]).is_some() && lock(&world.revoked[i]).is_none())
    else {
        return;
    };
    let at = now_secs();
    *lock(&world.revoked[i]) = Some(Revoked { at, done: false });
    let body = serde_json::json!({"sub": format!("soak-{i}"), "ttl": "60s"}).to_string();
    let got = admin_request(
        world.admin,
        "POST",
        "/revoke",
        &body,
        Duration::from_secs(5),
    )
    .await;
    *lock(&world.revoked[i]) = Some(Revoked {
        at: now_secs(),
        done: true,
    });
    let closed = match &got {
        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["closed"].as_u64()),
        _ => None,
    };
    // 0 closed: the connection ended meanwhile (another fault took it).
    lock(&world.stats).fault("revoke", closed.is_some_and(|c| c <= 1), || {
        format!("POST /revoke soak-{i}: {got:?}")
    });
}

/// A configuration reload that changes a harmless `[session]` timing
/// (`reauth_jitter`), by `POST /reload` or `SIGHUP` in turn: it must be
/// applied (200 `reloaded` with nothing ignored, and the log line) and no
/// live connection may drop (any close it caused is an unexpected close).
async fn reload(world: Arc<World>, seed: u64) {
    let n = world.reloads.fetch_add(1, SeqCst) + 1;
    let (up, secret) = &world.config_inputs;
    let text = crate::proxy::config(*up, secret, &world.args, n);
    if let Err(e) = std::fs::write(&world.config, text) {
        lock(&world.stats).fault("reload", false, || format!("write the configuration: {e}"));
        return;
    }
    let before = lock(&world.log).reloads;
    let (how, answered) = if seed.is_multiple_of(2) {
        let got = admin_request(world.admin, "POST", "/reload", "", Duration::from_secs(10)).await;
        let ok = matches!(&got, Ok((200, body)) if reloaded(body));
        ("POST /reload", ok.then_some(()).ok_or(format!("{got:?}")))
    } else {
        let got = crate::proxy::signal_pid(world.pid, "-HUP").await;
        ("SIGHUP", got.map_err(|e| e.to_string()))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while lock(&world.log).reloads == before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logged = lock(&world.log).reloads > before;
    lock(&world.stats).fault("reload", answered.is_ok() && logged, || {
        format!("{how}: answer {answered:?}, logged: {logged}")
    });
}

/// Whether a `/reload` answer says it reloaded with nothing ignored.
fn reloaded(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
        v["status"] == "reloaded" && v["ignored"].as_array().is_some_and(|a| a.is_empty())
    })
}
