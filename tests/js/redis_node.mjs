// The official socket.io 4.8 server on @socket.io/redis-adapter 8.3 (node-redis 4 clients), as one
// member of a mixed Node/aiosio cluster, for tests/interop/test_redis_cluster.py. Prints one JSON
// object per line for everything it observes; "ready" once listening and subscribed.
//
//   node redis_node.mjs --port PORT --key KEY [--sharded] [--mode dynamic|static|dynamic-private]
//                       [--name N] [--redis redis://127.0.0.1:6379] [--requests-timeout MS]
//                       [--specific-response] [--streams] [--recovery MS]
//
// Classic mode: createAdapter(pub, sub, {key, requestsTimeout, publishOnSpecificResponseChannel:
// --specific-response}). --sharded: createShardedAdapter(pub, sub, {channelPrefix: key,
// subscriptionMode: --mode}). --streams: @socket.io/redis-streams-adapter 0.3's
// createAdapter(pub, {streamName: key, channelPrefix: key, blockTimeInMs: 1000}).
// --recovery MS: connectionStateRecovery {maxDisconnectionDuration: MS}.
//
// Sockets (namespace "/"): on connection, socket.data = {name: auth.name, server: N} and the
// socket joins auth.rooms. Every client event is printed ({type: "event"}); the client event
//   relay({to, except, event, args})   broadcasts event(...args) to `to` minus `except`
// Server-side events (io.serverSideEmit from other servers or an emitter):
//   "sse"            printed ({type: "serverSide"}); an ack is answered {server: N, args}
//   anything else    not listened to (no answer)
// Binary values are printed, and given in commands, as {"$bin": base64}.
// Commands on stdin, one JSON object per line, each answered {type: "result", id, ...}:
//   {do: "emit", to?, except?, volatile?, event, args}
//   {do: "emitWithAck", to?, except?, timeout, event, args}   -> {err, responses}
//   {do: "fetchSockets", in?}            -> {sockets: [{id, rooms, data, auth, local}]}
//   {do: "remote", target, action: emit|emitWithAck|join|leave|disconnect, event?, args?,
//        rooms?, timeout?}                -> {found, err?, response?}
//   {do: "serverSideEmit", event, args, ack?}                  -> {err, responses}
//   {do: "socketsJoin" | "socketsLeave", in?, except?, rooms}
//   {do: "disconnectSockets", in?, except?, close?}
//   {do: "serverCount"}                  -> {count}
//   {do: "allRooms"}                     -> {rooms} (classic mode)
import http from "node:http";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const { values: flags } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    key: { type: "string", default: "socket.io" },
    sharded: { type: "boolean", default: false },
    mode: { type: "string", default: "dynamic" },
    name: { type: "string", default: "N" },
    redis: { type: "string", default: "redis://127.0.0.1:6379" },
    "requests-timeout": { type: "string", default: "5000" },
    "specific-response": { type: "boolean", default: false },
    streams: { type: "boolean", default: false },
    recovery: { type: "string", default: "" },
  },
});
const NAME = flags.name;
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (message) => {
  process.stderr.write(`redis_node: ${message}\n`);
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

const pub = createClient({ url: flags.redis });
const sub = pub.duplicate();
pub.on("error", (err) => print({ type: "redis-error", client: "pub", message: err.message }));
sub.on("error", (err) => print({ type: "redis-error", client: "sub", message: err.message }));
await Promise.all([pub.connect(), sub.connect()]);

const adapter = flags.streams
  ? createStreamsAdapter(pub, { streamName: flags.key, channelPrefix: flags.key, blockTimeInMs: 1000 })
  : flags.sharded
  ? createShardedAdapter(pub, sub, { channelPrefix: flags.key, subscriptionMode: flags.mode })
  : createAdapter(pub, sub, {
      key: flags.key,
      requestsTimeout: Number(flags["requests-timeout"]),
      publishOnSpecificResponseChannel: flags["specific-response"],
    });

const httpServer = http.createServer();
const recovery = flags.recovery ? { connectionStateRecovery: { maxDisconnectionDuration: Number(flags.recovery) } } : {};
const io = new Server(httpServer, { adapter, pingInterval: 10000, pingTimeout: 5000, ...recovery });

io.on("connection", (socket) => {
  const auth = socket.handshake.auth ?? {};
  socket.data = { name: auth.name ?? null, server: NAME };
  if (Array.isArray(auth.rooms) && auth.rooms.length) socket.join(auth.rooms);
  print({
    type: "connection",
    id: socket.id,
    name: auth.name ?? null,
    rooms: [...socket.rooms],
    recovered: socket.recovered,
  });
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
      const sockets = await target(cmd).fetchSockets();
      return { sockets: sockets.map(describe) };
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
    case "allRooms":
      return { rooms: [...(await io.of("/").adapter.allRooms())] };
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

// "ready" only once this server's own response channel is subscribed (the adapter subscribes
// without telling when it is done; its channels are subscribed in order on one connection).
const nspAdapter = io.of("/").adapter;
const own = flags.sharded || flags.streams
  ? `${flags.key}#/#${nspAdapter.uid}#`
  : `${flags.key}-response#/#${nspAdapter.uid}#`;
const deadline = Date.now() + 10000;
for (;;) {
  const counts = flags.sharded ? await pub.pubSubShardNumSub(own) : await pub.pubSubNumSub(own);
  if (Number(counts[own]) >= 1) break;
  if (Date.now() > deadline) fail(`not subscribed to ${own} within 10 s`);
  await new Promise((r) => setTimeout(r, 10));
}
httpServer.listen(Number(flags.port), "127.0.0.1", () =>
  print({ type: "ready", port: httpServer.address().port, uid: nspAdapter.uid }),
);
