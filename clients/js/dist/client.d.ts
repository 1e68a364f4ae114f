/**
 * `WsGuardClient`: a WebSocket to a service behind wsguard that stays
 * authenticated across token refreshes, queues while it cannot send, and
 * reconnects when it should (and only then).
 */
import { AuthExpiredError } from "./errors.js";
import { Emitter } from "./events.js";
import { type FetchLike } from "./fetch.js";
import { type AuthRequiredPayload, type AuthenticatedPayload, type CloseInfo, type Dialect, type ErrorPayload, type IdleWarningPayload, type ReconnectPayload, type TokenExpiredPayload } from "./protocol.js";
import { type Data } from "./queue.js";
import { type State } from "./state.js";
import { TokenManager, type TokenOptions } from "./tokens.js";
/** The part of the WebSocket API the client uses (browsers' and the `ws` package's). */
export interface WebSocketLike {
    /** 0 connecting, 1 open, 2 closing, 3 closed. */
    readonly readyState: number;
    /** Bytes queued in the socket, not yet sent. */
    readonly bufferedAmount: number;
    /** How binary messages are delivered. */
    binaryType: string;
    /** Sends a message. */
    send(data: Data): void;
    /** Starts the closing handshake. */
    close(code?: number, reason?: string): void;
    /** Called when open. */
    onopen: ((event: unknown) => void) | null;
    /** Called per message. */
    onmessage: ((event: {
        data: unknown;
    }) => void) | null;
    /** Called when closed. */
    onclose: ((event: {
        code: number;
        reason: string;
    }) => void) | null;
    /** Called on an error (a close follows). */
    onerror: ((event: unknown) => void) | null;
}
/** A WebSocket constructor. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;
/** Options of {@link WsGuardClient}. */
export interface ClientOptions extends TokenOptions {
    /** The WebSocket class (default: the global one; in Node 20 pass the `ws` package's). */
    WebSocket?: WebSocketConstructor;
    /** Subprotocols to offer (wsguard must list them in `upstream.subprotocols`). */
    protocols?: string | string[];
    /** Frame names, when the proxy's `[dialect]` renames them (default: the default dialect). */
    dialect?: Partial<Dialect>;
    /** Called on every state change. */
    onStateChange?: (state: State, previous: State) => void;
    /** Most messages queued while the client cannot send (default 1000); more reject with `queue_full`. */
    queueLimit?: number;
    /** Refresh on its own at this fraction of a token's remaining life (default 0.75; `false`: only on `auth_required`). */
    refreshAt?: number | false;
    /** The proxy's `session.reauth_min_interval`, ms: REAUTHs are spaced at least this much (default 1000). */
    reauthMinIntervalMs?: number;
    /** Reconnect backoff base, ms (default 500; full jitter, doubling per attempt). */
    reconnectBaseMs?: number;
    /** Reconnect backoff ceiling, ms (default 30000). */
    reconnectMaxMs?: number;
    /** Reconnects after an auth close with a new token before giving up with `authExpired` (default 1). */
    maxAuthRetries?: number;
    /** The fetch for `authFetch` (default: the global one). */
    fetch?: FetchLike;
    /**
     * Every socket authenticates with a token no other socket used: `getToken()`
     * is called again for each new connection, and tokens are not shared with
     * other tabs (`coordinate` is off). For wsguard's `auth.max_connections_per_token = 1`.
     */
    tokenPerConnection?: boolean;
}
/** The events of {@link WsGuardClient}, one per frame type plus the client's own. */
export interface ClientEvents {
    /** Every state change. */
    state: (state: State, previous: State) => void;
    /** Application data from the upstream (text as a string, binary as the socket delivers it). */
    message: (data: unknown) => void;
    /** `AUTHENTICATED`. */
    authenticated: (payload: AuthenticatedPayload) => void;
    /** `auth_required`. */
    authRequired: (payload: AuthRequiredPayload) => void;
    /** `TOKEN_EXPIRED`. */
    tokenExpired: (payload: TokenExpiredPayload) => void;
    /** `error` frames (a refused REAUTH or control frame; the socket stays open). */
    frameError: (payload: ErrorPayload) => void;
    /** `reconnect`, the drain hint. */
    reconnect: (payload: ReconnectPayload) => void;
    /** `idle_warning`: send something within `closes_in_ms`, or the socket closes (`idle` state). */
    idleWarning: (payload: IdleWarningPayload) => void;
    /** No valid token: show the "session expired" prompt, then call `setToken()`. */
    authExpired: (error: AuthExpiredError) => void;
    /** A socket closed (the client may reconnect, see `state`). */
    close: (info: CloseInfo) => void;
}
/** The client. See the README for a walk-through. */
export declare class WsGuardClient extends Emitter<ClientEvents> {
    #private;
    /** The `fetch` wrapper that shares this client's tokens. */
    readonly authFetch: FetchLike;
    /** Opens the socket at once and authenticates on open. */
    constructor(url: string, options: ClientOptions);
    /** The current state. */
    get state(): State;
    /** Bytes the current socket has not sent yet (0 without a socket). */
    get bufferedAmount(): number;
    /** Messages waiting for an authenticated socket. */
    get queued(): number;
    /** The token manager (shared by the socket and `authFetch`). */
    get tokens(): TokenManager;
    /**
     * Sends a message, or queues it until the socket is authenticated. Resolves
     * once handed to `WebSocket.send()`; rejects with {@link SendError}.
     */
    send(data: Data): Promise<void>;
    /** Refreshes the token now (shared with every other trigger) and re-authenticates. */
    refresh(): void;
    /** A token from the app (say, after the user signed in again): resumes at once. */
    setToken(token: string): void;
    /** Closes for good: the queue is refused, nothing reconnects. */
    close(code?: number, reason?: string): void;
}
