/** The bounded queue of messages waiting for an authenticated socket. */
import { SendError } from "./errors.js";
/** What `WebSocket.send()` takes. */
export type Data = string | ArrayBufferLike | Blob | ArrayBufferView;
/** Messages in order, at most `limit` of them. */
export declare class SendQueue {
    #private;
    /** A queue that refuses the message after `limit`. */
    constructor(limit: number);
    /** How many messages wait. */
    get length(): number;
    /** Queues a message; the promise settles when it is sent or refused. */
    push(data: Data): Promise<void>;
    /** Hands every message, in order, to `send` while `ready()` holds. */
    flush(ready: () => boolean, send: (data: Data) => void): void;
    /** Refuses every waiting message with `error`. */
    rejectAll(error: SendError): void;
}
