/**
 * `WsGuardClient`: a WebSocket to a service behind wsguard that stays
 * authenticated across token refreshes, queues while it cannot send, and
 * reconnects when it should (and only then).
 */

import { fullJitter } from "./backoff.js";
import { AuthExpiredError, SendError } from "./errors.js";
import { Emitter } from "./events.js";
import { createAuthFetch, type FetchLike } from "./fetch.js";
import {
  classifyClose,
  DEFAULT_DIALECT,
  type AuthRequiredPayload,
  type AuthenticatedPayload,
  type CloseInfo,
  type Dialect,
  type ErrorPayload,
  type IdleWarningPayload,
  type ReconnectPayload,
  type TokenExpiredPayload,
} from "./protocol.js";
import { SendQueue, type Data } from "./queue.js";
import { StateMachine, type State } from "./state.js";
import { TokenManager, type TokenOptions, type TokenSource } from "./tokens.js";

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
  onmessage: ((event: { data: unknown }) => void) | null;
  /** Called when closed. */
  onclose: ((event: { code: number; reason: string }) => void) | null;
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

/** One WebSocket of the client and what is known about it. */
interface Socket {
  /** The socket. */
  ws: WebSocketLike;
  /** It got `AUTHENTICATED` at least once. */
  authed: boolean;
  /** The token its last auth or REAUTH carried. */
  token: string | undefined;
}

/** The client. See the README for a walk-through. */
export class WsGuardClient extends Emitter<ClientEvents> {
  readonly #url: string;
  readonly #options: ClientOptions;
  readonly #dialect: Dialect;
  readonly #machine: StateMachine;
  readonly #queue: SendQueue;
  readonly #tokens: TokenManager;
  readonly #WebSocket: WebSocketConstructor;
  /** The socket messages go to. */
  #primary: Socket | undefined;
  /** The socket being opened to replace the primary (the `reconnect` hint). */
  #next: Socket | undefined;
  #handover = false;
  #proxySuspended = false;
  #closed = false;
  #attempt = 0;
  #authFailures = 0;
  #frameId = 0;
  #lastReauthAt = 0;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshDueAt = Infinity;
  #waitingForToken = false;
  #expiredNotified = false;
  /** The token of the last auth close: never reconnect with it. */
  #refusedToken: string | undefined;
  /** Tokens a socket has carried (`tokenPerConnection`: each is used once). */
  readonly #spent = new Set<string>();
  readonly #visibility: () => void;

  /** The `fetch` wrapper that shares this client's tokens. */
  readonly authFetch: FetchLike;

  /** Opens the socket at once and authenticates on open. */
  constructor(url: string, options: ClientOptions) {
    super();
    this.#url = url;
    this.#options = options;
    this.#dialect = { ...DEFAULT_DIALECT, ...options.dialect };
    this.#queue = new SendQueue(options.queueLimit ?? 1000);
    const Ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ws) throw new TypeError("no WebSocket: pass options.WebSocket (in Node 20, the ws package's)");
    this.#WebSocket = Ws;
    this.#tokens = new TokenManager(options.tokenPerConnection ? { ...options, coordinate: false } : options);
    this.#tokens.onToken((token, source) => this.#onToken(token, source));
    this.#tokens.onExpired((error) => this.#onAuthExpired(error));
    const fetchImpl = options.fetch ?? (globalThis.fetch?.bind(globalThis) as FetchLike | undefined);
    this.authFetch = fetchImpl
      ? createAuthFetch(this.#tokens, fetchImpl)
      : () => Promise.reject(new TypeError("no fetch: pass options.fetch"));
    this.#machine = new StateMachine((state, previous) => {
      options.onStateChange?.(state, previous);
      this.emit("state", state, previous);
    });
    this.#visibility = () => {
      const doc = (globalThis as { document?: { visibilityState?: string } }).document;
      if (doc?.visibilityState === "visible" && Date.now() >= this.#refreshDueAt) this.refresh();
    };
    (globalThis as { document?: EventTarget }).document?.addEventListener?.("visibilitychange", this.#visibility);
    this.#open();
  }

  /** The current state. */
  get state(): State {
    return this.#machine.state;
  }

  /** Bytes the current socket has not sent yet (0 without a socket). */
  get bufferedAmount(): number {
    return this.#primary?.ws.bufferedAmount ?? 0;
  }

  /** Messages waiting for an authenticated socket. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The token manager (shared by the socket and `authFetch`). */
  get tokens(): TokenManager {
    return this.#tokens;
  }

  /**
   * Sends a message, or queues it until the socket is authenticated. Resolves
   * once handed to `WebSocket.send()`; rejects with {@link SendError}.
   */
  send(data: Data): Promise<void> {
    if (this.#closed) return Promise.reject(new SendError("closed", "the client is closed"));
    if (this.#machine.state === "idle") {
      // Closed for inactivity: the app is active again.
      const queued = this.#queue.push(data);
      this.#open();
      return queued;
    }
    if (this.#queue.length === 0 && this.#canSend()) {
      (this.#primary as Socket).ws.send(data);
      return Promise.resolve();
    }
    return this.#queue.push(data);
  }

  /** Refreshes the token now (shared with every other trigger) and re-authenticates. */
  refresh(): void {
    this.#tokens.refresh().catch(() => {});
  }

  /** A token from the app (say, after the user signed in again): resumes at once. */
  setToken(token: string): void {
    this.#authFailures = 0;
    this.#tokens.set(token);
  }

  /** Closes for good: the queue is refused, nothing reconnects. */
  close(code = 1000, reason = ""): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#clearRefreshTimer();
    (globalThis as { document?: EventTarget }).document?.removeEventListener?.("visibilitychange", this.#visibility);
    for (const socket of [this.#primary, this.#next]) {
      if (socket && socket.ws.readyState < 2) socket.ws.close(code, reason);
    }
    this.#queue.rejectAll(new SendError("closed", "the client is closed"));
    this.#tokens.close();
    this.#machine.to("closed");
  }

  /** Whether a message can go out on the primary socket now. */
  #canSend(): boolean {
    const state = this.#machine.state;
    return (
      this.#primary !== undefined &&
      this.#primary.ws.readyState === 1 &&
      this.#primary.authed &&
      (state === "authenticated" || state === "reauthenticating") &&
      !this.#proxySuspended &&
      !this.#handover
    );
  }

  /** Opens a socket: the primary, or the next one while handing over. */
  #open(): void {
    if (this.#closed) return;
    this.#machine.to("connecting");
    const socket: Socket = { ws: new this.#WebSocket(this.#url, this.#options.protocols), authed: false, token: undefined };
    socket.ws.binaryType = "arraybuffer";
    if (this.#handover && this.#primary) this.#next = socket;
    else this.#primary = socket;
    socket.ws.onopen = () => void this.#onOpen(socket);
    socket.ws.onmessage = (event) => this.#onMessage(socket, event.data);
    socket.ws.onclose = (event) => this.#onClose(socket, event.code, event.reason);
    socket.ws.onerror = () => {};
  }

  /** Sends the auth frame on a socket that just opened. */
  async #onOpen(socket: Socket): Promise<void> {
    if (!this.#current(socket)) return;
    this.#machine.to("authenticating");
    let token: string;
    try {
      token = await this.#tokens.current();
      if (this.#options.tokenPerConnection && this.#spent.has(token)) token = await this.#tokens.renew();
    } catch {
      return; // authExpired was emitted; setToken() resumes
    }
    this.#sendAuth(socket, token);
  }

  /** Sends the first auth frame on an open socket. */
  #sendAuth(socket: Socket, token: string): void {
    if (!this.#current(socket) || socket.ws.readyState !== 1 || socket.token !== undefined) return;
    this.#machine.to("authenticating");
    socket.token = token;
    this.#spend(token);
    socket.ws.send(this.#tokenFrame(this.#dialect.auth, token));
  }

  /** Records a token a socket carries (only with `tokenPerConnection`). */
  #spend(token: string): void {
    if (this.#options.tokenPerConnection) this.#spent.add(token);
  }

  /** Whether `socket` is the primary or the next one. */
  #current(socket: Socket): boolean {
    return socket === this.#primary || socket === this.#next;
  }

  /** A control frame carrying a token, `type` first. */
  #tokenFrame(type: string, token: string): string {
    return JSON.stringify({ type, id: `c${++this.#frameId}`, payload: { token } });
  }

  /** Routes a message: one of wsguard's frames, or application data. */
  #onMessage(socket: Socket, data: unknown): void {
    if (!this.#current(socket)) return;
    const frame = typeof data === "string" ? this.#controlFrame(data) : undefined;
    if (!frame) {
      this.emit("message", data);
      return;
    }
    const d = this.#dialect;
    const payload = frame.payload;
    if (frame.type === d.authenticated) this.#onAuthenticated(socket, payload as unknown as AuthenticatedPayload);
    else if (frame.type === d.authRequired) {
      this.emit("authRequired", payload as unknown as AuthRequiredPayload);
      this.refresh();
    } else if (frame.type === d.tokenExpired) {
      if (socket === this.#primary) {
        this.#proxySuspended = true;
        this.#machine.to("suspended");
      }
      this.emit("tokenExpired", payload as unknown as TokenExpiredPayload);
      this.refresh();
    } else if (frame.type === d.error) this.#onErrorFrame(socket, payload as unknown as ErrorPayload);
    else if (frame.type === d.idleWarning) this.emit("idleWarning", payload as unknown as IdleWarningPayload);
    else if (frame.type === d.reconnect) {
      this.emit("reconnect", payload as unknown as ReconnectPayload);
      if (socket === this.#primary) this.#startHandover((payload as unknown as ReconnectPayload).after_ms);
    }
  }

  /** The frame, when `text` is one wsguard writes (its envelope and a dialect name). */
  #controlFrame(text: string): { type: string; payload: Record<string, unknown> } | undefined {
    if (!text.startsWith("{")) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (typeof value !== "object" || value === null) return undefined;
    const { type, id, timestamp, payload } = value as Record<string, unknown>;
    const d = this.#dialect;
    const names = [d.authenticated, d.authRequired, d.tokenExpired, d.error, d.reconnect, d.idleWarning].filter(
      (n) => n !== "",
    );
    if (typeof type !== "string" || !names.includes(type)) return undefined;
    if (typeof id !== "string" || typeof timestamp !== "string") return undefined;
    if (typeof payload !== "object" || payload === null) return undefined;
    return { type, payload: payload as Record<string, unknown> };
  }

  /** `AUTHENTICATED`: in (again); flush the queue. */
  #onAuthenticated(socket: Socket, payload: AuthenticatedPayload): void {
    socket.authed = true;
    if (socket === this.#next) this.#finishHandover(socket);
    if (socket !== this.#primary) return;
    this.#attempt = 0;
    this.#authFailures = 0;
    this.#proxySuspended = false;
    this.#waitingForToken = false;
    this.#expiredNotified = false;
    this.#machine.to("authenticated");
    this.#scheduleRefresh(payload.exp);
    this.emit("authenticated", payload);
    this.#queue.flush(
      () => this.#canSend(),
      (data) => socket.ws.send(data),
    );
  }

  /** An `error` frame: a refused REAUTH is retried when rate-limited, else reported. */
  #onErrorFrame(socket: Socket, payload: ErrorPayload): void {
    this.emit("frameError", payload);
    if (socket !== this.#primary || this.#machine.state !== "reauthenticating") return;
    if (payload.code === "rate_limited" && socket.token !== undefined) {
      const token = socket.token;
      this.#later(this.#options.reauthMinIntervalMs ?? 1000, () => this.#reauth(token));
      return;
    }
    this.#machine.to(this.#proxySuspended ? "suspended" : "authenticated");
  }

  /** A new token: REAUTH on an authenticated socket, or reconnect when waiting for one. */
  #onToken(token: string, source: TokenSource): void {
    if (this.#closed || source === "initial") return;
    const primary = this.#primary;
    if (primary && primary.ws.readyState === 1 && !this.#handover) {
      if (primary.authed) this.#reauth(token);
      else if (primary.token === undefined) this.#sendAuth(primary, token); // getToken had failed
    } else if (this.#waitingForToken && !primary && (source === "set" || token !== this.#refusedToken)) {
      this.#waitingForToken = false;
      this.#open();
    }
  }

  /** Sends a REAUTH with `token`, spaced by the proxy's minimum interval. */
  #reauth(token: string): void {
    const primary = this.#primary;
    if (this.#closed || !primary || !primary.authed || primary.ws.readyState !== 1) return;
    const wait = this.#lastReauthAt + (this.#options.reauthMinIntervalMs ?? 1000) - Date.now();
    if (wait > 0) {
      this.#later(wait, () => this.#reauth(this.#tokens.token ?? token));
      return;
    }
    this.#lastReauthAt = Date.now();
    primary.token = token;
    this.#spend(token);
    this.#machine.to("reauthenticating");
    primary.ws.send(this.#tokenFrame(this.#dialect.reauth, token));
  }

  /** Refresh failed for good: tell the app, keep the queue and the socket. */
  #onAuthExpired(error: AuthExpiredError): void {
    if (this.#closed) return;
    this.#waitingForToken = true;
    this.#machine.to("suspended");
    if (this.#expiredNotified) return; // the app already shows its prompt
    this.#expiredNotified = true;
    this.emit("authExpired", error);
  }

  /** A socket closed: decide between closing, waiting for a token, and reconnecting. */
  #onClose(socket: Socket, code: number, reason: string): void {
    const info = classifyClose(code, reason);
    if (socket === this.#next) {
      this.#next = undefined;
      this.emit("close", info);
      if (!this.#closed && this.#handover) this.#later(fullJitter(this.#attempt++, this.#base(), this.#max()), () => this.#open());
      return;
    }
    if (socket !== this.#primary) return; // a replaced socket
    this.#primary = undefined;
    this.#clearRefreshTimer();
    this.emit("close", info);
    if (this.#closed) return;
    if (this.#handover) {
      // The proxy closed the old socket before the new one was in: the new one carries on.
      this.#handover = this.#next !== undefined;
      if (!this.#handover) this.#reconnect();
      return;
    }
    if (info.kind === "normal" || info.kind === "client") {
      this.close();
      return;
    }
    if (info.kind === "auth") {
      this.#afterAuthClose(socket);
      return;
    }
    if (info.kind === "idle") {
      // No reconnect until the app sends again (`send()` opens a socket).
      this.#proxySuspended = false;
      this.#machine.to("idle");
      return;
    }
    this.#reconnect();
  }

  /** After an auth close: reconnect only with a token other than the refused one. */
  #afterAuthClose(socket: Socket): void {
    this.#authFailures++;
    this.#refusedToken = socket.token;
    this.#proxySuspended = false;
    this.#waitingForToken = true;
    this.#machine.to("suspended");
    if (this.#authFailures > (this.#options.maxAuthRetries ?? 1)) {
      this.#onAuthExpired(new AuthExpiredError("the proxy refused the token again"));
      return;
    }
    this.#tokens
      .fresherThan(socket.token)
      .then((token) => {
        if (token === socket.token) {
          this.#onAuthExpired(new AuthExpiredError("refreshToken gave the refused token"));
        } else if (this.#waitingForToken && !this.#primary && !this.#closed) {
          // A token other than the refused one was already there (no refresh ran).
          this.#waitingForToken = false;
          this.#open();
        }
      })
      .catch(() => {});
  }

  /** Waits (full-jitter backoff), then opens a new socket. */
  #reconnect(): void {
    this.#proxySuspended = false;
    this.#machine.to("reconnecting");
    this.#later(fullJitter(this.#attempt++, this.#base(), this.#max()), () => this.#open());
  }

  /** The drain hint: queue from now on, open a new socket after `afterMs`. */
  #startHandover(afterMs: number): void {
    if (this.#handover) return;
    this.#handover = true;
    this.#machine.to("reconnecting");
    this.#later(Math.max(0, Number(afterMs) || 0), () => this.#open());
  }

  /** The new socket is in: close the old one with 1000, flush on the new one. */
  #finishHandover(socket: Socket): void {
    const old = this.#primary;
    this.#primary = socket;
    this.#next = undefined;
    this.#handover = false;
    if (old && old.ws.readyState < 2) old.ws.close(1000, "");
  }

  /** Schedules the client's own refresh before `exp` (unix seconds). */
  #scheduleRefresh(exp: number): void {
    this.#clearRefreshTimer();
    const fraction = this.#options.refreshAt ?? 0.75;
    if (fraction === false || !Number.isFinite(exp)) return;
    const delay = Math.max(0, (exp * 1000 - Date.now()) * fraction);
    this.#refreshDueAt = Date.now() + delay;
    this.#refreshTimer = setTimeout(() => this.refresh(), delay);
  }

  /** Cancels the own-refresh timer. */
  #clearRefreshTimer(): void {
    if (this.#refreshTimer !== undefined) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    this.#refreshDueAt = Infinity;
  }

  /** Runs `f` after `ms` unless the client closes first. */
  #later(ms: number, f: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#closed) f();
    }, ms);
    this.#timers.add(timer);
  }

  /** The reconnect backoff base. */
  #base(): number {
    return this.#options.reconnectBaseMs ?? 500;
  }

  /** The reconnect backoff ceiling. */
  #max(): number {
    return this.#options.reconnectMaxMs ?? 30000;
  }
}
