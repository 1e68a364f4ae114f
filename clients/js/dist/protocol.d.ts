/**
 * The wsguard wire protocol, default dialect: frame types (both directions)
 * and the close table. Mirrors docs/protocol.md and docs/schemas/; the test
 * `frame types match the schemas` compares these interfaces with the schemas.
 */
/** The envelope of every frame wsguard writes. */
export interface ServerEnvelope<T extends string, P> {
    /** The frame's kind. */
    type: T;
    /** Unique per frame: a per-process prefix plus a counter. */
    id: string;
    /** When wsguard wrote it: RFC 3339, UTC, milliseconds. */
    timestamp: string;
    /** The frame's content. */
    payload: P;
}
/** `AUTHENTICATED`: after the first auth and after each accepted REAUTH. */
export interface AuthenticatedPayload {
    /** The token's subject, pinned for the connection's life. */
    sub: string;
    /** The token's expiry, unix seconds. */
    exp: number;
    /** `exp` as RFC 3339. */
    expires_at: string;
    /** The connection's id (the upstream's X-Request-Id). */
    connection_id: string;
    /** The `id` of the auth frame this answers. */
    in_reply_to?: unknown;
}
/** `auth_required`: refresh now, the token expires soon. */
export interface AuthRequiredPayload {
    /** The current token's expiry, RFC 3339. */
    expires_at: string;
    /** Seconds left. */
    expires_in: number;
}
/** `TOKEN_EXPIRED`: the connection is suspended for `grace` seconds. */
export interface TokenExpiredPayload {
    /** The token's expiry, RFC 3339. */
    expired_at: string;
    /** Seconds the connection waits for a REAUTH before it closes. */
    grace: number;
}
/** The `code` of an `error` frame. */
export type ErrorCode = "invalid_token" | "stale_token" | "rate_limited" | "reserved_type" | "malformed_frame" | "frame_too_large" | "not_authenticated" | "token_in_use";
/** Every `error` code, in the order of docs/protocol.md. */
export declare const ERROR_CODES: readonly ErrorCode[];
/** `error`: a refused REAUTH or control frame; the connection stays open. */
export interface ErrorPayload {
    /** What went wrong. */
    code: ErrorCode;
    /** A human-readable detail. */
    message: string;
    /** The `id` of the refused frame, when it had one. */
    in_reply_to?: unknown;
}
/** `reconnect`: the drain hint; open a new connection after `after_ms`. */
export interface ReconnectPayload {
    /** Milliseconds to wait before reconnecting. */
    after_ms: number;
}
/** `idle_warning`: no application message for a while; the connection closes in `closes_in_ms` unless the app sends. */
export interface IdleWarningPayload {
    /** Milliseconds until the idle close. */
    closes_in_ms: number;
}
/** Frames wsguard writes to the client. */
export type AuthenticatedFrame = ServerEnvelope<"AUTHENTICATED", AuthenticatedPayload>;
/** See {@link AuthRequiredPayload}. */
export type AuthRequiredFrame = ServerEnvelope<"auth_required", AuthRequiredPayload>;
/** See {@link TokenExpiredPayload}. */
export type TokenExpiredFrame = ServerEnvelope<"TOKEN_EXPIRED", TokenExpiredPayload>;
/** See {@link ErrorPayload}. */
export type ErrorFrame = ServerEnvelope<"error", ErrorPayload>;
/** See {@link ReconnectPayload}. */
export type ReconnectFrame = ServerEnvelope<"reconnect", ReconnectPayload>;
/** See {@link IdleWarningPayload}. */
export type IdleWarningFrame = ServerEnvelope<"idle_warning", IdleWarningPayload>;
/** Any frame wsguard writes to the client. */
export type ServerFrame = AuthenticatedFrame | AuthRequiredFrame | TokenExpiredFrame | ErrorFrame | ReconnectFrame | IdleWarningFrame;
/** The payload of the client's auth and REAUTH frames. */
export interface TokenPayload {
    /** The JWT. */
    token: string;
}
/** A client frame carrying a token (`auth` first, `REAUTH` afterwards). */
export interface ClientTokenFrame {
    /** `auth` / `AUTHENTICATE` first, `REAUTH` (or those two) afterwards. */
    type: string;
    /** Echoed as `payload.in_reply_to`. */
    id?: unknown;
    /** Ignored by wsguard. */
    timestamp?: unknown;
    /** The token. */
    payload: TokenPayload;
}
/** The frame names of a wsguard `[dialect]` (`""` = not used). */
export interface Dialect {
    /** The first auth frame's type (the first of `dialect.auth`). */
    auth: string;
    /** The re-auth frame's type (the first of `dialect.reauth`). */
    reauth: string;
    /** `dialect.authenticated`. */
    authenticated: string;
    /** `dialect.auth_required`. */
    authRequired: string;
    /** `dialect.token_expired`. */
    tokenExpired: string;
    /** `dialect.error`. */
    error: string;
    /** `dialect.reconnect` (the drain hint). */
    reconnect: string;
    /** `dialect.idle_warning`. */
    idleWarning: string;
}
/** The default dialect. */
export declare const DEFAULT_DIALECT: Readonly<Dialect>;
/** What a close means to a client. */
export type CloseKind = 
/** The token was refused or ran out: reconnect only with a new token. */
"auth"
/** Something went wrong on the way: reconnect with backoff. */
 | "transient"
/** The client's auth frame itself is refused (too large): retrying cannot help. */
 | "client"
/** The proxy is going away or the connection reached its lifetime: reconnect. */
 | "going_away"
/** No application message for `session.idle_timeout`: reconnect only when the app sends again. */
 | "idle";
/** One row of the close table of docs/protocol.md. */
export interface CloseCause {
    /** The stable reason string. */
    reason: string;
    /** The code with `session.close_codes = "policy"`. */
    policy: number;
    /** The code with `session.close_codes = "distinct"`. */
    distinct: number;
    /** How the client reacts. */
    kind: CloseKind;
}
/** The closes wsguard starts (docs/protocol.md, "Closes wsguard starts"). */
export declare const CLOSE_CAUSES: {
    readonly authTimeout: {
        readonly reason: "auth timeout";
        readonly policy: 1008;
        readonly distinct: 4408;
        readonly kind: "auth";
    };
    readonly authRequired: {
        readonly reason: "auth required";
        readonly policy: 1008;
        readonly distinct: 4400;
        readonly kind: "auth";
    };
    readonly invalidToken: {
        readonly reason: "invalid token";
        readonly policy: 1008;
        readonly distinct: 4401;
        readonly kind: "auth";
    };
    readonly authFrameTooLarge: {
        readonly reason: "auth frame too large";
        readonly policy: 1009;
        readonly distinct: 1009;
        readonly kind: "client";
    };
    readonly messageTooLarge: {
        readonly reason: "message too large";
        readonly policy: 1009;
        readonly distinct: 1009;
        readonly kind: "transient";
    };
    readonly upstreamUnavailable: {
        readonly reason: "upstream unavailable";
        readonly policy: 1013;
        readonly distinct: 1013;
        readonly kind: "transient";
    };
    readonly upstreamGone: {
        readonly reason: "upstream gone";
        readonly policy: 1011;
        readonly distinct: 1011;
        readonly kind: "transient";
    };
    readonly upstreamSlow: {
        readonly reason: "upstream gone";
        readonly policy: 1001;
        readonly distinct: 1001;
        readonly kind: "transient";
    };
    readonly protocolError: {
        readonly reason: "protocol error";
        readonly policy: 1002;
        readonly distinct: 1002;
        readonly kind: "transient";
    };
    readonly bufferFull: {
        readonly reason: "buffer full";
        readonly policy: 1008;
        readonly distinct: 1008;
        readonly kind: "transient";
    };
    readonly slowConsumer: {
        readonly reason: "slow consumer";
        readonly policy: 1013;
        readonly distinct: 1013;
        readonly kind: "transient";
    };
    readonly tokenExpired: {
        readonly reason: "token expired";
        readonly policy: 1008;
        readonly distinct: 4419;
        readonly kind: "auth";
    };
    readonly identityMismatch: {
        readonly reason: "identity mismatch";
        readonly policy: 1008;
        readonly distinct: 4403;
        readonly kind: "auth";
    };
    readonly tooManyFailedReauth: {
        readonly reason: "too many failed reauth";
        readonly policy: 1008;
        readonly distinct: 4403;
        readonly kind: "auth";
    };
    readonly pingTimeout: {
        readonly reason: "ping timeout";
        readonly policy: 1001;
        readonly distinct: 1001;
        readonly kind: "transient";
    };
    readonly maxLifetime: {
        readonly reason: "max lifetime";
        readonly policy: 1001;
        readonly distinct: 1001;
        readonly kind: "going_away";
    };
    /** The key that signed the token left its provider's set and no REAUTH came. */
    readonly keyRevoked: {
        readonly reason: "key revoked";
        readonly policy: 1008;
        readonly distinct: 4401;
        readonly kind: "auth";
    };
    /** The token already opens `auth.max_connections_per_token` live connections: a new token is needed. */
    readonly tokenInUse: {
        readonly reason: "token in use";
        readonly policy: 1008;
        readonly distinct: 1008;
        readonly kind: "auth";
    };
    /** No application message for `session.idle_timeout` (after `idle_warning`). */
    readonly idleTimeout: {
        readonly reason: "idle timeout";
        readonly policy: 1001;
        readonly distinct: 4440;
        readonly kind: "idle";
    };
    /** The drain's close (issue #15), after the `reconnect` hint. */
    readonly goingAway: {
        readonly reason: "going away";
        readonly policy: 1001;
        readonly distinct: 1001;
        readonly kind: "going_away";
    };
};
/** The name of a row of {@link CLOSE_CAUSES}. */
export type CloseCauseName = keyof typeof CLOSE_CAUSES;
/** A close as the client saw it, classified. */
export interface CloseInfo {
    /** The close code (1006 when the socket ended without a close frame). */
    code: number;
    /** The close reason. */
    reason: string;
    /** The row of the close table it matches, if wsguard started it. */
    cause: CloseCauseName | undefined;
    /** How the client reacts to it. */
    kind: CloseKind | "normal";
}
/** Classifies a close by code and reason, in either `close_codes` mode. */
export declare function classifyClose(code: number, reason: string): CloseInfo;
