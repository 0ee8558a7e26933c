// The reference: a socket.io 4.8 server instrumented by the npm package @socket.io/admin-ui
// (0.5), with the same application as the aiosio server of tests/interop/test_admin_ui.py, so
// that admin_session.mjs can compare what both send to the Admin UI.
//
//   node admin_node_server.mjs --hash BCRYPT_HASH [--mode development|production] [--readonly]
//                              [--server-id ID] [--ui DIR]
//
// Listens on 127.0.0.1 on a port the OS picks and prints {"type":"ready","port":N}. With --ui,
// also serves the UI's files (the package's ui/dist) under /admin-ui/, as the aiosio server
// does with instrument(..., ui_path="/admin-ui/"), for admin_browser.mjs.
// The application: on connection, socket.data.user = "alice" and the socket joins "room1";
// "hello"(n, ack) answers n + 1.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { instrument } from "@socket.io/admin-ui";

const { values: flags } = parseArgs({
  options: {
    hash: { type: "string" },
    mode: { type: "string", default: "development" },
    readonly: { type: "boolean", default: false },
    "server-id": { type: "string" },
    ui: { type: "string" },
  },
});

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml" };
const serveUi = (req, res) => {
  const name = req.url.slice("/admin-ui/".length).split(/[?#]/)[0] || "index.html";
  const file = path.join(flags.ui, path.normalize(name).replace(/^(\.\.[/\\])+/, ""));
  fs.readFile(file, (err, body) => {
    res.writeHead(err ? 404 : 200, { "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    res.end(err ? "" : body);
  });
};
const httpServer = http.createServer((req, res) => {
  if (flags.ui && req.url.startsWith("/admin-ui/")) serveUi(req, res);
});
const io = new Server(httpServer);
instrument(io, {
  auth: { type: "basic", username: "admin", password: flags.hash },
  mode: flags.mode,
  readonly: flags.readonly,
  serverId: flags["server-id"],
});
io.on("connection", (socket) => {
  socket.data.user = "alice";
  socket.join("room1");
  socket.on("hello", (n, ack) => ack(n + 1));
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ type: "ready", port: httpServer.address().port }) + "\n");
});
