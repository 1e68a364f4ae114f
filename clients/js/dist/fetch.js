/**
 * `authFetch`: `fetch` with the token manager's bearer token; a 401 whose
 * JSON body says `token_not_valid` refreshes once (shared with every other
 * trigger) and replays the request.
 */
import { AuthExpiredError } from "./errors.js";
/** Whether a response is wsguard's 401 for a missing, invalid or expired token. */
export async function isTokenNotValid(response) {
    if (response.status !== 401)
        return false;
    try {
        const body = await response.clone().json();
        return typeof body === "object" && body !== null && body.error === "token_not_valid";
    }
    catch {
        return false;
    }
}
/**
 * A fetch that sends `Authorization: Bearer <token>`. Rejects with
 * {@link AuthExpiredError} (after `onExpired`) when no valid token can be had.
 */
export function createAuthFetch(tokens, fetchImpl, onExpired = () => { }) {
    return async (input, init) => {
        const base = new Request(input, init);
        const attempt = (token) => {
            const headers = new Headers(base.headers);
            headers.set("Authorization", `Bearer ${token}`);
            return fetchImpl(new Request(base.clone(), { headers }));
        };
        const expired = (error) => {
            const e = error instanceof AuthExpiredError ? error : new AuthExpiredError("no valid token could be obtained", error);
            onExpired(e);
            throw e;
        };
        const used = await tokens.current().catch(expired);
        const first = await attempt(used);
        if (!(await isTokenNotValid(first)))
            return first;
        const fresh = await tokens.fresherThan(used).catch(expired);
        return attempt(fresh);
    };
}
