//! The one place where failures become close codes and HTTP statuses.
//!
//! Every close the proxy starts is a [`CloseCause`]; [`CloseCause::frames`]
//! maps it to the close frame for each leg. Every HTTP error the proxy
//! answers is an [`HttpError`]; [`HttpError::response`] maps it to a status
//! and a JSON body. `docs/protocol.md` carries the same table.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::config::CloseCodes;

/// 1001: going away.
pub const GOING_AWAY: u16 = 1001;
/// 1002: protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1008: policy violation (every auth close, by default).
pub const POLICY: u16 = 1008;
/// 1009: message too big.
pub const TOO_BIG: u16 = 1009;
/// 1011: internal error (the upstream went away without a close).
pub const INTERNAL: u16 = 1011;
/// 1013: try again later.
pub const TRY_AGAIN: u16 = 1013;

/// Why the proxy closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// No first frame within `session.auth_timeout`.
    AuthTimeout,
    /// The first frame was not an auth frame.
    AuthRequired,
    /// The first token did not verify.
    InvalidToken,
    /// The first frame exceeded `session.max_auth_frame_bytes`.
    AuthFrameTooLarge,
    /// The client sent a message over `websocket.max_message_bytes`.
    ClientMessageTooLarge,
    /// The upstream sent a message over `websocket.max_message_bytes`.
    UpstreamMessageTooLarge,
    /// The upstream could not be reached or refused the handshake.
    UpstreamUnavailable,
    /// The upstream vanished without a close frame, or stopped answering pings.
    UpstreamGone,
    /// The client vanished without a close frame.
    ClientGone,
    /// The client broke the WebSocket protocol.
    ClientProtocolError,
    /// A bounded queue (pre-auth or suspension) overflowed.
    BufferFull,
    /// The client did not take our writes within `session.slow_consumer_timeout`.
    SlowClient,
    /// The upstream did not take our writes within `session.slow_consumer_timeout`.
    SlowUpstream,
    /// The token expired and no REAUTH came within the grace.
    TokenExpired,
    /// A REAUTH carried another identity.
    IdentityMismatch,
    /// `session.max_reauth_failures` consecutive REAUTHs failed.
    TooManyFailedReauth,
    /// The client stopped answering pings.
    PingTimeout,
    /// `session.max_connection_lifetime` was reached.
    MaxLifetime,
    /// The key that signed the connection's token left its provider's set,
    /// and no REAUTH came (or `auth.jwks.on_key_removed = "close"`).
    KeyRevoked,
    /// No application message for `session.idle_timeout`.
    IdleTimeout,
    /// The first token already authenticates `auth.max_connections_per_token`
    /// live connections.
    TokenInUse,
    /// The proxy is draining (SIGTERM, SIGINT, `POST /drain`): 1001 `going
    /// away` on both legs after `drain.close_after`.
    Draining,
    /// The token was revoked (by `sub`, `jti` or session id): a live
    /// connection is closed at once, a first auth with it refused.
    TokenRevoked,
    /// The client's address is in its failed-auth cool-down
    /// (`limits.failed_auth_max`); refused at the first frame.
    TooManyAttempts,
    /// The subject has `limits.max_connections_per_subject` connections
    /// (the new one is closed; with `evict = "oldest"`, the oldest).
    TooManyConnections,
    /// The client stopped in the middle of a relayed frame for
    /// `session.frame_stall_timeout` (the upstream, inside that frame, is dropped).
    ClientFrameStalled,
    /// The upstream stopped in the middle of a relayed frame for
    /// `session.frame_stall_timeout` (the client, inside that frame, is dropped).
    UpstreamFrameStalled,
}

/// The close frames for the two legs; `None` where the leg is gone or absent.
pub struct CloseFrames {
    /// What the client gets.
    pub client: Option<CloseFrame>,
    /// What the upstream gets.
    pub upstream: Option<CloseFrame>,
}

fn frame(code: u16, reason: &'static str) -> Option<CloseFrame> {
    Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })
}

impl CloseCause {
    /// Every cause, once (metrics register one series each); the test
    /// `all_lists_every_cause` fails to compile until a new one is here.
    pub const ALL: [CloseCause; 27] = [
        CloseCause::AuthTimeout,
        CloseCause::AuthRequired,
        CloseCause::InvalidToken,
        CloseCause::AuthFrameTooLarge,
        CloseCause::ClientMessageTooLarge,
        CloseCause::UpstreamMessageTooLarge,
        CloseCause::UpstreamUnavailable,
        CloseCause::UpstreamGone,
        CloseCause::ClientGone,
        CloseCause::ClientProtocolError,
        CloseCause::BufferFull,
        CloseCause::SlowClient,
        CloseCause::SlowUpstream,
        CloseCause::TokenExpired,
        CloseCause::IdentityMismatch,
        CloseCause::TooManyFailedReauth,
        CloseCause::PingTimeout,
        CloseCause::MaxLifetime,
        CloseCause::KeyRevoked,
        CloseCause::IdleTimeout,
        CloseCause::TokenInUse,
        CloseCause::Draining,
        CloseCause::TokenRevoked,
        CloseCause::TooManyAttempts,
        CloseCause::TooManyConnections,
        CloseCause::ClientFrameStalled,
        CloseCause::UpstreamFrameStalled,
    ];

    /// The reason string; stable, documented, safe to switch on.
    pub fn reason(self) -> &'static str {
        use CloseCause::*;
        match self {
            AuthTimeout => "auth timeout",
            AuthRequired => "auth required",
            InvalidToken => "invalid token",
            AuthFrameTooLarge => "auth frame too large",
            ClientMessageTooLarge | UpstreamMessageTooLarge => "message too large",
            UpstreamUnavailable => "upstream unavailable",
            UpstreamGone => "upstream gone",
            ClientGone => "client gone",
            ClientProtocolError => "protocol error",
            BufferFull => "buffer full",
            SlowClient | SlowUpstream => "slow consumer",
            TokenExpired => "token expired",
            IdentityMismatch => "identity mismatch",
            TooManyFailedReauth => "too many failed reauth",
            PingTimeout => "ping timeout",
            MaxLifetime => "max lifetime",
            KeyRevoked => "key revoked",
            IdleTimeout => "idle timeout",
            TokenInUse => "token in use",
            Draining => "going away",
            TokenRevoked => "token revoked",
            TooManyAttempts => "too many attempts",
            TooManyConnections => "too many connections",
            ClientFrameStalled | UpstreamFrameStalled => "frame stalled",
        }
    }

    /// The code the client gets.
    pub fn client_code(self, codes: CloseCodes) -> u16 {
        use CloseCause::*;
        let distinct = codes == CloseCodes::Distinct;
        match self {
            AuthTimeout if distinct => 4408,
            AuthRequired if distinct => 4400,
            InvalidToken | KeyRevoked if distinct => 4401,
            IdentityMismatch | TooManyFailedReauth if distinct => 4403,
            TokenExpired if distinct => 4419,
            IdleTimeout if distinct => 4440,
            TokenRevoked if distinct => 4403,
            TooManyAttempts | TooManyConnections if distinct => 4429,
            AuthTimeout | AuthRequired | InvalidToken | IdentityMismatch | TooManyFailedReauth
            | TokenExpired | BufferFull | KeyRevoked | TokenInUse | TokenRevoked
            | TooManyAttempts | TooManyConnections | ClientFrameStalled => POLICY,
            AuthFrameTooLarge | ClientMessageTooLarge => TOO_BIG,
            UpstreamUnavailable | SlowClient => TRY_AGAIN,
            UpstreamGone | UpstreamMessageTooLarge => INTERNAL,
            ClientProtocolError => PROTOCOL_ERROR,
            ClientGone | SlowUpstream | PingTimeout | MaxLifetime | IdleTimeout | Draining
            | UpstreamFrameStalled => GOING_AWAY,
        }
    }

    /// The close frames for both legs.
    pub fn frames(self, codes: CloseCodes) -> CloseFrames {
        use CloseCause::*;
        let reason = self.reason();
        let client = match self {
            ClientGone | UpstreamFrameStalled => None,
            UpstreamMessageTooLarge | SlowUpstream => {
                frame(self.client_code(codes), "upstream gone")
            }
            _ => frame(self.client_code(codes), reason),
        };
        let upstream = match self {
            UpstreamGone | UpstreamUnavailable | ClientFrameStalled => None,
            ClientGone | PingTimeout | ClientProtocolError | ClientMessageTooLarge | SlowClient => {
                frame(GOING_AWAY, "client gone")
            }
            UpstreamMessageTooLarge => frame(TOO_BIG, reason),
            SlowUpstream => frame(TRY_AGAIN, reason),
            _ => frame(GOING_AWAY, reason),
        };
        CloseFrames { client, upstream }
    }
}

/// HTTP-level failures answered by the proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// A request with `Upgrade` that is not a valid WebSocket handshake.
    BadUpgrade,
    /// An upgrade whose request target is neither a path (origin-form) nor
    /// an absolute URL: `*` (asterisk-form) or `host:port` (authority-form).
    BadRequestTarget,
    /// An upgrade whose `Sec-WebSocket-Version` is missing, not 13, or not
    /// exactly one value; answered with `Sec-WebSocket-Version: 13`.
    UnsupportedWebSocketVersion,
    /// The upstream could not be reached.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// An upgrade whose `Origin` is not in `http.allowed_origins` (or is
    /// missing without `allow_missing_origin`); answered before any token
    /// is looked at.
    OriginNotAllowed,
    /// A request to a protected HTTP route whose path has a `..` segment or
    /// an encoded `/` (`%2F`), or does not percent-decode.
    BadPath,
    /// A protected HTTP route (or, with `auth.legacy.reject_with_http`, an
    /// upgrade) without a valid token: 401 with `WWW-Authenticate`, see
    /// [`HttpError::unauthorized`].
    TokenNotValid,
    /// Admin listener: the endpoint needs `Authorization: Bearer` with the
    /// token of `admin.token_env`.
    AdminUnauthorized,
    /// Admin listener: no such endpoint.
    AdminNotFound,
    /// Admin listener: the endpoints answer `GET` only.
    AdminMethodNotAllowed,
    /// Admin listener: a query parameter of `/connections` is not valid.
    AdminBadQuery,
    /// Admin listener: `/readyz` while a readiness check fails (the body
    /// names them in `failing`).
    NotReady,
    /// Admin listener: `POST /reload` with a configuration that does not
    /// load; the message is the error naming the key, the configuration in
    /// force stays.
    ReloadRefused,
    /// Admin listener: a `/revoke` body that is not a valid revocation (the
    /// body's `detail` says what is wrong).
    AdminBadRevocation,
    /// Admin listener: `DELETE /revoke` for a revocation not in force.
    AdminRevocationNotFound,
    /// Admin listener: `/revoke` answers `POST` and `DELETE` only.
    AdminRevokeMethodNotAllowed,
    /// An upgrade over `limits.max_connections` or
    /// `limits.max_unauthenticated`: 503 with `Retry-After`, before the upgrade.
    OverCapacity,
    /// An upgrade over its address's `limits.per_address_rate` or
    /// `limits.per_address_connections`: 429 with `Retry-After`.
    RateLimited,
    /// A protected HTTP route asked by a client address in its failed-auth
    /// cool-down (`limits.failed_auth_max`): 429 with `Retry-After`.
    TooManyAttempts,
}

impl HttpError {
    /// The status, a stable machine-readable code and a message.
    pub fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            HttpError::BadUpgrade => (
                StatusCode::BAD_REQUEST,
                "bad_upgrade",
                "the request asks for an upgrade but is not a valid WebSocket handshake",
            ),
            HttpError::BadRequestTarget => (
                StatusCode::BAD_REQUEST,
                "bad_request_target",
                "a WebSocket upgrade's request target must be a path or an absolute URL",
            ),
            HttpError::UnsupportedWebSocketVersion => (
                StatusCode::BAD_REQUEST,
                "unsupported_websocket_version",
                "this server speaks WebSocket version 13 only (one Sec-WebSocket-Version: 13)",
            ),
            HttpError::UpstreamUnavailable => (
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the upstream could not be reached",
            ),
            HttpError::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the upstream did not answer in time",
            ),
            HttpError::OriginNotAllowed => (
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this Origin may not open a WebSocket here",
            ),
            HttpError::BadPath => (
                StatusCode::BAD_REQUEST,
                "bad_path",
                "the path has a '..' segment, an encoded '/' or a bad percent-encoding",
            ),
            HttpError::TokenNotValid => (
                StatusCode::UNAUTHORIZED,
                "token_not_valid",
                "a valid token is required",
            ),
            HttpError::AdminUnauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs Authorization: Bearer <the admin token>",
            ),
            HttpError::AdminNotFound => (StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
            HttpError::AdminMethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the admin endpoints answer GET only",
            ),
            HttpError::AdminBadQuery => (
                StatusCode::BAD_REQUEST,
                "bad_query",
                "limit must be a number from 1 to 1000; sub and cursor must be percent-encoded UTF-8",
            ),
            HttpError::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "a readiness check fails (see failing)",
            ),
            HttpError::ReloadRefused => (
                StatusCode::BAD_REQUEST,
                "reload_refused",
                "the new configuration was refused; the one in force stays",
            ),
            HttpError::AdminBadRevocation => (
                StatusCode::BAD_REQUEST,
                "bad_revocation",
                "the body must be a JSON object with sub (and iss), jti or sid, and optionally until (RFC 3339) or ttl",
            ),
            HttpError::AdminRevocationNotFound => (
                StatusCode::NOT_FOUND,
                "not_revoked",
                "no such revocation is in force",
            ),
            HttpError::AdminRevokeMethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "/revoke answers POST and DELETE only",
            ),
            HttpError::OverCapacity => (
                StatusCode::SERVICE_UNAVAILABLE,
                "over_capacity",
                "the proxy has as many connections as it takes; try again later",
            ),
            HttpError::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many connections from this address; try again later",
            ),
            HttpError::TooManyAttempts => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed authentications from this address; try again later",
            ),
        }
    }

    /// The response: the status with `{"error": code, "message": ...}`.
    pub fn response(self) -> Response<Full<Bytes>> {
        let (_, _, message) = self.parts();
        self.body(message, serde_json::Map::new())
    }

    /// The response with another message (`reload_refused`'s: the
    /// configuration error, which names the key and never holds a secret).
    pub fn message(self, message: &str) -> Response<Full<Bytes>> {
        self.body(message, serde_json::Map::new())
    }

    /// The response with `Retry-After: <after in whole seconds, at least 1>`
    /// (503 `over_capacity`, 429 `rate_limited`).
    pub fn response_retry_after(self, after: std::time::Duration) -> Response<Full<Bytes>> {
        let mut response = self.response();
        let secs = after.as_secs().max(1);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        response
    }

    /// The response, with more members in its JSON body (`/readyz`'s `failing`).
    pub fn response_with(
        self,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Response<Full<Bytes>> {
        let (_, _, message) = self.parts();
        self.body(message, extra)
    }

    /// The 401 for a missing (`refused: None`) or refused token: body
    /// `{"error":"token_not_valid","message":<reason>}` and
    /// `WWW-Authenticate: Bearer realm="wsguard"`, with
    /// `error="invalid_token", error_description=<reason>` when a token was
    /// sent (RFC 6750 §3). The reason is an [`crate::auth::AuthError`]'s
    /// text: it never holds the token.
    pub fn unauthorized(refused: Option<&str>) -> Response<Full<Bytes>> {
        let (_, _, default) = HttpError::TokenNotValid.parts();
        let mut response =
            HttpError::TokenNotValid.body(refused.unwrap_or(default), serde_json::Map::new());
        let challenge = match refused {
            None => "Bearer realm=\"wsguard\"".to_owned(),
            Some(reason) => {
                let quoted: String = reason
                    .chars()
                    .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                    .collect();
                format!(
                    "Bearer realm=\"wsguard\", error=\"invalid_token\", error_description=\"{quoted}\""
                )
            }
        };
        if let Ok(v) = http::HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, v);
        }
        response
    }

    /// The response with `message` and the `extra` members (the status and code stay).
    fn body(
        self,
        message: &str,
        mut extra: serde_json::Map<String, serde_json::Value>,
    ) -> Response<Full<Bytes>> {
        let (status, code, _) = self.parts();
        extra.insert("error".into(), code.into());
        extra.insert("message".into(), message.into());
        let body = serde_json::Value::Object(extra).to_string();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let h = response.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if self == HttpError::AdminUnauthorized {
            h.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        if self == HttpError::UnsupportedWebSocketVersion {
            // RFC 6455 §4.4: the versions the server speaks.
            h.insert(
                http::header::SEC_WEBSOCKET_VERSION,
                http::HeaderValue::from_static("13"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_lists_every_cause() {
        use super::CloseCause::{self, *};
        // Exhaustive: a new cause does not compile here until it is named,
        // and then it must be in `ALL` too.
        let listed = |c: CloseCause| match c {
            AuthTimeout
            | AuthRequired
            | InvalidToken
            | AuthFrameTooLarge
            | ClientMessageTooLarge
            | UpstreamMessageTooLarge
            | UpstreamUnavailable
            | UpstreamGone
            | ClientGone
            | ClientProtocolError
            | BufferFull
            | SlowClient
            | SlowUpstream
            | TokenExpired
            | IdentityMismatch
            | TooManyFailedReauth
            | PingTimeout
            | MaxLifetime
            | KeyRevoked
            | IdleTimeout
            | TokenInUse
            | Draining
            | TokenRevoked
            | TooManyAttempts
            | TooManyConnections
            | ClientFrameStalled
            | UpstreamFrameStalled => CloseCause::ALL.contains(&c),
        };
        for c in CloseCause::ALL {
            assert!(listed(c));
        }
        for c in [
            AuthTimeout,
            AuthRequired,
            InvalidToken,
            AuthFrameTooLarge,
            ClientMessageTooLarge,
            UpstreamMessageTooLarge,
            UpstreamUnavailable,
            UpstreamGone,
            ClientGone,
            ClientProtocolError,
            BufferFull,
            SlowClient,
            SlowUpstream,
            TokenExpired,
            IdentityMismatch,
            TooManyFailedReauth,
            PingTimeout,
            MaxLifetime,
            KeyRevoked,
            IdleTimeout,
            TokenInUse,
            Draining,
            TokenRevoked,
            TooManyAttempts,
            TooManyConnections,
            ClientFrameStalled,
            UpstreamFrameStalled,
        ] {
            assert!(listed(c), "{c:?} is not in CloseCause::ALL");
        }
    }

    use super::*;

    #[test]
    fn auth_closes_are_policy_or_distinct() {
        assert_eq!(
            CloseCause::TokenExpired.client_code(CloseCodes::Policy),
            1008
        );
        assert_eq!(
            CloseCause::TokenExpired.client_code(CloseCodes::Distinct),
            4419
        );
        assert_eq!(
            CloseCause::TooManyFailedReauth.client_code(CloseCodes::Distinct),
            4403
        );
        assert_eq!(
            CloseCause::UpstreamUnavailable.client_code(CloseCodes::Distinct),
            1013
        );
        assert_eq!(CloseCause::KeyRevoked.client_code(CloseCodes::Policy), 1008);
        assert_eq!(
            CloseCause::KeyRevoked.client_code(CloseCodes::Distinct),
            4401
        );
        assert_eq!(CloseCause::KeyRevoked.reason(), "key revoked");
        assert_eq!(
            CloseCause::IdleTimeout.client_code(CloseCodes::Policy),
            1001
        );
        assert_eq!(
            CloseCause::IdleTimeout.client_code(CloseCodes::Distinct),
            4440
        );
        assert_eq!(
            CloseCause::TokenInUse.client_code(CloseCodes::Distinct),
            1008
        );
        assert_eq!(
            CloseCause::TokenRevoked.client_code(CloseCodes::Distinct),
            4403
        );
        assert_eq!(
            CloseCause::TokenRevoked.client_code(CloseCodes::Policy),
            1008
        );
        let up = CloseCause::TokenRevoked.frames(CloseCodes::Policy).upstream;
        let up = up.map(|f| (u16::from(f.code), f.reason.to_string()));
        assert_eq!(up, Some((1001, "token revoked".to_string())));
        for c in [CloseCause::TooManyAttempts, CloseCause::TooManyConnections] {
            assert_eq!(c.client_code(CloseCodes::Policy), 1008);
            assert_eq!(c.client_code(CloseCodes::Distinct), 4429);
        }
        let f = CloseCause::InvalidToken.frames(CloseCodes::Policy);
        let up = f
            .upstream
            .map(|f| (u16::from(f.code), f.reason.to_string()));
        assert_eq!(up, Some((1001, "invalid token".to_string())));
        let f = CloseCause::Draining.frames(CloseCodes::Distinct);
        let both =
            [f.client, f.upstream].map(|f| f.map(|f| (u16::from(f.code), f.reason.to_string())));
        assert_eq!(
            both,
            [
                Some((1001, "going away".to_string())),
                Some((1001, "going away".to_string()))
            ]
        );
    }
}
