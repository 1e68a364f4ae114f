//! Revoked tokens: by subject (`sub` and `iss`: tokens issued at or before
//! the revocation), by `jti`, or by session id (a configurable claim). Kept
//! in bounded memory (moka, least recently used evicted first), each entry
//! expiring when it stops applying; checked on every auth and REAUTH with
//! one in-memory lookup per kind in force (nothing at all while none ever
//! was). Owned by the process ([`crate::process::Process`]), outside
//! anything a reload replaces; shared with other replicas through Redis
//! ([`redis`]) when `revocation.redis_url` is set.

pub mod redis;
mod request;

pub use request::{parse_request, RequestError};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::auth::{unix_now, Identity};
use crate::config::RevocationConfig;
use crate::registry::{Command, Registry};
use crate::rescue::CloseCause;

/// What a revocation matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// Tokens of a subject issued at or before the revocation (or without `iat`).
    Sub {
        /// The `sub`.
        sub: String,
        /// The `iss`; `None` matches any (allowed with one provider only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iss: Option<String>,
    },
    /// Tokens with this `jti`.
    Jti {
        /// The `jti`.
        jti: String,
    },
    /// Tokens with this session id (the `revocation.sid_claim` claim).
    Sid {
        /// The session id.
        sid: String,
    },
}

impl Target {
    /// The index of its kind in [`crate::metrics::REVOCATION_KINDS`].
    pub fn kind(&self) -> usize {
        match self {
            Target::Sub { .. } => 0,
            Target::Jti { .. } => 1,
            Target::Sid { .. } => 2,
        }
    }

    /// The key it is stored under (here and, after the prefix, in Redis):
    /// a JSON array, so that no value can be mistaken for another.
    pub fn key(&self) -> String {
        // Serialized straight from tuples (no JSON tree): one allocation.
        let key = match self {
            Target::Sub { sub, iss } => serde_json::to_string(&("sub", iss, sub)),
            Target::Jti { jti } => serde_json::to_string(&("jti", jti)),
            Target::Sid { sid } => serde_json::to_string(&("sid", sid)),
        };
        key.unwrap_or_default()
    }
}

/// One revocation in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What it matches.
    #[serde(flatten)]
    pub target: Target,
    /// When it was made (unix seconds): a `sub` revocation refuses tokens
    /// whose `iat` is at or before it.
    pub at: u64,
    /// When it stops applying (unix seconds).
    pub until: u64,
}

impl Revocation {
    /// Whether one read from Redis (another replica's, or anyone's who can
    /// write there) is in force and within the API's own bounds: made no
    /// later than a minute from now, ending within ten years and a minute.
    /// Others are ignored, so that no stored value can make a time that
    /// cannot be shown or computed.
    pub fn plausible(&self, now: u64) -> bool {
        let slack = 60;
        self.until > now
            && self.at <= now.saturating_add(slack)
            && self.until <= now.saturating_add(request::MAX_TTL.as_secs() + slack)
    }

    /// Whether it refuses the token behind `identity` (`sid_claim`: the
    /// session-id claim's name).
    pub fn refuses(&self, identity: &Identity, sid_claim: &str) -> bool {
        match &self.target {
            Target::Sub { sub, iss } => {
                if *sub != identity.sub || (iss.is_some() && *iss != identity.iss) {
                    return false;
                }
                let iat = identity.claims().get("iat").and_then(|v| v.as_f64());
                iat.is_none_or(|iat| iat <= self.at as f64)
            }
            Target::Jti { jti } => claim_is(identity, "jti", jti),
            Target::Sid { sid } => claim_is(identity, sid_claim, sid),
        }
    }

    /// The two combined (the same target revoked twice): the later time and the longer life.
    fn merged(&self, other: &Revocation) -> Revocation {
        Revocation {
            target: self.target.clone(),
            at: self.at.max(other.at),
            until: self.until.max(other.until),
        }
    }

    /// How long it still applies.
    fn left(&self) -> Duration {
        Duration::from_secs(self.until.saturating_sub(unix_now()))
    }
}

/// Whether the token's claim `name` is the string `want`.
fn claim_is(identity: &Identity, name: &str, want: &str) -> bool {
    identity.claims().get(name).and_then(|v| v.as_str()) == Some(want)
}

/// Each entry lives as long as it applies.
struct UntilExpiry;

impl moka::Expiry<String, Revocation> for UntilExpiry {
    fn expire_after_create(&self, _: &String, v: &Revocation, _: Instant) -> Option<Duration> {
        Some(v.left())
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Revocation,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.left())
    }
}

/// What the Redis link is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Change {
    /// A revocation made (or extended).
    Revoke {
        /// It.
        revocation: Revocation,
    },
    /// A revocation lifted.
    Lift {
        /// What it matched.
        target: Target,
    },
}

/// The revocations in force, and who else must hear of new ones.
pub struct Revocations {
    /// By [`Target::key`].
    entries: moka::sync::Cache<String, Revocation>,
    /// Writers take it, so that merging an entry is one step.
    write: Mutex<()>,
    /// Whether a revocation of each kind (by [`Target::kind`]) was ever
    /// stored: the check skips kinds never used.
    used: [AtomicBool; 3],
    /// The session-id claim's name.
    sid_claim: String,
    /// How long a revocation applies by default.
    pub default_ttl: Duration,
    /// How many providers are configured (`iss` is needed with more than one).
    pub providers: AtomicUsize,
    /// The Redis link's queue, when there is one.
    outbox: OnceLock<tokio::sync::mpsc::Sender<Change>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for Revocations {
    /// The defaults of `[revocation]`, one provider.
    fn default() -> Revocations {
        Revocations::new(&RevocationConfig::default(), 1)
    }
}

impl Revocations {
    /// An empty store for `[revocation]` with `providers` providers.
    pub fn new(config: &RevocationConfig, providers: usize) -> Revocations {
        let entries = moka::sync::Cache::builder()
            .max_capacity(config.max_entries)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .expire_after(UntilExpiry)
            .eviction_listener(|_, _, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    tracing::warn!("revocation.max_entries reached: the least recently used revocation was dropped");
                }
            })
            .build();
        Revocations {
            entries,
            write: Mutex::new(()),
            used: Default::default(),
            sid_claim: config.sid_claim.clone(),
            default_ttl: config.default_ttl,
            providers: AtomicUsize::new(providers),
            outbox: OnceLock::new(),
        }
    }

    /// Whether a revocation refuses the token behind `identity`: one lookup
    /// per kind ever revoked (the claims are decoded only for `jti`/`sid`
    /// or a matching `sub`).
    pub fn refuses(&self, identity: &Identity) -> bool {
        let used = |kind: usize| self.used[kind].load(Ordering::Relaxed);
        if !(used(0) || used(1) || used(2)) {
            return false;
        }
        let mut targets = Vec::with_capacity(2);
        if used(0) {
            let sub = identity.sub.clone();
            if identity.iss.is_some() {
                targets.push(Target::Sub {
                    sub: sub.clone(),
                    iss: identity.iss.clone(),
                });
            }
            targets.push(Target::Sub { sub, iss: None });
        }
        if used(1) || used(2) {
            let claims = identity.claims();
            let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            if let Some(jti) = text("jti").filter(|_| used(1)) {
                targets.push(Target::Jti { jti });
            }
            if let Some(sid) = text(&self.sid_claim).filter(|_| used(2)) {
                targets.push(Target::Sid { sid });
            }
        }
        targets.iter().any(|t| {
            self.entries
                .get(&t.key())
                .is_some_and(|r| r.until > unix_now() && r.refuses(identity, &self.sid_claim))
        })
    }

    /// Stores `revocation` (merged with one already in force for the same
    /// target) and closes the live connections it matches; returns the
    /// revocation now in force and how many were closed. Told to Redis
    /// when `announce`.
    pub fn revoke(
        &self,
        revocation: Revocation,
        registry: &Registry,
        announce: bool,
    ) -> (Revocation, usize) {
        let (stored, changed) = self.store(revocation);
        // Unchanged: what it matches was closed when it was first stored.
        let closed = if changed {
            registry.send_where(
                |e| stored.refuses(&e.identity, &self.sid_claim),
                Command::Close(CloseCause::TokenRevoked),
            )
        } else {
            0
        };
        if announce {
            self.announce(Change::Revoke {
                revocation: stored.clone(),
            });
        }
        (stored, closed)
    }

    /// Stores `revocation`, merged with one in force for the same target;
    /// returns what is now in force and whether that changed anything.
    /// The caller closes what it matches (see [`Revocations::close_refused`]).
    pub fn store(&self, revocation: Revocation) -> (Revocation, bool) {
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let key = revocation.target.key();
        let old = self.entries.get(&key).filter(|r| r.until > unix_now());
        let stored = match &old {
            Some(old) => old.merged(&revocation),
            None => revocation,
        };
        if old.as_ref() == Some(&stored) {
            return (stored, false);
        }
        self.used[stored.target.kind()].store(true, Ordering::Relaxed);
        self.entries.insert(key, stored.clone());
        (stored, true)
    }

    /// Closes every live connection whose token a revocation in force
    /// refuses (one pass over the registry, one lookup per connection and
    /// kind: after storing many at once); returns how many.
    pub fn close_refused(&self, registry: &Registry) -> usize {
        registry.send_where(
            |e| self.refuses(&e.identity),
            Command::Close(CloseCause::TokenRevoked),
        )
    }

    /// Lifts the revocation of `target`; false if none was in force. Told
    /// to Redis when `announce`.
    pub fn lift(&self, target: &Target, announce: bool) -> bool {
        let removed = {
            let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
            self.entries.remove(&target.key())
        };
        if announce {
            self.announce(Change::Lift {
                target: target.clone(),
            });
        }
        removed.is_some_and(|r| r.until > unix_now())
    }

    /// Every revocation in force, soonest to end first.
    pub fn list(&self) -> Vec<Revocation> {
        let now = unix_now();
        let mut all: Vec<Revocation> = self
            .entries
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.until > now)
            .collect();
        all.sort_by_key(|r| (r.until, r.target.key()));
        all
    }

    /// Connects the Redis link's queue (once).
    pub fn attach(&self, outbox: tokio::sync::mpsc::Sender<Change>) {
        let _ = self.outbox.set(outbox);
    }

    /// Queues a change for Redis (dropped, with a warning, when the queue is full).
    fn announce(&self, change: Change) {
        let Some(outbox) = self.outbox.get() else {
            return;
        };
        if outbox.try_send(change).is_err() {
            tracing::warn!(
                "revocation.redis_queue is full: a revocation change is kept here but will not reach other replicas"
            );
        }
    }
}

#[cfg(test)]
mod tests;
