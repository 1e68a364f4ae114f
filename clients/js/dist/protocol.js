/**
 * The wsguard wire protocol, default dialect: frame types (both directions)
 * and the close table. Mirrors docs/protocol.md and docs/schemas/; the test
 * `frame types match the schemas` compares these interfaces with the schemas.
 */
/** Every `error` code, in the order of docs/protocol.md. */
export const ERROR_CODES = [
    "invalid_token",
    "stale_token",
    "rate_limited",
    "reserved_type",
    "malformed_frame",
    "frame_too_large",
    "not_authenticated",
    "token_in_use",
];
/** The default dialect. */
export const DEFAULT_DIALECT = {
    auth: "auth",
    reauth: "REAUTH",
    authenticated: "AUTHENTICATED",
    authRequired: "auth_required",
    tokenExpired: "TOKEN_EXPIRED",
    error: "error",
    reconnect: "reconnect",
    idleWarning: "idle_warning",
};
/** The closes wsguard starts (docs/protocol.md, "Closes wsguard starts"). */
export const CLOSE_CAUSES = {
    authTimeout: { reason: "auth timeout", policy: 1008, distinct: 4408, kind: "auth" },
    authRequired: { reason: "auth required", policy: 1008, distinct: 4400, kind: "auth" },
    invalidToken: { reason: "invalid token", policy: 1008, distinct: 4401, kind: "auth" },
    authFrameTooLarge: { reason: "auth frame too large", policy: 1009, distinct: 1009, kind: "client" },
    messageTooLarge: { reason: "message too large", policy: 1009, distinct: 1009, kind: "transient" },
    upstreamUnavailable: { reason: "upstream unavailable", policy: 1013, distinct: 1013, kind: "transient" },
    upstreamGone: { reason: "upstream gone", policy: 1011, distinct: 1011, kind: "transient" },
    upstreamSlow: { reason: "upstream gone", policy: 1001, distinct: 1001, kind: "transient" },
    protocolError: { reason: "protocol error", policy: 1002, distinct: 1002, kind: "transient" },
    bufferFull: { reason: "buffer full", policy: 1008, distinct: 1008, kind: "transient" },
    slowConsumer: { reason: "slow consumer", policy: 1013, distinct: 1013, kind: "transient" },
    tokenExpired: { reason: "token expired", policy: 1008, distinct: 4419, kind: "auth" },
    identityMismatch: { reason: "identity mismatch", policy: 1008, distinct: 4403, kind: "auth" },
    tooManyFailedReauth: { reason: "too many failed reauth", policy: 1008, distinct: 4403, kind: "auth" },
    pingTimeout: { reason: "ping timeout", policy: 1001, distinct: 1001, kind: "transient" },
    maxLifetime: { reason: "max lifetime", policy: 1001, distinct: 1001, kind: "going_away" },
    /** The key that signed the token left its provider's set and no REAUTH came. */
    keyRevoked: { reason: "key revoked", policy: 1008, distinct: 4401, kind: "auth" },
    /** The token already opens `auth.max_connections_per_token` live connections: a new token is needed. */
    tokenInUse: { reason: "token in use", policy: 1008, distinct: 1008, kind: "auth" },
    /** No application message for `session.idle_timeout` (after `idle_warning`). */
    idleTimeout: { reason: "idle timeout", policy: 1001, distinct: 4440, kind: "idle" },
    /** The drain's close (issue #15), after the `reconnect` hint. */
    goingAway: { reason: "going away", policy: 1001, distinct: 1001, kind: "going_away" },
};
/** Classifies a close by code and reason, in either `close_codes` mode. */
export function classifyClose(code, reason) {
    for (const [name, row] of Object.entries(CLOSE_CAUSES)) {
        if (row.reason === reason && (row.policy === code || row.distinct === code)) {
            return { code, reason, cause: name, kind: row.kind };
        }
    }
    if (code >= 4400 && code <= 4499)
        return { code, reason, cause: undefined, kind: "auth" };
    if (code === 1008)
        return { code, reason, cause: undefined, kind: "auth" };
    if (code === 1000)
        return { code, reason, cause: undefined, kind: "normal" };
    if (code === 1001)
        return { code, reason, cause: undefined, kind: "going_away" };
    return { code, reason, cause: undefined, kind: "transient" };
}
