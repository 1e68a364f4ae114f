/**
 * The client's states and the transitions allowed between them: the one
 * state machine of the library.
 */
/** The transitions allowed from each state. */
const NEXT = {
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
    #state = "connecting";
    #onChange;
    /** Starts in `connecting`; `onChange` hears every transition. */
    constructor(onChange) {
        this.#onChange = onChange;
    }
    /** The current state. */
    get state() {
        return this.#state;
    }
    /** Moves to `next` if allowed (returns whether it moved; same state: no-op). */
    to(next) {
        const previous = this.#state;
        if (previous === next || !NEXT[previous].includes(next))
            return false;
        this.#state = next;
        this.#onChange(next, previous);
        return true;
    }
}
