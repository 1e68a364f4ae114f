/** A minimal typed event emitter (no dependencies: browsers and Node alike). */
/** Listeners by event name. */
export class Emitter {
    #listeners = new Map();
    /** Adds a listener; returns a function that removes it. */
    on(event, listener) {
        let set = this.#listeners.get(event);
        if (!set) {
            set = new Set();
            this.#listeners.set(event, set);
        }
        set.add(listener);
        return () => this.off(event, listener);
    }
    /** Removes a listener. */
    off(event, listener) {
        this.#listeners.get(event)?.delete(listener);
    }
    /** Calls every listener of `event`; a listener that throws does not stop the others. */
    emit(event, ...args) {
        for (const listener of [...(this.#listeners.get(event) ?? [])]) {
            try {
                listener(...args);
            }
            catch (error) {
                queueMicrotask(() => {
                    throw error;
                });
            }
        }
    }
}
