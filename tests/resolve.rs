//! Upstream name resolution: `upstream.url` with a host name resolved at
//! start and again every `upstream.resolve_interval`; connects follow the
//! last good answer, rotate, and skip an address that refuses. The names
//! resolve through a test-only hook (`Addresses::set_resolver`, which no
//! configuration key reaches): the answers are the test's, not the system
//! resolver's.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::sync::oneshot;

/// What the hook answers: addresses, or a failed lookup (`None`).
type Answer = Arc<Mutex<Option<Vec<SocketAddr>>>>;

/// A proxy for `ws://upstream.test:9`, resolved through the hook.
struct Resolving {
    addr: SocketAddr,
    answer: Answer,
    asked: Arc<Mutex<Vec<String>>>,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(first: Vec<SocketAddr>, interval: &str) -> Resolving {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let text = proxy(first[0])
        .upstream_url("ws://upstream.test:9")
        .upstream(&format!("resolve_interval = \"{interval}\""))
        .toml(&secret.display().to_string());
    let config = wsguard::config::Config::parse(&text).expect("config");
    let shared = wsguard::proxy::Proxy::new(&config).expect("proxy");
    let answer: Answer = Arc::new(Mutex::new(Some(first)));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let addresses = shared.target.addresses().clone();
    let (a, q) = (answer.clone(), asked.clone());
    addresses.set_resolver(Arc::new(move |host: &str| {
        q.lock().expect("asked").push(host.to_owned());
        a.lock()
            .expect("answer")
            .clone()
            .ok_or_else(|| std::io::Error::other("no such host"))
    }));
    addresses.resolve().await.expect("first resolution");
    let interval = config.upstream.resolve_interval;
    tokio::spawn(addresses.clone().refresh_every(interval));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let process = Arc::new(wsguard::process::Process::new(1));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(wsguard::listener::run(
        listener,
        shared,
        process.local(0),
        Duration::from_secs(5),
        async move {
            let _ = stopped.await;
        },
    ));
    Resolving {
        addr,
        answer,
        asked,
        _stop: stop,
        _dir: dir,
    }
}

impl Resolving {
    fn answer(&self, answer: Option<Vec<SocketAddr>>) {
        *self.answer.lock().expect("answer") = answer;
    }
    fn as_test_proxy_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
    /// Waits until the hook was asked `n` times (a resolution happened).
    async fn asked_at_least(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.asked.lock().expect("asked").len() < n {
            assert!(tokio::time::Instant::now() < deadline, "not re-resolved");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An authenticated client of `proxy` (its upstream is open once `AUTHENTICATED` arrives).
async fn client(proxy: &Resolving) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(proxy.as_test_proxy_url())
        .await
        .expect("connect");
    futures_util::SinkExt::send(&mut ws, auth_frame(&hs256("alice", 600)))
        .await
        .expect("auth");
    let v = recv_json(&mut ws).await;
    assert_eq!(v["type"], "AUTHENTICATED", "{v}");
    ws
}

#[tokio::test]
async fn connections_follow_a_changed_answer() {
    let mut a = Upstream::start(true).await;
    let mut b = Upstream::start(true).await;
    let proxy = start(vec![a.addr], "50ms").await;
    let _one = client(&proxy).await;
    assert!(a.accept_within(WAIT).await.is_some());
    assert_eq!(proxy.asked.lock().expect("asked")[0], "upstream.test:9");
    proxy.answer(Some(vec![b.addr]));
    let seen = proxy.asked.lock().expect("asked").len();
    proxy.asked_at_least(seen + 2).await;
    let _two = client(&proxy).await;
    assert!(b.accept_within(WAIT).await.is_some());
    assert!(a.accept_within(Duration::from_millis(50)).await.is_none());
}

#[tokio::test]
async fn a_failed_lookup_keeps_the_last_good_addresses() {
    let mut a = Upstream::start(true).await;
    let proxy = start(vec![a.addr], "50ms").await;
    proxy.answer(None);
    proxy.asked_at_least(3).await;
    let _one = client(&proxy).await;
    assert!(a.accept_within(WAIT).await.is_some());
}

#[tokio::test]
async fn connections_rotate_and_skip_a_refusing_address() {
    let mut a = Upstream::start(true).await;
    let mut b = Upstream::start(true).await;
    let dead = Upstream::unused_addr().await;
    let proxy = start(vec![a.addr, dead, b.addr], "1h").await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(client(&proxy).await);
    }
    // Every connection reached an upstream that listens, both of them.
    let mut to_a = 0;
    while a.accept_within(Duration::from_millis(50)).await.is_some() {
        to_a += 1;
    }
    let mut to_b = 0;
    while b.accept_within(Duration::from_millis(50)).await.is_some() {
        to_b += 1;
    }
    assert_eq!(to_a + to_b, 6);
    assert!(to_a >= 2 && to_b >= 2, "{to_a} to a, {to_b} to b");
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_an_error_at_start() {
    let config = wsguard::config::Config::parse(
        "[upstream]\nurl = \"ws://upstream.test:9\"\n[auth]\n[[auth.providers]]\nname = \"t\"\nalgorithms = [\"HS256\"]\n[[auth.providers.keys]]\nkind = \"hmac\"\nsecret_env = \"WSGUARD_TEST_UNSET_SECRET\"\n",
    )
    .expect("config");
    let target = wsguard::upstream::Target::from_config(
        &config.upstream,
        &wsguard::tls::UpstreamTls::from_config(&config.upstream).expect("tls"),
    )
    .expect("target");
    target.addresses().set_resolver(Arc::new(|_: &str| {
        Err(std::io::Error::other("no such host"))
    }));
    let e = target.addresses().resolve().await.expect_err("must fail");
    assert!(e.to_string().contains("no such host"), "{e}");
    assert!(!target.addresses().is_resolved());
}
