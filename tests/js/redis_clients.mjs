// Official socket.io-client 4.8 sockets connected to the servers of a cluster, for the cluster
// tests (tests/interop/cluster_harness.py). One process, any number of clients, each with its own
// Manager (Engine.IO connection), no reconnection. Prints one JSON object per line.
//
//   node redis_clients.mjs --client JSON [--client JSON ...]
//     JSON: {name, url, auth?, transports?: ["websocket"], silent?: false, reconnection?: false}
//
// Each client sends auth {...auth, name}. Every event from the server is printed; when the server
// asks for an acknowledgement the client answers ack(name) (never when silent). Binary values are
// printed, and given in commands, as {"$bin": base64}.
// Printed: {type: "connect", client, id, transport, recovered} {type: "connect_error", client, message}
//          {type: "event", client, event, args, acked} {type: "disconnect", client, reason}
//          {type: "ack", client, event, args} (reply to an emit with ack)
// Commands on stdin, one JSON object per line:
//   {do: "emit", client, event, args, ack?}   {do: "disconnect", client}
// Exits when stdin ends.
import readline from "node:readline";
import { parseArgs } from "node:util";
import { Manager } from "socket.io-client";

const { values: flags } = parseArgs({
  options: { client: { type: "string", multiple: true, default: [] } },
});
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
// Binary as {"$bin": base64} (both ways), undefined as null.
const js = (v) => {
  if (v === undefined) return null;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(js);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, js(x)]));
  return v;
};
const fromJs = (v) => {
  if (Array.isArray(v)) return v.map(fromJs);
  if (v && typeof v === "object") {
    if (Object.keys(v).length === 1 && typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJs(x)]));
  }
  return v;
};

const clients = new Map();
for (const raw of flags.client) {
  const spec = JSON.parse(raw);
  const name = spec.name;
  const manager = new Manager(spec.url, {
    transports: spec.transports ?? ["websocket"],
    reconnection: spec.reconnection ?? false,
    reconnectionDelay: 200,
    reconnectionDelayMax: 500,
    timeout: 5000,
  });
  const socket = manager.socket("/", { auth: { ...(spec.auth ?? {}), name } });
  clients.set(name, socket);
  socket.on("connect", () =>
    print({
      type: "connect",
      client: name,
      id: socket.id,
      transport: manager.engine.transport.name,
      recovered: socket.recovered,
    }),
  );
  socket.on("connect_error", (err) => print({ type: "connect_error", client: name, message: err.message }));
  socket.on("disconnect", (reason) => print({ type: "disconnect", client: name, reason }));
  socket.onAny((event, ...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    print({ type: "event", client: name, event, args: js(args), acked: ack !== null });
    if (ack && !spec.silent) ack(name);
  });
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  const socket = clients.get(cmd.client);
  if (!socket) throw new Error(`no client named ${cmd.client}`);
  if (cmd.do === "emit") {
    if (cmd.ack) {
      socket.emit(cmd.event, ...fromJs(cmd.args ?? []), (...reply) =>
        print({ type: "ack", client: cmd.client, event: cmd.event, args: js(reply) }),
      );
    } else {
      socket.emit(cmd.event, ...fromJs(cmd.args ?? []));
    }
  } else if (cmd.do === "disconnect") {
    socket.disconnect();
  } else {
    throw new Error(`unknown command ${line}`);
  }
});
process.stdin.on("end", () => process.exit(0));
