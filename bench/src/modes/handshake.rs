//! `handshake` mode: K workers open + auth + wait for AUTHENTICATED, T in total.

use super::tokens_for;
use crate::client::{close_quietly, CommonArgs, Target};
use crate::procstat::{ticks_to_us, CpuSnapshot};
use crate::report::{fmt_us, round2, Errors, Hist, Outcome};
use crate::tokens::Minter;
use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct HandshakeArgs {
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Total handshakes.
    #[arg(long, default_value_t = 5000)]
    pub total: usize,
    /// Use one token for every connection (exercises a verification cache).
    #[arg(long)]
    pub shared_token: bool,
}

impl HandshakeArgs {
    /// `alg` is the token algorithm, or "noauth" for plain targets.
    pub fn case(&self, alg: &str) -> String {
        let shared = if self.shared_token && alg != "noauth" {
            " shared"
        } else {
            ""
        };
        format!("c{} {alg}{shared}", self.concurrency)
    }
}

pub async fn run(
    common: &CommonArgs,
    minter: Option<&Minter>,
    args: &HandshakeArgs,
) -> Result<Outcome> {
    let target = Arc::new(Target::from_args(common)?);
    // All tokens are minted before the clock starts.
    let tokens = Arc::new(tokens_for(
        &target,
        minter,
        args.total,
        None,
        args.shared_token,
    )?);
    let errors = Arc::new(Errors::default());
    let next = Arc::new(AtomicUsize::new(0));

    let before = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency.max(1) {
        let (target, tokens, errors, next) =
            (target.clone(), tokens.clone(), errors.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut hist = Hist::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else { break };
                let t = Instant::now();
                match target.open(token.as_deref()).await {
                    Ok(ws) => {
                        hist.record(t.elapsed());
                        close_quietly(ws).await;
                    }
                    Err(e) => errors.add(&e),
                }
            }
            hist
        }));
    }
    let mut hist = Hist::new();
    for h in handles {
        hist.merge(&h.await?);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let after = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    if hist.is_empty() {
        bail!("no handshake succeeded ({})", errors.summary());
    }

    let d = before.delta(&after);
    let n = hist.len() as f64;
    let rate = n / elapsed;
    let cpu = ticks_to_us(d.watched) / n;
    let alg = match (target.auth, minter) {
        (true, Some(m)) => m.alg.name(),
        _ => "noauth",
    };
    let case = args.case(alg);
    let mut j = Outcome::base("handshake", &common.target, &case, &common.tag);
    j.insert("alg".into(), json!(alg));
    j.insert("shared_token".into(), json!(args.shared_token));
    j.insert("concurrency".into(), json!(args.concurrency));
    j.insert("total".into(), json!(args.total));
    j.insert("ok".into(), json!(hist.len()));
    j.insert("elapsed_s".into(), json!(round2(elapsed)));
    j.insert("other_cpu_pct".into(), json!(d.other_pct(elapsed)));
    j.insert("hs_per_s".into(), json!(rate.round()));
    hist.fields("", &mut j);
    j.insert("cpu_us_per_hs".into(), json!(round2(cpu)));
    j.insert(
        "upstream_cpu_us_per_hs".into(),
        json!(round2(ticks_to_us(d.upstream) / n)),
    );
    j.insert(
        "loadgen_cpu_us_per_hs".into(),
        json!(round2(ticks_to_us(d.own) / n)),
    );
    let human = format!(
        "handshake {} {case}: {:.0} hs/s p50={} p99={} cpu={:.1}µs/hs ok={} errors={} in {:.2}s",
        common.target,
        rate,
        fmt_us(hist.q(0.5)),
        fmt_us(hist.q(0.99)),
        cpu,
        hist.len(),
        errors.count(),
        elapsed
    );
    Ok(Outcome::new(human, j, &errors))
}
