//! A real upstream WebSocket server that records what it receives and does
//! what the test tells it.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::WAIT;

/// What the test can make an upstream connection do.
pub enum Cmd {
    /// Send a frame to the proxy.
    Send(Message),
    /// Close with a close frame.
    Close(Option<CloseFrame>),
    /// Drop the socket without a close frame.
    Vanish,
    /// Stop reading (so pings go unanswered), keep the socket open.
    StopReading,
}

/// One connection the upstream accepted.
pub struct UpConn {
    /// Path and query it was asked for.
    pub path: String,
    /// Request headers it received.
    pub headers: HeaderMap,
    /// Frames it received (data and close).
    pub rx: mpsc::UnboundedReceiver<Message>,
    /// Commands to it.
    pub tx: mpsc::UnboundedSender<Cmd>,
}

impl UpConn {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The next frame the upstream received, within `WAIT` (a notice must
    /// match its schema in `docs/schemas/`).
    pub async fn recv(&mut self) -> Message {
        let m = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("upstream got no frame in time")
            .expect("upstream connection ended");
        check_notice(&m);
        m
    }

    /// The next frame within `wait`, or `None` (a notice is checked as in `recv`).
    pub async fn recv_within(&mut self, wait: std::time::Duration) -> Option<Message> {
        let m = tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()?;
        check_notice(&m);
        Some(m)
    }

    /// Sends a frame to the proxy.
    pub fn send(&self, m: Message) {
        let _ = self.tx.send(Cmd::Send(m));
    }
}

/// Checks a text frame the upstream received that is wsguard's notice against its schema.
fn check_notice(m: &Message) {
    if let Message::Text(t) = m {
        super::schema::check_upstream_bound(t);
    }
}

/// The upstream server.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<UpConn>,
}

impl Upstream {
    /// Starts a server; with `echo`, it sends every data frame back.
    pub async fn start(echo: bool) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let (conn_tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let conn_tx = conn_tx.clone();
                tokio::spawn(serve(tcp, echo, conn_tx));
            }
        });
        Upstream { addr, conns }
    }

    /// Starts an echo server on `addr` (an address that was free, for a
    /// test where the upstream comes back).
    pub async fn start_on(addr: SocketAddr) -> Upstream {
        let listener = TcpListener::bind(addr).await.expect("bind upstream again");
        let (conn_tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, true, conn_tx.clone()));
            }
        });
        Upstream { addr, conns }
    }

    /// An address where nothing listens.
    pub async fn unused_addr() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    }

    /// The next connection the proxy opened, within `WAIT`.
    pub async fn accept(&mut self) -> UpConn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("proxy did not connect upstream in time")
            .expect("upstream stopped")
    }

    /// A connection if one arrives within `wait`.
    pub async fn accept_within(&mut self, wait: std::time::Duration) -> Option<UpConn> {
        tokio::time::timeout(wait, self.conns.recv())
            .await
            .ok()
            .flatten()
    }
}

#[allow(clippy::result_large_err)] // tungstenite's callback signature
async fn serve(tcp: tokio::net::TcpStream, echo: bool, conn_tx: mpsc::UnboundedSender<UpConn>) {
    let mut seen = (String::new(), HeaderMap::new());
    let callback = |req: &Request, mut resp: Response| {
        seen = (
            req.uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            req.headers().clone(),
        );
        // Agree to the first subprotocol asked for, like a real server would.
        let first = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|p| http::HeaderValue::from_str(p.trim()).ok());
        if let Some(p) = first {
            resp.headers_mut().insert("sec-websocket-protocol", p);
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let (in_tx, rx) = mpsc::unbounded_channel();
    let (tx, mut cmds) = mpsc::unbounded_channel();
    let _ = conn_tx.send(UpConn {
        path: seen.0,
        headers: seen.1,
        rx,
        tx,
    });
    let mut reading = true;
    loop {
        tokio::select! {
            frame = ws.next(), if reading => match frame {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if echo && ws.send(m.clone()).await.is_err() {
                        break;
                    }
                    let _ = in_tx.send(m);
                }
                Some(Ok(m @ Message::Close(_))) => {
                    let _ = in_tx.send(m);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Send(m)) => { let _ = ws.send(m).await; }
                Some(Cmd::Close(f)) => { let _ = ws.close(f).await; }
                Some(Cmd::Vanish) | None => return,
                Some(Cmd::StopReading) => reading = false,
            },
        }
    }
    // Keep the socket until the test drops its handle.
    while let Some(cmd) = cmds.recv().await {
        if let Cmd::Vanish = cmd {
            return;
        }
    }
}

/// Sends `messages` from the client and checks that the upstream receives
/// them unchanged and in order, then the same from the upstream to the client.
pub async fn relayed_both_ways(ws: &mut super::Ws, up: &mut UpConn, messages: &[Message]) {
    for m in messages {
        ws.send(m.clone()).await.expect("client send");
    }
    for m in messages {
        assert_eq!(&up.recv().await, m);
    }
    for m in messages {
        up.send(m.clone());
    }
    for m in messages {
        assert_eq!(&super::recv(ws).await, m);
    }
}
