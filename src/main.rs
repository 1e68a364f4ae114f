//! The `wsguard` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wsguard::config::Config;
use wsguard::proxy::Proxy;

/// Authenticating WebSocket reverse proxy.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (runs the proxy when no subcommand is given).
    #[arg(long, env = "WSGUARD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate a configuration file and exit.
    Check,
    /// Mint an HS256 token for development and tests.
    Token {
        /// Environment variable holding the HMAC secret.
        #[arg(long)]
        secret_env: String,
        /// The `sub` claim.
        #[arg(long)]
        sub: String,
        /// Lifetime, for example `90s` or `15m`.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Extra claim `key=value` (value parsed as JSON when it is JSON); repeatable.
        #[arg(long = "claim", value_parser = wsguard::token::parse_claim)]
        claims: Vec<(String, serde_json::Value)>,
    },
    /// Start a built-in echo upstream and the proxy in front of it, and print a ready token.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

/// mimalloc instead of the system allocator: a connection's handshake makes
/// many small short-lived allocations (HTTP heads, headers, frames), and
/// glibc's malloc took about 12 % of the proxy's CPU per handshake
/// (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            let path = cli
                .config
                .context("check needs --config FILE (or WSGUARD_CONFIG)")?;
            let config = Config::load(&path)?;
            Proxy::new(&config)?;
            println!("{}: ok", path.display());
            Ok(())
        }
        Command::Token {
            secret_env,
            sub,
            ttl,
            claims,
        } => {
            let secret = std::env::var(&secret_env)
                .with_context(|| format!("environment variable {secret_env} is not set"))?;
            let extra = claims.into_iter().collect();
            println!(
                "{}",
                wsguard::token::mint_hs256(secret.as_bytes(), &sub, ttl, &extra)?
            );
            Ok(())
        }
        Command::Demo { listen } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(wsguard::demo::run(listen, ctrl_c())),
        Command::Run => {
            let path = cli
                .config
                .context("give --config FILE (or WSGUARD_CONFIG), or try `wsguard demo`")?;
            let config = Config::load(&path)?;
            let proxy = Proxy::new(&config)?;
            let bind = config.listener.bind;
            let workers = config
                .listener
                .worker_threads
                .unwrap_or_else(wsguard::workers::default_count);
            let listeners = wsguard::workers::bind(bind, workers)
                .with_context(|| format!("listener.bind: cannot bind {bind}"))?;
            let addr = listeners
                .first()
                .context("no listening socket was bound")?
                .local_addr()?;
            tracing::info!(addr = %addr, workers, "wsguard listening");
            // ctrl-c is awaited on this thread and broadcast to the workers.
            // Owned by the process: a reload of the configuration keeps it.
            let registry = std::sync::Arc::new(wsguard::registry::Registry::new(workers));
            wsguard::workers::serve(
                listeners,
                proxy,
                registry,
                config.listener.header_read_timeout,
                workers,
                ctrl_c(),
            )?;
            Ok(())
        }
    }
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
