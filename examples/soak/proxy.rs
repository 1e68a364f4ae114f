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

/// The admin bearer token (in the proxy's `WSGUARD_SOAK_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "wsguard-soak-admin-token";

/// `drain.close_after`: the drain closes what is left with 1001 this long after it began.
pub const DRAIN_CLOSE_AFTER: Duration = Duration::from_secs(2);

/// The proxy's timing knobs the faults rely on (short, so that faults
/// resolve quickly), each multiplied by `--scale`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(1);
/// `listener.header_read_timeout`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// `session.max_missed_pongs`.
pub const MISSED_PONGS: u32 = 2;
/// `session.reauth_lead`: `auth_required` comes this long before `exp`.
pub const REAUTH_LEAD: Duration = Duration::from_secs(2);

/// `limits.per_address_rate`: new connections per second per client address.
pub const PER_ADDRESS_RATE: u32 = 5;
/// `limits.per_address_burst`: a slot reconnects at most every 50 ms, and
/// while the upstream restarts (300 ms) fewer times than this.
pub const PER_ADDRESS_BURST: u32 = 10;
/// `limits.per_address_connections`: a slot holds two at most (one a
/// fault took, still closing, and its next); below the burst, so that the
/// spray meets this cap before the rate.
pub const PER_ADDRESS_CONNECTIONS: u32 = 8;
/// `limits.failed_auth_max`: a slot fails no auth (a token it made before
/// its subject's revocation at most).
pub const FAILED_AUTH_MAX: u32 = 3;
/// `limits.max_connections_per_subject` (each slot has its own subject).
pub const PER_SUBJECT: u32 = 8;

/// What the log held that must not be there.
#[derive(Debug, Default)]
pub struct LogScan {
    /// Lines read.
    pub lines: u64,
    /// Error-level lines and panics (the first few kept).
    pub bad: Vec<String>,
    /// How many error-level lines and panics there were.
    pub bad_count: u64,
    /// `configuration reloaded` lines.
    pub reloads: u64,
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
    /// Its configuration file (rewritten by the reload fault).
    pub config: std::path::PathBuf,
    /// What [`config`] needs besides the variant: the upstream and the secret file.
    pub inputs: (SocketAddr, std::path::PathBuf),
    _dir: tempfile::TempDir,
}

/// The configuration; `variant` changes one harmless `[session]` timing
/// (`reauth_jitter`: 1 s when even, 900 ms when odd), for the reload fault.
pub fn config(upstream: SocketAddr, secret: &Path, args: &crate::Args, variant: u64) -> String {
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
reauth_jitter = "{jitter}ms"
grace = "{grace}s"
ping_interval = "{ping}ms"
max_missed_pongs = {missed}
close_timeout = "1s"
[admin]
bind = "127.0.0.1:0"
token_env = "WSGUARD_SOAK_ADMIN_TOKEN"
[limits]
# In force: each slot connects from a loopback address of its own and
# each hostile connection from a fresh one (net.rs), so that only the
# spray fault goes over these; the process-wide caps are lifted (they
# refuse everyone alike: tests/limits.rs covers them).
per_address_rate = {rate}
per_address_burst = {burst}
per_address_connections = {per_address}
failed_auth_max = {failed}
failed_auth_window = "60s"
failed_auth_cooldown = "60s"
max_connections_per_subject = {per_subject}
max_connections = 1000000
max_unauthenticated = 1000000
[drain]
reconnect_spread = "1s"
close_after = "{close_after}ms"
timeout = "15s"
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
        jitter = if variant.is_multiple_of(2) { 1000 } else { 900 },
        close_after = DRAIN_CLOSE_AFTER.as_millis(),
        rate = PER_ADDRESS_RATE,
        burst = PER_ADDRESS_BURST,
        per_address = PER_ADDRESS_CONNECTIONS,
        failed = FAILED_AUTH_MAX,
        per_subject = PER_SUBJECT,
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
        std::fs::write(&path, config(upstream, &secret, args, 0))?;
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .env_remove("WSGUARD_CONFIG")
            .env("WSGUARD_SOAK_ADMIN_TOKEN", ADMIN_TOKEN)
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
            config: path,
            inputs: (upstream, secret),
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
        active_at(self.admin).await
    }

    /// Sends `signal` (`-TERM`, `-HUP`, `-INT`) to the process.
    pub async fn signal(&self, signal: &str) -> anyhow::Result<()> {
        signal_pid(self.child.id().context("the proxy exited")?, signal).await
    }

    /// Waits up to `wait` for the process to exit (SIGKILL after it) and
    /// reads the rest of its log: its exit status (`None`: killed).
    pub async fn wait_exit(
        mut self,
        wait: Duration,
    ) -> anyhow::Result<(Option<std::process::ExitStatus>, Arc<Mutex<LogScan>>)> {
        let status = match tokio::time::timeout(wait, self.child.wait()).await {
            Ok(status) => Some(status?),
            Err(_) => {
                self.child.kill().await?;
                None
            }
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok((status, self.log.clone()))
    }
}

/// `wsguard_connections_active`, summed over its states, from the admin listener at `admin`.
pub async fn active_at(admin: SocketAddr) -> anyhow::Result<f64> {
    let text = get(admin, "/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("wsguard_connections_active"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// `wsguard_limit_refusals_total` by its `limit` label, from the admin listener at `admin`.
pub async fn limit_refusals(
    admin: SocketAddr,
) -> anyhow::Result<std::collections::HashMap<String, f64>> {
    let text = get(admin, "/metrics").await?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("wsguard_limit_refusals_total{limit=\""))
        .filter_map(|l| {
            let (limit, rest) = l.split_once("\"}")?;
            Some((limit.to_owned(), rest.trim().parse::<f64>().ok()?))
        })
        .collect())
}

/// Sends `signal` (`-TERM`, `-HUP`, `-INT`) to process `pid`.
pub async fn signal_pid(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .await?;
    if !status.success() {
        bail!("kill {signal} {pid}: {status}");
    }
    Ok(())
}

fn scan(log: &Mutex<LogScan>, line: &str) {
    let Ok(mut log) = log.lock() else { return };
    log.lines += 1;
    if line.contains("\"configuration reloaded\"") {
        log.reloads += 1;
    }
    if is_bad(line) {
        log.bad_count += 1;
        if log.bad.len() < 10 {
            log.bad.push(line.chars().take(400).collect());
        }
    }
}

/// A plain HTTP/1.1 GET on the admin listener (with the bearer token), the
/// body returned; anything but 200 is an error.
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let (status, body) = admin_request(addr, "GET", path, "", Duration::from_secs(5)).await?;
    if status != 200 {
        bail!("GET {path}: {status} {body}");
    }
    Ok(body)
}

/// One HTTP/1.1 request on the admin listener with the bearer token,
/// answered within `wait`: the status and the body.
pub async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    wait: Duration,
) -> anyhow::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut text = String::new();
    tokio::time::timeout(wait, tcp.read_to_string(&mut text)).await??;
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{method} {path}: no status line"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_owned();
    Ok((status, body))
}
