/**
 * The token manager shared by the socket and `authFetch`: the current
 * token, one refresh at a time (single flight), retries with backoff, and
 * coordination between tabs (Web Locks + BroadcastChannel, when present).
 */

import { fullJitter, sleep } from "./backoff.js";
import { AuthExpiredError, PermanentRefreshError } from "./errors.js";

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

/** A message on the token channel. */
interface TokenMessage {
  /** Always `"token"`. */
  type: "token";
  /** The new token. */
  token: string;
}

/** The Web Locks API, as far as it is used here. */
interface Locks {
  /** Runs `callback` holding the lock `name`. */
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

/** Holds the current token and refreshes it. */
export class TokenManager {
  #token: string | undefined;
  #version = 0;
  #inflight: Promise<string> | undefined;
  #initial: Promise<string> | undefined;
  readonly #options: TokenOptions;
  readonly #locks: Locks | undefined;
  readonly #channel: BroadcastChannel | undefined;
  readonly #onToken = new Set<(token: string, source: TokenSource) => void>();
  readonly #onExpired = new Set<(error: AuthExpiredError) => void>();

  /** A manager over the app's token functions. */
  constructor(options: TokenOptions) {
    this.#options = options;
    const g = globalThis as { navigator?: { locks?: Locks }; document?: unknown };
    const coordinate =
      options.coordinate ??
      (g.document !== undefined && g.navigator?.locks !== undefined && typeof BroadcastChannel === "function");
    const key = options.coordinationKey ?? "wsguard-token";
    this.#locks = coordinate ? g.navigator?.locks : undefined;
    if (coordinate && typeof BroadcastChannel === "function") {
      this.#channel = new BroadcastChannel(key);
      this.#channel.onmessage = (event: MessageEvent<TokenMessage>) => {
        if (event.data?.type === "token" && typeof event.data.token === "string") {
          this.#accept(event.data.token, "peer");
        }
      };
    }
  }

  /** The current token, without asking for one. */
  get token(): string | undefined {
    return this.#token;
  }

  /** Hears every new token (refreshed, set by the app, or from another tab). */
  onToken(listener: (token: string, source: TokenSource) => void): void {
    this.#onToken.add(listener);
  }

  /** Hears every refresh that gave up. */
  onExpired(listener: (error: AuthExpiredError) => void): void {
    this.#onExpired.add(listener);
  }

  /** The current token, asking `getToken` for the first one. */
  async current(): Promise<string> {
    if (this.#token !== undefined) return this.#token;
    this.#initial ??= Promise.resolve()
      .then(() => this.#options.getToken())
      .then((token) => {
        this.#initial = undefined;
        if (this.#token === undefined) this.#accept(token, "initial");
        return this.#token as string;
      })
      .catch((error: unknown) => {
        this.#initial = undefined;
        throw this.#expired(error);
      });
    return this.#initial;
  }

  /**
   * A new token from `getToken` (not `refreshToken`), for a connection that
   * needs its own (`tokenPerConnection`); it becomes the current token.
   */
  async renew(): Promise<string> {
    try {
      const token = await this.#options.getToken();
      if (typeof token !== "string" || token === "") throw new PermanentRefreshError("getToken gave no token");
      this.#accept(token, "initial");
      return token;
    } catch (error) {
      throw this.#expired(error);
    }
  }

  /** Sets the token (after the user signed in again); everyone waiting resumes with it. */
  set(token: string): void {
    this.#accept(token, "set");
    this.#channel?.postMessage({ type: "token", token } satisfies TokenMessage);
  }

  /**
   * A token newer than `used`: the current one if it has changed since,
   * else a refresh. Concurrent callers share one refresh.
   */
  async fresherThan(used: string | undefined): Promise<string> {
    if (this.#token !== undefined && this.#token !== used) return this.#token;
    return this.refresh();
  }

  /** Refreshes the token once for every caller until it settles (single flight). */
  refresh(): Promise<string> {
    this.#inflight ??= this.#coordinated().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /** Stops listening to other tabs. */
  close(): void {
    this.#channel?.close();
  }

  /** One refresh, under the cross-tab lock when coordinating. */
  async #coordinated(): Promise<string> {
    const started = this.#version;
    const locks = this.#locks;
    const seen = locks ? this.#refreshStamp() : null;
    let refreshed = false;
    const run = async (): Promise<string> => {
      // Another tab refreshed while this one waited for the lock: use its token.
      if (this.#version !== started && this.#token !== undefined) return this.#token;
      if (locks && this.#refreshStamp() !== seen) {
        // Its token is on the channel, which is not ordered with the lock.
        const peer = await this.#tokenSince(started, this.#options.coordinationWaitMs ?? 2000);
        if (peer !== undefined) return peer;
      }
      const token = await this.#withRetries(started);
      refreshed = true;
      this.#accept(token, "refresh");
      this.#channel?.postMessage({ type: "token", token } satisfies TokenMessage);
      if (locks) this.#bumpRefreshStamp();
      return token;
    };
    if (!locks) return run();
    const settle = this.#options.coordinationSettleMs ?? 100;
    // The token is ours as soon as it is in; the lock is kept a little longer.
    return new Promise<string>((resolve, reject) => {
      locks
        .request(this.#options.coordinationKey ?? "wsguard-token", async () => {
          try {
            resolve(await run());
          } catch (error) {
            reject(error);
            return;
          }
          if (refreshed) await sleep(settle);
        })
        .catch(reject);
    });
  }

  /** The cross-tab refresh counter (`localStorage`; null where there is none). */
  #refreshStamp(): string | null {
    try {
      const storage = (globalThis as { localStorage?: Storage }).localStorage;
      return storage?.getItem(`${this.#options.coordinationKey ?? "wsguard-token"}:refreshed`) ?? null;
    } catch {
      return null; // storage blocked (privacy settings): the settle delay alone
    }
  }

  /** Tells the other tabs (before the lock is let go) that a refresh happened. */
  #bumpRefreshStamp(): void {
    try {
      const storage = (globalThis as { localStorage?: Storage }).localStorage;
      storage?.setItem(`${this.#options.coordinationKey ?? "wsguard-token"}:refreshed`, `${Date.now()}-${Math.random()}`);
    } catch {
      // storage blocked: the settle delay alone
    }
  }

  /** The token once one newer than version `started` arrives, or undefined after `ms`. */
  #tokenSince(started: number, ms: number): Promise<string | undefined> {
    if (this.#version !== started && this.#token !== undefined) return Promise.resolve(this.#token);
    return new Promise((resolve) => {
      const listener = (token: string): void => {
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
  async #withRetries(started: number): Promise<string> {
    const retries = this.#options.refreshRetries ?? 3;
    const transient =
      this.#options.isTransient ?? ((error: unknown) => !(error instanceof PermanentRefreshError));
    for (let attempt = 0; ; attempt++) {
      try {
        const token = await this.#options.refreshToken();
        if (typeof token !== "string" || token === "") throw new PermanentRefreshError("refreshToken gave no token");
        return token;
      } catch (error) {
        // A token arrived meanwhile (the app's setToken, another tab): that will do.
        if (this.#version !== started && this.#token !== undefined) return this.#token;
        if (attempt >= retries || !transient(error)) throw this.#expired(error);
        await sleep(
          fullJitter(attempt, this.#options.refreshBackoffMs ?? 250, this.#options.refreshBackoffMaxMs ?? 5000),
        );
      }
    }
  }

  /** Records a new token and tells the listeners. */
  #accept(token: string, source: TokenSource): void {
    this.#token = token;
    this.#version++;
    for (const listener of [...this.#onToken]) listener(token, source);
  }

  /** The error for a refresh that gave up, after telling the listeners. */
  #expired(cause: unknown): AuthExpiredError {
    const error = cause instanceof AuthExpiredError ? cause : new AuthExpiredError("no valid token could be obtained", cause);
    for (const listener of [...this.#onExpired]) listener(error);
    return error;
  }
}
