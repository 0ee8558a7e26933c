// The load generator: raw Engine.IO 4 / Socket.IO 5 frames over the `ws` package (no socket.io
// client in the way), one process, driven by run.py over stdin/stdout.
//
//   node loadgen.mjs '<json params>'
//
// params: {port, mode: "echo"|"broadcast"|"idle"|"churn"|"connects"|"hold", parser: "json" (the
// default) | "msgpack", sources: ["127.0.0.1", ...], ...} (see run.py SCENARIOS).
//
// Conversation with run.py (one JSON object per line on stdout, one word per line on stdin):
//   -> {"ev":"ready"}            set up (connected, warmed up); waits for "start"
//   <- start                     run.py reads the server's CPU time, then starts the window
//   -> {"ev":"mark","name":..}   something run.py samples at (idle: "held", all connected;
//                                churn: "held<r>" and "left<r>" for each round r from 1)
//   <- marked                    run.py has sampled (churn waits for it; idle holds anyway)
//   -> {"ev":"end"}              the measured window is over; waits for "stop"
//   <- stop                      run.py has read the server's CPU time and memory
//   -> {"ev":"result", ...}      counts, latencies, this process's own CPU time; then exits
//
// The hot paths never JSON.parse: ack ids and broadcast sequence numbers are read from the bytes.
// With parser "msgpack" every Socket.IO packet is what socket.io-msgpack-parser sends: one msgpack
// map {type, nsp, data, id} in one binary WebSocket message (Engine.IO's open and ping stay text);
// the load generator encodes them by hand and reads the server's with a walker of the map (the
// keys in any order, as notepack.io and aiosio write them in different orders).
// This process's CPU share (process.cpuUsage over the window / wall time) is reported: near 1.0
// (one full core) it would be the limit, not the server.
import http from "node:http";
import readline from "node:readline";
import WebSocket from "ws";

const P = JSON.parse(process.argv[2]);
const HOST = "127.0.0.1";
const BASE = `/socket.io/?EIO=4`;
const now = () => performance.now();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const stdinLines = [];
let stdinWaiter = null;
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (stdinWaiter) {
    const w = stdinWaiter;
    stdinWaiter = null;
    w(line.trim());
  } else stdinLines.push(line.trim());
});
const waitFor = async (word) => {
  for (;;) {
    const line = stdinLines.length ? stdinLines.shift() : await new Promise((r) => (stdinWaiter = r));
    if (line === word) return;
  }
};

const fail = (msg) => {
  out({ ev: "error", error: msg });
  process.exit(2);
};
const deadline = setTimeout(() => fail(`timed out after ${P.timeout ?? 300} s`), (P.timeout ?? 300) * 1000);
deadline.unref();

// ---------------------------------------------------------------------------------------------
// One Socket.IO client on the websocket transport.

const C_0 = 0x30, C_2 = 0x32, C_3 = 0x33, C_4 = 0x34, C_5 = 0x35, C_6 = 0x36, C_DASH = 0x2d;
const C_OPEN_BRACKET = 0x5b, C_BAR = 0x7c;
const MSGPACK = P.parser === "msgpack";
if (P.parser !== undefined && P.parser !== "json" && !MSGPACK) fail(`unknown parser ${P.parser}`);
// Local addresses the connections come from, in turn: 127.0.0.1 alone gives one port range
// (net.ipv4.ip_local_port_range, about 28 000 ports) towards one server port; each address of
// 127.0.0.0/8 (all of it routed to lo on Linux, nothing to configure) gives another.
const SOURCES = P.sources?.length ? P.sources : [undefined];
let nextSource = 0;
let pings = 0; // Engine.IO pings answered, all clients

// -- msgpack, the subset these packets use (https://github.com/msgpack/msgpack/blob/master/spec.md)

const mpUint = (n) =>
  n < 0x80 ? Buffer.from([n])
  : n < 0x100 ? Buffer.from([0xcc, n])
  : n < 0x10000 ? Buffer.from([0xcd, n >> 8, n & 0xff])
  : Buffer.from([0xce, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);

function mpStr(text) {
  const bytes = Buffer.from(text);
  const n = bytes.length;
  const head =
    n < 32 ? Buffer.from([0xa0 | n])
    : n < 0x100 ? Buffer.from([0xd9, n])
    : n < 0x10000 ? Buffer.from([0xda, n >> 8, n & 0xff])
    : Buffer.from([0xdb, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, bytes]);
}

function mpBin(bytes) {
  const n = bytes.length;
  const head =
    n < 0x100 ? Buffer.from([0xc4, n])
    : n < 0x10000 ? Buffer.from([0xc5, n >> 8, n & 0xff])
    : Buffer.from([0xc6, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, bytes]);
}

// {type, nsp: "/", data: [values...]} followed by the key "id" when `withId` (its value appended
// by the caller): the packet up to its ack id, built once.
const mpPacket = (type, values, withId) =>
  Buffer.concat([
    Buffer.from([withId ? 0x84 : 0x83]),
    mpStr("type"), mpUint(type), mpStr("nsp"), mpStr("/"),
    mpStr("data"), Buffer.from([0x90 | values.length]), ...values,
    ...(withId ? [mpStr("id")] : []),
  ]);
const MP_CONNECT = Buffer.concat([Buffer.from([0x82]), mpStr("type"), mpUint(0), mpStr("nsp"), mpStr("/")]);

// The index after the value at `i` (ext values too: notepack.io writes undefined, a packet's
// absent id, as fixext 1).
function mpSkip(b, i) {
  const c = b[i];
  if (c < 0x80 || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) return i + 1;
  if (c <= 0x8f) { let j = i + 1; for (let k = 0; k < (c & 0x0f) * 2; k++) j = mpSkip(b, j); return j; }
  if (c <= 0x9f) { let j = i + 1; for (let k = 0; k < (c & 0x0f); k++) j = mpSkip(b, j); return j; }
  if (c <= 0xbf) return i + 1 + (c & 0x1f);
  switch (c) {
    case 0xc4: case 0xd9: return i + 2 + b[i + 1];
    case 0xc5: case 0xda: return i + 3 + b.readUInt16BE(i + 1);
    case 0xc6: case 0xdb: return i + 5 + b.readUInt32BE(i + 1);
    case 0xca: return i + 5;
    case 0xcb: return i + 9;
    case 0xcc: case 0xd0: return i + 2;
    case 0xcd: case 0xd1: return i + 3;
    case 0xce: case 0xd2: return i + 5;
    case 0xcf: case 0xd3: return i + 9;
    case 0xd4: return i + 3;
    case 0xd5: return i + 4;
    case 0xd6: return i + 6;
    case 0xd7: return i + 10;
    case 0xd8: return i + 18;
    case 0xc7: return i + 3 + b[i + 1];
    case 0xc8: return i + 4 + b.readUInt16BE(i + 1);
    case 0xc9: return i + 6 + b.readUInt32BE(i + 1);
    case 0xdc: case 0xde: {
      let j = i + 3;
      const n = b.readUInt16BE(i + 1) * (c === 0xde ? 2 : 1);
      for (let k = 0; k < n; k++) j = mpSkip(b, j);
      return j;
    }
    case 0xdd: case 0xdf: {
      let j = i + 5;
      const n = b.readUInt32BE(i + 1) * (c === 0xdf ? 2 : 1);
      for (let k = 0; k < n; k++) j = mpSkip(b, j);
      return j;
    }
  }
  throw new Error(`msgpack: unexpected byte 0x${c.toString(16)} at ${i}`);
}

function mpInt(b, i) {
  const c = b[i];
  if (c < 0x80) return c;
  if (c === 0xcc) return b[i + 1];
  if (c === 0xcd) return b.readUInt16BE(i + 1);
  if (c === 0xce) return b.readUInt32BE(i + 1);
  return -1;
}

// Where a string's bytes start (the index after its header).
const mpStrStart = (b, i) => {
  const c = b[i];
  return c >= 0xa0 && c <= 0xbf ? i + 1 : c === 0xd9 ? i + 2 : c === 0xda ? i + 3 : i + 5;
};

// The top-level map of a packet: {type, id, data: the index of its value} (-1 when absent).
function mpFields(b) {
  const c = b[0];
  let n, i;
  if (c >= 0x80 && c <= 0x8f) { n = c & 0x0f; i = 1; }
  else if (c === 0xde) { n = b.readUInt16BE(1); i = 3; }
  else throw new Error("msgpack: the packet is not a map");
  const f = { type: -1, id: -1, data: -1 };
  for (let k = 0; k < n; k++) {
    // the keys are short fixstr: "type", "nsp", "data", "id"
    const len = b[i] & 0x1f, key = b.toString("latin1", i + 1, i + 1 + len);
    i += 1 + len;
    if (key === "type") f.type = mpInt(b, i);
    else if (key === "id") f.id = mpInt(b, i);
    else if (key === "data") f.data = i;
    i = mpSkip(b, i);
  }
  return f;
}

class Client {
  constructor() {
    this.ws = null;
    this.onEvent = null; // (buf) for "42..." frames
    this.onAck = null; // (id) for "43<id>..." and completed "46..." binary acks
    this.binaryLeft = 0; // attachments still expected for the binary ack in progress
    this.binaryId = -1;
    this.closed = false;
  }

  // Resolves once the namespace "/" is joined ("40{...}" received).
  connect(query = "", port = P.port) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${HOST}:${port}${BASE}&transport=websocket${query}`, {
        perMessageDeflate: false,
        localAddress: SOURCES[nextSource++ % SOURCES.length],
      });
      this.ws = ws;
      let joined = false;
      ws.on("message", (data, isBinary) => {
        if (isBinary && MSGPACK) {
          const f = mpFields(data);
          if (f.type === 2) return this.onEvent?.(data, f);
          if (f.type === 3) return this.onAck?.(f.id);
          if (f.type === 0 && !joined) {
            joined = true;
            return resolve(this);
          }
          if (f.type === 4) return reject(new Error(`connect_error ${data.toString("hex")}`));
          return;
        }
        if (isBinary) return this.binary();
        const b0 = data[0];
        if (b0 === C_4) {
          const b1 = data[1];
          if (b1 === C_2) return this.onEvent?.(data);
          if (b1 === C_3) return this.onAck?.(readInt(data, 2));
          if (b1 === C_6) return this.binaryAck(data);
          if (b1 === C_0 && !joined) {
            joined = true;
            return resolve(this);
          }
          if (b1 === C_4) return reject(new Error(`connect_error ${data}`));
        } else if (b0 === C_0) {
          ws.send(MSGPACK ? MP_CONNECT : "40");
        } else if (b0 === C_2) {
          pings++;
          ws.send("3");
        }
      });
      ws.on("error", (err) => {
        if (!joined) reject(err);
      });
      ws.on("close", () => {
        this.closed = true;
        if (!joined) reject(new Error("closed before the namespace was joined"));
      });
    });
  }

  binaryAck(data) {
    // 46<attachments>-<id>[...]
    let i = 2;
    let n = 0;
    while (data[i] !== C_DASH) n = n * 10 + (data[i++] - C_0);
    this.binaryLeft = n;
    this.binaryId = readInt(data, i + 1);
  }

  binary() {
    if (this.binaryLeft > 0 && --this.binaryLeft === 0) this.onAck?.(this.binaryId);
  }
}

function readInt(buf, i) {
  let n = 0;
  for (let c = buf[i]; c >= C_0 && c <= 0x39; c = buf[++i]) n = n * 10 + (c - C_0);
  return n;
}

// Opens `count` clients, `concurrency` at a time.
async function openClients(count, concurrency) {
  const clients = new Array(count);
  const joinOrder = []; // the order the server accepted them: the order it broadcasts in
  const latencies = []; // from the WebSocket's opening to the namespace joined, each
  let next = 0;
  let errors = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          const t = now();
          clients[i] = await new Client().connect();
          latencies.push(now() - t);
          joinOrder.push(clients[i]);
          break;
        } catch (err) {
          errors++;
          if (attempt >= 2) throw new Error(`client ${i}: ${err.message}`);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { clients, errors, joinOrder, latencies };
}

function closeAll(clients) {
  for (const c of clients) if (c?.ws) c.ws.terminate();
}

function summary(latencies) {
  if (latencies.length === 0) return { p50_ms: null, p99_ms: null, max_ms: null };
  const a = Float64Array.from(latencies).sort();
  const q = (p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
  return { p50_ms: q(0.5), p99_ms: q(0.99), max_ms: a[a.length - 1] };
}

// The measured window: cpu and wall time between "start" and the end of `body`.
async function window(body) {
  out({ ev: "ready" });
  await waitFor("start");
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const extra = await body();
  const seconds = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const lgCpu = (cpu.user + cpu.system) / 1e6;
  out({ ev: "end" });
  await waitFor("stop");
  return { seconds, lg_cpu_s: lgCpu, lg_cpu_share: lgCpu / seconds, ...extra };
}

// ---------------------------------------------------------------------------------------------
// echo: `clients` clients, each keeping `inflight` acked "echo" events in flight.

async function echo() {
  const { clients, errors } = await openClients(P.clients, 50);
  const size = P.size;
  let send;
  if (MSGPACK) {
    // {type: 2, nsp: "/", data: ["echo", <payload>], id}: a string, or binary inside the map
    const arg = P.binary ? mpBin(Buffer.alloc(size, 0x61)) : mpStr("x".repeat(size));
    const head = mpPacket(2, [mpStr("echo"), arg], true);
    send = (c, id) => c.ws.send(Buffer.concat([head, mpUint(id)]));
  } else if (P.binary) {
    const payload = Buffer.alloc(size, 0x61);
    send = (c, id) => {
      c.ws.send(`451-${id}["echo",{"_placeholder":true,"num":0}]`);
      c.ws.send(payload);
    };
  } else {
    const payload = "x".repeat(size);
    send = (c, id) => c.ws.send(`42${id}["echo","${payload}"]`);
  }
  let record = false;
  let running = false;
  let inflightTotal = 0;
  let drained = null;
  let latencies = [];
  let ops = 0;
  for (const c of clients) {
    c.nextId = 0;
    c.sent = new Map();
    c.onAck = (id) => {
      const t = c.sent.get(id);
      if (t === undefined) return;
      c.sent.delete(id);
      inflightTotal--;
      if (record) {
        latencies.push(now() - t);
        ops++;
      }
      if (running) fire(c);
      else if (inflightTotal === 0 && drained) drained();
    };
  }
  // socket.io-client writes each emit on its own (one ws.send, one TCP write): so does this
  // load by default. With `cork: true` the frames a client sends while handling one read go out
  // in one write (cork until the handlers of that read are done): the same bytes on the wire,
  // fewer syscalls here and fewer, fuller reads for the server, which flatters a batching server;
  // run.py reports that mode as echo-corked, beside echo, never instead of it.
  const corked = [];
  const uncork = () => {
    for (const c of corked) c.ws._socket.uncork();
    corked.length = 0;
  };
  const fire = (c) => {
    const id = c.nextId++;
    c.sent.set(id, now());
    inflightTotal++;
    if (P.cork === true) {
      if (corked.length === 0) process.nextTick(uncork);
      if (!corked.includes(c)) {
        c.ws._socket.cork();
        corked.push(c);
      }
    }
    send(c, id);
  };
  const phase = (seconds) =>
    new Promise((resolve) => {
      running = true;
      drained = resolve;
      for (const c of clients) for (let k = 0; k < P.inflight; k++) fire(c);
      setTimeout(() => {
        running = false;
        if (inflightTotal === 0) resolve();
      }, seconds * 1000);
    });
  if (P.warmup > 0) await phase(P.warmup);
  const result = await window(async () => {
    record = true;
    await phase(P.duration);
    record = false;
    return { ops, connect_errors: errors, ...summary(latencies) };
  });
  latencies = null;
  closeAll(clients);
  return result;
}

// ---------------------------------------------------------------------------------------------
// broadcast: `clients` clients; one of them emits "bcast" `broadcasts` times (at most `window`
// not yet delivered) and the server sends each to all. An op is one delivery; latency is from the
// emit to each delivery.
//
// Across servers (`emit_port`, run.py's cluster scenarios): the one that emits is a client of its
// own on the server at `emit_port` (A), the `clients` are on the server at `port` (B), so every
// broadcast goes through the cluster adapter; the emitter's own copy (A sends it back to it) is
// read and not counted. `warm` broadcasts first, outside the window and not counted: they prove
// that the adapters of both servers carry broadcasts (subscribed) before the window opens.
//
// Reading a frame costs this process more than writing it costs a good server (a read per socket
// through Node's streams), so during the window only `sample` receivers spread over the server's
// order (and the last one in it) read; the others are paused and their frames wait in the kernel
// (a few KiB per socket, far below the socket buffer: the server's work is the same). A broadcast
// is complete when every sampled receiver has it. After the window every paused receiver resumes
// and must receive every broadcast: `undelivered` counts what is missing.

async function broadcast() {
  const { clients, errors, joinOrder } = await openClients(P.clients, 100);
  const n = clients.length;
  const warm = P.warm ?? 0;
  const total = warm + P.broadcasts;
  const sample = P.sample > 0 && P.sample < n ? P.sample : n;
  const step = n / sample;
  const measured = new Set();
  for (let k = 0; k < sample; k++) measured.add(joinOrder[Math.floor(k * step)]);
  measured.add(joinOrder[n - 1]);
  const sender = P.emit_port ? await new Client().connect("", P.emit_port) : joinOrder[0];
  const sentAt = new Float64Array(total);
  const counts = new Int32Array(total);
  const latencies = [];
  const pad = "x".repeat(Math.max(0, P.size - 8));
  let nextSeq = 0;
  let completed = 0;
  let limit = 0; // the broadcasts of the current phase (warm-up, then the window) end here
  let done = null;
  const emit = () => {
    const seq = nextSeq++;
    sentAt[seq] = now();
    if (MSGPACK) sender.ws.send(mpPacket(2, [MP_BCAST, mpStr(`${seq}|${pad}`)], false));
    else sender.ws.send(`42["bcast","${seq}|${pad}"]`);
  };
  const seqOf = MSGPACK ? mpSeqOf : jsonSeqOf;
  for (const c of clients) {
    c.got = 0;
    if (measured.has(c)) {
      c.onEvent = (data, fields) => {
        const seq = seqOf(data, fields);
        if (seq < 0) return;
        c.got++;
        if (seq >= warm) latencies.push(now() - sentAt[seq]);
        if (++counts[seq] === measured.size) {
          completed++;
          if (nextSeq < limit) emit();
          else if (completed === limit) done();
        }
      };
    } else {
      c.onEvent = (data, fields) => {
        if (seqOf(data, fields) >= 0) c.got++;
      };
      // Not even read into Node's stream buffer (pausing the stream alone would still read)
      c.ws.pause();
      const handle = c.ws._socket._handle;
      handle.reading = false;
      handle.readStop();
    }
  }
  // Emits until `upTo` broadcasts were sent, at most `window` not yet delivered to all.
  const phase = (upTo) =>
    new Promise((resolve) => {
      done = resolve;
      limit = upTo;
      for (let k = 0, first = nextSeq; k < Math.min(P.window, upTo - first); k++) emit();
    });
  if (warm > 0) await phase(warm);
  const result = await window(async () => {
    await phase(total);
    return {
      ops: n * P.broadcasts,
      broadcasts: P.broadcasts,
      sampled: measured.size,
      connect_errors: errors,
      ...summary(latencies),
    };
  });
  // Outside the window: every receiver must have every broadcast.
  for (const c of clients) {
    if (!c.ws.isPaused) continue;
    c.ws.resume();
    const handle = c.ws._socket._handle;
    if (handle && !handle.reading) {
      handle.reading = true;
      handle.readStart();
    }
  }
  const until = now() + 30000;
  while (clients.some((c) => c.got < total) && now() < until) await new Promise((r) => setTimeout(r, 20));
  result.undelivered = clients.reduce((sum, c) => sum + Math.max(0, total - c.got), 0);
  closeAll(clients);
  if (P.emit_port) closeAll([sender]);
  return result;
}

// The sequence number of a broadcast: 42["bcast","<seq>|...
const JSON_PREFIX = Buffer.from('42["bcast","');
function jsonSeqOf(data) {
  if (data.compare(JSON_PREFIX, 0, JSON_PREFIX.length, 0, JSON_PREFIX.length) !== 0) return -1;
  let i = JSON_PREFIX.length;
  let seq = 0;
  for (let ch = data[i]; ch !== C_BAR; ch = data[++i]) seq = seq * 10 + (ch - C_0);
  return seq;
}

// ... or {type: 2, nsp, data: ["bcast", "<seq>|..."]} in msgpack
const MP_BCAST = mpStr("bcast");
function mpSeqOf(data, fields) {
  let i = fields.data;
  if (i < 0 || (data[i] & 0xf0) !== 0x90 || (data[i] & 0x0f) < 2) return -1;
  i += 1;
  if (data.compare(MP_BCAST, 0, MP_BCAST.length, i, i + MP_BCAST.length) !== 0) return -1;
  i = mpStrStart(data, i + MP_BCAST.length);
  let seq = 0;
  for (let ch = data[i]; ch !== C_BAR; ch = data[++i]) seq = seq * 10 + (ch - C_0);
  return seq;
}

// ---------------------------------------------------------------------------------------------
// idle: `conns` connections joined to "/" and held `hold` seconds; run.py reads the server's
// memory at "held" and at the end. An op is one connection (its CPU includes the handshake).

async function idle() {
  let clients = [];
  const result = await window(async () => {
    const t0 = now();
    const opened = await openClients(P.conns, P.concurrency);
    clients = opened.clients;
    const connectSeconds = (now() - t0) / 1000;
    out({ ev: "mark", name: "held" });
    await new Promise((r) => setTimeout(r, P.hold * 1000));
    const dropped = clients.filter((c) => c.closed).length;
    return {
      ops: clients.length,
      connect_seconds: connectSeconds,
      connects_per_s: clients.length / connectSeconds,
      dropped,
      connect_errors: opened.errors,
      ...summary(opened.latencies), // per connection: opening to joined
    };
  });
  closeAll(clients);
  return result;
}

// ---------------------------------------------------------------------------------------------
// hold: `conns` connections joined to "/" (`concurrency` at a time, from the `sources` addresses
// in turn), then, each step after a mark run.py samples at (memory, the server's CPU):
//   "held": all connected (setup: CPU per connection, memory per connection)
//   "heartbeats": `hold` seconds later, nothing sent but the heartbeats (the server pings every
//     25 s by default; each client answers): the server's CPU for heartbeats alone
//   "broadcast": one client emits "bcast" and every client receives it: p50/p99/max delivery
// An op is one connection.

async function hold() {
  let clients = [];
  const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
  const mark = async (name) => {
    out({ ev: "mark", name });
    await waitFor("marked");
  };
  const result = await window(async () => {
    const t0 = now();
    const opened = await openClients(P.conns, P.concurrency);
    clients = opened.clients;
    const connectSeconds = (now() - t0) / 1000;
    await mark("held");
    const pings0 = pings;
    await sleep(P.hold);
    const pingsInHold = pings - pings0;
    const dropped = clients.filter((c) => c.closed).length;
    await mark("heartbeats");
    const latencies = [];
    const seqOf = MSGPACK ? mpSeqOf : jsonSeqOf;
    const live = clients.filter((c) => !c.closed);
    let left = live.length;
    let t = 0;
    const all = new Promise((resolve) => {
      for (const c of live) {
        c.onEvent = (data, fields) => {
          if (seqOf(data, fields) !== 0) return;
          latencies.push(now() - t);
          if (--left === 0) resolve(true);
        };
      }
    });
    const pad = "x".repeat(Math.max(0, P.size - 8));
    t = now();
    const sender = opened.joinOrder[0];
    if (MSGPACK) sender.ws.send(mpPacket(2, [MP_BCAST, mpStr(`0|${pad}`)], false));
    else sender.ws.send(`42["bcast","0|${pad}"]`);
    await Promise.race([all, sleep(60)]);
    await mark("broadcast");
    const b = summary(latencies);
    return {
      ops: clients.length,
      connect_seconds: connectSeconds,
      connects_per_s: clients.length / connectSeconds,
      dropped,
      pings: pingsInHold,
      undelivered: left,
      connect_errors: opened.errors,
      ...summary(opened.latencies), // per connection: opening to joined
      bcast_p50_ms: b.p50_ms,
      bcast_p99_ms: b.p99_ms,
      bcast_max_ms: b.max_ms,
    };
  });
  closeAll(clients);
  return result;
}

// ---------------------------------------------------------------------------------------------
// churn: `rounds` rounds of: open `conns` connections joined to "/" (`concurrency` at a time),
// mark "held<r>", close them all (`leave`: "close", a close handshake like connects; "terminate",
// the socket destroyed without a close frame), wait until every one is closed and `settle` more
// seconds for the server to let them go, mark "left<r>". At each mark run.py reads the server's
// memory and descriptors, and the next step waits until it has. An op is one connection's cycle
// (connect, join, hold, leave).

async function churn() {
  let clients = [];
  const result = await window(async () => {
    let ops = 0;
    let connectSeconds = 0;
    let errors = 0;
    let dropped = 0;
    let unclosed = 0;
    const latencies = [];
    const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
    for (let r = 1; r <= P.rounds; r++) {
      const t0 = now();
      const opened = await openClients(P.conns, P.concurrency);
      clients = opened.clients;
      connectSeconds += (now() - t0) / 1000;
      errors += opened.errors;
      for (const latency of opened.latencies) latencies.push(latency);
      ops += clients.length;
      out({ ev: "mark", name: `held${r}` });
      await waitFor("marked");
      dropped += clients.filter((c) => c.closed).length;
      const closed = clients.map((c) =>
        c.closed ? null : new Promise((resolve) => c.ws.once("close", resolve)),
      );
      for (const c of clients) {
        if (c.closed) continue;
        if (P.leave === "terminate") c.ws.terminate();
        else c.ws.close(1000);
      }
      // ws gives up on a close handshake the server does not finish after 30 s (and destroys the
      // socket): a server that leaves them open shows in `unclosed`, and the window gets longer.
      if ((await Promise.race([Promise.all(closed).then(() => true), sleep(35)])) !== true) {
        unclosed += clients.filter((c) => !c.closed).length;
        closeAll(clients);
      }
      clients = [];
      await sleep(P.settle);
      out({ ev: "mark", name: `left${r}` });
      await waitFor("marked");
    }
    return {
      ops,
      connect_seconds: connectSeconds,
      connects_per_s: ops / connectSeconds,
      dropped,
      unclosed,
      connect_errors: errors,
      ...summary(latencies), // per connection: opening to joined
    };
  });
  closeAll(clients);
  return result;
}

// ---------------------------------------------------------------------------------------------
// connects: `cycles` cycles of connect, join "/", close, `concurrency` at a time, over the
// websocket transport directly or over polling then the upgrade (2probe/3probe/5).

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: HOST,
        port: P.port,
        method,
        path,
        agent,
        headers: body === undefined ? {} : { "content-type": "text/plain;charset=UTF-8" },
      },
      (res) => {
        const chunks = [];
        res.on("data", (d) => chunks.push(d));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) reject(new Error(`${method} ${res.statusCode} ${text}`));
          else resolve(text);
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function wsCycle() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${P.port}${BASE}&transport=websocket`, {
      perMessageDeflate: false,
    });
    let joined = false;
    ws.on("message", (data) => {
      if (data[0] === C_0) ws.send("40");
      else if (data[0] === C_4 && data[1] === C_0) {
        joined = true;
        ws.close(1000);
      }
    });
    ws.on("error", reject);
    ws.on("close", () => (joined ? resolve() : reject(new Error("closed before joining"))));
  });
}

async function pollingCycle() {
  const open = await request("GET", `${BASE}&transport=polling`);
  if (open[0] !== "0") throw new Error(`unexpected handshake ${open.slice(0, 80)}`);
  const sid = JSON.parse(open.slice(1)).sid;
  const q = `${BASE}&transport=polling&sid=${encodeURIComponent(sid)}`;
  await request("POST", q, "40");
  for (let polls = 0; ; polls++) {
    const body = await request("GET", q);
    if (body.split("\x1e").some((p) => p.startsWith("40"))) break;
    if (polls > 5) throw new Error(`no namespace connect: ${body.slice(0, 80)}`);
  }
  await new Promise((resolve, reject) => {
    const ws = new WebSocket(
      `ws://${HOST}:${P.port}${BASE}&transport=websocket&sid=${encodeURIComponent(sid)}`,
      { perMessageDeflate: false },
    );
    let upgraded = false;
    ws.on("open", () => ws.send("2probe"));
    ws.on("message", (data) => {
      if (data.toString() === "3probe") {
        ws.send("5");
        upgraded = true;
        ws.close(1000);
      }
    });
    ws.on("error", reject);
    ws.on("close", () => (upgraded ? resolve() : reject(new Error("closed before the upgrade"))));
  });
}

async function connects() {
  const cycle = P.transport === "polling" ? pollingCycle : wsCycle;
  for (let i = 0; i < 5; i++) await cycle(); // warm
  return window(async () => {
    const latencies = [];
    let next = 0;
    let errors = 0;
    let lastError = null;
    const worker = async () => {
      while (next < P.cycles) {
        next++;
        const t = now();
        try {
          await cycle();
          latencies.push(now() - t);
        } catch (err) {
          errors++;
          lastError = err.message;
        }
      }
    };
    await Promise.all(Array.from({ length: P.concurrency }, worker));
    return { ops: latencies.length, errors, last_error: lastError, ...summary(latencies) };
  });
}

// ---------------------------------------------------------------------------------------------

const modes = { echo, broadcast, idle, churn, connects, hold };
try {
  const result = await modes[P.mode]();
  out({ ev: "result", ...result });
  agent.destroy();
  process.exit(0);
} catch (err) {
  fail(err.stack || String(err));
}
