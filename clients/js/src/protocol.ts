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
export type ErrorCode =
  | "invalid_token"
  | "stale_token"
  | "rate_limited"
  | "reserved_type"
  | "malformed_frame"
  | "frame_too_large"
  | "not_authenticated"
  | "token_in_use";

/** Every `error` code, in the order of docs/protocol.md. */
export const ERROR_CODES: readonly ErrorCode[] = [
  "invalid_token",
  "stale_token",
  "rate_limited",
  "reserved_type",
  "malformed_frame",
  "frame_too_large",
  "not_authenticated",
  "token_in_use",
];

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
export type ServerFrame =
  | AuthenticatedFrame
  | AuthRequiredFrame
  | TokenExpiredFrame
  | ErrorFrame
  | ReconnectFrame
  | IdleWarningFrame;

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
export const DEFAULT_DIALECT: Readonly<Dialect> = {
  auth: "auth",
  reauth: "REAUTH",
  authenticated: "AUTHENTICATED",
  authRequired: "auth_required",
  tokenExpired: "TOKEN_EXPIRED",
  error: "error",
  reconnect: "reconnect",
  idleWarning: "idle_warning",
};

/** What a close means to a client. */
export type CloseKind =
  /** The token was refused or ran out: reconnect only with a new token. */
  | "auth"
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
} as const satisfies Record<string, CloseCause>;

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
export function classifyClose(code: number, reason: string): CloseInfo {
  for (const [name, row] of Object.entries(CLOSE_CAUSES) as [CloseCauseName, CloseCause][]) {
    if (row.reason === reason && (row.policy === code || row.distinct === code)) {
      return { code, reason, cause: name, kind: row.kind };
    }
  }
  if (code >= 4400 && code <= 4499) return { code, reason, cause: undefined, kind: "auth" };
  if (code === 1008) return { code, reason, cause: undefined, kind: "auth" };
  if (code === 1000) return { code, reason, cause: undefined, kind: "normal" };
  if (code === 1001) return { code, reason, cause: undefined, kind: "going_away" };
  return { code, reason, cause: undefined, kind: "transient" };
}
