// The reference: a socket.io 4.8 server instrumented by the npm package @socket.io/admin-ui
// (0.5), with the same application as the aiosio server of tests/interop/test_admin_ui.py, so
// that admin_session.mjs can compare what both send to the Admin UI.
//
//   node admin_node_server.mjs --hash BCRYPT_HASH [--mode development|production] [--readonly]
//
// Listens on 127.0.0.1 on a port the OS picks and prints {"type":"ready","port":N}.
// The application: on connection, socket.data.user = "alice" and the socket joins "room1";
// "hello"(n, ack) answers n + 1.
import http from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { instrument } from "@socket.io/admin-ui";

const { values: flags } = parseArgs({
  options: {
    hash: { type: "string" },
    mode: { type: "string", default: "development" },
    readonly: { type: "boolean", default: false },
  },
});

const httpServer = http.createServer();
const io = new Server(httpServer);
instrument(io, {
  auth: { type: "basic", username: "admin", password: flags.hash },
  mode: flags.mode,
  readonly: flags.readonly,
});
io.on("connection", (socket) => {
  socket.data.user = "alice";
  socket.join("room1");
  socket.on("hello", (n, ack) => ack(n + 1));
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ type: "ready", port: httpServer.address().port }) + "\n");
});
