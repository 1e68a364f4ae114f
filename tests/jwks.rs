//! Keys from an identity provider over real HTTPS (a CA and certificate
//! made in the test): discovery, rotation, single-flight refetch with
//! cooldown, stale-on-error, bad answers, start-up, `check --online`, and
//! live connections whose key is removed.

mod support;
use support::cli::*;
use support::idp::{Answer, Idp};
use support::lifecycle::*;
use support::*;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

/// `[auth]` with one discovery provider `idp` for `idp` (ES256, its CA),
/// `[auth.jwks]` lines and extra provider lines.
fn discovery_auth(idp: &Idp, jwks: &str, extra: &str) -> String {
    let startup = if jwks.contains("startup_timeout") {
        ""
    } else {
        "startup_timeout = \"2s\""
    };
    format!(
        r#"
[auth]
leeway = "2s"
[auth.jwks]
{startup}
{jwks}
[[auth.providers]]
name = "idp"
issuer = "{}"
discovery = true
ca_file = "{}"
algorithms = ["ES256"]
{extra}
"#,
        idp.issuer(),
        idp.ca_file
    )
}

/// A token of the IdP's issuer signed by `kid-a` (tests/keys/jwks-a.key).
fn token_a(idp: &Idp, sub: &str) -> String {
    jwks_a_as(
        Some("kid-a"),
        &claims(sub, 600, json!({"iss": idp.issuer()})),
    )
}

/// A token of the IdP's issuer signed with tests/keys/ec.key under `kid`
/// (the key [`ec_pem_jwk`] publishes under that kid).
fn token_ec(idp: &Idp, kid: &str, sub: &str) -> String {
    let key = EncodingKey::from_ec_pem(&key_file("ec.key")).expect("ec key");
    let c = claims(sub, 600, json!({"iss": idp.issuer()}));
    sign(Algorithm::ES256, &key, Some(kid), &c)
}

/// Sends the first auth frame and returns the close code and reason.
async fn refused(proxy: &TestProxy, token: &str) -> (u16, String) {
    let mut ws = connect(proxy, "/").await;
    ws.send(auth_frame(token)).await.expect("send auth");
    expect_close(&mut ws).await
}

#[tokio::test]
async fn discovery_gives_the_keys_and_a_foreign_issuer_is_refused() {
    let up = Upstream::start(true).await;
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, "", ""))
        .start()
        .await;
    let mut ws = authed(&p, "/", &token_a(&idp, "alice")).await;
    round_trip(&mut ws, "hello").await;

    let other = Idp::start(vec![jwk("kid-a")]).await;
    other.claim_issuer("https://evil.example");
    let err = proxy(up.addr)
        .auth(&discovery_auth(&other, "", ""))
        .try_start()
        .await
        .err()
        .expect("a foreign issuer must stop start-up");
    assert!(err.contains("\"idp\"") && err.contains("issuer"), "{err}");
}

#[tokio::test]
async fn a_new_kid_is_fetched_once_for_everyone_and_not_again_during_the_cooldown() {
    let up = Upstream::start(true).await;
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, "refresh_interval = \"1h\"", ""))
        .start()
        .await;
    assert_eq!(idp.fetches(), 1);
    // The IdP rotates; its answers are slow, so that every client below
    // meets the refetch in flight.
    idp.set_keys(vec![jwk("kid-a"), ec_pem_jwk("kid-new")]);
    idp.answer(Answer::Slow(Duration::from_millis(300)));
    let made_up = (0..50).map(|i| {
        let token = token_ec(&idp, &format!("made-up-{i}"), "mallory");
        let p = &p;
        async move { refused(p, &token).await }
    });
    let new_token = token_ec(&idp, "kid-new", "bob");
    let rotated = authed(&p, "/", &new_token);
    let (closes, mut ws) = tokio::join!(futures_util::future::join_all(made_up), rotated);
    for close in closes {
        assert_eq!(close, (1008, "invalid token".into()));
    }
    round_trip(&mut ws, "rotated").await;
    assert_eq!(idp.fetches(), 2, "one refetch for 51 unknown kids");

    // During the cooldown an unknown kid is refused at once, without a fetch:
    // a token that waited would be closed only at auth_timeout (5 s), so a
    // 2 s bound tells the two apart without depending on a loaded machine.
    let started = Instant::now();
    let close = refused(&p, &token_ec(&idp, "made-up-again", "mallory")).await;
    assert_eq!(close, (1008, "invalid token".into()));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn the_last_good_set_stays_while_the_idp_is_down() {
    let up = Upstream::start(true).await;
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    let jwks = "refresh_interval = \"200ms\"\nmin_refresh = \"50ms\"";
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, jwks, ""))
        .start()
        .await;
    idp.answer(Answer::Down);
    let seen = idp.fetches();
    idp.wait_fetches(seen + 2).await;
    let mut ws = authed(&p, "/", &token_a(&idp, "alice")).await;
    round_trip(&mut ws, "still verified").await;
    idp.answer(Answer::Garbage);
    idp.wait_fetches(idp.fetches() + 1).await;
    authed(&p, "/", &token_a(&idp, "bob")).await;
}

#[tokio::test]
async fn bad_answers_stop_start_up_with_the_provider_and_the_reason() {
    let up = Upstream::start(true).await;
    let mut enc = jwk("kid-a");
    enc["use"] = json!("enc");
    let cases = [
        (
            Answer::Garbage,
            vec![jwk("kid-a")],
            "not a valid JWKS document",
        ),
        (Answer::Oversized, vec![jwk("kid-a")], "over the size limit"),
        (
            Answer::Slow(Duration::from_secs(3)),
            vec![jwk("kid-a")],
            "timed out",
        ),
        (Answer::Set, vec![enc, jwk("kid-b")], "no usable key"),
    ];
    let jwks = "fetch_timeout = \"300ms\"\nstartup_timeout = \"800ms\"";
    for (answer, keys, reason) in cases {
        let idp = Idp::start(keys).await;
        idp.answer(answer);
        let err = proxy(up.addr)
            .auth(&discovery_auth(&idp, jwks, ""))
            .try_start()
            .await
            .err()
            .expect("start-up must fail");
        assert!(err.contains("\"idp\"") && err.contains(reason), "{err}");
    }
    // An allowed algorithm without a key of its family is checked when the
    // set loads (not by `wsguard check`, which has no set).
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    let auth = discovery_auth(&idp, jwks, "").replace(
        "algorithms = [\"ES256\"]",
        "algorithms = [\"ES256\", \"RS256\"]",
    );
    let err = proxy(up.addr).auth(&auth).try_start().await.err();
    let err = err.expect("start-up must fail");
    assert!(err.contains("no key for allowed algorithm RS256"), "{err}");
}

#[tokio::test]
async fn keys_for_encryption_or_other_algorithms_are_skipped() {
    let up = Upstream::start(true).await;
    let mut enc = jwk("kid-a");
    enc["use"] = json!("enc");
    let mut es384 = ec_pem_jwk("kid-384");
    es384["alg"] = json!("ES384");
    let idp = Idp::start(vec![enc, es384, jwk("kid-b"), ec_pem_jwk("good")]).await;
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, "", ""))
        .start()
        .await;
    authed(&p, "/", &token_ec(&idp, "good", "alice")).await;
    assert_eq!(
        refused(&p, &token_a(&idp, "alice")).await,
        (1008, "invalid token".into())
    );
    assert_eq!(
        refused(&p, &token_ec(&idp, "kid-384", "alice")).await,
        (1008, "invalid token".into())
    );
}

#[tokio::test]
async fn start_without_keys_refuses_tokens_until_the_keys_come() {
    let up = Upstream::start(true).await;
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    idp.answer(Answer::Down);
    let jwks = "start_without_keys = true\nrefetch_cooldown = \"0s\"\nrefresh_interval = \"1h\"\nmin_refresh = \"1h\"";
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, jwks, ""))
        .start()
        .await;
    assert_eq!(
        refused(&p, &token_a(&idp, "alice")).await,
        (1008, "invalid token".into())
    );
    idp.answer(Answer::Set);
    // The unknown kid asks for a refetch, which now brings the keys.
    authed(&p, "/", &token_a(&idp, "alice")).await;
}

/// Writes a configuration for `wsguard run`/`check` with `auth`.
fn config_file(dir: &tempfile::TempDir, upstream: std::net::SocketAddr, auth: &str) -> String {
    let path = dir.path().join("wsguard.toml");
    let text = format!(
        "[listener]\nbind = \"127.0.0.1:0\"\n[admin]\nbind = \"\"\n[upstream]\nurl = \"ws://{upstream}\"\n{auth}"
    );
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[tokio::test]
async fn run_refuses_to_start_naming_the_provider_that_has_no_keys() {
    let dead = Upstream::unused_addr().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = format!(
        "[auth.jwks]\nstartup_timeout = \"300ms\"\n[[auth.providers]]\nname = \"corp-idp\"\nalgorithms = [\"ES256\"]\n[[auth.providers.keys]]\nkind = \"jwks_url\"\nurl = \"https://{dead}/jwks\"\n"
    );
    let config = config_file(&dir, dead, &format!("[auth]\n{auth}"));
    let out = wsguard_child()
        .args(["run", "--config", &config])
        .stderr(std::process::Stdio::piped())
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("exits")
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"corp-idp\"") && err.contains("unreachable"),
        "{err}"
    );
}

#[tokio::test]
async fn check_online_prints_each_providers_kids_and_check_refuses_plain_http() {
    let up = Upstream::start(true).await;
    let idp = Idp::start(vec![jwk("kid-a"), ec_pem_jwk("kid-2")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(&dir, up.addr, &discovery_auth(&idp, "", ""));
    let out = wsguard_child()
        .args(["check", "--online", "--config", &config])
        .stdout(std::process::Stdio::piped())
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("exits")
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("provider \"idp\": \"kid-a\" ES256, \"kid-2\" ES256"),
        "{stdout}"
    );
    assert_eq!(idp.fetches(), 1);

    let auth = "[auth]\n[[auth.providers]]\nname = \"plain\"\nalgorithms = [\"ES256\"]\n[[auth.providers.keys]]\nkind = \"jwks_url\"\nurl = \"http://127.0.0.1:1/jwks\"\n";
    let config = config_file(&dir, up.addr, auth);
    let out = wsguard_child()
        .args(["check", "--config", &config])
        .stderr(std::process::Stdio::piped())
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("exits")
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("auth.providers[0].keys[0].url") && err.contains("http://"),
        "{err}"
    );
}

/// A proxy whose provider refreshes every 100 ms, with `kid-a` and `kid-new`.
async fn rotating(up: &Upstream, jwks: &str, session: &str) -> (Idp, TestProxy) {
    let idp = Idp::start(vec![jwk("kid-a"), ec_pem_jwk("kid-new")]).await;
    let jwks = format!("refresh_interval = \"100ms\"\nmin_refresh = \"50ms\"\n{jwks}");
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, &jwks, ""))
        .session(session)
        .start()
        .await;
    (idp, p)
}

#[tokio::test]
async fn a_removed_key_asks_its_connections_to_reauth_then_closes_them() {
    let up = Upstream::start(true).await;
    let (idp, p) = rotating(&up, "", "grace = \"500ms\"").await;
    let mut a = authed(&p, "/", &token_a(&idp, "alice")).await;
    let mut b = authed(&p, "/", &token_ec(&idp, "kid-new", "bob")).await;
    idp.set_keys(vec![ec_pem_jwk("kid-new")]);
    recv_type(&mut a, "auth_required").await;
    round_trip(&mut a, "relaying goes on").await;
    recv_type(&mut a, "TOKEN_EXPIRED").await;
    assert_eq!(expect_close(&mut a).await, (1008, "key revoked".into()));
    // The connection of the key still in the set is untouched.
    round_trip(&mut b, "untouched").await;
    expect_silence(&mut b, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_reauth_after_key_removal_keeps_the_connection() {
    let up = Upstream::start(true).await;
    let (idp, p) = rotating(&up, "", "grace = \"2s\"").await;
    let mut a = authed(&p, "/", &token_a(&idp, "alice")).await;
    idp.set_keys(vec![ec_pem_jwk("kid-new")]);
    recv_type(&mut a, "auth_required").await;
    send(&mut a, reauth("r1", &token_ec(&idp, "kid-new", "alice"))).await;
    recv_type(&mut a, "AUTHENTICATED").await;
    expect_silence(&mut a, Duration::from_millis(2500)).await;
    round_trip(&mut a, "still here").await;
}

#[tokio::test]
async fn a_reauth_waiting_for_a_refetch_does_not_pause_relaying() {
    let up = Upstream::start(true).await;
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, "refresh_interval = \"1h\"", ""))
        .start()
        .await;
    let mut ws = authed(&p, "/", &token_a(&idp, "alice")).await;
    idp.set_keys(vec![jwk("kid-a"), ec_pem_jwk("kid-new")]);
    idp.answer(Answer::Slow(Duration::from_millis(800)));
    send(&mut ws, reauth("r1", &token_ec(&idp, "kid-new", "alice"))).await;
    // While the refetch runs, data still goes both ways.
    round_trip(&mut ws, "during the refetch").await;
    let v = recv_type(&mut ws, "AUTHENTICATED").await;
    assert_eq!(v["payload"]["in_reply_to"], "r1", "{v}");
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn close_mode_closes_at_once_with_the_distinct_code() {
    let up = Upstream::start(true).await;
    let (idp, p) = rotating(
        &up,
        "on_key_removed = \"close\"",
        "close_codes = \"distinct\"",
    )
    .await;
    let mut a = authed(&p, "/", &token_a(&idp, "alice")).await;
    let mut b = authed(&p, "/", &token_ec(&idp, "kid-new", "bob")).await;
    idp.set_keys(vec![ec_pem_jwk("kid-new")]);
    assert_eq!(expect_close(&mut a).await, (4401, "key revoked".into()));
    round_trip(&mut b, "untouched").await;
}

#[tokio::test]
async fn the_cache_drops_verifications_by_a_removed_key() {
    let up = Upstream::start(true).await;
    let (idp, p) = rotating(&up, "", "").await;
    let token = token_a(&idp, "alice");
    drop(authed(&p, "/", &token).await);
    idp.set_keys(vec![ec_pem_jwk("kid-new")]);
    idp.wait_fetches(idp.fetches() + 2).await;
    assert_eq!(refused(&p, &token).await, (1008, "invalid token".into()));
}

/// Tokens checked outside a session (the upgrade request's, a protected
/// HTTP route's) with a kid the proxy has not seen ask for the refetch too,
/// and wait for it, instead of being refused until the next refresh.
#[tokio::test]
async fn upgrade_and_http_tokens_with_a_new_kid_wait_for_the_refetch() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let up = Upstream::start(true).await;
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    let p = proxy(up.addr)
        .auth(&discovery_auth(&idp, "refresh_interval = \"1h\"", ""))
        .legacy("header = true")
        .start()
        .await;
    idp.set_keys(vec![jwk("kid-a"), ec_pem_jwk("kid-new")]);
    let mut request = p.url("/").into_client_request().expect("request");
    let bearer = format!("Bearer {}", token_ec(&idp, "kid-new", "bob"));
    request
        .headers_mut()
        .insert("authorization", bearer.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    round_trip(&mut ws, "authenticated at the upgrade with a rotated key").await;
    assert_eq!(idp.fetches(), 2, "the unknown kid was fetched");

    let mut http = support::requests::HttpUpstream::start().await;
    let idp = Idp::start(vec![jwk("kid-a")]).await;
    let p = proxy(http.addr)
        .auth(&discovery_auth(&idp, "refresh_interval = \"1h\"", ""))
        .http("protect = true")
        .start()
        .await;
    idp.set_keys(vec![jwk("kid-a"), ec_pem_jwk("kid-new")]);
    let token = token_ec(&idp, "kid-new", "carol");
    let answer = support::requests::raw_http(
        p.addr,
        &format!("GET /api HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(answer.status, 201, "the upstream's answer: {answer:?}");
    assert_eq!(
        http.request().await.header("x-auth-subject").as_deref(),
        Some("carol")
    );
    assert_eq!(idp.fetches(), 2);
}
