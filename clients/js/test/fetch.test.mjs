// authFetch through a real wsguard process: plain HTTP passes through to the
// upstream (without `[http] protect`), and, with it, wsguard's own 401
// token_not_valid is refreshed once and replayed.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { WsGuardClient, isTokenNotValid, AuthExpiredError, PermanentRefreshError } from "../dist/index.js";
import { startUpstream, startProxy, next, until, WAIT } from "./harness.mjs";

let upstream;
let proxy;
before(async () => {
  upstream = await startUpstream();
  proxy = await startProxy(upstream, "", "forward_authorization = true");
});
after(async () => {
  await proxy?.stop();
  await upstream?.stop();
});

test("authFetch sends the client's token and passes every answer but token_not_valid through untouched", async () => {
  let refreshes = 0;
  const c = new WsGuardClient(proxy.url(), {
    WebSocket,
    refreshAt: false,
    getToken: () => proxy.token(),
    refreshToken: () => (refreshes++, proxy.token()),
  });
  await next(c, "authenticated");
  const token = c.tokens.token;

  const ok = await c.authFetch(proxy.http("/api/items?x=1"), { headers: { "x-app": "1" } });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { path: "/api/items?x=1" });
  assert.equal(upstream.requests.at(-1).authorization, `Bearer ${token}`);

  const teapot = await c.authFetch(proxy.http("/api/teapot"));
  assert.equal(teapot.status, 418);

  // A 401 that is not wsguard's token_not_valid is the app's business: no refresh, no replay.
  const before = upstream.requests.length;
  const denied = await c.authFetch(proxy.http("/api/denied"));
  assert.equal(denied.status, 401);
  assert.equal(await isTokenNotValid(denied), false);
  assert.deepEqual(await denied.json(), { error: "forbidden_here" });
  assert.equal(upstream.requests.length, before + 1, "not replayed");
  assert.equal(refreshes, 0);
  c.close();
});

describe("authFetch on wsguard's own 401 token_not_valid ([http] protect = true)", () => {
  let guarded;
  before(async () => {
    guarded = await startProxy(upstream, "", "forward_authorization = true", "[http]\nprotect = true");
  });
  after(async () => {
    await guarded?.stop();
  });

  /** Resolves once wsguard answers `token` with its 401 token_not_valid (it has expired, leeway included). */
  async function untilRefused(token) {
    const deadline = Date.now() + WAIT;
    for (;;) {
      const r = await fetch(guarded.http("/api/probe"), { headers: { authorization: `Bearer ${token}` } });
      if (await isTokenNotValid(r)) return;
      if (Date.now() > deadline) throw new Error("the token was never refused");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** A client whose refreshes wait for `gate` (resolved by the test) and are counted. */
  function gatedClient(first) {
    const gate = {};
    gate.promise = new Promise((resolve, reject) => Object.assign(gate, { resolve, reject }));
    const counts = { refreshes: 0, expired: 0, refused: 0 };
    // The real fetch, counting wsguard's 401s as they come back.
    const counting = async (input, init) => {
      const r = await fetch(input, init);
      if (await isTokenNotValid(r)) counts.refused++;
      return r;
    };
    const c = new WsGuardClient(guarded.url(), {
      WebSocket,
      fetch: counting,
      refreshAt: false,
      refreshRetries: 0,
      getToken: () => first,
      refreshToken: () => (counts.refreshes++, gate.promise),
    });
    c.on("authExpired", () => counts.expired++);
    return { c, gate, counts };
  }

  test("five concurrent requests with an expired token and the socket's own auth_required share one refresh; all five replay with the new token", async () => {
    const first = await guarded.token("alice", "3s");
    const { c, gate, counts } = gatedClient(first);
    await next(c, "authenticated");
    // The socket asks for a new token (reauth_lead = 2s) and its refresh waits on the gate.
    await until(() => counts.refreshes === 1, "the socket's refresh");
    await untilRefused(first);

    const seen = upstream.requests.length;
    const answers = Promise.all([1, 2, 3, 4, 5].map((n) => c.authFetch(guarded.http(`/api/items/${n}`))));
    // All five were refused by wsguard itself and wait for the refresh in flight.
    await until(() => counts.refused === 5, "five 401 token_not_valid");
    assert.equal(upstream.requests.length, seen, "wsguard refused the expired token itself");
    assert.equal(counts.refreshes, 1, "the requests joined the socket's refresh");

    const fresh = await guarded.token("alice", "30s");
    gate.resolve(fresh);
    const responses = await answers;
    assert.deepEqual(responses.map((r) => r.status), [200, 200, 200, 200, 200]);
    const replayed = upstream.requests.slice(seen);
    assert.equal(replayed.length, 5, "each request replayed once");
    assert.ok(replayed.every((r) => r.authorization === `Bearer ${fresh}`), "replayed with the new token");
    assert.deepEqual(replayed.map((r) => r.url).sort(), [1, 2, 3, 4, 5].map((n) => `/api/items/${n}`));
    assert.equal(counts.refreshes, 1, "one refresh in all");
    assert.equal(counts.expired, 0);
    c.close();
  });

  test("when that refresh fails, every waiting request rejects with AuthExpiredError and authExpired is emitted instead of the 401", async () => {
    const first = await guarded.token("bob", "3s");
    const { c, gate, counts } = gatedClient(first);
    await next(c, "authenticated");
    await until(() => counts.refreshes === 1, "the socket's refresh");
    await untilRefused(first);

    const seen = upstream.requests.length;
    const answers = Promise.allSettled([1, 2, 3].map((n) => c.authFetch(guarded.http(`/api/items/${n}`))));
    await until(() => counts.refused === 3, "three 401 token_not_valid");
    gate.reject(new PermanentRefreshError("signed out"));
    const settled = await answers;
    assert.deepEqual(settled.map((s) => s.status), ["rejected", "rejected", "rejected"]);
    assert.ok(settled.every((s) => s.reason instanceof AuthExpiredError), "typed AuthExpiredError");
    assert.ok(counts.expired >= 1, "authExpired emitted");
    assert.equal(counts.refreshes, 1, "no refresh per request");
    assert.equal(upstream.requests.length, seen, "nothing replayed without a token");
    c.close();
  });
});
