//! The `wsguard` binary: `check` accepts a good configuration and refuses
//! broken ones with an error naming the key, `token` mints a verifiable
//! HS256 token, `demo` serves a working proxy in front of its echo
//! upstream, and the shipped `config/wsguard.toml` (when present) checks.

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use futures_util::SinkExt;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_wsguard");

/// The binary with a clean environment for its own variables.
fn wsguard() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("WSGUARD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// A configuration in a fresh folder, with a `secret` file (the test
/// secret) beside it. `@KEYS@` is the test keys folder.
struct ConfigFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

fn config_file(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).expect("write secret");
    let path = dir.path().join("wsguard.toml");
    // The admin listener on a free port (its default, 9901, is a fixed port).
    let text = if text.contains("[admin]") {
        text.to_owned()
    } else {
        format!("{text}\n[admin]\nbind = \"127.0.0.1:0\"\n")
    };
    std::fs::write(&path, text.replace("@KEYS@", &keys_dir())).expect("write config");
    ConfigFile { dir, path }
}

/// `wsguard check --config <path>`, run from another folder so that
/// relative key paths must be resolved against the file's folder.
fn check(path: &Path) -> Output {
    let elsewhere = std::env::temp_dir();
    wsguard()
        .current_dir(elsewhere)
        .args(["check", "--config"])
        .arg(path)
        .output()
        .expect("run wsguard check")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A valid configuration; the HMAC key's file is relative to the config file.
const GOOD: &str = r#"
[listener]
bind = "127.0.0.1:0"
trusted_proxies = ["10.0.0.0/8"]

[upstream]
url = "ws://127.0.0.1:9000/app"
forward_token = false
[upstream.claim_headers]
email = "X-Auth-Email"

[auth]
leeway = "30s"
[[auth.providers]]
name = "internal"
issuer = "https://internal.example"
algorithms = ["HS256"]
required_claims = { scope = "chat" }
[[auth.providers.keys]]
kind = "hmac"
secret_file = "secret"
[[auth.providers]]
name = "idp"
issuer = "https://idp.example"
audience = ["wsguard"]
algorithms = ["RS256", "ES256", "EdDSA"]
[[auth.providers.keys]]
kind = "rsa"
pem_file = "@KEYS@/rsa.pub.pem"
[[auth.providers.keys]]
kind = "ec"
pem_file = "@KEYS@/ec.pub.pem"
[[auth.providers.keys]]
kind = "ed25519"
pem_file = "@KEYS@/ed25519.pub.pem"
[[auth.providers]]
name = "jwks"
algorithms = ["ES256", "RS256"]
[[auth.providers.keys]]
kind = "jwks"
file = "@KEYS@/jwks.json"

[session]
auth_timeout = "5s"
reauth_lead = "1m"
grace = "10s"
"#;

/// Checks that `text` (a variation of a valid config) is refused and that
/// stderr contains every one of `needles`.
fn refused(text: &str, needles: &[&str]) {
    let config = config_file(text);
    let out = check(&config.path);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "check accepted a broken config:\n{text}\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "stderr lacks {needle:?}:\n{err}\nconfig:\n{text}"
        );
    }
}

/// The good configuration with one replacement (which must apply).
fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from:?} not in GOOD");
    GOOD.replacen(from, to, 1)
}

// ---- check ----------------------------------------------------------------

#[test]
fn check_accepts_a_good_config() {
    let config = config_file(GOOD);
    let out = check(&config.path);
    assert!(out.status.success(), "stderr:\n{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), format!("{}: ok", config.path.display()));
    drop(config.dir);
}

#[test]
fn check_reads_wsguard_config_from_the_environment() {
    let config = config_file(GOOD);
    let out = wsguard()
        .env("WSGUARD_CONFIG", &config.path)
        .arg("check")
        .output()
        .expect("run");
    assert!(out.status.success(), "stderr:\n{}", stderr(&out));
}

#[test]
fn check_without_a_config_fails() {
    let out = wsguard().arg("check").output().expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}

#[test]
fn check_refuses_a_missing_file() {
    let out = check(Path::new("/nonexistent/wsguard.toml"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read /nonexistent/wsguard.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_refuses_alg_none() {
    refused(
        &good_with(
            r#"algorithms = ["HS256"]"#,
            r#"algorithms = ["HS256", "none"]"#,
        ),
        &[r#"auth.providers[0].algorithms: "none" is not allowed"#],
    );
}

#[test]
fn check_refuses_an_unknown_algorithm() {
    refused(
        &good_with(r#"algorithms = ["HS256"]"#, r#"algorithms = ["HS257"]"#),
        &["auth.providers[0].algorithms", "HS257"],
    );
}

#[test]
fn check_refuses_an_algorithm_without_a_key_of_its_kind() {
    refused(
        &good_with(
            r#"algorithms = ["HS256"]"#,
            r#"algorithms = ["HS256", "RS256"]"#,
        ),
        &["auth.providers[0].algorithms", "RS256"],
    );
}

#[test]
fn check_refuses_an_unknown_key() {
    refused(
        &good_with("grace = \"10s\"", "grace = \"10s\"\nauth_timout = \"5s\""),
        &["auth_timout"],
    );
}

#[test]
fn check_refuses_an_unknown_key_in_a_provider() {
    refused(
        &good_with(
            "name = \"internal\"",
            "name = \"internal\"\nissuers = \"x\"",
        ),
        &["issuers"],
    );
}

#[test]
fn check_refuses_a_bad_duration() {
    refused(
        &good_with("auth_timeout = \"5s\"", "auth_timeout = \"5 parsecs\""),
        &["auth_timeout"],
    );
}

#[test]
fn check_refuses_a_zero_auth_timeout() {
    refused(
        &good_with("auth_timeout = \"5s\"", "auth_timeout = \"0s\""),
        &["session.auth_timeout: must be more than 0s"],
    );
}

#[test]
fn check_refuses_a_jwks_ca_file_without_certificates() {
    refused(
        &good_with(
            "name = \"jwks\"\nalgorithms = [\"ES256\", \"RS256\"]\n[[auth.providers.keys]]\nkind = \"jwks\"\nfile = \"@KEYS@/jwks.json\"",
            "name = \"jwks\"\nalgorithms = [\"ES256\", \"RS256\"]\nca_file = \"secret\"\n[[auth.providers.keys]]\nkind = \"jwks_url\"\nurl = \"https://127.0.0.1:9/jwks\"",
        ),
        &["auth.providers[2].ca_file:", "holds no PEM certificate"],
    );
}

#[test]
fn check_refuses_a_missing_secret_env() {
    let var = "WSGUARD_CLI_TEST_UNSET_SECRET";
    let config = config_file(&good_with(
        "secret_file = \"secret\"",
        &format!("secret_env = \"{var}\""),
    ));
    let out = wsguard()
        .env_remove(var)
        .args(["check", "--config"])
        .arg(&config.path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "auth.providers[0].keys[0].secret_env: environment variable {var} is not set"
        )),
        "{err}"
    );

    // The same file checks once the variable is set.
    let out = wsguard()
        .env(var, SECRET)
        .args(["check", "--config"])
        .arg(&config.path)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_refuses_a_short_hmac_secret_without_printing_it() {
    let config = config_file(GOOD);
    let short = "tiny-secret-xyzzy";
    std::fs::write(config.dir.path().join("secret"), short).expect("write");
    let out = check(&config.path);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("auth.providers[0].keys[0]: the HMAC secret is shorter than 32 bytes"),
        "{err}"
    );
    assert!(!err.contains(short), "the secret was printed: {err}");
}

#[test]
fn check_refuses_a_pem_file_that_does_not_exist() {
    refused(
        &good_with("@KEYS@/ec.pub.pem", "@KEYS@/no-such-key.pem"),
        &[
            "auth.providers[1].keys[1].pem_file: cannot read",
            "no-such-key.pem",
        ],
    );
}

#[test]
fn check_refuses_a_relative_pem_file_missing_beside_the_config() {
    refused(
        &good_with("@KEYS@/ec.pub.pem", "ec.pub.pem"),
        &["auth.providers[1].keys[1].pem_file: cannot read"],
    );
}

#[test]
fn check_refuses_a_private_key_as_pem_file() {
    refused(
        &good_with("@KEYS@/rsa.pub.pem", "@KEYS@/rsa.key"),
        &["auth.providers[1].keys[0].pem_file: this is a private key"],
    );
}

#[test]
fn check_refuses_a_key_of_the_wrong_kind() {
    // An RSA public key where an EC key is expected.
    refused(
        &good_with("@KEYS@/ec.pub.pem", "@KEYS@/rsa.pub.pem"),
        &["auth.providers[1].keys[1].pem_file: not a usable public key PEM"],
    );
}

#[test]
fn check_refuses_a_missing_jwks_file() {
    refused(
        &good_with("@KEYS@/jwks.json", "@KEYS@/missing.json"),
        &["auth.providers[2].keys[0].file: cannot read"],
    );
}

#[test]
fn check_names_the_key_of_each_bad_value() {
    let session = |line: &str| good_with("[session]\n", &format!("[session]\n{line}\n"));
    let appended = |section: &str| format!("{GOOD}\n{section}\n");
    let cases = [
        (
            good_with("[listener]\n", "[listener]\nworker_threads = 0\n"),
            "listener.worker_threads: must be between 1 and 1024",
        ),
        (
            session("max_missed_pongs = 0"),
            "session.max_missed_pongs: must be at least 1",
        ),
        (
            session("max_reauth_failures = 0"),
            "session.max_reauth_failures: must be at least 1",
        ),
        (
            session("slow_consumer_timeout = \"0s\""),
            "session.slow_consumer_timeout: must be more than 0s",
        ),
        (
            session("close_timeout = \"11years\""),
            "session.close_timeout: must be at most ten years",
        ),
        (
            session("max_auth_frame_bytes = 0"),
            "session.max_auth_frame_bytes: must be between 1 and websocket.max_message_bytes",
        ),
        (
            appended("[websocket]\nmax_message_bytes = 124"),
            "websocket.max_message_bytes: must be at least 125",
        ),
        (
            appended("[websocket]\nmax_message_bytes = 2147483648"),
            "websocket.max_message_bytes: must be at most 1 GiB",
        ),
        (
            appended("[websocket]\nmax_frame_bytes = 0"),
            "websocket.max_frame_bytes: must be between 1 and websocket.max_message_bytes",
        ),
        (
            appended("[websocket]\nread_buffer_bytes = 255"),
            "websocket.read_buffer_bytes: must be between 256 and 65536",
        ),
        (
            appended("[dialect]\nauth = [\"\"]"),
            "dialect.auth: needs at least one frame type",
        ),
        (
            appended("[dialect]\ntoken_path = \"payload..token\""),
            "dialect.token_path: must be a dotted path",
        ),
        (
            appended("[dialect]\nreauth = [\"REAUTH\", \"re auth\"]"),
            "dialect.reauth[1]: must be at most 64 characters of A-Z a-z 0-9 _ . : -",
        ),
        (
            appended("[dialect]\nidentity_refreshed = \"id\\\\refreshed\""),
            "dialect.identity_refreshed: must be at most 64 characters",
        ),
        (
            appended("[upstream.identity_headers]\nsubject = \"X Subject\""),
            "upstream.identity_headers.subject: \"X Subject\" is not a valid header name",
        ),
    ];
    for (text, needle) in cases {
        refused(&text, &[needle]);
    }
}

/// `check` of the good configuration whose JWKS provider reads `keys`,
/// written as `jwks.json` beside the configuration.
fn check_with_jwks(keys: &[Value]) -> Output {
    let config = config_file(&good_with("@KEYS@/jwks.json", "jwks.json"));
    let jwks = json!({ "keys": keys }).to_string();
    std::fs::write(config.dir.path().join("jwks.json"), jwks).expect("write jwks");
    check(&config.path)
}

#[test]
fn check_refuses_a_short_hmac_secret_in_a_jwks_without_printing_it() {
    use base64::Engine;
    let short = "jwks-secret-of-31-bytes-0123456";
    let oct = json!({
        "kty": "oct",
        "kid": "hs",
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(short),
    });
    let out = check_with_jwks(&[jwk("kid-a"), oct, jwk("kid-b")]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "check accepted a 31-byte HMAC secret"
    );
    assert!(
        err.contains(
            "auth.providers[2].keys[0].file: keys[1] (kid \"hs\") is an HMAC secret shorter than 32 bytes"
        ),
        "{err}"
    );
    assert!(!err.contains(short), "the secret was printed: {err}");
}

#[test]
fn check_refuses_a_jwks_without_a_key_for_signatures() {
    let mut enc_a = jwk("kid-a");
    enc_a["use"] = json!("enc");
    let mut enc_b = jwk("kid-b");
    enc_b["key_ops"] = json!(["encrypt", "wrapKey"]);
    let out = check_with_jwks(&[enc_a, enc_b]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "check accepted a JWKS of encryption keys"
    );
    assert!(
        err.contains(
            "auth.providers[2].keys[0].file: the JWKS has no key for verifying signatures"
        ),
        "{err}"
    );
}

#[test]
fn check_refuses_an_algorithm_whose_only_keys_name_another_alg() {
    // kid-a is the JWKS's only EC key, and its JWK says ES384: no key may
    // verify the ES256 that the provider allows.
    let mut es384 = jwk("kid-a");
    es384["alg"] = json!("ES384");
    let out = check_with_jwks(&[es384, jwk("kid-b")]);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "check accepted ES256 without a key for it"
    );
    assert!(
        err.contains("auth.providers[2].algorithms: ES256 has no key of its kind"),
        "{err}"
    );
}

#[test]
fn check_accepts_a_jwks_with_an_encryption_key_without_kid() {
    // Identity providers publish encryption keys beside signing keys; one
    // that can never verify needs no kid.
    let mut enc = jwk("kid-b");
    enc["use"] = json!("enc");
    enc["alg"] = json!("RSA-OAEP-256");
    enc.as_object_mut().map(|k| k.remove("kid"));
    let out = check_with_jwks(&[enc, jwk("kid-a"), jwk("kid-b")]);
    assert!(out.status.success(), "stderr:\n{}", stderr(&out));
}

#[test]
fn check_refuses_an_upstream_url_with_the_wrong_scheme() {
    refused(
        &good_with("ws://127.0.0.1:9000/app", "http://127.0.0.1:9000/app"),
        &["upstream.url: must start with ws://"],
    );
}

#[test]
fn check_refuses_a_bad_trusted_proxy() {
    refused(
        &good_with("\"10.0.0.0/8\"", "\"10.0.0.0/33\""),
        &["trusted_proxies"],
    );
}

#[test]
fn check_refuses_duplicate_issuers() {
    refused(
        &good_with("https://idp.example", "https://internal.example"),
        &["auth.providers[1].issuer: another provider already has this issuer"],
    );
}

#[test]
fn check_refuses_a_bad_claim_header_name() {
    refused(
        &good_with("email = \"X-Auth-Email\"", "email = \"X Auth Email\""),
        &["upstream.claim_headers.email", "is not a valid header name"],
    );
}

#[test]
fn check_refuses_no_providers() {
    let start = GOOD.find("[[auth.providers]]").expect("providers");
    let end = GOOD.find("[session]").expect("session");
    let text = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    refused(&text, &["providers"]);
}

#[test]
fn shipped_example_config_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wsguard.toml");
    if !path.exists() {
        eprintln!(
            "SKIPPED: {} does not exist (yet); nothing to check",
            path.display()
        );
        return;
    }
    let text = std::fs::read_to_string(&path).expect("read config/wsguard.toml");
    let mut cmd = wsguard();
    // Give every `secret_env` the file names a (dummy) secret.
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("secret_env") {
            if let Some(var) = rest.trim_start().strip_prefix('=') {
                let var = var.trim().trim_matches('"');
                if !var.is_empty() {
                    cmd.env(var, SECRET);
                }
            }
        }
    }
    let out = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "config/wsguard.toml does not check:\n{}",
        stderr(&out)
    );
}

// ---- token ----------------------------------------------------------------

fn decode_hs256(token: &str) -> Map<String, Value> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub", "iat"]);
    decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("the minted token verifies with the secret")
    .claims
}

#[test]
fn token_mints_a_verifiable_hs256_token() {
    let before = now();
    let out = wsguard()
        .env("WSGUARD_CLI_TEST_SECRET", SECRET)
        .args([
            "token",
            "--secret-env",
            "WSGUARD_CLI_TEST_SECRET",
            "--sub",
            "alice",
            "--ttl",
            "90s",
            "--claim",
            "scope=chat",
            "--claim",
            "roles=[\"member\",\"admin\"]",
            "--claim",
            "level=3",
        ])
        .output()
        .expect("run");
    let after = now();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert_eq!(token.split('.').count(), 3, "{token}");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, Algorithm::HS256);

    let c = decode_hs256(token);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["scope"], "chat");
    assert_eq!(c["roles"], json!(["member", "admin"]));
    assert_eq!(c["level"], 3);
    let iat = c["iat"].as_i64().expect("iat");
    let exp = c["exp"].as_i64().expect("exp");
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} not in {before}..={after}"
    );
    assert_eq!(exp - iat, 90);
    let mut keys: Vec<&str> = c.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["exp", "iat", "level", "roles", "scope", "sub"]);
}

#[test]
fn token_default_ttl_is_15_minutes() {
    let out = wsguard()
        .env("WSGUARD_CLI_TEST_SECRET2", SECRET)
        .args([
            "token",
            "--secret-env",
            "WSGUARD_CLI_TEST_SECRET2",
            "--sub",
            "bob",
        ])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let c = decode_hs256(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(c["sub"], "bob");
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        900
    );
}

#[test]
fn token_with_an_unset_secret_env_fails() {
    let var = "WSGUARD_CLI_TEST_UNSET_TOKEN_SECRET";
    let out = wsguard()
        .env_remove(var)
        .args(["token", "--secret-env", var, "--sub", "alice"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains(&format!("environment variable {var} is not set")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn token_refuses_a_malformed_claim() {
    let out = wsguard()
        .env("WSGUARD_CLI_TEST_SECRET3", SECRET)
        .args([
            "token",
            "--secret-env",
            "WSGUARD_CLI_TEST_SECRET3",
            "--sub",
            "alice",
            "--claim",
            "novalue",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("novalue"), "{}", stderr(&out));
}

// ---- demo -----------------------------------------------------------------

/// Starts `wsguard demo` on a free port and reads its URL and token.
async fn spawn_demo(rust_log: &str, stderr: Stdio) -> (tokio::process::Child, String, String) {
    let mut command = support::cli::wsguard_child();
    command.env("RUST_LOG", rust_log).stderr(stderr);
    let demo = support::cli::demo_with(command, &[]).await;
    (demo.child, demo.url, demo.token)
}

#[tokio::test]
async fn demo_serves_an_authenticated_round_trip() {
    let (mut child, url, token) = spawn_demo("warn", Stdio::null()).await;
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    assert!(!url.starts_with("ws://127.0.0.1:0/"), "{url}");

    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("connect timed out")
        .expect("connect to the demo proxy");
    ws.send(auth_frame(&token)).await.expect("send auth");
    let authed = recv_json(&mut ws).await;
    assert_eq!(authed["type"], "AUTHENTICATED", "{authed}");
    assert_eq!(authed["payload"]["sub"], "alice", "{authed}");
    let welcome = recv_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["payload"]["sub"], "alice", "{welcome}");
    ws.send(Message::text("hello demo")).await.expect("send");
    assert_eq!(recv(&mut ws).await, Message::text("hello demo"));

    // A token the demo did not mint is refused.
    let (mut other, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    other
        .send(auth_frame(&hs256("mallory", 60)))
        .await
        .expect("send auth");
    assert_eq!(
        expect_close(&mut other).await,
        (1008, "invalid token".to_string())
    );

    child.kill().await.expect("kill the demo");
}

#[tokio::test]
async fn trace_logs_carry_no_token_and_no_query_string() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let stderr = Stdio::from(std::fs::File::create(&log).expect("log file"));
    let (mut child, url, token) = spawn_demo("trace", stderr).await;
    // The token travels in the first frame, in a REAUTH, and in the query.
    let with_query = format!("{url}?room=sekrit-room-42&access_token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async(with_query.as_str())
        .await
        .expect("connect");
    ws.send(auth_frame(&token)).await.expect("send auth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    let reauth = json!({"type": "REAUTH", "payload": {"token": token}}).to_string();
    ws.send(Message::text(reauth)).await.expect("send reauth");
    // The upstream's welcome and the REAUTH's answer, in either order.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(
            recv_json(&mut ws).await["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    seen.sort();
    assert_eq!(seen, ["AUTHENTICATED", "welcome"]);
    child.kill().await.expect("kill the demo");
    let logged = std::fs::read_to_string(&log).expect("read log");
    assert!(
        logged.contains("authenticated"),
        "debug lines were not logged:\n{logged}"
    );
    let signature = token.rsplit('.').next().unwrap_or_default();
    assert!(!logged.contains(signature), "the token reached the log");
    assert!(
        !logged.contains("sekrit-room-42"),
        "the query string reached the log"
    );
}

// ---- run ------------------------------------------------------------------

/// `wsguard --config FILE` serves on its workers and exits cleanly on ctrl-c
/// (a drain) once its client has left.
#[cfg(unix)]
#[tokio::test]
async fn run_serves_on_workers_and_stops_on_ctrl_c() {
    let upstream = Upstream::start(true).await;
    let config = config_file(&format!(
        r#"
[listener]
bind = "127.0.0.1:0"
worker_threads = 2

[upstream]
url = "ws://{}"

{BINARY_PROVIDER}"#,
        upstream.addr
    ));
    let mut child = tokio::process::Command::new(BIN)
        .env_remove("WSGUARD_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .arg("--config")
        .arg(&config.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn wsguard");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let listening = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains("wsguard listening") {
                return line;
            }
        }
        panic!("wsguard exited before listening");
    })
    .await
    .expect("no `wsguard listening` line in time");
    assert!(listening.contains("workers=2"), "{listening}");
    let addr = listening
        .split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {listening}"));

    let url = format!("ws://{addr}/chat");
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("connect timed out")
        .expect("connect");
    ws.send(auth_frame(&hs256("alice", 300)))
        .await
        .expect("send auth");
    assert_eq!(recv_json(&mut ws).await["type"], "AUTHENTICATED");
    ws.send(Message::text("over a worker")).await.expect("send");
    assert_eq!(recv(&mut ws).await, Message::text("over a worker"));

    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    // SIGINT drains: the hint, and the process exits once the client has left.
    assert_eq!(recv_json(&mut ws).await["type"], "reconnect");
    ws.close(None).await.expect("close");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("wsguard did not exit after SIGINT")
        .expect("wait");
    assert!(status.success(), "{status}");
    // The log ends with the process.
    while let Ok(Some(_)) = lines.next_line().await {}
}

// ---- first hour: errors, help, token flags, colours, example key ------------

#[test]
fn a_config_error_is_one_line_even_with_rust_backtrace() {
    let var = "WSGUARD_CLI_TEST_UNSET_BACKTRACE";
    let config = config_file(&good_with(
        "secret_file = \"secret\"",
        &format!("secret_env = \"{var}\""),
    ));
    for command in [&["check"][..], &["run"][..], &[][..]] {
        let out = wsguard()
            .env_remove(var)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .args(command)
            .arg("--config")
            .arg(&config.path)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{command:?}: not one line:\n{err}");
        assert!(
            lines[0].starts_with("wsguard: ")
                && lines[0].contains("auth.providers[0].keys[0].secret_env"),
            "{err}"
        );
    }
}

#[test]
fn config_is_only_in_the_help_of_subcommands_that_read_it() {
    let help = |command: &[&str]| {
        let out = wsguard().args(command).arg("--help").output().expect("run");
        assert!(out.status.success(), "{command:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for command in [&["check"][..], &["run"][..], &[][..]] {
        assert!(help(command).contains("--config"), "{command:?}");
    }
    for command in ["token", "demo", "connect"] {
        assert!(
            !help(&[command]).contains("--config"),
            "{command}:\n{}",
            help(&[command])
        );
    }
}

/// `wsguard token` with `secret` in an environment variable and more flags.
fn token_with(secret: &str, flags: &[&str]) -> Output {
    wsguard()
        .env("WSGUARD_CLI_TEST_SECRET4", secret)
        .args([
            "token",
            "--secret-env",
            "WSGUARD_CLI_TEST_SECRET4",
            "--sub",
            "alice",
        ])
        .args(flags)
        .output()
        .expect("run")
}

#[test]
fn token_refuses_a_secret_the_proxy_would_refuse() {
    let min = wsguard::auth::MIN_HMAC_SECRET_BYTES;
    let short = "s".repeat(min - 1);
    let out = token_with(&short, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains(&format!("shorter than {min} bytes")), "{err}");
    assert!(!err.contains(&short), "the secret was printed: {err}");
    // Exactly the minimum is accepted, as the proxy accepts it.
    assert!(token_with(&"s".repeat(min), &[]).status.success());
}

#[test]
fn token_refuses_a_zero_ttl() {
    for ttl in ["0s", "500ms"] {
        let out = token_with(SECRET, &["--ttl", ttl]);
        assert_eq!(out.status.code(), Some(1), "{ttl}");
        assert!(
            stderr(&out).contains("--ttl must be at least 1s"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn token_sets_iss_aud_and_kid() {
    let out = token_with(
        SECRET,
        &[
            "--iss",
            "https://internal.example.com/",
            "--aud",
            "chat",
            "--kid",
            "hs-1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.kid.as_deref(), Some("hs-1"));
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["chat"]);
    validation.set_issuer(&["https://internal.example.com/"]);
    let claims = decode::<Map<String, Value>>(
        &token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("verifies with iss and aud")
    .claims;
    assert_eq!(claims["aud"], "chat");
    // Several --aud give an array.
    let out = token_with(SECRET, &["--aud", "a", "--aud", "b"]);
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let payload = token.split('.').nth(1).expect("payload");
    let json: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(json["aud"], json!(["a", "b"]));
}

#[test]
fn check_warns_when_the_only_key_is_the_example_key() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wsguard.toml");
    let out = check(&shipped);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: the only key configured is the throwaway example key"),
        "{err}"
    );
    // A configuration with a real key beside it does not warn.
    let example = format!(
        "{}/config/keys/example-es256.pub.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let config = config_file(&good_with("@KEYS@/ec.pub.pem", &example));
    let out = check(&config.path);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// Logs written to a pipe or a file carry no ANSI escape sequences.
#[cfg(unix)]
#[tokio::test]
async fn logs_have_no_colours_when_not_a_terminal() {
    let upstream = Upstream::start(true).await;
    let config = config_file(&format!(
        "[listener]\nbind = \"127.0.0.1:0\"\nworker_threads = 1\n[upstream]\nurl = \"ws://{}\"\n\
         [[auth.providers]]\nname = \"t\"\nalgorithms = [\"HS256\"]\n\
         [[auth.providers.keys]]\nkind = \"hmac\"\nsecret_file = \"secret\"\n",
        upstream.addr
    ));
    let mut child = support::cli::wsguard_child()
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .arg("--config")
        .arg(&config.path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsguard");
    let mut err = support::cli::Output::new(child.stderr.take().expect("stderr"));
    let line = err
        .until("wsguard listening", |l| l.contains("wsguard listening"))
        .await;
    assert!(!line.contains('\u{1b}'), "ANSI escapes in {line:?}");
    assert!(line.contains("INFO"), "{line}");
}

#[test]
fn demo_refuses_a_zero_token_ttl() {
    let out = wsguard()
        .args(["demo", "--listen", "127.0.0.1:0", "--token-ttl", "0s"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "wsguard: --token-ttl must be at least 1s"
    );
}
