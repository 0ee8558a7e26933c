// The official socket.io 4.8 server, for tests/interop/test_client.py (our Python client against
// the reference server). Prints one JSON object per line for everything it observes; binary
// values are printed as {"$bin": base64}. "ready" once listening.
//
//   node node_server.mjs --port PORT [--options JSON] [--drop-acks K]
//                        [--behaviours echo,ask,kick,count,burst,secure,admin]
//
// --options is passed to new Server(...) (pingInterval, pingTimeout, transports,
// connectionStateRecovery, cors, ...). Behaviours (all on by default), on "/" and "/admin":
//   echo    "echo"(...args, ack): ack(...args)
//   ask     "ask"(event, args, ack): socket.timeout(5000).emit(event, ...args) to the client and
//           ack the "ask" with [err, ...the client's reply]; prints {type:"reply"}
//   kick    "kick": socket.disconnect() (the client sees "io server disconnect")
//   count   "count"(id, ack): idempotent, counts distinct ids (prints {type:"count", dup}); the
//           first K acks of the process are dropped (--drop-acks K)
//   burst   "arm"(n): socket.emit("armed", n) now; when the socket disconnects with a
//           recoverable reason, io.to(socket.id).emit("missed", i) for i in 0..n-1
//   secure  namespace "/secure": a middleware refuses auth.token starting with "expired" with
//           next(Error("token expired")) and data {code: "EXPIRED"}
//   admin   namespace "/admin" (same handlers as "/")
// Commands on stdin, one JSON object per line: {"do":"emit","nsp":NSP,"to":ROOM,"event":E,
// "args":[...],"volatile":BOOL} emits to a room (prints {type:"emitted"} once done).
import http from "node:http";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: flags } = parseArgs({
  options: {
    port: { type: "string" },
    options: { type: "string", default: "{}" },
    "drop-acks": { type: "string", default: "0" },
    behaviours: { type: "string", default: "echo,ask,kick,count,burst,secure,admin" },
  },
});
const on = new Set(flags.behaviours.split(","));
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const js = (v) => {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(js);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, js(x)]));
  return v;
};
const fromJs = (v) => {
  if (Array.isArray(v)) return v.map(fromJs);
  if (v && typeof v === "object") {
    if (Object.keys(v).length === 1 && "$bin" in v) return Buffer.from(v.$bin, "base64");
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJs(x)]));
  }
  return v;
};

const httpServer = http.createServer();
const io = new Server(httpServer, JSON.parse(flags.options));
let dropAcks = Number(flags["drop-acks"]);
const seen = new Set();
const RECOVERABLE = new Set(["transport error", "transport close", "forced close", "ping timeout"]);

const setup = (nsp) => {
  nsp.on("connection", (socket) => {
    const base = { nsp: nsp.name, id: socket.id };
    print({
      type: "connection", ...base, conn: socket.conn.id, auth: socket.handshake.auth,
      transport: socket.conn.transport.name, recovered: socket.recovered,
    });
    socket.conn.on("upgrade", (t) => print({ type: "upgrade", ...base, transport: t.name }));
    socket.onAny((event, ...args) => {
      const ack = typeof args.at(-1) === "function" ? args.pop() : null;
      print({ type: "event", ...base, event, args: js(args), ack: ack !== null });
    });
    socket.on("disconnect", (reason) => {
      print({ type: "disconnect", ...base, reason });
      const n = socket.data.burst;
      if (n && RECOVERABLE.has(reason)) {
        for (let i = 0; i < n; i++) io.of(nsp.name).to(socket.id).emit("missed", i);
        print({ type: "burst", ...base, n });
      }
    });
    if (on.has("echo")) {
      socket.on("echo", (...args) => {
        if (typeof args.at(-1) === "function") args.pop()(...args);
      });
    }
    if (on.has("ask")) {
      socket.on("ask", (event, args, ack) => {
        socket.timeout(5000).emit(event, ...args, (err, ...reply) => {
          print({ type: "reply", ...base, event, err: err ? err.message : null, reply: js(reply) });
          ack(err ? err.message : null, ...reply);
        });
      });
    }
    if (on.has("kick")) socket.on("kick", () => socket.disconnect());
    if (on.has("count")) {
      socket.on("count", (id, ack) => {
        const dup = seen.has(id);
        seen.add(id);
        const dropped = dropAcks > 0;
        if (dropped) dropAcks--;
        print({ type: "count", ...base, msg: id, dup, dropped });
        if (!dropped) ack({ id, dup });
      });
    }
    if (on.has("burst")) {
      socket.on("arm", (n) => {
        socket.data.burst = n;
        socket.emit("armed", n);
      });
    }
  });
};

setup(io.of("/"));
if (on.has("admin")) setup(io.of("/admin"));
if (on.has("secure")) {
  const secure = io.of("/secure");
  secure.use((socket, next) => {
    const token = String(socket.handshake.auth.token ?? "");
    print({ type: "middleware", nsp: "/secure", token });
    if (token.startsWith("expired")) {
      next(Object.assign(new Error("token expired"), { data: { code: "EXPIRED" } }));
    } else {
      next();
    }
  });
  setup(secure);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.do === "emit") {
    const to = io.of(cmd.nsp ?? "/").to(cmd.to);
    (cmd.volatile ? to.volatile : to).emit(cmd.event, ...fromJs(cmd.args));
    print({ type: "emitted", nsp: cmd.nsp ?? "/", to: cmd.to, event: cmd.event });
  }
});

httpServer.listen(Number(flags.port), "127.0.0.1", () => print({ type: "ready", port: httpServer.address().port }));
