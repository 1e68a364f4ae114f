//! Hostile HTTP on real sockets: oversized heads and too many headers (431),
//! a slowloris upgrade (a byte per second, cut by the header timeout), an
//! upgrade with a body, pipelined bytes after an upgrade request, and an
//! HTTP/1.0 upgrade: each gets its status or a clean close, and nothing is
//! left running (the limits' counts return to zero).

mod support;

use std::time::Duration;

use support::raw::{read_head, upgrade_request, RawPeer, CLOSE};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` and reads the answer's head.
async fn send(proxy: &TestProxy, bytes: &[u8]) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let head = read_head(&mut tcp).await;
    (tcp, head)
}

/// Waits until no WebSocket connection is counted any more.
async fn nothing_left(proxy: &TestProxy) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while proxy.process.limits.connections() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a connection is left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_oversized_head_is_431() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("max_header_bytes = 4096")
        .start()
        .await;
    let big = format!("X-Big: {}\r\n", "a".repeat(5000));
    let (_tcp, head) = send(&proxy, upgrade_request(proxy.addr, "/", &big).as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    // Under the limit, the same request upgrades.
    let small = format!("X-Big: {}\r\n", "a".repeat(3000));
    let (_tcp, head) = send(&proxy, upgrade_request(proxy.addr, "/", &small).as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

#[tokio::test]
async fn too_many_headers_is_431() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("max_headers = 20")
        .start()
        .await;
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (_tcp, head) = send(&proxy, upgrade_request(proxy.addr, "/", &many).as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let few: String = (0..10).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (_tcp, head) = send(&proxy, upgrade_request(proxy.addr, "/", &few).as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // hyper's own limit (100) without the key.
    let proxy2 = support::proxy(upstream.addr).start().await;
    let lots: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (_tcp, head) = send(&proxy2, upgrade_request(proxy2.addr, "/", &lots).as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
}

#[tokio::test]
async fn a_slowloris_upgrade_is_cut_by_the_header_timeout() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener("header_read_timeout = \"1500ms\"")
        .start()
        .await;
    let request = upgrade_request(proxy.addr, "/", "");
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let started = std::time::Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 512];
    // A byte per second; the proxy ends the connection at the timeout.
    let ended = loop {
        if tcp
            .write_all(&request.as_bytes()[sent..=sent])
            .await
            .is_err()
        {
            break true;
        }
        sent += 1;
        match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => break true,
            Err(_) => {}
        }
        assert!(started.elapsed() < WAIT, "still open after {sent} bytes");
    };
    assert!(ended);
    assert!(sent < request.len(), "the whole head went out");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    nothing_left(&proxy).await;
}

#[tokio::test]
async fn an_upgrade_with_a_body_is_400() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let with_length = upgrade_request(proxy.addr, "/", "Content-Length: 5\r\n") + "hello";
    let (_tcp, head) = send(&proxy, with_length.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let chunked = upgrade_request(proxy.addr, "/", "Transfer-Encoding: chunked\r\n")
        + "5\r\nhello\r\n0\r\n\r\n";
    // A chunked one is hyper's to read (as tests/headers.rs has it): an
    // answer, and nothing left once the client is gone.
    let (tcp, head) = send(&proxy, chunked.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    drop(tcp);
    nothing_left(&proxy).await;
    // Content-Length: 0 is no body.
    let empty = upgrade_request(proxy.addr, "/", "Content-Length: 0\r\n");
    let (tcp, head) = send(&proxy, empty.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    drop(tcp);
    nothing_left(&proxy).await;
}

#[tokio::test]
async fn pipelined_http_after_an_upgrade_is_a_protocol_error() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let request = upgrade_request(proxy.addr, "/", "") + "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
    let (tcp, head) = send(&proxy, request.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut peer = RawPeer::from_tcp(tcp);
    let frame = peer.frame().await;
    assert_eq!(frame.opcode, CLOSE);
    assert_eq!(frame.close_code(), Some(1002), "{}", frame.text());
    nothing_left(&proxy).await;
}

#[tokio::test]
async fn an_http_1_0_upgrade_is_400() {
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let request = upgrade_request(proxy.addr, "/", "").replacen("HTTP/1.1", "HTTP/1.0", 1);
    let (_tcp, head) = send(&proxy, request.as_bytes()).await;
    assert!(
        head.starts_with("HTTP/1.0 400") || head.starts_with("HTTP/1.1 400"),
        "{head}"
    );
    assert!(head.contains("application/json"), "{head}");
    nothing_left(&proxy).await;
}
