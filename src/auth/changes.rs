//! What a configuration reload changes in the keys: which live connections
//! were verified by a key the new verifier no longer has (they then follow
//! `auth.jwks.on_key_removed`), and stopping the old verifier's refresh
//! tasks once the new one is in.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::keys::Key;
use super::provider::Provider;
use super::Verifier;
use crate::config::OnKeyRemoved;
use crate::registry::{Command, Entry};
use crate::rescue::CloseCause;

/// The keys of one provider that a reload removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The provider's name.
    pub provider: Arc<str>,
    /// Every connection of the provider is affected: the provider is gone,
    /// or a removed key had no `kid` (a key without one may have verified
    /// a token with any `kid`, and no token can be told apart from another).
    pub all: bool,
    /// The `kid`s whose key was removed (or replaced by other material).
    pub kids: Vec<Arc<str>>,
}

impl Removed {
    /// Whether `entry`'s token was (or may have been) verified by a removed key.
    pub fn affects(&self, entry: &Entry) -> bool {
        entry.identity.provider == self.provider
            && (self.all
                || entry
                    .identity
                    .kid
                    .as_ref()
                    .is_some_and(|k| self.kids.contains(k)))
    }
}

/// Every key a provider can verify with now: its local keys and its
/// fetched set, as (`kid`, fingerprint).
fn keys_of(provider: &Provider) -> BTreeSet<(Option<Arc<str>>, [u8; 32])> {
    let own = |k: &Key| (k.kid.clone(), k.fingerprint);
    let mut keys: BTreeSet<_> = provider.keys.iter().map(own).collect();
    if let Some(remote) = &provider.remote {
        keys.extend(remote.current().keys.iter().map(own));
    }
    keys
}

impl Verifier {
    /// The keys `self` has that `new` does not, by provider (providers are
    /// matched by name).
    pub fn removed_in(&self, new: &Verifier) -> Vec<Removed> {
        let mut out = Vec::new();
        for old in &self.providers {
            let Some(next) = new.providers.iter().find(|p| p.name == old.name) else {
                out.push(Removed {
                    provider: old.name.clone(),
                    all: true,
                    kids: Vec::new(),
                });
                continue;
            };
            let kept = keys_of(next);
            let gone: Vec<_> = keys_of(old).difference(&kept).cloned().collect();
            if gone.is_empty() {
                continue;
            }
            out.push(Removed {
                provider: old.name.clone(),
                all: gone.iter().any(|(kid, _)| kid.is_none()),
                kids: gone.into_iter().filter_map(|(kid, _)| kid).collect(),
            });
        }
        out
    }

    /// What a connection whose key was removed gets (`auth.jwks.on_key_removed`).
    pub fn on_key_removed(&self, grace: std::time::Duration) -> Command {
        match self.jwks.on_key_removed {
            OnKeyRemoved::Reauth => Command::Reauth {
                within: grace,
                cause: CloseCause::KeyRevoked,
            },
            OnKeyRemoved::Close => Command::Close(CloseCause::KeyRevoked),
        }
    }

    /// Stops the refresh tasks (a reload replaced this verifier; live
    /// connections keep it, but their REAUTHs use the new one).
    pub fn stop(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}
