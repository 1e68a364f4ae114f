/**
 * The demo page: a chat over wsguard that outlives its tokens. The client
 * library does the protocol; this file wires it to the page and to the
 * demo's token endpoint (`/demo/token`, `/demo/signin`, `/demo/switch`).
 */

import { PermanentRefreshError, WsGuardClient, type State } from "@wsguard/client";
import { View } from "./view.js";

/** The user the demo signs in. */
const SUB = "alice";

/** A token from the demo's endpoint; a 4xx cannot be retried (the switch), a 5xx or network error can. */
async function fetchToken(path: string, method: "GET" | "POST"): Promise<string> {
  const response = await fetch(`${path}?sub=${SUB}`, { method, cache: "no-store" });
  const body = (await response.json().catch(() => ({}))) as { token?: unknown; error?: unknown };
  if (response.ok && typeof body.token === "string") return body.token;
  const message = `${path}: ${response.status} ${String(body.error ?? "")}`;
  if (response.status >= 400 && response.status < 500) throw new PermanentRefreshError(message);
  throw new Error(message);
}

/** The refresh switch's state on the server. */
async function readSwitch(): Promise<boolean> {
  const response = await fetch("/demo/switch", { cache: "no-store" });
  const body = (await response.json()) as { refresh_fails?: unknown };
  return body.refresh_fails === true;
}

/** What the page counts, for the curious and for the browser tests. */
interface Stats {
  /** Every state the client went through, in order. */
  states: State[];
  /** `refreshToken` calls of this tab. */
  refreshes: number;
  /** The message numbers whose reply came back, in order of arrival. */
  replies: number[];
  /** The message numbers handed to the socket, in order. */
  sent: number[];
  /** Control frames received, by type. */
  frames: Record<string, number>;
}

const view = new View(document);
const stats: Stats = { states: [], refreshes: 0, replies: [], sent: [], frames: {} };
let exp: number | undefined;
let counter = 0;

const scheme = location.protocol === "https:" ? "wss" : "ws";
const client = new WsGuardClient(`${scheme}://${location.host}/chat`, {
  getToken: () => fetchToken("/demo/token", "GET"),
  refreshToken: () => {
    stats.refreshes++;
    view.logFrame("local", "refreshing the token (GET /demo/token)");
    return fetchToken("/demo/token", "GET");
  },
  onStateChange: (state) => {
    stats.states.push(state);
    view.showState(state);
    if (state === "reauthenticating") view.logFrame("out", "REAUTH");
    if (state === "authenticating") view.logFrame("out", "auth");
  },
});
view.showState(client.state);

/** Logs a control frame and counts it. */
function frame(type: string, payload: unknown): void {
  stats.frames[type] = (stats.frames[type] ?? 0) + 1;
  view.logFrame("in", `${type} ${JSON.stringify(payload)}`);
}

client.on("authenticated", (payload) => {
  frame("AUTHENTICATED", payload);
  exp = payload.exp;
  view.showCountdown(exp);
  view.showExpired(false);
  view.showQueued(client.queued);
});
client.on("authRequired", (payload) => frame("auth_required", payload));
client.on("tokenExpired", (payload) => {
  frame("TOKEN_EXPIRED", payload);
  view.showCountdown(exp);
});
client.on("frameError", (payload) => frame("error", payload));
client.on("reconnect", (payload) => frame("reconnect", payload));
client.on("close", (info) => view.logFrame("local", `socket closed ${info.code} ${JSON.stringify(info.reason)}`));
client.on("authExpired", (error) => {
  view.logFrame("local", `session expired: ${error.message}`);
  view.showExpired(true);
});
client.on("message", (data) => {
  if (typeof data !== "string") {
    view.logFrame("in", "binary message");
    return;
  }
  let message: { type?: unknown; n?: unknown; text?: unknown; payload?: { sub?: unknown } };
  try {
    message = JSON.parse(data) as typeof message;
  } catch {
    view.logFrame("in", `text ${JSON.stringify(data.slice(0, 80))}`);
    return;
  }
  if (message.type === "welcome") {
    view.logFrame("in", `welcome from the upstream: sub ${JSON.stringify(message.payload?.sub)}`);
  } else if (message.type === "chat" && typeof message.n === "number") {
    stats.replies.push(message.n);
    view.markMessage(message.n, `↩ echoed by the upstream: ${String(message.text)}`, true);
  }
});

/** Sends one chat message (queued while the session is not there). */
function say(text: string): number {
  const n = ++counter;
  view.addMessage(n, text);
  client
    .send(JSON.stringify({ type: "chat", n, text }))
    .then(() => {
      stats.sent.push(n);
      view.markMessage(n, "sent", false);
      view.showQueued(client.queued);
    })
    .catch((error: Error) => view.markMessage(n, `not sent: ${error.message}`, false));
  view.showQueued(client.queued);
  return n;
}

view.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = view.input.value.trim();
  if (text === "") return;
  say(text);
  view.input.value = "";
  view.input.focus();
});

view.signin.addEventListener("click", () => {
  view.signin.disabled = true;
  fetchToken("/demo/signin", "POST")
    .then((token) => {
      view.logFrame("local", "signed in again (POST /demo/signin)");
      client.setToken(token);
      return readSwitch().then((on) => view.showSwitch(on));
    })
    .catch((error: Error) => view.logFrame("local", `sign-in failed: ${error.message}`))
    .finally(() => {
      view.signin.disabled = false;
    });
});

view.switchButton.addEventListener("click", () => {
  const on = view.switchButton.getAttribute("aria-pressed") !== "true";
  fetch(`/demo/switch?refresh_fails=${on}`, { method: "POST" })
    .then((response) => response.json() as Promise<{ refresh_fails?: unknown }>)
    .then((body) => {
      view.showSwitch(body.refresh_fails === true);
      view.logFrame("local", body.refresh_fails === true ? "refreshes will fail" : "refreshes work again");
    })
    .catch((error: Error) => view.logFrame("local", `switch failed: ${error.message}`));
});

view.whoami.addEventListener("click", () => {
  client
    .authFetch("/api/whoami")
    .then(async (response) => {
      view.whoamiOut.value = `${response.status} ${await response.text()}`;
    })
    .catch((error: Error) => {
      view.whoamiOut.value = error.message;
    });
});

readSwitch()
  .then((on) => view.showSwitch(on))
  .catch(() => {});
setInterval(() => view.showCountdown(exp), 250);

/** For the curious (and the browser tests): the client, the counters, `say`. */
(globalThis as { demo?: unknown }).demo = { client, stats, view, say };
