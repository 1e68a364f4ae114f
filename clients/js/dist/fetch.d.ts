/**
 * `authFetch`: `fetch` with the token manager's bearer token; a 401 whose
 * JSON body says `token_not_valid` refreshes once (shared with every other
 * trigger) and replays the request.
 */
import { AuthExpiredError } from "./errors.js";
import type { TokenManager } from "./tokens.js";
/** The `fetch` function's type. */
export type FetchLike = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
/** Whether a response is wsguard's 401 for a missing, invalid or expired token. */
export declare function isTokenNotValid(response: Response): Promise<boolean>;
/**
 * A fetch that sends `Authorization: Bearer <token>`. Rejects with
 * {@link AuthExpiredError} (after `onExpired`) when no valid token can be had.
 */
export declare function createAuthFetch(tokens: TokenManager, fetchImpl: FetchLike, onExpired?: (error: AuthExpiredError) => void): FetchLike;
