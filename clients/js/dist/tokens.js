/**
 * The token manager shared by the socket and `authFetch`: the current
 * token, one refresh at a time (single flight), retries with backoff, and
 * coordination between tabs (Web Locks + BroadcastChannel, when present).
 */
import { fullJitter, sleep } from "./backoff.js";
import { AuthExpiredError, PermanentRefreshError } from "./errors.js";
/** Holds the current token and refreshes it. */
export class TokenManager {
    #token;
    #version = 0;
    #inflight;
    #initial;
    #options;
    #locks;
    #channel;
    #onToken = new Set();
    #onExpired = new Set();
    /** A manager over the app's token functions. */
    constructor(options) {
        this.#options = options;
        const g = globalThis;
        const coordinate = options.coordinate ??
            (g.document !== undefined && g.navigator?.locks !== undefined && typeof BroadcastChannel === "function");
        const key = options.coordinationKey ?? "wsguard-token";
        this.#locks = coordinate ? g.navigator?.locks : undefined;
        if (coordinate && typeof BroadcastChannel === "function") {
            this.#channel = new BroadcastChannel(key);
            this.#channel.onmessage = (event) => {
                if (event.data?.type === "token" && typeof event.data.token === "string") {
                    this.#accept(event.data.token, "peer");
                }
            };
        }
    }
    /** The current token, without asking for one. */
    get token() {
        return this.#token;
    }
    /** Hears every new token (refreshed, set by the app, or from another tab). */
    onToken(listener) {
        this.#onToken.add(listener);
    }
    /** Hears every refresh that gave up. */
    onExpired(listener) {
        this.#onExpired.add(listener);
    }
    /** The current token, asking `getToken` for the first one. */
    async current() {
        if (this.#token !== undefined)
            return this.#token;
        this.#initial ??= Promise.resolve()
            .then(() => this.#options.getToken())
            .then((token) => {
            this.#initial = undefined;
            if (this.#token === undefined)
                this.#accept(token, "initial");
            return this.#token;
        })
            .catch((error) => {
            this.#initial = undefined;
            throw this.#expired(error);
        });
        return this.#initial;
    }
    /**
     * A new token from `getToken` (not `refreshToken`), for a connection that
     * needs its own (`tokenPerConnection`); it becomes the current token.
     */
    async renew() {
        try {
            const token = await this.#options.getToken();
            if (typeof token !== "string" || token === "")
                throw new PermanentRefreshError("getToken gave no token");
            this.#accept(token, "initial");
            return token;
        }
        catch (error) {
            throw this.#expired(error);
        }
    }
    /** Sets the token (after the user signed in again); everyone waiting resumes with it. */
    set(token) {
        this.#accept(token, "set");
        this.#channel?.postMessage({ type: "token", token });
    }
    /**
     * A token newer than `used`: the current one if it has changed since,
     * else a refresh. Concurrent callers share one refresh.
     */
    async fresherThan(used) {
        if (this.#token !== undefined && this.#token !== used)
            return this.#token;
        return this.refresh();
    }
    /** Refreshes the token once for every caller until it settles (single flight). */
    refresh() {
        this.#inflight ??= this.#coordinated().finally(() => {
            this.#inflight = undefined;
        });
        return this.#inflight;
    }
    /** Stops listening to other tabs. */
    close() {
        this.#channel?.close();
    }
    /** One refresh, under the cross-tab lock when coordinating. */
    async #coordinated() {
        const started = this.#version;
        const locks = this.#locks;
        const seen = locks ? this.#refreshStamp() : null;
        let refreshed = false;
        const run = async () => {
            // Another tab refreshed while this one waited for the lock: use its token.
            if (this.#version !== started && this.#token !== undefined)
                return this.#token;
            if (locks && this.#refreshStamp() !== seen) {
                // Its token is on the channel, which is not ordered with the lock.
                const peer = await this.#tokenSince(started, this.#options.coordinationWaitMs ?? 2000);
                if (peer !== undefined)
                    return peer;
            }
            const token = await this.#withRetries(started);
            refreshed = true;
            this.#accept(token, "refresh");
            this.#channel?.postMessage({ type: "token", token });
            if (locks)
                this.#bumpRefreshStamp();
            return token;
        };
        if (!locks)
            return run();
        const settle = this.#options.coordinationSettleMs ?? 100;
        // The token is ours as soon as it is in; the lock is kept a little longer.
        return new Promise((resolve, reject) => {
            locks
                .request(this.#options.coordinationKey ?? "wsguard-token", async () => {
                try {
                    resolve(await run());
                }
                catch (error) {
                    reject(error);
                    return;
                }
                if (refreshed)
                    await sleep(settle);
            })
                .catch(reject);
        });
    }
    /** The cross-tab refresh counter (`localStorage`; null where there is none). */
    #refreshStamp() {
        try {
            const storage = globalThis.localStorage;
            return storage?.getItem(`${this.#options.coordinationKey ?? "wsguard-token"}:refreshed`) ?? null;
        }
        catch {
            return null; // storage blocked (privacy settings): the settle delay alone
        }
    }
    /** Tells the other tabs (before the lock is let go) that a refresh happened. */
    #bumpRefreshStamp() {
        try {
            const storage = globalThis.localStorage;
            storage?.setItem(`${this.#options.coordinationKey ?? "wsguard-token"}:refreshed`, `${Date.now()}-${Math.random()}`);
        }
        catch {
            // storage blocked: the settle delay alone
        }
    }
    /** The token once one newer than version `started` arrives, or undefined after `ms`. */
    #tokenSince(started, ms) {
        if (this.#version !== started && this.#token !== undefined)
            return Promise.resolve(this.#token);
        return new Promise((resolve) => {
            const listener = (token) => {
                clearTimeout(timer);
                this.#onToken.delete(listener);
                resolve(token);
            };
            const timer = setTimeout(() => {
                this.#onToken.delete(listener);
                resolve(undefined);
            }, ms);
            this.#onToken.add(listener);
        });
    }
    /** Calls `refreshToken`, retrying transient failures with backoff. */
    async #withRetries(started) {
        const retries = this.#options.refreshRetries ?? 3;
        const transient = this.#options.isTransient ?? ((error) => !(error instanceof PermanentRefreshError));
        for (let attempt = 0;; attempt++) {
            try {
                const token = await this.#options.refreshToken();
                if (typeof token !== "string" || token === "")
                    throw new PermanentRefreshError("refreshToken gave no token");
                return token;
            }
            catch (error) {
                // A token arrived meanwhile (the app's setToken, another tab): that will do.
                if (this.#version !== started && this.#token !== undefined)
                    return this.#token;
                if (attempt >= retries || !transient(error))
                    throw this.#expired(error);
                await sleep(fullJitter(attempt, this.#options.refreshBackoffMs ?? 250, this.#options.refreshBackoffMaxMs ?? 5000));
            }
        }
    }
    /** Records a new token and tells the listeners. */
    #accept(token, source) {
        this.#token = token;
        this.#version++;
        for (const listener of [...this.#onToken])
            listener(token, source);
    }
    /** The error for a refresh that gave up, after telling the listeners. */
    #expired(cause) {
        const error = cause instanceof AuthExpiredError ? cause : new AuthExpiredError("no valid token could be obtained", cause);
        for (const listener of [...this.#onExpired])
            listener(error);
        return error;
    }
}
