//! Every metric the proxy exports: its name and help text as constants, the
//! handles registered once (so that nothing on the relay path looks a metric
//! up), and [`ConnStats`], a connection's own counts, added to the shared
//! counters in batches (on phase changes, heartbeats and at its end).
//!
//! The metric state lives in the process's global recorder (installed by
//! [`install`], once, from `main`), outside anything a configuration reload
//! replaces. Without a recorder (library users, in-process tests) every
//! handle is a no-op.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::AuthError;
use crate::rescue::CloseCause;

/// A metric's name and help text.
pub type Metric = (&'static str, &'static str);

/// Gauge `{state}`: live connections by state.
pub const CONNECTIONS_ACTIVE: Metric = (
    "wsguard_connections_active",
    "Live WebSocket connections by state",
);
/// Counter: WebSocket connections accepted (101 answered).
pub const CONNECTIONS_TOTAL: Metric = (
    "wsguard_connections_total",
    "WebSocket connections accepted",
);
/// Counter `{kind,result,reason}`: token verifications (first auth, REAUTH).
pub const AUTH_TOTAL: Metric = (
    "wsguard_auth_total",
    "Authentication attempts by kind (first, reauth), result (ok, failed) and reason",
);
/// Counter: connections closed because no first frame came in time.
pub const AUTH_TIMEOUTS_TOTAL: Metric = (
    "wsguard_auth_timeouts_total",
    "Connections that sent no first frame within session.auth_timeout",
);
/// Counter: `auth_required` notices sent.
pub const AUTH_REQUIRED_SENT_TOTAL: Metric = (
    "wsguard_auth_required_sent_total",
    "auth_required notices sent to clients",
);
/// Counter: `TOKEN_EXPIRED` notices sent (connections suspended at exp).
pub const TOKEN_EXPIRED_SENT_TOTAL: Metric = (
    "wsguard_token_expired_sent_total",
    "TOKEN_EXPIRED notices sent to clients (connection suspended at exp)",
);
/// Counter `{reason,side}`: closes, by the proxy's cause or `peer`.
pub const CLOSES_TOTAL: Metric = (
    "wsguard_closes_total",
    "Connection closes: side=proxy with the proxy's cause, or side=client/upstream with reason=peer",
);
/// Counter `{direction}`: data frames relayed.
pub const MESSAGES_TOTAL: Metric = (
    "wsguard_messages_total",
    "Data frames relayed, by direction (client_to_upstream, upstream_to_client)",
);
/// Counter `{direction}`: bytes relayed (frame headers included).
pub const BYTES_TOTAL: Metric = (
    "wsguard_bytes_total",
    "Bytes of data frames relayed, frame headers included, by direction",
);
/// Counter: writes that failed or were dropped.
pub const WS_SEND_ERRORS_TOTAL: Metric = (
    "wsguard_ws_send_errors_total",
    "WebSocket writes that failed or were dropped (peer gone, slow consumer)",
);
/// Counter `{method}`: tokens presented in the upgrade request (a
/// deprecated method), valid or not.
pub const DEPRECATED_AUTH_TOTAL: Metric = (
    "wsguard_deprecated_auth_total",
    "Authentications by a deprecated method",
);
/// Counter `{provider,result}`: JWKS refreshes; present when a provider has a JWKS URL.
pub const JWKS_REFRESH_TOTAL: Metric = (
    "wsguard_jwks_refresh_total",
    "JWKS refreshes by provider and result",
);
/// Gauge `{provider}`: keys in a provider's current JWKS.
pub const JWKS_KEYS: Metric = ("wsguard_jwks_keys", "Keys in the provider's current JWKS");
/// Gauge `{provider}`: age of a provider's current JWKS.
pub const JWKS_AGE_SECONDS: Metric = (
    "wsguard_jwks_age_seconds",
    "Seconds since the provider's JWKS was last fetched successfully",
);
/// Counter `{cause}`: connections that ended before their first HTTP
/// request (TLS handshake failures, plain HTTP on the TLS port, ...).
pub const TLS_REJECTS_TOTAL: Metric = (
    "wsguard_tls_rejects_total",
    "Connections that ended before HTTP, by cause (not_tls, handshake_timeout, client_certificate, handshake_failed, bad_http)",
);
/// Gauge: seconds until the listener's certificate expires; present with `[listener.tls]`.
pub const TLS_CERTIFICATE_EXPIRES_IN_SECONDS: Metric = (
    "wsguard_tls_certificate_expires_in_seconds",
    "Seconds until the listener's TLS certificate expires (negative once expired)",
);
/// Histogram: time to verify a token.
pub const AUTH_DURATION_SECONDS: Metric = (
    "wsguard_auth_duration_seconds",
    "Time to verify a token (first auth and REAUTH)",
);
/// Histogram: time to open the upstream WebSocket (successful attempts).
pub const UPSTREAM_CONNECT_SECONDS: Metric = (
    "wsguard_upstream_connect_seconds",
    "Time to open the upstream WebSocket (TCP and handshake)",
);
/// Counter `{kind}`: revocations made on this replica's admin API (`sub`, `jti`, `sid`).
pub const REVOCATIONS_TOTAL: Metric = (
    "wsguard_revocations_total",
    "Revocations made through this replica's admin API, by kind (sub, jti, sid)",
);
/// Counter: live connections closed because their token was revoked.
pub const REVOKED_CLOSES_TOTAL: Metric = (
    "wsguard_revoked_closes_total",
    "Live connections closed because their token was revoked (on this replica)",
);
/// Gauge: 1 while the Redis link of `[revocation]` is up; present with a Redis URL.
pub const REDIS_UP: Metric = (
    "wsguard_redis_up",
    "1 while the revocation link to Redis is up, else 0 (present with revocation.redis_url)",
);
/// Gauge `{version}`: always 1.
pub const BUILD_INFO: Metric = ("wsguard_build_info", "The running build (always 1)");

/// Counter `{limit}`: connections refused by a `[limits]` limit.
pub const LIMIT_REFUSALS_TOTAL: Metric = (
    "wsguard_limit_refusals_total",
    "Connections refused by a limit (max_connections, max_unauthenticated, per_address_rate, per_address_connections, failed_auth, per_subject)",
);

/// Every metric name and help (the dashboard test and the docs check against it).
pub const ALL: [Metric; 23] = [
    CONNECTIONS_ACTIVE,
    CONNECTIONS_TOTAL,
    AUTH_TOTAL,
    AUTH_TIMEOUTS_TOTAL,
    AUTH_REQUIRED_SENT_TOTAL,
    TOKEN_EXPIRED_SENT_TOTAL,
    CLOSES_TOTAL,
    MESSAGES_TOTAL,
    BYTES_TOTAL,
    WS_SEND_ERRORS_TOTAL,
    DEPRECATED_AUTH_TOTAL,
    JWKS_REFRESH_TOTAL,
    JWKS_KEYS,
    JWKS_AGE_SECONDS,
    TLS_REJECTS_TOTAL,
    TLS_CERTIFICATE_EXPIRES_IN_SECONDS,
    AUTH_DURATION_SECONDS,
    UPSTREAM_CONNECT_SECONDS,
    BUILD_INFO,
    REVOCATIONS_TOTAL,
    REVOKED_CLOSES_TOTAL,
    REDIS_UP,
    LIMIT_REFUSALS_TOTAL,
];

/// Buckets of `wsguard_auth_duration_seconds` (verification is microseconds
/// to a few milliseconds).
pub const AUTH_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];
/// Buckets of `wsguard_upstream_connect_seconds`.
pub const CONNECT_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Installs the process's Prometheus recorder (once per process) and
/// describes every metric; the handle renders `/metrics` and runs the upkeep.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(AUTH_DURATION_SECONDS.0.into()), &AUTH_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(UPSTREAM_CONNECT_SECONDS.0.into()),
            &CONNECT_BUCKETS,
        )?
        .install_recorder()?;
    for (name, help) in ALL {
        metrics::describe_counter!(name, help);
    }
    // Registered now, so that every series is exported from the start (at 0).
    let handles = handles();
    handles.build_info.set(1.0);
    Ok(handle)
}

/// A connection's state, as exported (`state` label) and listed by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Waiting for the first frame.
    Authenticating = 0,
    /// Opening the upstream.
    Connecting = 1,
    /// Relaying.
    Authenticated = 2,
    /// Relaying, `auth_required` sent.
    ReauthPending = 3,
    /// `exp` passed, waiting for a REAUTH.
    Suspended = 4,
    /// Closing.
    Closing = 5,
}

impl State {
    /// Every state, by its number.
    pub const ALL: [State; 6] = [
        State::Authenticating,
        State::Connecting,
        State::Authenticated,
        State::ReauthPending,
        State::Suspended,
        State::Closing,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            State::Authenticating => "authenticating",
            State::Connecting => "connecting",
            State::Authenticated => "authenticated",
            State::ReauthPending => "reauth_pending",
            State::Suspended => "suspended",
            State::Closing => "closing",
        }
    }

    /// The state stored as `n` (see [`ConnStats::shared_state`]).
    pub fn from_u8(n: u8) -> State {
        State::ALL
            .get(usize::from(n))
            .copied()
            .unwrap_or(State::Closing)
    }
}

/// Which attempt an auth metric is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// The first frame.
    First = 0,
    /// A REAUTH.
    Reauth = 1,
    /// A token in the upgrade request's `Authorization: Bearer` (legacy).
    Header = 2,
    /// A token in the upgrade request's auth cookie (legacy).
    Cookie = 3,
    /// A token in the upgrade request's query (legacy).
    Query = 4,
}

impl AuthKind {
    /// The `kind` label values, by [`AuthKind`].
    const LABELS: [&'static str; 5] = ["first", "reauth", "header", "cookie", "query"];

    /// The kind of a legacy method's attempt.
    pub fn legacy(method: crate::auth::legacy::Method) -> AuthKind {
        use crate::auth::legacy::Method;
        match method {
            Method::Header => AuthKind::Header,
            Method::Cookie => AuthKind::Cookie,
            Method::Query => AuthKind::Query,
        }
    }
}

/// Why an authentication failed: one fixed set (the `reason` label), never a raw string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReason {
    /// Succeeded (`result="ok"`, `reason="ok"`).
    Ok = 0,
    /// The auth frame carried no token.
    MissingToken,
    /// [`AuthError::Malformed`].
    Malformed,
    /// [`AuthError::UnknownIssuer`].
    UnknownIssuer,
    /// [`AuthError::Algorithm`].
    Algorithm,
    /// [`AuthError::NoKey`].
    NoKey,
    /// [`AuthError::Signature`].
    Signature,
    /// [`AuthError::Expired`].
    Expired,
    /// [`AuthError::NotYetValid`].
    NotYetValid,
    /// [`AuthError::IssuedInFuture`].
    IssuedInFuture,
    /// [`AuthError::Audience`].
    Audience,
    /// [`AuthError::Issuer`].
    Issuer,
    /// [`AuthError::Claim`].
    Claim,
    /// A REAUTH token expiring before the current one.
    StaleToken,
    /// A REAUTH for another `sub`/`iss`.
    IdentityMismatch,
    /// The token already authenticates `auth.max_connections_per_token`
    /// live connections.
    TokenInUse,
    /// The token is revoked (`[revocation]`).
    Revoked,
}

/// Number of [`AuthReason`]s.
const AUTH_REASONS: usize = AuthReason::ALL.len();

impl AuthReason {
    /// Every reason, by its number; the test `all_lists_every_reason`
    /// fails to compile until a new one is named there (and then here).
    const ALL: [AuthReason; 17] = [
        AuthReason::Ok,
        AuthReason::MissingToken,
        AuthReason::Malformed,
        AuthReason::UnknownIssuer,
        AuthReason::Algorithm,
        AuthReason::NoKey,
        AuthReason::Signature,
        AuthReason::Expired,
        AuthReason::NotYetValid,
        AuthReason::IssuedInFuture,
        AuthReason::Audience,
        AuthReason::Issuer,
        AuthReason::Claim,
        AuthReason::StaleToken,
        AuthReason::IdentityMismatch,
        AuthReason::TokenInUse,
        AuthReason::Revoked,
    ];

    /// The class of a verification error.
    pub fn of(error: &AuthError) -> AuthReason {
        match error {
            AuthError::Malformed => AuthReason::Malformed,
            AuthError::UnknownIssuer => AuthReason::UnknownIssuer,
            AuthError::Algorithm => AuthReason::Algorithm,
            AuthError::NoKey => AuthReason::NoKey,
            AuthError::Signature => AuthReason::Signature,
            AuthError::Expired => AuthReason::Expired,
            AuthError::NotYetValid => AuthReason::NotYetValid,
            AuthError::IssuedInFuture => AuthReason::IssuedInFuture,
            AuthError::Audience => AuthReason::Audience,
            AuthError::Issuer => AuthReason::Issuer,
            AuthError::Claim(_) => AuthReason::Claim,
        }
    }

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            AuthReason::Ok => "ok",
            AuthReason::MissingToken => "missing_token",
            AuthReason::Malformed => "malformed",
            AuthReason::UnknownIssuer => "unknown_issuer",
            AuthReason::Algorithm => "algorithm",
            AuthReason::NoKey => "no_key",
            AuthReason::Signature => "signature",
            AuthReason::Expired => "expired",
            AuthReason::NotYetValid => "not_yet_valid",
            AuthReason::IssuedInFuture => "issued_in_future",
            AuthReason::Audience => "audience",
            AuthReason::Issuer => "issuer",
            AuthReason::Claim => "claim",
            AuthReason::StaleToken => "stale_token",
            AuthReason::IdentityMismatch => "identity_mismatch",
            AuthReason::TokenInUse => "token_in_use",
            AuthReason::Revoked => "revoked",
        }
    }
}

/// Every [`CloseCause`] (kept beside the enum), one series each.
const CAUSES: [CloseCause; CloseCause::ALL.len()] = CloseCause::ALL;

/// The `reason` label of a close the proxy starts (one per cause, unlike the
/// close frame's reason, which two causes may share).
pub fn close_label(cause: CloseCause) -> &'static str {
    use CloseCause::*;
    match cause {
        AuthTimeout => "auth_timeout",
        AuthRequired => "auth_required",
        InvalidToken => "invalid_token",
        AuthFrameTooLarge => "auth_frame_too_large",
        ClientMessageTooLarge => "client_message_too_large",
        UpstreamMessageTooLarge => "upstream_message_too_large",
        UpstreamUnavailable => "upstream_unavailable",
        UpstreamGone => "upstream_gone",
        ClientGone => "client_gone",
        ClientProtocolError => "client_protocol_error",
        BufferFull => "buffer_full",
        SlowClient => "slow_client",
        SlowUpstream => "slow_upstream",
        TokenExpired => "token_expired",
        IdentityMismatch => "identity_mismatch",
        TooManyFailedReauth => "too_many_failed_reauth",
        PingTimeout => "ping_timeout",
        MaxLifetime => "max_lifetime",
        KeyRevoked => "key_revoked",
        IdleTimeout => "idle_timeout",
        TokenInUse => "token_in_use",
        Draining => "draining",
        TokenRevoked => "token_revoked",
        TooManyAttempts => "too_many_attempts",
        TooManyConnections => "too_many_connections",
        ClientFrameStalled => "client_frame_stalled",
        UpstreamFrameStalled => "upstream_frame_stalled",
    }
}

/// Who started a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The proxy, for a [`CloseCause`].
    Proxy,
    /// The client sent a close frame.
    Client,
    /// The upstream sent a close frame.
    Upstream,
}

impl Side {
    /// The `side` label value.
    pub fn name(self) -> &'static str {
        match self {
            Side::Proxy => "proxy",
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// Which way relayed bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream.
    ToUpstream = 0,
    /// Upstream to client.
    ToClient = 1,
}

/// The handles, registered once with the global recorder.
struct Handles {
    /// `wsguard_connections_total`.
    connections: Counter,
    /// `wsguard_connections_active{state}`, by [`State`].
    active: [Gauge; 6],
    /// `wsguard_auth_total{kind,result,reason}`, by [`AuthKind`] and [`AuthReason`].
    auth: [[Counter; AUTH_REASONS]; 5],
    /// `wsguard_deprecated_auth_total{method}`, by [`crate::auth::legacy::Method::index`].
    deprecated: [Counter; 3],
    /// `wsguard_auth_timeouts_total`.
    auth_timeouts: Counter,
    /// `wsguard_auth_required_sent_total`.
    auth_required: Counter,
    /// `wsguard_token_expired_sent_total`.
    token_expired: Counter,
    /// `wsguard_closes_total{side="proxy"}`, by [`CAUSES`] order.
    closes: [Counter; CAUSES.len()],
    /// `wsguard_closes_total{reason="peer",side="client"}`.
    client_closes: Counter,
    /// `wsguard_closes_total{reason="peer",side="upstream"}`.
    upstream_closes: Counter,
    /// `wsguard_messages_total{direction}`, by [`Direction`].
    messages: [Counter; 2],
    /// `wsguard_bytes_total{direction}`, by [`Direction`].
    bytes: [Counter; 2],
    /// `wsguard_ws_send_errors_total`.
    send_errors: Counter,
    /// `wsguard_auth_duration_seconds`.
    auth_duration: Histogram,
    /// `wsguard_upstream_connect_seconds`.
    upstream_connect: Histogram,
    /// `wsguard_build_info{version}`.
    build_info: Gauge,
    /// `wsguard_revocations_total{kind}`, by [`REVOCATION_KINDS`].
    revocations: [Counter; 3],
    /// `wsguard_revoked_closes_total`.
    revoked_closes: Counter,
    /// `wsguard_limit_refusals_total{limit}`, by [`crate::limits::Limit`].
    limit_refusals: [Counter; 6],
}

/// The `kind` label values of `wsguard_revocations_total`.
pub const REVOCATION_KINDS: [&str; 3] = ["sub", "jti", "sid"];

/// The `direction` label values, by [`Direction`].
const DIRECTIONS: [&str; 2] = ["client_to_upstream", "upstream_to_client"];

/// The handles (registered on first use: after [`install`], in the proxy).
fn handles() -> &'static Handles {
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    HANDLES.get_or_init(register)
}

fn register() -> Handles {
    let auth = |kind: &'static str| {
        AuthReason::ALL.map(|r| {
            let result = if r == AuthReason::Ok { "ok" } else { "failed" };
            metrics::counter!(AUTH_TOTAL.0, "kind" => kind, "result" => result, "reason" => r.name())
        })
    };
    let peer =
        |side: &'static str| metrics::counter!(CLOSES_TOTAL.0, "reason" => "peer", "side" => side);
    Handles {
        connections: metrics::counter!(CONNECTIONS_TOTAL.0),
        active: State::ALL.map(|s| metrics::gauge!(CONNECTIONS_ACTIVE.0, "state" => s.name())),
        auth: AuthKind::LABELS.map(auth),
        deprecated: crate::auth::legacy::Method::ALL
            .map(|m| metrics::counter!(DEPRECATED_AUTH_TOTAL.0, "method" => m.label())),
        auth_timeouts: metrics::counter!(AUTH_TIMEOUTS_TOTAL.0),
        auth_required: metrics::counter!(AUTH_REQUIRED_SENT_TOTAL.0),
        token_expired: metrics::counter!(TOKEN_EXPIRED_SENT_TOTAL.0),
        closes: CAUSES.map(
            |c| metrics::counter!(CLOSES_TOTAL.0, "reason" => close_label(c), "side" => "proxy"),
        ),
        client_closes: peer("client"),
        upstream_closes: peer("upstream"),
        messages: DIRECTIONS.map(|d| metrics::counter!(MESSAGES_TOTAL.0, "direction" => d)),
        bytes: DIRECTIONS.map(|d| metrics::counter!(BYTES_TOTAL.0, "direction" => d)),
        send_errors: metrics::counter!(WS_SEND_ERRORS_TOTAL.0),
        auth_duration: metrics::histogram!(AUTH_DURATION_SECONDS.0),
        upstream_connect: metrics::histogram!(UPSTREAM_CONNECT_SECONDS.0),
        build_info: metrics::gauge!(BUILD_INFO.0, "version" => env!("CARGO_PKG_VERSION")),
        revocations: REVOCATION_KINDS.map(|k| metrics::counter!(REVOCATIONS_TOTAL.0, "kind" => k)),
        revoked_closes: metrics::counter!(REVOKED_CLOSES_TOTAL.0),
        limit_refusals: crate::limits::Limit::ALL
            .map(|l| metrics::counter!(LIMIT_REFUSALS_TOTAL.0, "limit" => l.label())),
    }
}

/// Counts an authentication attempt and how long its verification took.
pub fn auth(kind: AuthKind, reason: AuthReason, took: std::time::Duration) {
    let h = handles();
    h.auth[kind as usize][reason as usize].increment(1);
    h.auth_duration.record(took.as_secs_f64());
}

/// Counts a revocation made on the admin API (`kind`: an index into
/// [`REVOCATION_KINDS`]) and the live connections it closed.
pub fn revoked(kind: usize, closed: usize) {
    let h = handles();
    if let Some(c) = h.revocations.get(kind) {
        c.increment(1);
    }
    h.revoked_closes.increment(closed as u64);
}

/// Counts live connections closed by a revocation from another replica.
pub fn revoked_closes(closed: usize) {
    handles().revoked_closes.increment(closed as u64);
}

/// Sets `wsguard_redis_up` (the Redis link of `[revocation]`).
pub fn redis_up(up: bool) {
    metrics::gauge!(REDIS_UP.0).set(if up { 1.0 } else { 0.0 });
}

/// Counts a token presented by a deprecated (legacy) method.
pub fn deprecated_auth(method: crate::auth::legacy::Method) {
    handles().deprecated[method.index()].increment(1);
}

/// Counts an auth timeout.
pub fn auth_timeout() {
    handles().auth_timeouts.increment(1);
}

/// Counts an `auth_required` notice sent.
pub fn auth_required_sent() {
    handles().auth_required.increment(1);
}

/// Counts a `TOKEN_EXPIRED` notice sent.
pub fn token_expired_sent() {
    handles().token_expired.increment(1);
}

/// Counts a failed or dropped write.
pub fn send_error() {
    handles().send_errors.increment(1);
}

/// Counts a connection refused by a limit.
pub fn limit_refused(limit: crate::limits::Limit) {
    handles().limit_refusals[limit as usize].increment(1);
}

/// Records a successful upstream connect.
pub fn upstream_connected(took: std::time::Duration) {
    handles().upstream_connect.record(took.as_secs_f64());
}

/// How a connection ended, for its audit line and `wsguard_closes_total`.
#[derive(Debug, Clone, Copy)]
pub struct Ending {
    /// Who started the close.
    pub side: Side,
    /// The proxy's cause, or `peer`.
    pub reason: &'static str,
    /// The close code sent to (or received from) the client; `None` when there was none.
    pub code: Option<u16>,
}

/// One connection's metrics: its state (shared with its registry entry),
/// its relayed counts since the last flush, and how it ended.
#[derive(Debug)]
pub struct ConnStats {
    /// The state, read by the admin listing.
    state: Arc<AtomicU8>,
    /// The state counted in `wsguard_connections_active`.
    shown: State,
    /// When the connection was accepted.
    pub started: Instant,
    /// The client's address.
    pub peer: SocketAddr,
    /// Frames and bytes relayed since the last flush, by [`Direction`].
    counts: [(u64, u64); 2],
    /// How it ended, once known (the first close wins).
    pub ending: Option<Ending>,
}

impl ConnStats {
    /// A newly accepted connection (counted, and active as authenticating).
    pub fn new(peer: SocketAddr) -> ConnStats {
        let h = handles();
        h.connections.increment(1);
        h.active[State::Authenticating as usize].increment(1.0);
        ConnStats {
            state: Arc::new(AtomicU8::new(State::Authenticating as u8)),
            shown: State::Authenticating,
            started: Instant::now(),
            peer,
            counts: [(0, 0); 2],
            ending: None,
        }
    }

    /// The state cell shared with the registry entry.
    pub fn shared_state(&self) -> Arc<AtomicU8> {
        self.state.clone()
    }

    /// The connection is now in `state` (nothing happens if it already was).
    pub fn set(&mut self, state: State) {
        if state == self.shown {
            return;
        }
        let h = handles();
        h.active[self.shown as usize].decrement(1.0);
        h.active[state as usize].increment(1.0);
        self.shown = state;
        self.state.store(state as u8, Ordering::Relaxed);
        self.flush();
    }

    /// Counts relayed frames and bytes (added to the shared counters later).
    #[inline]
    pub fn relayed(&mut self, direction: Direction, frames: usize, bytes: usize) {
        let c = &mut self.counts[direction as usize];
        c.0 += frames as u64;
        c.1 += bytes as u64;
    }

    /// Adds the counts so far to the shared counters.
    pub fn flush(&mut self) {
        if self.counts == [(0, 0); 2] {
            return;
        }
        let h = handles();
        for (i, (frames, bytes)) in std::mem::take(&mut self.counts).into_iter().enumerate() {
            h.messages[i].increment(frames);
            h.bytes[i].increment(bytes);
        }
    }

    /// Records how the connection ends (only the first call counts).
    pub fn ended(&mut self, ending: Ending) -> bool {
        if self.ending.is_some() {
            return false;
        }
        let h = handles();
        let counter = match ending.side {
            Side::Client => Some(&h.client_closes),
            Side::Upstream => Some(&h.upstream_closes),
            Side::Proxy => CAUSES
                .iter()
                .position(|c| close_label(*c) == ending.reason)
                .map(|i| &h.closes[i]),
        };
        if let Some(counter) = counter {
            counter.increment(1);
        }
        self.ending = Some(ending);
        true
    }
}

impl Drop for ConnStats {
    fn drop(&mut self) {
        self.flush();
        handles().active[self.shown as usize].decrement(1.0);
    }
}

/// Exports the TLS counts: connections rejected before HTTP, by cause, and
/// the listener certificate's remaining life (when TLS is on). Called about
/// once a second on the control thread.
pub fn tls(server: Option<&crate::tls::ServerTls>, now: std::time::SystemTime) {
    for (reject, n) in crate::tls::Rejects::global().snapshot() {
        metrics::counter!(TLS_REJECTS_TOTAL.0, "cause" => reject.name()).absolute(n);
    }
    let expiry = server.and_then(|s| s.resolver.not_after());
    if let Some(at) = expiry {
        let left = match at.duration_since(now) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        metrics::gauge!(TLS_CERTIFICATE_EXPIRES_IN_SECONDS.0).set(left);
    }
}

/// Exports the key sets' counts (`wsguard_jwks_refresh_total`,
/// `wsguard_jwks_keys`, `wsguard_jwks_age_seconds`), one series per
/// provider with fetched keys (their names come from the configuration,
/// so their number is bounded). Called about once a second on the control
/// thread, never on a connection's path.
pub fn key_sets(sets: &[(std::sync::Arc<str>, &crate::auth::KeyStats)], now_unix: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    for (provider, stats) in sets {
        let name = provider.to_string();
        let refresh = |result: &'static str, n: u64| {
            metrics::counter!(JWKS_REFRESH_TOTAL.0, "provider" => name.clone(), "result" => result)
                .absolute(n)
        };
        refresh("ok", stats.fetches_ok.load(Relaxed));
        refresh("failed", stats.fetches_failed.load(Relaxed));
        metrics::gauge!(JWKS_KEYS.0, "provider" => name.clone())
            .set(stats.keys.load(Relaxed) as f64);
        let loaded = stats.loaded_at.load(Relaxed);
        if loaded > 0 {
            metrics::gauge!(JWKS_AGE_SECONDS.0, "provider" => name.clone())
                .set(now_unix.saturating_sub(loaded) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_close_cause_has_its_series() {
        // `CloseCause::ALL` is complete (rescue's exhaustive test); each has a counter.
        assert_eq!(super::CAUSES.len(), crate::rescue::CloseCause::ALL.len());
        for c in crate::rescue::CloseCause::ALL {
            assert!(
                super::CAUSES.contains(&c),
                "{c:?} has no wsguard_closes_total series"
            );
        }
    }

    use super::*;

    #[test]
    fn names_are_unique_prometheus_names() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for name in names {
            assert!(name.starts_with("wsguard_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        let labels: Vec<&str> = CAUSES.iter().map(|c| close_label(*c)).collect();
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len());
    }

    #[test]
    fn all_lists_every_reason() {
        use AuthReason::*;
        // Exhaustive: a new reason does not compile here until it is named
        // (then add it to `ALL` too); `ALL` holds each at its number, so the
        // counters indexed by number are the reasons' own.
        let named = |r: AuthReason| match r {
            Ok | MissingToken | Malformed | UnknownIssuer | Algorithm | NoKey | Signature
            | Expired | NotYetValid | IssuedInFuture | Audience | Issuer | Claim | StaleToken
            | IdentityMismatch | TokenInUse | Revoked => r.name(),
        };
        for (i, r) in AuthReason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{}", named(r));
        }
        assert_eq!(
            Revoked as usize + 1,
            AUTH_REASONS,
            "the last reason is in ALL"
        );
    }

    #[test]
    fn a_connection_adds_little() {
        // Per connection: this in the session, plus the shared state cell.
        assert!(
            std::mem::size_of::<ConnStats>() <= 128,
            "{}",
            std::mem::size_of::<ConnStats>()
        );
    }

    #[test]
    fn states_round_trip() {
        for s in State::ALL {
            assert_eq!(State::from_u8(s as u8), s);
        }
    }
}
