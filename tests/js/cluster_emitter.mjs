// Publishes into a Socket.IO cluster with one of the reference's emitters, for
// tests/interop/test_redis_cluster.py and test_postgres_cluster.py, then exits.
//
//   node cluster_emitter.mjs --adapter redis --key KEY [--nsp /] [--redis redis://127.0.0.1:6379]
//                            --actions JSON
//   node cluster_emitter.mjs --adapter postgres --prefix PREFIX [--nsp /] [--table T] [--dsn URL]
//                            --actions JSON
//
// redis: @socket.io/redis-emitter 5.1 on node-redis 4, which publishes the actions in order on one
// connection. postgres: @socket.io/postgres-emitter 0.1.1 on a node-postgres Pool of one
// connection, so its NOTIFYs go out in order.
//
// --actions is a JSON array run in order:
//   {do: "emit", to?, except?, volatile?, event, args}
//   {do: "socketsJoin" | "socketsLeave", in?, except?, rooms}
//   {do: "disconnectSockets", in?, except?, close?}
//   {do: "serverSideEmit", args}
// Binary values in args are given as {"$bin": base64}.
// Prints {type: "done", actions: N} once every message is published.
import { parseArgs } from "node:util";
import { CLUSTER_OPTIONS, fromJs } from "./cluster_common.mjs";

const { values: flags } = parseArgs({
  options: {
    ...CLUSTER_OPTIONS,
    nsp: { type: "string", default: "/" },
    actions: { type: "string", default: "[]" },
  },
});
const complain = (message) => process.stderr.write(`cluster_emitter (${flags.adapter}): ${message}\n`);

// Each makes the emitter of namespace --nsp, and `published()`, which resolves once everything
// emitted before it is published, and closes the connection.
const EMITTERS = {
  async redis() {
    const { Emitter } = await import("@socket.io/redis-emitter");
    const { createClient } = await import("redis");
    const client = createClient({ url: flags.redis });
    client.on("error", (err) => complain(err.message));
    await client.connect();
    return {
      emitter: new Emitter(client, { key: flags.key }).of(flags.nsp),
      // QUIT is queued after every PUBLISH: they are all sent (and answered) first.
      published: () => client.quit(),
    };
  },

  async postgres() {
    const { Emitter } = await import("@socket.io/postgres-emitter");
    const { default: pg } = await import("pg");
    const pool = new pg.Pool({ connectionString: flags.dsn, max: 1 });
    pool.on("error", (err) => complain(err.message));
    return {
      emitter: new Emitter(pool, flags.nsp, { channelPrefix: flags.prefix, tableName: flags.table }),
      // One connection: the first query runs after every NOTIFY and attachment INSERT queued
      // before it; the second after the NOTIFYs of the attachments (queued when their INSERT
      // returned).
      published: async () => {
        await pool.query("SELECT 1");
        await pool.query("SELECT 1");
        await pool.end();
      },
    };
  },
};

const make = EMITTERS[flags.adapter];
if (!make) {
  complain(`--adapter must be one of ${Object.keys(EMITTERS).join(", ")}`);
  process.exit(1);
}
const { emitter, published } = await make();

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
await published();
process.stdout.write(JSON.stringify({ type: "done", actions: actions.length }) + "\n");
