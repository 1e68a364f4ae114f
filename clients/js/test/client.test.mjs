// WsGuardClient against a real wsguard process (the release binary) and a
// real upstream, through the `ws` package (Node 20 has no global WebSocket).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { WsGuardClient, SendError, AuthExpiredError, classifyClose } from "../dist/index.js";
import { startUpstream, startProxy, startForwarder, sharedSecret, until, next, countingWebSocket } from "./harness.mjs";

let upstream;
let proxy;
before(async () => {
  upstream = await startUpstream();
  proxy = await startProxy(upstream);
});
after(async () => {
  await proxy?.stop();
  await upstream?.stop();
});

/** A client with the `ws` WebSocket, recording its states. */
function client({ url, ...options } = {}) {
  const states = [];
  const c = new WsGuardClient(url ?? proxy.url(), {
    WebSocket,
    refreshAt: false,
    reconnectBaseMs: 50,
    reconnectMaxMs: 200,
    refreshRetries: 1,
    refreshBackoffMs: 20,
    getToken: () => proxy.token(),
    refreshToken: () => proxy.token(),
    onStateChange: (state) => states.push(state),
    ...options,
  });
  states.push(c.state);
  return { c, states };
}

/** The upstream connection of a connection id. */
const upstreamOf = (id) => upstream.connections.find((conn) => conn.id === id);

test("states: connecting, authenticating, authenticated, reauthenticating on auth_required, authenticated, closed", async () => {
  let refreshes = 0;
  const { c, states } = client({ refreshToken: () => (refreshes++, proxy.token()) });
  const [first] = await next(c, "authenticated");
  assert.deepEqual(states, ["connecting", "authenticating", "authenticated"]);
  assert.equal(first.sub, "alice");
  // 4 s tokens, auth_required 2 s before exp: a REAUTH on the same socket.
  await next(c, "authRequired");
  const [second] = await next(c, "authenticated");
  assert.equal(second.connection_id, first.connection_id, "same socket");
  assert.ok(second.exp >= first.exp);
  assert.equal(refreshes, 1);
  c.close();
  assert.deepEqual(states, ["connecting", "authenticating", "authenticated", "reauthenticating", "authenticated", "closed"]);
  await assert.rejects(c.send("late"), (e) => e instanceof SendError && e.code === "closed");
});

test("messages sent before AUTHENTICATED are queued, then delivered in order, once", async () => {
  const { c } = client();
  const order = [];
  c.on("authenticated", () => order.push("authenticated"));
  const echoes = [];
  c.on("message", (m) => echoes.push(m));
  const sends = ["m1", "m2", "m3"].map((m) => c.send(m).then(() => order.push(`sent ${m}`)));
  assert.equal(c.queued, 3);
  assert.equal(c.state, "connecting");
  await Promise.all(sends);
  assert.deepEqual(order, ["authenticated", "sent m1", "sent m2", "sent m3"]);
  await until(() => echoes.length >= 3, "echoes");
  assert.deepEqual(echoes, ["m1", "m2", "m3"]);
  const conn = upstream.connections.at(-1);
  assert.deepEqual(conn.received, ["m1", "m2", "m3"]);
  assert.equal(typeof c.bufferedAmount, "number");
  c.close();
});

test("the queue is bounded: send() rejects with queue_full", async () => {
  const { c } = client({ queueLimit: 2 });
  const a = c.send("a");
  const b = c.send("b");
  await assert.rejects(c.send("c"), (e) => e instanceof SendError && e.code === "queue_full");
  await Promise.all([a, b]);
  c.close();
});

test("single flight: three concurrent triggers share one refresh and one REAUTH", async () => {
  let refreshes = 0;
  const { c } = client({
    refreshToken: async () => {
      refreshes++;
      await new Promise((r) => setTimeout(r, 300));
      return proxy.token("alice", "5s");
    },
  });
  await next(c, "authenticated");
  const reauths = [];
  c.on("state", (s) => s === "reauthenticating" && reauths.push(s));
  // Trigger 1: the proxy's auth_required; 2 and 3: the app, at the same moment.
  c.on("authRequired", () => {
    c.refresh();
    c.refresh();
  });
  await next(c, "authRequired");
  const [again] = await next(c, "authenticated");
  assert.equal(refreshes, 1);
  assert.equal(reauths.length, 1);
  assert.ok(again.exp > Date.now() / 1000 + 3, "the new 5 s token");
  c.close();
});

test("refresh fails: authExpired, messages queue, setToken resumes on the same socket with the queue in order", async () => {
  const { c, states } = client({
    refreshToken: () => Promise.reject(new Error("identity provider down")),
  });
  const [first] = await next(c, "authenticated");
  const [error] = await next(c, "authExpired");
  assert.ok(error instanceof AuthExpiredError);
  assert.equal(c.state, "suspended");
  const sends = [c.send("q1"), c.send("q2"), c.send("q3")];
  assert.equal(c.queued, 3);
  await next(c, "tokenExpired");
  assert.equal(c.state, "suspended");
  const fresh = await proxy.token();
  const resumedAuth = next(c, "authenticated");
  c.setToken(fresh);
  const [resumed] = await resumedAuth;
  await Promise.all(sends);
  const id = resumed.connection_id;
  assert.equal(id, first.connection_id, "resumed on the same socket");
  await until(() => upstreamOf(id)?.received.length >= 3, "queued messages upstream");
  assert.deepEqual(upstreamOf(id).received, ["q1", "q2", "q3"]);
  assert.ok(states.includes("suspended") && states.at(-1) === "authenticated", states.join());
  c.close();
});

test("an abnormal close reconnects with backoff, authenticates, and delivers what was sent meanwhile", async () => {
  const { c, states } = client();
  const [first] = await next(c, "authenticated");
  const closed = next(c, "close");
  upstreamOf(first.connection_id).socket.terminate();
  const [info] = await closed;
  assert.equal(info.code, 1011);
  assert.equal(info.cause, "upstreamGone");
  assert.equal(c.state, "reconnecting");
  const sent = c.send("after the drop");
  const [second] = await next(c, "authenticated");
  await sent;
  assert.notEqual(second.connection_id, first.connection_id);
  await until(() => upstreamOf(second.connection_id)?.received.length === 1, "the message on the new connection");
  assert.deepEqual(upstreamOf(second.connection_id).received, ["after the drop"]);
  assert.deepEqual(states.slice(-4), ["reconnecting", "connecting", "authenticating", "authenticated"]);
  c.close();
});

test("refresh fails and the grace runs out: 1008 token expired, no reconnect until setToken, then a new connection gets the queue", async () => {
  const { WebSocket: Counting, opened } = await countingWebSocket();
  const { c } = client({ WebSocket: Counting, refreshToken: () => Promise.reject(new Error("offline")) });
  await next(c, "authExpired");
  const sent = [c.send("s1"), c.send("s2")];
  const [info] = await next(c, "close");
  assert.deepEqual([info.code, info.reason, info.kind], [1008, "token expired", "auth"]);
  assert.equal(c.state, "suspended");
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(opened.length, 1, "no reconnect without a new token");
  const resumed = next(c, "authenticated");
  c.setToken(await proxy.token());
  const [auth] = await resumed;
  await Promise.all(sent);
  await until(() => upstreamOf(auth.connection_id)?.received.length === 2, "the queue on the new connection");
  assert.deepEqual(upstreamOf(auth.connection_id).received, ["s1", "s2"]);
  assert.equal(opened.length, 2);
  c.close();
});

async function noAuthLoop(proxy, code) {
  const { WebSocket: Counting, opened } = await countingWebSocket();
  const wrong = "x".repeat(64);
  let refreshes = 0;
  const { c } = client({
    url: proxy.url(),
    WebSocket: Counting,
    getToken: () => proxy.token("alice", "4s", wrong),
    refreshToken: () => (refreshes++, proxy.token("alice", "5s", wrong)),
  });
  const closes = [];
  c.on("close", (info) => closes.push(info));
  const [error] = await next(c, "authExpired");
  assert.ok(error instanceof AuthExpiredError);
  assert.equal(c.state, "suspended");
  assert.deepEqual(
    closes.map((i) => [i.code, i.reason, i.cause]),
    [
      [code, "invalid token", "invalidToken"],
      [code, "invalid token", "invalidToken"],
    ],
  );
  assert.equal(opened.length, 2, "the first socket and one retry with a new token");
  assert.equal(refreshes, 1);
  const sent = c.send("after sign-in");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(opened.length, 2, "no reconnect without a new token");
  c.setToken(await proxy.token());
  const [auth] = await next(c, "authenticated");
  await sent;
  await until(() => upstreamOf(auth.connection_id)?.received.length === 1, "the queued message");
  assert.equal(opened.length, 3);
  c.close();
}

test("an auth close (1008) is not retried in a loop: one retry with a new token, then authExpired until setToken", () => noAuthLoop(proxy, 1008));

test("the same with close_codes = \"distinct\" (4401)", async () => {
  const distinct = await startProxy(upstream, 'close_codes = "distinct"');
  try {
    await noAuthLoop(distinct, 4401);
  } finally {
    await distinct.stop();
  }
});

test("tabs share a refreshed token over BroadcastChannel: the other client re-authenticates with it, without refreshing", async () => {
  const key = `wsguard-test-${process.pid}`;
  const refreshes = { a: 0, b: 0 };
  const a = client({ coordinate: true, coordinationKey: key, refreshToken: () => (refreshes.a++, proxy.token("alice", "5s")) }).c;
  const b = client({ coordinate: true, coordinationKey: key, refreshToken: () => (refreshes.b++, proxy.token("alice", "5s")) }).c;
  await Promise.all([next(a, "authenticated"), next(b, "authenticated")]);
  const again = [next(a, "authenticated"), next(b, "authenticated")];
  a.refresh();
  const [[fromA], [fromB]] = await Promise.all(again);
  assert.deepEqual(refreshes, { a: 1, b: 0 });
  assert.equal(fromA.exp, fromB.exp, "both on the token A refreshed");
  assert.equal(a.tokens.token, b.tokens.token);
  a.close();
  b.close();
});

test("the close table classifies both close_codes modes", () => {
  assert.equal(classifyClose(4419, "token expired").cause, "tokenExpired");
  assert.equal(classifyClose(1008, "token expired").kind, "auth");
  assert.equal(classifyClose(4401, "whatever").kind, "auth");
  assert.equal(classifyClose(1013, "upstream unavailable").kind, "transient");
  assert.equal(classifyClose(1000, "bye").kind, "normal");
});

test("reconnect hint: queue from the hint, a new socket after after_ms, the old one closed with 1000, each message once", async () => {
  // Two pods behind one address: the first drains (SIGTERM), the second takes the new socket.
  const drain = `[drain]\nreconnect_spread = "300ms"\nclose_after = "5s"\ntimeout = "6s"`;
  sharedSecret.value = proxy.secret;
  const leaving = await startProxy(upstream, drain);
  const staying = await startProxy(upstream);
  sharedSecret.value = undefined;
  const front = await startForwarder(leaving.port);
  try {
    const { c, states } = client({ url: front.url(), getToken: () => leaving.token(), refreshToken: () => leaving.token() });
    const [first] = await next(c, "authenticated");
    await c.send("before");
    await until(() => upstreamOf(first.connection_id)?.received.length === 1, "the first message upstream");
    front.target.port = staying.port;
    const hinted = next(c, "reconnect");
    const hintedAt = Date.now();
    leaving.signal("SIGTERM");
    const [hint] = await hinted;
    assert.ok(hint.after_ms >= 0 && hint.after_ms <= 300, `after_ms ${hint.after_ms}`);
    assert.equal(c.state, "reconnecting");
    // Queued from the hint: not sent on the old socket.
    const during = c.send("during");
    assert.equal(c.queued, 1);
    const [second] = await next(c, "authenticated");
    assert.ok(Date.now() - hintedAt >= hint.after_ms, "the new socket waited for after_ms");
    assert.notEqual(second.connection_id, first.connection_id, "a new socket");
    await during;
    await c.send("after");
    const old = upstreamOf(first.connection_id);
    const fresh = upstreamOf(second.connection_id);
    await until(() => fresh?.received.length === 2, "the queued message on the new socket");
    assert.deepEqual(old.received, ["before"]);
    assert.deepEqual(fresh.received, ["during", "after"]);
    // The old socket was closed by the client with 1000 (its upstream leg got it), well before close_after.
    const closed = await new Promise((resolve) => (old.socket.readyState === 3 ? resolve(1000) : old.socket.once("close", resolve)));
    assert.equal(closed, 1000);
    assert.equal(await leaving.exited(), 0, "the drained proxy exits 0 once its last connection is gone");
    assert.ok(Date.now() - hintedAt < 5000, "before drain.close_after");
    assert.ok(states.includes("reconnecting"));
    assert.equal(c.state, "authenticated");
    c.close();
  } finally {
    await front.stop();
    await leaving.stop();
    await staying.stop();
  }
});
