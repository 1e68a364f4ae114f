//! `wsguard demo` as a child process: the chat page and the client library
//! served on the proxy's address (through the pass-through), the token
//! endpoint's refresh switch and sign-in, the protected `/api/whoami`, and
//! the admin listener of `--admin`. The page itself runs in a real browser
//! in `clients/browser-tests/`.

mod support;
use support::*;

use futures_util::SinkExt;

/// `METHOD path` on the demo's proxy address.
async fn http(demo: &cli::Demo, method: &str, path: &str, extra: &str) -> requests::RawResponse {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n",
        demo.addr
    );
    requests::raw_http(demo.addr, &raw).await
}

#[tokio::test]
async fn the_page_url_comes_first_and_the_page_is_served_with_the_library() {
    let demo = cli::demo(&[]).await;
    let page = format!("page: http://{}/demo/ ", demo.addr);
    assert!(demo.banner[0].starts_with(&page), "{:?}", demo.banner);

    let html = http(&demo, "GET", "/demo/", "").await;
    assert_eq!(html.status, 200, "{}", html.body);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        html.body.contains(r#""@wsguard/client": "./lib/index.js""#),
        "{}",
        html.body
    );
    assert!(html.body.contains(r#"<script type="module" src="app.js">"#));
    for module in [
        "/demo/app.js",
        "/demo/view.js",
        "/demo/lib/index.js",
        "/demo/lib/client.js",
    ] {
        let js = http(&demo, "GET", module, "").await;
        assert_eq!(js.status, 200, "{module}");
        assert_eq!(
            js.header("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{module}"
        );
        assert_eq!(
            js.header("x-content-type-options"),
            Some("nosniff"),
            "{module}"
        );
    }
    let css = http(&demo, "GET", "/demo/style.css", "").await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    // What the library's dist/ holds is what is served.
    let client = http(&demo, "GET", "/demo/lib/client.js", "").await;
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/js/dist/client.js"
    ))
    .expect("clients/js/dist/client.js");
    assert_eq!(client.body, on_disk);

    let bare = http(&demo, "GET", "/demo", "").await;
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some("/demo/"));
    assert_eq!(http(&demo, "GET", "/demo/nope.js", "").await.status, 404);
}

#[tokio::test]
async fn the_switch_refuses_refreshes_until_a_sign_in() {
    let demo = cli::demo(&[]).await;
    let switch = http(&demo, "GET", "/demo/switch", "").await;
    assert_eq!(switch.json(), serde_json::json!({"refresh_fails": false}));

    let on = http(&demo, "POST", "/demo/switch?refresh_fails=true", "").await;
    assert_eq!(on.json(), serde_json::json!({"refresh_fails": true}));
    for _ in 0..2 {
        let refused = http(&demo, "GET", "/demo/token?sub=alice", "").await;
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert_eq!(refused.json()["error"], "refresh_refused");
    }
    let bad = http(&demo, "POST", "/demo/switch?refresh_fails=maybe", "").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "bad_switch");
    assert_eq!(http(&demo, "GET", "/demo/signin", "").await.status, 405);

    let signin = http(&demo, "POST", "/demo/signin?sub=bob", "").await;
    assert_eq!(signin.status, 200, "{}", signin.body);
    assert_eq!(signin.json()["sub"], "bob");
    let switch = http(&demo, "GET", "/demo/switch", "").await;
    assert_eq!(switch.json(), serde_json::json!({"refresh_fails": false}));
    let token = http(&demo, "GET", "/demo/token", "").await;
    assert_eq!(token.status, 200, "{}", token.body);

    // The switch can also be turned off without signing in.
    http(&demo, "POST", "/demo/switch?refresh_fails=true", "").await;
    let off = http(&demo, "POST", "/demo/switch?refresh_fails=false", "").await;
    assert_eq!(off.json(), serde_json::json!({"refresh_fails": false}));
    assert_eq!(http(&demo, "GET", "/demo/token", "").await.status, 200);
}

#[tokio::test]
async fn api_whoami_is_protected_by_the_proxy() {
    let demo = cli::demo(&[]).await;
    let refused = http(&demo, "GET", "/api/whoami", "").await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.json()["error"], "token_not_valid");
    assert!(refused.header("www-authenticate").is_some());

    let bearer = format!("Authorization: Bearer {}\r\n", demo.token);
    let ok = http(&demo, "GET", "/api/whoami", &bearer).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The upstream answers with the identity header wsguard set.
    assert_eq!(ok.json()["sub"], "alice", "{}", ok.body);

    let forged = "Authorization: Bearer not.a.token\r\nX-Auth-Subject: mallory\r\n";
    assert_eq!(http(&demo, "GET", "/api/whoami", forged).await.status, 401);
}

#[tokio::test]
async fn admin_lists_the_demos_connections() {
    let demo = cli::demo(&["--admin", "127.0.0.1:0"]).await;
    let line = demo
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("admin: http://"))
        .unwrap_or_else(|| panic!("no admin line in {:?}", demo.banner));
    let admin: std::net::SocketAddr = line
        .trim_end_matches("/connections")
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));

    let (mut ws, _) = tokio_tungstenite::connect_async(demo.url.as_str())
        .await
        .expect("connect to the demo proxy");
    ws.send(auth_frame(&demo.token)).await.expect("send auth");
    let authed = recv_json(&mut ws).await;
    assert_eq!(authed["type"], "AUTHENTICATED", "{authed}");

    let raw = format!("GET /connections HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    let listed = requests::raw_http(admin, &raw).await.json();
    let connections = listed["connections"].as_array().expect("connections");
    assert_eq!(connections.len(), 1, "{listed}");
    assert_eq!(connections[0]["sub"], "alice", "{listed}");

    let raw = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    let metrics = admin::Scrape::parse(&requests::raw_http(admin, &raw).await.body);
    assert_eq!(
        metrics.value("wsguard_auth_total", &[("kind", "first"), ("reason", "ok")]),
        1.0
    );
}

#[tokio::test]
async fn the_readme_shows_the_page_line_the_demo_prints_and_its_screenshot() {
    let demo = cli::demo(&[]).await;
    let line = demo.banner[0].replace(&demo.addr.to_string(), "127.0.0.1:8080");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(readme.contains(&line), "the README lacks {line:?}");
    assert!(readme.contains("](docs/demo.png)"));
    let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/demo.png"))
        .expect("docs/demo.png");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "docs/demo.png is a PNG"
    );
}
