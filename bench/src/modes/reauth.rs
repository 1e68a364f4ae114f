//! `reauth` mode: N connections whose tokens all expire in the same second;
//! answer every `auth_required` with REAUTH and time the burst.

use super::{ramp, tokens_for};
use crate::client::{authenticate, close_quietly, msg_type, parse_control, CommonArgs, Target, Ws};
use crate::procstat::{ticks_to_us, CpuSnapshot};
use crate::report::{fmt_us, round2, Errors, Hist, Outcome};
use crate::tokens::{unix_now, Minter};
use anyhow::{anyhow, bail, Result};
use clap::Args;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Args)]
pub struct ReauthArgs {
    /// Connections.
    #[arg(long, default_value_t = 5000)]
    pub conns: usize,
    /// Connections opened at once while ramping up.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// First tokens expire this long after start (must exceed ramp time +
    /// the proxy's reauth_lead).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub expire_in: Duration,
    /// How long after that expiry to keep waiting for stragglers.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

impl ReauthArgs {
    pub fn case(&self, alg: &str) -> String {
        format!("{} conns {alg}", self.conns)
    }
}

/// Offsets from the common base instant.
struct Times {
    req: Duration,
    sent: Duration,
    ok: Duration,
}

pub async fn run(
    common: &CommonArgs,
    minter: Option<&Minter>,
    args: &ReauthArgs,
) -> Result<Outcome> {
    let target = Arc::new(Target::from_args(common)?);
    let minter = match (target.auth, minter) {
        (true, Some(m)) => m,
        _ => bail!("reauth mode needs an auth target and token options"),
    };
    let exp1 = unix_now() + args.expire_in.as_secs();
    let first = tokens_for(&target, Some(minter), args.conns, Some(exp1), false)?;
    let second = tokens_for(
        &target,
        Some(minter),
        args.conns,
        Some(minter.default_exp()),
        false,
    )?;
    let errors = Arc::new(Errors::default());
    let (ramp, mut ctl) = ramp(args.concurrency);

    // Map the unix expiry onto the monotonic clock to get a deadline.
    let base = Instant::now();
    let base_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let deadline = base + Duration::from_secs_f64((exp1 as f64 - base_unix).max(0.0)) + args.grace;

    let mut handles = Vec::with_capacity(args.conns);
    for (t1, t2) in first.into_iter().zip(second) {
        let (target, errors, ramp) = (target.clone(), errors.clone(), ramp.clone());
        handles.push(tokio::spawn(async move {
            let mut ws = ramp.open(&target, t1.as_deref(), &errors).await?;
            let token = t2.unwrap_or_default();
            let res = tokio::time::timeout_at(deadline.into(), reauth_once(&mut ws, &token, base))
                .await
                .map_err(|_| anyhow!("no auth_required/AUTHENTICATED before deadline"))
                .and_then(|r| r);
            close_quietly(ws).await;
            res.map_err(|e| errors.add(&e)).ok()
        }));
    }
    drop(ramp);
    let opened = ctl.wait_ready(args.conns).await;
    let ramp_s = base.elapsed().as_secs_f64();
    let margin_s = exp1 as f64 - (base_unix + ramp_s);
    if opened == 0 {
        bail!("no connection could be opened ({})", errors.summary());
    }
    let before = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    let window = Instant::now();
    let mut times = Vec::with_capacity(opened);
    for h in handles {
        times.extend(h.await?);
    }
    let after = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    let window_s = window.elapsed().as_secs_f64();
    if times.is_empty() {
        bail!("no connection re-authenticated ({})", errors.summary());
    }

    let mut hist = Hist::new();
    for t in &times {
        hist.record(t.ok.saturating_sub(t.sent));
    }
    let first_req = times.iter().map(|t| t.req).min().unwrap_or_default();
    let last_req = times.iter().map(|t| t.req).max().unwrap_or_default();
    let last_ok = times.iter().map(|t| t.ok).max().unwrap_or_default();
    let all_ms = last_ok.saturating_sub(first_req).as_secs_f64() * 1000.0;
    let spread_ms = last_req.saturating_sub(first_req).as_secs_f64() * 1000.0;
    // How long before exp the first auth_required arrived (= observed reauth lead).
    let lead_s = exp1 as f64 - (base_unix + first_req.as_secs_f64());
    let d = before.delta(&after);

    let case = args.case(minter.alg.name());
    let mut j = Outcome::base("reauth", &common.target, &case, &common.tag);
    j.insert("alg".into(), json!(minter.alg.name()));
    j.insert("conns".into(), json!(args.conns));
    j.insert("opened".into(), json!(opened));
    j.insert("reauthed".into(), json!(times.len()));
    j.insert("ramp_s".into(), json!(round2(ramp_s)));
    j.insert("margin_before_exp_s".into(), json!(round2(margin_s)));
    j.insert("observed_lead_s".into(), json!(round2(lead_s)));
    j.insert("auth_required_spread_ms".into(), json!(round2(spread_ms)));
    j.insert("all_reauth_ms".into(), json!(round2(all_ms)));
    hist.fields("", &mut j);
    j.insert("other_cpu_pct".into(), json!(d.other_pct(window_s)));
    j.insert(
        "cpu_ms".into(),
        json!(round2(ticks_to_us(d.watched) / 1000.0)),
    );
    let human = format!(
        "reauth {} {case}: all re-authenticated in {:.1}ms (auth_required spread {:.1}ms, lead {:.2}s) \
         REAUTH->AUTHENTICATED p50={} p99={} max={} reauthed={}/{} errors={}",
        common.target,
        all_ms,
        spread_ms,
        lead_s,
        fmt_us(hist.q(0.5)),
        fmt_us(hist.q(0.99)),
        fmt_us(hist.q(1.0)),
        times.len(),
        args.conns,
        errors.count()
    );
    Ok(Outcome::new(human, j, &errors))
}

/// Wait for auth_required, send REAUTH, wait for AUTHENTICATED.
async fn reauth_once(ws: &mut Ws, token: &str, base: Instant) -> Result<Times> {
    loop {
        match ws.next().await {
            None => bail!("closed before auth_required"),
            Some(Err(e)) => bail!("before auth_required: {e}"),
            Some(Ok(Message::Text(t))) => {
                let v = parse_control(t.as_str())?;
                if !msg_type(&v).eq_ignore_ascii_case("auth_required") {
                    bail!("expected auth_required, got type {:?}", msg_type(&v));
                }
                break;
            }
            Some(Ok(Message::Close(f))) => bail!("closed by peer before auth_required: {f:?}"),
            Some(Ok(_)) => continue,
        }
    }
    let req = base.elapsed();
    let sent = base.elapsed();
    authenticate(ws, "REAUTH", token).await?;
    let ok = base.elapsed();
    Ok(Times { req, sent, ok })
}
