//! The README's quick start, followed literally on a copy of the
//! repository's `config/` folder: the commands are read from README.md and
//! must be exactly the ones below; each is run with `sh` in a fresh folder,
//! with the binary under test as `target/release/wsguard` there. Only what
//! a test cannot do literally differs: `cargo build` is not run, the
//! configuration listens on port 0 (the README's `127.0.0.1:8080` is then
//! replaced by the real address) and its upstream is a test server.

#![cfg(unix)]

mod support;
use support::cli::*;
use support::*;

use std::collections::BTreeMap;
use std::path::Path;

use tokio::io::AsyncWriteExt;

/// The commands of the README's quick start, in order.
const QUICK_START: &[&str] = &[
    "cargo build --release",
    r#"export PATH="$PWD/target/release:$PATH""#,
    "cp -r config my-wsguard",
    "wsguard check --config my-wsguard/wsguard.toml",
    r#"export WSGUARD_HS256_SECRET="$(openssl rand -base64 48)""#,
    "wsguard check --config my-wsguard/wsguard.toml",
    "wsguard --config my-wsguard/wsguard.toml &",
    "wsguard connect ws://127.0.0.1:8080/chat --token-cmd 'wsguard token --secret-env WSGUARD_HS256_SECRET --sub alice --iss https://internal.example.com/'",
];

/// The step between the two blocks, as the README words it.
const UNCOMMENT: &str = "uncomment the `internal` HMAC provider under `[auth]`";

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md")
}

/// The commands in the `sh` blocks of the README's quick-start section.
fn readme_commands(readme: &str) -> Vec<String> {
    let start = readme
        .find("## Quick start with a real configuration")
        .expect("a quick start section");
    let section = &readme[start..];
    // Up to the next heading (`##` or `###`).
    let end = section[3..].find("\n#").map_or(section.len(), |i| i + 3);
    let section = &section[..end];
    let (mut commands, mut in_block, mut pending) = (Vec::new(), false, String::new());
    for line in section.lines() {
        match line.trim() {
            "```sh" => in_block = true,
            "```" => in_block = false,
            text if in_block && !text.is_empty() && !text.starts_with('#') => {
                pending.push_str(text.trim_end_matches('\\').trim_end());
                if text.ends_with('\\') {
                    pending.push(' ');
                } else {
                    commands.push(std::mem::take(&mut pending));
                }
            }
            _ => {}
        }
    }
    commands
}

#[test]
fn the_readme_has_exactly_these_quick_start_commands() {
    let readme = readme();
    assert_eq!(readme_commands(&readme), QUICK_START);
    assert!(readme.contains(UNCOMMENT), "the README lost: {UNCOMMENT}");
}

/// A fresh folder laid out like a clone: `config/` copied from the
/// repository, and the binary under test as `target/release/wsguard`.
fn fresh_clone() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo.join("config"))
        .arg(dir.path().join("config"))
        .status()
        .expect("cp");
    assert!(status.success());
    let release = dir.path().join("target/release");
    std::fs::create_dir_all(&release).expect("mkdir");
    std::os::unix::fs::symlink(BIN, release.join("wsguard")).expect("symlink");
    dir
}

/// Runs the commands in a shell, as a user would type them one by one.
struct Session {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Session {
    fn command(&self, line: &str) -> tokio::process::Command {
        let mut cmd = shell(line);
        cmd.current_dir(self.dir.path()).envs(&self.env);
        cmd
    }

    /// Runs `line` to its end; stdout and stderr.
    async fn run(&self, line: &str) -> (String, String) {
        let out = tokio::time::timeout(WAIT, self.command(line).output())
            .await
            .unwrap_or_else(|_| panic!("{line}: did not finish in time"))
            .expect("run sh");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "{line}: {}\n{stdout}\n{stderr}",
            out.status
        );
        (stdout, stderr)
    }

    /// Runs an `export NAME=...` line and keeps the variable.
    async fn export(&mut self, line: &str) {
        let name = line
            .strip_prefix("export ")
            .and_then(|rest| rest.split('=').next())
            .expect("export NAME=");
        let (value, _) = self.run(&format!("{line}; printf %s \"${name}\"")).await;
        assert!(!value.is_empty(), "{line} set nothing");
        self.env.insert(name.to_owned(), value);
    }

    /// The user's edit: the `internal` provider uncommented, the upstream
    /// pointed at `upstream`, and (for the test) port 0.
    fn edit_config(&self, upstream: std::net::SocketAddr) {
        let path = self.dir.path().join("my-wsguard/wsguard.toml");
        let text = std::fs::read_to_string(&path).expect("read the copy");
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .windows(2)
            .position(|w| w[0] == "# [[auth.providers]]" && w[1] == "# name = \"internal\"")
            .expect("the commented internal provider");
        let end = start
            + lines[start..]
                .iter()
                .position(|l| *l == "# secret_env = \"WSGUARD_HS256_SECRET\"")
                .expect("its secret_env line");
        let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for line in &mut edited[start..=end] {
            *line = line["# ".len()..].to_owned();
        }
        let text = edited.join("\n");
        for (from, _) in [
            ("bind = \"127.0.0.1:8080\"", ()),
            ("url = \"ws://127.0.0.1:9000\"", ()),
        ] {
            assert!(
                text.contains(from),
                "{from} not in the reference configuration"
            );
        }
        let text = text
            .replacen("bind = \"127.0.0.1:8080\"", "bind = \"127.0.0.1:0\"", 1)
            // The admin listener's default port is fixed too.
            .replacen("bind = \"127.0.0.1:9901\"", "bind = \"127.0.0.1:0\"", 1)
            .replacen(
                "url = \"ws://127.0.0.1:9000\"",
                &format!("url = \"ws://{upstream}\""),
                1,
            );
        std::fs::write(&path, text).expect("write the copy");
    }
}

#[tokio::test]
async fn the_readme_quick_start_works_literally() {
    let upstream = Upstream::start(true).await;
    let mut session = Session {
        dir: fresh_clone(),
        env: BTreeMap::new(),
    };
    let mut steps = QUICK_START.iter().copied();
    assert_eq!(steps.next(), Some("cargo build --release")); // already built

    session.export(steps.next().expect("PATH")).await;
    session.run(steps.next().expect("cp")).await;
    let (out, err) = session.run(steps.next().expect("check")).await;
    assert_eq!(out.trim(), "my-wsguard/wsguard.toml: ok");
    assert!(
        err.contains("warning: the only key configured is the throwaway example key"),
        "{err}"
    );

    session.edit_config(upstream.addr);
    session.export(steps.next().expect("secret")).await;
    let (out, err) = session.run(steps.next().expect("check again")).await;
    assert_eq!(out.trim(), "my-wsguard/wsguard.toml: ok");
    assert!(!err.contains("warning"), "{err}");

    let serve = steps.next().expect("run");
    let serve = serve.strip_suffix(" &").expect("in the background");
    let mut proxy = session.command(&format!("exec {serve}"));
    let mut proxy = proxy
        .env("RUST_LOG", "info")
        .spawn()
        .expect("spawn the proxy");
    let mut log = Output::new(proxy.stderr.take().expect("stderr"));
    let listening = log
        .until("wsguard listening", |l| l.contains("wsguard listening"))
        .await;
    let addr = listening
        .split_whitespace()
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr=")
        .to_owned();

    let connect = steps.next().expect("connect");
    assert!(steps.next().is_none());
    let connect = connect.replacen("ws://127.0.0.1:8080", &format!("ws://{addr}"), 1);
    let mut client = session
        .command(&format!("exec {connect}"))
        .spawn()
        .expect("spawn connect");
    let mut stdin = client.stdin.take().expect("stdin");
    let mut out = Output::new(client.stdout.take().expect("stdout"));
    let authed = out
        .until("AUTHENTICATED", |l| {
            l.contains("\"type\":\"AUTHENTICATED\"")
        })
        .await;
    assert!(authed.contains("\"sub\":\"alice\""), "{authed}");
    stdin
        .write_all(b"hi from the quick start\n")
        .await
        .expect("write");
    out.until("the echo", |l| l.ends_with(" < hi from the quick start"))
        .await;
    drop(stdin);
    let status = tokio::time::timeout(WAIT, client.wait())
        .await
        .expect("connect did not exit")
        .expect("wait");
    assert!(status.success(), "{status}\n{}", out.seen.join("\n"));
}

/// The top of the README says what building needs and gives the demo and
/// test commands; its demo command is the one `wsguard demo` prints.
#[test]
fn the_readme_starts_with_build_needs_demo_and_tests() {
    let readme = readme();
    let top = &readme[..readme
        .find("## What it does")
        .expect("a `What it does` section")];
    for needed in [
        "a C compiler",
        "aws-lc-sys",
        "cargo run --release -- demo",
        "cargo test --workspace",
        "wsguard connect ws://127.0.0.1:8080/chat --token-url http://127.0.0.1:8080/demo/token",
        "GET /demo/token",
    ] {
        assert!(top.contains(needed), "the README's top lacks {needed:?}");
    }
}
