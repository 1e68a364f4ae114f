/**
 * The token manager shared by the socket and `authFetch`: the current
 * token, one refresh at a time (single flight), retries with backoff, and
 * coordination between tabs (Web Locks + BroadcastChannel, when present).
 */
import { AuthExpiredError } from "./errors.js";
/** Where a new token came from. */
export type TokenSource = "initial" | "refresh" | "set" | "peer";
/** How the token manager gets and refreshes tokens. */
export interface TokenOptions {
    /** The first token (called once, when the first one is needed). */
    getToken: () => string | Promise<string>;
    /** A fresh token (called for every refresh, one at a time). */
    refreshToken: () => string | Promise<string>;
    /** Retries of a failed refresh before giving up (default 3). */
    refreshRetries?: number;
    /** Backoff base between refresh retries, ms (default 250; full jitter, doubling). */
    refreshBackoffMs?: number;
    /** Backoff ceiling between refresh retries, ms (default 5000). */
    refreshBackoffMaxMs?: number;
    /** Whether a refresh error is worth retrying (default: all but {@link PermanentRefreshError}). */
    isTransient?: (error: unknown) => boolean;
    /**
     * Coordinate refreshes between tabs of one origin with Web Locks and share
     * the new token over a BroadcastChannel (default: true where `document`,
     * `navigator.locks` and `BroadcastChannel` exist, i.e. in browsers).
     */
    coordinate?: boolean;
    /** Name of the lock and the channel (default `"wsguard-token"`). */
    coordinationKey?: string;
    /**
     * How long the tab that refreshed keeps the lock after posting the new
     * token, ms (default 100): the channel and the lock are separate, so
     * without it another tab waiting for the lock may get it before the token
     * and refresh a second time (seen in Chromium about one time in three).
     */
    coordinationSettleMs?: number;
    /**
     * How long a tab that got the lock after another tab refreshed waits for
     * that tab's token on the channel before refreshing itself, ms (default
     * 2000). Which tab refreshed is told by a counter in `localStorage` that
     * the refreshing tab bumps before it lets the lock go (the token itself
     * is never stored there).
     */
    coordinationWaitMs?: number;
}
/** Holds the current token and refreshes it. */
export declare class TokenManager {
    #private;
    /** A manager over the app's token functions. */
    constructor(options: TokenOptions);
    /** The current token, without asking for one. */
    get token(): string | undefined;
    /** Hears every new token (refreshed, set by the app, or from another tab). */
    onToken(listener: (token: string, source: TokenSource) => void): void;
    /** Hears every refresh that gave up. */
    onExpired(listener: (error: AuthExpiredError) => void): void;
    /** The current token, asking `getToken` for the first one. */
    current(): Promise<string>;
    /**
     * A new token from `getToken` (not `refreshToken`), for a connection that
     * needs its own (`tokenPerConnection`); it becomes the current token.
     */
    renew(): Promise<string>;
    /** Sets the token (after the user signed in again); everyone waiting resumes with it. */
    set(token: string): void;
    /**
     * A token newer than `used`: the current one if it has changed since,
     * else a refresh. Concurrent callers share one refresh.
     */
    fresherThan(used: string | undefined): Promise<string>;
    /** Refreshes the token once for every caller until it settles (single flight). */
    refresh(): Promise<string>;
    /** Stops listening to other tabs. */
    close(): void;
}
