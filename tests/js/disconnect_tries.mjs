// Connects the official socket.io-client (4.x, or 2.x with --client v2) to a server that
// disconnects it, --tries times one after the other, and prints one JSON object per try. Used by
// tests/interop/test_close_during_upgrade_js.py: with the default transports (polling, then the
// upgrade to WebSocket) the server's disconnect may land in any state of the upgrade, and the
// client must see "io server disconnect" every time.
//
//   node disconnect_tries.mjs --url http://127.0.0.1:PORT [--client v4|v2] [--tries N]
//     [--wait MS]
//
// Each try opens its own connection (no reconnection) and sends its index: 4.x as auth {try},
// 2.x as the query parameter try. It ends at the first "disconnect", or after --wait ms without
// one. Printed per try:
//   {try, connected, reason, transport, ms}
// reason: the "disconnect" reason, "connect_error: MESSAGE", or null when nothing came in time;
// transport: the Engine.IO transport when it ended (polling or websocket).
import { parseArgs } from "node:util";
import { io } from "socket.io-client";
import ioV2 from "socket.io-client-v2";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    client: { type: "string", default: "v4" },
    tries: { type: "string", default: "40" },
    wait: { type: "string", default: "3000" },
  },
});

function once(index) {
  return new Promise((resolve) => {
    const started = Date.now();
    const options = { forceNew: true, reconnection: false };
    const socket =
      opts.client === "v2"
        ? ioV2(opts.url, { ...options, query: { try: String(index) } })
        : io(opts.url, { ...options, auth: { try: index } });
    let connected = false;
    let done = false;
    const finish = (reason) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const engine = socket.io.engine;
      const transport = engine && engine.transport ? engine.transport.name : null;
      socket.close();
      resolve({ try: index, connected, reason, transport, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(null), Number(opts.wait));
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
