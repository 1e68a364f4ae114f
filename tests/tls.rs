//! TLS on both legs, on real sockets with certificates made here (rcgen):
//! `wss://` clients, mTLS, `wss://` upstreams, certificate rotation, and
//! bad input on the TLS port.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::tls::*;
use support::*;

/// `[listener.tls]` lines for a certificate and key in `dir` (and a short
/// watch interval, so rotation tests wait little).
fn listener_tls(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "[listener.tls]\ncert_file = {:?}\nkey_file = {:?}\nwatch_interval = \"50ms\"\n{extra}",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// A proxy with TLS on its listener in front of `upstream`.
async fn tls_proxy(
    upstream: std::net::SocketAddr,
    dir: &Path,
    leaf: &Leaf,
    extra: &str,
) -> TestProxy {
    let (cert, key) = leaf.write(dir);
    proxy(upstream)
        .listener(&listener_tls(&cert, &key, extra))
        .start()
        .await
}

/// The leaf certificate a fresh handshake is given.
async fn served_cert(proxy: &TestProxy, ca: &Ca) -> Vec<u8> {
    let tls = tls_open(proxy.addr, ca.roots(), None)
        .await
        .expect("handshake");
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .expect("a certificate")
}

/// Waits until fresh handshakes get `wanted`.
async fn until_served(proxy: &TestProxy, ca: &Ca, wanted: &Leaf) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while served_cert(proxy, ca).await != wanted.cert.as_ref() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn wss_client_authenticates_and_relays_with_forwarded_proto_https() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut upstream = Upstream::start(true).await;
    let proxy = tls_proxy(upstream.addr, dir.path(), &ca.server(), "").await;
    let mut ws = wss_authed(proxy.addr, ca.roots(), &hs256("alice", 300)).await;
    let up = upstream.accept().await;
    assert_eq!(up.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(up.header("x-auth-subject").as_deref(), Some("alice"));
    wss_round_trip(&mut ws, "hello over tls").await;
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_fails() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start(true).await;
    let proxy = tls_proxy(upstream.addr, dir.path(), &ca.server(), "").await;
    let other = Ca::new("other CA");
    let err = wss_open(proxy.addr, "/", other.roots(), None)
        .await
        .err()
        .unwrap_or_default();
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn mtls_required_takes_only_certificates_of_its_ca() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let client_ca = clients.write(dir.path(), "clients.pem");
    let mut upstream = Upstream::start(true).await;
    let extra = format!(
        "client_ca_file = {:?}\nclient_auth = \"required\"",
        client_ca.display().to_string()
    );
    let proxy = tls_proxy(upstream.addr, dir.path(), &ca.server(), &extra).await;
    let before = wsguard::tls::Rejects::global().get(wsguard::tls::Reject::ClientCertificate);

    assert!(
        wss_open(proxy.addr, "/", ca.roots(), None).await.is_err(),
        "no client certificate"
    );
    let stranger = Ca::new("another CA").client();
    assert!(
        wss_open(proxy.addr, "/", ca.roots(), Some(&stranger))
            .await
            .is_err(),
        "client certificate of another CA"
    );
    let after = wsguard::tls::Rejects::global().get(wsguard::tls::Reject::ClientCertificate);
    assert!(after >= before + 2, "counted: {before} -> {after}");

    let mine = clients.client();
    let mut ws = wss_open(proxy.addr, "/", ca.roots(), Some(&mine))
        .await
        .expect("trusted client");
    futures_util::SinkExt::send(&mut ws, auth_frame(&hs256("bob", 300)))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let _up = upstream.accept().await;
    wss_round_trip(&mut ws, "mutual").await;
}

#[tokio::test]
async fn mtls_optional_takes_clients_without_a_certificate() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let client_ca = clients.write(dir.path(), "clients.pem");
    let upstream = Upstream::start(true).await;
    let extra = format!(
        "client_ca_file = {:?}\nclient_auth = \"optional\"",
        client_ca.display().to_string()
    );
    let proxy = tls_proxy(upstream.addr, dir.path(), &ca.server(), &extra).await;
    assert!(wss_open(proxy.addr, "/", ca.roots(), None).await.is_ok());
    let stranger = Ca::new("another CA").client();
    assert!(wss_open(proxy.addr, "/", ca.roots(), Some(&stranger))
        .await
        .is_err());
}

#[tokio::test]
async fn wss_upstream_with_its_own_ca_relays() {
    let up_ca = Ca::new("upstream CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let up_addr = tls_echo_upstream(&up_ca.server(), None).await;
    let ca_file = up_ca.write(dir.path(), "upstream-ca.pem");
    let proxy = proxy(up_addr)
        .upstream_url(&format!("wss://127.0.0.1:{}", up_addr.port()))
        .upstream(&format!("ca_file = {:?}", ca_file.display().to_string()))
        .start()
        .await;
    let mut ws = authed(&proxy, "/", &hs256("carol", 300)).await;
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::text("to tls upstream"),
    )
    .await
    .expect("send");
    assert_eq!(
        recv(&mut ws).await,
        tokio_tungstenite::tungstenite::Message::text("to tls upstream")
    );
}

#[tokio::test]
async fn wss_upstream_with_client_certificate() {
    let up_ca = Ca::new("upstream CA");
    let proxy_ca = Ca::new("proxy client CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let up_addr = tls_echo_upstream(&up_ca.server(), Some(&proxy_ca)).await;
    let ca_file = up_ca.write(dir.path(), "upstream-ca.pem");
    let (cert, key) = proxy_ca.client().write(dir.path());
    let base = format!("wss://127.0.0.1:{}", up_addr.port());
    let without = proxy(up_addr)
        .upstream_url(&base)
        .upstream(&format!("ca_file = {:?}", ca_file.display().to_string()))
        .start()
        .await;
    let mut ws = connect(&without, "/").await;
    futures_util::SinkExt::send(&mut ws, auth_frame(&hs256("dave", 300)))
        .await
        .expect("send");
    // TLS 1.3: the upstream refuses the missing certificate after the
    // handshake, so the WebSocket handshake fails.
    assert_eq!(
        expect_close(&mut ws).await,
        (1013, "upstream unavailable".to_owned())
    );
    let with = proxy(up_addr)
        .upstream_url(&base)
        .upstream(&format!(
            "ca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}",
            ca_file.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        ))
        .start()
        .await;
    let _ws = authed(&with, "/", &hs256("dave", 300)).await;
}

#[tokio::test]
async fn untrusted_wss_upstream_is_refused_with_1013() {
    let up_ca = Ca::new("upstream CA");
    let up_addr = tls_echo_upstream(&up_ca.server(), None).await;
    // No ca_file: the public roots, which do not hold the test CA.
    let proxy = proxy(up_addr)
        .upstream_url(&format!("wss://127.0.0.1:{}", up_addr.port()))
        .start()
        .await;
    let mut ws = connect(&proxy, "/").await;
    futures_util::SinkExt::send(&mut ws, auth_frame(&hs256("eve", 300)))
        .await
        .expect("send");
    assert_eq!(
        expect_close(&mut ws).await,
        (1013, "upstream unavailable".to_owned())
    );
}

#[tokio::test]
async fn rewritten_files_are_served_to_new_handshakes_while_live_connections_relay() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut upstream = Upstream::start(true).await;
    let first = ca.server();
    let proxy = tls_proxy(upstream.addr, dir.path(), &first, "").await;
    let mut live = wss_authed(proxy.addr, ca.roots(), &hs256("frank", 300)).await;
    let _up = upstream.accept().await;
    assert_eq!(served_cert(&proxy, &ca).await, first.cert.as_ref());

    let second = ca.server();
    second.write(dir.path());
    until_served(&proxy, &ca, &second).await;
    wss_round_trip(&mut live, "still relaying").await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_style_data_symlink_swap_is_seen() {
    use std::os::unix::fs::symlink;
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // root/..2026_1/{cert,key}.pem, root/..data -> ..2026_1, root/cert.pem -> ..data/cert.pem
    let first = ca.server();
    std::fs::create_dir(root.join("..2026_1")).expect("mkdir");
    first.write(&root.join("..2026_1"));
    symlink("..2026_1", root.join("..data")).expect("symlink");
    symlink("..data/cert.pem", root.join("cert.pem")).expect("symlink");
    symlink("..data/key.pem", root.join("key.pem")).expect("symlink");
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr)
        .listener(&listener_tls(
            &root.join("cert.pem"),
            &root.join("key.pem"),
            "",
        ))
        .start()
        .await;
    assert_eq!(served_cert(&proxy, &ca).await, first.cert.as_ref());

    // The new version in a new folder, then ..data swapped atomically by a rename.
    let second = ca.server();
    std::fs::create_dir(root.join("..2026_2")).expect("mkdir");
    second.write(&root.join("..2026_2"));
    symlink("..2026_2", root.join("..data_tmp")).expect("symlink");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
    until_served(&proxy, &ca, &second).await;
}

#[tokio::test]
async fn a_mismatched_pair_is_refused_and_the_old_one_stays() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start(true).await;
    let first = ca.server();
    let proxy = tls_proxy(upstream.addr, dir.path(), &first, "").await;
    // The certificate of one pair with the key of another.
    let (a, b) = (ca.server(), ca.server());
    std::fs::write(dir.path().join("cert.pem"), &a.cert_pem).expect("write");
    std::fs::write(dir.path().join("key.pem"), &b.key_pem).expect("write");
    // A later good pair is taken: the watcher is alive and polled past the bad one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_cert(&proxy, &ca).await, first.cert.as_ref());
    let good = ca.server();
    good.write(dir.path());
    until_served(&proxy, &ca, &good).await;
}

#[test]
fn a_mismatched_pair_is_an_error_naming_the_key_file() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (ca.server(), ca.server());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &a.cert_pem).expect("write");
    std::fs::write(&key, &b.key_pem).expect("write");
    let err = wsguard::tls::files::certified_key(&cert, &key)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with(&key.display().to_string()), "{err}");
    assert!(err.contains("does not match the certificate"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start(true).await;
    // Polling far apart: only the signal can make the change seen in time.
    let (cert, key) = ca.server().write(dir.path());
    let text = listener_tls(&cert, &key, "").replace("\"50ms\"", "\"1h\"");
    let proxy = support::proxy(upstream.addr).listener(&text).start().await;
    let second = ca.server();
    second.write(dir.path());
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    until_served(&proxy, &ca, &second).await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_ends_cleanly_and_is_counted() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start(true).await;
    let proxy = tls_proxy(upstream.addr, dir.path(), &ca.server(), "").await;
    let before = wsguard::tls::Rejects::global().get(wsguard::tls::Reject::NotTls);
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not ended");
    assert!(!answer.starts_with(b"HTTP/"), "answered as HTTP");
    let after = wsguard::tls::Rejects::global().get(wsguard::tls::Reject::NotTls);
    assert!(after > before, "not counted");
    // The proxy still serves TLS.
    assert!(wss_open(proxy.addr, "/", ca.roots(), None).await.is_ok());
}

#[tokio::test]
async fn a_stalled_handshake_ends_at_the_handshake_timeout() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = Upstream::start(true).await;
    let proxy = tls_proxy(
        upstream.addr,
        dir.path(),
        &ca.server(),
        "handshake_timeout = \"200ms\"",
    )
    .await;
    let before = wsguard::tls::Rejects::global().get(wsguard::tls::Reject::HandshakeTimeout);
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {read:?}"
    );
    let after = wsguard::tls::Rejects::global().get(wsguard::tls::Reject::HandshakeTimeout);
    assert!(after > before, "not counted");
}

#[tokio::test]
async fn a_tls_client_hello_on_the_plain_port_ends_cleanly_and_is_counted() {
    let ca = Ca::new("test CA");
    let upstream = Upstream::start(true).await;
    let proxy = proxy(upstream.addr).start().await;
    let before = wsguard::tls::Rejects::global().get(wsguard::tls::Reject::BadHttp);
    assert!(tls_open(proxy.addr, ca.roots(), None).await.is_err());
    let deadline = tokio::time::Instant::now() + WAIT;
    while wsguard::tls::Rejects::global().get(wsguard::tls::Reject::BadHttp) == before {
        assert!(tokio::time::Instant::now() < deadline, "not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sec1_and_pkcs1_keys_are_read() {
    let ca = Ca::new("test CA");
    let upstream = Upstream::start(true).await;
    for (leaf, label) in [
        (ca.server(), "EC PRIVATE KEY"),
        (ca.rsa_server(), "RSA PRIVATE KEY"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = leaf.write(dir.path());
        std::fs::write(&key, leaf.legacy_key_pem(label)).expect("write key");
        let proxy = proxy(upstream.addr)
            .listener(&listener_tls(&cert, &key, ""))
            .start()
            .await;
        assert_eq!(
            served_cert(&proxy, &ca).await,
            leaf.cert.as_ref(),
            "{label}"
        );
    }
}

#[tokio::test]
async fn https_pass_through_upstream_is_verified_with_ca_file() {
    let up_ca = Ca::new("upstream CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let up_addr = tls_http_upstream(&up_ca.server()).await;
    let ca_file = up_ca.write(dir.path(), "upstream-ca.pem");
    let get = |proxy: std::net::SocketAddr| async move {
        let mut tcp = TcpStream::connect(proxy).await.expect("connect");
        tcp.write_all(b"GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
            .await
            .expect("answer in time")
            .expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    };
    let trusted = proxy(Upstream::unused_addr().await)
        .upstream(&format!(
            "http_url = \"https://127.0.0.1:{}\"\nca_file = {:?}",
            up_addr.port(),
            ca_file.display().to_string()
        ))
        .start()
        .await;
    let answer = get(trusted.addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("http"), "{answer}");
    // Public roots only: the test CA is refused.
    let untrusted = proxy(Upstream::unused_addr().await)
        .upstream(&format!(
            "http_url = \"https://127.0.0.1:{}\"",
            up_addr.port()
        ))
        .start()
        .await;
    let answer = get(untrusted.addr).await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    // Over TLS on both legs: the upstream is told https.
    let ca = Ca::new("listener CA");
    let (cert, key) = ca.server().write(dir.path());
    let both = proxy(Upstream::unused_addr().await)
        .listener(&listener_tls(&cert, &key, ""))
        .upstream(&format!(
            "http_url = \"https://127.0.0.1:{}\"\nca_file = {:?}",
            up_addr.port(),
            ca_file.display().to_string()
        ))
        .start()
        .await;
    let mut tls = tls_open(both.addr, ca.roots(), None)
        .await
        .expect("handshake");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("https"), "{answer}");
}

/// `wsguard check` on a configuration whose listener serves `leaf`; its standard error.
fn check_stderr(leaf: &Leaf) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = leaf.write(dir.path());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let text = proxy("127.0.0.1:9".parse().expect("addr"))
        .listener(&listener_tls(&cert, &key, ""))
        .toml(&secret.display().to_string());
    let config = dir.path().join("wsguard.toml");
    std::fs::write(&config, text).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsguard"))
        .args(["check", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .expect("run wsguard check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_certificate_expiring_within_7_days_is_warned_about() {
    let ca = Ca::new("test CA");
    let stderr = check_stderr(&ca.expired_server());
    assert!(
        stderr.contains("TLS certificate expires within 7 days"),
        "{stderr}"
    );
    assert!(stderr.contains("cert.pem"), "names the file: {stderr}");
    let stderr = check_stderr(&ca.server());
    assert!(!stderr.contains("expires within"), "{stderr}");
}

#[test]
fn tls_config_errors_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let text = proxy("127.0.0.1:9".parse().expect("addr"))
        .listener(&listener_tls(&missing, &missing, ""))
        .toml(&secret.display().to_string());
    let config = wsguard::config::Config::parse(&text).expect("parse");
    let err = wsguard::proxy::Proxy::new(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("listener.tls.cert_file: "), "{err}");
    let text = proxy("127.0.0.1:9".parse().expect("addr"))
        .upstream(&format!(
            "client_cert_file = {:?}",
            missing.display().to_string()
        ))
        .toml(&secret.display().to_string());
    let config = wsguard::config::Config::parse(&text).expect("parse");
    let err = wsguard::proxy::Proxy::new(&config)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("upstream.client_key_file: "), "{err}");
}

#[tokio::test]
async fn the_tls_handshake_does_not_count_against_the_auth_timeout() {
    use futures_util::SinkExt;
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut upstream = Upstream::start(true).await;
    let (cert, key) = ca.server().write(dir.path());
    let proxy = proxy(upstream.addr)
        .listener(&listener_tls(&cert, &key, ""))
        .session("auth_timeout = \"300ms\"")
        .start()
        .await;
    // Slower than auth_timeout before the client hello, then quick.
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tls = tls_handshake(tcp, ca.roots(), None)
        .await
        .expect("handshake");
    let url = format!("wss://localhost:{}/", proxy.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("upgrade");
    ws.send(auth_frame(&hs256("gina", 300)))
        .await
        .expect("send");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let _up = upstream.accept().await;
    wss_round_trip(&mut ws, "in time").await;
}
