// The official socket.io 4.8 server for the client's compression and Engine.IO events tests
// (tests/interop/test_client_compress.py, tests/interop/test_client_engine_events.py). Prints
// one JSON object per line; "ready" once listening.
//
//   node engine_server.mjs --port PORT [--options JSON]
//
// --options is passed to new Server(...) (perMessageDeflate, transports, pingInterval, ...).
// On "/":
//   "echo"(...args[, ack])         ack(...args)
//   "push"(compress, text, ack)    socket.compress(compress).emit("pushed", text), then ack()
//   "close"                        socket.conn.close(): the Engine.IO session ends
// Every event is printed as {type: "event", event, size} (size: the first argument's length).
import http from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: flags } = parseArgs({
  options: {
    port: { type: "string" },
    options: { type: "string", default: "{}" },
  },
});
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const httpServer = http.createServer();
const io = new Server(httpServer, JSON.parse(flags.options));

io.on("connection", (socket) => {
  print({ type: "connection", id: socket.id, transport: socket.conn.transport.name });
  socket.conn.on("upgrade", (t) => print({ type: "upgrade", transport: t.name }));
  socket.onAny((event, ...args) => {
    const first = args[0];
    print({ type: "event", event, size: typeof first === "string" ? first.length : null });
  });
  socket.on("echo", (...args) => {
    if (typeof args.at(-1) === "function") args.pop()(...args);
  });
  socket.on("push", (compress, text, ack) => {
    socket.compress(compress).emit("pushed", text);
    ack();
  });
  socket.on("close", () => socket.conn.close());
  socket.on("disconnect", (reason) => print({ type: "disconnect", reason }));
});

httpServer.listen(Number(flags.port), "127.0.0.1", () =>
  print({ type: "ready", port: httpServer.address().port }),
);
