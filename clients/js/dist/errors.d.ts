/** Typed errors of the client library. */
/** Why a `send()` was refused. */
export type SendErrorCode = "queue_full" | "closed";
/** A message could not be sent. */
export declare class SendError extends Error {
    /** `queue_full`: the queue holds `queueLimit` messages; `closed`: the client is closed. */
    readonly code: SendErrorCode;
    /** An error with its code. */
    constructor(code: SendErrorCode, message: string);
}
/** No valid token could be obtained: the app should ask the user to sign in again. */
export declare class AuthExpiredError extends Error {
    /** What the last refresh attempt threw, if anything. */
    readonly cause: unknown;
    /** An error with what caused it. */
    constructor(message: string, cause?: unknown);
}
/** Thrown by a `refreshToken` that knows retrying cannot help (say, the refresh token was revoked). */
export declare class PermanentRefreshError extends Error {
    /** An error with a message. */
    constructor(message: string);
}
