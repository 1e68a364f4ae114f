//! 10,000 WebSocket connections from one address over as many source
//! ports, against the real binary (its own process, so that its 10,000
//! sockets and this test's do not share one open-files limit): the
//! per-address cap counts them all as one address, exactly at its value,
//! and gives them back when they close. Needs `ulimit -n` above 10,100 in
//! this process and in the binary (20,000 on CI).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::admin::run;
use support::raw::{read_head, upgrade_request};
use support::{BINARY_PROVIDER, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const MANY: usize = 10_000;

/// An upgrade from `from`; the socket and the status.
async fn upgrade_from(proxy: SocketAddr, from: IpAddr) -> (TcpStream, u16) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    let mut tcp = tokio::time::timeout(WAIT, socket.connect(proxy))
        .await
        .expect("connect in time")
        .expect("connect");
    let request = upgrade_request(proxy, "/", "");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut tcp).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    (tcp, status)
}

fn config(upstream: SocketAddr) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 2
[upstream]
url = "ws://{upstream}"
{BINARY_PROVIDER}[session]
auth_timeout = "5m"
[admin]
bind = "127.0.0.1:0"
[limits]
max_connections = 20000
max_unauthenticated = 20000
per_address_rate = 0
per_address_connections = {MANY}
"#
    )
}

#[tokio::test]
async fn ten_thousand_connections_from_one_address() {
    let upstream = support::Upstream::unused_addr().await;
    let proxy = run(&config(upstream), &[]).await;
    let addr = proxy.proxy;
    let local: IpAddr = "127.0.0.1".parse().expect("ip");
    let mut open = Vec::with_capacity(MANY);
    let started = std::time::Instant::now();
    for _ in 0..MANY / 200 {
        let batch: Vec<_> = (0..200)
            .map(|_| tokio::spawn(upgrade_from(addr, local)))
            .collect();
        for task in batch {
            let (tcp, status) = task.await.expect("task");
            assert_eq!(status, 101, "after {} connections", open.len());
            open.push(tcp);
        }
    }
    println!("{MANY} upgrades in {:?}", started.elapsed());
    // One more from the same address is over the cap; another address is not.
    let (_over, status) = upgrade_from(addr, local).await;
    assert_eq!(status, 429);
    let (_other, status) = upgrade_from(addr, "127.0.0.2".parse().expect("ip")).await;
    assert_eq!(status, 101);
    // Closed, they are given back.
    open.clear();
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let (_tcp, status) = upgrade_from(addr, local).await;
        if status == 101 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
