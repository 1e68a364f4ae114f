//! What the process owns apart from the configuration-built [`crate::proxy::Proxy`]:
//! the state that outlives a configuration reload (the registry of live
//! connections; revocations, limiter state and the like join it). Every
//! connection reaches it through its worker's [`Local`].

use std::sync::Arc;

use crate::registry::{Registry, Shard};
use crate::replay::TokenUses;
use crate::revocation::Revocations;

/// Process-owned state shared by every worker and the control thread.
#[derive(Debug)]
pub struct Process {
    /// The registry of live connections (one shard per worker).
    pub registry: Arc<Registry>,
    /// Live connections per token (`auth.max_connections_per_token`).
    pub tokens: Arc<TokenUses>,
    /// The drain as the workers and connections see it (and the count of
    /// live connections it waits for).
    pub drain: crate::drain::Signal,
    /// The proxy of the current configuration, once `wsguard run` set it
    /// (a reload swaps it): each accept loads it, live sessions keep
    /// theirs, and their REAUTHs use its verifier. `None` (tests, the
    /// demo): the proxy given to the accept loop.
    pub proxy: crate::reload::Current,
    /// The revocations in force (replace it before the process is shared
    /// to configure it: `[revocation]`).
    pub revocations: Arc<Revocations>,
    /// Connection caps and per-client rates (`[limits]`), across workers.
    pub limits: Arc<crate::limits::Limits>,
}

impl Process {
    /// The state for a process with `workers` workers.
    pub fn new(workers: usize) -> Process {
        Process {
            registry: Arc::new(Registry::new(workers)),
            tokens: Arc::default(),
            drain: crate::drain::Signal::default(),
            proxy: crate::reload::Current::default(),
            revocations: Arc::default(),
            limits: Arc::new(crate::limits::Limits::new(
                &crate::config::LimitsConfig::default(),
            )),
        }
    }

    /// The same, with the limits of `[limits]`.
    pub fn with_limits(mut self, config: &crate::config::LimitsConfig) -> Process {
        self.limits = Arc::new(crate::limits::Limits::new(config));
        self
    }

    /// Worker `index`'s view of it.
    pub fn local(self: &Arc<Process>, index: usize) -> Local {
        Local {
            shard: self.registry.shard(index),
            process: self.clone(),
        }
    }
}

impl Default for Process {
    /// The state of a one-worker process.
    fn default() -> Process {
        Process::new(1)
    }
}

/// One worker's view of the process state: the process's, plus its own
/// registry shard. Cloned per connection (two reference counts).
#[derive(Debug, Clone)]
pub struct Local {
    /// The process-owned state.
    pub process: Arc<Process>,
    /// This worker's shard of the registry.
    pub shard: Arc<Shard>,
}

impl Default for Local {
    /// A one-worker process of its own (the demo, unit tests).
    fn default() -> Local {
        Arc::new(Process::default()).local(0)
    }
}
