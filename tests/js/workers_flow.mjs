// Connection state recovery across `aiosio serve --workers 2` while broadcasts flow: a driver
// (worker A) starts a flow of numbered broadcasts to room "r"; a socket.io-client 4.8 client in
// that room (worker B) loses its connection in the middle, reconnects (worker A, the next
// handshake) and recovers, losing it again and recovering (worker B) once more. Prints one
// JSON line: the numbers the client got and whether each reconnection recovered.
// argv: url count
import { io } from "socket.io-client";

const [url, count] = [process.argv[2], Number(process.argv[3])];
const options = { transports: ["websocket"], forceNew: true, reconnection: false };
const connected = (s) =>
  new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", (e) => reject(new Error(`connect_error: ${e.message}`)));
  });
const until = async (check, what) => {
  for (let i = 0; i < 1500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within 30s: ${what}`);
};

const driver = io(url, options); // the first handshake: worker A
await connected(driver);
const client = io(url, { ...options, auth: { room: "r" } }); // the second: worker B
const got = [];
client.on("n", (n) => got.push(n));
await connected(client);
const places = [await client.emitWithAck("where")];
const flow = driver.timeout(60000).emitWithAck("flow", count);
const recovered = [];
for (const at of [count / 4, count / 2]) {
  await until(() => got.length >= at, `${at} numbers`);
  const lost = new Promise((resolve) => client.once("disconnect", resolve));
  client.io.engine.close();
  await lost;
  // as socket.io-client's reconnection delay would (1 s by default): the server that had the
  // socket has seen the connection close and kept its session by then
  await new Promise((r) => setTimeout(r, 200));
  client.connect(); // the next handshake: the other worker
  await connected(client);
  recovered.push(client.recovered);
  places.push(await client.emitWithAck("where"));
}
await flow;
await until(() => got.includes(count - 1), "the last number");
await new Promise((r) => setTimeout(r, 200)); // a duplicate would have come by now
console.log(JSON.stringify({ got, recovered, places }));
driver.close();
client.close();
