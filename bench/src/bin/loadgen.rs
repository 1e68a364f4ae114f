//! Load generator for wsguard benchmarks. Modes: echo, handshake, idle, reauth.
//! Targets must be on the loopback interface; every run is bounded by
//! --timeout and exits by itself.

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::json;
use wsguard_bench::client::CommonArgs;
use wsguard_bench::modes::{echo, handshake, idle, reauth};
use wsguard_bench::report::Outcome;
use wsguard_bench::tokens::{Minter, TokenArgs};

#[derive(Parser, Debug)]
#[command(about = "WebSocket load generator for wsguard benchmarks")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    token: TokenArgs,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Closed-loop echo throughput and latency.
    Echo(echo::EchoArgs),
    /// Connection + auth handshakes per second.
    Handshake(handshake::HandshakeArgs),
    /// Memory per idle connection and idle CPU.
    Idle(idle::IdleArgs),
    /// Burst of simultaneous in-place re-authentications.
    Reauth(reauth::ReauthArgs),
}

impl Mode {
    fn case(&self, alg: &str) -> String {
        match self {
            Mode::Echo(a) => a.case(),
            Mode::Handshake(a) => a.case(alg),
            Mode::Idle(a) => a.case(),
            Mode::Reauth(a) => a.case(alg),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Mode::Echo(_) => "echo",
            Mode::Handshake(_) => "handshake",
            Mode::Idle(_) => "idle",
            Mode::Reauth(_) => "reauth",
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match run_main(&cli) {
        Ok(code) => code,
        Err(e) => {
            failure_line(&cli, &format!("{e:#}"));
            1
        }
    };
    // Exit right away: leftover tasks or sockets must not keep us alive.
    std::process::exit(code);
}

fn run_main(cli: &Cli) -> Result<i32> {
    let rt = if cli.common.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.common.threads)
            .enable_all()
            .build()?
    };
    let minter = if cli.common.no_auth {
        None
    } else {
        Some(Minter::new(&cli.token)?)
    };
    let fut = async {
        let c = &cli.common;
        let m = minter.as_ref();
        match &cli.mode {
            Mode::Echo(a) => echo::run(c, m, a).await,
            Mode::Handshake(a) => handshake::run(c, m, a).await,
            Mode::Idle(a) => idle::run(c, m, a).await,
            Mode::Reauth(a) => reauth::run(c, m, a).await,
        }
    };
    let outcome = rt.block_on(async { tokio::time::timeout(cli.common.timeout, fut).await });
    match outcome {
        Ok(res) => {
            let out = res?;
            out.emit(cli.common.json_out.as_deref())?;
            Ok(if out.errors > 0 { 2 } else { 0 })
        }
        Err(_) => {
            let msg = format!("overall timeout of {:?} reached", cli.common.timeout);
            failure_line(cli, &msg);
            Ok(3)
        }
    }
}

/// A JSON line for a run that produced no result, so tables show the gap.
fn failure_line(cli: &Cli, msg: &str) {
    let alg = if cli.common.no_auth {
        "noauth"
    } else {
        cli.token.alg.name()
    };
    let case = cli.mode.case(alg);
    let mut j = Outcome::base(cli.mode.name(), &cli.common.target, &case, &cli.common.tag);
    j.insert("failure".into(), json!(msg));
    let human = format!(
        "{} {} {case} FAILED: {msg}",
        cli.mode.name(),
        cli.common.target
    );
    let out = Outcome {
        human,
        json: j,
        errors: 1,
        samples: Vec::new(),
    };
    if let Err(e) = out.emit(cli.common.json_out.as_deref()) {
        eprintln!("loadgen: writing result: {e:#}");
    }
}
