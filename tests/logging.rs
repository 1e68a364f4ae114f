//! What reaches the log: values from a client or a token are escaped, so a
//! validly signed token cannot forge log lines or drive an operator's
//! terminal (docs/protocol.md, "Logging").

mod support;

use std::process::Stdio;

use serde_json::json;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_wsguard");

/// `sub` with a forged log line, a terminal escape, NUL and DEL.
const EVIL_SUB: &str =
    "alice\r\n2026-12-01T00:00:00.000000Z  INFO wsguard: FORGED LOG LINE\u{1b}[2J\u{0}\u{7f}";

#[tokio::test]
async fn claims_and_paths_are_logged_escaped() {
    let mut upstream = Upstream::start(false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), SECRET).expect("secret");
    let config = dir.path().join("wsguard.toml");
    std::fs::write(
        &config,
        format!(
            r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[upstream]
url = "ws://{}"
{BINARY_PROVIDER}[admin]
bind = "127.0.0.1:0"
"#,
            upstream.addr
        ),
    )
    .expect("config");
    let mut child = tokio::process::Command::new(BIN)
        .env_remove("WSGUARD_CONFIG")
        .env("RUST_LOG", "wsguard=debug")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn wsguard");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    let addr = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read") {
            log.push(line.clone());
            let listening = line.contains("wsguard listening");
            if let Some(at) = line.split("addr=").nth(1).filter(|_| listening) {
                return at.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .expect("listening line in time")
    .expect("a listening line");

    let token = hs256_claims(&json!({"sub": EVIL_SUB, "exp": 4_000_000_000u64}));
    let url = format!("ws://{addr}/chat%0d%0aFORGED/x?secret-query=1");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    use futures_util::SinkExt;
    ws.send(auth_frame(&token)).await.expect("auth");
    let authed = recv_json(&mut ws).await;
    assert_eq!(authed["payload"]["sub"], EVIL_SUB, "{authed}");
    let _up = upstream.accept().await;
    drop(ws);

    // Read until the connection's lines are in (or time runs out).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains("connection finished");
            log.push(line);
            if done {
                break;
            }
        }
    })
    .await;
    child.kill().await.expect("kill");

    let authenticated = log
        .iter()
        .find(|l| l.contains("authenticated"))
        .unwrap_or_else(|| panic!("no authenticated line in {log:#?}"));
    assert!(
        authenticated.contains(r#"sub="alice\r\n2026-12-01T00:00:00.000000Z  INFO wsguard: FORGED LOG LINE\u{1b}[2J\0\u{7f}""#),
        "{authenticated}"
    );
    let opened = log
        .iter()
        .find(|l| l.contains("connection opened"))
        .unwrap_or_else(|| panic!("no connection line in {log:#?}"));
    assert!(opened.contains("peer=127.0.0.1:"), "{opened}");
    assert!(opened.contains(r#"path="/chat%0d%0aFORGED/x""#), "{opened}");
    for line in &log {
        assert!(
            !line.contains("secret-query"),
            "query string logged: {line}"
        );
        assert!(
            !line.starts_with("2026-12-01T00:00:00"),
            "forged line: {line}"
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "control character in {line:?}"
        );
    }
}
