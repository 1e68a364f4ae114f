//! `echo` mode: N connections, each a closed loop of M messages of S bytes.

use super::{ramp, tokens_for};
use crate::client::{close_quietly, truncate, CommonArgs, Target, Ws};
use crate::procstat::{ticks_to_us, CpuSnapshot};
use crate::report::{fmt_us, round2, Errors, Hist, Outcome};
use crate::tokens::Minter;
use anyhow::{bail, Result};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// Concurrent connections.
    #[arg(long, default_value_t = 100)]
    pub conns: usize,
    /// Messages per connection (closed loop: send, wait for the echo, repeat).
    #[arg(long, default_value_t = 2000)]
    pub msgs: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Send text frames instead of binary: a JSON chat message
    /// (`{"type":"message","text":"xx…"}`) of `size` bytes, as chat clients
    /// send (so wsguard's control-frame check runs on each).
    #[arg(long)]
    pub text: bool,
    /// Connections opened at once while ramping up (not measured).
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
}

impl EchoArgs {
    pub fn case(&self) -> String {
        let kind = if self.text { " text" } else { "" };
        format!("{}x{} {}B{kind}", self.conns, self.msgs, self.size)
    }
}

pub async fn run(common: &CommonArgs, minter: Option<&Minter>, args: &EchoArgs) -> Result<Outcome> {
    let target = Arc::new(Target::from_args(common)?);
    let tokens = tokens_for(&target, minter, args.conns, None, false)?;
    let errors = Arc::new(Errors::default());
    let payload = Bytes::from(if args.text {
        chat_message(args.size)
    } else {
        vec![b'x'; args.size]
    });
    let (ramp, mut ctl) = ramp(args.concurrency);

    let mut handles = Vec::with_capacity(args.conns);
    for token in tokens {
        let (target, errors, payload, mut ramp) = (
            target.clone(),
            errors.clone(),
            payload.clone(),
            ramp.clone(),
        );
        let (msgs, text) = (args.msgs, args.text);
        handles.push(tokio::spawn(async move {
            let mut hist = Hist::new();
            let Some(mut ws) = ramp.open(&target, token.as_deref(), &errors).await else {
                return (hist, None);
            };
            ramp.started().await;
            if let Err(e) = echo_loop(&mut ws, &payload, msgs, text, &mut hist).await {
                errors.add(&e);
            }
            (hist, Some(ws))
        }));
    }
    drop(ramp);
    let opened = ctl.wait_ready(args.conns).await;
    if opened == 0 {
        bail!("no connection could be opened ({})", errors.summary());
    }

    let before = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    let t0 = Instant::now();
    ctl.start();
    let mut hist = Hist::new();
    let mut sockets = Vec::with_capacity(opened);
    for h in handles {
        let (hh, ws) = h.await?;
        hist.merge(&hh);
        sockets.extend(ws);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let after = CpuSnapshot::take(&common.watch_pids, &common.upstream_pids)?;
    for ws in sockets {
        close_quietly(ws).await;
    }

    let d = before.delta(&after);
    let n = hist.len().max(1) as f64;
    let rate = hist.len() as f64 / elapsed;
    let cpu = ticks_to_us(d.watched) / n;
    let case = args.case();
    let mut j = Outcome::base("echo", &common.target, &case, &common.tag);
    j.insert("conns".into(), json!(args.conns));
    j.insert("opened".into(), json!(opened));
    j.insert("msgs_per_conn".into(), json!(args.msgs));
    j.insert("size".into(), json!(args.size));
    j.insert("msgs".into(), json!(hist.len()));
    j.insert("elapsed_s".into(), json!(round2(elapsed)));
    j.insert("other_cpu_pct".into(), json!(d.other_pct(elapsed)));
    j.insert("msgs_per_s".into(), json!(rate.round()));
    hist.fields("", &mut j);
    j.insert("cpu_us_per_msg".into(), json!(round2(cpu)));
    j.insert(
        "upstream_cpu_us_per_msg".into(),
        json!(round2(ticks_to_us(d.upstream) / n)),
    );
    j.insert(
        "loadgen_cpu_us_per_msg".into(),
        json!(round2(ticks_to_us(d.own) / n)),
    );
    j.insert("watch_pids".into(), json!(common.watch_pids));
    let human = format!(
        "echo {} {case}: {:.0} msg/s p50={} p90={} p99={} p999={} cpu={:.2}µs/msg errors={} in {:.2}s",
        common.target,
        rate,
        fmt_us(hist.q(0.5)),
        fmt_us(hist.q(0.9)),
        fmt_us(hist.q(0.99)),
        fmt_us(hist.q(0.999)),
        cpu,
        errors.count(),
        elapsed
    );
    Ok(Outcome::new(human, j, &errors))
}

async fn echo_loop(
    ws: &mut Ws,
    payload: &Bytes,
    msgs: usize,
    text: bool,
    hist: &mut Hist,
) -> Result<()> {
    let make = |p: &Bytes| -> Result<Message> {
        Ok(if text {
            Message::Text(p.clone().try_into()?)
        } else {
            Message::Binary(p.clone())
        })
    };
    for i in 0..msgs {
        let t = Instant::now();
        ws.send(make(payload)?).await?;
        loop {
            match ws.next().await {
                None => bail!("closed after {i} echoes"),
                Some(Err(e)) => bail!("after {i} echoes: {e}"),
                Some(Ok(Message::Binary(b))) if b == *payload => break,
                Some(Ok(Message::Text(s))) if s.as_bytes() == payload.as_ref() => break,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => bail!(
                    "unexpected frame after {i} echoes: {}",
                    truncate(&format!("{m:?}"))
                ),
            }
        }
        hist.record(t.elapsed());
    }
    Ok(())
}

/// A JSON chat message of `size` bytes (at least its fixed part).
fn chat_message(size: usize) -> Vec<u8> {
    let head = br#"{"type":"message","text":""#;
    let tail = br#""}"#;
    let fill = size.saturating_sub(head.len() + tail.len());
    [&head[..], &vec![b'x'; fill], &tail[..]].concat()
}
