/** @wsguard/client: the client library of wsguard's protocol. */
export { WsGuardClient } from "./client.js";
export { AuthExpiredError, PermanentRefreshError, SendError } from "./errors.js";
export { createAuthFetch, isTokenNotValid } from "./fetch.js";
export * from "./protocol.js";
export { TokenManager } from "./tokens.js";
