// A real browser's verdict on a Socket.IO server, for the fault lab's CORS cases (tests/lab).
//
//   node browser_check.mjs --page-port A --url URL [--path /socket.io/] [--credentials]
//                          [--chromium /usr/bin/chromium] [--upgrade-wait MS]
//
// Serves a page on http://127.0.0.1:A (the lab origin) that loads the official browser client
// (socket.io-client/dist/socket.io.min.js, from the same origin) and connects to URL with
// withCredentials as asked and no reconnection. Debian's chromium, headless and driven by
// playwright-core over its executable path (no browser download), loads the page. Prints one JSON
// object: {connected, opened, transport, upgraded, error, description, console}: `opened` is the
// transport the Engine.IO session opened with, `transport` the one at "connect", `upgraded` the
// one after waiting for an upgrade; `console` the browser's console lines (CORS errors appear
// there with the browser's reason).
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: flags } = parseArgs({
  options: {
    "page-port": { type: "string" },
    url: { type: "string" },
    path: { type: "string", default: "/socket.io/" },
    credentials: { type: "boolean", default: false },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    "upgrade-wait": { type: "string", default: "2000" },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const clientJs = fs.readFileSync(path.join(here, "node_modules/socket.io-client/dist/socket.io.min.js"));

const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>lab page</title>
<script src="/socket.io.min.js"></script></head>
<body><script>
const cfg = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const socket = io(cfg.url, {
  path: cfg.path, withCredentials: cfg.credentials, reconnection: false, timeout: 8000,
});
let opened = null;
socket.io.on("open", () => { opened = socket.io.engine.transport.name; });
socket.on("connect", () => {
  const transport = socket.io.engine.transport.name;
  const done = (upgraded) => {
    window.__result = { connected: true, opened, transport, upgraded, error: null };
    socket.disconnect();
  };
  if (transport === "websocket") return done("websocket");
  const timer = setTimeout(() => done(socket.io.engine.transport.name), cfg.upgradeWait);
  socket.io.engine.once("upgrade", (t) => { clearTimeout(timer); done(t.name); });
});
socket.on("connect_error", (err) => {
  const d = err.description;
  window.__result = {
    connected: false, opened, transport: null, upgraded: null, error: err.message,
    description: d === undefined ? null : String(d && d.message ? d.message : d),
  };
});
</script></body></html>`;

const pages = http.createServer((req, res) => {
  if (req.url === "/socket.io.min.js") {
    res.writeHead(200, { "Content-Type": "application/javascript" });
    res.end(clientJs);
  } else if (req.url === "/" || req.url.startsWith("/?")) {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(PAGE);
  } else {
    res.writeHead(req.url === "/favicon.ico" ? 204 : 404);
    res.end();
  }
});
await new Promise((resolve) => pages.listen(Number(flags["page-port"]), "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${pages.address().port}`;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "aiosio-lab-chromium-"));
let context;
const console_ = [];
let exitCode = 0;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: flags.chromium,
    headless: true,
    timeout: 30000,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => console_.push(`${msg.type()}: ${msg.text()}`));
  const cfg = {
    url: flags.url, path: flags.path, credentials: flags.credentials,
    upgradeWait: Number(flags["upgrade-wait"]),
  };
  await page.goto(`${origin}/#${encodeURIComponent(JSON.stringify(cfg))}`, { timeout: 15000 });
  const handle = await page.waitForFunction(() => window.__result, null, { timeout: 20000 });
  const result = await handle.jsonValue();
  process.stdout.write(JSON.stringify({ ...result, origin, console: console_ }) + "\n");
} catch (err) {
  process.stdout.write(JSON.stringify({ failed: String(err), origin, console: console_ }) + "\n");
  exitCode = 1;
} finally {
  if (context) await context.close();
  pages.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
