/** A minimal typed event emitter (no dependencies: browsers and Node alike). */
/** Listeners by event name. */
export declare class Emitter<Events extends {
    [K in keyof Events]: (...args: never[]) => void;
}> {
    #private;
    /** Adds a listener; returns a function that removes it. */
    on<K extends keyof Events>(event: K, listener: Events[K]): () => void;
    /** Removes a listener. */
    off<K extends keyof Events>(event: K, listener: Events[K]): void;
    /** Calls every listener of `event`; a listener that throws does not stop the others. */
    protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void;
}
