//! The Origin allowlist (`http.allowed_origins`): an upgrade from an
//! Origin not on the list gets 403 before the upgrade and before any token
//! is looked at; wildcards are one DNS label; default ports normalized.

mod support;

use support::raw::{read_head, upgrade_request};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status and body of the answer to an upgrade with these extra
/// header lines (a 101 is read up to its head: the connection stays open).
async fn upgrade(p: &TestProxy, extra: &str) -> (u16, String) {
    let head = upgrade_request(p.addr, "/", &format!("{extra}Connection: close\r\n"));
    let mut tcp = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    tcp.write_all(head.as_bytes()).await.expect("write");
    let answer = read_head(&mut tcp).await;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = String::new();
    if status != 101 {
        let read = tcp.read_to_string(&mut body);
        let _ = tokio::time::timeout(WAIT, read)
            .await
            .expect("body in time");
    }
    (status, body)
}

/// The `error` of a JSON answer.
fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["error"].as_str().unwrap_or_default().to_owned()
}

fn origin(o: &str) -> String {
    format!("Origin: {o}\r\n")
}

async fn with_list(http: &str) -> TestProxy {
    let upstream = Upstream::unused_addr().await;
    proxy(upstream)
        .http(&format!(
            "allowed_origins = [\"https://app.example.com\", \"https://*.example.org\", \"http://dev.example.net:8080\"]\n{http}"
        ))
        .start()
        .await
}

#[tokio::test]
async fn allowed_origins_upgrade_and_others_get_403() {
    let p = with_list("").await;
    for ok in [
        "https://app.example.com",
        "HTTPS://App.Example.com:443",
        "https://a.example.org",
        "http://dev.example.net:8080",
    ] {
        assert_eq!(upgrade(&p, &origin(ok)).await.0, 101, "{ok}");
    }
    for bad in [
        "https://evil.example",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://example.org",
        "https://a.b.example.org",
        "http://dev.example.net",
        "null",
    ] {
        let (status, body) = upgrade(&p, &origin(bad)).await;
        assert_eq!(status, 403, "{bad}: {body}");
        assert_eq!(error_code(&body), "origin_not_allowed", "{body}");
    }
}

#[tokio::test]
async fn missing_origin_is_allowed_only_when_configured() {
    let p = with_list("").await;
    assert_eq!(upgrade(&p, "").await.0, 101, "default without cookie auth");
    let p = with_list("allow_missing_origin = false").await;
    assert_eq!(upgrade(&p, "").await.0, 403);
    // Cookie auth on: missing Origin refused by default.
    let upstream = Upstream::unused_addr().await;
    let p = proxy(upstream)
        .legacy("cookie = \"sid\"")
        .http("allowed_origins = [\"https://app.example.com\"]")
        .start()
        .await;
    assert_eq!(upgrade(&p, "").await.0, 403);
    assert_eq!(upgrade(&p, &origin("https://app.example.com")).await.0, 101);
}

#[tokio::test]
async fn the_origin_is_checked_before_any_token() {
    let upstream = Upstream::unused_addr().await;
    let p = proxy(upstream)
        .legacy("header = true\nreject_with_http = true")
        .http("allowed_origins = [\"https://app.example.com\"]")
        .start()
        .await;
    let bad_token = "Authorization: Bearer not.a.jwt\r\n";
    let answer = upgrade(
        &p,
        &format!("{bad_token}{}", origin("https://evil.example")),
    )
    .await;
    assert_eq!(answer.0, 403, "{answer:?}");
    let answer = upgrade(
        &p,
        &format!("{bad_token}{}", origin("https://app.example.com")),
    )
    .await;
    assert_eq!(answer.0, 401, "{answer:?}");
}

#[tokio::test]
async fn without_a_list_any_origin_upgrades() {
    let upstream = Upstream::unused_addr().await;
    let p = proxy(upstream).start().await;
    assert_eq!(upgrade(&p, &origin("https://evil.example")).await.0, 101);
    assert_eq!(upgrade(&p, "").await.0, 101);
}

#[tokio::test]
async fn a_bad_entry_is_a_config_error_naming_it() {
    let upstream = Upstream::unused_addr().await;
    let text = proxy(upstream)
        .http("allowed_origins = [\"https://ok.example\", \"app.example.com\"]")
        .toml("/nonexistent");
    let config = wsguard::config::Config::parse(&text).expect("parses");
    let err = wsguard::proxy::Proxy::new(&config)
        .err()
        .map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.starts_with("http.allowed_origins[1]:"), "{err}");
}
