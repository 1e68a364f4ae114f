//! `workers::serve`: independent single-threaded event loops on one
//! listening socket. Connections on every worker echo, connections are
//! spread over more than one worker thread (seen in the debug logs, which
//! carry the thread name), and the shutdown future stops every worker.

mod support;
use support::*;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use wsguard::workers::THREAD_NAME_PREFIX;

/// How long `serve` may take to return after the shutdown future completes.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// Log lines of this test binary (all threads), without colours.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("wsguard=debug"))
            .with_thread_names(true)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        logs
    })
}

/// Appends to the shared log buffer.
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `workers::serve` running on a plain thread.
struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    ended: mpsc::Receiver<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// The default test proxy's shared state (the secret file lives in the folder).
fn shared_proxy(upstream: SocketAddr) -> (Arc<wsguard::proxy::Proxy>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("write secret");
    let text = proxy(upstream).toml(&secret_file.display().to_string());
    let config = wsguard::config::Config::parse(&text).expect("config");
    let shared = wsguard::proxy::Proxy::new(&config).expect("proxy");
    (shared, dir)
}

/// Starts `serve` with `workers` workers in front of `upstream`, each on its
/// own SO_REUSEPORT socket as `wsguard run` binds them.
fn serve(upstream: SocketAddr, workers: usize) -> Served {
    let listeners = wsguard::workers::bind(([127, 0, 0, 1], 0).into(), workers).expect("bind");
    let addr = listeners[0].local_addr().expect("addr");
    assert!(listeners.iter().all(|l| l.local_addr().ok() == Some(addr)));
    serve_on(upstream, listeners, workers)
}

/// Starts `serve` on the given listening sockets.
fn serve_on(upstream: SocketAddr, listeners: Vec<std::net::TcpListener>, workers: usize) -> Served {
    let (shared, dir) = shared_proxy(upstream);
    let addr = listeners[0].local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let result = wsguard::workers::serve(
            listeners,
            shared,
            Default::default(),
            Duration::from_secs(5),
            workers,
            async {
                let _ = stopped.await;
            },
        );
        let _ = done.send(result);
    });
    Served {
        addr,
        stop: Some(stop),
        ended,
        _dir: dir,
    }
}

impl Served {
    /// Completes the shutdown future and waits for `serve` to return.
    fn shut_down(&mut self) -> std::io::Result<()> {
        let _ = self.stop.take().expect("stopped once").send(());
        self.ended
            .recv_timeout(STOP_WAIT)
            .expect("serve did not return after shutdown")
    }
}

/// Connects, authenticates and checks one echo.
async fn echo_once(addr: SocketAddr, n: usize) -> Ws {
    let url = format!("ws://{addr}/chat");
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws.send(auth_frame(&hs256(&format!("user{n}"), 300)))
        .await
        .expect("send auth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let text = format!("hello {n}");
    ws.send(Message::text(text.clone())).await.expect("send");
    assert_eq!(recv(&mut ws).await, Message::text(text));
    ws
}

/// How many connections each worker thread has opened so far.
fn opened_per_worker(workers: usize) -> Vec<usize> {
    let logs = String::from_utf8_lossy(&logs().lock().expect("logs")).into_owned();
    (0..workers)
        .map(|i| {
            let name = format!(" {THREAD_NAME_PREFIX}{i} ");
            logs.lines()
                .filter(|l| l.contains(&name) && l.contains("connection opened"))
                .count()
        })
        .collect()
}

#[tokio::test]
async fn two_workers_serve_concurrent_connections_and_stop_together() {
    logs();
    let upstream = Upstream::start(true).await;
    let mut served = serve(upstream.addr, 2);

    // 40 at once; more rounds (kept open) only if one worker took them all.
    let mut open = Vec::new();
    for round in 0..5 {
        let batch = (0..40).map(|i| echo_once(served.addr, round * 40 + i));
        open.extend(futures_util::future::join_all(batch).await);
        if opened_per_worker(2).iter().all(|&n| n > 0) {
            break;
        }
    }
    let per_worker = opened_per_worker(2);
    assert_eq!(
        per_worker.iter().sum::<usize>(),
        open.len(),
        "{per_worker:?}"
    );
    eprintln!("connections per worker: {per_worker:?}");
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "every connection went to one worker: {per_worker:?}"
    );

    // Every connection still works (each lives on its own worker).
    for (n, ws) in open.iter_mut().enumerate() {
        let text = format!("again {n}");
        ws.send(Message::text(text.clone())).await.expect("send");
        assert_eq!(recv(ws).await, Message::text(text));
    }

    let start = Instant::now();
    served.shut_down().expect("serve");
    assert!(start.elapsed() < STOP_WAIT);
    // The workers' runtimes are gone: their connections end and nobody accepts.
    for ws in open.iter_mut().take(5) {
        assert_eq!(expect_close(ws).await.0, 1006);
    }
    assert!(tokio::net::TcpStream::connect(served.addr).await.is_err());
}

/// An upgrade request without a key: the proxy answers 400 (and opens no
/// session, so the other test's log count is not disturbed).
async fn bad_upgrade(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("no answer in time")
        .expect("read");
    response
}

#[tokio::test]
async fn idle_workers_stop_on_shutdown() {
    logs();
    let upstream = Upstream::start(true).await;
    let mut served = serve(upstream.addr, 3);
    for _ in 0..6 {
        let response = bad_upgrade(served.addr).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    }
    served.shut_down().expect("serve");
}

#[tokio::test]
async fn workers_beyond_the_sockets_given_share_the_first() {
    let upstream = Upstream::start(true).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut served = serve_on(upstream.addr, vec![listener], 2);
    for _ in 0..4 {
        let response = bad_upgrade(served.addr).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    }
    served.shut_down().expect("serve");
}

#[test]
fn zero_workers_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (shared, _dir) = shared_proxy(listener.local_addr().expect("addr"));
    let e = wsguard::workers::serve(
        vec![listener],
        shared,
        Default::default(),
        Duration::from_secs(5),
        0,
        async {},
    )
    .expect_err("0 workers");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

/// SO_REUSEPORT must not let a second instance silently share a fixed port
/// (and take part of its connections): binding a port in use fails, and
/// binding it again works once the first instance is gone.
#[test]
fn a_second_instance_cannot_share_the_port() {
    let first = wsguard::workers::bind(([127, 0, 0, 1], 0).into(), 2).expect("bind");
    let addr = first[0].local_addr().expect("addr");
    let second = wsguard::workers::bind(addr, 2);
    assert_eq!(
        second.map(|l| l.len()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::AddrInUse)
    );
    drop(first);
    let again = wsguard::workers::bind(addr, 2).expect("bind again");
    assert_eq!(again.len(), 2);
}
