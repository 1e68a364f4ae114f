//! Helpers for bench/run.sh: free loopback ports and result tables.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use wsguard_bench::procstat::system_busy_ticks;

#[derive(Parser, Debug)]
#[command(about = "wsguard benchmark helpers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print N currently free 127.0.0.1 TCP ports, one per line.
    FreePorts {
        #[arg(default_value_t = 1)]
        n: usize,
    },
    /// A key rotation under load: N connections present a new kid at
    /// once; exactly one JWKS fetch and all authenticated, or it fails.
    RotationStorm(wsguard_bench::rotation::RotationArgs),
    /// Markdown tables (medians over rounds) from a file of JSON result lines.
    Table { file: std::path::PathBuf },
    /// Wait until the machine is quiet: busy CPU over a 1 s sample below
    /// --max-busy percent of one core, for at most --timeout. Prints the last
    /// sample; never fails (a busy machine is reported, not fatal).
    WaitQuiet {
        #[arg(long, default_value_t = 15.0)]
        max_busy: f64,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::RotationStorm(args) => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(wsguard_bench::rotation::run(args))?;
        }
        Cmd::FreePorts { n } => {
            // Hold all listeners until every port is chosen so they differ.
            let listeners = (0..n)
                .map(|_| TcpListener::bind("127.0.0.1:0"))
                .collect::<std::io::Result<Vec<_>>>()?;
            for l in &listeners {
                println!("{}", l.local_addr()?.port());
            }
        }
        Cmd::WaitQuiet { max_busy, timeout } => {
            let start = Instant::now();
            loop {
                let before = system_busy_ticks()?;
                std::thread::sleep(Duration::from_secs(1));
                let busy = system_busy_ticks()?.saturating_sub(before) as f64; // ticks/s = % of a core
                if busy <= max_busy || start.elapsed() >= timeout {
                    let state = if busy <= max_busy { "quiet" } else { "busy" };
                    println!(
                        "{state} {busy:.0}% after {:.0}s",
                        start.elapsed().as_secs_f64()
                    );
                    break;
                }
            }
        }
        Cmd::Table { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            print!("{}", wsguard_bench::table::markdown(&text));
        }
    }
    Ok(())
}
