//! One connection's life: a single task that owns both legs, the phase it is
//! in, and one timer. Every transition is a `match` on [`Phase`]; the close
//! codes come from [`crate::rescue`].
//!
//! ```text
//! Authenticating --auth ok--> Connecting --upstream open--> Authenticated
//! Authenticated --exp - lead--> ReauthPending --exp--> Suspended
//! ReauthPending/Suspended --REAUTH ok--> Authenticated
//! any --failure, close frame, timeout--> Closing --both legs done--> (end)
//! ```

mod idle;
mod lifecycle;
#[cfg(test)]
mod tests;
mod tokens;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::auth::{Identity, KeyWait};
use crate::budget::Budgeted;
use crate::headers::ClientRequest;
use crate::metrics::{self, ConnStats, Direction, Ending, Side, State};
use crate::process::Local;
use crate::protocol::ClientFrame;
use crate::proxy::Proxy;
use crate::registry::{Command, Registration};
use crate::relay::{Held, Leg, LegError, Piece};
use crate::rescue::CloseCause;
use crate::upstream::{UpstreamError, UpstreamIo, UpstreamSocket};
use crate::wire::{Boundary, Inbound, Role, WireError};

/// The target of the audit log's events.
pub const AUDIT: &str = "wsguard::audit";

/// Own frames (answers, pongs, notices) waiting on a leg beyond which its
/// peer is not read: a peer that sends pings or requests but does not read
/// the answers fills its own socket, not our memory.
const MAX_OWN_BACKLOG: usize = 8;

/// Heartbeats fall on a grid shared by all connections, of this fraction of
/// `ping_interval` ...
const BEAT_GRID_DIVISOR: u32 = 16;
/// ... but at most this coarse.
const MAX_BEAT_GRID: std::time::Duration = std::time::Duration::from_secs(1);

/// The first point of the heartbeat grid at or after `at`. With the grid,
/// one timer wake-up of a worker serves every connection whose heartbeat
/// falls on that point, instead of one wake-up per connection; a heartbeat
/// comes at most 1/16 of the interval (and at most 1 s) late.
pub(crate) fn beat_after(epoch: Instant, at: Instant, interval: std::time::Duration) -> Instant {
    let grid = (interval / BEAT_GRID_DIVISOR)
        .clamp(std::time::Duration::from_millis(1), MAX_BEAT_GRID)
        .as_nanos();
    let offset = at.saturating_duration_since(epoch).as_nanos();
    u64::try_from(offset.div_ceil(grid) * grid)
        .map_or(at, |nanos| epoch + std::time::Duration::from_nanos(nanos))
}

/// How far away the timer is set when no deadline applies.
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(86_400);

/// What a client leg can run on: the TCP socket hyper hands back in the proxy, an
/// in-memory pipe in the timer unit tests.
pub trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> ClientIo for T {}

/// An upstream connection being opened.
type Connecting = Pin<Box<dyn Future<Output = Result<Box<UpstreamSocket>, UpstreamError>> + Send>>;

/// Where a connection is in its life.
enum Phase {
    /// Waiting for the first frame, until the deadline.
    Authenticating {
        /// When `auth timeout` fires.
        deadline: Instant,
    },
    /// The token verified; the upstream is being opened. Client frames are held.
    Connecting {
        /// The connect attempt.
        attempt: Connecting,
        /// What the client is told once the upstream is open.
        answer: Answer,
    },
    /// Relaying; `auth_required` is not due yet.
    Authenticated,
    /// Relaying; `auth_required` was sent, REAUTH is expected before `exp`.
    ReauthPending,
    /// `exp` passed: nothing is relayed; client frames are held until a REAUTH or the deadline.
    Suspended {
        /// End of the grace.
        until: Instant,
    },
    /// Close frames are queued; waiting for both legs to finish, until the deadline.
    Closing {
        /// When the sockets are dropped regardless.
        until: Instant,
    },
}

/// What a connection being connected tells its client once the upstream is open.
enum Answer {
    /// `AUTHENTICATED`, in reply to the first auth frame (its `id`, for `in_reply_to`).
    Authenticated(Option<Value>),
    /// Nothing: the client authenticated at the upgrade. An auth frame it
    /// sent meanwhile (its `id` and token) is handled as a REAUTH then.
    Upgrade(Option<Box<(Option<Value>, Option<String>)>>),
}

/// How a session starts (decided on the upgrade request, see
/// [`crate::http_auth::admit_upgrade`]).
pub enum Start {
    /// First-message auth: the first frame must be an auth frame.
    FirstFrame,
    /// A legacy method's token verified at the upgrade: the upstream is
    /// opened at once and the client's frames are data from the first one.
    Verified {
        /// The verified identity.
        identity: Arc<Identity>,
        /// The token (sent upstream only with `upstream.forward_token`).
        token: String,
        /// How it was presented.
        method: crate::auth::legacy::Method,
        /// How long its verification took (counted once the session has
        /// checked revocation and reuse, under the reason that decides).
        took: std::time::Duration,
    },
    /// A legacy method's token was refused: the upgrade is accepted and
    /// closed at once with `invalid token`.
    Refused {
        /// How it was presented.
        method: crate::auth::legacy::Method,
        /// Why it was refused.
        reason: crate::metrics::AuthReason,
    },
}

/// The verified identity and its clocks.
struct Credentials {
    /// Who the connection is pinned to (sub and iss never change).
    identity: Arc<Identity>,
    /// When the token expires.
    expires_at: Instant,
    /// When `auth_required` is due.
    notice_at: Instant,
    /// Consecutive failed REAUTHs.
    failures: u32,
    /// The close reason when the grace after `exp` runs out (`token expired`,
    /// or the cause of a re-auth command such as `key revoked`).
    expiry_cause: CloseCause,
    /// When the last REAUTH was attempted (rate limit).
    last_attempt: Option<Instant>,
}

/// What woke the connection.
enum Event {
    /// The timer fired.
    Timer,
    /// The client leg produced a frame or ended.
    Client(Option<Result<Inbound, LegError>>),
    /// The upstream leg produced a frame or ended.
    Upstream(Option<Result<Inbound, LegError>>),
    /// The upstream connect attempt finished.
    Connected(Result<Box<UpstreamSocket>, UpstreamError>),
    /// Writing to the client failed.
    ClientWriteFailed,
    /// Writing to the upstream failed.
    UpstreamWriteFailed,
    /// Closing, and both legs have finished reading and writing.
    Finished,
    /// A command arrived through the registry.
    Command(Command),
    /// The refetch a token waited for is done.
    KeysArrived,
}

/// A token waiting for its provider's refetch (boxed: rare).
struct Awaiting {
    /// Resolves when the refetch is done.
    wait: KeyWait,
    /// The token, verified again then.
    token: String,
    /// The frame's `id`, for the answer.
    reply_to: Option<Value>,
    /// The first auth (else a REAUTH).
    first: bool,
}

/// The connection's place in the registry of live connections.
enum Listed {
    /// Not authenticated yet: it will register in its worker's shard.
    Unlisted,
    /// Registered (removed when dropped).
    Listed(Registration),
}

/// Which legs may be read now (backpressure and phase; see [`Session::reads`]).
struct Reads {
    /// The client leg.
    client: bool,
    /// The upstream leg.
    upstream: bool,
}

/// Whether the connection goes on.
enum Flow {
    /// Keep going.
    Continue,
    /// Both legs are finished.
    Done,
}

/// One proxied connection.
pub struct Session<C = TcpStream> {
    /// Shared proxy state.
    proxy: Arc<Proxy>,
    /// Connection id (sent upstream as `X-Request-Id`).
    id: String,
    /// The client's upgrade request, until it is moved into the upstream connect attempt.
    request: Option<ClientRequest>,
    /// The client leg.
    client: Leg<Budgeted<C>>,
    /// The upstream leg, once open.
    upstream: Option<Leg<UpstreamIo>>,
    /// The current phase.
    phase: Phase,
    /// The identity, once authenticated.
    credentials: Option<Credentials>,
    /// Its place in its worker's registry shard.
    listed: Listed,
    /// The process-owned state (its worker's registry shard, and what else outlives a reload).
    local: Local,
    /// A token waiting for its provider's keys (an unknown `kid`).
    awaiting: Option<Box<Awaiting>>,
    /// This connection's notice key (`session.upstream_notice`), sent to the
    /// upstream in its handshake and in every notice; never to the client.
    notice_key: Option<Box<str>>,
    /// Client frames that may not go upstream yet (while connecting or suspended).
    held: Held,
    /// Next heartbeat, if heartbeats are on.
    next_ping: Option<Instant>,
    /// End of `max_connection_lifetime`, if set.
    lifetime_end: Option<Instant>,
    /// The connection's one timer.
    sleep: Pin<Box<Sleep>>,
    /// The deadline `sleep` is set to.
    armed: Instant,
    /// Read the client first on the next poll (alternates, for fairness).
    client_first: bool,
    /// The timer's target when no deadline applies (fixed, so the timer is not reset).
    far_future: Instant,
    /// Authenticated at the upgrade and no client message seen yet: a first
    /// message that is an auth frame is handled as a REAUTH.
    first_unseen: bool,
    /// The `accepted` audit line was written (by [`Session::begin`]).
    accepted_logged: bool,
    /// The proxy drains: the hint was sent and `lifetime_end` is the
    /// drain's close (1001 `going away` rather than `max lifetime`).
    drain_close: bool,
    /// Its metrics: state, relayed counts, how it ended.
    stats: ConnStats,
    /// The inactivity clock, while relaying with `session.idle_timeout`.
    idle: Option<Box<idle::Idle>>,
    /// A client application message was relayed since the last fold (see `session/idle.rs`).
    client_active: bool,
    /// An upstream application message was relayed since the last fold.
    upstream_active: bool,
    /// Its use of its token, with `auth.max_connections_per_token` (given back at the end).
    token_use: Option<Box<crate::replay::TokenUse>>,
    /// What it holds of the process's limits (given back when the session
    /// ends); `None` where nothing admitted it (the timer unit tests).
    admission: Option<crate::limits::Admission>,
}

impl<C: ClientIo> Session<C> {
    /// A session for a freshly upgraded client socket; `received` are bytes
    /// the client sent right after its upgrade request (read by hyper).
    pub fn new(
        proxy: Arc<Proxy>,
        local: Local,
        id: String,
        request: ClientRequest,
        socket: Budgeted<C>,
        received: &[u8],
    ) -> Session<C> {
        let now = Instant::now();
        let s = &proxy.session;
        let deadline = now + s.auth_timeout;
        let next_ping = (!s.ping_interval.is_zero())
            .then(|| beat_after(proxy.epoch, now + s.ping_interval, s.ping_interval));
        let lifetime_end = s.max_connection_lifetime.map(|d| now + d);
        let held = Held::new(
            proxy.upstream.pending_max_frames,
            proxy.upstream.pending_max_bytes,
        );
        let mut client = Leg::new(
            socket,
            Role::Server,
            proxy.wire.client,
            proxy.wire.read_limit,
        );
        client.sniff(proxy.dialect.clone());
        client.received(received);
        let stats = ConnStats::new(request.peer);
        Session {
            id,
            request: Some(request),
            client,
            upstream: None,
            phase: Phase::Authenticating { deadline },
            credentials: None,
            listed: Listed::Unlisted,
            local,
            awaiting: None,
            notice_key: None,
            held,
            next_ping,
            lifetime_end,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: deadline,
            client_first: true,
            far_future: now + FAR_FUTURE,
            first_unseen: false,
            accepted_logged: false,
            drain_close: false,
            stats,
            admission: None,
            proxy,
            idle: None,
            client_active: false,
            upstream_active: false,
            token_use: None,
        }
    }

    /// The session holds `admission` (the limits it counts against) until it ends.
    pub fn admitted(mut self, admission: crate::limits::Admission) -> Session<C> {
        self.admission = Some(admission);
        self
    }

    /// Starts the session as the upgrade request decided: waiting for the
    /// first frame, authenticated already, or closing at once.
    pub fn begin(mut self, start: Start) -> Session<C> {
        self.audit_accepted();
        let legacy = !matches!(start, Start::FirstFrame);
        if legacy && self.cooling_down() {
            self.close(CloseCause::TooManyAttempts);
            self.stats.set(self.state());
            self.accepted_logged = true;
            return self;
        }
        match start {
            Start::FirstFrame => {}
            Start::Refused { method, reason } => {
                self.audit_auth(crate::metrics::AuthKind::legacy(method), reason, None);
                self.auth_failed();
                self.close(CloseCause::InvalidToken)
            }
            Start::Verified {
                identity,
                method,
                took,
                ..
            } if self.revoked(&identity) => {
                let kind = crate::metrics::AuthKind::legacy(method);
                crate::metrics::auth(kind, crate::metrics::AuthReason::Revoked, took);
                self.audit_auth(kind, crate::metrics::AuthReason::Revoked, None);
                self.close(CloseCause::TokenRevoked)
            }
            Start::Verified {
                identity,
                token,
                method,
                took,
            } => {
                tracing::debug!(conn = %self.id, method = method.label(), "token from the upgrade request (deprecated method)");
                let kind = crate::metrics::AuthKind::legacy(method);
                let claimed = self.claim_token(&identity, &token);
                let reason = match claimed {
                    true => crate::metrics::AuthReason::Ok,
                    false => crate::metrics::AuthReason::TokenInUse,
                };
                crate::metrics::auth(kind, reason, took);
                self.audit_auth(kind, reason, Some(&identity));
                if claimed {
                    self.first_unseen = true;
                    self.authenticate(identity, token, Answer::Upgrade(None));
                } else {
                    self.close(CloseCause::TokenInUse);
                }
            }
        }
        self.stats.set(self.state());
        self.accepted_logged = true;
        self
    }

    /// The audit line of an accepted connection (its first line).
    fn audit_accepted(&self) {
        if let Some(request) = &self.request {
            // Path without its query (which may hold a token), escaped.
            let path = request.path_and_query.split('?').next().unwrap_or_default();
            tracing::info!(target: AUDIT, event = "accepted", conn = %self.id, peer = %request.peer, path = ?path, "connection opened");
        }
    }

    /// Runs the connection to its end.
    pub async fn run(mut self) {
        if !self.accepted_logged {
            self.audit_accepted();
        }
        loop {
            // poll_event points the timer at the next deadline itself.
            let event = poll_fn(|cx| self.poll_event(cx)).await;
            let flow = self.handle(event);
            self.stats.set(self.state());
            if let Flow::Done = flow {
                break;
            }
        }
        // Given back before the sockets close, so that a client that saw
        // its socket end may use the token again at once.
        self.token_use = None;
        self.audit_close();
    }

    /// The state exported for the current phase.
    fn state(&self) -> State {
        match self.phase {
            Phase::Authenticating { .. } => State::Authenticating,
            Phase::Connecting { .. } => State::Connecting,
            Phase::Authenticated => State::Authenticated,
            Phase::ReauthPending => State::ReauthPending,
            Phase::Suspended { .. } => State::Suspended,
            Phase::Closing { .. } => State::Closing,
        }
    }

    /// The audit line of the connection's end: cause, side, code, duration.
    fn audit_close(&self) {
        let identity = self.credentials.as_ref().map(|c| &c.identity);
        let ending = self.stats.ending;
        tracing::info!(
            target: AUDIT,
            event = "closed",
            conn = %self.id,
            peer = %self.stats.peer,
            sub = identity.map(|i| tracing::field::debug(&i.sub)),
            iss = identity.and_then(|i| i.iss.as_ref()).map(tracing::field::debug),
            reason = ending.map_or("none", |e| e.reason),
            side = ending.map_or("none", |e| e.side.name()),
            code = ending.and_then(|e| e.code),
            duration_ms = u64::try_from(self.stats.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "connection finished"
        );
    }

    /// Records a close a peer started with its close frame.
    fn peer_closed(
        &mut self,
        side: Side,
        frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>,
    ) {
        self.stats.ended(Ending {
            side,
            reason: "peer",
            code: frame.map(|f| u16::from(f.code)),
        });
    }

    /// The earliest deadline of the current phase.
    fn next_deadline(&self) -> Instant {
        let phase_deadline = match &self.phase {
            Phase::Authenticating { deadline } => Some(*deadline),
            Phase::Connecting { .. } => None,
            Phase::Authenticated => self.credentials.as_ref().map(|c| c.notice_at),
            Phase::ReauthPending => self.credentials.as_ref().map(|c| c.expires_at),
            Phase::Suspended { until } => Some(*until),
            Phase::Closing { until } => return *until,
        };
        let slow = self.proxy.session.slow_consumer_timeout;
        [
            phase_deadline,
            self.stall_deadline(),
            self.next_ping,
            self.lifetime_end,
            self.idle.as_ref().map(|i| i.check),
            self.client.blocked_since().map(|t| t + slow),
            self.upstream
                .as_ref()
                .and_then(|u| u.blocked_since())
                .map(|t| t + slow),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.far_future)
    }

    /// Points the one timer at the next deadline, touching it only when that changed.
    fn arm_timer(&mut self) {
        let deadline = self.next_deadline();
        if deadline != self.armed {
            self.armed = deadline;
            self.sleep.as_mut().reset(deadline);
        }
    }

    /// Waits for the next thing that needs handling.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Poll::Ready(Err(_)) = self.client.poll_write(cx) {
            return Poll::Ready(Event::ClientWriteFailed);
        }
        if let Some(up) = &mut self.upstream {
            if let Poll::Ready(Err(_)) = up.poll_write(cx) {
                return Poll::Ready(Event::UpstreamWriteFailed);
            }
        }
        self.settle_frames();
        if let Flow::Done = self.flow() {
            return Poll::Ready(Event::Finished);
        }
        if let Listed::Listed(registration) = &self.listed {
            if let Some(command) = registration.mailbox().poll(cx) {
                return Poll::Ready(Event::Command(command));
            }
        }
        if let Some(awaiting) = &mut self.awaiting {
            if Pin::new(&mut awaiting.wait).poll(cx).is_ready() {
                return Poll::Ready(Event::KeysArrived);
            }
        }
        // A write that just blocked (or unblocked) moves the slow-consumer deadline.
        self.arm_timer();
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::Timer);
        }
        if let Phase::Connecting { attempt, .. } = &mut self.phase {
            if let Poll::Ready(result) = attempt.as_mut().poll(cx) {
                return Poll::Ready(Event::Connected(result));
            }
        }
        let reads = self.reads();
        let read_client = reads.client && !self.client.read_done;
        let read_upstream = reads.upstream && self.upstream.as_ref().is_some_and(|u| !u.read_done);
        self.client_first = !self.client_first;
        if self.client_first {
            if read_client {
                if let Poll::Ready(m) = self.client.poll_read(cx) {
                    return Poll::Ready(Event::Client(m));
                }
            }
            if read_upstream {
                if let Some(Poll::Ready(m)) = self.upstream.as_mut().map(|u| u.poll_read(cx)) {
                    return Poll::Ready(Event::Upstream(m));
                }
            }
        } else {
            if read_upstream {
                if let Some(Poll::Ready(m)) = self.upstream.as_mut().map(|u| u.poll_read(cx)) {
                    return Poll::Ready(Event::Upstream(m));
                }
            }
            if read_client {
                if let Poll::Ready(m) = self.client.poll_read(cx) {
                    return Poll::Ready(Event::Client(m));
                }
            }
        }
        self.fold_activity();
        Poll::Pending
    }

    fn handle(&mut self, event: Event) -> Flow {
        match event {
            Event::Timer => return self.on_timer(),
            Event::Client(m) => return self.on_client(m),
            Event::Upstream(m) => return self.on_upstream(m),
            Event::Connected(result) => self.on_connected(result),
            Event::Command(command) => self.on_command(command),
            Event::KeysArrived => self.on_keys_arrived(),
            Event::Finished => {}
            Event::ClientWriteFailed => {
                metrics::send_error();
                self.client.abandon();
                if !matches!(self.phase, Phase::Closing { .. }) {
                    self.close(CloseCause::ClientGone);
                }
            }
            Event::UpstreamWriteFailed => {
                metrics::send_error();
                if let Some(up) = &mut self.upstream {
                    up.abandon();
                }
                if !matches!(self.phase, Phase::Closing { .. }) {
                    self.close(CloseCause::UpstreamGone);
                }
            }
        }
        self.flow()
    }

    /// Which legs may be read now. A leg is read only while what reading it
    /// may queue has room: the other leg takes relayed bytes (backpressure)
    /// and its own answers are not piling up. Per phase:
    /// - relaying: both ways;
    /// - authenticating, connecting, suspended: the client (its frames are
    ///   inspected or held);
    /// - suspended: a message begun before `exp` is finished in either
    ///   direction (the proxy's notices and answers wait for its end); the
    ///   upstream is read only for that;
    /// - closing: what arrives is dropped, except the rest of a frame already
    ///   begun on the other leg, which is relayed with backpressure.
    fn reads(&self) -> Reads {
        let up = self.upstream.as_ref();
        let client = &self.client;
        let client_read = client.own_unsent() < MAX_OWN_BACKLOG
            && match self.phase {
                Phase::Authenticated | Phase::ReauthPending => up.is_some_and(|u| u.accepts()),
                Phase::Closing { .. } => up.is_none_or(|u| u.takes_or_drops()),
                // Held, or relayed to finish a message begun before `exp`.
                Phase::Suspended { .. } => {
                    up.is_none_or(|u| u.tail() == Boundary::Message || u.accepts())
                }
                // Not while the first token waits for its provider's keys.
                Phase::Authenticating { .. } => self.awaiting.is_none(),
                Phase::Connecting { .. } => true,
            };
        let upstream_read = up.is_some_and(|u| u.own_unsent() < MAX_OWN_BACKLOG)
            && match self.phase {
                Phase::Authenticated | Phase::ReauthPending => client.accepts(),
                Phase::Suspended { .. } => client.tail() != Boundary::Message && client.accepts(),
                Phase::Closing { .. } => client.takes_or_drops(),
                Phase::Authenticating { .. } | Phase::Connecting { .. } => false,
            };
        Reads {
            client: client_read,
            upstream: upstream_read,
        }
    }

    /// A leg waiting for the rest of a relayed frame whose source has ended
    /// gives up on it (and on the frames queued behind it).
    fn settle_frames(&mut self) {
        let upstream_ended = self.upstream.as_ref().is_none_or(|u| u.read_done);
        if upstream_ended {
            self.client.give_up_frame();
        }
        if self.client.read_done {
            if let Some(up) = &mut self.upstream {
                up.give_up_frame();
            }
        }
    }

    /// Done once closing and both legs have finished.
    fn flow(&self) -> Flow {
        let Phase::Closing { .. } = self.phase else {
            return Flow::Continue;
        };
        // A close frame queued after the read side ended must still go out.
        let client_done = self.client.read_done && self.client.flushed();
        let upstream_done = self
            .upstream
            .as_ref()
            .is_none_or(|u| u.read_done && u.flushed());
        if client_done && upstream_done {
            Flow::Done
        } else {
            Flow::Continue
        }
    }

    /// Starts closing both legs for a cause.
    fn close(&mut self, cause: CloseCause) {
        if matches!(self.phase, Phase::Closing { .. }) {
            return;
        }
        tracing::debug!(conn = %self.id, reason = cause.reason(), "closing connection");
        self.stats.ended(Ending {
            side: Side::Proxy,
            reason: metrics::close_label(cause),
            code: Some(cause.client_code(self.proxy.session.close_codes)),
        });
        let frames = cause.frames(self.proxy.session.close_codes);
        if !self.client.read_done || !self.client.write_done {
            if let Some(f) = frames.client {
                self.client.close(Some(f));
            }
        }
        if let Some(up) = &mut self.upstream {
            match frames.upstream {
                Some(f) => up.close(Some(f)),
                None => up.abandon(),
            }
        }
        self.enter_closing();
    }

    fn enter_closing(&mut self) {
        self.client.end_pre_auth();
        self.phase = Phase::Closing {
            until: Instant::now() + self.proxy.session.close_timeout,
        };
    }

    fn on_client(&mut self, item: Option<Result<Inbound, LegError>>) -> Flow {
        let item = match item {
            Some(Ok(item)) => item,
            Some(Err(e)) => {
                self.on_client_error(Some(e));
                return self.flow();
            }
            None => {
                self.on_client_error(None);
                return self.flow();
            }
        };
        let first = matches!(self.phase, Phase::Authenticating { .. });
        if matches!(item, Inbound::Data { .. }) {
            self.first_unseen = false;
        }
        match item {
            _ if matches!(self.phase, Phase::Closing { .. }) => self.while_closing(item),
            Inbound::Close(frame) => {
                self.peer_closed(Side::Client, frame.as_ref());
                // The leg has echoed the client's close; pass it on upstream.
                if let Some(up) = &mut self.upstream {
                    up.close(frame);
                }
                self.enter_closing();
            }
            Inbound::Ping(_) | Inbound::Pong(_) => {}
            Inbound::Text { text, .. } if first => self.on_first_frame(&text),
            Inbound::Text { text, raw, frames } if self.first_unseen => {
                self.first_unseen = false;
                self.on_first_after_upgrade(&text, raw, frames)
            }
            // Text longer than the inspection limit is longer than an auth frame may be.
            Inbound::Data { text: true, .. } | Inbound::Refused if first => {
                self.close(CloseCause::AuthFrameTooLarge)
            }
            Inbound::Data { .. } if first => self.close(CloseCause::AuthRequired),
            Inbound::Text { text, raw, frames } => self.on_client_text(&text, raw, frames),
            Inbound::Data {
                raw,
                start,
                frames,
                boundary,
                ..
            } => {
                let piece = Piece {
                    bytes: raw,
                    start,
                    end: boundary,
                };
                self.relay_to_upstream(piece, frames);
            }
            Inbound::Refused => self.reply_error(
                "frame_too_large",
                "a control frame must fit in session.max_auth_frame_bytes and 8 frames",
                None,
            ),
        }
        self.flow()
    }

    /// The client's read side failed or ended.
    fn on_client_error(&mut self, error: Option<LegError>) {
        let cause = match error {
            Some(LegError::Wire(
                WireError::MessageTooLong { .. } | WireError::FrameTooLong { .. },
            )) => match self.phase {
                Phase::Authenticating { .. } => CloseCause::AuthFrameTooLarge,
                _ => CloseCause::ClientMessageTooLarge,
            },
            Some(LegError::Io(e)) if Budgeted::<C>::is_over_budget(&e) => {
                CloseCause::AuthFrameTooLarge
            }
            Some(LegError::Wire(_)) => CloseCause::ClientProtocolError,
            Some(LegError::Io(_)) | None => {
                self.client.read_done = true;
                self.client.write_done = true;
                CloseCause::ClientGone
            }
        };
        // close() does nothing once closing.
        self.close(cause);
    }

    /// While closing, only the rest of a frame already begun upstream is
    /// relayed (the upstream leg takes nothing else once its close is queued).
    fn while_closing(&mut self, item: Inbound) {
        if let (
            Inbound::Data {
                raw,
                start,
                boundary,
                ..
            },
            Some(up),
        ) = (item, &mut self.upstream)
        {
            up.forward(raw, start, boundary);
        }
    }

    /// The first message of a client authenticated at the upgrade: an auth
    /// frame (a client in mid-migration) is handled as a REAUTH, anything
    /// else as any later message.
    fn on_first_after_upgrade(&mut self, text: &str, raw: bytes::Bytes, frames: usize) {
        match self.proxy.dialect.classify_first(text) {
            ClientFrame::Auth { id, token } => self.on_reauth(id, token),
            _ => self.on_client_text(text, raw, frames),
        }
    }

    /// An inspected client text message after the first: a control frame of
    /// the dialect is handled here, anything else is relayed.
    fn on_client_text(&mut self, text: &str, raw: bytes::Bytes, frames: usize) {
        match self.proxy.dialect.classify_later(text) {
            ClientFrame::Auth { id, token } => self.on_reauth(id, token),
            ClientFrame::Reserved { id } => self.reply_error(
                "reserved_type",
                "this frame type is reserved for the proxy",
                id.as_ref(),
            ),
            ClientFrame::Malformed => self.reply_error(
                "malformed_frame",
                "a frame of a control type must be one strict JSON object with one \"type\" key",
                None,
            ),
            ClientFrame::Data => {
                let piece = Piece {
                    bytes: raw,
                    start: Boundary::Message,
                    end: Boundary::Message,
                };
                self.relay_to_upstream(piece, frames);
            }
        }
    }

    /// Sends client bytes (in which `frames` frames begin) upstream now, or holds them.
    fn relay_to_upstream(&mut self, piece: Piece, frames: usize) {
        self.client_active = true;
        self.stats
            .relayed(Direction::ToUpstream, frames, piece.bytes.len());
        match (&self.phase, &mut self.upstream) {
            (Phase::Authenticated | Phase::ReauthPending, Some(up)) => {
                up.forward(piece.bytes, piece.start, piece.end)
            }
            // Suspended: the rest of a message begun before `exp` goes on.
            (Phase::Suspended { .. }, Some(up))
                if piece.start != Boundary::Message && up.tail() != Boundary::Message =>
            {
                up.forward(piece.bytes, piece.start, piece.end)
            }
            _ => {
                if self.held.push(piece, frames).is_err() {
                    self.close(CloseCause::BufferFull);
                }
            }
        }
    }

    fn on_upstream(&mut self, item: Option<Result<Inbound, LegError>>) -> Flow {
        let closing = matches!(self.phase, Phase::Closing { .. });
        match item {
            Some(Ok(Inbound::Close(frame))) => {
                if !closing {
                    self.peer_closed(Side::Upstream, frame.as_ref());
                    self.client.close(frame);
                    self.enter_closing();
                }
            }
            // While closing, the client leg takes only the rest of a frame
            // already begun; while suspended, the upstream is read only to
            // finish a message begun before `exp` (see `reads`).
            Some(Ok(Inbound::Data {
                raw,
                start,
                boundary,
                frames,
                ..
            })) => {
                self.upstream_active = true;
                self.stats.relayed(Direction::ToClient, frames, raw.len());
                self.client.forward(raw, start, boundary)
            }
            // Not inspected on this leg; relayed whole if it ever occurs.
            Some(Ok(Inbound::Text { raw, frames, .. })) => {
                self.upstream_active = true;
                self.stats.relayed(Direction::ToClient, frames, raw.len());
                self.client
                    .forward(raw, Boundary::Message, Boundary::Message)
            }
            Some(Ok(_)) => {}
            Some(Err(LegError::Wire(
                WireError::MessageTooLong { .. } | WireError::FrameTooLong { .. },
            ))) => self.close(CloseCause::UpstreamMessageTooLarge),
            Some(Err(_)) | None => {
                if let Some(up) = &mut self.upstream {
                    up.abandon();
                }
                if !closing {
                    self.close(CloseCause::UpstreamGone);
                }
            }
        }
        self.flow()
    }
}
