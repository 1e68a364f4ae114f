// The demo page (`wsguard demo`, 5 s tokens, 2 s lead) in headless
// Chromium: scenarios 1, 2, 4 and 5 of the demo-page issue, each asserted
// from the page and from the proxy (its log and its admin endpoints).
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { authenticated, launch, ROOT, screenshot, startDemo, until, WAIT } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** A demo for one test, stopped after it. */
async function demo(t) {
  const d = await startDemo();
  t.after(() => d.stop());
  return d;
}

test("1: a chat outlives three token lifetimes on one socket", async (t) => {
  const d = await demo(t);
  const page = await browser.open(d.page);
  await authenticated(page);
  // A numbered message every 200 ms for 16 s (three 5 s lifetimes and more).
  await page.evaluate(
    () =>
      new Promise((resolve) => {
        let i = 0;
        const timer = setInterval(() => {
          window.demo.say(`message ${++i}`);
          if (i === 80) {
            clearInterval(timer);
            resolve();
          }
        }, 200);
      }),
  );
  await page.waitForFunction(() => window.demo.stats.replies.length === 80, null, { timeout: WAIT });
  const seen = await page.evaluate(() => ({
    sockets: window.__webSockets,
    replies: window.demo.stats.replies,
    sent: window.demo.stats.sent,
    colours: window.demo.view.colours,
    states: window.demo.stats.states,
    frames: window.demo.stats.frames,
    answered: document.querySelectorAll("#messages li.answered").length,
  }));
  const numbers = Array.from({ length: 80 }, (_, i) => i + 1);
  assert.equal(seen.sockets, 1, "the page opened one WebSocket");
  assert.deepEqual(seen.replies, numbers, "every message got its reply, in order");
  assert.deepEqual(seen.sent, numbers);
  assert.equal(seen.answered, 80);
  assert.ok(!seen.colours.includes("down"), `the indicator was never red: ${seen.colours}`);
  assert.ok(seen.states.filter((s) => s === "reauthenticating").length >= 3, `${seen.states}`);
  assert.ok(seen.frames.AUTHENTICATED >= 4, JSON.stringify(seen.frames));
  assert.equal(await page.locator("#dot").getAttribute("class"), "dot ok");
  assert.equal(await page.locator("#banner").isVisible(), false);
  assert.match(await page.locator("#countdown").textContent(), /^\d s$/);
  assert.ok((await page.locator("#log li").count()) >= 8, "the side log shows the control frames");
  assert.deepEqual(page.errors, []);

  // The proxy: one connection in all, still live, re-authenticated in place.
  const metrics = await d.metrics();
  assert.equal(metrics.value("wsguard_connections_total"), 1);
  assert.ok(metrics.value("wsguard_auth_total", { kind: "reauth", result: "ok" }) >= 3);
  assert.equal(metrics.value("wsguard_token_expired_sent_total"), 0);
  const { connections } = await d.connections();
  assert.equal(connections.length, 1);
  assert.equal(connections[0].sub, "alice");
  assert.equal(d.count('event="closed"'), 0, d.log());

  const shot = await screenshot(page, "scenario-1");
  if (process.env.UPDATE_DEMO_PNG) copyFileSync(shot, join(ROOT, "docs", "demo.png"));
  await page.close();
});

test("2: a failed refresh shows the banner, queues, and sign-in delivers in order", async (t) => {
  const d = await demo(t);
  const page = await browser.open(d.page);
  await authenticated(page);
  await page.getByRole("button", { name: "Make the next refresh fail" }).click();
  await until(async () => (await page.locator("#switch").getAttribute("aria-pressed")) === "true", "the switch");
  await page.locator("#banner").waitFor({ state: "visible", timeout: WAIT });
  assert.equal(await page.evaluate(() => document.activeElement?.id), "signin", "the sign-in button has the focus");
  // Typed while the session is expired: queued, never an error.
  for (const text of ["first", "second", "third"]) {
    await page.getByLabel("Message").fill(text);
    await page.getByLabel("Message").press("Enter");
  }
  // The proxy suspends the connection at exp (TOKEN_EXPIRED); nothing was sent.
  await page.waitForFunction(() => window.demo.stats.frames.TOKEN_EXPIRED === 1, null, { timeout: WAIT });
  const waiting = await page.evaluate(() => ({
    queued: window.demo.client.queued,
    sent: window.demo.stats.sent,
    state: window.demo.client.state,
    replies: document.querySelectorAll("#messages .reply"),
  }));
  assert.equal(waiting.queued, 3);
  assert.deepEqual(waiting.sent, []);
  assert.equal(waiting.state, "suspended");
  assert.match(await page.locator("#queued").textContent(), /3 message\(s\) queued/);
  assert.equal(await page.locator("#messages").getByText("not sent").count(), 0, "no error bubble");
  assert.equal(await page.locator("#dot").getAttribute("class"), "dot pending");
  assert.ok(d.count("demo refresh switch flipped refresh_fails=true") === 1);
  assert.equal((await d.metrics()).value("wsguard_token_expired_sent_total"), 1);
  await screenshot(page, "scenario-2");

  await page.getByRole("button", { name: "Sign in again" }).click();
  await page.waitForFunction(() => window.demo.stats.replies.length === 3, null, { timeout: WAIT });
  const resumed = await page.evaluate(() => ({
    replies: window.demo.stats.replies,
    sockets: window.__webSockets,
    queued: window.demo.client.queued,
  }));
  assert.deepEqual(resumed.replies, [1, 2, 3], "delivered and answered in order");
  assert.equal(resumed.sockets, 1, "on the same socket (REAUTH within the grace)");
  assert.equal(resumed.queued, 0);
  await page.locator("#banner").waitFor({ state: "hidden", timeout: WAIT });
  assert.equal(await page.locator("#switch").getAttribute("aria-pressed"), "false", "sign-in turned the switch off");
  const metrics = await d.metrics();
  assert.equal(metrics.value("wsguard_connections_total"), 1);
  assert.ok(metrics.value("wsguard_auth_total", { kind: "reauth", result: "ok" }) >= 1);
  assert.equal((await d.connections()).connections.length, 1);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("4: authFetch with an expired token: five requests, one refresh, five successes", async (t) => {
  const d = await demo(t);
  // A same-origin document without the page's own client (whose refreshes would count too).
  const page = await browser.open(`${new URL(d.page).origin}/demo/style.css`);
  const expired = await page.evaluate(async () => {
    const body = await (await fetch("/demo/token")).json();
    return body;
  });
  await until(() => Date.now() / 1000 > expired.exp + 0.2, "the token to expire", 8000);
  const minted = d.count("demo token minted");
  const refused = d.count("http request token refused");
  const result = await page.evaluate(async (token) => {
    const { TokenManager, createAuthFetch } = await import("/demo/lib/index.js");
    let refreshes = 0;
    const tokens = new TokenManager({
      getToken: () => token,
      refreshToken: async () => {
        refreshes++;
        return (await (await fetch("/demo/token")).json()).token;
      },
      coordinationKey: "scenario-4",
    });
    const authFetch = createAuthFetch(tokens, fetch.bind(globalThis));
    const responses = await Promise.all(Array.from({ length: 5 }, () => authFetch("/api/whoami")));
    return { refreshes, statuses: responses.map((r) => r.status), bodies: await Promise.all(responses.map((r) => r.json())) };
  }, expired.token);
  assert.equal(result.refreshes, 1, "one refresh for five requests");
  assert.deepEqual(result.statuses, [200, 200, 200, 200, 200]);
  for (const body of result.bodies) assert.equal(body.sub, "alice");
  assert.equal(new Set(result.bodies.map((b) => b.request_id)).size, 5, "five requests reached the upstream");
  // The proxy refused the five with the expired token, and one token was minted.
  assert.equal(d.count("http request token refused") - refused, 5, d.log());
  assert.equal(d.count("demo token minted") - minted, 1, d.log());
  assert.deepEqual(page.errors, []);
  await page.close();
});

test("5: two tabs share one refresh and both get the new token", async (t) => {
  const d = await demo(t);
  const [a, b] = [await browser.open(d.page), await browser.open(d.page)];
  await Promise.all([authenticated(a), authenticated(b)]);
  const token = (page) => page.evaluate(() => window.demo.client.tokens.token);
  const first = [await token(a), await token(b)];
  const minted = d.count("demo token minted");
  // Wait for the next token in both tabs (auth_required comes 2 s before exp).
  await until(
    async () => {
      const [ta, tb] = [await token(a), await token(b)];
      return ta !== first[0] && tb !== first[1] && ta === tb;
    },
    "both tabs to hold one new token",
  );
  const refreshes = await Promise.all([a, b].map((p) => p.evaluate(() => window.demo.stats.refreshes)));
  assert.equal(refreshes[0] + refreshes[1], 1, `one refreshToken call between the tabs: ${refreshes}`);
  assert.equal(d.count("demo token minted") - minted, 1, "one token minted for both tabs");
  // Both sockets re-authenticated with it, in place.
  await until(async () => (await d.metrics()).value("wsguard_auth_total", { kind: "reauth", result: "ok" }) >= 2, "two REAUTHs");
  const metrics = await d.metrics();
  assert.equal(metrics.value("wsguard_connections_total"), 2);
  assert.equal((await d.connections()).connections.length, 2);
  // Both tabs asked at the same moment, five times: one refresh each time.
  for (let round = 0; round < 5; round++) {
    const before = d.count("demo token minted");
    const got = await Promise.all([a, b].map((p) => p.evaluate(() => window.demo.client.tokens.refresh())));
    assert.equal(got[0], got[1], "both tabs got the same token");
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(d.count("demo token minted") - before, 1, `round ${round}: one token minted for two simultaneous refreshes`);
  }
  for (const page of [a, b]) {
    assert.equal(await page.evaluate(() => window.__webSockets), 1);
    assert.deepEqual(page.errors, []);
    await page.close();
  }
});

test("the page on a phone: one column, no sideways scroll, labelled controls, keyboard only", async (t) => {
  const d = await demo(t);
  const page = await browser.open(d.page);
  await page.setViewportSize({ width: 375, height: 740 });
  await authenticated(page);
  const layout = await page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    chat: document.querySelector(".chat").getBoundingClientRect().toJSON(),
    log: document.querySelector(".log").getBoundingClientRect().toJSON(),
  }));
  assert.ok(layout.overflow <= 0, `no horizontal scroll: ${layout.overflow}px too wide`);
  assert.ok(layout.log.top >= layout.chat.bottom, "the side log goes below the chat");
  assert.match(await page.locator("#status[role=status]").textContent(), /authenticated/);
  for (const name of ["Make the next refresh fail", "Send", "Call /api/whoami with authFetch"]) {
    assert.equal(await page.getByRole("button", { name }).count(), 1, name);
  }
  // Keyboard only: Tab to the message field, type, Enter.
  for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement?.id)) !== "text"; i++) {
    await page.keyboard.press("Tab");
  }
  assert.equal(await page.evaluate(() => document.activeElement?.id), "text", "Tab reaches the message field");
  await page.keyboard.type("from the keyboard");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => window.demo.stats.replies.length === 1, null, { timeout: WAIT });
  await page.getByText("↩ echoed by the upstream: from the keyboard").waitFor({ timeout: WAIT });
  // The protected route, from the page's own button.
  await page.getByRole("button", { name: "Call /api/whoami with authFetch" }).click();
  await until(async () => /^200 /.test(await page.locator("#whoami-out").textContent()), "the whoami answer");
  assert.match(await page.locator("#whoami-out").textContent(), /"sub":"alice"/);
  await screenshot(page, "phone");
  assert.deepEqual(page.errors, []);
  await page.close();
});
