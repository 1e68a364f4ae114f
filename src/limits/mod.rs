//! Connection caps and per-client rates (`[limits]`), held by the process
//! (outside the swappable [`crate::proxy::Proxy`]) across all workers.
//!
//! - Per process: WebSocket connections and the unauthenticated ones among
//!   them (atomic counts).
//! - Per client address ([`AddrKey`]): a connection rate and a failed-auth
//!   rate (governor limiters in a moka cache with a capacity and an idle
//!   expiry, so that an address spray cannot grow it), and a concurrent
//!   count (a map whose entries are removed when they reach zero: a
//!   capacity-bounded cache could evict a count whose connections are open).
//! - Per subject (`iss` + `sub`): a count, kept only when
//!   `limits.max_connections_per_subject` is set.
//!
//! A connection holds an [`Admission`], which gives back what it took when
//! dropped. Cost: one per-address lookup before the upgrade, one
//! per-subject lookup after auth, one at the end; nothing on the relay path.

mod address;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::MonotonicClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// One address's limiter: governor's GCRA state on the std monotonic clock
/// (a zero-sized clock: quanta's costs tens of microseconds to create and
/// more memory per limiter).
type Limiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock>;

pub use address::{client_address, AddrKey};

use crate::auth::Identity;
use crate::config::LimitsConfig;

/// Which limit refused a connection (the `limit` label of
/// `wsguard_limit_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.max_connections`.
    MaxConnections = 0,
    /// `limits.max_unauthenticated`.
    MaxUnauthenticated = 1,
    /// `limits.per_address_rate`.
    PerAddressRate = 2,
    /// `limits.per_address_connections`.
    PerAddressConnections = 3,
    /// `limits.failed_auth_max` (a refusal during the cool-down).
    FailedAuth = 4,
    /// `limits.max_connections_per_subject`.
    PerSubject = 5,
}

impl Limit {
    /// Every limit, in label order.
    pub const ALL: [Limit; 6] = [
        Limit::MaxConnections,
        Limit::MaxUnauthenticated,
        Limit::PerAddressRate,
        Limit::PerAddressConnections,
        Limit::FailedAuth,
        Limit::PerSubject,
    ];

    /// The `limit` label value.
    pub fn label(self) -> &'static str {
        match self {
            Limit::MaxConnections => "max_connections",
            Limit::MaxUnauthenticated => "max_unauthenticated",
            Limit::PerAddressRate => "per_address_rate",
            Limit::PerAddressConnections => "per_address_connections",
            Limit::FailedAuth => "failed_auth",
            Limit::PerSubject => "per_subject",
        }
    }

    /// Whether the answer is 503 `over_capacity` (else 429 `rate_limited`).
    pub fn over_capacity(self) -> bool {
        matches!(self, Limit::MaxConnections | Limit::MaxUnauthenticated)
    }
}

/// The rates of one client address.
struct AddrRates {
    /// New connections (`per_address_rate`), if limited.
    connect: Option<Limiter>,
    /// Failed authentications (`failed_auth_max` per `failed_auth_window`), if limited.
    failures: Option<Limiter>,
    /// Refused until then (milliseconds since [`Limits::epoch`]; 0: not).
    cooling_until: AtomicU64,
}

/// A subject as the per-subject cap counts it: `iss` and `sub` of an identity.
#[derive(Debug, Clone)]
struct Subject(Arc<Identity>);

impl PartialEq for Subject {
    fn eq(&self, other: &Subject) -> bool {
        self.0.sub == other.0.sub && self.0.iss == other.0.iss
    }
}
impl Eq for Subject {}
impl Hash for Subject {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.iss.hash(state);
        self.0.sub.hash(state);
    }
}

/// The process's limiter state.
pub struct Limits {
    /// The configured values.
    config: LimitsConfig,
    /// WebSocket connections (answered 101, not ended).
    total: AtomicUsize,
    /// Those not yet authenticated.
    unauthenticated: AtomicUsize,
    /// Open connections per address; an entry is removed at zero.
    concurrent: Mutex<HashMap<AddrKey, u32>>,
    /// Rates per address: bounded by `address_capacity`, idle ones expire.
    rates: moka::sync::Cache<AddrKey, Arc<AddrRates>>,
    /// Authenticated connections per subject (with a per-subject cap only).
    subjects: Mutex<HashMap<Subject, u32>>,
    /// The origin of `cooling_until`.
    epoch: Instant,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("total", &self.total)
            .field("unauthenticated", &self.unauthenticated)
            .field("addresses", &self.rates.entry_count())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A limiter allowing `burst` at once, then one more per `period`
/// (`None`: no limit).
fn limiter(burst: u32, period: Duration) -> Option<Limiter> {
    let burst = NonZeroU32::new(burst)?;
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(RateLimiter::direct_with_clock(quota, MonotonicClock))
}

impl Limits {
    /// The state for `config` (checked by [`LimitsConfig::check`]).
    pub fn new(config: &LimitsConfig) -> Limits {
        Limits {
            config: config.clone(),
            total: AtomicUsize::new(0),
            unauthenticated: AtomicUsize::new(0),
            concurrent: Mutex::new(HashMap::new()),
            rates: moka::sync::Cache::builder()
                .max_capacity(config.address_capacity)
                .time_to_idle(config.address_idle)
                .build(),
            subjects: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// The configured values.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// The key of a client address.
    pub fn key(&self, ip: std::net::IpAddr) -> AddrKey {
        AddrKey::new(ip, self.config.ipv6_prefix)
    }

    /// Addresses whose rates are remembered now (after pending evictions).
    pub fn remembered_addresses(&self) -> u64 {
        self.rates.run_pending_tasks();
        self.rates.entry_count()
    }

    /// WebSocket connections counted now (answered 101, not ended).
    pub fn connections(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Addresses with open connections.
    pub fn addresses_with_connections(&self) -> usize {
        lock(&self.concurrent).len()
    }

    /// The rates of `addr`, created on first sight.
    fn rates_of(&self, addr: AddrKey) -> Arc<AddrRates> {
        let c = &self.config;
        self.rates.get_with(addr, || {
            // per_address_burst at once, then per_address_rate per second.
            let connect = NonZeroU32::new(c.per_address_rate)
                .and_then(|rate| limiter(c.per_address_burst, Duration::from_secs(1) / rate.get()));
            // failed_auth_max at once, then as many again per window.
            let failures = NonZeroU32::new(c.failed_auth_max)
                .and_then(|max| limiter(max.get(), c.failed_auth_window / max.get()));
            Arc::new(AddrRates {
                connect,
                failures,
                cooling_until: AtomicU64::new(0),
            })
        })
    }

    /// Admits a new WebSocket connection from `addr`, or says which limit refuses it.
    pub fn admit(self: &Arc<Limits>, addr: AddrKey) -> Result<Admission, Limit> {
        let c = &self.config;
        if let Some(connect) = &self.rates_of(addr).connect {
            if connect.check().is_err() {
                return Err(Limit::PerAddressRate);
            }
        }
        let mut admission = Admission {
            limits: self.clone(),
            addr,
            counted: Counted::default(),
            subject: None,
        };
        if !take(&self.total, c.max_connections) {
            return Err(Limit::MaxConnections);
        }
        admission.counted.total = true;
        if !take(&self.unauthenticated, c.max_unauthenticated) {
            return Err(Limit::MaxUnauthenticated);
        }
        admission.counted.unauthenticated = true;
        {
            let mut concurrent = lock(&self.concurrent);
            let count = concurrent.entry(addr).or_insert(0);
            if *count as usize >= c.per_address_connections {
                if *count == 0 {
                    concurrent.remove(&addr);
                }
                return Err(Limit::PerAddressConnections);
            }
            *count += 1;
        }
        admission.counted.address = true;
        Ok(admission)
    }

    /// Whether `addr` is in its failed-auth cool-down.
    pub fn cooling(&self, addr: AddrKey) -> bool {
        self.rates
            .get(&addr)
            .is_some_and(|r| r.cooling_until.load(Ordering::Relaxed) > self.millis(Instant::now()))
    }

    /// Counts a failed authentication from `addr`; one more than
    /// `failed_auth_max` within the window starts the cool-down.
    pub fn auth_failed(&self, addr: AddrKey) {
        let rates = self.rates_of(addr);
        if let Some(failures) = &rates.failures {
            if failures.check().is_err() {
                let until = self.millis(Instant::now() + self.config.failed_auth_cooldown);
                rates.cooling_until.store(until, Ordering::Relaxed);
            }
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Adds one to `count` unless that would pass `max`.
fn take(count: &AtomicUsize, max: usize) -> bool {
    count
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// What an [`Admission`] holds.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    /// One of `total`.
    total: bool,
    /// One of `unauthenticated`.
    unauthenticated: bool,
    /// One of its address's concurrent count.
    address: bool,
}

/// What one connection holds of the limits; given back when dropped.
#[derive(Debug)]
pub struct Admission {
    /// The process's limits.
    limits: Arc<Limits>,
    /// The client's address.
    addr: AddrKey,
    /// The counts taken.
    counted: Counted,
    /// Its subject, once counted against `max_connections_per_subject`.
    subject: Option<Subject>,
}

/// Over `max_connections_per_subject`: what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverSubject {
    /// Within the cap (or no cap).
    Within,
    /// Refuse this connection.
    Refuse,
    /// Admitted; close the subject's oldest other connection.
    EvictOldest,
}

impl Admission {
    /// The client's address.
    pub fn addr(&self) -> AddrKey {
        self.addr
    }

    /// The process's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The connection authenticated as `identity`: it no longer counts as
    /// unauthenticated, and counts against its subject's cap.
    pub fn authenticated(&mut self, identity: &Arc<Identity>) -> OverSubject {
        if std::mem::take(&mut self.counted.unauthenticated) {
            self.limits.unauthenticated.fetch_sub(1, Ordering::AcqRel);
        }
        let Some(cap) = self.limits.config.max_connections_per_subject else {
            return OverSubject::Within;
        };
        if self.subject.is_some() {
            return OverSubject::Within;
        }
        let subject = Subject(identity.clone());
        let mut subjects = lock(&self.limits.subjects);
        let count = subjects.entry(subject.clone()).or_insert(0);
        if (*count as usize) < cap {
            *count += 1;
            drop(subjects);
            self.subject = Some(subject);
            return OverSubject::Within;
        }
        match self.limits.config.evict {
            crate::config::Evict::Refuse => OverSubject::Refuse,
            crate::config::Evict::Oldest => {
                *count += 1;
                drop(subjects);
                self.subject = Some(subject);
                OverSubject::EvictOldest
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let l = &self.limits;
        if self.counted.total {
            l.total.fetch_sub(1, Ordering::AcqRel);
        }
        if self.counted.unauthenticated {
            l.unauthenticated.fetch_sub(1, Ordering::AcqRel);
        }
        if self.counted.address {
            let mut concurrent = lock(&l.concurrent);
            if let Some(count) = concurrent.get_mut(&self.addr) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    concurrent.remove(&self.addr);
                }
            }
        }
        if let Some(subject) = self.subject.take() {
            let mut subjects = lock(&l.subjects);
            if let Some(count) = subjects.get_mut(&subject) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    subjects.remove(&subject);
                }
            }
        }
    }
}
