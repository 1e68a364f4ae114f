/** The demo page's DOM: the indicator, the countdown, the chat, the frame log and the banner. */

import type { State } from "@wsguard/client";

/** The indicator's colours: green, yellow, red. */
export type Colour = "ok" | "pending" | "down";

/**
 * The colour of each state: red only when no socket is up. Keyed by name
 * (not `Record<State, …>`) so that a state the library adds later shows red
 * with its own name instead of breaking the page's build.
 */
const COLOURS: Readonly<Record<string, Colour>> = {
  connecting: "pending",
  authenticating: "pending",
  authenticated: "ok",
  reauthenticating: "pending",
  suspended: "pending",
  reconnecting: "down",
  idle: "down",
  closed: "down",
};

/** What each state is called on the page. */
const LABELS: Readonly<Record<string, string>> = {
  connecting: "connecting",
  authenticating: "authenticating",
  authenticated: "authenticated",
  reauthenticating: "re-authenticating (same socket)",
  suspended: "session expired: waiting for a token",
  reconnecting: "disconnected: reconnecting",
  idle: "disconnected for inactivity: the next message reconnects",
  closed: "disconnected",
};

/** The most lines the frame log keeps. */
const LOG_LINES = 200;

/** An element by id, of the expected kind. */
function byId<T extends HTMLElement>(doc: Document, id: string, kind: { new (): T }): T {
  const element = doc.getElementById(id);
  if (!(element instanceof kind)) throw new Error(`the page has no #${id}`);
  return element;
}

/** The page's elements and how they change. */
export class View {
  readonly dot: HTMLElement;
  readonly state: HTMLElement;
  readonly countdown: HTMLOutputElement;
  readonly switchButton: HTMLButtonElement;
  readonly banner: HTMLElement;
  readonly signin: HTMLButtonElement;
  readonly messages: HTMLOListElement;
  readonly log: HTMLOListElement;
  readonly composer: HTMLFormElement;
  readonly input: HTMLInputElement;
  readonly queued: HTMLElement;
  readonly whoami: HTMLButtonElement;
  readonly whoamiOut: HTMLOutputElement;
  /** Every colour the indicator has shown, in order (for the browser tests). */
  readonly colours: Colour[] = [];
  readonly #items = new Map<number, HTMLLIElement>();

  /** Finds the elements. */
  constructor(doc: Document) {
    this.dot = byId(doc, "dot", HTMLElement);
    this.state = byId(doc, "state", HTMLElement);
    this.countdown = byId(doc, "countdown", HTMLOutputElement);
    this.switchButton = byId(doc, "switch", HTMLButtonElement);
    this.banner = byId(doc, "banner", HTMLElement);
    this.signin = byId(doc, "signin", HTMLButtonElement);
    this.messages = byId(doc, "messages", HTMLOListElement);
    this.log = byId(doc, "log", HTMLOListElement);
    this.composer = byId(doc, "composer", HTMLFormElement);
    this.input = byId(doc, "text", HTMLInputElement);
    this.queued = byId(doc, "queued", HTMLElement);
    this.whoami = byId(doc, "whoami", HTMLButtonElement);
    this.whoamiOut = byId(doc, "whoami-out", HTMLOutputElement);
  }

  /** Shows a state on the indicator. */
  showState(state: State): void {
    const colour = COLOURS[state] ?? "down";
    if (this.colours[this.colours.length - 1] !== colour) this.colours.push(colour);
    this.dot.className = `dot ${colour}`;
    this.state.textContent = LABELS[state] ?? state;
  }

  /** Seconds left until `exp` (unix seconds), or "expired". */
  showCountdown(exp: number | undefined): void {
    if (exp === undefined) {
      this.countdown.value = "–";
      return;
    }
    const left = Math.ceil(exp - Date.now() / 1000);
    this.countdown.value = left > 0 ? `${left} s` : "expired";
  }

  /** The refresh switch's state. */
  showSwitch(refreshFails: boolean): void {
    this.switchButton.setAttribute("aria-pressed", String(refreshFails));
    this.switchButton.textContent = refreshFails
      ? "Refreshes fail until sign-in (click to make them work)"
      : "Make the next refresh fail";
  }

  /** Shows or hides the "session expired" banner. */
  showExpired(expired: boolean): void {
    const was = !this.banner.hidden;
    this.banner.hidden = !expired;
    if (expired && !was) this.signin.focus();
  }

  /** How many messages wait for the socket. */
  showQueued(count: number): void {
    this.queued.textContent = count > 0 ? `${count} message(s) queued until the session is back` : "";
  }

  /** A line in the frame log (newest last, scrolled into view). */
  logFrame(direction: "in" | "out" | "local", text: string): void {
    const item = this.log.ownerDocument.createElement("li");
    const arrow = direction === "in" ? "←" : direction === "out" ? "→" : "•";
    item.textContent = `${new Date().toISOString().slice(11, 23)} ${arrow} ${text}`;
    this.log.append(item);
    while (this.log.children.length > LOG_LINES) this.log.firstElementChild?.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** A message of ours, before it is sent. */
  addMessage(n: number, text: string): void {
    const doc = this.messages.ownerDocument;
    const item = doc.createElement("li");
    item.className = "queued";
    item.dataset["n"] = String(n);
    const body = doc.createElement("span");
    body.textContent = `#${n} ${text}`;
    const reply = doc.createElement("span");
    reply.className = "reply";
    reply.textContent = "queued";
    item.append(body, reply);
    this.messages.append(item);
    this.#items.set(n, item);
    while (this.messages.children.length > LOG_LINES) {
      const first = this.messages.firstElementChild as HTMLLIElement | null;
      if (!first) break;
      this.#items.delete(Number(first.dataset["n"]));
      first.remove();
    }
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  /** Message `n`'s status line ("sent", the reply, or why not). */
  markMessage(n: number, status: string, done: boolean): void {
    const item = this.#items.get(n);
    if (!item) return;
    if (done) item.className = "answered";
    else if (status === "sent") item.className = "sent";
    const reply = item.querySelector(".reply");
    if (reply) reply.textContent = status;
  }
}
