/** Typed errors of the client library. */

/** Why a `send()` was refused. */
export type SendErrorCode = "queue_full" | "closed";

/** A message could not be sent. */
export class SendError extends Error {
  /** `queue_full`: the queue holds `queueLimit` messages; `closed`: the client is closed. */
  readonly code: SendErrorCode;

  /** An error with its code. */
  constructor(code: SendErrorCode, message: string) {
    super(message);
    this.name = "SendError";
    this.code = code;
  }
}

/** No valid token could be obtained: the app should ask the user to sign in again. */
export class AuthExpiredError extends Error {
  /** What the last refresh attempt threw, if anything. */
  override readonly cause: unknown;

  /** An error with what caused it. */
  constructor(message: string, cause?: unknown) {
    super(message);
    this.name = "AuthExpiredError";
    this.cause = cause;
  }
}

/** Thrown by a `refreshToken` that knows retrying cannot help (say, the refresh token was revoked). */
export class PermanentRefreshError extends Error {
  /** An error with a message. */
  constructor(message: string) {
    super(message);
    this.name = "PermanentRefreshError";
  }
}
