// The official socket.io 4.8 server on one of the reference's cluster adapters, as one member of a
// mixed Node/aiosio cluster, for tests/interop/test_redis_cluster.py, test_redis_streams.py and
// test_postgres_cluster.py. Prints one JSON object per line for everything it observes; "ready"
// once listening and its adapter hears the cluster.
//
//   node cluster_node.mjs --adapter redis --key KEY [--sharded] [--mode dynamic|static|dynamic-private]
//                         [--redis redis://127.0.0.1:6379] [--requests-timeout MS]
//                         [--specific-response] [--streams] [--recovery MS] [--port PORT] [--name N]
//   node cluster_node.mjs --adapter postgres --prefix PREFIX [--table T] [--heartbeat MS]
//                         [--dsn postgresql://postgres@127.0.0.1:5432/test] [--port PORT] [--name N]
//
// redis, @socket.io/redis-adapter 8.3 on node-redis 4 clients: createAdapter(pub, sub, {key,
// requestsTimeout, publishOnSpecificResponseChannel: --specific-response}). --sharded:
// createShardedAdapter(pub, sub, {channelPrefix: key, subscriptionMode: --mode}). --streams:
// @socket.io/redis-streams-adapter 0.3's createAdapter(pub, {streamName: key, channelPrefix: key,
// blockTimeInMs: 1000}). --recovery MS: connectionStateRecovery {maxDisconnectionDuration: MS}.
// postgres, @socket.io/postgres-adapter 0.5 on a node-postgres Pool: createAdapter(pool,
// {channelPrefix: PREFIX, tableName: T, heartbeatInterval: MS, heartbeatTimeout: 2 * MS}).
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
//                                           (postgres: {fetchError} when the adapter rejects)
//   {do: "remote", target, action: emit|emitWithAck|join|leave|disconnect, event?, args?,
//        rooms?, timeout?}                -> {found, err?, response?}
//   {do: "serverSideEmit", event, args, ack?}                  -> {err, responses}
//   {do: "socketsJoin" | "socketsLeave", in?, except?, rooms}
//   {do: "disconnectSockets", in?, except?, close?}
//   {do: "serverCount"}                  -> {count}
//   {do: "allRooms"}                     -> {rooms} (redis, classic mode)
//   {do: "close"}                        closes the server (postgres: its adapter says ADAPTER_CLOSE)
//   {do: "init"}                         sends INITIAL_HEARTBEAT again (postgres)
import http from "node:http";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { CLUSTER_OPTIONS, fromJs, js } from "./cluster_common.mjs";

const { values: flags } = parseArgs({
  options: {
    ...CLUSTER_OPTIONS,
    port: { type: "string", default: "0" },
    name: { type: "string", default: "N" },
    // redis
    sharded: { type: "boolean", default: false },
    mode: { type: "string", default: "dynamic" },
    "requests-timeout": { type: "string", default: "5000" },
    "specific-response": { type: "boolean", default: false },
    streams: { type: "boolean", default: false },
    recovery: { type: "string", default: "" },
    // postgres
    heartbeat: { type: "string", default: "5000" },
  },
});
const NAME = flags.name;
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (message) => {
  process.stderr.write(`cluster_node (${flags.adapter}): ${message}\n`);
  process.exit(1);
};
const plain = (args) => js(args.filter((a) => typeof a !== "function"));
const errText = (err) => (err ? err.message : null);
const waitFor = async (done, what) => {
  const deadline = Date.now() + 10000;
  while (!(await done())) {
    if (Date.now() > deadline) fail(`${what} within 10 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

// What differs between the adapters: how the adapter is made, when it hears the cluster, the
// commands only it has, and the options it gives the Server.
const ADAPTERS = {
  async redis() {
    const { createAdapter, createShardedAdapter } = await import("@socket.io/redis-adapter");
    const { createAdapter: createStreamsAdapter } = await import("@socket.io/redis-streams-adapter");
    const { createClient } = await import("redis");
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
    const recovery = flags.recovery
      ? { connectionStateRecovery: { maxDisconnectionDuration: Number(flags.recovery) } }
      : {};
    return {
      adapter,
      options: recovery,
      // Ready only once this server's own response channel is subscribed (the adapter subscribes
      // without telling when it is done; its channels are subscribed in order on one connection).
      async ready(nspAdapter) {
        const own = flags.sharded || flags.streams
          ? `${flags.key}#/#${nspAdapter.uid}#`
          : `${flags.key}-response#/#${nspAdapter.uid}#`;
        await waitFor(async () => {
          const counts = flags.sharded ? await pub.pubSubShardNumSub(own) : await pub.pubSubNumSub(own);
          return Number(counts[own]) >= 1;
        }, `not subscribed to ${own}`);
      },
      commands: {
        allRooms: async () => ({ rooms: [...(await io.of("/").adapter.allRooms())] }),
      },
    };
  },

  async postgres() {
    const { createAdapter } = await import("@socket.io/postgres-adapter");
    const { default: pg } = await import("pg");
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
    return {
      adapter,
      options: {},
      // Ready once the adapter's PubSubClient listens (it sets its pg client after every LISTEN).
      async ready(nspAdapter) {
        await waitFor(() => nspAdapter.client.client !== undefined, "the adapter did not LISTEN");
      },
      commands: {
        // A rejected fetchSockets is a result the test reads, not a failed command.
        fetchSockets: (cmd) =>
          COMMANDS.fetchSockets(cmd).catch((err) => ({ fetchError: err.message })),
        close: () => {
          io.close();
          return {};
        },
        init: () => {
          io.of("/").adapter.init(); // INITIAL_HEARTBEAT again, as the reference's tests do
          return {};
        },
      },
    };
  },
};

const make = ADAPTERS[flags.adapter];
if (!make) fail(`--adapter must be one of ${Object.keys(ADAPTERS).join(", ")}`);
const kind = await make();

const httpServer = http.createServer();
const io = new Server(httpServer, {
  adapter: kind.adapter,
  pingInterval: 10000,
  pingTimeout: 5000,
  ...kind.options,
});

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

async function remote(cmd) {
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

// The commands every adapter has; an adapter's own commands are added to them, or replace them.
const COMMANDS = {
  emit: (cmd) => {
    target(cmd).emit(cmd.event, ...fromJs(cmd.args ?? []));
    return {};
  },
  emitWithAck: (cmd) =>
    new Promise((resolve) => {
      target(cmd)
        .timeout(cmd.timeout ?? 2000)
        .emit(cmd.event, ...fromJs(cmd.args ?? []), (err, responses) =>
          resolve({ err: errText(err), responses: js(responses) }),
        );
    }),
  fetchSockets: async (cmd) => {
    const sockets = await target(cmd).fetchSockets();
    return { sockets: sockets.map(describe) };
  },
  remote,
  serverSideEmit: (cmd) => {
    if (!cmd.ack) {
      io.serverSideEmit(cmd.event, ...fromJs(cmd.args ?? []));
      return {};
    }
    return new Promise((resolve) => {
      io.serverSideEmit(cmd.event, ...fromJs(cmd.args ?? []), (err, responses) =>
        resolve({ err: errText(err), responses: js(responses) }),
      );
    });
  },
  socketsJoin: (cmd) => {
    target(cmd).socketsJoin(cmd.rooms);
    return {};
  },
  socketsLeave: (cmd) => {
    target(cmd).socketsLeave(cmd.rooms);
    return {};
  },
  disconnectSockets: (cmd) => {
    target(cmd).disconnectSockets(!!cmd.close);
    return {};
  },
  serverCount: async () => ({ count: await io.of("/").adapter.serverCount() }),
};
const commands = { ...COMMANDS, ...kind.commands };

async function run(cmd) {
  const command = Object.hasOwn(commands, cmd.do) ? commands[cmd.do] : null;
  if (!command) throw new Error(`unknown command ${JSON.stringify(cmd)}`);
  return await command(cmd);
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

const nspAdapter = io.of("/").adapter;
await kind.ready(nspAdapter);
httpServer.listen(Number(flags.port), "127.0.0.1", () =>
  print({ type: "ready", port: httpServer.address().port, uid: nspAdapter.uid }),
);
