//! The four measurement modes and the connection ramp they share.

pub mod echo;
pub mod handshake;
pub mod idle;
pub mod reauth;

use crate::client::{Target, Ws};
use crate::report::Errors;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};

/// Per-connection side of a ramp: open under a concurrency limit, report
/// readiness, then wait for the common start signal.
#[derive(Clone)]
pub struct Ramp {
    sem: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<bool>,
    start: watch::Receiver<bool>,
}

/// Controller side of a ramp.
pub struct RampCtl {
    ready: mpsc::UnboundedReceiver<bool>,
    start: watch::Sender<bool>,
}

pub fn ramp(concurrency: usize) -> (Ramp, RampCtl) {
    let (ready_tx, ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel(false);
    (
        Ramp {
            sem: Arc::new(Semaphore::new(concurrency.max(1))),
            ready: ready_tx,
            start: start_rx,
        },
        RampCtl {
            ready: ready_rx,
            start: start_tx,
        },
    )
}

impl Ramp {
    /// Open one connection (errors are recorded) and report it to the controller.
    pub async fn open(&self, target: &Target, token: Option<&str>, errors: &Errors) -> Option<Ws> {
        let res = {
            let _permit = self.sem.acquire().await.ok();
            target.open(token).await
        };
        if let Err(e) = &res {
            errors.add(e);
        }
        let _ = self.ready.send(res.is_ok());
        res.ok()
    }

    /// Wait until the controller says go.
    pub async fn started(&mut self) {
        let _ = self.start.wait_for(|s| *s).await;
    }
}

impl RampCtl {
    /// Wait for `n` connection attempts to finish; returns how many succeeded.
    pub async fn wait_ready(&mut self, n: usize) -> usize {
        let mut ok = 0;
        for _ in 0..n {
            match self.ready.recv().await {
                Some(true) => ok += 1,
                Some(false) => {}
                None => break,
            }
        }
        ok
    }

    pub fn start(&self) {
        let _ = self.start.send(true);
    }
}

/// Tokens for `n` connections, or `None`s for plain targets.
pub fn tokens_for(
    target: &Target,
    minter: Option<&crate::tokens::Minter>,
    n: usize,
    exp: Option<u64>,
    shared: bool,
) -> anyhow::Result<Vec<Option<String>>> {
    if !target.auth {
        return Ok(vec![None; n]);
    }
    let minter = minter.ok_or_else(|| anyhow::anyhow!("auth target needs token options"))?;
    let exp = exp.unwrap_or_else(|| minter.default_exp());
    Ok(minter
        .mint_many(n, exp, shared)?
        .into_iter()
        .map(Some)
        .collect())
}
