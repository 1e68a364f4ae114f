//! The demo's admin listener (`wsguard demo --admin ADDR`): the same
//! `/metrics`, `/healthz`, `/readyz` and `/connections` as `wsguard run`'s,
//! without a token (the demo is for one machine). It runs on the demo's own
//! runtime, which serves everything of the demo.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::process::Process;
use crate::proxy::Proxy;

/// Installs the metrics recorder, binds `bind` and serves the admin endpoints; the bound address.
pub async fn start(
    bind: SocketAddr,
    config: &Config,
    proxy: &Arc<Proxy>,
    process: Arc<Process>,
) -> anyhow::Result<SocketAddr> {
    let metrics = crate::metrics::install().context("cannot install the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("--admin: cannot bind {bind}"))?;
    let addr = listener.local_addr()?;
    let health = crate::admin::Health::new(config.admin.upstream_check_interval);
    tokio::spawn(
        health
            .clone()
            .probe_upstream(proxy.target.authority().to_owned()),
    );
    tokio::spawn(crate::admin::watch_keys(
        proxy.clone(),
        health.clone(),
        process.clone(),
    ));
    tokio::spawn(crate::admin::upkeep(metrics.clone()));
    let admin = crate::admin::Admin::new(metrics, health, process, None);
    tokio::spawn(crate::admin::serve(listener, Arc::new(admin)));
    Ok(addr)
}
