// One Node socket.io 4.8 server of a 2-server cluster on an npm cluster adapter, with the
// benchmark handlers, on 127.0.0.1:PORT (run.py's cluster scenarios start two, A and B).
//
//   node node_cluster_adapter.mjs PORT ADAPTER URL KEY
//
// ADAPTER: redis (@socket.io/redis-adapter createAdapter), redis-sharded (createShardedAdapter),
// redis-streams (@socket.io/redis-streams-adapter) or postgres (@socket.io/postgres-adapter on a
// pg Pool), each with its defaults but the names: KEY is the Redis key, the stream's name and
// channel prefix, or the Postgres channel prefix. Prints "READY <pid> <port>" once listening and
// once the adapter's subscriptions are active.
import http from "node:http";
import { createAdapter as createPostgresAdapter } from "@socket.io/postgres-adapter";
import { createAdapter as createRedisAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import pg from "pg";
import { createClient } from "redis";
import { Server } from "socket.io";

const [port, kind, url, key] = process.argv.slice(2);
const fail = (message) => {
  process.stderr.write(`node_cluster_adapter: ${message}\n`);
  process.exit(1);
};

async function makeAdapter() {
  if (kind === "postgres") {
    const pool = new pg.Pool({ connectionString: url });
    return createPostgresAdapter(pool, { channelPrefix: key });
  }
  const pub = createClient({ url });
  pub.on("error", (err) => process.stderr.write(`redis: ${err.message}\n`));
  if (kind === "redis-streams") {
    await pub.connect();
    return createStreamsAdapter(pub, { streamName: key, channelPrefix: key });
  }
  const sub = pub.duplicate();
  sub.on("error", (err) => process.stderr.write(`redis: ${err.message}\n`));
  await Promise.all([pub.connect(), sub.connect()]);
  if (kind === "redis") return createRedisAdapter(pub, sub, { key });
  if (kind === "redis-sharded") return createShardedAdapter(pub, sub, { channelPrefix: key });
  fail(`unknown adapter ${kind}: redis, redis-sharded, redis-streams or postgres`);
}

const httpServer = http.createServer();
const io = new Server(httpServer, { adapter: await makeAdapter() });

io.on("connection", (socket) => {
  socket.on("bcast", (data) => {
    io.emit("bcast", data); // to every client of every server, the sender included
  });
});

// The subscriptions: the adapters subscribe when the namespace is created (above); give their
// first round trips time to complete, then check with serverCount that the other server is seen
// once run.py starts it (the caller waits for both READY lines before loading).
await new Promise((resolve) => setTimeout(resolve, 200));
httpServer.listen(Number(port), "127.0.0.1", 1024, () => {
  process.stdout.write(`READY ${process.pid} ${port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
