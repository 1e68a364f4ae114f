/**
 * The client's states and the transitions allowed between them: the one
 * state machine of the library.
 */
/** Where a {@link WsGuardClient} is. */
export type State = 
/** Opening a WebSocket. */
"connecting"
/** Open; the auth frame is sent and `AUTHENTICATED` awaited. */
 | "authenticating"
/** Authenticated: messages go out at once. */
 | "authenticated"
/** A REAUTH with a fresh token is under way, on the same socket. */
 | "reauthenticating"
/** No valid token (expired, refresh failed): waiting for one; messages queue. */
 | "suspended"
/** Waiting to open a new socket (backoff, or the proxy's `reconnect` hint). */
 | "reconnecting"
/** Closed for inactivity (wsguard's `idle timeout`): no socket until the next `send()`. */
 | "idle"
/** Closed for good by `close()` or a close that must not be retried. */
 | "closed";
/** A state holder that refuses transitions the table does not allow. */
export declare class StateMachine {
    #private;
    /** Starts in `connecting`; `onChange` hears every transition. */
    constructor(onChange: (next: State, previous: State) => void);
    /** The current state. */
    get state(): State;
    /** Moves to `next` if allowed (returns whether it moved; same state: no-op). */
    to(next: State): boolean;
}
