// Scenario 3 of the demo-page issue: drain. Two `wsguard run` processes
// share one configuration (one listening address, `admin.bind` on port 0)
// and one upstream (`upstream.mjs`: a small Node server serving the demo
// page's files, a token endpoint and the echo). The first is drained with
// SIGTERM; the page gets the `reconnect` hint and, after `after_ms`,
// reconnects to the second, which the test starts once the first has
// stopped listening (the client's backoff covers the gap); every message the
// page accepted reaches the upstream exactly once.
//
// It uses the drain (SIGTERM, `[drain]`, the `reconnect` frame).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { authenticated, BIN, getJson, launch, scrape, until, WAIT } from "./harness.mjs";
import { startUpstream } from "./upstream.mjs";

/** A port that was free a moment ago (both proxies bind it in turn). */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether something accepts connections on `port`. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** `wsguard run --config path`, up once it logged its admin and listening addresses. */
async function run(path) {
  const child = spawn(BIN, ["run", "--config", path], {
    env: { ...process.env, RUST_LOG: "info", NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const state = { log: "", exited: null };
  child.on("exit", (code, signal) => {
    state.exited = { code, signal };
  });
  const admin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wsguard run did not start:\n${state.log}`)), WAIT);
    child.stderr.on("data", (chunk) => {
      state.log += chunk.toString();
      const addr = /admin listening addr=(\S+)/.exec(state.log);
      if (addr && state.log.includes("wsguard listening")) {
        clearTimeout(timer);
        resolve(`http://${addr[1]}`);
      }
    });
    child.on("exit", () => reject(new Error(`wsguard run exited:\n${state.log}`)));
  });
  return { child, state, admin };
}

test("3: a drained proxy's page reconnects to the next one, every message exactly once", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "wsguard-drain-"));
  const secret = randomBytes(32).toString("hex");
  writeFileSync(join(dir, "secret"), secret, { mode: 0o600 });
  const upstream = await startUpstream(secret);
  const port = await freePort();
  const config = join(dir, "wsguard.toml");
  writeFileSync(
    config,
    `
[listener]
bind = "127.0.0.1:${port}"
worker_threads = 1
[admin]
bind = "127.0.0.1:0"
[upstream]
url = "ws://127.0.0.1:${upstream.port}"
[auth]
leeway = "1s"
[[auth.providers]]
name = "test"
algorithms = ["HS256"]
[[auth.providers.keys]]
kind = "hmac"
secret_file = "${join(dir, "secret")}"
[drain]
reconnect_spread = "1s"
close_after = "3s"
timeout = "10s"
`,
  );
  const browser = await launch();
  const procs = [];
  t.after(async () => {
    for (const p of procs) if (p.state.exited === null) p.child.kill("SIGKILL");
    await browser.close();
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const first = await run(config);
  procs.push(first);
  const page = await browser.open(`http://127.0.0.1:${port}/demo/`);
  await authenticated(page);
  // A numbered message every 100 ms until told to stop.
  await page.evaluate(() => {
    window.__chatter = setInterval(() => window.demo.say(`message ${Date.now()}`), 100);
  });
  await new Promise((r) => setTimeout(r, 1000));

  first.child.kill("SIGTERM");
  await page.waitForFunction(() => window.demo.stats.frames.reconnect === 1, null, { timeout: WAIT });
  const hint = await page.evaluate(() => window.demo.view.log.textContent);
  assert.match(hint, /reconnect \{"after_ms":\d+\}/);
  await until(async () => !(await listening(port)), "the first proxy to stop listening");
  const second = await run(config);
  procs.push(second);

  // Attempts while no proxy listens are refused (more WebSocket constructions); one gets in.
  await page.waitForFunction(
    () => window.demo.stats.frames.AUTHENTICATED >= 2 && window.demo.client.state === "authenticated",
    null,
    { timeout: WAIT },
  );
  await new Promise((r) => setTimeout(r, 1000));
  const total = await page.evaluate(() => {
    clearInterval(window.__chatter);
    return window.demo.stats.sent.length + window.demo.client.queued;
  });
  await page.waitForFunction((n) => window.demo.stats.replies.length >= n, total, { timeout: WAIT });
  const numbers = Array.from({ length: total }, (_, i) => i + 1);
  const seen = await page.evaluate(() => ({ replies: window.demo.stats.replies, sockets: window.__webSockets }));
  assert.deepEqual(upstream.received, numbers, "every accepted message reached the upstream exactly once, in order");
  assert.deepEqual(seen.replies, numbers, "and got its reply");
  assert.ok(seen.sockets >= 2, `${seen.sockets} WebSockets`);

  // The proxies: the first drained and exited 0; the second holds the one connection.
  await until(() => first.state.exited !== null, "the first proxy to exit", 15_000);
  assert.deepEqual(first.state.exited, { code: 0, signal: null }, first.state.log);
  const metrics = await scrape(second.admin);
  assert.equal(metrics.value("wsguard_connections_total"), 1);
  const { connections } = await getJson(`${second.admin}/connections`);
  assert.equal(connections.length, 1);
  assert.deepEqual(page.errors, []);
});
