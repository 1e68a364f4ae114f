// Session policies against the real release binary: the inactivity timeout
// (`idle_warning` event, no reconnect after `idle timeout` until the app
// sends) and `tokenPerConnection` for `auth.max_connections_per_token = 1`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { WsGuardClient } from "../dist/index.js";
import { startUpstream, startProxy, until, next, countingWebSocket, authLines } from "./harness.mjs";

let upstream;
before(async () => {
  upstream = await startUpstream();
});
after(async () => {
  await upstream?.stop();
});

/** A client of `proxy` with long-lived tokens (no refresh during a test). */
function client(proxy, options = {}) {
  const states = [];
  const c = new WsGuardClient(proxy.url(), {
    WebSocket,
    refreshAt: false,
    reconnectBaseMs: 50,
    reconnectMaxMs: 200,
    refreshRetries: 1,
    refreshBackoffMs: 20,
    getToken: () => proxy.token("alice", "60s"),
    refreshToken: () => proxy.token("alice", "60s"),
    onStateChange: (state) => states.push(state),
    ...options,
  });
  return { c, states };
}

/** The first auth frame's token of each socket `opened` recorded. */
function authTokens(opened) {
  return opened.map((ws) => ws.sentFrames.map((f) => JSON.parse(f)).find((f) => f.type === "auth")?.payload.token);
}

/** The `ws` WebSocket, counting sockets and recording what each sends. */
async function recordingWebSocket() {
  const { WebSocket: Counting, opened } = await countingWebSocket();
  class Recording extends Counting {
    constructor(url, protocols) {
      super(url, protocols);
      this.sentFrames = [];
    }
    send(data) {
      if (typeof data === "string") this.sentFrames.push(data);
      super.send(data);
    }
  }
  return { WebSocket: Recording, opened };
}

test("idle_warning is an event; after 1001 idle timeout the client waits in `idle` until the app sends, then reconnects and delivers", async () => {
  const proxy = await startProxy(upstream, 'idle_timeout = "1200ms"\nidle_warning = "600ms"');
  try {
    const { WebSocket: Counting, opened } = await countingWebSocket();
    const { c, states } = client(proxy, { WebSocket: Counting });
    await next(c, "authenticated");
    const [warning] = await next(c, "idleWarning");
    assert.ok(warning.closes_in_ms > 0 && warning.closes_in_ms <= 600, JSON.stringify(warning));
    const [info] = await next(c, "close");
    assert.deepEqual([info.code, info.reason, info.cause, info.kind], [1001, "idle timeout", "idleTimeout", "idle"]);
    assert.equal(c.state, "idle");
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(opened.length, 1, "no reconnect while the app is idle");
    const sent = c.send("back again");
    assert.equal(c.state, "connecting");
    const [auth] = await next(c, "authenticated");
    await sent;
    await until(() => upstream.connections.find((u) => u.id === auth.connection_id)?.received[0] === "back again", "the message");
    assert.equal(opened.length, 2);
    assert.deepEqual(states.slice(-4), ["idle", "connecting", "authenticating", "authenticated"]);
    c.close();
  } finally {
    await proxy.stop();
  }
});

test("with max_connections_per_token = 1, tokenPerConnection gets a token of its own for every socket (getToken per connection, no tab sharing)", async () => {
  authLines.value = "max_connections_per_token = 1";
  const proxy = await startProxy(upstream).finally(() => (authLines.value = ""));
  try {
    const { WebSocket: Recording, opened } = await recordingWebSocket();
    let gets = 0;
    const { c } = client(proxy, {
      WebSocket: Recording,
      tokenPerConnection: true,
      coordinate: true,
      coordinationKey: `wsguard-policies-${process.pid}`,
      // A new token on every call (another exp: `wsguard token` is deterministic).
      getToken: () => proxy.token("alice", `${60 + gets++}s`),
    });
    const [first] = await next(c, "authenticated");
    // The upstream drops the connection: wsguard closes 1011, the client reconnects.
    upstream.connections.find((u) => u.id === first.connection_id).socket.terminate();
    const [second] = await next(c, "authenticated");
    assert.notEqual(second.connection_id, first.connection_id);
    assert.equal(gets, 2, "getToken once per connection");
    const [a, b] = authTokens(opened);
    assert.ok(a && b && a !== b, "each socket has its own token");

    // Another tab's refreshed token (same coordination key) is not taken over.
    let peerTokens = 0;
    const peer = client(proxy, {
      coordinate: true,
      coordinationKey: `wsguard-policies-${process.pid}`,
      getToken: () => proxy.token("alice", `${90 + peerTokens++}s`),
      refreshToken: () => proxy.token("alice", `${90 + peerTokens++}s`),
      reauthMinIntervalMs: 0,
    }).c;
    await next(peer, "authenticated");
    peer.refresh();
    await next(peer, "authenticated");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.tokens.token, b, "no token from another tab");
    assert.notEqual(peer.tokens.token, b);
    peer.close();

    // Without the option, a second client sharing a token in use is refused.
    const shared = client(proxy, { getToken: () => b, refreshToken: () => b, maxAuthRetries: 0 }).c;
    const [refused] = await next(shared, "close");
    assert.deepEqual([refused.code, refused.reason, refused.cause, refused.kind], [1008, "token in use", "tokenInUse", "auth"]);
    shared.close();
    c.close();
  } finally {
    await proxy.stop();
  }
});
