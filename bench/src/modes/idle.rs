//! `idle` mode: hold N authenticated connections; memory per connection and
//! CPU while idle (heartbeat cost).

use super::{ramp, tokens_for};
use crate::client::{close_quietly, CommonArgs, Target};
use crate::procstat::{ticks_to_us, total_rss_kib, CpuSnapshot};
use crate::report::{round2, Errors, Outcome};
use crate::tokens::Minter;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 5000)]
    pub conns: usize,
    /// Connections opened at once while ramping up.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Wait after the last connection is up before reading RSS.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Window over which the watched process's idle CPU is measured.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
}

impl IdleArgs {
    pub fn case(&self) -> String {
        format!("{} conns", self.conns)
    }
}

pub async fn run(common: &CommonArgs, minter: Option<&Minter>, args: &IdleArgs) -> Result<Outcome> {
    if common.watch_pids.is_empty() {
        bail!("idle mode needs --watch-pid");
    }
    let target = Arc::new(Target::from_args(common)?);
    let tokens = tokens_for(&target, minter, args.conns, None, false)?;
    let errors = Arc::new(Errors::default());
    let (ramp, mut ctl) = ramp(args.concurrency);
    let (stop_tx, stop_rx) = watch::channel(false);

    let rss_before = total_rss_kib(&common.watch_pids)?;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(args.conns);
    for token in tokens {
        let (target, errors, ramp, mut stop) = (
            target.clone(),
            errors.clone(),
            ramp.clone(),
            stop_rx.clone(),
        );
        handles.push(tokio::spawn(async move {
            let Some(mut ws) = ramp.open(&target, token.as_deref(), &errors).await else {
                return 0u64;
            };
            // Keep reading so pings are answered; count what arrives.
            let mut frames = 0u64;
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    m = ws.next() => match m {
                        Some(Ok(Message::Close(_))) | None => {
                            errors.add(&anyhow!("connection closed while idle"));
                            return frames;
                        }
                        Some(Err(e)) => {
                            errors.add(&anyhow!("while idle: {e}"));
                            return frames;
                        }
                        Some(Ok(_)) => frames += 1,
                    },
                }
            }
            close_quietly(ws).await;
            frames
        }));
    }
    drop(ramp);
    let opened = ctl.wait_ready(args.conns).await;
    let ramp_s = t0.elapsed().as_secs_f64();
    if opened == 0 {
        bail!("no connection could be opened ({})", errors.summary());
    }
    tokio::time::sleep(args.settle).await;
    let rss_after = total_rss_kib(&common.watch_pids)?;

    let before = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    tokio::time::sleep(args.hold).await;
    let after = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    let errors_in_hold = errors.count();
    let _ = stop_tx.send(true);
    let mut frames = 0;
    for h in handles {
        frames += h.await?;
    }

    let d = before.delta(&after);
    let hold_s = args.hold.as_secs_f64();
    let cpu_pct = ticks_to_us(d.watched) / 1e6 / hold_s * 100.0;
    let kib_per_conn = (rss_after as f64 - rss_before as f64) / opened as f64;
    let case = args.case();
    let mut j = Outcome::base("idle", &common.target, &case, &common.tag);
    j.insert("conns".into(), json!(args.conns));
    j.insert("opened".into(), json!(opened));
    j.insert("ramp_s".into(), json!(round2(ramp_s)));
    j.insert("rss_before_kib".into(), json!(rss_before));
    j.insert("rss_after_kib".into(), json!(rss_after));
    j.insert("kib_per_conn".into(), json!(round2(kib_per_conn)));
    j.insert("hold_s".into(), json!(hold_s));
    j.insert("cpu_pct".into(), json!(round2(cpu_pct)));
    j.insert("other_cpu_pct".into(), json!(d.other_pct(hold_s)));
    j.insert(
        "upstream_cpu_pct".into(),
        json!(round2(ticks_to_us(d.upstream) / 1e6 / hold_s * 100.0)),
    );
    j.insert("frames_received".into(), json!(frames));
    j.insert("errors_in_hold".into(), json!(errors_in_hold));
    let human = format!(
        "idle {} {case}: {:.2} KiB/conn (RSS {} -> {} KiB) cpu={:.2}% over {:.0}s, opened={} in {:.2}s, frames={} errors={}",
        common.target, kib_per_conn, rss_before, rss_after, cpu_pct, hold_s, opened, ramp_s, frames,
        errors.count()
    );
    Ok(Outcome::new(human, j, &errors))
}
