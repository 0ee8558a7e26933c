// A socket.io 4.8 server for the fault lab (tests/lab), configured by flags the way a deployment
// configures its server. Prints {"type":"ready","port":N} once listening, then one JSON object per
// line for what the server sees (connections, refusals, engine connection errors).
//
//   node lab_server.mjs --port PORT [--options JSON] [--namespaces /a,/b] [--secure /nsp]
//                       [--tls CERT,KEY]
//
// --options    passed to new Server(...): cors, path, pingInterval, pingTimeout, transports...
// --namespaces namespaces to create besides "/" (a namespace not listed does not exist)
// --secure     a namespace whose middleware refuses auth {"token": "expired..."} with
//              next(Error("token expired")) and data {code: "EXPIRED"}
// --tls        serve https with this certificate and key (PEM files)
// Anything else (a path that is not the Socket.IO path) is answered 404 "Cannot GET", as an
// Express app would.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: flags } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    options: { type: "string", default: "{}" },
    namespaces: { type: "string", default: "" },
    secure: { type: "string", default: "" },
    tls: { type: "string", default: "" },
  },
});
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const notFound = (req, res) => {
  res.writeHead(404, { "Content-Type": "text/html; charset=utf-8" });
  res.end(`<!DOCTYPE html><html><body><pre>Cannot ${req.method} ${req.url}</pre></body></html>`);
};
let httpServer;
if (flags.tls) {
  const [cert, key] = flags.tls.split(",");
  httpServer = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, notFound);
  httpServer.on("tlsClientError", (err) => print({ type: "tls_error", message: err.message }));
} else {
  httpServer = http.createServer(notFound);
}
const io = new Server(httpServer, JSON.parse(flags.options));
io.engine.on("connection_error", (err) =>
  print({ type: "connection_error", code: err.code, message: err.message, context: err.context }),
);

const setup = (nsp) => {
  nsp.on("connection", (socket) => {
    print({ type: "connection", nsp: nsp.name, id: socket.id, transport: socket.conn.transport.name });
    socket.on("disconnect", (reason) => print({ type: "disconnect", nsp: nsp.name, reason }));
  });
};
setup(io.of("/"));
for (const name of flags.namespaces.split(",").filter(Boolean)) setup(io.of(name));
if (flags.secure) {
  const secure = io.of(flags.secure);
  secure.use((socket, next) => {
    const token = String(socket.handshake.auth.token ?? "");
    if (token.startsWith("expired")) {
      print({ type: "refused", nsp: secure.name, token });
      next(Object.assign(new Error("token expired"), { data: { code: "EXPIRED" } }));
    } else {
      next();
    }
  });
  setup(secure);
}

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
httpServer.listen(Number(flags.port), "127.0.0.1", () =>
  print({ type: "ready", port: httpServer.address().port }),
);
