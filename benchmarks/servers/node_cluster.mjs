// Node socket.io 4.8 in cluster mode, as its documentation sets it up
// (https://socket.io/docs/v4/cluster-adapter/): the primary owns the port and hands each new
// connection to a worker with @socket.io/sticky (round-robin, as aiosio serve --workers hands a
// handshake to the next worker in turn), and @socket.io/cluster-adapter carries the broadcasts
// between the workers through the primary. The benchmark handlers of node_server.mjs in each
// worker; BENCH_PARSER as there. Prints "READY <pid> <port>" once every worker is up.
//   node node_cluster.mjs PORT [WORKERS]   (WORKERS: 2 by default)
import cluster from "node:cluster";
import http from "node:http";
import { createAdapter, setupPrimary } from "@socket.io/cluster-adapter";
import { setupMaster, setupWorker } from "@socket.io/sticky";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? 2);
const parser = process.env.BENCH_PARSER ?? "json";
if (parser !== "json" && parser !== "msgpack") throw new Error(`unknown BENCH_PARSER ${parser}`);

if (cluster.isPrimary) {
  const httpServer = http.createServer();
  setupMaster(httpServer, { loadBalancingMethod: "round-robin" });
  setupPrimary();
  cluster.setupPrimary({ serialization: "advanced" }); // the cluster adapter's recommendation
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on("message", (msg) => {
      if (msg === "bench:ready" && ++ready === workers) {
        httpServer.listen(port, "127.0.0.1", 1024, () => {
          process.stdout.write(`READY ${process.pid} ${port}\n`);
        });
      }
    });
  }
  cluster.on("exit", (worker, code) => {
    process.stderr.write(`worker ${worker.process.pid} exited with ${code}\n`);
    process.exit(1);
  });
  for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
} else {
  const httpServer = http.createServer();
  const io = new Server(httpServer, parser === "msgpack" ? { parser: msgpackParser } : {});
  io.adapter(createAdapter());
  setupWorker(io);
  io.on("connection", (socket) => {
    socket.on("echo", (data, ack) => {
      if (typeof ack === "function") ack(data);
    });
    socket.on("bcast", (data) => {
      io.emit("bcast", data); // to every client of every worker, the sender included
    });
  });
  process.send("bench:ready");
}
