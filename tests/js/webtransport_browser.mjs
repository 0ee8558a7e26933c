// The official socket.io-client 4.8.1 in Debian's chromium, headless (playwright-core over its
// executable path, as admin_browser.mjs), against a server offering WebTransport with a
// self-signed certificate that the page pins by hash (serverCertificateHashes): no browser flag
// is needed for it (Chromium 156 accepts a hash-pinned certificate of at most 14 days).
//
//   node webtransport_browser.mjs --url URL --hash BASE64 --mode MODE [--chromium PATH]
//
// MODE: "webtransport" (transports: ["webtransport"]), "default" (the default transports with
// tryAllTransports: polling first, then the upgrade the client favours, WebTransport), or
// "fallback" (a wrong hash, transports ["webtransport", "websocket"] with tryAllTransports: the
// client falls back to WebSocket). The page at URL/index.html loads /socket.io/socket.io.js from
// the server and runs the tour: two clients A and B connect; A echoes text and binary with an
// ack; A joins a room and B's room message reaches A only; a broadcast reaches both; the server
// drops A's session and A reconnects on its own. Prints one JSON object with what it saw.
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: flags } = parseArgs({
  options: {
    url: { type: "string" },
    hash: { type: "string" },
    mode: { type: "string", default: "webtransport" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});

const browser = await chromium.launch({
  executablePath: flags.chromium,
  headless: true,
  timeout: 30000,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
let exitCode = 0;
try {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(m.text()));
  await page.goto(`${flags.url}/index.html`);
  const result = await page.evaluate(
    async ({ url, hash, mode }) => {
      const value = Uint8Array.from(atob(hash), (c) => c.charCodeAt(0));
      const options = {
        forceNew: true,
        reconnectionDelay: 100,
        reconnectionDelayMax: 200,
        transportOptions: {
          webtransport: { serverCertificateHashes: [{ algorithm: "sha-256", value }] },
        },
      };
      if (mode === "webtransport") options.transports = ["webtransport"];
      if (mode === "default") options.tryAllTransports = true;
      if (mode === "fallback") {
        options.transports = ["webtransport", "websocket"];
        options.tryAllTransports = true;
      }
      const out = {};
      const timeout = (what, ms = 10000) =>
        new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms));
      const connect = (name) =>
        Promise.race([
          new Promise((resolve, reject) => {
            const socket = io(url, options);
            socket.once("connect", () => resolve(socket));
            socket.on("connect_error", (err) => (out[`${name}_errors`] ??= []).push(err.message));
          }),
          timeout(`${name} connects`),
        ]);
      const upgraded = (socket) =>
        socket.io.engine.transport.name === "webtransport"
          ? Promise.resolve()
          : Promise.race([
              new Promise((resolve) => socket.io.engine.once("upgrade", resolve)),
              timeout("upgrade"),
            ]);
      const a = await connect("a");
      out.first = a.io.engine.transport.name;
      const b = await connect("b");
      if (mode === "default") {
        await upgraded(a);
        await upgraded(b);
      }
      out.transports = [a.io.engine.transport.name, b.io.engine.transport.name];
      out.echo = await a.timeout(5000).emitWithAck("echo", "héllo", { n: 1 });
      const bytes = await a.timeout(5000).emitWithAck("echo", new Uint8Array([0, 1, 2, 255]));
      out.binary = Array.from(new Uint8Array(bytes[0]));
      const big = "x".repeat(100000);
      out.large = (await a.timeout(5000).emitWithAck("echo", big))[0].length;

      out.joined = await a.timeout(5000).emitWithAck("join", "room1");
      const inRoom = [];
      a.on("room", (m) => inRoom.push(["a", m]));
      b.on("room", (m) => inRoom.push(["b", m]));
      await b.timeout(5000).emitWithAck("to_room", "room1", "for the room");
      const news = [];
      a.on("news", (m) => news.push(["a", m]));
      b.on("news", (m) => news.push(["b", m]));
      await b.timeout(5000).emitWithAck("broadcast", "for all");
      await new Promise((r) => setTimeout(r, 300));
      out.room = inRoom;
      out.news = news.sort();

      const oldId = a.id;
      const back = Promise.race([
        new Promise((resolve) =>
          a.once("disconnect", (reason) => {
            out.dropReason = reason;
            a.once("connect", resolve);
          }),
        ),
        timeout("reconnection", 15000),
      ]);
      a.emit("drop_me");
      await back;
      if (mode === "default") await upgraded(a);
      out.reconnected = a.id !== oldId;
      out.afterReconnect = a.io.engine.transport.name;
      out.echoAfter = await a.timeout(5000).emitWithAck("echo", "again");
      a.disconnect();
      b.disconnect();
      return out;
    },
    { url: flags.url, hash: flags.hash, mode: flags.mode },
  );
  result.console = consoleLines.filter((l) => !l.includes("favicon"));
  console.log(JSON.stringify(result));
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
