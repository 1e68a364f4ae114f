//! Certificate rotation without restart: [`Rotating`] hands every new
//! handshake the current certificate and key (an `ArcSwap`, one atomic load
//! per handshake), and [`Rotating::watch`] re-reads the files on SIGHUP and
//! when they change. Live connections keep the certificate they started with.
//!
//! Changes are found by polling, on the control thread, every
//! `listener.tls.watch_interval` (1 s): each file's resolved path (so that
//! a Kubernetes secret's `..data` symlink swap is seen), modification time
//! and size. A change is applied once two polls in a row agree (a debounce:
//! a certificate and key written one after the other are read together).
//! A pair that does not load (unreadable, not PEM, the key not matching the
//! certificate) is refused with a warning naming the file, and the old pair
//! stays in use.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::files::{self, FileError};

/// The listener's current certificate and key, and where they come from.
#[derive(Debug)]
pub struct Rotating {
    /// What new handshakes are given.
    current: ArcSwap<CertifiedKey>,
    /// The end of the current leaf's validity, as unix seconds (0 = unknown).
    not_after: AtomicU64,
    /// The PEM chain.
    cert_file: PathBuf,
    /// The PEM key.
    key_file: PathBuf,
}

impl ResolvesServerCert for Rotating {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What a poll sees of one file: its path with symlinks resolved, its
/// modification time and size.
type Seen = Option<(PathBuf, SystemTime, u64)>;

/// A time as unix seconds, 0 when unknown.
fn unix_secs(t: Option<SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn look(path: &Path) -> Seen {
    let real = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    Some((real, meta.modified().ok()?, meta.len()))
}

impl Rotating {
    /// Loads the pair once (start-up: an error here is a configuration error).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Rotating, FileError> {
        let key = files::certified_key(cert_file, key_file)?;
        let end = files::warn_if_expiring(cert_file, &key);
        Ok(Rotating {
            current: ArcSwap::from_pointee(key),
            not_after: AtomicU64::new(unix_secs(end)),
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
        })
    }

    /// Makes `key` the one new handshakes get.
    fn install(&self, key: CertifiedKey) {
        let end = files::warn_if_expiring(&self.cert_file, &key);
        self.not_after.store(unix_secs(end), Ordering::Relaxed);
        self.current.store(Arc::new(key));
    }

    /// Re-reads the files; on an error the current pair stays and the error
    /// is logged (naming the file) and returned.
    pub fn reload(&self) -> Result<(), FileError> {
        match files::certified_key(&self.cert_file, &self.key_file) {
            Ok(key) => {
                self.install(key);
                tracing::info!(cert_file = ?self.cert_file, "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(file = ?e.path, problem = ?e.problem, "TLS certificate not reloaded; the previous one stays in use");
                Err(e)
            }
        }
    }

    /// The current leaf certificate (DER).
    pub fn leaf(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }

    /// When the current leaf certificate expires (for a metric), if known.
    pub fn not_after(&self) -> Option<SystemTime> {
        let secs = self.not_after.load(Ordering::Relaxed);
        (secs != 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn look(&self) -> [Seen; 2] {
        [look(&self.cert_file), look(&self.key_file)]
    }

    /// Reloads on SIGHUP and when the files change (polled every
    /// `interval`, debounced by one poll); runs until dropped. Spawn it on
    /// the control thread with [`Rotating::start`].
    async fn watch(self: Arc<Self>, interval: Duration, mut hangup: Hangup) {
        let mut loaded = self.look();
        let mut last = loaded.clone();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = self.look();
                    // Applied once two polls in a row agree.
                    if now == last && now != loaded {
                        let _ = self.reload();
                        loaded = now.clone();
                    }
                    last = now;
                }
                () = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the TLS certificate");
                    let _ = self.reload();
                    loaded = self.look();
                    last = loaded.clone();
                }
            }
        }
    }

    /// Starts [`Rotating::watch`] on `handle` (the control thread's, or a
    /// test's runtime). The SIGHUP handler is installed before this returns.
    pub fn start(
        self: &Arc<Self>,
        interval: Duration,
        handle: &tokio::runtime::Handle,
    ) -> std::io::Result<()> {
        let hangup = {
            let _entered = handle.enter();
            Hangup::install()?
        };
        handle.spawn(self.clone().watch(interval, hangup));
        Ok(())
    }
}

/// SIGHUP, where there is one.
struct Hangup {
    /// The signal stream.
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    fn install() -> std::io::Result<Hangup> {
        Ok(Hangup {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if self.signal.recv().await.is_some() {
            return;
        }
        std::future::pending::<()>().await;
    }
}
