/**
 * The client's states and the transitions allowed between them: the one
 * state machine of the library.
 */

/** Where a {@link WsGuardClient} is. */
export type State =
  /** Opening a WebSocket. */
  | "connecting"
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

/** The transitions allowed from each state. */
const NEXT: Readonly<Record<State, readonly State[]>> = {
  connecting: ["authenticating", "reconnecting", "suspended", "closed"],
  authenticating: ["authenticated", "reconnecting", "suspended", "idle", "closed"],
  authenticated: ["reauthenticating", "suspended", "reconnecting", "idle", "closed"],
  reauthenticating: ["authenticated", "suspended", "reconnecting", "idle", "closed"],
  suspended: ["authenticating", "reauthenticating", "authenticated", "reconnecting", "connecting", "idle", "closed"],
  reconnecting: ["connecting", "suspended", "closed"],
  idle: ["connecting", "closed"],
  closed: [],
};

/** A state holder that refuses transitions the table does not allow. */
export class StateMachine {
  #state: State = "connecting";
  readonly #onChange: (next: State, previous: State) => void;

  /** Starts in `connecting`; `onChange` hears every transition. */
  constructor(onChange: (next: State, previous: State) => void) {
    this.#onChange = onChange;
  }

  /** The current state. */
  get state(): State {
    return this.#state;
  }

  /** Moves to `next` if allowed (returns whether it moved; same state: no-op). */
  to(next: State): boolean {
    const previous = this.#state;
    if (previous === next || !NEXT[previous].includes(next)) return false;
    this.#state = next;
    this.#onChange(next, previous);
    return true;
  }
}
