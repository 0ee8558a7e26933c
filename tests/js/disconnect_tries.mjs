// Connects the official socket.io-client (4.x, or 2.x with --client v2) to a server that
// disconnects it, --tries times one after the other, and prints one JSON object per try. Used by
// tests/interop/test_close_during_upgrade_js.py: with the default transports (polling, then the
// upgrade to WebSocket) the server's disconnect may land in any state of the upgrade, and the
// client must see "io server disconnect" every time.
//
//   node disconnect_tries.mjs --url http://127.0.0.1:PORT [--client v4|v2] [--tries N]
//     [--wait MS] [--count EVENT] [--manager-only]
//
// --url may list several URLs separated by commas: try i connects to the i-th (modulo), for a
// test that gives each try its own server (a server shutdown ends that server's sessions).
// Each try opens its own connection (no reconnection) and sends its index: 4.x as auth {try},
// 2.x as the query parameter try. It ends at the first "disconnect", or after --wait ms without
// one. Printed per try:
//   {try, connected, reason, transport, ms, received}
// reason: the "disconnect" reason, "connect_error: MESSAGE", or null when nothing came in time;
// transport: the Engine.IO transport when it ended (polling or websocket); received: how many
// --count events arrived before the disconnect (0 without --count).
// --manager-only (4.x): open the Engine.IO connection with a Manager and join no namespace (the
// server's namespace connect timeout closes it); reason is then the Manager's "close" reason.
import { parseArgs } from "node:util";
import { Manager, io } from "socket.io-client";
import ioV2 from "socket.io-client-v2";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    client: { type: "string", default: "v4" },
    tries: { type: "string", default: "40" },
    wait: { type: "string", default: "3000" },
    count: { type: "string" },
    "manager-only": { type: "boolean", default: false },
  },
});
const urls = opts.url.split(",");

function once(index) {
  return new Promise((resolve) => {
    const started = Date.now();
    const url = urls[index % urls.length];
    const options = { forceNew: true, reconnection: false };
    let manager = null;
    let socket = null;
    if (opts["manager-only"]) {
      manager = new Manager(url, { reconnection: false, query: { try: String(index) } });
    } else {
      socket =
        opts.client === "v2"
          ? ioV2(url, { ...options, query: { try: String(index) } })
          : io(url, { ...options, auth: { try: index } });
      manager = socket.io;
    }
    let connected = false;
    let received = 0;
    let done = false;
    const finish = (reason) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const engine = manager.engine;
      const transport = engine && engine.transport ? engine.transport.name : null;
      if (socket) socket.close();
      else if (engine) engine.close();
      resolve({ try: index, connected, reason, transport, ms: Date.now() - started, received });
    };
    const timer = setTimeout(() => finish(null), Number(opts.wait));
    if (socket === null) {
      manager.on("open", () => {
        connected = true;
      });
      manager.on("close", (reason) => finish(reason));
      manager.on("error", (err) => finish(`connect_error: ${err.message ?? err}`));
      return;
    }
    if (opts.count) {
      socket.on(opts.count, () => {
        received += 1;
      });
    }
    socket.on("connect", () => {
      connected = true;
    });
    socket.on("disconnect", (reason) => finish(reason));
    socket.on("connect_error", (err) => finish(`connect_error: ${err.message ?? err}`));
    socket.on("error", (err) => finish(`error: ${err}`)); // 2.x namespace refusal
  });
}

for (let index = 0; index < Number(opts.tries); index++) {
  console.log(JSON.stringify(await once(index)));
}
process.exit(0);
