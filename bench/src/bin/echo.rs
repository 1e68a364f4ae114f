//! Echo WebSocket upstream for the benchmark: echoes text and binary frames.
//! Prints its bound address on stdout.

use anyhow::Result;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use std::io::Write;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Echo WebSocket upstream for wsguard benchmarks")]
struct Cli {
    /// Address to listen on (port 0 = pick a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Tokio worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(serve(cli))
}

async fn serve(cli: Cli) -> Result<()> {
    let listener = TcpListener::bind(&cli.listen).await?;
    let addr = listener.local_addr()?;
    println!("{addr}");
    std::io::stdout().flush()?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            if let Err(e) = handle(stream, config).await {
                eprintln!("connection: {e:#}");
            }
        });
    }
}

async fn handle(stream: TcpStream, config: WebSocketConfig) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => ws.send(m).await?,
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            // Peers that drop without a close handshake are normal here.
            Err(_) => break,
        }
    }
    Ok(())
}
