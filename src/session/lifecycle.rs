//! The token's life on a connection: the first auth, the upstream connect,
//! `auth_required`, REAUTH, suspension at `exp`, heartbeats and the other
//! deadlines. Transitions of [`Phase`] driven by frames and by the timer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::time::Instant;

use super::{Answer, ClientIo, Credentials, Flow, Listed, Phase, Session, AUDIT};
use crate::auth::{unix_now, AuthError, Identity, KeyWait, Verdict};
use crate::headers::ClientRequest;
use crate::limits::OverSubject;
use crate::metrics::{self, AuthKind, AuthReason};
use crate::protocol::{self, ClientFrame};
use crate::registry::Command;
use crate::relay::Leg;
use crate::rescue::CloseCause;
use crate::upstream::{UpstreamError, UpstreamSocket};
use crate::wire::Role;

/// The `Instant` at which a unix time (seconds) is reached.
fn instant_of(unix: u64) -> Instant {
    let until = UNIX_EPOCH
        .checked_add(Duration::from_secs(unix))
        .and_then(|at| at.duration_since(SystemTime::now()).ok())
        .unwrap_or(Duration::ZERO);
    let now = Instant::now();
    now.checked_add(until).unwrap_or(now + super::FAR_FUTURE)
}

impl Credentials {
    /// Clocks for a verified token: `auth_required` is due `lead` before
    /// `exp`, plus a random part of `jitter`.
    fn new(identity: Arc<Identity>, lead: Duration, jitter: Duration) -> Credentials {
        let expires_at = instant_of(identity.exp);
        let lead = lead + jitter.mul_f64(rand::random::<f64>());
        let notice_at = expires_at.checked_sub(lead).unwrap_or_else(Instant::now);
        Credentials {
            identity,
            expires_at,
            notice_at,
            failures: 0,
            last_attempt: None,
            expiry_cause: CloseCause::TokenExpired,
        }
    }
}

impl<C: ClientIo> Session<C> {
    /// The first frame: it must be an auth frame with a valid token.
    pub(super) fn on_first_frame(&mut self, text: &str) {
        if self.cooling_down() {
            return self.close(CloseCause::TooManyAttempts);
        }
        if text.len() > self.proxy.session.max_auth_frame_bytes {
            return self.close(CloseCause::AuthFrameTooLarge);
        }
        let (id, token) = match self.proxy.dialect.classify_first(text) {
            ClientFrame::Auth { id, token } => (id, token),
            ClientFrame::Data | ClientFrame::Reserved { .. } | ClientFrame::Malformed => {
                return self.close(CloseCause::AuthRequired)
            }
        };
        let started = std::time::Instant::now();
        let Some(token) = token else {
            self.count_auth(AuthKind::First, AuthReason::MissingToken, started, None);
            self.auth_failed();
            return self.close(CloseCause::InvalidToken);
        };
        match self.proxy.verifier.verify_or_wait(&token) {
            Verdict::Done(result) => self.first_verified(id, token, result, started),
            // The client is not read meanwhile; session.auth_timeout still runs.
            Verdict::Wait(wait) => self.await_keys(wait, token, id, true),
        }
    }

    /// A token waits for its provider's refetch (an unknown `kid`).
    fn await_keys(&mut self, wait: KeyWait, token: String, reply_to: Option<Value>, first: bool) {
        self.awaiting = Some(Box::new(super::Awaiting {
            wait,
            token,
            reply_to,
            first,
        }));
    }

    /// The refetch a token waited for is done: it is verified again (an
    /// unknown `kid` now is `no matching key`).
    pub(super) fn on_keys_arrived(&mut self) {
        let Some(awaiting) = self.awaiting.take() else {
            return;
        };
        let super::Awaiting {
            token,
            reply_to,
            first,
            ..
        } = *awaiting;
        let started = std::time::Instant::now();
        let result = match first {
            true => self.proxy.verifier.verify(&token),
            false => self.current_proxy().verifier.verify(&token),
        };
        match self.phase {
            Phase::Authenticating { .. } if first => {
                self.first_verified(reply_to, token, result, started)
            }
            Phase::Authenticated | Phase::ReauthPending | Phase::Suspended { .. } if !first => {
                self.reauth_verified(result, Some(&token), reply_to.as_ref(), started)
            }
            _ => {}
        }
    }

    /// The first token's verification is known.
    fn first_verified(
        &mut self,
        id: Option<Value>,
        token: String,
        result: Result<Arc<Identity>, AuthError>,
        started: std::time::Instant,
    ) {
        if result.as_ref().is_ok_and(|i| self.revoked(i)) {
            self.count_auth(AuthKind::First, AuthReason::Revoked, started, None);
            return self.close(CloseCause::TokenRevoked);
        }
        let reason = result.as_ref().err().map_or(AuthReason::Ok, AuthReason::of);
        if let Ok(identity) = &result {
            if !self.claim_token(identity, &token) {
                self.count_auth(
                    AuthKind::First,
                    AuthReason::TokenInUse,
                    started,
                    Some(identity),
                );
                return self.close(CloseCause::TokenInUse);
            }
        }
        self.count_auth(AuthKind::First, reason, started, result.as_ref().ok());
        let identity = match result {
            Ok(identity) => identity,
            Err(e) => {
                tracing::debug!(conn = %self.id, error = %e, "first token refused");
                self.auth_failed();
                return self.close(CloseCause::InvalidToken);
            }
        };
        self.authenticate(identity, token, Answer::Authenticated(id));
    }

    /// Whether the client's address is in its failed-auth cool-down (counted as a refusal).
    pub(super) fn cooling_down(&self) -> bool {
        let cooling = self
            .admission
            .as_ref()
            .is_some_and(|a| a.limits().cooling(a.addr()));
        if cooling {
            metrics::limit_refused(crate::limits::Limit::FailedAuth);
        }
        cooling
    }

    /// Counts a failed first authentication against the client's address.
    pub(super) fn auth_failed(&self) {
        if let Some(a) = &self.admission {
            a.limits().auth_failed(a.addr());
        }
    }

    /// The connection is authenticated as `identity`: whether the
    /// per-subject cap lets it go on, or lets it on over the cap
    /// (`evict = "oldest"`: [`Self::evict_oldest`] once it is listed).
    fn within_subject_cap(&mut self, identity: &Arc<Identity>) -> OverSubject {
        let Some(admission) = &mut self.admission else {
            return OverSubject::Within;
        };
        let over = admission.authenticated(identity);
        if over != OverSubject::Within {
            metrics::limit_refused(crate::limits::Limit::PerSubject);
            tracing::debug!(conn = %self.id, sub = ?identity.sub, evict = over == OverSubject::EvictOldest, "over the per-subject cap");
        }
        over
    }

    /// Closes the subject's oldest other connections, as many as it has
    /// over the cap. Run once the connection is listed, so that of a burst
    /// of new connections the last one listed sees every earlier one, and
    /// none already sent a close (still listed while it closes) is taken
    /// twice: the subject ends at its cap, not over it.
    fn evict_oldest(&self, identity: &Identity) {
        let Some(cap) = self
            .admission
            .as_ref()
            .and_then(|a| a.limits().config().max_connections_per_subject)
        else {
            return;
        };
        let mut others = self.local.process.registry.find(|e| {
            e.identity.sub == identity.sub
                && e.identity.iss == identity.iss
                && *e.id != *self.id
                && !e.mailbox.closing()
        });
        // This connection is one of the cap.
        let over = (others.len() + 1).saturating_sub(cap);
        others.sort_by_key(|e| e.started);
        for oldest in others.iter().take(over) {
            tracing::debug!(conn = %self.id, evicted = %oldest.id, sub = ?identity.sub, "per-subject cap: oldest connection closed");
            oldest
                .mailbox
                .send(Command::Close(CloseCause::TooManyConnections));
        }
    }

    /// A verified token (from the first frame or the upgrade request): the
    /// upstream is opened with its identity, the clocks start, the
    /// connection is listed.
    pub(super) fn authenticate(&mut self, identity: Arc<Identity>, token: String, answer: Answer) {
        self.client.io_mut().lift();
        self.client.end_pre_auth();
        let over = self.within_subject_cap(&identity);
        if over == OverSubject::Refuse {
            return self.close(CloseCause::TooManyConnections);
        }
        let Some(request) = self.request.take() else {
            return self.close(CloseCause::AuthRequired);
        };
        if self.proxy.session.upstream_notice {
            self.notice_key = Some(protocol::notice_key().into());
        }
        let attempt = self.connect_upstream(request, &identity, token);
        let s = &self.proxy.session;
        self.credentials = Some(Credentials::new(
            identity.clone(),
            s.reauth_lead,
            s.reauth_jitter,
        ));
        self.list(identity.clone());
        if over == OverSubject::EvictOldest {
            self.evict_oldest(&identity);
        }
        self.phase = Phase::Connecting { attempt, answer };
    }

    /// Counts an authentication attempt (and how long its verification
    /// took) and writes its audit line.
    fn count_auth(
        &self,
        kind: AuthKind,
        reason: AuthReason,
        started: std::time::Instant,
        verified: Option<&Arc<Identity>>,
    ) {
        metrics::auth(kind, reason, started.elapsed());
        self.audit_auth(kind, reason, verified);
    }

    /// The audit line of an authentication attempt.
    pub(super) fn audit_auth(
        &self,
        kind: AuthKind,
        reason: AuthReason,
        verified: Option<&Arc<Identity>>,
    ) {
        let (event, message) = match (kind, reason) {
            (AuthKind::First, AuthReason::Ok) => ("auth_ok", "authenticated"),
            (AuthKind::First, _) => ("auth_failed", "auth failed"),
            (AuthKind::Reauth, AuthReason::Ok) => ("reauth_ok", "reauthenticated"),
            (AuthKind::Reauth, _) => ("reauth_failed", "reauth failed"),
            (_, AuthReason::Ok) => ("auth_ok", "authenticated (deprecated method)"),
            (_, _) => ("auth_failed", "auth failed (deprecated method)"),
        };
        // The identity so far (a failed REAUTH: the connection's), escaped.
        let identity = verified.or(self.credentials.as_ref().map(|c| &c.identity));
        tracing::info!(
            target: AUDIT,
            event,
            conn = %self.id,
            peer = %self.stats.peer,
            sub = identity.map(|i| tracing::field::debug(&i.sub)),
            iss = identity.and_then(|i| i.iss.as_ref()).map(tracing::field::debug),
            provider = identity.map(|i| tracing::field::debug(&i.provider)),
            reason = reason.name(),
            "{message}"
        );
    }

    /// An audit line about the connection's token (`auth_required`, `token_expired`).
    pub(super) fn audit_notice(&self, event: &'static str, message: &'static str) {
        let identity = self.credentials.as_ref().map(|c| &c.identity);
        tracing::info!(
            target: AUDIT,
            event,
            conn = %self.id,
            peer = %self.stats.peer,
            sub = identity.map(|i| tracing::field::debug(&i.sub)),
            iss = identity.and_then(|i| i.iss.as_ref()).map(tracing::field::debug),
            "{message}"
        );
    }

    /// Starts opening the upstream with the identity headers. The client's
    /// request is moved into the attempt: it is not needed afterwards.
    fn connect_upstream(
        &self,
        request: ClientRequest,
        identity: &Arc<Identity>,
        token: String,
    ) -> super::Connecting {
        let proxy = self.proxy.clone();
        let identity = identity.clone();
        let id = self.id.clone();
        let notice_key = self
            .notice_key
            .as_deref()
            .and_then(|k| http::HeaderValue::from_str(k).ok());
        Box::pin(async move {
            let prepare = |headers: &mut http::HeaderMap| {
                proxy
                    .headers
                    .forward(&request, &id, request.proto(), headers);
                proxy.headers.identity(&identity, headers);
                if let Some(key) = notice_key {
                    headers.insert(protocol::NOTICE_KEY_HEADER, key);
                }
                if let Some(p) = &request.subprotocol {
                    headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, p.clone());
                }
                if proxy.upstream.forward_token {
                    if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
                        headers.insert(http::header::AUTHORIZATION, v);
                    }
                }
            };
            let started = std::time::Instant::now();
            let socket = proxy
                .target
                .connect(
                    &request.path_and_query,
                    prepare,
                    proxy.upstream.connect_timeout,
                )
                .await?;
            metrics::upstream_connected(started.elapsed());
            Ok(Box::new(socket))
        })
    }

    /// The upstream connect attempt finished.
    pub(super) fn on_connected(&mut self, result: Result<Box<UpstreamSocket>, UpstreamError>) {
        let answer = match std::mem::replace(&mut self.phase, Phase::Authenticated) {
            Phase::Connecting { answer, .. } => answer,
            other => {
                self.phase = other;
                return;
            }
        };
        let socket = match result {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(conn = %self.id, error = %e, "upstream unavailable");
                return self.close(CloseCause::UpstreamUnavailable);
            }
        };
        let wire = self.proxy.wire;
        let UpstreamSocket { io, received } = *socket;
        let mut upstream = Leg::new(io, Role::Client, wire.upstream, wire.read_limit);
        upstream.received(&received);
        let deferred = match answer {
            Answer::Authenticated(reply_to) => {
                self.announce(reply_to.as_ref());
                None
            }
            Answer::Upgrade(deferred) => deferred,
        };
        for piece in self.held.drain() {
            upstream.forward(piece.bytes, piece.start, piece.end);
        }
        self.upstream = Some(upstream);
        let s = &self.proxy.session;
        self.held.set_bounds(s.hold_max_frames, s.hold_max_bytes);
        self.start_idle();
        if let Some(frame) = deferred {
            let (id, token) = *frame;
            self.on_reauth(id, token);
        }
        // A drain that began while the upstream was being opened.
        if let Some(times) = self.local.process.drain.times() {
            self.drain(times.spread, times.close_after);
        }
    }

    /// `AUTHENTICATED` for the first token, in reply to its auth frame.
    fn announce(&mut self, reply_to: Option<&Value>) {
        if let Some(c) = &self.credentials {
            let id = &c.identity;
            if let Some(text) = self
                .proxy
                .dialect
                .authenticated(&id.sub, id.exp, &self.id, reply_to)
            {
                self.client.push_text(&text);
            }
        }
    }

    /// A re-authentication frame after the first auth.
    pub(super) fn on_reauth(&mut self, id: Option<Value>, token: Option<String>) {
        if let Phase::Connecting { answer, .. } = &mut self.phase {
            // Authenticated at the upgrade: the first auth frame waits for the upstream.
            if let Answer::Upgrade(deferred @ None) = answer {
                *deferred = Some(Box::new((id, token)));
                return;
            }
            // The first AUTHENTICATED has not been sent yet; answering a
            // REAUTH now would reorder the answers. Not counted as a failure.
            return self.reply_error(
                "not_authenticated",
                "wait for the answer to the first auth before re-authenticating",
                id.as_ref(),
            );
        }
        if self.reauth_rate_limited() {
            return self.reply_error(
                "rate_limited",
                "too many REAUTH attempts; wait and retry",
                id.as_ref(),
            );
        }
        let started = std::time::Instant::now();
        let Some(token) = token else {
            return self.reauth_verified(Err(AuthError::Malformed), None, id.as_ref(), started);
        };
        // The verifier of the current configuration (a reload's, if one came).
        let verdict = self.current_proxy().verifier.verify_or_wait(&token);
        match verdict {
            Verdict::Done(result) => {
                // A newer REAUTH supersedes one still waiting for keys.
                self.awaiting = None;
                self.reauth_verified(result, Some(&token), id.as_ref(), started)
            }
            // Relaying goes on meanwhile; a newer REAUTH replaces this one.
            Verdict::Wait(wait) => self.await_keys(wait, token, id, false),
        }
    }

    /// A REAUTH token's verification is known.
    fn reauth_verified(
        &mut self,
        verified: Result<Arc<Identity>, AuthError>,
        token: Option<&str>,
        id: Option<&Value>,
        started: std::time::Instant,
    ) {
        let identity = match verified {
            Ok(identity) => identity,
            Err(e) => {
                self.count_auth(AuthKind::Reauth, AuthReason::of(&e), started, None);
                return self.reauth_failed("invalid_token", &e.to_string(), id);
            }
        };
        if self.revoked(&identity) {
            self.count_auth(AuthKind::Reauth, AuthReason::Revoked, started, None);
            return self.reauth_failed("invalid_token", "token revoked", id);
        }
        let Some(creds) = &self.credentials else {
            return;
        };
        let failed = if identity.sub != creds.identity.sub || identity.iss != creds.identity.iss {
            Some(AuthReason::IdentityMismatch)
        } else if identity.exp < creds.identity.exp {
            Some(AuthReason::StaleToken)
        } else {
            None
        };
        let reclaim = match failed {
            None => self.reclaim_token(&identity, token),
            Some(_) => super::tokens::Reclaim::Same,
        };
        let failed = match reclaim {
            super::tokens::Reclaim::InUse => Some(AuthReason::TokenInUse),
            _ => failed,
        };
        self.count_auth(
            AuthKind::Reauth,
            failed.unwrap_or(AuthReason::Ok),
            started,
            None,
        );
        if failed == Some(AuthReason::IdentityMismatch) {
            tracing::warn!(conn = %self.id, "REAUTH with another identity");
            return self.close(CloseCause::IdentityMismatch);
        }
        if failed == Some(AuthReason::StaleToken) {
            return self.reauth_failed(
                "stale_token",
                "the token expires before the current one",
                id,
            );
        }
        if failed == Some(AuthReason::TokenInUse) {
            return self.reauth_failed(
                "token_in_use",
                "this token is in use on as many live connections as auth.max_connections_per_token allows",
                id,
            );
        }
        if let super::tokens::Reclaim::New(used) = reclaim {
            // The old token's use is given back.
            self.token_use = Some(used);
        }
        self.reauthenticated(identity, id);
    }

    /// Whether a revocation refuses this verified token (one in-memory
    /// lookup per kind in force; checked on every auth and REAUTH,
    /// verified-token cache hits included).
    pub(super) fn revoked(&self, identity: &Identity) -> bool {
        self.local.process.revocations.refuses(identity)
    }

    /// Records a REAUTH attempt; true when it came too soon after the last.
    fn reauth_rate_limited(&mut self) -> bool {
        let now = Instant::now();
        let min_interval = self.proxy.session.reauth_min_interval;
        let Some(creds) = &mut self.credentials else {
            return false;
        };
        if creds.last_attempt.is_some_and(|t| now < t + min_interval) {
            return true;
        }
        creds.last_attempt = Some(now);
        false
    }

    /// A REAUTH was accepted: new clocks, `AUTHENTICATED`, back to relaying
    /// (with what was held while suspended), and the upstream notice.
    fn reauthenticated(&mut self, identity: Arc<Identity>, reply_to: Option<&Value>) {
        let Some(creds) = &mut self.credentials else {
            return;
        };
        // The new token resets the failure count, not the rate limit.
        let last_attempt = creds.last_attempt;
        // auth_required is sent once per token: the same exp again is not a new one.
        let same_exp = identity.exp == creds.identity.exp;
        let s = &self.proxy.session;
        *creds = Credentials::new(identity.clone(), s.reauth_lead, s.reauth_jitter);
        creds.last_attempt = last_attempt;
        if let Listed::Listed(registration) = &self.listed {
            registration.update(identity.clone());
        }
        if let Some(text) =
            self.proxy
                .dialect
                .authenticated(&identity.sub, identity.exp, &self.id, reply_to)
        {
            self.client.push_text(&text);
        }
        match self.phase {
            Phase::ReauthPending if same_exp => {}
            Phase::Authenticated | Phase::ReauthPending => self.phase = Phase::Authenticated,
            Phase::Suspended { .. } => {
                self.phase = Phase::Authenticated;
                if let Some(up) = &mut self.upstream {
                    for piece in self.held.drain() {
                        up.forward(piece.bytes, piece.start, piece.end);
                    }
                }
            }
            _ => {}
        }
        let notice = self.notice_key.as_deref().and_then(|key| {
            self.proxy.dialect.identity_refreshed(
                &identity.sub,
                identity.exp,
                &identity.claims(),
                key,
            )
        });
        if let (Some(text), Some(up)) = (notice, &mut self.upstream) {
            up.push_text(&text);
        }
    }

    /// The proxy of the current configuration: this connection's own, or
    /// the one a reload installed since (REAUTHs use its verifier; the
    /// connection keeps its own dialect, timings and limits). One atomic
    /// load and a reference count, per REAUTH only.
    fn current_proxy(&self) -> Arc<crate::proxy::Proxy> {
        self.local
            .process
            .proxy
            .load_full()
            .unwrap_or_else(|| self.proxy.clone())
    }

    /// Registers the authenticated connection in its worker's shard.
    fn list(&mut self, identity: Arc<Identity>) {
        if let Listed::Unlisted = &self.listed {
            let about = crate::registry::About {
                peer: self.stats.peer,
                started: {
                    let now = std::time::SystemTime::now();
                    now.checked_sub(self.stats.started.elapsed()).unwrap_or(now)
                },
                state: self.stats.shared_state(),
            };
            let registration = self
                .local
                .shard
                .register(self.id.as_str().into(), identity, about);
            self.listed = Listed::Listed(registration);
        }
    }

    /// A command from the registry.
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Close(cause) => self.close(cause),
            Command::Reauth { within, cause } => {
                self.reauth_now(within, cause);
                // A drain that came meanwhile was left out of the mailbox.
                self.drain_if_begun();
            }
            Command::Drain => self.drain_if_begun(),
        }
    }

    /// Applies the drain, if one has begun.
    fn drain_if_begun(&mut self) {
        if let Some(times) = self.local.process.drain.times() {
            self.drain(times.spread, times.close_after)
        }
    }

    /// The proxy drains: the `reconnect` hint (once; `after_ms` uniform over
    /// `spread`), and 1001 `going away` `close_after` from now unless the
    /// connection ends earlier. While the upstream is being opened nothing
    /// is sent: [`Session::on_connected`] applies the drain after
    /// `AUTHENTICATED`.
    fn drain(&mut self, spread: Duration, close_after: Duration) {
        let relaying = matches!(
            self.phase,
            Phase::Authenticated | Phase::ReauthPending | Phase::Suspended { .. }
        );
        if self.drain_close || !relaying {
            return;
        }
        let after = spread.mul_f64(rand::random::<f64>());
        let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        if let Some(text) = self.proxy.dialect.reconnect(after_ms) {
            self.client.push_text(&text);
        }
        let end = Instant::now() + close_after;
        if self.lifetime_end.is_none_or(|t| t > end) {
            self.lifetime_end = Some(end);
        }
        self.drain_close = true;
        tracing::debug!(conn = %self.id, after_ms, "reconnect hint sent");
    }

    /// Asks for a REAUTH now: `auth_required` within a random part of
    /// `session.reauth_jitter`, the token counted as expiring at most
    /// `within` from now, and `cause` as the close reason if none comes.
    fn reauth_now(&mut self, within: Duration, cause: CloseCause) {
        let jitter = self.proxy.session.reauth_jitter;
        let Some(creds) = &mut self.credentials else {
            return;
        };
        let now = Instant::now();
        creds.expires_at = creds.expires_at.min(now + within);
        creds.notice_at = (now + jitter.mul_f64(rand::random::<f64>())).min(creds.expires_at);
        creds.expiry_cause = cause;
        // auth_required is sent again, even if it was for this token.
        if let Phase::ReauthPending = self.phase {
            self.phase = Phase::Authenticated;
        }
    }

    fn reauth_failed(&mut self, code: &str, message: &str, id: Option<&Value>) {
        let max = self.proxy.session.max_reauth_failures;
        let Some(creds) = &mut self.credentials else {
            return;
        };
        creds.failures += 1;
        if creds.failures >= max {
            return self.close(CloseCause::TooManyFailedReauth);
        }
        self.reply_error(code, message, id);
    }

    pub(super) fn reply_error(&mut self, code: &str, message: &str, id: Option<&Value>) {
        if let Some(text) = self.proxy.dialect.error(code, message, id) {
            self.client.push_text(&text);
        }
    }

    /// The timer fired: handle every deadline that has passed.
    pub(super) fn on_timer(&mut self) -> Flow {
        let now = Instant::now();
        let slow = self.proxy.session.slow_consumer_timeout;
        if self.client.blocked_since().is_some_and(|t| t + slow <= now) {
            metrics::send_error();
            self.client.discard_queued();
            self.close(CloseCause::SlowClient);
        }
        if self
            .upstream
            .as_ref()
            .and_then(|u| u.blocked_since())
            .is_some_and(|t| t + slow <= now)
        {
            metrics::send_error();
            if let Some(up) = &mut self.upstream {
                up.discard_queued();
            }
            self.close(CloseCause::SlowUpstream);
        }
        self.check_frame_stall(now);
        match &self.phase {
            Phase::Closing { until } if *until <= now => return Flow::Done,
            Phase::Authenticating { deadline } if *deadline <= now => {
                metrics::auth_timeout();
                self.close(CloseCause::AuthTimeout)
            }
            Phase::Authenticated => self.maybe_notice(now),
            Phase::ReauthPending => self.maybe_suspend(now),
            Phase::Suspended { until } if *until <= now => {
                let cause = self.credentials.as_ref().map(|c| c.expiry_cause);
                self.close(cause.unwrap_or(CloseCause::TokenExpired))
            }
            _ => {}
        }
        if !matches!(self.phase, Phase::Closing { .. }) {
            self.on_idle_timer(now);
        }
        if self.lifetime_end.is_some_and(|t| t <= now) {
            self.close(match self.drain_close {
                true => CloseCause::Draining,
                false => CloseCause::MaxLifetime,
            });
        }
        if self.next_ping.is_some_and(|t| t <= now) {
            self.stats.flush();
            self.heartbeat(now);
        }
        self.flow()
    }

    /// When the earliest frame stall would be due: a leg that takes writes
    /// and waits for the rest of a frame the other leg began.
    pub(super) fn stall_deadline(&self) -> Option<Instant> {
        let stall = self.proxy.session.frame_stall_timeout;
        if stall.is_zero() || matches!(self.phase, Phase::Closing { .. }) {
            return None;
        }
        let to_client = self.client.awaiting_frame_since();
        let to_upstream = self
            .upstream
            .as_ref()
            .and_then(|u| u.awaiting_frame_since());
        to_client
            .into_iter()
            .chain(to_upstream)
            .min()
            .map(|t| t + stall)
    }

    /// Closes a peer that stopped in the middle of a relayed frame for
    /// `session.frame_stall_timeout`: it gets its close frame where one can
    /// still be written to it; the other leg, inside the half-relayed
    /// frame, is dropped.
    fn check_frame_stall(&mut self, now: Instant) {
        let stall = self.proxy.session.frame_stall_timeout;
        if stall.is_zero() || matches!(self.phase, Phase::Closing { .. }) {
            return;
        }
        let due = |since: Option<Instant>| since.is_some_and(|t| t + stall <= now);
        let cause = if due(self
            .upstream
            .as_ref()
            .and_then(|u| u.awaiting_frame_since()))
        {
            CloseCause::ClientFrameStalled
        } else if due(self.client.awaiting_frame_since()) {
            CloseCause::UpstreamFrameStalled
        } else {
            return;
        };
        tracing::debug!(conn = %self.id, reason = metrics::close_label(cause), "frame stalled");
        self.close(cause);
        match cause {
            // Dropped now: its socket closes without a close frame.
            CloseCause::ClientFrameStalled => self.upstream = None,
            // Marked done: its socket closes when the session ends.
            _ => self.client.abandon(),
        }
        // A close frame that cannot go out (its leg is inside a frame too) is dropped.
        self.client.give_up_frame();
        if let Some(up) = &mut self.upstream {
            up.give_up_frame();
        }
    }

    /// Sends `auth_required` once per token when it is due.
    fn maybe_notice(&mut self, now: Instant) {
        let Some(creds) = &self.credentials else {
            return;
        };
        if creds.notice_at > now {
            return;
        }
        if let Some(text) = self
            .proxy
            .dialect
            .auth_required(creds.identity.exp, unix_now())
        {
            self.client.push_text(&text);
            metrics::auth_required_sent();
            self.audit_notice("auth_required", "auth_required sent");
        }
        self.phase = Phase::ReauthPending;
        self.maybe_suspend(now);
    }

    /// Suspends the connection at `exp`.
    fn maybe_suspend(&mut self, now: Instant) {
        let Some(creds) = &self.credentials else {
            return;
        };
        if creds.expires_at > now {
            return;
        }
        let grace = self.proxy.session.grace;
        if let Some(text) = self.proxy.dialect.token_expired(creds.identity.exp, grace) {
            self.client.push_text(&text);
            metrics::token_expired_sent();
            self.audit_notice("token_expired", "token expired; connection suspended");
        }
        self.phase = Phase::Suspended { until: now + grace };
    }

    /// Pings both legs; closes a leg that stayed silent too long.
    fn heartbeat(&mut self, now: Instant) {
        let interval = self.proxy.session.ping_interval;
        // From the beat that was due (already on the grid), so that the
        // grid's rounding does not add up beat after beat; never in the past.
        let due = self.next_ping.unwrap_or(now);
        self.next_ping = Some(super::beat_after(
            self.proxy.epoch,
            (due + interval).max(now),
            interval,
        ));
        if matches!(self.phase, Phase::Closing { .. }) {
            return;
        }
        let max = self.proxy.session.max_missed_pongs;
        // A leg we are not reading (backpressure, suspension) cannot be heard:
        // it is pinged but its silence is not counted.
        let reads = self.reads();
        if beat(&mut self.client, max, reads.client) {
            return self.close(CloseCause::PingTimeout);
        }
        if let Some(up) = &mut self.upstream {
            if beat(up, max, reads.upstream) {
                up.abandon();
                self.close(CloseCause::UpstreamGone);
            }
        }
    }
}

/// One heartbeat on a leg; true when the leg missed too many.
///
/// While own frames of the leg are still unsent (they wait behind a relayed
/// frame, or the socket is full: the slow-consumer timeout covers that),
/// the last ping may not have reached the peer: its silence is not counted
/// and no other ping is queued behind it.
fn beat<S>(leg: &mut Leg<S>, max_missed: u32, reading: bool) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let stuck = leg.own_unsent() > 0;
    if leg.heard {
        leg.missed = 0;
    } else if reading && !stuck {
        leg.missed += 1;
    }
    leg.heard = false;
    if leg.missed >= max_missed {
        return true;
    }
    if !stuck {
        leg.push_ping();
    }
    false
}
