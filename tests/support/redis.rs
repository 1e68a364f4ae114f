//! A real `redis-server` (the Debian package `redis-server`, which `.ci/run`
//! installs) on a free port of 127.0.0.1, in a temporary directory, with
//! its append-only file (`appendonly yes`, fsync on every write), that a
//! test can stop and start again on the same port and files.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::WAIT;

/// A running (or stopped) Redis.
pub struct Redis {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process, while it runs.
    child: Option<Child>,
    /// Its directory (the append-only file).
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts Redis on a free port.
    pub async fn start() -> Redis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut redis = Redis {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:port/0`.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Starts it (again) on the same port and directory, and waits for `PONG`.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--protected-mode", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.ping().await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it (SIGKILL: every write is already in its append-only file).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// `PING`: `Some` when it answers `+PONG`.
    async fn ping(&self) -> Option<()> {
        let mut tcp = TcpStream::connect(self.addr).await.ok()?;
        tcp.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        tcp.read_exact(&mut buf).await.ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    }
}
