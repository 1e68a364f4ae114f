// authFetch through a real wsguard process: plain HTTP passes through to the
// upstream (here without `[http] protect`; the refresh-and-replay test
// against wsguard's own 401 is still to be written, see below).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { WsGuardClient, isTokenNotValid } from "../dist/index.js";
import { startUpstream, startProxy, next } from "./harness.mjs";

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

test("authFetch on wsguard's 401 token_not_valid: one refresh shared by concurrent requests and the socket, replayed with the new token; authExpired when refresh fails", { skip: "to be written against [http] protect = true (wsguard answers 401 token_not_valid since #11)" }, () => {});
