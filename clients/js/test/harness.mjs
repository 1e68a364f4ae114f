// The Node tests' harness: a real wsguard process (the release binary) in
// front of a real upstream (a `ws` server that records and echoes), and
// tokens minted by `wsguard token`. Nothing on the proxy's path is faked.
import { spawn, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { WebSocketServer } from "ws";

const here = dirname(fileURLToPath(import.meta.url));
/** The binary under test (`cargo build --release -p wsguard`), or $WSGUARD_BIN. */
export const BIN = process.env.WSGUARD_BIN ?? join(here, "..", "..", "..", "target", "release", "wsguard");
/** How long a test waits for anything that should happen. */
export const WAIT = 8000;
/** Lines for `[auth]` in the proxies `startProxy` starts from now on (a test of an auth setting sets it, then resets it). */
export const authLines = { value: "" };

/** The HMAC secret of the proxies `startProxy` starts from now on, when set (two "pods" that take the same tokens); a test sets it, then resets it. */
export const sharedSecret = { value: undefined };

/** Resolves when `predicate()` holds (polled every 10 ms), rejects after `ms`. */
export async function until(predicate, what, ms = WAIT) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the arguments of the next `event` of `client`. */
export function next(client, event, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} in ${ms} ms`)), ms);
    const off = client.on(event, (...args) => {
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

/**
 * The upstream: a WebSocket echo server that records every message of each
 * connection (with its identity headers), plus plain HTTP routes for `authFetch`.
 */
export async function startUpstream() {
  const connections = [];
  const requests = [];
  const http = createServer((req, res) => {
    requests.push({ url: req.url, authorization: req.headers.authorization });
    const status = req.url.startsWith("/api/teapot") ? 418 : req.url.startsWith("/api/denied") ? 401 : 200;
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(status === 401 ? { error: "forbidden_here" } : { path: req.url }));
  });
  const wss = new WebSocketServer({ server: http });
  wss.on("connection", (socket, request) => {
    const conn = { socket, sub: request.headers["x-auth-subject"], id: request.headers["x-request-id"], received: [] };
    connections.push(conn);
    socket.on("message", (data, isBinary) => {
      const text = isBinary ? data : data.toString();
      conn.received.push(text);
      socket.send(text);
    });
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    port: http.address().port,
    connections,
    requests,
    /** Every message the upstream got, over all connections, in order. */
    all: () => connections.flatMap((c) => c.received),
    async stop() {
      for (const c of connections) c.socket.terminate();
      wss.close();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

/**
 * A wsguard process in front of `upstream`, with a fresh HMAC secret,
 * `session` and `upstreamLines` added to the test configuration's
 * `[session]` and `[upstream]` (3-5 s tokens in mind), and `extra`
 * (whole sections) at its end.
 */
export async function startProxy(upstream, session = "", upstreamLines = "", extra = "") {
  const dir = mkdtempSync(join(tmpdir(), "wsguard-js-"));
  const secret = sharedSecret.value ?? randomBytes(32).toString("hex");
  writeFileSync(join(dir, "secret"), secret, { mode: 0o600 });
  const config = `
[listener]
bind = "127.0.0.1:0"
worker_threads = 1
[admin]
bind = ""
[upstream]
url = "ws://127.0.0.1:${upstream.port}"
${upstreamLines}
[auth]
leeway = "1s"
${authLines.value}
[[auth.providers]]
name = "test"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "${join(dir, "secret")}"
[session]
reauth_lead = "2s"
reauth_jitter = "0s"
grace = "3s"
${session}
${extra}
`;
  writeFileSync(join(dir, "wsguard.toml"), config);
  const child = spawn(BIN, ["run", "--config", join(dir, "wsguard.toml")], {
    env: { ...process.env, RUST_LOG: "info", NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wsguard did not start:\n${log}`)), WAIT);
    child.stderr.on("data", (chunk) => {
      log += chunk.toString();
      // eslint-disable-next-line no-control-regex
      const m = log.replace(/\x1b\[[0-9;]*m/g, "").match(/wsguard listening.*?addr=127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`wsguard exited (${code}):\n${log}`)));
  });
  return {
    port,
    url: (path = "/chat") => `ws://127.0.0.1:${port}${path}`,
    http: (path) => `http://127.0.0.1:${port}${path}`,
    /** A token for `sub` from `wsguard token`, signed with this proxy's secret (or `otherSecret`). */
    async token(sub = "alice", ttl = "4s", otherSecret) {
      const { stdout } = await promisify(execFile)(BIN, ["token", "--secret-env", "WSG_TEST_SECRET", "--sub", sub, "--ttl", ttl], {
        env: { ...process.env, WSG_TEST_SECRET: otherSecret ?? secret },
      });
      return stdout.trim();
    },
    log: () => log,
    /** The secret its tokens are signed with (for a second proxy that takes them too). */
    secret,
    /** Sends `signal` (for example "SIGTERM": the drain) to the process. */
    signal: (signal) => child.kill(signal),
    /** Resolves with the exit code once the process has exited. */
    exited: () =>
      child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.on("exit", (code) => resolve(code))),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.on("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP forwarder in front of two proxies, as a Service in front of two pods:
 * each new connection goes to `target.port` at the moment it arrives.
 */
export async function startForwarder(port) {
  const { createServer: createTcp, connect } = await import("node:net");
  const target = { port };
  const sockets = new Set();
  const server = createTcp((client) => {
    const backend = connect(target.port, "127.0.0.1");
    for (const s of [client, backend]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        backend.destroy();
      });
    }
    client.pipe(backend);
    backend.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    target,
    url: (path = "/chat") => `ws://127.0.0.1:${server.address().port}${path}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The `ws` package's WebSocket, counting the sockets it opens. */
export async function countingWebSocket() {
  const { WebSocket } = await import("ws");
  const opened = [];
  class Counting extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      opened.push(this);
    }
  }
  return { WebSocket: Counting, opened };
}
