//! `wsguard connect` against `wsguard demo`, both as child processes: the
//! command the demo prints authenticates, answers `auth_required` with a
//! REAUTH from the demo's token endpoint and is `AUTHENTICATED` again on the
//! same socket; it never prints a token unless asked; it exits non-zero on
//! an abnormal close. The demo's token endpoint answers through the proxy.

mod support;
use support::cli::*;
use support::requests::raw_http;
use support::*;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The JSON of a received frame line (`<time> < {json}`), if it is one.
fn received(line: &str) -> Option<Value> {
    let (_, rest) = line.split_once(" < ")?;
    serde_json::from_str(rest).ok()
}

/// The JSON of a sent frame line (`<time> > {json}`), if it is one.
fn sent(line: &str) -> Option<Value> {
    let (_, rest) = line.split_once(" > ")?;
    serde_json::from_str(rest).ok()
}

fn of_type(v: &Option<Value>, kind: &str) -> bool {
    v.as_ref().is_some_and(|v| v["type"] == kind)
}

#[tokio::test]
async fn the_printed_command_reauthenticates_on_the_same_socket() {
    let demo = demo(&["--token-ttl", "4s", "--reauth-lead", "2s"]).await;
    assert!(
        demo.connect.contains(&format!(
            " connect {} --token-url http://{}/demo/token",
            demo.url, demo.addr
        )),
        "{}",
        demo.connect
    );
    let mut child = shell(&format!("exec {}", demo.connect))
        .spawn()
        .expect("spawn the printed connect command");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = Output::new(child.stdout.take().expect("stdout"));

    let first = out
        .until("AUTHENTICATED", |l| of_type(&received(l), "AUTHENTICATED"))
        .await;
    let first = received(&first).expect("json");
    assert_eq!(first["payload"]["in_reply_to"], "1", "{first}");
    assert_eq!(first["payload"]["sub"], "alice", "{first}");
    stdin
        .write_all(b"hello through the demo\n")
        .await
        .expect("write");
    out.until("the echo", |l| l.ends_with(" < hello through the demo"))
        .await;

    out.until("auth_required", |l| of_type(&received(l), "auth_required"))
        .await;
    let reauth = out
        .until("the REAUTH sent", |l| of_type(&sent(l), "REAUTH"))
        .await;
    let reauth = sent(&reauth).expect("json");
    assert_eq!(
        reauth["payload"]["token"], "<token>",
        "the token was printed"
    );
    let again = out
        .until("AUTHENTICATED again", |l| {
            of_type(&received(l), "AUTHENTICATED")
        })
        .await;
    let again = received(&again).expect("json");
    assert_eq!(again["payload"]["in_reply_to"], reauth["id"], "{again}");
    assert_eq!(
        again["payload"]["connection_id"], first["payload"]["connection_id"],
        "not the same socket"
    );
    assert!(
        again["payload"]["exp"].as_i64() > first["payload"]["exp"].as_i64(),
        "{again} vs {first}"
    );

    // End of input closes normally: close 1000 printed, exit status 0.
    drop(stdin);
    out.until("the close", |l| l.ends_with(" < close 1000 \"\""))
        .await;
    out.rest().await;
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("connect did not exit")
        .expect("wait");
    assert!(status.success(), "{status}");
    let printed = out.seen.join("\n");
    assert!(!printed.contains("eyJ"), "a token was printed:\n{printed}");
}

#[tokio::test]
async fn an_abnormal_close_is_printed_and_exits_non_zero() {
    let demo = demo(&[]).await;
    let mut child = wsguard_child()
        .args(["connect", &demo.url, "--token", "not.a.token"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn connect");
    let mut out = Output::new(child.stdout.take().expect("stdout"));
    out.until("the close", |l| {
        l.ends_with(" < close 1008 \"invalid token\"")
    })
    .await;
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("connect did not exit")
        .expect("wait");
    assert_eq!(status.code(), Some(1), "{status}");
}

#[tokio::test]
async fn a_static_token_says_it_cannot_refresh_and_shows_the_token_when_asked() {
    let demo = demo(&["--token-ttl", "3s", "--reauth-lead", "2s"]).await;
    let mut child = wsguard_child()
        .args(["connect", &demo.url, "--show-token", "--token", &demo.token])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn connect");
    let mut out = Output::new(child.stdout.take().expect("stdout"));
    let mut err = Output::new(child.stderr.take().expect("stderr"));
    let auth = out
        .until("the auth frame", |l| of_type(&sent(l), "auth"))
        .await;
    assert_eq!(sent(&auth).expect("json")["payload"]["token"], demo.token);
    out.until("auth_required", |l| of_type(&received(l), "auth_required"))
        .await;
    err.until("the static-token remark", |l| {
        l.contains("auth_required: a static --token cannot be refreshed")
    })
    .await;
}

#[tokio::test]
async fn the_token_endpoint_answers_through_the_proxy() {
    let demo = demo(&[]).await;
    let get = |query: &str| {
        format!(
            "GET /demo/token{query} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            demo.addr
        )
    };
    let answer = raw_http(demo.addr, &get("?sub=bob")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    assert_eq!(body["sub"], "bob", "{body}");
    assert_eq!(body["expires_in"], 120, "{body}");
    let exp = body["exp"].as_i64().expect("exp");
    assert!((now() + 118..=now() + 121).contains(&exp), "{body}");
    assert!(body["expires_at"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));

    // The token it gave authenticates bob.
    let token = body["token"].as_str().expect("token");
    let (mut ws, _) = tokio_tungstenite::connect_async(demo.url.as_str())
        .await
        .expect("connect");
    futures_util::SinkExt::send(&mut ws, auth_frame(token))
        .await
        .expect("send auth");
    let authed = recv_json(&mut ws).await;
    assert_eq!(authed["type"], "AUTHENTICATED", "{authed}");
    assert_eq!(authed["payload"]["sub"], "bob", "{authed}");

    // Without ?sub=, alice; a sub outside the allowed characters is refused.
    let answer = raw_http(demo.addr, &get("")).await;
    assert_eq!(answer.json()["sub"], "alice");
    for bad in [
        "?sub=",
        "?sub=%3Cscript%3E",
        "?sub=a%0Ab",
        &format!("?sub={}", "x".repeat(65)),
    ] {
        let answer = raw_http(demo.addr, &get(bad)).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
        assert_eq!(answer.json()["error"], "bad_sub", "{bad}");
    }
    let answer = raw_http(
        demo.addr,
        "POST /demo/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 405);
}

#[tokio::test]
async fn frames_are_printed_one_line_each_without_terminal_escapes() {
    let demo = demo(&[]).await;
    let mut child = wsguard_child()
        .args(["connect", &demo.url, "--token", &demo.token])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn connect");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = Output::new(child.stdout.take().expect("stdout"));
    stdin
        .write_all(b"red \x1b[31malert\x1b[0m\r done\n")
        .await
        .expect("write");
    let echo = out.until("the echo", |l| l.contains(" < red ")).await;
    assert!(
        echo.ends_with(r" < red \u{1b}[31malert\u{1b}[0m\r done"),
        "{echo:?}"
    );
    assert!(!out.seen.join("\n").contains('\u{1b}'));
    // The server's close is answered and the exit is prompt.
    drop(stdin);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("connect did not exit")
        .expect("wait");
    assert!(status.success(), "{status}");
}
