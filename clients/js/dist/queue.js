/** The bounded queue of messages waiting for an authenticated socket. */
import { SendError } from "./errors.js";
/** Messages in order, at most `limit` of them. */
export class SendQueue {
    #items = [];
    #limit;
    /** A queue that refuses the message after `limit`. */
    constructor(limit) {
        this.#limit = limit;
    }
    /** How many messages wait. */
    get length() {
        return this.#items.length;
    }
    /** Queues a message; the promise settles when it is sent or refused. */
    push(data) {
        if (this.#items.length >= this.#limit) {
            return Promise.reject(new SendError("queue_full", `the send queue holds ${this.#limit} messages`));
        }
        return new Promise((resolve, reject) => this.#items.push({ data, resolve, reject }));
    }
    /** Hands every message, in order, to `send` while `ready()` holds. */
    flush(ready, send) {
        while (this.#items.length > 0 && ready()) {
            const item = this.#items.shift();
            send(item.data);
            item.resolve();
        }
    }
    /** Refuses every waiting message with `error`. */
    rejectAll(error) {
        for (const item of this.#items.splice(0))
            item.reject(error);
    }
}
