//! The inactivity timeout (`session.idle_timeout`): no timer reset and no
//! clock read per message. Relaying a message only sets a flag
//! ([`Session::client_active`], [`Session::upstream_active`]); the flags are
//! folded into [`Idle::last`] with one clock read when the task is about to
//! sleep (and when the timer fires). The connection's one timer looks at
//! [`Idle::check`], which moves only when it fires: at most twice per
//! `idle_timeout` on a busy connection.

use tokio::time::Instant;

use super::{ClientIo, Session};
use crate::config::IdleCounts;
use crate::rescue::CloseCause;

/// A relaying connection's inactivity clock (boxed in the session: only
/// connections with `session.idle_timeout` have one).
#[derive(Debug)]
pub(super) struct Idle {
    /// The last application message seen (as of the last fold).
    last: Instant,
    /// When the timer looks next.
    pub(super) check: Instant,
    /// `idle_warning` was sent, and no message came since.
    warned: bool,
    /// The upstream's messages count too (`idle_counts = "both"`).
    both: bool,
}

impl Idle {
    /// Moves `last` to `now()` if a flag that counts is set; clears both flags.
    fn fold(&mut self, client: &mut bool, upstream: &mut bool, now: impl FnOnce() -> Instant) {
        if *client || (self.both && *upstream) {
            self.last = now();
            self.warned = false;
        }
        *client = false;
        *upstream = false;
    }
}

impl<C: ClientIo> Session<C> {
    /// Starts the inactivity clock (the upstream is open), if configured.
    pub(super) fn start_idle(&mut self) {
        let s = &self.proxy.session;
        let Some(timeout) = s.idle_timeout else {
            return;
        };
        let now = Instant::now();
        self.client_active = false;
        self.upstream_active = false;
        self.idle = Some(Box::new(Idle {
            last: now,
            check: now + timeout.saturating_sub(s.idle_warning),
            warned: false,
            both: s.idle_counts == IdleCounts::Both,
        }));
    }

    /// Before the task sleeps: the messages relayed since the last fold
    /// move the inactivity clock (one clock read per wake-up, not per message).
    pub(super) fn fold_activity(&mut self) {
        if let Some(idle) = &mut self.idle {
            idle.fold(
                &mut self.client_active,
                &mut self.upstream_active,
                Instant::now,
            );
        }
    }

    /// The timer reached [`Idle::check`]: warn, close, or look again later.
    pub(super) fn on_idle_timer(&mut self, now: Instant) {
        let s = &self.proxy.session;
        let (Some(timeout), warning) = (s.idle_timeout, s.idle_warning) else {
            return;
        };
        let Some(idle) = &mut self.idle else {
            return;
        };
        if idle.check > now {
            return;
        }
        idle.fold(&mut self.client_active, &mut self.upstream_active, || now);
        let close_at = idle.last + timeout;
        if close_at <= now {
            return self.close(CloseCause::IdleTimeout);
        }
        let warn_at = close_at.checked_sub(warning).unwrap_or(idle.last);
        if idle.warned || warn_at > now {
            idle.check = if idle.warned { close_at } else { warn_at };
            return;
        }
        idle.warned = true;
        idle.check = close_at;
        if let Some(text) = self.proxy.dialect.idle_warning(close_at - now) {
            self.client.push_text(&text);
            self.audit_notice("idle_warning", "idle_warning sent");
        }
    }
}
