// Publishes into a Socket.IO cluster with the official @socket.io/redis-emitter 5.1 (node-redis 4),
// for tests/interop/test_redis_cluster.py, then exits.
//
//   node redis_emitter.mjs --key KEY [--nsp /] [--redis redis://127.0.0.1:6379] --actions JSON
//
// --actions is a JSON array run in order (the emitter publishes them in that order on one
// connection):
//   {do: "emit", to?, except?, volatile?, event, args}
//   {do: "socketsJoin" | "socketsLeave", in?, except?, rooms}
//   {do: "disconnectSockets", in?, except?, close?}
//   {do: "serverSideEmit", args}
// Prints {type: "done", actions: N} once every message is published.
import { parseArgs } from "node:util";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";

const { values: flags } = parseArgs({
  options: {
    key: { type: "string", default: "socket.io" },
    nsp: { type: "string", default: "/" },
    redis: { type: "string", default: "redis://127.0.0.1:6379" },
    actions: { type: "string", default: "[]" },
  },
});

const client = createClient({ url: flags.redis });
client.on("error", (err) => process.stderr.write(`redis_emitter: ${err.message}\n`));
await client.connect();
const emitter = new Emitter(client, { key: flags.key }).of(flags.nsp);

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
      target(action).emit(action.event, ...(action.args ?? []));
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
      emitter.serverSideEmit(...(action.args ?? []));
      break;
    default:
      throw new Error(`unknown action ${JSON.stringify(action)}`);
  }
}
// QUIT is queued after every PUBLISH: they are all sent (and answered) first.
await client.quit();
process.stdout.write(JSON.stringify({ type: "done", actions: actions.length }) + "\n");
