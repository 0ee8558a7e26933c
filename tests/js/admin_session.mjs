// A scripted Admin UI session: connects to the admin namespace with socket.io-client exactly as
// the UI (@socket.io/admin-ui 0.5.1, ui/dist/js/app.*.js tryConnect) does, acts as it does, and
// prints, step by step, what the server sent to it, normalized so that two servers can be
// compared: ids become labels (<admin1>, <A>, <A.client>), dates <date>, and the handshake
// its shape (what differs between two servers by nature: ports, timestamps, the address).
//
//   node admin_session.mjs --url URL --password PW --scenario full|readonly|production
//
// One JSON object per line: {"step": NAME, "events": [sorted normalized events], ...}. The
// server runs the application of admin_node_server.mjs (room1, data.user, "hello").
import { parseArgs } from "node:util";
import { io } from "socket.io-client";
import { Socket as EngineSocket } from "engine.io-client";

const { values: flags } = parseArgs({
  options: {
    url: { type: "string" },
    password: { type: "string" },
    scenario: { type: "string", default: "full" },
  },
});
const url = flags.url;
const TIMEOUT = 15000;
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// -- normalization ---------------------------------------------------------------------------

const labels = new Map(); // id -> label
const label = (id, name) => labels.set(id, `<${name}>`);
const ISO_DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const keys = (obj) => Object.keys(obj ?? {}).sort();

const handshakeShape = (h) => ({
  address: typeof h.address,
  headers: keys(h.headers),
  query: keys(h.query),
  issued: typeof h.issued,
  secure: h.secure,
  time: typeof h.time,
  url: typeof h.url,
  xdomain: h.xdomain,
  keys: Object.keys(h),
});

const norm = (value) => {
  if (typeof value === "string") {
    if (labels.has(value)) return labels.get(value);
    return ISO_DATE.test(value) ? "<date>" : value;
  }
  if (Array.isArray(value)) return value.map(norm);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = k === "handshake" ? handshakeShape(v) : norm(v);
    }
    out.$keys = Object.keys(value); // the order of the keys, as JSON.stringify wrote them
    return out;
  }
  return value;
};

// -- recording what an admin socket receives -------------------------------------------------

class Recorder {
  constructor(socket) {
    this.events = [];
    this.stats = [];
    this.aggregated = new Set();
    this.wake = () => {};
    socket.onAny((event, ...args) => {
      if (event === "server_stats") {
        this.stats.push(args[0]);
        for (const e of args[0].aggregatedEvents ?? []) {
          this.aggregated.add(e.subType === undefined ? e.type : `${e.type}/${e.subType}`);
        }
      } else {
        this.events.push([event, ...args]);
      }
      this.wake();
    });
  }

  get session() {
    return this.events.find((e) => e[0] === "session")?.[1] ?? this.sessionId;
  }

  // The UI's socket upgrades to WebSocket: seen as a socket_updated, or (when the upgrade was
  // done before the namespace accepted it) in its socket_connected.
  upgraded(id) {
    return this.events.some(
      (e) =>
        (e[0] === "socket_updated" && e[1].id === id && e[1].transport === "websocket") ||
        (e[0] === "socket_connected" && e[1].id === id && e[1].transport === "websocket"),
    );
  }

  has(event, ...args) {
    return this.events.some(
      (e) => e[0] === event && args.every((a, i) => a === undefined || e[i + 1] === a),
    );
  }

  async until(predicate, what) {
    const deadline = Date.now() + TIMEOUT;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.events)}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  step(name, extra = {}) {
    this.sessionId = this.session;
    if (this.sessionId) label(this.sessionId, "session");
    const events = this.events.map((e) => JSON.stringify(norm(e))).sort();
    this.events = [];
    print({ step: name, events, ...extra });
  }
}

const once = (emitter, event) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${TIMEOUT} ms`)), TIMEOUT);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });

// What the UI does: tryConnect(serverUrl, namespace, auth, wsOnly=false, path, parser).
const connectAdmin = (auth) =>
  io(url + "/admin", {
    forceNew: true,
    reconnection: false,
    withCredentials: true,
    transports: ["polling", "websocket"],
    path: "/socket.io",
    parser: null,
    auth,
  });

let admins = 0;
const login = async (auth) => {
  const socket = connectAdmin(auth);
  const recorder = new Recorder(socket);
  await once(socket, "connect");
  admins += 1;
  label(socket.id, `admin${admins}`);
  label(socket.io.engine.id.substring(0, 12), `admin${admins}.client`);
  return { socket, recorder };
};

const connectClient = async (name) => {
  const socket = io(url, { forceNew: true, reconnection: false, transports: ["polling"] });
  const received = [];
  socket.onAny((...args) => received.push(args));
  await once(socket, "connect");
  label(socket.id, name);
  label(socket.io.engine.id.substring(0, 12), `${name}.client`);
  return { socket, received };
};

// -- the scenarios ---------------------------------------------------------------------------

const refused = async () => {
  const bad = connectAdmin({ username: "admin", password: "wrong" });
  const [err] = await once(bad, "connect_error");
  print({ step: "refused", message: err.message, data: err.data ?? null });
  bad.close();
};

const full = async () => {
  await refused();
  const { socket: admin, recorder } = await login({ username: "admin", password: flags.password });
  await recorder.until(
    () =>
      recorder.has("config") &&
      recorder.has("all_sockets") &&
      recorder.has("session") &&
      recorder.upgraded(admin.id),
    "config, all_sockets, session and the upgrade",
  );
  const sessionId = recorder.session;
  recorder.step("login");

  const a = await connectClient("A");
  await recorder.until(() => recorder.has("room_joined", "/", "room1", a.socket.id), "A in room1");
  recorder.step("A connected");

  const answer = await a.socket.timeout(TIMEOUT).emitWithAck("hello", 1);
  await recorder.until(() => recorder.has("event_received"), "event_received");
  recorder.step("A sent hello", { answer });

  admin.emit("join", "/", "room2", a.socket.id);
  await recorder.until(() => recorder.has("room_joined", "/", "room2"), "room_joined room2");
  recorder.step("join");

  admin.emit("leave", "/", "room2", a.socket.id);
  await recorder.until(() => recorder.has("room_left", "/", "room2"), "room_left room2");
  recorder.step("leave");

  admin.emit("emit", "/", "room1", "news", "x");
  await recorder.until(() => recorder.has("event_sent"), "event_sent");
  while (a.received.length === 0) await once(a.socket, "news");
  recorder.step("emit", { received: a.received });

  const second = await login({ sessionId });
  await second.recorder.until(
    () =>
      second.recorder.has("config") &&
      second.recorder.has("all_sockets") &&
      second.recorder.upgraded(second.socket.id),
    "config and all_sockets with a session id",
  );
  await recorder.until(() => recorder.upgraded(second.socket.id), "the second admin's arrival");
  second.recorder.step("second admin, by session id");
  recorder.step("second admin seen by the first");
  second.socket.close();
  // Its socket_disconnected, then its room_left (sent a tick later, as the reference does):
  // both, so that the step does not end between the two.
  await recorder.until(
    () => recorder.has("socket_disconnected") && recorder.has("room_left", "/admin"),
    "the second admin leaving",
  );
  recorder.step("second admin left");

  const aGone = once(a.socket, "disconnect");
  admin.emit("_disconnect", "/", false, a.socket.id);
  const [reason] = await aGone;
  await recorder.until(
    () => recorder.has("socket_disconnected") && recorder.has("room_left", "/", "room1"),
    "A's disconnection",
  );
  recorder.step("_disconnect", { reason });

  // A socket that failed to authenticate sends operations anyway (a raw Engine.IO client:
  // socket.io-client would not send before the namespace accepted it).
  const b = await connectClient("B");
  await recorder.until(() => recorder.has("room_joined", "/", "room1", b.socket.id), "B in room1");
  recorder.step("B connected");
  const raw = new EngineSocket(url, { transports: ["polling"], path: "/socket.io" });
  await once(raw, "open");
  raw.send('0/admin,{"username":"admin","password":"wrong"}'); // CONNECT
  const [refusal] = await once(raw, "message");
  raw.send('2/admin,["_disconnect","/",true]'); // EVENTs
  raw.send('2/admin,["join","/","hacked"]');
  raw.send('2/admin,["emit","/",null,"news","hacked"]');
  // A packet for a namespace the connection is not in closes it (both servers): read, then.
  const [closed] = await once(raw, "close");
  const third = await login({ sessionId });
  await third.recorder.until(
    () => third.recorder.has("all_sockets") && third.recorder.upgraded(third.socket.id),
    "all_sockets",
  );
  third.recorder.step("after an unauthenticated socket's operations", {
    refusal,
    closed,
    bConnected: b.socket.connected,
    bReceived: b.received,
  });

  await recorder.until(
    () =>
      ["rawConnection", "rawDisconnection/transport close", "packetsIn", "packetsOut"].every((t) =>
        recorder.aggregated.has(t),
      ),
    "aggregated events",
  );
  const stats = recorder.stats.at(-1);
  print({
    step: "server_stats",
    keys: Object.keys(stats),
    types: Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, typeof v])),
    namespaces: stats.namespaces.map((n) => n.name).sort(),
    aggregated: [...recorder.aggregated].sort(),
    aggregatedKeys: [...new Set(stats.aggregatedEvents.map((e) => Object.keys(e).join(",")))].sort(),
  });
  for (const s of [admin, third.socket, b.socket]) s.close();
};

const readonly = async () => {
  const { socket: admin, recorder } = await login({ username: "admin", password: flags.password });
  await recorder.until(
    () =>
      recorder.has("config") &&
      recorder.has("all_sockets") &&
      recorder.has("session") &&
      recorder.upgraded(admin.id),
    "config, all_sockets, session and the upgrade",
  );
  const sessionId = recorder.session;
  recorder.step("login");
  const a = await connectClient("A");
  await recorder.until(() => recorder.has("room_joined", "/", "room1", a.socket.id), "A in room1");
  recorder.step("A connected");
  admin.emit("_disconnect", "/", true, a.socket.id);
  admin.emit("join", "/", "room2", a.socket.id);
  admin.emit("leave", "/", "room1", a.socket.id);
  admin.emit("emit", "/", null, "news", "x");
  admin.close(); // after the operations, which the server read before this
  const second = await login({ sessionId });
  await second.recorder.until(
    () => second.recorder.has("all_sockets") && second.recorder.upgraded(second.socket.id),
    "all_sockets",
  );
  second.recorder.step("after refused operations", {
    aConnected: a.socket.connected,
    aReceived: a.received,
  });
  for (const s of [second.socket, a.socket]) s.close();
};

const production = async () => {
  const { socket: admin, recorder } = await login({ username: "admin", password: flags.password });
  await recorder.until(() => recorder.has("config") && recorder.stats.length > 0, "config, stats");
  const a = await connectClient("A");
  const seen = recorder.stats.length;
  await recorder.until(
    () => recorder.stats.slice(seen).some((s) => s.clientsCount === 2),
    "server_stats counting A",
  );
  recorder.step("login and A connected");
  for (const s of [admin, a.socket]) s.close();
};

const scenarios = { full, readonly, production };
try {
  await scenarios[flags.scenario]();
  process.exit(0);
} catch (err) {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}
