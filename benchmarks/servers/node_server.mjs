// Node socket.io 4.8 (the reference) with the benchmark handlers, default options, on
// 127.0.0.1:PORT; with BENCH_PARSER=msgpack, socket.io-msgpack-parser (its documented use:
// new Server({ parser })). Prints "READY <pid> <port>" once listening.
//   node node_server.mjs PORT
import http from "node:http";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

const port = Number(process.argv[2]);
const parser = process.env.BENCH_PARSER ?? "json";
if (parser !== "json" && parser !== "msgpack") throw new Error(`unknown BENCH_PARSER ${parser}`);
const httpServer = http.createServer();
const io = new Server(httpServer, parser === "msgpack" ? { parser: msgpackParser } : {});

io.on("connection", (socket) => {
  socket.on("echo", (data, ack) => {
    if (typeof ack === "function") ack(data);
  });
  socket.on("bcast", (data) => {
    io.emit("bcast", data); // to every connected client, the sender included
  });
});

httpServer.listen(port, "127.0.0.1", 1024, () => {
  process.stdout.write(`READY ${process.pid} ${port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
