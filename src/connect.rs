//! `wsguard connect`: a terminal client that speaks wsguard's protocol.
//!
//! It connects, sends the auth frame with a token from its source, prints
//! every frame it receives (and every frame it sends) with a timestamp,
//! sends each line of standard input as a text frame, answers
//! `auth_required` and `TOKEN_EXPIRED` with a `REAUTH` carrying a fresh
//! token from the same source, and at the end prints the close code and
//! reason. Tokens are never printed unless asked (`--show-token`).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// No token: connect and show what the proxy does with an unauthenticated client.
    None,
    /// One token given on the command line; it cannot be refreshed.
    Static(String),
    /// A shell command whose trimmed standard output is a token; run again for each refresh.
    Command(String),
    /// An `http://` URL answering the demo endpoint's JSON (`{"token": ...}`) or the token as plain text.
    Url(String),
}

/// What `wsguard connect` is told.
#[derive(Debug, Clone)]
pub struct Options {
    /// The proxy's `ws://` URL.
    pub url: String,
    /// Where tokens come from.
    pub source: TokenSource,
    /// Print tokens in the frames shown (they are replaced by `<token>` otherwise).
    pub show_token: bool,
    /// Type of the first frame (`dialect.auth`).
    pub auth_type: String,
    /// Type of the refresh frame (`dialect.reauth`).
    pub reauth_type: String,
    /// Types of the frames answered with a refresh (`dialect.auth_required`, `dialect.token_expired`).
    pub refresh_on: Vec<String>,
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The close code (1005 for a close frame without one, 1006 for no close frame).
    pub code: u16,
    /// The close reason.
    pub reason: String,
}

impl Ended {
    /// A normal close (1000).
    pub fn is_normal(&self) -> bool {
        self.code == 1000
    }
}

/// The longest token answer read from `--token-url`.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// Time allowed to fetch a token from its source.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The least time between two auth frames: the proxy's default
/// `session.reauth_min_interval`, so that a refresh is not `rate_limited`.
const MIN_REAUTH_GAP: Duration = Duration::from_secs(1);
/// Time allowed, after a close frame, for the closing handshake to finish.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Shown instead of a token.
const HIDDEN: &str = "<token>";

/// Connects and runs until the connection closes.
pub async fn run(options: Options) -> anyhow::Result<Ended> {
    let first = match options.source {
        TokenSource::None => None,
        _ => Some(fetch(&options.source).await?),
    };
    let (ws, _) = tokio_tungstenite::connect_async(options.url.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", options.url))?;
    note(&format!("connected to {}", options.url));
    let mut client = Client {
        ws,
        options,
        next_id: 1,
        last_auth: None,
    };
    match first {
        Some(token) => {
            let auth_type = client.options.auth_type.clone();
            client.send_auth(&auth_type, &token).await?;
        }
        None => note("no token source given: no auth frame sent"),
    }
    client.run().await
}

/// A connection and what it needs to answer the proxy.
struct Client {
    /// The socket.
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The command line.
    options: Options,
    /// The `id` of the next auth or REAUTH frame.
    next_id: u64,
    /// When the last auth or REAUTH frame was sent.
    last_auth: Option<tokio::time::Instant>,
}

impl Client {
    /// The event loop: frames from the proxy and lines from standard input.
    async fn run(&mut self) -> anyhow::Result<Ended> {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = true;
        loop {
            tokio::select! {
                frame = self.ws.next() => match frame {
                    Some(Ok(message)) => {
                        if let Some(ended) = self.on_frame(message).await? {
                            return Ok(ended);
                        }
                    }
                    Some(Err(e)) => {
                        note(&format!("connection failed: {e}"));
                        return Ok(ended(1006, ""));
                    }
                    None => return Ok(ended(1006, "")),
                },
                line = lines.next_line(), if stdin_open => match line {
                    Ok(Some(line)) => self.send(Message::text(line)).await?,
                    Ok(None) | Err(_) => {
                        stdin_open = false;
                        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        self.send(Message::Close(Some(close))).await?;
                    }
                },
            }
        }
    }

    /// Prints a frame; answers refresh notices; `Some` at the close.
    async fn on_frame(&mut self, message: Message) -> anyhow::Result<Option<Ended>> {
        match message {
            Message::Text(text) => {
                show('<', &text);
                if let Some(kind) = self.refresh_notice(&text) {
                    self.refresh(&kind).await?;
                }
            }
            Message::Binary(data) => show('<', &format!("(binary, {} bytes)", data.len())),
            Message::Close(frame) => {
                let end = match frame {
                    Some(f) => ended(u16::from(f.code), f.reason.as_str()),
                    None => ended(1005, ""),
                };
                show('<', &format!("close {} {:?}", end.code, end.reason));
                // Let the library answer the close and see the socket end.
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while self.ws.next().await.is_some() {}
                })
                .await;
                return Ok(Some(end));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
        Ok(None)
    }

    /// The frame's `type` when it is one that asks for a fresh token.
    fn refresh_notice(&self, text: &str) -> Option<String> {
        let value: Value = serde_json::from_str(text).ok()?;
        let kind = value.get("type")?.as_str()?;
        self.options
            .refresh_on
            .iter()
            .any(|t| t == kind)
            .then(|| kind.to_owned())
    }

    /// Answers a refresh notice with a REAUTH, if the source can give a fresh token.
    async fn refresh(&mut self, notice: &str) -> anyhow::Result<()> {
        match &self.options.source {
            TokenSource::Static(_) => {
                note(&format!(
                    "{notice}: a static --token cannot be refreshed; use --token-cmd or --token-url"
                ));
                Ok(())
            }
            TokenSource::None => Ok(()),
            source => match fetch(source).await {
                Ok(token) => {
                    if let Some(last) = self.last_auth {
                        tokio::time::sleep_until(last + MIN_REAUTH_GAP).await;
                    }
                    let reauth = self.options.reauth_type.clone();
                    self.send_auth(&reauth, &token).await
                }
                Err(e) => {
                    note(&format!("{notice}: cannot get a fresh token: {e:#}"));
                    Ok(())
                }
            },
        }
    }

    /// Sends an auth or REAUTH frame carrying `token`.
    async fn send_auth(&mut self, kind: &str, token: &str) -> anyhow::Result<()> {
        let id = self.next_id.to_string();
        self.next_id += 1;
        let frame = |token: &str| {
            serde_json::json!({"type": kind, "id": id, "payload": {"token": token}}).to_string()
        };
        let shown = if self.options.show_token {
            token
        } else {
            HIDDEN
        };
        show('>', &frame(shown));
        self.last_auth = Some(tokio::time::Instant::now());
        self.ws
            .send(Message::text(frame(token)))
            .await
            .map_err(|e| anyhow::anyhow!("cannot send the {kind} frame: {e}"))
    }

    /// Sends and prints a frame.
    async fn send(&mut self, message: Message) -> anyhow::Result<()> {
        match &message {
            Message::Text(text) => show('>', text),
            Message::Close(Some(f)) => show(
                '>',
                &format!("close {} {:?}", u16::from(f.code), f.reason.as_str()),
            ),
            _ => {}
        }
        self.ws
            .send(message)
            .await
            .map_err(|e| anyhow::anyhow!("cannot send: {e}"))
    }
}

fn ended(code: u16, reason: &str) -> Ended {
    Ended {
        code,
        reason: reason.to_owned(),
    }
}

/// One frame on standard output: timestamp, direction (`>` sent, `<` received), content.
fn show(direction: char, text: &str) {
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    println!("{now} {direction} {}", printable(text));
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), so that a frame
/// is one line and cannot drive the terminal.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A remark on standard error (never carrying a token).
fn note(text: &str) {
    eprintln!("wsguard connect: {text}");
}

/// A token from its source.
pub async fn fetch(source: &TokenSource) -> anyhow::Result<String> {
    let token = match source {
        TokenSource::None => anyhow::bail!("no token source"),
        TokenSource::Static(token) => token.clone(),
        TokenSource::Command(command) => tokio::time::timeout(FETCH_TIMEOUT, from_command(command))
            .await
            .map_err(|_| anyhow::anyhow!("--token-cmd took more than {FETCH_TIMEOUT:?}"))??,
        TokenSource::Url(url) => tokio::time::timeout(FETCH_TIMEOUT, from_url(url))
            .await
            .map_err(|_| anyhow::anyhow!("--token-url took more than {FETCH_TIMEOUT:?}"))??,
    };
    let token = token.trim();
    if token.is_empty() {
        anyhow::bail!("the token source gave an empty token");
    }
    Ok(token.to_owned())
}

/// Runs `command` with the shell; its trimmed standard output is the token.
async fn from_command(command: &str) -> anyhow::Result<String> {
    let (shell, flag) = if cfg!(windows) {
        ("cmd", "/C")
    } else {
        ("sh", "-c")
    };
    let out = tokio::process::Command::new(shell)
        .args([flag, command])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("--token-cmd: cannot run {shell}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!("--token-cmd failed ({})", out.status);
    }
    String::from_utf8(out.stdout).map_err(|_| anyhow::anyhow!("--token-cmd printed non-UTF-8"))
}

/// GETs `url`; the answer is JSON with a `token` string, or the token as plain text.
async fn from_url(url: &str) -> anyhow::Result<String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("--token-url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("--token-url: only http:// URLs are supported");
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let response = client
        .get(uri)
        .await
        .map_err(|e| anyhow::anyhow!("--token-url: {e}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_TOKEN_ANSWER)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("--token-url: reading the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        anyhow::bail!("--token-url answered {status}");
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| anyhow::anyhow!("--token-url answered non-UTF-8"))?;
    Ok(token_from_answer(&text))
}

/// The `token` field of a JSON answer, else the whole (plain text) answer.
fn token_from_answer(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("token")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("a\u{1b}[31mb\nc\u{7f}é"),
            "a\\u{1b}[31mb\\nc\\u{7f}é"
        );
    }

    #[test]
    fn answers_are_json_or_plain_text() {
        assert_eq!(token_from_answer(r#"{"token":"a.b.c","exp":1}"#), "a.b.c");
        assert_eq!(token_from_answer("a.b.c\n"), "a.b.c\n");
    }
}
