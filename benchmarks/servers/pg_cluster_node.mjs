// One socket.io 4.8 server of a 2-server @socket.io/postgres-adapter cluster, for
// benchmarks/cluster_postgres.py (the same behaviour as pg_cluster_aiosio.py). The packages are
// tests/js's.
//
//   node pg_cluster_node.mjs PORT PREFIX DSN
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import http from "node:http";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "tests", "js", "package.json"));
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/postgres-adapter");
const pg = require("pg");

const [port, prefix, dsn] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: dsn, max: 2 });
const httpServer = http.createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(pool, {
    channelPrefix: prefix,
    errorHandler: (err) => console.error("postgres adapter:", err.message),
  }),
});

io.on("connection", (socket) => {
  socket.on("burst", async (n, interval, ack) => {
    for (let i = 0; i < n; i++) {
      io.emit("tick", i, Date.now() / 1000);
      await new Promise((r) => setTimeout(r, interval * 1000));
    }
    ack(n);
  });
  socket.on("count", async (ack) => ack(await io.of("/").adapter.serverCount()));
});

const adapter = io.of("/").adapter;
while (adapter.client.client === undefined) await new Promise((r) => setTimeout(r, 10));
// socket.io 4.8.1 never calls adapter.init(): without it, an idle server sends no heartbeat and
// the others never count it (the reference's own tests call it too).
adapter.init();
httpServer.listen(Number(port), "127.0.0.1", () => console.log("listening"));
