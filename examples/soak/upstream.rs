//! The soak's upstream: a WebSocket server that answers every numbered
//! client frame with a numbered frame of its own, checks the order of what
//! it receives, records how each connection ended, and can be restarted
//! (every connection dropped without a close, the port closed for a while).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::frames::{numbered, parse_numbered, FIN};

/// What the upstream saw of one connection.
#[derive(Debug, Default, Clone)]
pub struct UpRecord {
    /// Numbered frames received in order.
    pub received: u64,
    /// Frames received out of order or twice.
    pub disorder: u64,
    /// Numbered frames sent.
    pub sent: u64,
    /// The client's count in its `fin` frame.
    pub fin: Option<u64>,
    /// How it ended: the close code and reason, or 1006 without a close frame.
    pub end: Option<(u16, String)>,
}

/// The accept loop and the connections' tasks, dropped together on a restart.
type Serving = (tokio::task::JoinHandle<()>, Arc<Mutex<JoinSet<()>>>);

/// The upstream and everything it recorded.
pub struct Upstream {
    /// Where it listens (the same address after a restart).
    pub addr: SocketAddr,
    /// Per connection id (the client's path `/s/<id>`).
    pub records: Mutex<HashMap<u64, Arc<Mutex<UpRecord>>>>,
    /// Connections dropped by a restart.
    pub restarted: Mutex<HashSet<u64>>,
    /// Restarts so far, and whether it is down now (odd).
    pub generation: std::sync::atomic::AtomicU64,
    tasks: Mutex<Option<Serving>>,
    live: Mutex<HashSet<u64>>,
}

impl Upstream {
    /// Binds 127.0.0.1:0 and serves.
    pub async fn start() -> anyhow::Result<Arc<Upstream>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let up = Arc::new(Upstream {
            addr: listener.local_addr()?,
            records: Mutex::default(),
            restarted: Mutex::default(),
            generation: 0.into(),
            tasks: Mutex::new(None),
            live: Mutex::default(),
        });
        up.serve(listener);
        Ok(up)
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let (up, set) = (self.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let up = up.clone();
                if let Ok(mut set) = set.lock() {
                    set.spawn(async move { up.connection(tcp).await });
                }
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            *tasks = Some((accept, conns));
        }
    }

    /// Drops every connection without a close and the listener, waits
    /// `down`, then listens on the same address again.
    pub async fn restart(self: &Arc<Self>, down: std::time::Duration) -> anyhow::Result<usize> {
        use std::sync::atomic::Ordering::SeqCst;
        self.generation.fetch_add(1, SeqCst);
        let dropped: Vec<u64> = lock(&self.live).drain().collect();
        lock(&self.restarted).extend(dropped.iter().copied());
        if let Some((accept, conns)) = lock(&self.tasks).take() {
            accept.abort();
            lock(&conns).abort_all();
        }
        tokio::time::sleep(down).await;
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        self.generation.fetch_add(1, SeqCst);
        Ok(dropped.len())
    }

    /// The record of connection `id`, if it reached the upstream.
    pub fn record(&self, id: u64) -> Option<UpRecord> {
        let rec = lock(&self.records).get(&id).cloned()?;
        let copy = lock(&rec).clone();
        Some(copy)
    }

    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    async fn connection(self: Arc<Self>, tcp: tokio::net::TcpStream) {
        let mut id = None;
        let callback = |req: &Request, resp: Response| {
            id = req
                .uri()
                .path()
                .strip_prefix("/s/")
                .and_then(|s| s.parse::<u64>().ok());
            Ok(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
            return;
        };
        let Some(id) = id else { return };
        let rec = Arc::new(Mutex::new(UpRecord::default()));
        lock(&self.records).insert(id, rec.clone());
        lock(&self.live).insert(id);
        let end = loop {
            match ws.next().await {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let reply = answer(&rec, &m);
                    if ws.send(reply).await.is_err() {
                        break (1006, "send failed".to_owned());
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    })
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break (1006, String::new()),
            }
        };
        lock(&self.live).remove(&id);
        lock(&rec).end = Some(end);
    }
}

/// The upstream's answer to a client frame: the next numbered frame of the
/// same kind, or to `fin`, its own count.
fn answer(rec: &Mutex<UpRecord>, m: &Message) -> Message {
    let mut rec = lock(rec);
    if let Message::Text(t) = m {
        if let Some(n) = t.strip_prefix(FIN).and_then(|n| n.parse().ok()) {
            rec.fin = Some(n);
            return Message::text(format!("{FIN}{}", rec.sent));
        }
    }
    match parse_numbered(m, 'c') {
        Some(seq) if seq == rec.received => rec.received += 1,
        _ => rec.disorder += 1,
    }
    let seq = rec.sent;
    rec.sent += 1;
    numbered(
        'u',
        seq,
        matches!(m, Message::Binary(_)),
        (seq % 7) as usize * 100,
    )
}

/// Locks a mutex, taking it over if a panicking holder poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
