/** Exponential backoff with full jitter, and a sleep. */
/** A delay in `[0, min(max, base * 2^attempt))` ms, uniformly drawn ("full jitter"). */
export function fullJitter(attempt, baseMs, maxMs) {
    const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
    return Math.floor(Math.random() * ceiling);
}
/** Resolves after `ms` milliseconds. */
export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}
