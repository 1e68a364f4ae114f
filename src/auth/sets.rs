//! The verifier's remote key sets seen from the outside: starting their
//! refresh tasks (with what happens to connections whose key is removed),
//! waiting for the first sets at start-up, fetching them once for
//! `wsguard check --online`, the statistics for the metrics, and the wait
//! a token with an unknown `kid` may have to make.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;

use super::remote::RemoteKeys;
use super::{AuthError, FetchError, Identity, KeyStats, Verifier};
use crate::config::OnKeyRemoved;
use crate::registry::{Command, Registry};
use crate::rescue::CloseCause;

/// The outcome of [`Verifier::verify_or_wait`].
pub enum Verdict {
    /// Verified or refused.
    Done(Result<Arc<Identity>, AuthError>),
    /// The token's `kid` is being fetched: wait, then verify again.
    Wait(KeyWait),
}

/// Resolves when the refetch a token waits for has finished (whatever it
/// brought). Boxed: only a connection that meets an unknown `kid` has one.
pub struct KeyWait(Pin<Box<dyn Future<Output = ()> + Send>>);

impl KeyWait {
    /// Waits for the next change of `done`.
    pub(super) fn new(mut done: watch::Receiver<u64>) -> KeyWait {
        KeyWait(Box::pin(async move {
            // A closed channel (the verifier is gone) ends the wait too.
            let _ = done.changed().await;
        }))
    }
}

impl Future for KeyWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// One provider's fetched keys, for `wsguard check --online`.
pub struct ProviderKeys {
    /// The provider's name.
    pub provider: Arc<str>,
    /// Each usable key's `kid` and algorithm (its `alg`, or its family).
    pub keys: Result<Vec<(String, String)>, FetchError>,
}

impl Verifier {
    /// The providers' remote sets.
    fn remotes(&self) -> impl Iterator<Item = &Arc<RemoteKeys>> {
        self.providers.iter().filter_map(|p| p.remote.as_ref())
    }

    /// Starts one refresh task per remote set on `handle` (the control
    /// thread; a test's runtime). A key that leaves its set sends every
    /// live connection it verified (found in `registry`) a re-auth within
    /// `grace` or a close (`auth.jwks.on_key_removed`), with `key revoked`.
    pub fn start(&self, handle: &Handle, registry: Arc<Registry>, grace: Duration) {
        let command = match self.jwks.on_key_removed {
            OnKeyRemoved::Reauth => Command::Reauth {
                within: grace,
                cause: CloseCause::KeyRevoked,
            },
            OnKeyRemoved::Close => Command::Close(CloseCause::KeyRevoked),
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for remote in self.remotes() {
            let registry = registry.clone();
            let removed = move |remote: &RemoteKeys, kids: &[Arc<str>]| {
                let sent = registry.send_where(
                    |e| {
                        e.identity.provider == remote.name
                            && e.identity.kid.as_ref().is_some_and(|k| kids.contains(k))
                    },
                    command,
                );
                tracing::info!(provider = ?remote.name, kids = ?kids, connections = sent, "keys removed from the set");
            };
            let task = handle.spawn(remote.clone().refresh(removed));
            tasks.push(task.abort_handle());
        }
    }

    /// Waits for every remote set's first load (providers with
    /// `start_without_keys` are not waited for), at most
    /// `auth.jwks.startup_timeout`; the error names the provider and why.
    pub fn first_keys(&self) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let timeout = self.jwks.startup_timeout;
        let waits: Vec<_> = if self.jwks.start_without_keys {
            Vec::new()
        } else {
            self.remotes()
                .map(|r| (r.name.clone(), r.state()))
                .collect()
        };
        async move {
            let deadline = tokio::time::Instant::now() + timeout;
            for (name, mut state) in waits {
                let loaded = matches!(
                    tokio::time::timeout_at(deadline, state.wait_for(|s| s.loaded)).await,
                    Ok(Ok(_))
                );
                if !loaded {
                    let why = state
                        .borrow()
                        .last_error
                        .as_ref()
                        .map_or_else(|| "no answer yet".to_owned(), ToString::to_string);
                    return Err(format!(
                        "provider {name:?}: no keys within auth.jwks.startup_timeout ({}): {why}",
                        humantime::format_duration(timeout)
                    ));
                }
            }
            Ok(())
        }
    }

    /// Fetches every remote set once (`wsguard check --online`), without installing it.
    pub fn fetch_all(&self) -> impl Future<Output = Vec<ProviderKeys>> + Send + 'static {
        let remotes: Vec<Arc<RemoteKeys>> = self.remotes().cloned().collect();
        async move {
            let mut out = Vec::new();
            for remote in remotes {
                let keys = remote.fetch().await.map(|(keys, _)| {
                    keys.iter()
                        .map(|k| {
                            let kid = k.kid.as_deref().unwrap_or_default().to_owned();
                            let alg = k.alg.map_or_else(
                                || format!("any {:?}", k.family),
                                |a| format!("{a:?}"),
                            );
                            (kid, alg)
                        })
                        .collect()
                });
                out.push(ProviderKeys {
                    provider: remote.name.clone(),
                    keys,
                });
            }
            out
        }
    }

    /// Whether any provider fetches its keys.
    pub fn has_remote_keys(&self) -> bool {
        self.remotes().next().is_some()
    }

    /// Refresh results, key counts and age of each remote set, by provider
    /// name (for the metrics).
    pub fn key_stats(&self) -> Vec<(Arc<str>, &KeyStats)> {
        self.remotes().map(|r| (r.name.clone(), &r.stats)).collect()
    }
}

impl Drop for Verifier {
    /// Stops the refresh tasks.
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}
