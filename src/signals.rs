//! The process's signals, handled on the control thread: SIGTERM and
//! SIGINT drain ([`crate::drain`]); a second one ends the process at once
//! with exit status 128 plus the signal's number (143 for SIGTERM, 130 for
//! SIGINT), as a shell reports a process killed by it.

use std::sync::Arc;

use crate::drain::Drain;

/// Exit status after a second SIGTERM.
pub const EXIT_SECOND_SIGTERM: i32 = 128 + 15;
/// Exit status after a second SIGINT.
pub const EXIT_SECOND_SIGINT: i32 = 128 + 2;

/// SIGTERM and SIGINT, installed (so that from now on neither kills the
/// process by default).
pub struct Leave {
    /// SIGTERM.
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    /// SIGINT.
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Leave {
    /// Installs the handlers on `handle`'s runtime (the control thread's).
    pub fn install(handle: &tokio::runtime::Handle) -> std::io::Result<Leave> {
        let _entered = handle.enter();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Leave {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Leave {})
    }

    /// The next SIGTERM or SIGINT: its name and the exit status a second one gives.
    async fn next(&mut self) -> (&'static str, i32) {
        #[cfg(unix)]
        tokio::select! {
            Some(()) = self.term.recv() => ("SIGTERM", EXIT_SECOND_SIGTERM),
            Some(()) = self.int.recv() => ("SIGINT", EXIT_SECOND_SIGINT),
            else => std::future::pending().await,
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            ("ctrl-c", EXIT_SECOND_SIGINT)
        }
    }

    /// The first signal drains; the second ends the process at once.
    pub async fn run(mut self, drain: Arc<Drain>) {
        let (first, _) = self.next().await;
        drain.start(first);
        let (second, code) = self.next().await;
        tracing::warn!(
            signal = second,
            code,
            left = drain.live(),
            "second signal: exiting at once"
        );
        std::process::exit(code);
    }
}

/// SIGHUP: reload the configuration (the listener's certificate is re-read
/// by its own watcher, `tls/rotate.rs`, on the same signal).
pub struct Hangup {
    /// SIGHUP.
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    /// Installs the handler on `handle`'s runtime (the control thread's).
    pub fn install(handle: &tokio::runtime::Handle) -> std::io::Result<Hangup> {
        let _entered = handle.enter();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Hangup {
                signal: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Hangup {})
    }

    /// Reloads on every SIGHUP.
    pub async fn run(mut self, reloader: Arc<crate::reload::Reloader>) {
        #[cfg(unix)]
        while self.signal.recv().await.is_some() {
            // Refused reloads are logged by the reloader.
            let _ = reloader.reload("SIGHUP").await;
        }
        #[cfg(not(unix))]
        let _ = reloader;
    }
}
