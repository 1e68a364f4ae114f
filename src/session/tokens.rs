//! The connection's use of its token under `auth.max_connections_per_token`
//! (the counts are process-wide: [`crate::replay`]).

use crate::auth::Identity;
use crate::replay::{TokenKey, TokenUse};

use super::{ClientIo, Session};

/// What a REAUTH's token means for the connection's count.
pub(super) enum Reclaim {
    /// Nothing changes: no limit, or the token the connection already uses.
    Same,
    /// The connection now uses this token (its old use is given back when replaced).
    New(Box<TokenUse>),
    /// The token already authenticates the most connections allowed.
    InUse,
}

impl<C: ClientIo> Session<C> {
    /// Counts the first token for this connection; false when it already
    /// authenticates `auth.max_connections_per_token` live connections.
    pub(super) fn claim_token(&mut self, identity: &Identity, token: &str) -> bool {
        let Some(max) = self.proxy.max_connections_per_token else {
            return true;
        };
        let key = TokenKey::of(identity, token);
        match self.local.process.tokens.claim(key, max) {
            Some(used) => {
                self.token_use = Some(Box::new(used));
                true
            }
            None => false,
        }
    }

    /// Counts a REAUTH's token for this connection instead of the current one.
    pub(super) fn reclaim_token(&self, identity: &Identity, token: Option<&str>) -> Reclaim {
        let (Some(max), Some(token)) = (self.proxy.max_connections_per_token, token) else {
            return Reclaim::Same;
        };
        let key = TokenKey::of(identity, token);
        if self.token_use.as_ref().is_some_and(|u| u.key() == key) {
            return Reclaim::Same;
        }
        match self.local.process.tokens.claim(key, max) {
            Some(used) => Reclaim::New(Box::new(used)),
            None => Reclaim::InUse,
        }
    }
}
