// The drain scenario's upstream, shared by two `wsguard run` processes: it
// serves the demo page from the repository's files (the same files
// `wsguard demo` embeds), a token endpoint (HS256, the secret both proxies
// are configured with) and an echo WebSocket that records every chat
// message it receives.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { WebSocketServer } from "ws";
import { ROOT } from "./harness.mjs";

/** Path under `/demo/` → file in the repository. */
function file(path) {
  const demo = join(ROOT, "clients", "demo");
  if (path === "" || path === "index.html") return [join(demo, "index.html"), "text/html; charset=utf-8"];
  if (path === "style.css") return [join(demo, "style.css"), "text/css; charset=utf-8"];
  const lib = /^lib\/([a-z]+\.js)$/.exec(path);
  if (lib) return [join(ROOT, "clients", "js", "dist", lib[1]), "text/javascript; charset=utf-8"];
  const own = /^([a-z]+\.js)$/.exec(path);
  if (own) return [join(demo, "dist", own[1]), "text/javascript; charset=utf-8"];
  return undefined;
}

/** An HS256 JWT for `sub`, valid for `ttl` seconds. */
function mint(secret, sub, ttl) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + ttl })}`;
  const signature = createHmac("sha256", secret).update(body).digest("base64url");
  return { token: `${body}.${signature}`, exp: now + ttl };
}

/** Starts the upstream on a free port. */
export async function startUpstream(secret, ttl = 60) {
  const received = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://upstream");
    const json = (status, body) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === "/demo/token") return json(200, { ...mint(secret, "alice", ttl), sub: "alice" });
    if (url.pathname === "/demo/switch") return json(200, { refresh_fails: false });
    const found = url.pathname.startsWith("/demo/") ? file(url.pathname.slice(6)) : undefined;
    if (!found) return json(404, { error: "not_found" });
    res.writeHead(200, { "content-type": found[1], "cache-control": "no-cache" });
    res.end(readFileSync(found[0]));
  });
  const wss = new WebSocketServer({ server });
  wss.on("connection", (socket) => {
    socket.on("message", (data, isBinary) => {
      if (!isBinary) {
        try {
          const message = JSON.parse(data.toString());
          if (message.type === "chat") received.push(message.n);
        } catch {
          // not JSON: echoed all the same
        }
      }
      socket.send(data, { binary: isBinary });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    /** The chat message numbers received, over all connections, in order. */
    received,
    async stop() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
