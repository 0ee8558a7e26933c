// Connection state recovery across `aiosio serve --workers 2`: a socket.io-client 4.8 client
// on one worker loses its connection, broadcasts go on without it, and it reconnects to the
// other worker (the master hands handshakes to the workers in turn). Prints one JSON line.
// argv: url transport first-burst missed-burst
import { io } from "socket.io-client";

const [url, transport, missed] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const options = { transports: [transport], forceNew: true, reconnection: false };
const connected = (s) =>
  new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", (e) => reject(new Error(`connect_error: ${e.message}`)));
  });
const until = async (check, what) => {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within 10s: ${what}`);
};

const driver = io(url, options); // the first handshake: worker A
await connected(driver);
const client = io(url, { ...options, auth: { room: "r" } }); // the second: worker B
const got = [];
for (const event of ["n", "x", "all"]) client.on(event, (i) => got.push(`${event}${i}`));
await connected(client);
const before = { id: client.id, where: await client.emitWithAck("where") };
const driverWhere = await driver.emitWithAck("where");
await driver.emitWithAck("burst", 0, 2);
await until(() => got.length === 4, "the live broadcasts");

const reason = new Promise((resolve) => client.once("disconnect", resolve));
client.io.engine.close(); // the connection is lost (the server sees "transport close")
const disconnectReason = await reason;
await driver.emitWithAck("burst", 2, missed); // missed by the client
await new Promise((r) => setTimeout(r, 100));
client.connect(); // the next handshake: worker A, the other one
await connected(client);
const after = { id: client.id, recovered: client.recovered, where: await client.emitWithAck("where") };
const last = 2 + missed;
await driver.emitWithAck("burst", last, 2);
await until(() => got.includes(`all${last + 1}`), "the broadcasts after the reconnection");
console.log(JSON.stringify({ before, after, driverWhere, disconnectReason, got }));
driver.close();
client.close();
