//! Observability on the real binary (the metrics recorder is one per
//! process): `/metrics` around a real scenario, `/readyz` following the
//! upstream, `/connections` pages, the admin token, the JSON audit log, and
//! the Grafana dashboard's queries against the exported names.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::Value;
use support::admin::{run, Running, Scrape};
use support::lifecycle::{reauth, token};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The admin token the token tests configure.
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// A configuration: one worker, the test HMAC key, JSON logs, the admin
/// listener on a free port, and `extra` sections.
fn config(upstream: std::net::SocketAddr, admin: &str, extra: &str) -> String {
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[upstream]
url = "ws://{upstream}"
{BINARY_PROVIDER}[admin]
bind = "127.0.0.1:0"
upstream_check_interval = "100ms"
{admin}
[log]
format = "json"
{extra}
"#
    )
}

/// Scrapes until `done` holds for the scrape (within `WAIT`).
async fn scrape_until(proxy: &Running, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scrape = proxy.scrape(None).await;
        if done(&scrape) {
            return scrape;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what} never held:\n{}", scrape.text);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Active connections in every state.
fn active(s: &Scrape) -> f64 {
    s.value("wsguard_connections_active", &[])
}

#[tokio::test]
async fn metrics_follow_a_real_scenario() {
    let mut upstream = Upstream::start(true).await;
    // auth_required is due at once (the lead is longer than the token's life).
    let proxy = run(
        &config(
            upstream.addr,
            "",
            "[session]\nreauth_lead = \"90s\"\nreauth_jitter = \"0s\"",
        ),
        &[],
    )
    .await;
    let before = proxy.scrape(None).await;
    assert_eq!(active(&before), 0.0);
    assert_eq!(
        before.value(
            "wsguard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // One that authenticates, is asked to re-authenticate, does, and relays both ways.
    let mut ws = proxy.connect("/chat").await;
    let (first, _) = token("alice", 60);
    ws.send(auth_frame(&first)).await.expect("auth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let _up = upstream.accept().await;
    assert_eq!(recv_json(&mut ws).await["type"], "auth_required");
    let (second, _) = token("alice", 600);
    ws.send(reauth("r1", &second)).await.expect("reauth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let during = scrape_until(&proxy, "one authenticated connection", |s| {
        s.value("wsguard_connections_active", &[("state", "authenticated")]) == 1.0
    })
    .await;
    assert_eq!(active(&during), 1.0);
    for text in ["one", "two"] {
        ws.send(Message::text(text)).await.expect("send");
        assert_eq!(recv(&mut ws).await, Message::text(text));
    }
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .expect("close");
    expect_close(&mut ws).await;

    // Refused first tokens, by reason; a first frame that is not an auth frame.
    let (wrong_key, _) = {
        let c = claims("mallory", 60, serde_json::json!({}));
        let key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!");
        (sign(jsonwebtoken::Algorithm::HS256, &key, None, &c), ())
    };
    let (expired, _) = token("bob", -600);
    for bad in [wrong_key.as_str(), expired.as_str()] {
        let mut ws = proxy.connect("/chat").await;
        ws.send(auth_frame(bad)).await.expect("auth");
        assert_eq!(expect_close(&mut ws).await.1, "invalid token");
    }
    let mut ws = proxy.connect("/chat").await;
    ws.send(Message::text("hello")).await.expect("send");
    assert_eq!(expect_close(&mut ws).await.1, "auth required");

    let after = scrape_until(&proxy, "every connection gone", |s| {
        active(s) == 0.0 && s.value("wsguard_connections_total", &[]) == 4.0
    })
    .await;
    let auth = |kind, result, reason| {
        after.value(
            "wsguard_auth_total",
            &[("kind", kind), ("result", result), ("reason", reason)],
        )
    };
    assert_eq!(auth("first", "ok", "ok"), 1.0);
    assert_eq!(auth("reauth", "ok", "ok"), 1.0);
    assert_eq!(auth("first", "failed", "signature"), 1.0);
    assert_eq!(auth("first", "failed", "expired"), 1.0);
    assert_eq!(after.value("wsguard_auth_required_sent_total", &[]), 1.0);
    let closes = |reason, side| {
        after.value(
            "wsguard_closes_total",
            &[("reason", reason), ("side", side)],
        )
    };
    assert_eq!(closes("peer", "client"), 1.0);
    assert_eq!(closes("invalid_token", "proxy"), 2.0);
    assert_eq!(closes("auth_required", "proxy"), 1.0);
    assert_eq!(after.value("wsguard_closes_total", &[]), 4.0);
    for direction in ["client_to_upstream", "upstream_to_client"] {
        let d = [("direction", direction)];
        assert_eq!(
            after.value("wsguard_messages_total", &d),
            2.0,
            "{direction}"
        );
        assert!(after.value("wsguard_bytes_total", &d) >= 6.0, "{direction}");
    }
    assert_eq!(after.value("wsguard_auth_duration_seconds_count", &[]), 4.0);
    assert_eq!(
        after.value("wsguard_upstream_connect_seconds_count", &[]),
        1.0
    );
    assert_eq!(after.value("wsguard_ws_send_errors_total", &[]), 0.0);
}

#[tokio::test]
async fn auth_timeouts_are_counted() {
    let upstream = Upstream::start(true).await;
    let proxy = run(
        &config(upstream.addr, "", "[session]\nauth_timeout = \"100ms\""),
        &[],
    )
    .await;
    let mut ws = proxy.connect("/").await;
    assert_eq!(expect_close(&mut ws).await.1, "auth timeout");
    let after = scrape_until(&proxy, "the timeout counted", |s| active(s) == 0.0).await;
    assert_eq!(after.value("wsguard_auth_timeouts_total", &[]), 1.0);
    assert_eq!(
        after.value("wsguard_closes_total", &[("reason", "auth_timeout")]),
        1.0
    );
}

#[tokio::test]
async fn legacy_auth_is_counted_by_method() {
    let upstream = Upstream::start(true).await;
    let proxy = run(
        &config(upstream.addr, "", "[auth.legacy]\nheader = true"),
        &[],
    )
    .await;
    for token in [hs256("alice", 300), "not.a.jwt".to_owned()] {
        let mut request = format!("ws://{}/", proxy.proxy)
            .into_client_request()
            .expect("request");
        let bearer = format!("Bearer {token}").parse().expect("header value");
        request.headers_mut().insert("authorization", bearer);
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        drop(ws);
    }
    let after = scrape_until(&proxy, "both legacy attempts counted", |s| {
        s.value("wsguard_auth_total", &[("kind", "header")]) == 2.0
    })
    .await;
    let header = |result: &str| {
        after.value(
            "wsguard_auth_total",
            &[("kind", "header"), ("result", result)],
        )
    };
    assert_eq!((header("ok"), header("failed")), (1.0, 1.0));
    assert_eq!(
        after.value("wsguard_deprecated_auth_total", &[("method", "header")]),
        2.0
    );
    assert_eq!(
        after.value("wsguard_deprecated_auth_total", &[("method", "cookie")]),
        0.0
    );
}

#[tokio::test]
async fn tls_rejects_and_the_certificates_life_are_exported() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start(true).await;
    let ca = support::tls::Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = ca.server().write(dir.path());
    let tls = format!(
        "[listener.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"",
        cert.display(),
        key.display()
    );
    // [listener.tls] is a table of [listener]: it goes after the config's sections.
    let text = config(upstream.addr, "", "").replacen(
        "worker_threads = 1\n",
        &format!("worker_threads = 1\n{tls}\n"),
        1,
    );
    let proxy = run(&text, &[]).await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.proxy)
        .await
        .expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let after = scrape_until(&proxy, "the plain request counted", |s| {
        s.value("wsguard_tls_rejects_total", &[("cause", "not_tls")]) == 1.0
    })
    .await;
    let left = after.value("wsguard_tls_certificate_expires_in_seconds", &[]);
    assert!(
        left > 86_400.0,
        "the test certificate lives for days: {left}"
    );
}

#[tokio::test]
async fn readyz_follows_the_upstream() {
    let addr = Upstream::unused_addr().await;
    let proxy = run(&config(addr, "", ""), &[]).await;
    assert_eq!(proxy.get("/healthz", None).await.status, 200);
    let down = proxy.get("/readyz", None).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.json()["error"], "not_ready");
    assert_eq!(down.json()["failing"], serde_json::json!(["upstream"]));
    let _upstream = Upstream::start_on(addr).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = proxy.get("/readyz", None).await;
        if ready.status == 200 {
            assert_eq!(ready.json()["status"], "ready");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_are_listed_a_page_at_a_time() {
    let mut upstream = Upstream::start(true).await;
    let proxy = run(&config(upstream.addr, "", ""), &[]).await;
    let mut clients = Vec::new();
    for sub in ["alice", "bob", "alice"] {
        let mut ws = proxy.connect("/").await;
        ws.send(auth_frame(&token(sub, 600).0)).await.expect("auth");
        assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
        clients.push((ws, upstream.accept().await));
    }
    let first = proxy.get("/connections?limit=2", None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    let listed = first["connections"].as_array().expect("connections");
    assert_eq!(listed.len(), 2, "{first}");
    let c = &listed[0];
    assert_eq!(c["state"], "authenticated", "{c}");
    assert_eq!(c["worker"], 0, "{c}");
    assert!(
        c["remote_addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{c}"
    );
    assert!(
        c["expires_at"].as_u64().is_some() && c["age_seconds"].as_f64().is_some(),
        "{c}"
    );
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = proxy
        .get(&format!("/connections?limit=2&cursor={cursor}"), None)
        .await
        .json();
    let rest = second["connections"].as_array().expect("connections");
    assert_eq!(rest.len(), 1, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let mut ids: Vec<&Value> = listed.iter().chain(rest).map(|c| &c["id"]).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every connection once");
    let alice = proxy.get("/connections?sub=alice", None).await.json();
    assert_eq!(
        alice["connections"].as_array().map(Vec::len),
        Some(2),
        "{alice}"
    );
    assert_eq!(proxy.get("/connections?limit=0", None).await.status, 400);
    drop(clients);
}

#[tokio::test]
async fn the_admin_token_guards_all_but_the_probes() {
    let upstream = Upstream::start(true).await;
    let proxy = run(
        &config(
            upstream.addr,
            "token_env = \"WSGUARD_TEST_ADMIN_TOKEN\"",
            "",
        ),
        &[("WSGUARD_TEST_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    for path in ["/metrics", "/connections"] {
        let refused = proxy.get(path, None).await;
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(refused.json()["error"], "unauthorized");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert_eq!(
            proxy.get(path, Some("wrong-token-0123456789")).await.status,
            401
        );
        assert_eq!(
            proxy.get(path, Some(ADMIN_TOKEN)).await.status,
            200,
            "{path}"
        );
    }
    assert_eq!(proxy.get("/healthz", None).await.status, 200);
    assert_ne!(proxy.get("/readyz", None).await.status, 401);
    assert_eq!(proxy.get("/nothing", Some(ADMIN_TOKEN)).await.status, 404);
}

/// `wsguard check` on `text`, with the admin token variable set to `token`
/// if given: whether it passed, and its standard error.
fn check(text: &str, token: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), SECRET).expect("secret");
    let path = dir.path().join("wsguard.toml");
    std::fs::write(&path, text).expect("config");
    let mut cmd = std::process::Command::new(support::cli::BIN);
    cmd.env_remove("WSGUARD_CONFIG")
        .env_remove("WSGUARD_TEST_ADMIN_TOKEN")
        .arg("check")
        .arg("--config")
        .arg(&path);
    if let Some(v) = token {
        cmd.env("WSGUARD_TEST_ADMIN_TOKEN", v);
    }
    let out = cmd.output().expect("run check");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

/// `text` with the admin listener's `bind` replaced.
fn admin_bind(text: &str, bind: &str) -> String {
    text.replace(
        "bind = \"127.0.0.1:0\"\nupstream_check",
        &format!("bind = \"{bind}\"\nupstream_check"),
    )
}

#[tokio::test]
async fn a_non_loopback_admin_address_needs_a_token() {
    let text = admin_bind(&config(Upstream::unused_addr().await, "", ""), "0.0.0.0:0");
    let (ok, err) = check(&text, None);
    assert!(
        !ok && err.contains("admin.bind") && err.contains("admin.token_env"),
        "{err}"
    );
    let with_token = text.replace(
        "[admin]",
        "[admin]\ntoken_env = \"WSGUARD_TEST_ADMIN_TOKEN\"",
    );
    let (ok, err) = check(&with_token, Some(ADMIN_TOKEN));
    assert!(ok, "{err}");
}

#[tokio::test]
async fn admin_and_log_mistakes_name_their_key() {
    let base = config(Upstream::unused_addr().await, "", "");
    let token_env = "[admin]\ntoken_env = \"WSGUARD_TEST_ADMIN_TOKEN\"";
    let same = admin_bind(&base, "127.0.0.1:18080").replacen(
        "bind = \"127.0.0.1:0\"",
        "bind = \"127.0.0.1:18080\"",
        1,
    );
    let cases = [
        (same, None, "admin.bind: must differ from listener.bind"),
        (admin_bind(&base, "admin"), None, "admin.bind"),
        (
            base.replace("\"100ms\"", "\"1ms\""),
            None,
            "admin.upstream_check_interval",
        ),
        (
            base.replace("[admin]", token_env),
            None,
            "admin.token_env: environment variable",
        ),
        (
            base.replace("[admin]", token_env),
            Some("short"),
            "admin.token_env: the token",
        ),
        (
            base.replace("format = \"json\"", "format = \"json\"\nlevel = \"info,[\""),
            None,
            "log.level",
        ),
        (
            base.replace("format = \"json\"", "format = \"xml\""),
            None,
            "format",
        ),
    ];
    for (text, token, wanted) in cases {
        let (ok, err) = check(&text, token);
        assert!(!ok && err.contains(wanted), "{wanted}: {err}");
    }
    let (ok, err) = check(&admin_bind(&base, ""), None);
    assert!(ok, "admin off: {err}");
}

/// The JSON log's audit events, by `event`.
fn audit(lines: &[String], event: &str) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["target"] == "wsguard::audit" && v["event"] == event)
        .collect()
}

#[tokio::test]
async fn the_json_audit_log_carries_the_fields_and_never_the_token() {
    let mut upstream = Upstream::start(true).await;
    // Every level, every target: not even a trace line may hold the token.
    let proxy = run(&config(upstream.addr, "", ""), &[("RUST_LOG", "trace")]).await;
    // auth_required at once (the default lead is 60 s), then a REAUTH.
    let (good, _) = token("alice", 60);
    let (fresh, _) = token("alice", 600);
    let mut ws = proxy.connect("/chat?room=1").await;
    ws.send(auth_frame(&good)).await.expect("auth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let _up = upstream.accept().await;
    assert_eq!(recv_json(&mut ws).await["type"], "auth_required");
    ws.send(reauth("r1", &fresh)).await.expect("reauth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    ws.send(Message::Close(None)).await.expect("close");
    expect_close(&mut ws).await;
    let (expired, _) = token("bob", -600);
    let mut refused = proxy.connect("/").await;
    refused.send(auth_frame(&expired)).await.expect("auth");
    expect_close(&mut refused).await;
    // A token that expires on the connection: TOKEN_EXPIRED.
    let (short, _) = token("carol", 2);
    let mut carol = proxy.connect("/").await;
    carol.send(auth_frame(&short)).await.expect("auth");
    assert_eq!(recv_json(&mut carol).await["type"], "AUTHENTICATED");
    let _carol_up = upstream.accept().await;
    assert_eq!(recv_json(&mut carol).await["type"], "auth_required");
    assert_eq!(recv_json(&mut carol).await["type"], "TOKEN_EXPIRED");
    drop(carol);
    let deadline = tokio::time::Instant::now() + WAIT;
    while audit(&proxy.lines(), "closed").len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no close lines: {:?}",
            proxy.lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = proxy.lines();
    for line in &lines {
        for t in [&good, &fresh, &expired, &short] {
            assert!(!line.contains(t.as_str()), "token in {line}");
        }
        assert!(!line.contains("room=1"), "query string in {line}");
    }
    let accepted = audit(&lines, "accepted");
    assert_eq!(accepted.len(), 3, "{accepted:?}");
    assert!(accepted[0]["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    let ok = &audit(&lines, "auth_ok")[0];
    assert_eq!(ok["sub"], "\"alice\"", "sub escaped (Debug): {ok}");
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["reason"], "ok");
    let conn = ok["conn"].as_str().expect("conn");
    let failed = &audit(&lines, "auth_failed")[0];
    assert_eq!(failed["reason"], "expired", "{failed}");
    let closes = audit(&lines, "closed");
    let mine = closes
        .iter()
        .find(|c| c["conn"] == conn)
        .expect("alice's close");
    assert_eq!(mine["side"], "client", "{mine}");
    assert_eq!(mine["reason"], "peer", "{mine}");
    assert!(mine["duration_ms"].as_u64().is_some(), "{mine}");
    for (event, sub) in [
        ("reauth_ok", "\"alice\""),
        ("auth_required", "\"alice\""),
        ("token_expired", "\"carol\""),
    ] {
        let found = audit(&lines, event);
        assert!(found.iter().any(|e| e["sub"] == sub), "{event}: {found:?}");
    }
    let scrape = proxy.scrape(None).await;
    assert_eq!(scrape.value("wsguard_token_expired_sent_total", &[]), 1.0);
    assert_eq!(scrape.value("wsguard_auth_required_sent_total", &[]), 2.0);
    let theirs = closes
        .iter()
        .find(|c| c["reason"] == "invalid_token")
        .expect("bob's close");
    assert_eq!(theirs["reason"], "invalid_token", "{theirs}");
    assert_eq!(theirs["code"], 1008, "{theirs}");
}

/// Every `wsguard_*` name the dashboard's queries use.
fn dashboard_metrics() -> Vec<String> {
    let path = format!(
        "{}/examples/grafana/wsguard.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut names: Vec<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("wsguard_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_queries_only_exported_metrics() {
    let upstream = Upstream::start(true).await;
    let proxy = run(&config(upstream.addr, "", ""), &[]).await;
    let scrape = proxy.scrape(None).await;
    let constants: Vec<&str> = wsguard::metrics::ALL.iter().map(|m| m.0).collect();
    // Present only where their feature is configured (none is, here).
    let gated = [
        wsguard::metrics::JWKS_REFRESH_TOTAL.0,
        wsguard::metrics::JWKS_KEYS.0,
        wsguard::metrics::JWKS_AGE_SECONDS.0,
        wsguard::metrics::DEPRECATED_AUTH_TOTAL.0,
    ];
    for name in dashboard_metrics() {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| constants.contains(b))
            .unwrap_or(&name);
        assert!(
            constants.contains(&base),
            "{name} is not a metric of wsguard::metrics"
        );
        if !gated.contains(&base) {
            assert!(
                scrape.has(&name),
                "{name} is not in a scrape:\n{}",
                scrape.text
            );
        }
    }
}
