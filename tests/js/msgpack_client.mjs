// socket.io-client 4.8 with socket.io-msgpack-parser, for tests/interop/test_msgpack_parser.py
// (the reference client against aiosio's msgpack parser). Prints one JSON object per line;
// binary values as {"$bin": base64}, Dates as {"$date": ms}.
//
//   node msgpack_client.mjs --url URL [--transports polling,websocket] [--clients N]
//                           [--json]   (connect with the default JSON parser instead)
//
// Each of N clients connects, then: emits "echo" with a string, a number, a float, null,
// a Buffer, a Uint8Array, a nested object and a Date and an ack (prints {type:"echoed", args});
// answers the server's "question"(x, ack) with ack({doubled: x * 2, bin: Buffer}) (prints {type:"asked", args});
// prints each "news" it gets ({type:"news", args}). Once every client has its echo, client 0
// emits "shout"(Buffer) with an ack; the server broadcasts it to everyone as "news". Each client
// exits once it saw one "news" (and 0 its shout's ack). --json: prints {type:"connect_error",
// message} and exits.
import { parseArgs } from "node:util";
import { io } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";

const { values: flags } = parseArgs({
  options: {
    url: { type: "string" },
    transports: { type: "string", default: "polling,websocket" },
    clients: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const js = (v) => {
  if (v instanceof Date) return { $date: v.getTime() };
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(new Uint8Array(v)).toString("base64") };
  if (Array.isArray(v)) return v.map(js);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, js(x)]));
  return v;
};
const options = { transports: flags.transports.split(","), reconnection: false, forceNew: true };
if (!flags.json) options.parser = msgpackParser;
const timer = setTimeout(() => {
  print({ type: "timeout" });
  process.exit(3);
}, 20000);

if (flags.json) {
  const socket = io(flags.url, options);
  socket.on("connect", () => {
    print({ type: "connected" });
    process.exit(2);
  });
  socket.on("connect_error", (err) => {
    print({ type: "connect_error", message: err.message });
    clearTimeout(timer);
    socket.close();
  });
} else {
  const count = Number(flags.clients);
  const sockets = [];
  let echoed = 0;
  let done = 0;
  const finish = () => {
    done += 1;
    if (done === count + 1) {
      clearTimeout(timer);
      sockets.forEach((s) => s.close());
    }
  };
  for (let i = 0; i < count; i++) {
    const socket = io(flags.url, options);
    sockets.push(socket);
    socket.on("connect_error", (err) => {
      print({ type: "connect_error", client: i, message: err.message });
      process.exit(1);
    });
    socket.on("question", (x, ack) => {
      print({ type: "asked", client: i, args: js([x]) });
      ack({ doubled: x * 2, bin: Buffer.from([9, 8, 7]) });
    });
    socket.on("news", (...args) => {
      print({ type: "news", client: i, args: js(args) });
      finish();
    });
    socket.on("connect", () => {
      print({ type: "connected", client: i, transport: socket.io.engine.transport.name });
      const args = [
        "text",
        42,
        1.5,
        null,
        Buffer.from([1, 2, 3]),
        new Uint8Array([4, 5]),
        { nested: { list: [1, "two", Buffer.from([255])] } },
        new Date(1700000000123),
      ];
      socket.emit("echo", ...args, (...reply) => {
        print({ type: "echoed", client: i, args: js(reply) });
        echoed += 1;
        if (echoed === count) {
          sockets[0].emit("shout", Buffer.from([6, 6]), (reply) => {
            print({ type: "shouted", args: js([reply]) });
            finish();
          });
        }
      });
    });
  }
}
