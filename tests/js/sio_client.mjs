// Drives the official socket.io-client (4.x, or 2.x with --client v2) against a server and prints
// one JSON object per line for everything it observes. Used by
// tests/interop/test_socketio_client.py.
//
//   node sio_client.mjs --url http://127.0.0.1:PORT [--transports polling,websocket]
//     [--upgrade true|false] [--client v4|v2] [--scenario driven]
//     [--socket NAME=NSP ...] [--namespace NSP] [--shared true|false] [--auth JSON]
//     [--query JSON] [--silent NAME ...] [--reconnection true|false] [--reconnection-delay MS]
//     [--timeout MS]
//
// Sockets: one per --socket NAME=NSP (default: one socket "c0" on --namespace, default "/").
// Each socket has its own Manager (its own Engine.IO connection) unless --shared true, which
// multiplexes them all on one Manager. --auth is the v4 `auth` option, --query the `query` option
// (socket.io-client 2.x sends it with the namespace CONNECT, `/admin?token=abc`).
//
// Scenario "driven" (the only one; the server is the script):
//   * on every "connect", once the transport is the expected one (with --upgrade true and both
//     transports: after the upgrade to WebSocket), the socket emits
//     ready({name, transport, recovered}), so the server knows whom it talks to;
//   * every event from the server is printed; when the server asks for an acknowledgement the
//     socket answers ack(NAME, ...the event's arguments) (never for the sockets named by
//     --silent);
//   * the server sends commands as the event cmd(action | [action, ...]):
//       {do: "emit", event, args, ack: bool}   emit (args: {"$bin": base64} becomes a Buffer);
//                                              with ack, print the reply as {type: "ack"}
//       {do: "disconnect"}                     socket.disconnect()
//       {do: "connect"}                        socket.connect() (again, after a disconnect)
//       {do: "drop"}                           socket.io.engine.close(): the connection is lost,
//                                              the Manager reconnects (connection state recovery)
//     an action applies to the socket that received the command, or to the one named by its
//     "socket" field
//   * a socket is done once it is disconnected for good: "io server disconnect", "io client
//     disconnect", a connect_error from the server (middleware, "Invalid namespace"), for 2.x the
//     "error" event, and any disconnect or connect_error with --reconnection false. The script
//     exits 0 when every socket is done; after --timeout ms it fails (exit 1).
//
// Printed objects (binary as {"$bin": base64}, undefined as null):
//   {type: "connect", socket, nsp, id, transport, engine, recovered}
//   {type: "connect_error", socket, message, data}          (4.x: err.message and err.data)
//   {type: "error", socket, data}                           (2.x: namespace refusal)
//   {type: "disconnect", socket, reason}
//   {type: "event", socket, event, args, acked}             (acked: the server asked for an ack)
//   {type: "ack", socket, event, args}                      (reply to an emit with ack)
//   {type: "upgrade", manager, transport}                   (socket.io.engine "upgrade")
//   {type: "reconnect", manager, attempt}
import { parseArgs } from "node:util";
import { Manager } from "socket.io-client";
import ioV2 from "socket.io-client-v2";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    namespace: { type: "string", default: "/" },
    socket: { type: "string", multiple: true, default: [] },
    shared: { type: "string", default: "false" },
    transports: { type: "string", default: "polling,websocket" },
    upgrade: { type: "string", default: "true" },
    auth: { type: "string" },
    query: { type: "string" },
    client: { type: "string", default: "v4" },
    scenario: { type: "string", default: "driven" },
    silent: { type: "string", multiple: true, default: [] },
    reconnection: { type: "string", default: "true" },
    "reconnection-delay": { type: "string", default: "20" },
    timeout: { type: "string", default: "10000" },
  },
});

// U+2028/U+2029 escaped: Python's str.splitlines() would split the line there.
const write = (obj) =>
  process.stdout.write(
    JSON.stringify(obj).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`) +
      "\n",
  );
const exit = (code) => process.stdout.write("", () => process.exit(code));
const fail = (message) => {
  process.stderr.write(`sio_client: ${message}\n`);
  exit(1);
};

if (!opts.url) fail("--url is required");
if (opts.scenario !== "driven") fail(`unknown scenario ${opts.scenario}`);
if (opts.client !== "v4" && opts.client !== "v2") fail(`unknown client ${opts.client}`);

const v2 = opts.client === "v2";
const transports = opts.transports.split(",");
const upgrade = opts.upgrade === "true";
const expectUpgrade = upgrade && transports[0] === "polling" && transports.includes("websocket");
const reconnection = opts.reconnection === "true";
const silent = new Set(opts.silent);

const hardTimeout = setTimeout(
  () => fail(`scenario did not finish within ${opts.timeout} ms`),
  Number(opts.timeout),
);

// JSON for the test: binary as {"$bin": base64}, undefined as null, functions dropped.
const toJSON = (x) => {
  if (x === undefined || x === null) return null;
  if (Buffer.isBuffer(x) || x instanceof Uint8Array) {
    return { $bin: Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString("base64") };
  }
  if (x instanceof ArrayBuffer) return { $bin: Buffer.from(x).toString("base64") };
  if (Array.isArray(x)) return x.map(toJSON);
  if (typeof x === "object") {
    const out = {};
    for (const [k, v] of Object.entries(x)) if (v !== undefined) out[k] = toJSON(v);
    return out;
  }
  return x;
};
// The reverse, for the arguments of a {do: "emit"} command.
const fromJSON = (x) => {
  if (Array.isArray(x)) return x.map(fromJSON);
  if (x !== null && typeof x === "object" && !Buffer.isBuffer(x) && !(x instanceof Uint8Array)) {
    if (typeof x.$bin === "string" && Object.keys(x).length === 1) {
      return Buffer.from(x.$bin, "base64");
    }
    const out = {};
    for (const [k, v] of Object.entries(x)) out[k] = fromJSON(v);
    return out;
  }
  return x;
};

const specs = opts.socket.length ? opts.socket : [`c0=${opts.namespace}`];
const managerOptions = {
  transports,
  upgrade,
  reconnection,
  reconnectionDelay: Number(opts["reconnection-delay"]),
  reconnectionDelayMax: Number(opts["reconnection-delay"]),
  randomizationFactor: 0,
  timeout: 5000,
};
if (opts.query) managerOptions.query = JSON.parse(opts.query);

const managers = [];
const states = [];

function newManager() {
  const index = managers.length;
  const manager = v2
    ? new ioV2.Manager(opts.url, { ...managerOptions, autoConnect: true })
    : new Manager(opts.url, { ...managerOptions, autoConnect: true });
  manager.on("open", () => {
    manager.engine.on("upgrade", (t) => write({ type: "upgrade", manager: index, transport: t.name }));
  });
  manager.on("reconnect", (attempt) => write({ type: "reconnect", manager: index, attempt }));
  managers.push(manager);
  return manager;
}

function maybeFinish() {
  if (states.every((s) => s.done)) {
    clearTimeout(hardTimeout);
    // Let the last packets (DISCONNECT, engine close) leave before exiting.
    setTimeout(() => exit(0), 50);
  }
}

function finish(state) {
  if (state.done) return;
  state.done = true;
  maybeFinish();
}

function runAction(receiver, action) {
  // A command applies to the socket that received it, or to the one named by action.socket.
  const state = action.socket ? states.find((s) => s.name === action.socket) : receiver;
  if (!state) fail(`no socket named ${action.socket}`);
  const { socket, name } = state;
  switch (action.do) {
    case "emit": {
      const args = fromJSON(action.args ?? []);
      if (action.ack) {
        socket.emit(action.event, ...args, (...reply) =>
          write({ type: "ack", socket: name, event: action.event, args: toJSON(reply) }),
        );
      } else {
        socket.emit(action.event, ...args);
      }
      break;
    }
    case "disconnect":
      socket.disconnect();
      break;
    case "connect":
      state.done = false;
      socket.connect();
      break;
    case "drop":
      socket.io.engine.close();
      break;
    default:
      fail(`unknown command ${JSON.stringify(action)}`);
  }
}

// One event from the server (args without the ack function).
function onEvent(state, event, args, ack) {
  write({ type: "event", socket: state.name, event, args: toJSON(args), acked: !!ack });
  if (event === "cmd") {
    // Run the commands once this event is dispatched (socket.io-client records its offset last).
    const actions = Array.isArray(args[0]) ? args[0] : [args[0]];
    setImmediate(() => actions.forEach((action) => runAction(state, action)));
  }
  if (ack && !silent.has(state.name)) ack(state.name, ...args);
}

function whenTransportReady(manager, fn) {
  const engine = manager.engine;
  if (!expectUpgrade || engine.transport.name === "websocket") return fn();
  engine.once("upgrade", () => fn());
}

let shared = null;
for (const spec of specs) {
  const eq = spec.indexOf("=");
  const name = eq < 0 ? spec : spec.slice(0, eq);
  const nsp = eq < 0 ? opts.namespace : spec.slice(eq + 1);
  const manager = opts.shared === "true" ? (shared ??= newManager()) : newManager();
  const socketOptions = {};
  if (opts.auth && !v2) socketOptions.auth = JSON.parse(opts.auth);
  if (opts.query && v2) socketOptions.query = JSON.parse(opts.query);
  const socket = manager.socket(nsp, socketOptions);
  const state = { name, socket, done: false };
  states.push(state);

  socket.on("connect", () => {
    const engine = manager.engine;
    write({
      type: "connect",
      socket: name,
      nsp,
      id: socket.id,
      transport: engine.transport.name,
      engine: engine.id,
      recovered: v2 ? false : !!socket.recovered,
    });
    whenTransportReady(manager, () =>
      socket.emit("ready", {
        name,
        transport: manager.engine.transport.name,
        recovered: v2 ? false : !!socket.recovered,
      }),
    );
  });
  socket.on("disconnect", (reason) => {
    write({ type: "disconnect", socket: name, reason });
    const forGood = v2
      ? reason === "io server disconnect" || reason === "io client disconnect"
      : !socket.active;
    if (forGood || !reconnection) finish(state);
  });

  if (v2) {
    // socket.io-client 2.x has no onAny: take the events where the parser hands them over.
    socket.onevent = function (packet) {
      const data = packet.data || [];
      const ack = packet.id != null ? this.ack(packet.id) : null;
      onEvent(state, data[0], data.slice(1), ack);
    };
    socket.on("error", (data) => {
      write({ type: "error", socket: name, data: toJSON(data) });
      finish(state);
    });
    socket.on("connect_error", (err) => {
      write({ type: "connect_error", socket: name, message: err.message, data: null });
      if (!reconnection) finish(state);
    });
  } else {
    socket.onAny((event, ...args) => {
      const ack = typeof args.at(-1) === "function" ? args.pop() : null;
      onEvent(state, event, args, ack);
    });
    socket.on("connect_error", (err) => {
      write({
        type: "connect_error",
        socket: name,
        message: err.message,
        data: toJSON(err.data),
      });
      if (!socket.active || !reconnection) finish(state);
    });
  }
}
