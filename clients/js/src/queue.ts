/** The bounded queue of messages waiting for an authenticated socket. */

import { SendError } from "./errors.js";

/** What `WebSocket.send()` takes. */
export type Data = string | ArrayBufferLike | Blob | ArrayBufferView;

/** A message and its `send()` promise. */
interface Pending {
  /** The message. */
  data: Data;
  /** Resolves the `send()` promise. */
  resolve: () => void;
  /** Rejects the `send()` promise. */
  reject: (error: SendError) => void;
}

/** Messages in order, at most `limit` of them. */
export class SendQueue {
  readonly #items: Pending[] = [];
  readonly #limit: number;

  /** A queue that refuses the message after `limit`. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** How many messages wait. */
  get length(): number {
    return this.#items.length;
  }

  /** Queues a message; the promise settles when it is sent or refused. */
  push(data: Data): Promise<void> {
    if (this.#items.length >= this.#limit) {
      return Promise.reject(
        new SendError("queue_full", `the send queue holds ${this.#limit} messages`),
      );
    }
    return new Promise((resolve, reject) => this.#items.push({ data, resolve, reject }));
  }

  /** Hands every message, in order, to `send` while `ready()` holds. */
  flush(ready: () => boolean, send: (data: Data) => void): void {
    while (this.#items.length > 0 && ready()) {
      const item = this.#items.shift() as Pending;
      send(item.data);
      item.resolve();
    }
  }

  /** Refuses every waiting message with `error`. */
  rejectAll(error: SendError): void {
    for (const item of this.#items.splice(0)) item.reject(error);
  }
}
