// Drives the official engine.io-client against a server and prints one JSON object per line
// for everything it observes. Used by tests/interop/test_engineio_client.py.
//
//   node eio_client.mjs --url http://127.0.0.1:PORT [--path /engine.io] \
//     [--transports polling,websocket] [--upgrade true|false] --scenario NAME \
//     [--send TEXT] [--start-on TEXT] [--size N] [--count N] [--binary true|false] [--char C]
//     [--timeout MS]
//
// Scenarios:
//   echo            send MESSAGES at once (batched over polling), wait for every echo; if an
//                   upgrade is expected, wait for it and send them again over the WebSocket;
//                   then socket.close(). With --start-on TEXT, wait for that server message first
//   wait-close      print events until the connection closes (first sending --send if given)
//   no-pong         never answer the server's pings; print events until the connection closes
//   server-timeout  send "freeze" once open, then wait for the close (the test stops the
//                   server's bytes reaching us, so the client's heartbeat must time out)
//   big             send --count messages (1) of --size bytes (--binary) or characters (--char)
//                   at once, then socket.close() once they are echoed (and the upgrade done), or
//                   wait for the server to close
import { parseArgs } from "node:util";
import { Socket } from "engine.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    path: { type: "string", default: "/engine.io" },
    transports: { type: "string", default: "polling,websocket" },
    upgrade: { type: "string", default: "true" },
    scenario: { type: "string", default: "echo" },
    size: { type: "string", default: "0" },
    binary: { type: "string", default: "false" },
    send: { type: "string" },
    "start-on": { type: "string" },
    char: { type: "string", default: "x" },
    count: { type: "string", default: "1" },
    timeout: { type: "string", default: "10000" },
  },
});

// Text (unicode, empty) and binary (every byte value, empty) messages.
const MESSAGES = [
  "hello",
  "héllo",
  "😀 emoji",
  "",
  Buffer.from([0, 1, 2, 3, 255]),
  new Uint8Array(Array.from({ length: 256 }, (_, i) => i)),
  new Uint8Array(0),
  "last",
];

const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (message) => {
  process.stderr.write(`eio_client: ${message}\n`);
  process.exit(1);
};
const describe = (x) => {
  if (x === undefined || x === null) return null;
  if (x instanceof Error) {
    return x.description === undefined ? x.message : `${x.message}: ${describe(x.description)}`;
  }
  if (typeof x === "object" && "description" in x) return describe(x.description);
  return String(x);
};
// engine.io-parser decodes an empty text message ("4") to undefined: printed as data null.
const encode = (data) =>
  data === undefined
    ? { data: null, binary: false }
    : typeof data === "string"
    ? { data, binary: false }
    : { data: Buffer.from(data).toString("base64"), binary: true, length: data.byteLength };

if (!opts.url) fail("--url is required");
const transports = opts.transports.split(",");
const expectUpgrade =
  opts.upgrade === "true" && transports[0] === "polling" && transports.includes("websocket");
const hardTimeout = setTimeout(
  () => fail(`scenario ${opts.scenario} did not finish within ${opts.timeout} ms`),
  Number(opts.timeout),
);

const socket = new Socket(opts.url, {
  path: opts.path,
  transports,
  upgrade: opts.upgrade === "true",
});

if (opts.scenario === "no-pong") {
  // engine.io-client answers every ping from Socket._onPacket with this._sendPacket("pong");
  // drop those pongs (and only those) so the server's heartbeat runs out.
  const sendPacket = socket._sendPacket.bind(socket);
  socket._sendPacket = (type, ...rest) => (type === "pong" ? undefined : sendPacket(type, ...rest));
}

// Messages not yet taken by the scenario, and the scenario waiting for the next one.
const inbox = [];
let waiter = null;
const nextMessage = () =>
  inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => (waiter = resolve));
let closeExpected = opts.scenario !== "echo";

let handshake = {};
socket.on("handshake", (data) => (handshake = data));
socket.on("open", () => {
  // The handshake values the client runs with (it takes them all from the server).
  const { pingInterval, pingTimeout, maxPayload, upgrades } = handshake;
  const [transport, sid] = [socket.transport.name, socket.id];
  print({ event: "open", transport, sid, pingInterval, pingTimeout, maxPayload, upgrades });
  if (!(opts.scenario in scenarios)) fail(`unknown scenario ${opts.scenario}`);
  scenarios[opts.scenario]();
});
socket.on("upgrade", (transport) => print({ event: "upgrade", transport: transport.name }));
socket.on("upgradeError", (err) => print({ event: "upgradeError", message: describe(err) }));
socket.on("ping", () => print({ event: "ping" }));
socket.on("message", (data) => {
  print({ event: "message", ...encode(data) });
  const resolve = waiter;
  waiter = null;
  if (resolve) resolve(data);
  else inbox.push(data);
});
socket.on("error", (err) => print({ event: "error", message: describe(err) }));
socket.on("close", (reason, description) => {
  print({ event: "close", reason, description: describe(description) });
  if (!closeExpected) fail(`closed (${reason}) before the scenario finished`);
  clearTimeout(hardTimeout);
  // Node exits once the last packet (a close packet, a WebSocket close frame) is out; at most
  // half a second later in any case.
  setTimeout(() => process.exit(0), 500).unref();
});

async function echoBatch() {
  for (const message of MESSAGES) {
    print({ event: "sent", transport: socket.transport.name, ...encode(message) });
    socket.send(message);
  }
  for (const _ of MESSAGES) await nextMessage();
}

// Closing while the upgrade probe runs would abandon it: finish the upgrade first.
async function upgraded() {
  if (expectUpgrade && socket.transport.name !== "websocket") {
    await new Promise((resolve) => socket.once("upgrade", resolve));
  }
}

const scenarios = {
  async echo() {
    if (opts["start-on"] !== undefined) while ((await nextMessage()) !== opts["start-on"]);
    await echoBatch();
    if (expectUpgrade) {
      await upgraded();
      await echoBatch();
    }
    closeExpected = true;
    socket.close();
  },
  "wait-close"() {
    if (opts.send !== undefined) socket.send(opts.send);
  },
  "no-pong"() {},
  "server-timeout"() {
    socket.send("freeze");
  },
  async big() {
    const size = Number(opts.size);
    const binary = opts.binary === "true";
    const message = binary ? Buffer.alloc(size, 7) : opts.char.repeat(size);
    const bytes = Buffer.byteLength(message);
    for (let i = 0; i < Number(opts.count); i++) {
      print({ event: "sent", transport: socket.transport.name, binary, bytes });
      socket.send(message);
    }
    for (let i = 0; i < Number(opts.count); i++) await nextMessage();
    await upgraded();
    socket.close();
  },
};
