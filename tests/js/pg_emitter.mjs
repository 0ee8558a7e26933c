// Publishes into a Socket.IO cluster with the official @socket.io/postgres-emitter 0.1.1 (node-postgres
// Pool of one connection, so its NOTIFYs go out in order), for tests/interop/test_postgres_cluster.py,
// then exits.
//
//   node pg_emitter.mjs --prefix PREFIX [--nsp /] [--table T] [--dsn URL] --actions JSON
//
// --actions is a JSON array run in order:
//   {do: "emit", to?, except?, volatile?, event, args}
//   {do: "socketsJoin" | "socketsLeave", in?, except?, rooms}
//   {do: "disconnectSockets", in?, except?, close?}
//   {do: "serverSideEmit", args}
// Binary values in args are given as {"$bin": base64}.
// Prints {type: "done", actions: N} once every message is published.
import { parseArgs } from "node:util";
import { Emitter } from "@socket.io/postgres-emitter";
import pg from "pg";

const { values: flags } = parseArgs({
  options: {
    prefix: { type: "string", default: "socket.io" },
    nsp: { type: "string", default: "/" },
    table: { type: "string", default: "socket_io_attachments" },
    dsn: { type: "string", default: "postgresql://postgres@127.0.0.1:5432/test" },
    actions: { type: "string", default: "[]" },
  },
});

const fromJs = (v) => {
  if (Array.isArray(v)) return v.map(fromJs);
  if (v && typeof v === "object") {
    if (Object.keys(v).length === 1 && typeof v.$bin === "string") return Buffer.from(v.$bin, "base64");
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJs(x)]));
  }
  return v;
};

const pool = new pg.Pool({ connectionString: flags.dsn, max: 1 });
pool.on("error", (err) => process.stderr.write(`pg_emitter: ${err.message}\n`));
const emitter = new Emitter(pool, flags.nsp, { channelPrefix: flags.prefix, tableName: flags.table });

const target = (action) => {
  let op = emitter;
  const rooms = action.to ?? action.in;
  if (rooms !== undefined) op = op.in(rooms);
  if (action.except !== undefined) op = op.except(action.except);
  if (action.volatile) op = op.volatile;
  return op;
};

const actions = JSON.parse(flags.actions);
for (const action of actions) {
  switch (action.do) {
    case "emit":
      target(action).emit(action.event, ...fromJs(action.args ?? []));
      break;
    case "socketsJoin":
      target(action).socketsJoin(action.rooms);
      break;
    case "socketsLeave":
      target(action).socketsLeave(action.rooms);
      break;
    case "disconnectSockets":
      target(action).disconnectSockets(!!action.close);
      break;
    case "serverSideEmit":
      emitter.serverSideEmit(...fromJs(action.args ?? []));
      break;
    default:
      throw new Error(`unknown action ${JSON.stringify(action)}`);
  }
}
// One connection: the first query runs after every NOTIFY and attachment INSERT queued before it;
// the second after the NOTIFYs of the attachments (queued when their INSERT returned).
await pool.query("SELECT 1");
await pool.query("SELECT 1");
await pool.end();
process.stdout.write(JSON.stringify({ type: "done", actions: actions.length }) + "\n");
