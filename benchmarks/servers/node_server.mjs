// Node socket.io 4.8 (the reference) with the benchmark handlers, default options, on
// 127.0.0.1:PORT. Prints "READY <pid> <port>" once listening.
//   node node_server.mjs PORT
import http from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
const httpServer = http.createServer();
const io = new Server(httpServer);

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
