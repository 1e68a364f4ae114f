//! Running the `wsguard` binary: `wsguard demo` on a free port (its banner
//! read), any command as a child process, and its output read line by line.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

use super::WAIT;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_wsguard");

/// The binary as a child process: its own environment variables cleared,
/// `RUST_LOG=warn`, standard input closed, output discarded (change any of it).
pub fn wsguard_child() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("WSGUARD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A child's output, line by line, with everything read so far.
pub struct Output<R> {
    lines: Lines<BufReader<R>>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl<R: AsyncRead + Unpin> Output<R> {
    /// Reads `stream` line by line.
    pub fn new(stream: R) -> Self {
        Output {
            lines: BufReader::new(stream).lines(),
            seen: Vec::new(),
        }
    }

    /// The next line, within `WAIT`; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<String> {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no output line in time; so far:\n{}", self.seen.join("\n")))
            .unwrap_or(None)?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads until a line satisfies `wanted` (described by `what`), and returns it.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        while let Some(line) = self.next().await {
            if wanted(&line) {
                return line;
            }
        }
        panic!(
            "output ended before {what}; it was:\n{}",
            self.seen.join("\n")
        )
    }

    /// Reads to the end of the stream (within `WAIT`).
    pub async fn rest(&mut self) {
        while self.next().await.is_some() {}
    }
}

/// A running `wsguard demo` and what its banner says.
pub struct Demo {
    /// The process (killed when dropped).
    pub child: Child,
    /// Where its proxy listens.
    pub addr: SocketAddr,
    /// `ws://addr/chat`.
    pub url: String,
    /// The ready token it printed.
    pub token: String,
    /// The `wsguard connect` command it printed.
    pub connect: String,
    /// The whole banner.
    pub banner: Vec<String>,
}

/// Starts `wsguard demo --listen 127.0.0.1:0` with more flags and reads its banner.
pub async fn demo(flags: &[&str]) -> Demo {
    demo_with(wsguard_child(), flags).await
}

/// Like [`demo`], from a command prepared by the caller (environment, stderr).
pub async fn demo_with(mut command: Command, flags: &[&str]) -> Demo {
    let mut child = command
        .args(["demo", "--listen", "127.0.0.1:0"])
        .args(flags)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn wsguard demo");
    let mut out = Output::new(child.stdout.take().expect("stdout"));
    let connect = out
        .until("the demo's `connect:` line", |l| l.starts_with("connect: "))
        .await;
    let field = |prefix: &str| {
        out.seen
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {:?}", out.seen))
            .trim()
            .to_owned()
    };
    let url = field("proxy: ");
    let token = field("token: ");
    let addr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {url:?}"));
    Demo {
        child,
        addr,
        url,
        token,
        connect: connect["connect: ".len()..].to_owned(),
        banner: out.seen,
    }
}

/// A shell command line as a child process (standard input piped, standard
/// output and error piped), for commands printed by the binary or the README.
pub fn shell(line: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", line])
        .env_remove("WSGUARD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}
