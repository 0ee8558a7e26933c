// A page as the tutorials write it, in Debian's chromium (headless, playwright-core over its
// executable path): URL serves the page, which loads the client with
// <script src="/socket.io/socket.io.js"> from the Socket.IO server itself (no bundler, no CDN),
// connects with io() and emits "echo" with an acknowledgement.
//
//   node client_page.mjs --url URL [--chromium /usr/bin/chromium]
//
// Prints one JSON object: {io, connected, echo, error, console}: `io` is typeof window.io (the
// tutorial's failure is "io is not defined").
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: flags } = parseArgs({
  options: {
    url: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
const browser = await chromium.launch({
  executablePath: flags.chromium,
  args: ["--no-sandbox", "--disable-gpu"],
});
const result = { console: [] };
try {
  const page = await browser.newPage();
  page.on("console", (message) => result.console.push(message.text()));
  await page.goto(flags.url);
  await page.waitForFunction(() => window.outcome !== undefined, null, { timeout: 20000 });
  Object.assign(result, await page.evaluate(() => window.outcome));
} catch (error) {
  result.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
