// The browser tests' harness: the real wsguard binary (`wsguard demo`, or
// `wsguard run` for the drain scenario), Debian's Chromium driven by
// playwright-core (never a downloaded browser), and small helpers to wait
// on the page and on the proxy (its log and its admin endpoints).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const ROOT = join(here, "..", "..", "..");
/** The binary under test (`cargo build --release -p wsguard`), or $WSGUARD_BIN. */
export const BIN = process.env.WSGUARD_BIN ?? join(ROOT, "target", "release", "wsguard");
/** Debian's Chromium (`apt-get install chromium`), or $CHROMIUM. */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** Where screenshots go. */
export const SHOTS = join(ROOT, "target", "browser-tests");
/** How long a test waits for anything that should happen. */
export const WAIT = 10_000;

/** Resolves when `predicate()` (maybe async) holds, polled every 25 ms; rejects after `ms`. */
export async function until(predicate, what, ms = WAIT) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A child process whose standard error is collected (the proxy's log). */
function collect(child) {
  const state = { log: "", exited: null };
  child.stderr.on("data", (chunk) => {
    state.log += chunk.toString();
  });
  child.on("exit", (code, signal) => {
    state.exited = { code, signal };
  });
  return state;
}

/**
 * `wsguard demo` on free ports (proxy and admin) with 5 s tokens and a 2 s
 * lead; its banner read for the addresses. RUST_LOG adds the debug line
 * of each HTTP request the proxy refuses.
 */
export async function startDemo(flags = ["--token-ttl", "5s", "--reauth-lead", "2s"]) {
  const child = spawn(BIN, ["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", ...flags], {
    env: { ...process.env, RUST_LOG: "info,wsguard::http_auth=debug", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const state = collect(child);
  let out = "";
  const banner = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wsguard demo did not start:\n${out}\n${state.log}`)), WAIT);
    child.stdout.on("data", (chunk) => {
      out += chunk.toString();
      if (/^connect: /m.test(out)) {
        clearTimeout(timer);
        resolve(out.split("\n"));
      }
    });
    child.on("exit", () => reject(new Error(`wsguard demo exited:\n${out}\n${state.log}`)));
  });
  const field = (prefix) => {
    const line = banner.find((l) => l.startsWith(prefix));
    if (!line) throw new Error(`no ${prefix} line in ${out}`);
    return line.slice(prefix.length).split(" ")[0];
  };
  const admin = field("admin: ").replace(/\/connections$/, "");
  return {
    child,
    banner,
    /** The page's URL, the banner's first line. */
    page: field("page: "),
    admin,
    /** Everything the demo logged so far. */
    log: () => state.log,
    /** How many log lines contain `text`. */
    count: (text) => state.log.split("\n").filter((l) => l.includes(text)).length,
    metrics: () => scrape(admin),
    connections: () => getJson(`${admin}/connections`),
    async stop() {
      if (state.exited === null) {
        child.kill("SIGKILL");
        await until(() => state.exited !== null, "the demo to exit");
      }
    },
  };
}

/** `GET url` as JSON. */
export async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

/** The admin listener's `/metrics`: `value(name, labels)` sums the matching series. */
export async function scrape(admin) {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const series = text
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(l);
      if (!m) return undefined;
      const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      return { name: m[1], labels, value: Number(m[3]) };
    })
    .filter(Boolean);
  return {
    value: (name, labels = {}) =>
      series
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((sum, s) => sum + s.value, 0),
  };
}

/**
 * Headless Chromium with a fresh profile (its own `--user-data-dir`), the
 * flags this machine's closed network needs, and a count of `WebSocket`
 * constructions on every page (`window.__webSockets`).
 */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "wsguard-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1100, height: 760 },
  });
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__webSockets = 0;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__webSockets++;
      }
    };
  });
  return {
    context,
    /** A new tab showing `url`; the page's errors fail the test. */
    async open(url) {
      const page = await context.newPage();
      page.errors = [];
      page.on("pageerror", (error) => page.errors.push(String(error)));
      await page.goto(url);
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Resolves when the page's client has been authenticated. */
export function authenticated(page) {
  return page.waitForFunction(() => window.demo?.stats.states.includes("authenticated"), null, { timeout: WAIT });
}

/** A screenshot of `page` in `target/browser-tests/NAME.png`; the path. */
export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}
