/**
 * `WsGuardClient`: a WebSocket to a service behind wsguard that stays
 * authenticated across token refreshes, queues while it cannot send, and
 * reconnects when it should (and only then).
 */
import { fullJitter } from "./backoff.js";
import { AuthExpiredError, SendError } from "./errors.js";
import { Emitter } from "./events.js";
import { createAuthFetch } from "./fetch.js";
import { classifyClose, DEFAULT_DIALECT, } from "./protocol.js";
import { SendQueue } from "./queue.js";
import { StateMachine } from "./state.js";
import { TokenManager } from "./tokens.js";
/** The client. See the README for a walk-through. */
export class WsGuardClient extends Emitter {
    #url;
    #options;
    #dialect;
    #machine;
    #queue;
    #tokens;
    #WebSocket;
    /** The socket messages go to. */
    #primary;
    /** The socket being opened to replace the primary (the `reconnect` hint). */
    #next;
    #handover = false;
    #proxySuspended = false;
    #closed = false;
    #attempt = 0;
    #authFailures = 0;
    #frameId = 0;
    #lastReauthAt = 0;
    #timers = new Set();
    #refreshTimer;
    #refreshDueAt = Infinity;
    #waitingForToken = false;
    #expiredNotified = false;
    /** The token of the last auth close: never reconnect with it. */
    #refusedToken;
    /** Tokens a socket has carried (`tokenPerConnection`: each is used once). */
    #spent = new Set();
    #visibility;
    /** The `fetch` wrapper that shares this client's tokens. */
    authFetch;
    /** Opens the socket at once and authenticates on open. */
    constructor(url, options) {
        super();
        this.#url = url;
        this.#options = options;
        this.#dialect = { ...DEFAULT_DIALECT, ...options.dialect };
        this.#queue = new SendQueue(options.queueLimit ?? 1000);
        const Ws = options.WebSocket ?? globalThis.WebSocket;
        if (!Ws)
            throw new TypeError("no WebSocket: pass options.WebSocket (in Node 20, the ws package's)");
        this.#WebSocket = Ws;
        this.#tokens = new TokenManager(options.tokenPerConnection ? { ...options, coordinate: false } : options);
        this.#tokens.onToken((token, source) => this.#onToken(token, source));
        this.#tokens.onExpired((error) => this.#onAuthExpired(error));
        const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
        this.authFetch = fetchImpl
            ? createAuthFetch(this.#tokens, fetchImpl)
            : () => Promise.reject(new TypeError("no fetch: pass options.fetch"));
        this.#machine = new StateMachine((state, previous) => {
            options.onStateChange?.(state, previous);
            this.emit("state", state, previous);
        });
        this.#visibility = () => {
            const doc = globalThis.document;
            if (doc?.visibilityState === "visible" && Date.now() >= this.#refreshDueAt)
                this.refresh();
        };
        globalThis.document?.addEventListener?.("visibilitychange", this.#visibility);
        this.#open();
    }
    /** The current state. */
    get state() {
        return this.#machine.state;
    }
    /** Bytes the current socket has not sent yet (0 without a socket). */
    get bufferedAmount() {
        return this.#primary?.ws.bufferedAmount ?? 0;
    }
    /** Messages waiting for an authenticated socket. */
    get queued() {
        return this.#queue.length;
    }
    /** The token manager (shared by the socket and `authFetch`). */
    get tokens() {
        return this.#tokens;
    }
    /**
     * Sends a message, or queues it until the socket is authenticated. Resolves
     * once handed to `WebSocket.send()`; rejects with {@link SendError}.
     */
    send(data) {
        if (this.#closed)
            return Promise.reject(new SendError("closed", "the client is closed"));
        if (this.#machine.state === "idle") {
            // Closed for inactivity: the app is active again.
            const queued = this.#queue.push(data);
            this.#open();
            return queued;
        }
        if (this.#queue.length === 0 && this.#canSend()) {
            this.#primary.ws.send(data);
            return Promise.resolve();
        }
        return this.#queue.push(data);
    }
    /** Refreshes the token now (shared with every other trigger) and re-authenticates. */
    refresh() {
        this.#tokens.refresh().catch(() => { });
    }
    /** A token from the app (say, after the user signed in again): resumes at once. */
    setToken(token) {
        this.#authFailures = 0;
        this.#tokens.set(token);
    }
    /** Closes for good: the queue is refused, nothing reconnects. */
    close(code = 1000, reason = "") {
        if (this.#closed)
            return;
        this.#closed = true;
        for (const timer of this.#timers)
            clearTimeout(timer);
        this.#timers.clear();
        this.#clearRefreshTimer();
        globalThis.document?.removeEventListener?.("visibilitychange", this.#visibility);
        for (const socket of [this.#primary, this.#next]) {
            if (socket && socket.ws.readyState < 2)
                socket.ws.close(code, reason);
        }
        this.#queue.rejectAll(new SendError("closed", "the client is closed"));
        this.#tokens.close();
        this.#machine.to("closed");
    }
    /** Whether a message can go out on the primary socket now. */
    #canSend() {
        const state = this.#machine.state;
        return (this.#primary !== undefined &&
            this.#primary.ws.readyState === 1 &&
            this.#primary.authed &&
            (state === "authenticated" || state === "reauthenticating") &&
            !this.#proxySuspended &&
            !this.#handover);
    }
    /** Opens a socket: the primary, or the next one while handing over. */
    #open() {
        if (this.#closed)
            return;
        this.#machine.to("connecting");
        const socket = { ws: new this.#WebSocket(this.#url, this.#options.protocols), authed: false, token: undefined };
        socket.ws.binaryType = "arraybuffer";
        if (this.#handover && this.#primary)
            this.#next = socket;
        else
            this.#primary = socket;
        socket.ws.onopen = () => void this.#onOpen(socket);
        socket.ws.onmessage = (event) => this.#onMessage(socket, event.data);
        socket.ws.onclose = (event) => this.#onClose(socket, event.code, event.reason);
        socket.ws.onerror = () => { };
    }
    /** Sends the auth frame on a socket that just opened. */
    async #onOpen(socket) {
        if (!this.#current(socket))
            return;
        this.#machine.to("authenticating");
        let token;
        try {
            token = await this.#tokens.current();
            if (this.#options.tokenPerConnection && this.#spent.has(token))
                token = await this.#tokens.renew();
        }
        catch {
            return; // authExpired was emitted; setToken() resumes
        }
        this.#sendAuth(socket, token);
    }
    /** Sends the first auth frame on an open socket. */
    #sendAuth(socket, token) {
        if (!this.#current(socket) || socket.ws.readyState !== 1 || socket.token !== undefined)
            return;
        this.#machine.to("authenticating");
        socket.token = token;
        this.#spend(token);
        socket.ws.send(this.#tokenFrame(this.#dialect.auth, token));
    }
    /** Records a token a socket carries (only with `tokenPerConnection`). */
    #spend(token) {
        if (this.#options.tokenPerConnection)
            this.#spent.add(token);
    }
    /** Whether `socket` is the primary or the next one. */
    #current(socket) {
        return socket === this.#primary || socket === this.#next;
    }
    /** A control frame carrying a token, `type` first. */
    #tokenFrame(type, token) {
        return JSON.stringify({ type, id: `c${++this.#frameId}`, payload: { token } });
    }
    /** Routes a message: one of wsguard's frames, or application data. */
    #onMessage(socket, data) {
        if (!this.#current(socket))
            return;
        const frame = typeof data === "string" ? this.#controlFrame(data) : undefined;
        if (!frame) {
            this.emit("message", data);
            return;
        }
        const d = this.#dialect;
        const payload = frame.payload;
        if (frame.type === d.authenticated)
            this.#onAuthenticated(socket, payload);
        else if (frame.type === d.authRequired) {
            this.emit("authRequired", payload);
            this.refresh();
        }
        else if (frame.type === d.tokenExpired) {
            if (socket === this.#primary) {
                this.#proxySuspended = true;
                this.#machine.to("suspended");
            }
            this.emit("tokenExpired", payload);
            this.refresh();
        }
        else if (frame.type === d.error)
            this.#onErrorFrame(socket, payload);
        else if (frame.type === d.idleWarning)
            this.emit("idleWarning", payload);
        else if (frame.type === d.reconnect) {
            this.emit("reconnect", payload);
            if (socket === this.#primary)
                this.#startHandover(payload.after_ms);
        }
    }
    /** The frame, when `text` is one wsguard writes (its envelope and a dialect name). */
    #controlFrame(text) {
        if (!text.startsWith("{"))
            return undefined;
        let value;
        try {
            value = JSON.parse(text);
        }
        catch {
            return undefined;
        }
        if (typeof value !== "object" || value === null)
            return undefined;
        const { type, id, timestamp, payload } = value;
        const d = this.#dialect;
        const names = [d.authenticated, d.authRequired, d.tokenExpired, d.error, d.reconnect, d.idleWarning].filter((n) => n !== "");
        if (typeof type !== "string" || !names.includes(type))
            return undefined;
        if (typeof id !== "string" || typeof timestamp !== "string")
            return undefined;
        if (typeof payload !== "object" || payload === null)
            return undefined;
        return { type, payload: payload };
    }
    /** `AUTHENTICATED`: in (again); flush the queue. */
    #onAuthenticated(socket, payload) {
        socket.authed = true;
        if (socket === this.#next)
            this.#finishHandover(socket);
        if (socket !== this.#primary)
            return;
        this.#attempt = 0;
        this.#authFailures = 0;
        this.#proxySuspended = false;
        this.#waitingForToken = false;
        this.#expiredNotified = false;
        this.#machine.to("authenticated");
        this.#scheduleRefresh(payload.exp);
        this.emit("authenticated", payload);
        this.#queue.flush(() => this.#canSend(), (data) => socket.ws.send(data));
    }
    /** An `error` frame: a refused REAUTH is retried when rate-limited, else reported. */
    #onErrorFrame(socket, payload) {
        this.emit("frameError", payload);
        if (socket !== this.#primary || this.#machine.state !== "reauthenticating")
            return;
        if (payload.code === "rate_limited" && socket.token !== undefined) {
            const token = socket.token;
            this.#later(this.#options.reauthMinIntervalMs ?? 1000, () => this.#reauth(token));
            return;
        }
        this.#machine.to(this.#proxySuspended ? "suspended" : "authenticated");
    }
    /** A new token: REAUTH on an authenticated socket, or reconnect when waiting for one. */
    #onToken(token, source) {
        if (this.#closed || source === "initial")
            return;
        const primary = this.#primary;
        if (primary && primary.ws.readyState === 1 && !this.#handover) {
            if (primary.authed)
                this.#reauth(token);
            else if (primary.token === undefined)
                this.#sendAuth(primary, token); // getToken had failed
        }
        else if (this.#waitingForToken && !primary && (source === "set" || token !== this.#refusedToken)) {
            this.#waitingForToken = false;
            this.#open();
        }
    }
    /** Sends a REAUTH with `token`, spaced by the proxy's minimum interval. */
    #reauth(token) {
        const primary = this.#primary;
        if (this.#closed || !primary || !primary.authed || primary.ws.readyState !== 1)
            return;
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
    #onAuthExpired(error) {
        if (this.#closed)
            return;
        this.#waitingForToken = true;
        this.#machine.to("suspended");
        if (this.#expiredNotified)
            return; // the app already shows its prompt
        this.#expiredNotified = true;
        this.emit("authExpired", error);
    }
    /** A socket closed: decide between closing, waiting for a token, and reconnecting. */
    #onClose(socket, code, reason) {
        const info = classifyClose(code, reason);
        if (socket === this.#next) {
            this.#next = undefined;
            this.emit("close", info);
            if (!this.#closed && this.#handover)
                this.#later(fullJitter(this.#attempt++, this.#base(), this.#max()), () => this.#open());
            return;
        }
        if (socket !== this.#primary)
            return; // a replaced socket
        this.#primary = undefined;
        this.#clearRefreshTimer();
        this.emit("close", info);
        if (this.#closed)
            return;
        if (this.#handover) {
            // The proxy closed the old socket before the new one was in: the new one carries on.
            this.#handover = this.#next !== undefined;
            if (!this.#handover)
                this.#reconnect();
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
    #afterAuthClose(socket) {
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
            }
            else if (this.#waitingForToken && !this.#primary && !this.#closed) {
                // A token other than the refused one was already there (no refresh ran).
                this.#waitingForToken = false;
                this.#open();
            }
        })
            .catch(() => { });
    }
    /** Waits (full-jitter backoff), then opens a new socket. */
    #reconnect() {
        this.#proxySuspended = false;
        this.#machine.to("reconnecting");
        this.#later(fullJitter(this.#attempt++, this.#base(), this.#max()), () => this.#open());
    }
    /** The drain hint: queue from now on, open a new socket after `afterMs`. */
    #startHandover(afterMs) {
        if (this.#handover)
            return;
        this.#handover = true;
        this.#machine.to("reconnecting");
        this.#later(Math.max(0, Number(afterMs) || 0), () => this.#open());
    }
    /** The new socket is in: close the old one with 1000, flush on the new one. */
    #finishHandover(socket) {
        const old = this.#primary;
        this.#primary = socket;
        this.#next = undefined;
        this.#handover = false;
        if (old && old.ws.readyState < 2)
            old.ws.close(1000, "");
    }
    /** Schedules the client's own refresh before `exp` (unix seconds). */
    #scheduleRefresh(exp) {
        this.#clearRefreshTimer();
        const fraction = this.#options.refreshAt ?? 0.75;
        if (fraction === false || !Number.isFinite(exp))
            return;
        const delay = Math.max(0, (exp * 1000 - Date.now()) * fraction);
        this.#refreshDueAt = Date.now() + delay;
        this.#refreshTimer = setTimeout(() => this.refresh(), delay);
    }
    /** Cancels the own-refresh timer. */
    #clearRefreshTimer() {
        if (this.#refreshTimer !== undefined)
            clearTimeout(this.#refreshTimer);
        this.#refreshTimer = undefined;
        this.#refreshDueAt = Infinity;
    }
    /** Runs `f` after `ms` unless the client closes first. */
    #later(ms, f) {
        const timer = setTimeout(() => {
            this.#timers.delete(timer);
            if (!this.#closed)
                f();
        }, ms);
        this.#timers.add(timer);
    }
    /** The reconnect backoff base. */
    #base() {
        return this.#options.reconnectBaseMs ?? 500;
    }
    /** The reconnect backoff ceiling. */
    #max() {
        return this.#options.reconnectMaxMs ?? 30000;
    }
}
