// A socket.io 4.8 server on @socket.io/redis-adapter 8.3, instrumented by the npm package
// @socket.io/admin-ui 0.5: the Node member of a mixed Node/aiosio cluster in one Admin UI, for
// tests/interop/test_admin_cluster.py.
//
//   node admin_redis_node.mjs --key KEY --server-id ID [--sharded] [--hash BCRYPT_HASH]
//                             [--redis redis://127.0.0.1:6379]
//
// Classic mode: createAdapter(pub, sub, {key: KEY}); --sharded: createShardedAdapter(pub, sub,
// {channelPrefix: KEY}). The admin namespace "/admin" has no authentication (auth: false); with
// --hash, basic authentication ("admin" and the password of that hash) and the reference's
// RedisStore (prefix KEY-admin) to keep the sessions.
// The application (namespace "/"): on connection, socket.data.server = ID and the socket joins
// "home-ID". Prints {"type":"ready","port":N} once listening and subscribed, then
// {"type":"rooms","id","rooms"} for each room change of a socket of "/" and
// {"type":"disconnect","id","reason"} for each disconnection.
import http from "node:http";
import { parseArgs } from "node:util";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { instrument, RedisStore } from "@socket.io/admin-ui";
import { createClient } from "redis";
import { Server } from "socket.io";

const { values: flags } = parseArgs({
  options: {
    key: { type: "string" },
    "server-id": { type: "string" },
    sharded: { type: "boolean", default: false },
    hash: { type: "string" },
    redis: { type: "string", default: "redis://127.0.0.1:6379" },
  },
});
const ID = flags["server-id"];
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (message) => {
  process.stderr.write(`admin_redis_node: ${message}\n`);
  process.exit(1);
};

const pub = createClient({ url: flags.redis });
const sub = pub.duplicate();
pub.on("error", (err) => print({ type: "redis-error", client: "pub", message: err.message }));
sub.on("error", (err) => print({ type: "redis-error", client: "sub", message: err.message }));
await Promise.all([pub.connect(), sub.connect()]);

const adapter = flags.sharded
  ? createShardedAdapter(pub, sub, { channelPrefix: flags.key })
  : createAdapter(pub, sub, { key: flags.key });
const httpServer = http.createServer();
const io = new Server(httpServer, { adapter });
let auth = false;
let store;
if (flags.hash) {
  // The reference's RedisStore calls the callback API of node-redis 3 (and ioredis):
  // exists(key, cb) and multi().set(key, true).expire(key, s).exec(). node-redis 4's legacy
  // mode refuses the boolean, so the store is given that API over a node-redis 4 client,
  // values as text as node-redis 3 writes them.
  const client = pub.duplicate();
  await client.connect();
  const v3 = {
    exists: (key, cb) => client.exists(key).then((n) => cb(null, n), cb),
    multi() {
      const commands = [];
      const multi = {
        set: (key, value) => (commands.push(["SET", key, String(value)]), multi),
        expire: (key, seconds) => (commands.push(["EXPIRE", key, String(seconds)]), multi),
        exec: (cb) =>
          Promise.all(commands.map((c) => client.sendCommand(c))).then(
            (r) => cb?.(null, r),
            (err) => (cb ? cb(err) : print({ type: "redis-error", client: "store", message: err.message })),
          ),
      };
      return multi;
    },
  };
  auth = { type: "basic", username: "admin", password: flags.hash };
  store = new RedisStore(v3, { prefix: `${flags.key}-admin` });
}
instrument(io, { auth, ...(store ? { store } : {}), serverId: ID, mode: "development" });

io.on("connection", (socket) => {
  socket.data.server = ID;
  socket.join(`home-${ID}`);
  socket.on("disconnect", (reason) => print({ type: "disconnect", id: socket.id, reason }));
});
const main = io.of("/").adapter;
const rooms = (room, id) => {
  if (room !== id) print({ type: "rooms", id, rooms: [...(main.sids.get(id) ?? [])] });
};
main.on("join-room", rooms);
main.on("leave-room", (room, id) => process.nextTick(rooms, room, id));

// "ready" once both namespaces' own channels are subscribed (the adapter subscribes without
// telling when it is done).
const deadline = Date.now() + 10000;
for (const nsp of ["/", "/admin"]) {
  const uid = io.of(nsp).adapter.uid;
  const own = flags.sharded ? `${flags.key}#${nsp}#${uid}#` : `${flags.key}-response#${nsp}#${uid}#`;
  for (;;) {
    const counts = flags.sharded ? await pub.pubSubShardNumSub(own) : await pub.pubSubNumSub(own);
    if (Number(counts[own]) >= 1) break;
    if (Date.now() > deadline) fail(`not subscribed to ${own} within 10 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
httpServer.listen(0, "127.0.0.1", () => print({ type: "ready", port: httpServer.address().port }));
