// The real Admin UI in Debian's chromium, headless (driven by playwright-core over its executable
// path, as browser_check.mjs does): the UI page is loaded from URL + /admin-ui/ (the server
// serves it, instrument(..., ui_path="/admin-ui/")), logs in with a wrong password, then the
// right one, and shows the server and the live sockets of two socket.io-client clients (A, B);
// unless --readonly, the disconnect button of A's row disconnects A.
//
//   node admin_browser.mjs --url URL --password PW --server-id ID [--readonly]
//                          [--chromium /usr/bin/chromium]
//
// Prints one JSON object: {loginError, server, rows: {A, B}, buttons, reason, remaining}.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";

const { values: flags } = parseArgs({
  options: {
    url: { type: "string" },
    password: { type: "string" },
    "server-id": { type: "string" },
    readonly: { type: "boolean", default: false },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
const TIMEOUT = 20000;
const result = {};

const connect = (url) =>
  new Promise((resolve, reject) => {
    const socket = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });

const a = await connect(flags.url);
const b = await connect(flags.url);
const aGone = new Promise((resolve) => a.once("disconnect", resolve));

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "aiosio-admin-chromium-"));
let context;
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
  page.setDefaultTimeout(TIMEOUT);
  // The page links fonts and icons from public CDNs: offline, they are not needed.
  await page.route(/^https:\/\//, (route) => route.abort());
  await page.goto(`${flags.url}/admin-ui/`);

  const login = async (password) => {
    await page.getByLabel("Server URL").fill(flags.url);
    await page.getByLabel("Username").fill("admin");
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Connect" }).click();
  };
  await login("wrong");
  const error = page.getByText(/invalid credentials/i);
  await error.first().waitFor();
  result.loginError = (await error.first().textContent()).trim();
  await login(flags.password);
  await page.getByRole("button", { name: "Connect" }).waitFor({ state: "hidden" });

  await page.goto(`${flags.url}/admin-ui/#/servers/`);
  const server = page.locator("tbody tr", { hasText: flags["server-id"] });
  await server.waitFor();
  // Its cells: server id, host name, pid, uptime, clients, last heartbeat, status; the pid,
  // uptime and last heartbeat vary (a server in the test's process has been up for minutes).
  const cells = (await server.locator("td").allTextContents()).map((t) => t.trim());
  result.server = [cells[0], cells[1], cells[4], cells[6]];

  await page.goto(`${flags.url}/admin-ui/#/sockets/`);
  const row = (socket) => page.locator("tbody tr", { hasText: socket.id });
  await row(a).waitFor();
  await row(b).waitFor();
  result.rows = {
    A: (await row(a).textContent()).replace(a.id, "<A>").trim(),
    B: (await row(b).textContent()).replace(b.id, "<B>").trim(),
  };
  result.buttons = await row(a).locator("button").count();
  if (!flags.readonly) {
    await row(a).locator("button").first().click();
    result.reason = await Promise.race([
      aGone,
      new Promise((_, reject) => setTimeout(() => reject(new Error("A not disconnected")), TIMEOUT)),
    ]);
    // The click also opened A's page (the row is a link): back to the list, without A.
    await page.evaluate(() => (location.hash = "#/sockets/"));
    await row(b).waitFor();
    await page.waitForFunction((id) => !document.body.innerText.includes(id), a.id);
  }
  result.remaining = { A: a.connected, B: b.connected };
  process.stdout.write(JSON.stringify(result) + "\n");
} catch (err) {
  process.stdout.write(JSON.stringify({ failed: String(err), ...result }) + "\n");
  exitCode = 1;
} finally {
  if (context) await context.close();
  a.close();
  b.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
