//! Key sets fetched from an identity provider (a `jwks_url` key, or the
//! `jwks_uri` of the issuer's OpenID Connect discovery document) and kept
//! fresh by one background task per provider, on the control thread.
//!
//! The token path only reads the current set (an `ArcSwap` load): no
//! network, no lock. A token whose `kid` the set lacks asks for one refetch
//! ([`RemoteKeys::miss`]): the first asks the task and waits for it (single
//! flight: the others that come meanwhile wait for the same fetch), then
//! `auth.jwks.refetch_cooldown` passes before the next; meanwhile an
//! unknown `kid` is refused at once. A failed fetch keeps the last good set
//! (stale-on-error) and is retried with backoff; it is logged once per
//! outage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::fetch::{FetchError, Fetcher};
use super::keys::Key;
use crate::config::JwksConfig;

/// Where a provider's key set comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A JWKS URL.
    Jwks(String),
    /// The `jwks_uri` of `<issuer>/.well-known/openid-configuration`.
    Discovery {
        /// The configured issuer (the document must name it exactly).
        issuer: String,
    },
}

/// One loaded set.
pub struct KeySet {
    /// Counts the sets installed (0: none yet).
    pub generation: u64,
    /// The keys that may verify the provider's tokens (each with a `kid`).
    pub keys: Vec<Key>,
}

/// Refresh results, key counts and age of one provider's set, for the
/// metrics (read with relaxed loads; written by the refresh task only).
#[derive(Debug, Default)]
pub struct KeyStats {
    /// Fetches that installed a set.
    pub fetches_ok: AtomicU64,
    /// Fetches that failed (the last good set stayed).
    pub fetches_failed: AtomicU64,
    /// Fetches made for an unknown `kid`.
    pub refetches: AtomicU64,
    /// Keys in the current set.
    pub keys: AtomicU64,
    /// Unix seconds of the last set installed (0: never).
    pub loaded_at: AtomicU64,
}

/// What a token with an unknown `kid` should do.
pub enum Miss {
    /// The set changed since the token was checked: check it again now.
    Retry,
    /// Wait for the refetch in flight (it resolves when it is done).
    Wait(watch::Receiver<u64>),
    /// Cooldown: refuse the token now.
    Refuse,
}

/// Whether a refetch is asked for or running, and when the last began.
#[derive(Default)]
struct Flight {
    /// A refetch was asked for and has not finished.
    asked: bool,
    /// When the last refetch was asked for.
    last: Option<Instant>,
}

/// Whether the first set has come, and the last failure.
#[derive(Debug, Clone, Default)]
pub struct LoadState {
    /// A set has been installed.
    pub loaded: bool,
    /// Why the last fetch failed, if it did.
    pub last_error: Option<FetchError>,
}

/// One provider's remote key set and its refresh state.
pub struct RemoteKeys {
    /// The provider's name.
    pub name: Arc<str>,
    /// Where the set comes from.
    source: Source,
    /// The HTTPS client.
    fetcher: Fetcher,
    /// The provider's allowed algorithms (keys for others are skipped).
    algorithms: Vec<Algorithm>,
    /// Allowed algorithms that the provider's local keys already cover.
    covered: Vec<Algorithm>,
    /// Insecure `http://` allowed (tests).
    allow_http: bool,
    /// `[auth.jwks]`.
    settings: JwksConfig,
    /// The current set.
    current: ArcSwap<KeySet>,
    /// The `jwks_uri` found by discovery.
    jwks_uri: Mutex<Option<String>>,
    /// The refetch in flight, and the cooldown.
    flight: Mutex<Flight>,
    /// Wakes the task for a refetch.
    wake: Notify,
    /// Counts the refetches finished (waiters watch it).
    done: watch::Sender<u64>,
    /// Loaded yet, and the last failure (start-up watches it).
    state: watch::Sender<LoadState>,
    /// For the metrics.
    pub stats: KeyStats,
}

/// The JWKS document, each key parsed on its own (one bad key does not spoil the set).
#[derive(Deserialize)]
struct RawSet {
    /// The keys.
    keys: Vec<serde_json::Value>,
}

/// The part of a discovery document read.
#[derive(Deserialize)]
struct Discovery {
    /// The issuer it describes.
    issuer: String,
    /// Where its keys are.
    jwks_uri: String,
}

impl RemoteKeys {
    /// A provider's remote set (empty until the task loads it).
    pub fn new(
        name: Arc<str>,
        source: Source,
        fetcher: Fetcher,
        algorithms: Vec<Algorithm>,
        covered: Vec<Algorithm>,
        allow_http: bool,
        settings: JwksConfig,
    ) -> RemoteKeys {
        RemoteKeys {
            name,
            source,
            fetcher,
            algorithms,
            covered,
            allow_http,
            settings,
            current: ArcSwap::from_pointee(KeySet {
                generation: 0,
                keys: Vec::new(),
            }),
            jwks_uri: Mutex::new(None),
            flight: Mutex::new(Flight::default()),
            wake: Notify::new(),
            done: watch::Sender::new(0),
            state: watch::Sender::new(LoadState::default()),
            stats: KeyStats::default(),
        }
    }

    /// The current set (no lock, no network).
    pub fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// Whether the current set still has a key with this `kid`.
    pub fn has(&self, kid: &str) -> bool {
        self.current
            .load()
            .keys
            .iter()
            .any(|k| k.kid.as_deref() == Some(kid))
    }

    /// A token's `kid` was not in set `generation`: retry, wait for a refetch, or refuse.
    pub fn miss(&self, generation: u64) -> Miss {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if self.current.load().generation != generation {
            return Miss::Retry;
        }
        if flight.asked {
            return Miss::Wait(self.done.subscribe());
        }
        let now = Instant::now();
        if flight
            .last
            .is_some_and(|t| now < t + self.settings.refetch_cooldown)
        {
            return Miss::Refuse;
        }
        flight.asked = true;
        flight.last = Some(now);
        let waiter = self.done.subscribe();
        self.wake.notify_one();
        Miss::Wait(waiter)
    }

    /// Start-up's view: loaded yet, and the last failure.
    pub fn state(&self) -> watch::Receiver<LoadState> {
        self.state.subscribe()
    }

    /// Fetches the set and checks it, without installing it.
    pub async fn fetch(&self) -> Result<(Vec<Key>, Option<Duration>), FetchError> {
        let url = self.jwks_url().await?;
        let fetched = match self.fetcher.get(&url).await {
            Err(e) => {
                // The discovered URL may have moved: discover again next time.
                *self.lock_uri() = None;
                return Err(e);
            }
            Ok(fetched) => fetched,
        };
        let keys = self.usable_keys(&fetched.body)?;
        Ok((keys, fetched.max_age))
    }

    /// The JWKS URL: configured, or from the discovery document.
    async fn jwks_url(&self) -> Result<String, FetchError> {
        let issuer = match &self.source {
            Source::Jwks(url) => return Ok(url.clone()),
            Source::Discovery { issuer } => issuer,
        };
        if let Some(url) = self.lock_uri().clone() {
            return Ok(url);
        }
        let at = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let fetched = self.fetcher.get(&at).await?;
        let doc: Discovery =
            serde_json::from_slice(&fetched.body).map_err(|_| FetchError::Garbage("discovery"))?;
        if doc.issuer != *issuer {
            return Err(FetchError::IssuerMismatch);
        }
        let plain = self.allow_http && doc.jwks_uri.starts_with("http://");
        if !(doc.jwks_uri.starts_with("https://") || plain) {
            return Err(FetchError::InsecureUri);
        }
        *self.lock_uri() = Some(doc.jwks_uri.clone());
        Ok(doc.jwks_uri)
    }

    fn lock_uri(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.jwks_uri.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys of a JWKS document that may verify this provider's tokens;
    /// the others are skipped with a debug line.
    fn usable_keys(&self, body: &[u8]) -> Result<Vec<Key>, FetchError> {
        let raw: RawSet = serde_json::from_slice(body).map_err(|_| FetchError::Garbage("JWKS"))?;
        let mut keys = Vec::new();
        for (i, value) in raw.keys.into_iter().enumerate() {
            match self.usable_key(value) {
                Ok(key) => keys.push(key),
                Err(why) => {
                    tracing::debug!(provider = ?self.name, index = i, reason = why, "JWKS key skipped")
                }
            }
        }
        if keys.is_empty() {
            return Err(FetchError::NoUsableKey);
        }
        for &alg in &self.algorithms {
            if !self.covered.contains(&alg) && !keys.iter().any(|k| k.fits(alg, None)) {
                return Err(FetchError::AlgorithmWithoutKey(format!("{alg:?}")));
            }
        }
        Ok(keys)
    }

    /// One key, if it may verify this provider's tokens.
    fn usable_key(&self, value: serde_json::Value) -> Result<Key, &'static str> {
        let jwk: Jwk = serde_json::from_value(value).map_err(|_| "unknown or invalid key")?;
        let key = super::jwk::verification_key(&jwk)
            .map_err(|_| "not usable (no kid, or bad parameters)")?
            .ok_or("not for signatures (use, key_ops or alg)")?;
        if !self.algorithms.iter().any(|&alg| key.fits(alg, None)) {
            return Err("its algorithm is not allowed for the provider");
        }
        Ok(key)
    }

    /// Installs a fetched set; returns the `kid`s that left it.
    fn install(&self, keys: Vec<Key>) -> Vec<Arc<str>> {
        let old = self.current.load();
        let removed = old
            .keys
            .iter()
            .filter_map(|k| k.kid.clone())
            .filter(|kid| !keys.iter().any(|k| k.kid.as_ref() == Some(kid)))
            .collect();
        self.stats.keys.store(keys.len() as u64, Ordering::Relaxed);
        self.stats
            .loaded_at
            .store(super::unix_now(), Ordering::Relaxed);
        self.current.store(Arc::new(KeySet {
            generation: old.generation + 1,
            keys,
        }));
        removed
    }

    /// The refresh task: loads the set now, then on schedule and on
    /// refetch requests, forever; `removed` hears of the `kid`s that left.
    pub async fn refresh(self: Arc<Self>, removed: impl Fn(&RemoteKeys, &[Arc<str>])) {
        let mut failures: u32 = 0;
        loop {
            let refetch = self.lock_flight().asked;
            if refetch {
                self.stats.refetches.fetch_add(1, Ordering::Relaxed);
            }
            let delay = match self.fetch().await {
                Ok((keys, max_age)) => {
                    let gone = self.install(keys);
                    self.stats.fetches_ok.fetch_add(1, Ordering::Relaxed);
                    if failures > 0 {
                        tracing::info!(provider = ?self.name, "keys fetched again");
                    }
                    failures = 0;
                    self.state.send_replace(LoadState {
                        loaded: true,
                        last_error: None,
                    });
                    if !gone.is_empty() {
                        removed(&self, &gone);
                    }
                    self.next_refresh(max_age)
                }
                Err(e) => {
                    self.stats.fetches_failed.fetch_add(1, Ordering::Relaxed);
                    if failures == 0 {
                        tracing::warn!(provider = ?self.name, reason = %e, "cannot fetch keys; the last good set stays in use");
                    }
                    failures = failures.saturating_add(1);
                    self.state.send_modify(|s| s.last_error = Some(e));
                    self.backoff(failures)
                }
            };
            if refetch {
                let mut flight = self.lock_flight();
                flight.asked = false;
                self.done.send_modify(|n| *n += 1);
            }
            // Until the next refresh, or a refetch request; a wake-up left
            // over from a request made while the last fetch ran (`Notify`
            // keeps one permit) is not a new request: wait on.
            let until = tokio::time::Instant::now() + delay;
            while !self.lock_flight().asked {
                if tokio::time::timeout_at(until, self.wake.notified())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }

    fn lock_flight(&self) -> std::sync::MutexGuard<'_, Flight> {
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a good fetch: `max-age` within the bounds, else the interval.
    fn next_refresh(&self, max_age: Option<Duration>) -> Duration {
        let s = &self.settings;
        max_age.map_or(s.refresh_interval, |age| {
            age.clamp(s.min_refresh, s.max_refresh)
        })
    }

    /// After `failures` failed fetches in a row: `min_refresh`, doubled
    /// each time, at most the refresh interval.
    fn backoff(&self, failures: u32) -> Duration {
        let s = &self.settings;
        let doubled = s
            .min_refresh
            .saturating_mul(1 << failures.saturating_sub(1).min(20));
        doubled.min(s.refresh_interval.max(s.min_refresh))
    }
}
