/** @wsguard/client: the client library of wsguard's protocol. */
export { WsGuardClient } from "./client.js";
export type { ClientEvents, ClientOptions, WebSocketConstructor, WebSocketLike } from "./client.js";
export { AuthExpiredError, PermanentRefreshError, SendError } from "./errors.js";
export type { SendErrorCode } from "./errors.js";
export { createAuthFetch, isTokenNotValid } from "./fetch.js";
export type { FetchLike } from "./fetch.js";
export * from "./protocol.js";
export type { Data } from "./queue.js";
export type { State } from "./state.js";
export { TokenManager } from "./tokens.js";
export type { TokenOptions, TokenSource } from "./tokens.js";
