//! The address spray: connections over the per-client limits of `[limits]`
//! (`proxy.rs`), from addresses of their own (`net::spray`), while the
//! slots go on from theirs. One spray does four things in turn, each
//! counted under its own name, and each also checks that
//! `wsguard_limit_refusals_total{limit}` grew by exactly what it was refused:
//!
//! - `spray: per_address_connections`: [`PER_ADDRESS_CONNECTIONS`]
//!   authenticated connections from one address, then one more: 429
//!   `rate_limited`; the same from another address: admitted.
//! - `spray: per_address_rate`: [`PER_ADDRESS_BURST`] + 20 upgrades at
//!   once from one address: each is admitted (101) or refused with 429
//!   `rate_limited`; the rate admitted at least the burst and at most the
//!   burst plus what [`PER_ADDRESS_RATE`] refills meanwhile, and refused some.
//! - `spray: failed_auth`: [`FAILED_AUTH_MAX`] + 1 bad tokens from one
//!   address (each 1008 `invalid token`), then a valid one from it: 1008
//!   `too many attempts`; the valid one from another address: admitted.
//! - `spray: per_subject`: one subject from [`PER_SUBJECT`] + 1 addresses:
//!   the last is closed with 1008 `too many connections`.
//!
//! A step during which the upstream restarted is not counted (its
//! connections may get 1013 `upstream unavailable` or 1011 `upstream gone`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

use crate::client::{first_answer, restarted_since, token};
use crate::proxy::{
    limit_refusals, FAILED_AUTH_MAX, PER_ADDRESS_BURST, PER_ADDRESS_CONNECTIONS, PER_ADDRESS_RATE,
    PER_SUBJECT,
};
use crate::upstream::lock;
use crate::World;

type Ws = WebSocketStream<TcpStream>;

/// A spray is under way (two never overlap: their metric deltas would mix).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// How an upgrade ended: admitted, refused over HTTP (status, `error`), or failed.
enum Upgrade {
    Admitted(Box<Ws>),
    Refused(u16, String),
    Failed(String),
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upgrade::Admitted(_) => write!(f, "101"),
            Upgrade::Refused(status, error) => write!(f, "HTTP {status} {error}"),
            Upgrade::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// A WebSocket upgrade from `from`.
async fn upgrade(world: &World, from: Ipv4Addr) -> Upgrade {
    let id = world.next_id.fetch_add(1, SeqCst);
    let tcp = match crate::net::connect(from, world.proxy).await {
        Ok(tcp) => tcp,
        Err(e) => return Upgrade::Failed(format!("connect: {e}")),
    };
    let url = format!("ws://{}/s/{id}", world.proxy);
    match tokio_tungstenite::client_async(url, tcp).await {
        Ok((ws, _)) => Upgrade::Admitted(Box::new(ws)),
        Err(Error::Http(response)) => {
            let error = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Upgrade::Refused(response.status().as_u16(), error)
        }
        Err(e) => Upgrade::Failed(e.to_string()),
    }
}

/// Upgrades from `from` and authenticates with `auth`: the open connection,
/// or how it ended instead ("code reason" of its close, or the refusal).
async fn authenticated(world: &World, from: Ipv4Addr, auth: &str) -> Result<Box<Ws>, String> {
    let mut ws = match upgrade(world, from).await {
        Upgrade::Admitted(ws) => ws,
        Upgrade::Refused(status, error) => return Err(format!("HTTP {status} {error}")),
        Upgrade::Failed(e) => return Err(e),
    };
    let frame = json!({"type": "auth", "id": "a", "payload": {"token": auth}});
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    match first_answer(&mut ws).await {
        Some(Ok(())) => Ok(ws),
        Some(Err((code, reason))) => Err(format!("{code} {reason}")),
        None => Err("no answer".into()),
    }
}

/// Closes with 1000 and reads to the end.
async fn close(mut ws: Box<Ws>) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "spray done".into(),
    };
    let _ = WebSocketStream::close(&mut *ws, Some(frame)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// A token for `sub` signed with a key the proxy does not have.
fn bad_token(sub: &str) -> String {
    crate::client::token_signed(sub, 60, "not-the-soak-secret-0123456789abcdef")
}

/// How much `wsguard_limit_refusals_total{limit}` grew between two scrapes.
fn grew(before: &HashMap<String, f64>, after: &HashMap<String, f64>, limit: &str) -> f64 {
    after.get(limit).copied().unwrap_or(0.0) - before.get(limit).copied().unwrap_or(0.0)
}

/// Runs one spray (none if one is under way).
pub async fn spray(world: Arc<World>, seed: u64) {
    if RUNNING.swap(true, SeqCst) {
        return;
    }
    let ttl = 60 * u64::from(world.args.scale);
    let run = format!("spray-{seed:x}");
    connections(&world, &run, ttl).await;
    rate(&world).await;
    failed_auth(&world, &run, ttl).await;
    per_subject(&world, &run, ttl).await;
    RUNNING.store(false, SeqCst);
}

/// Scrapes the refusal counts (an empty map if the scrape fails, which the checks then fail).
async fn refusals(world: &World) -> HashMap<String, f64> {
    limit_refusals(world.admin).await.unwrap_or_default()
}

/// The upstream's generation now, to tell later whether it restarted.
fn generation(world: &World) -> u64 {
    world.up.generation.load(SeqCst)
}

/// Counts a step's outcome, unless the upstream restarted since `generation`.
fn record(
    world: &World,
    generation: u64,
    step: &'static str,
    ok: bool,
    what: impl FnOnce() -> String,
) {
    if !restarted_since(world, generation) {
        lock(&world.stats).fault(step, ok, what);
    }
}

async fn connections(world: &World, run: &str, ttl: u64) {
    let generation = generation(world);
    let before = refusals(world).await;
    let from = crate::net::spray();
    let mut held = Vec::new();
    let mut problem = None;
    for k in 0..PER_ADDRESS_CONNECTIONS {
        match authenticated(world, from, &token(&format!("{run}-c{k}"), ttl)).await {
            Ok(ws) => held.push(ws),
            Err(e) => {
                problem = Some(format!("connection {k} of the cap: {e}"));
                break;
            }
        }
    }
    let over = upgrade(world, from).await;
    let elsewhere =
        authenticated(world, crate::net::spray(), &token(&format!("{run}-c"), ttl)).await;
    let after = refusals(world).await;
    let refused = matches!(&over, Upgrade::Refused(429, e) if e == "rate_limited");
    let counted = grew(&before, &after, "per_address_connections") == 1.0;
    let ok = problem.is_none() && refused && counted && elsewhere.is_ok();
    record(
        world,
        generation,
        "spray: per_address_connections",
        ok,
        || {
            format!(
                "{problem:?}; one more: {over:?}; counted: {counted}; from another address: {:?}",
                elsewhere.as_ref().err()
            )
        },
    );
    if let Ok(ws) = elsewhere {
        held.push(ws);
    }
    if let Upgrade::Admitted(ws) = over {
        held.push(ws);
    }
    for ws in held {
        close(ws).await;
    }
}

async fn rate(world: &Arc<World>) {
    let generation = generation(world);
    let before = refusals(world).await;
    let from = crate::net::spray();
    let attempts = PER_ADDRESS_BURST + 20;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..attempts {
        let world = world.clone();
        set.spawn(async move {
            match upgrade(&world, from).await {
                Upgrade::Admitted(ws) => {
                    close(ws).await;
                    Ok(true)
                }
                Upgrade::Refused(429, e) if e == "rate_limited" => Ok(false),
                other => Err(format!("{other:?}")),
            }
        });
    }
    let (mut answered, mut refused, mut odd) = (0u32, 0u32, Vec::new());
    while let Some(got) = set.join_next().await {
        match got {
            Ok(Ok(admitted)) => {
                answered += 1;
                refused += u32::from(!admitted);
            }
            Ok(Err(e)) => odd.push(e),
            Err(e) => odd.push(e.to_string()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = refusals(world).await;
    let by_rate = grew(&before, &after, "per_address_rate");
    let by_count = grew(&before, &after, "per_address_connections");
    let passed = f64::from(attempts) - by_rate;
    let most = f64::from(PER_ADDRESS_BURST) + (f64::from(PER_ADDRESS_RATE) * elapsed).ceil() + 1.0;
    // Both limits answer 429 `rate_limited`; the metric tells them apart.
    let ok = odd.is_empty()
        && answered == attempts
        && f64::from(refused) == by_rate + by_count
        && by_rate >= 1.0
        && passed >= f64::from(PER_ADDRESS_BURST)
        && passed <= most;
    record(world, generation, "spray: per_address_rate", ok, || {
        format!(
            "{attempts} at once in {elapsed:.2} s: {refused} refused, by the rate {by_rate}, by the count {by_count} (passed the rate {passed}, at most {most}); unexpected: {odd:?}"
        )
    });
}

async fn failed_auth(world: &World, run: &str, ttl: u64) {
    let generation = generation(world);
    let before = refusals(world).await;
    let from = crate::net::spray();
    let mut wrong = Vec::new();
    for k in 0..=FAILED_AUTH_MAX {
        match authenticated(world, from, &bad_token(&format!("{run}-f{k}"))).await {
            Err(e) if matches!(e.as_str(), "1008 invalid token" | "4401 invalid token") => {}
            Err(e) => wrong.push(e),
            Ok(ws) => {
                wrong.push("a bad token was accepted".into());
                close(ws).await;
            }
        }
    }
    let valid = token(&format!("{run}-f"), ttl);
    let cooling = authenticated(world, from, &valid).await;
    let elsewhere = authenticated(world, crate::net::spray(), &valid).await;
    let after = refusals(world).await;
    let refused = matches!(&cooling, Err(e) if e == "1008 too many attempts" || e == "4429 too many attempts");
    let counted = grew(&before, &after, "failed_auth") == 1.0;
    let ok = wrong.is_empty() && refused && counted && elsewhere.is_ok();
    record(world, generation, "spray: failed_auth", ok, || {
        format!(
            "bad tokens answered {wrong:?}; then a valid one: {:?}; counted: {counted}; from another address: {:?}",
            cooling.as_ref().err(),
            elsewhere.as_ref().err()
        )
    });
    for ws in [cooling, elsewhere].into_iter().flatten() {
        close(ws).await;
    }
}

async fn per_subject(world: &World, run: &str, ttl: u64) {
    let generation = generation(world);
    let before = refusals(world).await;
    let valid = token(&format!("{run}-s"), ttl);
    let mut held = Vec::new();
    let mut problem = None;
    for k in 0..PER_SUBJECT {
        match authenticated(world, crate::net::spray(), &valid).await {
            Ok(ws) => held.push(ws),
            Err(e) => {
                problem = Some(format!("connection {k} of the cap: {e}"));
                break;
            }
        }
    }
    let over = authenticated(world, crate::net::spray(), &valid).await;
    let after = refusals(world).await;
    let refused = matches!(&over, Err(e) if e == "1008 too many connections" || e == "4429 too many connections");
    let counted = grew(&before, &after, "per_subject") == 1.0;
    let ok = problem.is_none() && refused && counted;
    record(world, generation, "spray: per_subject", ok, || {
        format!(
            "{problem:?}; one more: {:?}; counted: {counted}",
            over.as_ref().err()
        )
    });
    held.extend(over);
    for ws in held {
        close(ws).await;
    }
}
