//! Configuration reload (SIGHUP, `POST /reload`), on the control thread:
//! the file is read and checked again with everything it points to, the
//! providers' keys are fetched, then the new [`Proxy`] is swapped in
//! atomically. New connections get it; live ones keep their own (dialect,
//! timings, limits) and their REAUTHs use its verifier; a live connection
//! whose key it removed follows `auth.jwks.on_key_removed`. A broken file is
//! refused whole; what needs a restart (listener address, worker count,
//! TLS, admin address) is reported and kept.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;

use crate::config::Config;
use crate::process::Process;
use crate::proxy::Proxy;

/// The proxy of the current configuration (see [`Process::proxy`]).
#[derive(Default)]
pub struct Current(ArcSwapOption<Proxy>);

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Current(..)")
    }
}

impl Current {
    /// The current proxy, if one was set (one atomic load and a reference count).
    pub fn load_full(&self) -> Option<Arc<Proxy>> {
        self.0.load_full()
    }

    /// Makes `proxy` the current one unless one is set already.
    pub fn set_if_none(&self, proxy: Arc<Proxy>) {
        self.0
            .rcu(|current| current.clone().or_else(|| Some(proxy.clone())));
    }

    /// Makes `proxy` the current one; returns the one it replaces.
    pub fn swap(&self, proxy: Arc<Proxy>) -> Option<Arc<Proxy>> {
        self.0.swap(Some(proxy))
    }
}

/// Changes the log level (`[log] level`) of the running process; `None`
/// where `RUST_LOG` decides it.
pub type SetLevel = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The keys that need a restart and were kept as they were.
    pub ignored: Vec<&'static str>,
    /// Live connections told that their key was removed.
    pub key_removed: usize,
}

/// Reloads the configuration file (on the control thread).
pub struct Reloader {
    /// The configuration file.
    path: PathBuf,
    /// The process: its current proxy, its registry.
    process: Arc<Process>,
    /// The configuration now in force (compared with the next).
    config: Mutex<Config>,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
    /// Applies `[log] level` (none: `RUST_LOG` is set, or not `wsguard run`).
    set_level: Option<SetLevel>,
    /// `wsguard run --listen / --upstream-url`, applied again to every file read.
    overrides: crate::config::Overrides,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish()
    }
}

impl Reloader {
    /// A reloader of `path`, whose `config` is in force in `process`.
    pub fn new(path: PathBuf, process: Arc<Process>, config: Config) -> Arc<Reloader> {
        Arc::new(Reloader {
            path,
            process,
            config: Mutex::new(config),
            running: tokio::sync::Mutex::new(()),
            set_level: None,
            overrides: crate::config::Overrides::default(),
        })
    }

    /// With the command line's `overrides` applied to each file it reads.
    pub fn with_overrides(self: Arc<Self>, overrides: crate::config::Overrides) -> Arc<Reloader> {
        match Arc::try_unwrap(self) {
            Ok(mut reloader) => {
                reloader.overrides = overrides;
                Arc::new(reloader)
            }
            Err(shared) => shared,
        }
    }

    /// With `set_level` applying `[log] level` on each reload.
    pub fn with_log_level(self: Arc<Self>, set_level: Option<SetLevel>) -> Arc<Reloader> {
        match Arc::try_unwrap(self) {
            Ok(mut reloader) => {
                reloader.set_level = set_level;
                Arc::new(reloader)
            }
            Err(shared) => shared,
        }
    }

    /// Reloads; the error names the key (and is logged as one line).
    /// Must run on the control thread's runtime (the new verifier's refresh
    /// tasks start there).
    pub async fn reload(&self, why: &'static str) -> Result<Applied, String> {
        let _one = self.running.lock().await;
        match self.try_reload().await {
            Ok(applied) => {
                tracing::info!(
                    why,
                    ignored = ?applied.ignored,
                    key_removed = applied.key_removed,
                    "configuration reloaded"
                );
                Ok(applied)
            }
            Err(e) => {
                tracing::error!(why, error = %e, "reload refused; the configuration in force stays");
                Err(e)
            }
        }
    }

    /// The reload's steps; nothing is changed before the last one.
    async fn try_reload(&self) -> Result<Applied, String> {
        let mut next = Config::load(&self.path).map_err(|e| e.to_string())?;
        self.overrides.apply(&mut next);
        let old = self
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let ignored = keep_restart_only(&old, &mut next);
        if !ignored.is_empty() {
            tracing::warn!(keys = ?ignored, "reload: these need a restart and keep their values");
        }
        let mut proxy = Proxy::new(&next).map_err(|e| e.to_string())?;
        let current = self.process.proxy.load_full();
        if let Some(current) = &current {
            if let Some(built) = Arc::get_mut(&mut proxy) {
                // The listener's TLS (and its certificate watcher) stays.
                built.tls = current.tls.clone();
                // The same upstream host keeps its resolved addresses.
                built.target.share_addresses(&current.target);
            }
        }
        // Another upstream host: resolved before the swap (and refreshed).
        if !proxy.target.addresses().is_resolved() {
            proxy
                .target
                .addresses()
                .start(next.upstream.resolve_interval)
                .await
                .map_err(|e| {
                    format!(
                        "upstream.url: cannot resolve {}: {e}",
                        proxy.target.authority()
                    )
                })?;
        }
        let handle = tokio::runtime::Handle::current();
        proxy
            .verifier
            .start(&handle, self.process.registry.clone(), next.session.grace);
        if let Err(e) = proxy.verifier.first_keys().await {
            proxy.verifier.stop();
            return Err(format!("auth.providers: {e}"));
        }
        let old_proxy = self.process.proxy.swap(proxy.clone());
        // A revocation's `iss` may be left out only with one provider.
        self.process.revocations.providers.store(
            next.auth.providers.len(),
            std::sync::atomic::Ordering::Relaxed,
        );
        if let (Some(set), true) = (&self.set_level, next.log.level != old.log.level) {
            // Checked with the rest (`log.level`); a failure here leaves the old level.
            if let Err(e) = set(&next.log.level) {
                tracing::warn!(error = %e, "log.level: the old level stays");
            }
        }
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = next.clone();
        let mut key_removed = 0;
        if let Some(old_proxy) = old_proxy {
            old_proxy.verifier.stop();
            let command = proxy.verifier.on_key_removed(next.session.grace);
            for removed in old_proxy.verifier.removed_in(&proxy.verifier) {
                let sent = self
                    .process
                    .registry
                    .send_where(|e| removed.affects(e), command);
                tracing::info!(provider = ?removed.provider, kids = ?removed.kids, all = removed.all, connections = sent, "reload removed keys");
                key_removed += sent;
            }
        }
        Ok(Applied {
            ignored,
            key_removed,
        })
    }
}

/// Sets in `next` what needs a restart to the values of `old`; returns
/// the keys that differed.
fn keep_restart_only(old: &Config, next: &mut Config) -> Vec<&'static str> {
    let mut ignored = Vec::new();
    // Reported when it differs, then set to the old value.
    macro_rules! keep {
        ($name:literal, $($field:ident).+) => {
            if next.$($field).+ != old.$($field).+ {
                ignored.push($name);
            }
            next.$($field).+ = old.$($field).+.clone();
        };
    }
    keep!("listener.bind", listener.bind);
    keep!("listener.worker_threads", listener.worker_threads);
    // The listener's TLS lives as long as the process.
    keep!("listener.tls", listener.tls);
    keep!("log.format", log.format);
    keep!("admin.bind", admin.bind);
    // The same upstream host keeps its resolved addresses and their refresh.
    keep!("upstream.resolve_interval", upstream.resolve_interval);
    // The limiter state lives as long as the process and keeps its settings.
    keep!("limits", limits);
    // The store and its Redis link live as long as the process.
    keep!("revocation", revocation);
    ignored
}
