// The official socket.io 4.8 server with socket.io-msgpack-parser, for
// tests/interop/test_msgpack_parser.py (aiosio's client with parser="msgpack" against it).
// Prints one JSON object per line (binary values as {"$bin": base64}, Dates as {"$date": ms});
// "ready" once listening.
//
//   node msgpack_server.mjs --port PORT
//
// On "/": "echo"(...args, ack): ack(...args); on connection socket.emit("question", 21, ack)
// with a 5 s timeout, printing {type:"answer", args}; "shout"(...args, ack): io.emit("news",
// ...args), then ack("ok"); each event is printed as {type:"event", event, args}.
import http from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

const { values: flags } = parseArgs({ options: { port: { type: "string" } } });
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const js = (v) => {
  if (v instanceof Date) return { $date: v.getTime() };
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(new Uint8Array(v)).toString("base64") };
  if (Array.isArray(v)) return v.map(js);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, js(x)]));
  return v;
};

const httpServer = http.createServer();
const io = new Server(httpServer, { parser: msgpackParser });
io.on("connection", (socket) => {
  print({ type: "connection", id: socket.id });
  socket.timeout(5000).emit("question", 21, (err, ...args) => {
    print({ type: "answer", error: err ? String(err) : null, args: js(args) });
  });
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    print({ type: "event", event: "echo", args: js(args) });
    if (ack) ack(...args);
  });
  socket.on("shout", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    print({ type: "event", event: "shout", args: js(args) });
    io.emit("news", ...args);
    if (ack) ack("ok");
  });
  socket.on("disconnect", (reason) => print({ type: "disconnect", reason }));
});
httpServer.listen(Number(flags.port), "127.0.0.1", () => print({ type: "ready" }));
