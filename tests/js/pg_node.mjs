// The official socket.io 4.8 server on @socket.io/postgres-adapter 0.5 (node-postgres Pool), as one
// member of a mixed Node/aiosio cluster, for tests/interop/test_postgres_cluster.py. Prints one JSON
// object per line for everything it observes; "ready" once listening and its adapter LISTENs.
//
//   node pg_node.mjs --port PORT --prefix PREFIX [--name N] [--table T]
//                    [--dsn postgresql://postgres@127.0.0.1:5432/test] [--heartbeat MS]
//
// createAdapter(pool, {channelPrefix: PREFIX, tableName: T, heartbeatInterval: MS,
// heartbeatTimeout: 2 * MS}).
//
// Sockets (namespace "/"): on connection, socket.data = {name: auth.name, server: N} and the
// socket joins auth.rooms. Every client event is printed ({type: "event"}); the client event
//   relay({to, except, event, args})   broadcasts event(...args) to `to` minus `except`
// Server-side events (io.serverSideEmit from other servers or an emitter):
//   "sse"            printed ({type: "serverSide"}); an ack is answered {server: N, args}
// Binary values are printed, and given in commands, as {"$bin": base64}.
// Commands on stdin, one JSON object per line, each answered {type: "result", id, ...}:
//   {do: "emit", to?, except?, volatile?, event, args}
//   {do: "emitWithAck", to?, except?, timeout, event, args}   -> {err, responses}
//   {do: "fetchSockets", in?}            -> {sockets: [{id, rooms, data, auth, local}]} or {error}
//   {do: "remote", target, action: emit|join|leave|disconnect, event?, args?, rooms?}
//   {do: "serverSideEmit", event, args, ack?}                  -> {err, responses}
//   {do: "socketsJoin" | "socketsLeave", in?, except?, rooms}
//   {do: "disconnectSockets", in?, except?, close?}
//   {do: "serverCount"}                  -> {count}
//   {do: "close"}                        closes the server (its adapter says ADAPTER_CLOSE)
//   {do: "init"}                         sends INITIAL_HEARTBEAT again
import http from "node:http";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { createAdapter } from "@socket.io/postgres-adapter";
import pg from "pg";
import { Server } from "socket.io";

const { values: flags } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    prefix: { type: "string", default: "socket.io" },
    table: { type: "string", default: "socket_io_attachments" },
    name: { type: "string", default: "N" },
    dsn: { type: "string", default: "postgresql://postgres@127.0.0.1:5432/test" },
    heartbeat: { type: "string", default: "5000" },
  },
});
const NAME = flags.name;
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (message) => {
  process.stderr.write(`pg_node: ${message}\n`);
  process.exit(1);
};
// Binary as {"$bin": base64} both ways (printed values and command arguments).
const js = (v) => {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(js);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, js(x)]));
  return v;
};
const fromJs = (v) => {
  if (Array.isArray(v)) return v.map(fromJs);
  if (v && typeof v === "object") {
    if (Object.keys(v).length === 1 && typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJs(x)]));
  }
  return v;
};
const plain = (args) => js(args.filter((a) => typeof a !== "function"));
const errText = (err) => (err ? err.message : null);

// Two connections: the adapter holds one for LISTEN; the other sends every query in order.
const pool = new pg.Pool({ connectionString: flags.dsn, max: 2 });
pool.on("error", (err) => print({ type: "pg-error", message: err.message }));
const heartbeat = Number(flags.heartbeat);
const adapter = createAdapter(pool, {
  channelPrefix: flags.prefix,
  tableName: flags.table,
  heartbeatInterval: heartbeat,
  heartbeatTimeout: 2 * heartbeat,
  errorHandler: (err) => print({ type: "pg-error", message: err.message }),
});

const httpServer = http.createServer();
const io = new Server(httpServer, { adapter, pingInterval: 10000, pingTimeout: 5000 });

io.on("connection", (socket) => {
  const auth = socket.handshake.auth ?? {};
  socket.data = { name: auth.name ?? null, server: NAME };
  if (Array.isArray(auth.rooms) && auth.rooms.length) socket.join(auth.rooms);
  print({ type: "connection", id: socket.id, name: auth.name ?? null, rooms: [...socket.rooms] });
  socket.onAny((event, ...args) => {
    print({ type: "event", id: socket.id, event, args: plain(args) });
  });
  socket.on("relay", (cmd) => {
    let op = io;
    if (cmd.to) op = op.to(cmd.to);
    if (cmd.except) op = op.except(cmd.except);
    op.emit(cmd.event, ...fromJs(cmd.args ?? []));
  });
  socket.on("disconnect", (reason) => print({ type: "disconnect", id: socket.id, reason }));
});

io.on("sse", (...args) => {
  const ack = typeof args.at(-1) === "function" ? args.pop() : null;
  print({ type: "serverSide", event: "sse", args: js(args), acked: ack !== null });
  if (ack) ack({ server: NAME, args });
});

// A BroadcastOperator for {to, except, in, volatile}.
const target = (cmd) => {
  let op = io.of("/");
  const rooms = cmd.to ?? cmd.in;
  if (rooms !== undefined) op = op.in(rooms);
  if (cmd.except !== undefined) op = op.except(cmd.except);
  if (cmd.volatile) op = op.volatile;
  return op;
};

const describe = (socket) => ({
  id: socket.id,
  rooms: [...socket.rooms],
  data: js(socket.data),
  auth: socket.handshake.auth,
  local: io.of("/").sockets.has(socket.id),
});

async function run(cmd) {
  switch (cmd.do) {
    case "emit":
      target(cmd).emit(cmd.event, ...fromJs(cmd.args ?? []));
      return {};
    case "emitWithAck":
      return await new Promise((resolve) => {
        target(cmd)
          .timeout(cmd.timeout ?? 2000)
          .emit(cmd.event, ...fromJs(cmd.args ?? []), (err, responses) =>
            resolve({ err: errText(err), responses: js(responses) }),
          );
      });
    case "fetchSockets": {
      try {
        const sockets = await target(cmd).fetchSockets();
        return { sockets: sockets.map(describe) };
      } catch (err) {
        return { fetchError: err.message };
      }
    }
    case "remote": {
      const sockets = await io.fetchSockets();
      const socket = sockets.find((s) => s.id === cmd.target);
      if (!socket) return { found: false };
      switch (cmd.action) {
        case "emit":
          socket.emit(cmd.event, ...fromJs(cmd.args ?? []));
          return { found: true };
        case "emitWithAck":
          return await new Promise((resolve) => {
            socket
              .timeout(cmd.timeout ?? 2000)
              .emit(cmd.event, ...fromJs(cmd.args ?? []), (err, response) =>
                resolve({ found: true, err: errText(err), response: js(response) }),
              );
          });
        case "join":
          socket.join(cmd.rooms);
          return { found: true };
        case "leave":
          for (const room of cmd.rooms) socket.leave(room);
          return { found: true };
        case "disconnect":
          socket.disconnect(!!cmd.close);
          return { found: true };
        default:
          throw new Error(`unknown remote action ${cmd.action}`);
      }
    }
    case "serverSideEmit":
      if (!cmd.ack) {
        io.serverSideEmit(cmd.event, ...fromJs(cmd.args ?? []));
        return {};
      }
      return await new Promise((resolve) => {
        io.serverSideEmit(cmd.event, ...fromJs(cmd.args ?? []), (err, responses) =>
          resolve({ err: errText(err), responses: js(responses) }),
        );
      });
    case "socketsJoin":
      target(cmd).socketsJoin(cmd.rooms);
      return {};
    case "socketsLeave":
      target(cmd).socketsLeave(cmd.rooms);
      return {};
    case "disconnectSockets":
      target(cmd).disconnectSockets(!!cmd.close);
      return {};
    case "serverCount":
      return { count: await io.of("/").adapter.serverCount() };
    case "close":
      io.close();
      return {};
    case "init":
      io.of("/").adapter.init(); // INITIAL_HEARTBEAT again, as the reference's tests do
      return {};
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd)}`);
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  run(cmd).then(
    (result) => print({ type: "result", id: cmd.id, do: cmd.do, ...result }),
    (err) => print({ type: "result", id: cmd.id, do: cmd.do, error: err.message }),
  );
});
process.stdin.on("end", () => process.exit(0));

// "ready" once the adapter's PubSubClient listens (it sets its pg client after every LISTEN).
const nspAdapter = io.of("/").adapter;
const deadline = Date.now() + 10000;
while (nspAdapter.client.client === undefined) {
  if (Date.now() > deadline) fail("the adapter did not LISTEN within 10 s");
  await new Promise((r) => setTimeout(r, 10));
}
httpServer.listen(Number(flags.port), "127.0.0.1", () =>
  print({ type: "ready", port: httpServer.address().port, uid: nspAdapter.uid }),
);
