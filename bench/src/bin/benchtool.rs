//! Helpers for bench/run.sh: free loopback ports and result tables.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::TcpListener;

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
    /// Markdown tables (medians over rounds) from a file of JSON result lines.
    Table { file: std::path::PathBuf },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::FreePorts { n } => {
            // Hold all listeners until every port is chosen so they differ.
            let listeners = (0..n)
                .map(|_| TcpListener::bind("127.0.0.1:0"))
                .collect::<std::io::Result<Vec<_>>>()?;
            for l in &listeners {
                println!("{}", l.local_addr()?.port());
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
