// A socket.io 2.x server (npm socket.io@2.5.0, installed as "socket.io-v2") for the fault lab's
// version case: it speaks Engine.IO 3, which socket.io 3.x/4.x clients cannot use.
// Prints {"type":"ready","port":N} once listening.
//
//   node lab_server_v2.mjs --port PORT
import http from "node:http";
import { parseArgs } from "node:util";
import ioV2 from "socket.io-v2";

const { values: flags } = parseArgs({ options: { port: { type: "string", default: "0" } } });
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const httpServer = http.createServer();
const io = ioV2(httpServer);
io.on("connection", (socket) => print({ type: "connection", id: socket.id }));
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
httpServer.listen(Number(flags.port), "127.0.0.1", () =>
  print({ type: "ready", port: httpServer.address().port }),
);
