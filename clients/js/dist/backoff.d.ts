/** Exponential backoff with full jitter, and a sleep. */
/** A delay in `[0, min(max, base * 2^attempt))` ms, uniformly drawn ("full jitter"). */
export declare function fullJitter(attempt: number, baseMs: number, maxMs: number): number;
/** Resolves after `ms` milliseconds. */
export declare function sleep(ms: number): Promise<void>;
