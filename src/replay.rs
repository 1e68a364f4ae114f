//! Replay protection (`auth.max_connections_per_token`): how many live
//! connections each token authenticates, across every worker. A token is
//! known by its `jti` (scoped by its provider and `iss`) when it has one,
//! else by the SHA-256 of its text; only hashes are kept. An entry exists
//! only while a connection holds a [`TokenUse`] for it, so the map is
//! bounded by the number of live connections. Its lock is taken on first
//! auth, on a REAUTH that changes the token, and when a connection ends:
//! never on the relay path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use crate::auth::Identity;

/// A token's identity for counting: a SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// The key of a verified token: its `jti` (a string) within its
    /// provider and `iss`, else the hash of the token's text.
    pub fn of(identity: &Identity, token: &str) -> TokenKey {
        let mut hash = Sha256::new();
        match identity.claims().get("jti").and_then(|j| j.as_str()) {
            Some(jti) => {
                for part in [
                    "jti",
                    &identity.provider,
                    identity.iss.as_deref().unwrap_or_default(),
                    jti,
                ] {
                    // Length-prefixed, so that no two triples hash alike.
                    hash.update((part.len() as u64).to_be_bytes());
                    hash.update(part.as_bytes());
                }
            }
            None => {
                hash.update(b"token\0");
                hash.update(token.as_bytes());
            }
        }
        TokenKey(hash.finalize().into())
    }
}

/// The live connection count of every token in use (process-owned, kept
/// across a reload).
#[derive(Debug, Default)]
pub struct TokenUses {
    /// Connections per token; entries at zero are removed.
    live: Mutex<BTreeMap<TokenKey, u32>>,
}

impl TokenUses {
    /// One more connection on `key`, unless `max` already use it.
    pub fn claim(self: &Arc<Self>, key: TokenKey, max: u32) -> Option<TokenUse> {
        let mut live = lock(&self.live);
        let count = live.get(&key).copied().unwrap_or(0);
        if count >= max {
            return None;
        }
        live.insert(key, count + 1);
        Some(TokenUse {
            uses: self.clone(),
            key,
        })
    }

    /// Connections using `key` now.
    pub fn count(&self, key: TokenKey) -> u32 {
        lock(&self.live).get(&key).copied().unwrap_or(0)
    }

    /// Tokens in use now.
    pub fn len(&self) -> usize {
        lock(&self.live).len()
    }

    /// No token in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One connection's use of a token; dropping it gives the use back.
#[derive(Debug)]
pub struct TokenUse {
    /// The counts it is part of.
    uses: Arc<TokenUses>,
    /// The token.
    key: TokenKey,
}

impl TokenUse {
    /// The token it counts.
    pub fn key(&self) -> TokenKey {
        self.key
    }
}

impl Drop for TokenUse {
    fn drop(&mut self) {
        let mut live = lock(&self.uses.live);
        if let Some(count) = live.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                live.remove(&self.key);
            }
        }
    }
}

/// A lock that a panic elsewhere does not poison for everyone.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_and_entries_leave_at_zero() {
        let uses = Arc::new(TokenUses::default());
        let key = TokenKey([1; 32]);
        let a = uses.claim(key, 2).expect("first");
        let b = uses.claim(key, 2).expect("second");
        assert!(uses.claim(key, 2).is_none(), "a third over max 2");
        assert_eq!(uses.count(key), 2);
        drop(a);
        let c = uses.claim(key, 2).expect("room again");
        drop((b, c));
        assert!(uses.is_empty(), "no entry at zero");
        let other = uses.claim(TokenKey([2; 32]), 1).expect("another token");
        assert!(uses.claim(TokenKey([2; 32]), 1).is_none());
        assert_eq!(uses.len(), 1, "a refused claim adds no entry");
        drop(other);
        assert!(uses.is_empty());
    }
}
