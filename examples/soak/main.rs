//! The chaos soak: the real `wsguard` binary, an upstream, and N clients
//! with staggered short token lifetimes sending numbered frames both ways
//! and answering `auth_required` with a REAUTH, while faults are injected
//! on a schedule and at random (`faults.rs`). At the end it checks that
//! every frame of every healthy connection arrived exactly once and in
//! order, that every connection a fault hit ended with the close it should
//! have, that `wsguard_connections_active` is back to 0, that the RSS is
//! back to at most baseline + max(10 %, 16 MiB), and that the log has no
//! error-level line or panic. It ends with a drain (`SIGTERM`, `drain.rs`):
//! every client gets the `reconnect` hint, then 1001 `going away`, and the
//! process exits 0 with no connection left. See `docs/reliability.md`.
//!
//!     cargo build --release -p wsguard
//!     cargo run --release --example soak -- --clients 500 --seconds 45

mod client;
mod drain;
mod faults;
mod frames;
mod net;
mod proxy;
mod report;
mod spray;
mod upstream;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};

use crate::upstream::lock;

/// The soak's settings.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Client slots (each reconnects after its connection ends).
    #[arg(long, default_value_t = 500)]
    pub clients: usize,
    /// Seconds of load (faults included), after the ramp.
    #[arg(long, default_value_t = 45)]
    pub seconds: u64,
    /// Seconds over which the clients start.
    #[arg(long, default_value_t = 5)]
    pub ramp: u64,
    /// Milliseconds between two frames of a client.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// Milliseconds between two faults.
    #[arg(long, default_value_t = 300)]
    pub fault_every_ms: u64,
    /// Connections per flood of never-authenticating connections.
    #[arg(long, default_value_t = 50)]
    pub flood: usize,
    /// Seed of the fault schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The proxy's worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// `session.ping_interval` in milliseconds (heartbeats of both legs;
    /// a silent peer is closed after 2 of them).
    #[arg(long, default_value_t = 1000)]
    pub ping_ms: u64,
    /// `upstream.connect_timeout` in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub connect_timeout_ms: u64,
    /// `auth.cache_size` (the verified-token cache, kept 5 minutes); unset: the default (10,000).
    #[arg(long)]
    pub token_cache: Option<u64>,
    /// Multiplies the auth, header and REAUTH timings and the token
    /// lifetimes (for large runs on a loaded machine).
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Rounds of load (each ends with every connection closed; the RSS is
    /// taken after each, to tell a leak, growing per round, from retention).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// The wsguard binary.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/wsguard"))]
    pub wsguard: PathBuf,
    /// Where the table is written.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/soak.md"))]
    pub out: PathBuf,
}

/// What the clients, the faults and the upstream share.
pub struct World {
    /// The settings.
    pub args: Args,
    /// The proxy's address.
    pub proxy: std::net::SocketAddr,
    /// The upstream.
    pub up: Arc<upstream::Upstream>,
    /// The counts.
    pub stats: Mutex<report::Stats>,
    /// Per slot: how a fault takes its connection (set while it relays).
    pub slots: Vec<Mutex<Option<tokio::sync::mpsc::UnboundedSender<client::Take>>>>,
    /// The run is ending: clients exchange `fin` and stop.
    pub stopping: AtomicBool,
    /// Next connection id.
    pub next_id: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// The proxy's admin listener (revocations, reloads).
    pub admin: std::net::SocketAddr,
    /// The proxy's process id (`SIGHUP`).
    pub pid: u32,
    /// The proxy's configuration file, and what `proxy::config` needs to rewrite it.
    pub config: PathBuf,
    /// The upstream address and the secret file, for `proxy::config`.
    pub config_inputs: (std::net::SocketAddr, PathBuf),
    /// The proxy's log scan (reload lines counted).
    pub log: Arc<Mutex<proxy::LogScan>>,
    /// Reloads made so far (the configuration variant).
    pub reloads: AtomicU64,
    /// Per slot: the revocation of its subject, until it is back in.
    pub revoked: Vec<Mutex<Option<faults::Revoked>>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let up = upstream::Upstream::start().await?;
    let proxy = proxy::Proxy::start(&args, up.addr).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = proxy.rss()?;
    let world = Arc::new(World {
        slots: (0..args.clients).map(|_| Mutex::new(None)).collect(),
        args: args.clone(),
        proxy: proxy.addr,
        up,
        stats: Mutex::default(),
        stopping: AtomicBool::new(false),
        next_id: AtomicU64::new(0),
        open: AtomicU64::new(0),
        admin: proxy.admin,
        pid: proxy.child.id().context("the proxy exited")?,
        config: proxy.config.clone(),
        config_inputs: proxy.inputs.clone(),
        log: proxy.log.clone(),
        reloads: AtomicU64::new(0),
        revoked: (0..args.clients).map(|_| Mutex::new(None)).collect(),
    });
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = sample_rss(&proxy, peak.clone())?;
    let (mut seconds, mut active, mut end_rss) = (0.0, 0.0, baseline);
    let mut round_rss = Vec::new();
    for _ in 0..args.rounds.max(1) {
        world.stopping.store(false, SeqCst);
        let (load, left, rss) = round(&world, &proxy).await?;
        (seconds, active, end_rss) = (seconds + load, left, rss);
        round_rss.push(rss);
    }
    sampler.abort();
    let exit = drain::run(&world, proxy).await?;
    let log = lock(&exit.log);
    {
        let mut stats = lock(&world.stats);
        for rec in lock(&world.up.records).values() {
            let rec = lock(rec);
            stats.frames_up += rec.received;
            stats.disorder += rec.disorder;
        }
    }
    let outcome = report::Outcome {
        settings: format!(
            "--clients {} --rounds {} --seconds {} --ramp {} --interval-ms {} --fault-every-ms {} --flood {} --seed {} --workers {} --ping-ms {} --connect-timeout-ms {} --token-cache {} --scale {}",
            args.clients,
            args.rounds,
            args.seconds,
            args.ramp,
            args.interval_ms,
            args.fault_every_ms,
            args.flood,
            args.seed,
            args.workers,
            args.ping_ms,
            args.connect_timeout_ms,
            args.token_cache.map_or("default".to_owned(), |n| n.to_string()),
            args.scale,
        ),
        seconds,
        active_at_end: active,
        active_in_drain: exit.last_active,
        round_rss,
        rss: (baseline, peak.load(SeqCst).max(end_rss), end_rss),
        bad_log_lines: log.bad_count,
        bad_log: log.bad.clone(),
        log_lines: log.lines,
    };
    let (table, pass) = report::table(&lock(&world.stats), &outcome);
    println!("{table}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &table).with_context(|| format!("write {}", args.out.display()))?;
    if !pass {
        eprintln!("the soak failed a check (table in {})", args.out.display());
        std::process::exit(1);
    }
    Ok(())
}

/// One round of load: the clients start, faults run for `--seconds`, the
/// clients exchange `fin` and stop; then `wsguard_connections_active` must
/// settle. The seconds of load, the active connections left, the RSS 2 s later.
async fn round(world: &Arc<World>, proxy: &proxy::Proxy) -> anyhow::Result<(f64, f64, u64)> {
    let args = &world.args;
    let mut clients = tokio::task::JoinSet::new();
    let step = Duration::from_secs(args.ramp)
        .checked_div(args.clients.max(1) as u32)
        .unwrap_or_default();
    for i in 0..args.clients {
        clients.spawn(client::slot(world.clone(), i));
        tokio::time::sleep(step).await;
    }
    let started = Instant::now();
    let mut faults = schedule(world, Duration::from_secs(args.seconds)).await;
    while faults.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    world.stopping.store(true, SeqCst);
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    if ended.is_err() {
        lock(&world.stats).problem("clients did not finish within 60 s of the end".into());
    }
    let active = settle(proxy).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok((seconds, active, proxy.rss()?))
}

/// Samples the proxy's RSS every 250 ms into `peak`.
fn sample_rss(
    proxy: &proxy::Proxy,
    peak: Arc<AtomicU64>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let pid = proxy.child.id().context("the proxy exited")?;
    Ok(tokio::spawn(async move {
        loop {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let kib = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
                if let Some(kib) = kib {
                    peak.fetch_max(kib * 1024, SeqCst);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}

/// Injects faults for `load`: every `fault_every_ms`, one picked by weight
/// (one whose `min_gap` has not passed is skipped).
async fn schedule(world: &Arc<World>, load: Duration) -> tokio::task::JoinSet<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(world.args.seed);
    let mut last = vec![None::<Instant>; faults::FAULTS.len()];
    let total: u32 = faults::FAULTS.iter().map(|f| f.weight).sum();
    let mut set = tokio::task::JoinSet::new();
    let end = Instant::now() + load;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(world.args.fault_every_ms)).await;
        let mut pick = rng.random_range(0..total.max(1));
        let Some(k) = faults::FAULTS.iter().position(|f| {
            let hit = pick < f.weight;
            pick = pick.saturating_sub(f.weight);
            hit
        }) else {
            continue;
        };
        let fault = &faults::FAULTS[k];
        if last[k].is_some_and(|t: Instant| t.elapsed() < fault.min_gap) {
            continue;
        }
        last[k] = Some(Instant::now());
        *lock(&world.stats).scheduled.entry(fault.name).or_default() += 1;
        set.spawn((fault.run)(world.clone(), rng.random()));
    }
    set
}

/// Waits up to 15 s for `wsguard_connections_active` to reach 0; returns its last value.
async fn settle(proxy: &proxy::Proxy) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let active = proxy.connections_active().await?;
        if active == 0.0 || Instant::now() >= deadline {
            return Ok(active);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
