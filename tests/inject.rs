//! `wsguard inject` (the real binary): golden files in `tests/inject/`
//! (`NAME.in.yaml` → `NAME.out.yaml`, standard error in `NAME.err`),
//! idempotence, `--annotated-only`, the documents left out, and the
//! `--listen` / `--upstream-url` flags of `wsguard run` that the injected
//! sidecar uses. `WSGUARD_BLESS=1 cargo test --test inject` rewrites the
//! golden files (read the diff before committing it).

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// The golden files' folder.
fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inject")
}

/// `wsguard inject ARGS` on `input` (given on standard input).
fn inject(input: &str, args: &[&str]) -> Output {
    use std::io::Write;
    let mut child = Command::new(cli::BIN)
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsguard inject");
    let mut stdin = child.stdin.take().expect("stdin");
    // A child refusing its flags exits before reading: its answer is what counts.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().expect("wsguard inject")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// Compares `actual` with the golden file `name` (or rewrites it).
fn golden(name: &str, actual: &str) {
    let path = dir().join(name);
    if std::env::var_os("WSGUARD_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (WSGUARD_BLESS=1 writes it)", path.display()));
    assert!(
        expected == actual,
        "{name} differs from the output:\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

/// Runs case `name` with `args` from its file (`-f`), checks the exit
/// status, stdout and stderr against the golden files, and that injecting
/// the output again changes nothing and reports nothing.
fn case(name: &str, args: &[&str], code: i32) -> String {
    let input = dir().join(format!("{name}.in.yaml"));
    let mut all = vec!["-f", input.to_str().expect("path")];
    all.extend_from_slice(args);
    let out = Command::new(cli::BIN)
        .arg("inject")
        .args(&all)
        .stdin(Stdio::null())
        .output()
        .expect("run wsguard inject");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    golden(&format!("{name}.out.yaml"), &stdout);
    golden(&format!("{name}.err"), &stderr);
    let again = inject(&stdout, args);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        text(&again.stdout),
        stdout,
        "{name}: a second inject changed the output"
    );
    let warnings = text(&again.stderr);
    assert!(!warnings.contains("left out"), "{warnings}");
    stdout
}

/// Several documents: the Deployment injected (its named port taken by
/// wsguard, the app's renamed `http-app`), the ConfigMap and Services
/// passing through unchanged (YAML traps kept), a warning for the Service
/// that targets the app's port by number.
#[test]
fn multi_document_file() {
    let out = case("multi", &[], 0);
    assert!(out.contains("FEATURE_X: \"on\""), "{out}");
    assert!(out.contains("defaultMode: 420"), "{out}");
    assert!(out.contains("x-unknown-field: kept"), "{out}");
    assert!(out.contains("  zeta: 1\n  alpha:"), "{out}");
    assert!(out.contains("maxMembers: 9007199254740993"), "{out}");
}

/// Existing init containers and native sidecars stay first; the app's
/// port is chosen by name; a longer grace period is kept.
#[test]
fn existing_init_containers_and_sidecars() {
    let out = case("sidecars", &["--app-port", "ws"], 0);
    assert!(out.contains("- ws://127.0.0.1:7000"), "{out}");
    assert!(out.contains("terminationGracePeriodSeconds: 120"), "{out}");
}

/// Unnamed ports (by number), a ReplicaSet, and a Job whose int64 field
/// is over 2^53.
#[test]
fn numbered_ports_replicaset_and_job() {
    let out = case("numbered", &["--app-port", "9000"], 0);
    assert!(
        out.contains("activeDeadlineSeconds: 9007199254740993"),
        "{out}"
    );
}

/// A CronJob's pod template is under `spec.jobTemplate.spec.template`.
#[test]
fn cronjob() {
    let out = case("cronjob", &[], 0);
    assert!(out.contains("- ws://127.0.0.1:8080"), "{out}");
}

/// A `List`'s items are injected in place.
#[test]
fn list() {
    case("list", &["--image", "registry.example/wsguard:0.1.0"], 0);
}

/// Only `wsguard.io/inject: "enabled"` templates, with their per-workload
/// annotations; `disabled` is always skipped.
#[test]
fn annotated_only() {
    let out = case("annotated", &["--annotated-only"], 0);
    assert_eq!(out.matches("- name: wsguard\n").count(), 1, "{out}");
    assert!(out.contains("name: wsguard-opted-in"), "{out}");
    // Without --annotated-only, "disabled" is still skipped.
    let input = std::fs::read_to_string(dir().join("annotated.in.yaml")).expect("read");
    let all = text(&inject(&input, &[]).stdout);
    assert_eq!(all.matches("- name: wsguard\n").count(), 2, "{all}");
}

/// hostNetwork, a container already named wsguard, no port, malformed
/// YAML: each reported with its document, left out, exit 1; the good
/// document still written; `--skip-errors` exits 0.
#[test]
fn documents_that_cannot_be_injected() {
    let out = case("errors", &[], 1);
    assert_eq!(out.matches("---\n").count(), 1, "{out}");
    let input = std::fs::read_to_string(dir().join("errors.in.yaml")).expect("read");
    let skipped = inject(&input, &["--skip-errors"]);
    assert_eq!(skipped.status.code(), Some(0));
    assert_eq!(text(&skipped.stdout), out);
}

/// Bad flags and unreadable input are one line and exit 1 (or clap's 2).
#[test]
fn unreadable_input() {
    let out = Command::new(cli::BIN)
        .args(["inject", "-f", "/nonexistent/deploy.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("wsguard: -f /nonexistent/deploy.yaml: cannot read"));
    let bad = inject("kind: Pod\n", &["--proxy-port", "http"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

/// `wsguard run --listen ADDR --upstream-url URL` overrides `listener.bind`
/// (held by another socket here) and `upstream.url` (a dead address here),
/// also after a reload (SIGHUP) has read the file again.
#[tokio::test]
async fn run_overrides_listen_and_upstream_url() {
    let mut upstream = Upstream::start(true).await;
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = Upstream::unused_addr().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), SECRET).expect("write secret");
    let config = dir.path().join("wsguard.toml");
    let toml = format!(
        "[listener]\nbind = \"{}\"\nworker_threads = 1\n[upstream]\nurl = \"ws://{dead}\"\n\
         [admin]\nbind = \"\"\n[[auth.providers]]\nname = \"t\"\nalgorithms = [\"HS256\"]\n\
         [[auth.providers.keys]]\nkind = \"hmac\"\nsecret_file = \"secret\"\n",
        held.local_addr().expect("addr")
    );
    std::fs::write(&config, toml).expect("write config");
    let upstream_url = format!("ws://{}", upstream.addr);
    let mut child = cli::wsguard_child()
        .env("RUST_LOG", "info")
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--upstream-url", &upstream_url])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsguard run");
    let mut err = cli::Output::new(child.stderr.take().expect("stderr"));
    let line = err
        .until("wsguard listening", |l| l.contains("wsguard listening"))
        .await;
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("addr= in the listening line");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .expect("connect to the proxy");
    ws.send(auth_frame(&hs256("alice", 600)))
        .await
        .expect("send auth");
    let ok = recv_json(&mut ws).await;
    assert_eq!(ok["type"], "AUTHENTICATED", "{ok}");
    let mut up = upstream.accept().await;
    relayed_both_ways(&mut ws, &mut up, &[Message::text("hello")]).await;

    // A reload reads the file again and applies the overrides again: a new
    // connection still reaches --upstream-url, not the file's dead address.
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    err.until("configuration reloaded", |l| {
        l.contains("configuration reloaded")
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .expect("connect to the proxy after the reload");
    ws.send(auth_frame(&hs256("bob", 600)))
        .await
        .expect("send auth");
    let ok = recv_json(&mut ws).await;
    assert_eq!(ok["type"], "AUTHENTICATED", "{ok}");
    let mut up = upstream.accept().await;
    relayed_both_ways(&mut ws, &mut up, &[Message::text("after the reload")]).await;
}

/// A bad `--upstream-url` is refused by the one validation, naming the key.
#[test]
fn run_refuses_a_bad_upstream_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), SECRET).expect("write secret");
    let config = dir.path().join("wsguard.toml");
    let toml = "[upstream]\nurl = \"ws://127.0.0.1:9\"\n[admin]\nbind = \"\"\n\
                [[auth.providers]]\nname = \"t\"\nalgorithms = [\"HS256\"]\n\
                [[auth.providers.keys]]\nkind = \"hmac\"\nsecret_file = \"secret\"\n";
    std::fs::write(&config, toml).expect("write config");
    let out = Command::new(cli::BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--upstream-url", "http://127.0.0.1:9000"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("upstream.url"), "{err}");
}

/// `examples/kubernetes/deployment.yaml` is what `wsguard inject` makes of
/// `app.yaml` (the same tree, comments aside).
#[test]
fn the_example_deployment_is_the_injected_app() {
    use wsguard::inject::yaml;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes");
    let app = std::fs::read_to_string(examples.join("app.yaml")).expect("read app.yaml");
    let out = inject(&app, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let injected =
        yaml::parse(text(&out.stdout).trim_start_matches("---\n")).expect("parse output");
    let shipped = std::fs::read_to_string(examples.join("deployment.yaml")).expect("read");
    let shipped = yaml::parse(&shipped).expect("parse deployment.yaml");
    assert!(
        injected == shipped,
        "examples/kubernetes/deployment.yaml differs from `wsguard inject -f app.yaml`:\n{}",
        text(&out.stdout)
    );
}
