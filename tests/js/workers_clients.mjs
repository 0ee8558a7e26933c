// Polling-only socket.io-client sessions against `aiosio serve --workers`: acks, broadcasts.
import { io } from "socket.io-client";
const [url, count, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const sockets = [];
const shouts = {};
for (let i = 0; i < count; i++) {
  const s = io(url, { transports: ["polling"], forceNew: true, reconnection: false });
  s.on("shout", () => { shouts[i] = (shouts[i] || 0) + 1; });
  s.on("connect_error", (e) => { console.error("connect_error", e.message); process.exit(2); });
  sockets.push(s);
}
await Promise.all(sockets.map((s) => new Promise((r) => s.on("connect", r))));
const workers = await Promise.all(sockets.map((s) => s.emitWithAck("where")));
let acks = 0;
for (let r = 0; r < rounds; r++) {
  const replies = await Promise.all(sockets.map((s, i) => s.timeout(5000).emitWithAck("echo", r * 1000 + i)));
  replies.forEach((v, i) => { if (v === r * 1000 + i) acks++; });
}
sockets[0].emit("shout", "hello");
await new Promise((r) => setTimeout(r, 1000));
console.log(JSON.stringify({ workers, acks, shouts, disconnected: sockets.filter((s) => !s.connected).length }));
sockets.forEach((s) => s.close());
