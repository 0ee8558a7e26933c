// The exact bytes @socket.io/redis-adapter 8.3 (classic and sharded) and @socket.io/redis-emitter 5.1
// publish, for tests/core/test_redis_messages.py (its golden messages) and
// tests/interop/test_redis_wire_node.py (which checks those goldens against this script).
//
//   node redis_wire.mjs
//
// No Redis: the adapters and the emitter are given clients that record what they publish (the
// node-redis 4 interface they call). Random ids come from a counter (crypto.randomBytes is
// replaced before anything draws one), so every run prints the same bytes. The adapters run in a
// real socket.io 4.8 server; one stand-in socket (fixed id, handshake and data) is in room "a", so
// the answers that describe or reach sockets are deterministic too. Requests from "another server"
// are fed to the adapters as Redis would deliver them, and their answers recorded.
//
// Prints one JSON object per published message: {name, channel, hex}.
import crypto from "node:crypto";
import { createRequire } from "node:module";

let seed = 0;
crypto.randomBytes = (size) => {
  seed += 1;
  return Buffer.from(Array.from({ length: size }, (_, i) => (seed * 7 + i) % 256));
};

const require = createRequire(import.meta.url);
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");
const { Server } = require("socket.io");
const notepack = require("notepack.io");

let label = "?";
const print = (channel, message) => {
  const bytes = Buffer.isBuffer(message) ? message : Buffer.from(message);
  process.stdout.write(
    JSON.stringify({ name: label, channel: String(channel), hex: bytes.toString("hex") }) + "\n",
  );
};
const noop = () => {};
// Two servers in the cluster: every request expects one answer.
const recorder = () => ({
  on: noop,
  off: noop,
  pSubscribe: noop,
  subscribe: noop,
  sSubscribe: noop,
  sUnsubscribe: noop,
  publish: (channel, message) => (print(channel, message), Promise.resolve(1)),
  sPublish: (channel, message) => (print(channel, message), Promise.resolve(1)),
  sendCommand: (args) => Promise.resolve([args[2], 2]),
});

const HANDSHAKE = {
  headers: { host: "example.com" },
  time: "Mon Dec 07 2026 06:00:00 GMT+0000 (Coordinated Universal Time)",
  address: "::1",
  xdomain: false,
  secure: false,
  issued: 1796623200000,
  url: "/socket.io/?EIO=4&transport=websocket",
  query: { EIO: "4", transport: "websocket" },
  auth: { name: "n1" },
};

// A socket of this server in room "a": what fetchSockets describes and broadcasts reach.
const standIn = (nsp) => {
  const id = "AAAAAAAAAAAAAAAAAAAA";
  const socket = {
    id,
    handshake: HANDSHAKE,
    rooms: new Set([id, "a"]),
    data: { name: "n1" },
    acks: new Map(),
    client: { writeToEngine: noop },
    join: noop,
    leave: noop,
    disconnect: noop,
  };
  nsp.sockets.set(id, socket);
  nsp.adapter.addAll(id, new Set([id, "a"]));
  return socket;
};

const step = async (name, action) => {
  label = name;
  await action();
  await new Promise((resolve) => setImmediate(resolve));
};

// -- classic (createAdapter) ------------------------------------------------------------------

{
  const io = new Server({ adapter: createAdapter(recorder(), recorder(), { key: "k" }) });
  const nsp = io.of("/");
  const adapter = nsp.adapter;
  const socket = standIn(nsp);
  nsp.on("sse", (...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    if (ack) ack({ answer: args });
  });
  const other = "OTHER1";
  const request = (message) =>
    adapter.onrequest(Buffer.from(adapter.requestChannel), Buffer.from(message));

  await step("classic broadcast", () => io.emit("ev", 1, "two", { three: [3] }, null));
  await step("classic broadcast to a room", () => io.to("a").except("b").emit("ev", "x"));
  await step("classic broadcast volatile binary", () =>
    io.volatile.emit("bin", Buffer.from([1, 2, 3]), { nested: Buffer.from([4]) }),
  );
  await step("classic broadcast uncompressed", () => io.compress(false).emit("ev"));
  await step("classic broadcast with acks", () => {
    io.timeout(1000).emit("ask", 1, noop);
  });
  await step("classic remote join", () => io.in("a").except("b").socketsJoin(["r1", "r2"]));
  await step("classic remote leave", () => io.in("a").socketsLeave("r1"));
  await step("classic remote disconnect", () => io.in("a").disconnectSockets(true));
  await step("classic server-side emit", () => io.serverSideEmit("sse", 1, { k: "v" }));
  await step("classic server-side emit with ack", () => {
    io.serverSideEmit("sse", 2, noop);
  });
  await step("classic remote fetch", () => {
    io.in("a").except("b").fetchSockets().catch(noop);
  });
  await step("classic all rooms", () => {
    adapter.allRooms().catch(noop);
  });

  // Requests from another server, and this one's answers.
  await step("classic sockets response", () =>
    request(JSON.stringify({ uid: other, requestId: "req001", type: 0, rooms: ["a"] })),
  );
  await step("classic all rooms response", () =>
    request(JSON.stringify({ uid: other, requestId: "req002", type: 1 })),
  );
  await step("classic remote fetch response", () =>
    request(
      JSON.stringify({
        uid: other,
        requestId: "req003",
        type: 5,
        opts: { rooms: ["a"], except: [] },
      }),
    ),
  );
  await step("classic server-side emit response", () =>
    request(JSON.stringify({ uid: other, requestId: "req004", type: 6, data: ["sse", 5] })),
  );
  await step("classic broadcast client count", () =>
    request(
      notepack.encode({
        uid: other,
        requestId: "req005",
        type: 7,
        packet: { type: 2, data: ["ask", 1], nsp: "/" },
        opts: { rooms: ["a"], except: [], flags: { timeout: 1000 } },
      }),
    ),
  );
  await step("classic broadcast ack", () => {
    // The last ack the stand-in socket waits for: the other server's broadcast.
    [...socket.acks.values()].at(-1)({ reply: Buffer.from([9]) });
  });
}

// -- sharded (createShardedAdapter) -----------------------------------------------------------

{
  const io = new Server({
    adapter: createShardedAdapter(recorder(), recorder(), { channelPrefix: "k" }),
  });
  const nsp = io.of("/");
  const adapter = nsp.adapter;
  const socket = standIn(nsp);
  nsp.on("sse", (...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    if (ack) ack({ answer: args });
  });
  const other = "0123456789abcdef";
  const feed = (message) =>
    adapter.onRawMessage(
      Buffer.isBuffer(message) ? message : Buffer.from(message),
      Buffer.from(adapter.channel),
    );
  const respond = (message) =>
    adapter.onRawMessage(Buffer.from(message), Buffer.from(adapter.responseChannel));

  await step("sharded broadcast", () => io.emit("ev", 1, "two", { three: [3] }, null));
  await step("sharded broadcast to a room", () => io.to("a").except("b").emit("ev", "x"));
  await step("sharded broadcast volatile binary", () =>
    io.volatile.compress(false).emit("bin", Buffer.from([1, 2, 3])),
  );
  await step("sharded broadcast with acks", () => {
    io.timeout(1000).emit("ask", 1, noop);
  });
  await step("sharded sockets join", () => io.in("a").except("b").socketsJoin(["r1", "r2"]));
  await step("sharded sockets leave", () => io.in("a").socketsLeave("r1"));
  await step("sharded disconnect sockets", () => io.in("a").disconnectSockets(true));
  await step("sharded fetch sockets", () => {
    io.in("a").fetchSockets().catch(noop);
  });
  await step("sharded server-side emit", () => io.serverSideEmit("sse", 1, { k: "v" }));
  await step("sharded server-side emit with ack", () => {
    io.serverSideEmit("sse", 2, noop);
  });

  // Messages from another server, and this one's answers.
  const envelope = (type, data) => ({ type, data, uid: other, nsp: "/" });
  await step("sharded fetch sockets response", () =>
    feed(
      JSON.stringify(
        envelope(7, { opts: { rooms: ["a"], except: [], flags: {} }, requestId: "f00d" }),
      ),
    ),
  );
  await step("sharded server-side emit response", () =>
    feed(JSON.stringify(envelope(9, { requestId: "5e5e", packet: ["sse", 5] }))),
  );
  await step("sharded broadcast client count", () =>
    feed(
      JSON.stringify(
        envelope(3, {
          packet: { type: 2, data: ["ask", 1] },
          requestId: "acc0",
          opts: { rooms: ["a"], except: [], flags: { timeout: 1000 } },
        }),
      ),
    ),
  );
  await step("sharded broadcast ack", () => {
    // The last ack the stand-in socket waits for: the other server's broadcast.
    [...socket.acks.values()].at(-1)({ reply: Buffer.from([9]) });
  });
  // Responses to this server: nothing is published; fed so the script fails if Node refuses them.
  respond(JSON.stringify({ type: 11, data: { requestId: "x", clientCount: 1 }, uid: other, nsp: "/" }));
  // Last, so that the ids drawn above stay what they were: the request carries the call's flags
  // whole (ClusterAdapter's encodeOptions), its timeout included.
  await step("sharded fetch sockets with a timeout", () => {
    io.in("a").timeout(1000).fetchSockets().catch(noop);
  });
}

// -- the emitter (@socket.io/redis-emitter) ---------------------------------------------------

{
  const emitter = new Emitter(recorder(), { key: "k" });
  await step("emitter broadcast", () => emitter.emit("ev", 1, { two: [2] }));
  await step("emitter broadcast to a room", () =>
    emitter.to("a").except("b").volatile.emit("ev", Buffer.from([1])),
  );
  await step("emitter sockets join", () => emitter.in("a").socketsJoin(["r1"]));
  await step("emitter sockets leave", () => emitter.in("a").except("b").socketsLeave("r1"));
  await step("emitter disconnect sockets", () => emitter.in("a").disconnectSockets(true));
  await step("emitter server-side emit", () => emitter.serverSideEmit("sse", 1));
}
process.exit(0);
