//! The smallest client of wsguard's default dialect, as code to read:
//! `cargo run --example client -- ws://127.0.0.1:8080/chat <token>`.
//! It sends the auth frame, prints every frame it receives, and sends each
//! line typed on standard input as a text frame; it does not refresh its
//! token. To use wsguard from a terminal, `wsguard connect` does all this
//! and answers `auth_required` with a REAUTH (see the README).

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(token)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: client <ws-url> <token>");
    };
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let (mut tx, mut rx) = ws.split();
    let auth = serde_json::json!({"type": "auth", "id": "1", "payload": {"token": token}});
    tx.send(Message::text(auth.to_string())).await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(t))) => println!("< {t}"),
                Some(Ok(Message::Binary(b))) => println!("< ({} bytes of binary)", b.len()),
                Some(Ok(Message::Close(c))) => { println!("< close {c:?}"); break; }
                Some(Ok(_)) => {}
                Some(Err(e)) => { println!("! {e}"); break; }
                None => break,
            },
            line = lines.next_line(), if stdin_open => match line? {
                Some(line) => tx.send(Message::text(line)).await?,
                None => stdin_open = false,
            },
        }
    }
    Ok(())
}
