//! `wsguard demo`: a built-in echo upstream, the proxy in front of it with a
//! fresh development key, and a ready token, all in one process.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;
use crate::proxy::Proxy;

/// The demo's configuration template.
const TEMPLATE: &str = include_str!("../config/demo.toml");
/// Lifetime of the printed token.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(120);

/// Starts the echo upstream and the proxy, prints how to connect, and serves until `shutdown`.
pub async fn run(
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(echo_upstream(upstream));

    let secret = random_secret();
    let secret_file = std::env::temp_dir().join(format!(
        "wsguard-demo-{}-{}.secret",
        std::process::id(),
        &random_secret()[..16]
    ));
    write_private(&secret_file, &secret)?;
    let text = TEMPLATE
        .replace("@LISTEN@", &listen.to_string())
        .replace("@UPSTREAM@", &upstream_addr.to_string())
        .replace(
            "@SECRET_FILE@",
            &secret_file.display().to_string().replace('\\', "\\\\"),
        );
    let config = Config::parse(&text)?;
    let proxy = Proxy::new(&config);
    let _ = std::fs::remove_file(&secret_file);
    let proxy = proxy?;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let token = crate::token::mint_hs256(
        secret.as_bytes(),
        "alice",
        DEMO_TOKEN_TTL,
        &Default::default(),
    )?;
    // A closed standard output (a reader that went away) must not stop the demo.
    let banner = format!(
        "wsguard demo\n\
         upstream: ws://{upstream_addr} (built-in echo server)\n\
         proxy: ws://{addr}/chat\n\
         token: {token}\n\
         (the token is for sub \"alice\" and expires in {}s; auth_required comes 60s before)\n\
         try: cargo run --example client -- ws://{addr}/chat {token}\n\
         or:  websocat ws://{addr}/chat  then send {{\"type\":\"auth\",\"payload\":{{\"token\":\"<token>\"}}}}\n",
        DEMO_TOKEN_TTL.as_secs()
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    crate::listener::run(
        listener,
        proxy,
        std::sync::Arc::new(crate::registry::Shard::default()),
        config.listener.header_read_timeout,
        shutdown,
    )
    .await;
    Ok(())
}

fn random_secret() -> String {
    use std::hash::BuildHasher;
    (0..4)
        .map(|i| {
            format!(
                "{:016x}",
                std::collections::hash_map::RandomState::new().hash_one(i)
            )
        })
        .collect()
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[allow(clippy::result_large_err)] // tungstenite's callback signature
/// The built-in upstream: greets with the subject it was told, then echoes every message.
async fn echo_upstream(listener: TcpListener) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut sub = String::new();
            let callback = |request: &Request, response: Response| {
                if let Some(v) = request
                    .headers()
                    .get("x-auth-subject")
                    .and_then(|v| v.to_str().ok())
                {
                    sub = v.to_owned();
                }
                Ok(response)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                return;
            };
            let welcome =
                serde_json::json!({"type": "welcome", "payload": {"sub": sub}}).to_string();
            if ws.send(Message::text(welcome)).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = ws.next().await {
                let reply = match message {
                    Message::Text(_) | Message::Binary(_) => message,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if ws.send(reply).await.is_err() {
                    break;
                }
            }
        });
    }
}
