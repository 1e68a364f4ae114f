//! The proxy under test: the real `wsguard` binary as a child process, its
//! configuration, its log (scanned for error-level lines and panics), its
//! admin `/metrics` and its resident memory.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The HMAC secret the soak's tokens are signed with.
pub const SECRET: &str = "wsguard-soak-secret-0123456789abcdef";

/// The proxy's timing knobs the faults rely on (short, so that faults
/// resolve quickly), each multiplied by `--scale`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(1);
/// `listener.header_read_timeout`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// `session.max_missed_pongs`.
pub const MISSED_PONGS: u32 = 2;
/// `session.reauth_lead`: `auth_required` comes this long before `exp`.
pub const REAUTH_LEAD: Duration = Duration::from_secs(2);

/// What the log held that must not be there.
#[derive(Debug, Default)]
pub struct LogScan {
    /// Lines read.
    pub lines: u64,
    /// Error-level lines and panics (the first few kept).
    pub bad: Vec<String>,
    /// How many error-level lines and panics there were.
    pub bad_count: u64,
}

/// The running proxy.
pub struct Proxy {
    /// The child process (killed when dropped).
    pub child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// What its log held so far.
    pub log: Arc<Mutex<LogScan>>,
    _dir: tempfile::TempDir,
}

fn config(upstream: SocketAddr, secret: &Path, args: &crate::Args) -> String {
    let cache = args
        .token_cache
        .map_or(String::new(), |n| format!("cache_size = {n}"));
    format!(
        r#"[listener]
bind = "127.0.0.1:0"
header_read_timeout = "{header}ms"
worker_threads = {workers}
[upstream]
url = "ws://{upstream}"
connect_timeout = "{connect}ms"
[auth]
leeway = "1s"
{cache}
[[auth.providers]]
name = "soak"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "{secret}"
[session]
auth_timeout = "{auth}ms"
reauth_lead = "{lead}ms"
reauth_jitter = "1s"
grace = "{grace}s"
ping_interval = "{ping}ms"
max_missed_pongs = {missed}
close_timeout = "1s"
[admin]
bind = "127.0.0.1:0"
[log]
format = "json"
level = "info"
"#,
        header = (HEADER_TIMEOUT * args.scale).as_millis(),
        auth = (AUTH_TIMEOUT * args.scale).as_millis(),
        lead = (REAUTH_LEAD * args.scale).as_millis(),
        grace = 3 * args.scale,
        ping = args.ping_ms,
        connect = args.connect_timeout_ms,
        workers = args.workers,
        missed = MISSED_PONGS,
        secret = secret.display(),
    )
}

/// The `addr` field of a JSON log line whose message is `message`.
fn addr_in(line: &serde_json::Value, message: &str) -> Option<SocketAddr> {
    (line["message"] == message)
        .then(|| line["addr"].as_str()?.parse().ok())
        .flatten()
}

/// Whether a log line is an error-level line or a panic.
fn is_bad(line: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => v["level"] == "ERROR",
        Err(_) => line.contains("panicked") || line.contains("ERROR"),
    }
}

impl Proxy {
    /// Starts `binary` in front of `upstream` and waits for both listeners.
    pub async fn start(args: &crate::Args, upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let binary = &args.wsguard;
        let dir = tempfile::tempdir()?;
        let secret = dir.path().join("secret");
        std::fs::write(&secret, SECRET)?;
        let path = dir.path().join("wsguard.toml");
        std::fs::write(&path, config(upstream, &secret, args))?;
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .env_remove("WSGUARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let (mut addr, mut admin) = (None, None);
        let log = Arc::new(Mutex::new(LogScan::default()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while addr.is_none() || admin.is_none() {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .context("no listening line in 10 s")??
                .context("the proxy exited at start")?;
            scan(&log, &line);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                addr = addr.or(addr_in(&v, "wsguard listening"));
                admin = admin.or(addr_in(&v, "admin listening"));
            }
        }
        let reader = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                scan(&reader, &line);
            }
        });
        Ok(Proxy {
            child,
            addr: addr.context("addr")?,
            admin: admin.context("admin")?,
            log,
            _dir: dir,
        })
    }

    /// The resident set size of the process, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("the proxy exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS")?;
        Ok(kib * 1024)
    }

    /// `wsguard_connections_active`, summed over its states.
    pub async fn connections_active(&self) -> anyhow::Result<f64> {
        let text = get(self.admin, "/metrics").await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("wsguard_connections_active"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Stops the process with SIGINT (then SIGKILL after 10 s) and reads the rest of its log.
    pub async fn stop(mut self) -> anyhow::Result<Arc<Mutex<LogScan>>> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
            bail!("the proxy did not stop within 10 s of SIGINT");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(self.log.clone())
    }
}

fn scan(log: &Mutex<LogScan>, line: &str) {
    let Ok(mut log) = log.lock() else { return };
    log.lines += 1;
    if is_bad(line) {
        log.bad_count += 1;
        if log.bad.len() < 10 {
            log.bad.push(line.chars().take(400).collect());
        }
    }
}

/// A plain HTTP/1.1 GET, the body returned.
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut tcp = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut body)).await??;
    if !body.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", body.lines().next().unwrap_or(""));
    }
    Ok(body)
}
