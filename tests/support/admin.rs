//! The real binary with its admin listener: `wsguard run` on a
//! configuration, both addresses read from its log, its log lines kept, and
//! admin requests and `/metrics` scrapes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::cli::wsguard_child;
use super::requests::{raw_http, RawResponse};
use super::{Ws, SECRET, WAIT};

/// A running `wsguard run`.
pub struct Running {
    /// The process (killed when dropped).
    pub child: Child,
    /// Where the proxy listens.
    pub proxy: SocketAddr,
    /// Where the admin listener listens.
    pub admin: SocketAddr,
    /// Every log line so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// The configuration file it runs on (a reload test rewrites it).
    pub config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The `addr` of the log line whose message is `message`, in text or JSON form.
fn addr_in(line: &str, message: &str) -> Option<SocketAddr> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return (v["message"] == message)
            .then(|| v["addr"].as_str()?.parse().ok())
            .flatten();
    }
    if !line.contains(message) {
        return None;
    }
    line.split("addr=").nth(1)?.split(' ').next()?.parse().ok()
}

/// Starts `wsguard run` on `config` (the test secret is in `secret` next to
/// it) with `env` set, and waits for both listeners.
pub async fn run(config: &str, env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("secret"), SECRET).expect("secret");
    let path = dir.path().join("wsguard.toml");
    std::fs::write(&path, config).expect("config");
    let mut command = wsguard_child();
    command.env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .arg("--config")
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsguard");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (mut proxy, mut admin) = (None, None);
    tokio::time::timeout(WAIT, async {
        while proxy.is_none() || admin.is_none() {
            let Some(line) = lines.next_line().await.expect("read log") else {
                panic!("wsguard ended: {:?}", log.lock().expect("log"));
            };
            proxy = proxy.or(addr_in(&line, "wsguard listening"));
            admin = admin.or(addr_in(&line, "admin listening"));
            log.lock().expect("log").push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no listening lines: {:?}", log.lock().expect("log")));
    let keep = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            keep.lock().expect("log").push(line);
        }
    });
    Running {
        child,
        proxy: proxy.expect("proxy address"),
        admin: admin.expect("admin address"),
        log,
        config: path,
        _dir: dir,
    }
}

impl Running {
    /// `GET path` on the admin listener, with a bearer token if given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> RawResponse {
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let raw = format!("GET {path} HTTP/1.1\r\nhost: admin\r\n{auth}connection: close\r\n\r\n");
        raw_http(self.admin, &raw).await
    }

    /// `method path` with a JSON `body` on the admin listener, with a bearer token if given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> RawResponse {
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nhost: admin\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        raw_http(self.admin, &raw).await
    }

    /// A `/metrics` scrape.
    pub async fn scrape(&self, token: Option<&str>) -> Scrape {
        let response = self.get("/metrics", token).await;
        assert_eq!(response.status, 200, "{}", response.body);
        Scrape::parse(&response.body)
    }

    /// Opens a WebSocket to the proxy (no auth yet).
    pub async fn connect(&self, path: &str) -> Ws {
        let url = format!("ws://{}{}", self.proxy, path);
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        ws
    }

    /// The log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

/// One series: its name and labels.
pub type Series = (String, BTreeMap<String, String>);

/// A parsed Prometheus text exposition.
#[derive(Debug)]
pub struct Scrape {
    /// Every sample.
    pub samples: Vec<(Series, f64)>,
    /// The text.
    pub text: String,
}

impl Scrape {
    /// Parses the samples (`name{k="v",...} value` lines).
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("sample line");
                let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
                let labels = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                    .collect();
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("value in {line:?}"));
                ((name.to_owned(), labels), value)
            })
            .collect();
        Scrape {
            samples,
            text: text.to_owned(),
        }
    }

    /// The sum of the samples of `name` that carry every label in `labels` (0 when none).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Whether any sample of `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|((n, _), _)| n == name)
    }
}
